"""SimCLR and MoCo: they learn on synthetic data, MoCo's momentum / queue / split BN do what they
claim, and the CLI trains them (resuming exactly, queue included: tests/test_methods_resume.py)."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from ssl_course.data import contrastive_augment
from ssl_course.losses import update_queue
from ssl_course.methods import build_method, method_names
from ssl_course.methods.base import Batch, StepInfo
from ssl_course.methods.moco import SplitBatchNorm, use_split_batch_norm
from ssl_course.models import small_net
from ssl_course.train import TrainConfig, fit


def _moco(**hparams):
    torch.manual_seed(0)
    values = dict(queue_size=40, bn_splits=2)
    values.update(hparams)
    return build_method("moco", small_net(8), 10, **values)


def _batch(images, seed=0):
    return Batch(labeled_images=None, labels=None, unlabeled_images=images, unlabeled_index=None,
                 generator=torch.Generator().manual_seed(seed))


def _info(step=0):
    return StepInfo(step=step, epoch=0, progress=0.0, steps_per_epoch=10)


# ------------------------------------------------------------------------ construction ----------
def test_methods_are_registered_with_their_paper_defaults():
    assert {"simclr", "moco"} <= set(method_names())
    simclr = build_method("simclr", "tiny", 10)
    assert simclr.hparams() == {"temperature": 0.5, "proj_hidden_dim": None, "proj_dim": 128}
    assert simclr.data_sources == ("all",) and simclr.default_batch_size == 256
    moco = build_method("moco", "tiny", 10)
    assert moco.hparams() == {"temperature": 0.2, "momentum": 0.99, "queue_size": 4096, "proj_hidden_dim": 512,
                              "proj_dim": 128, "symmetric": False, "bn_splits": 8}
    assert moco.queue.shape == (4096, 128)
    torch.testing.assert_close(moco.queue.norm(dim=1), torch.ones(4096))


@pytest.mark.parametrize("name, hparams, message", [
    ("simclr", {"temperature": 0}, "temperature must be a number > 0"),
    ("simclr", {"proj_dim": 0}, "proj_dim must be a positive int"),
    ("moco", {"momentum": 1.0}, "momentum must be in [0, 1)"),
    ("moco", {"queue_size": 0}, "queue_size must be a positive int"),
    ("moco", {"queue_size": 100.0}, "queue_size must be a positive int"),
    ("moco", {"symmetric": "yes"}, "symmetric must be True or False"),
    ("moco", {"bn_splits": 0}, "bn_splits must be a positive int"),
    ("moco", {"temperature": -0.1}, "temperature must be a number > 0"),
])
def test_bad_hyper_parameters_are_rejected(name, hparams, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(")", r"\)")):
        build_method(name, "tiny", 10, **hparams)


def test_key_encoder_is_a_frozen_copy_outside_the_optimiser():
    moco = _moco()
    for key, query in zip(moco.key_parameters(), moco.query_parameters()):
        assert torch.equal(key, query) and not key.requires_grad and query.requires_grad
    optimised = {id(p) for p in moco.optimizer_parameters()}
    assert optimised == {id(p) for p in moco.query_parameters()}


# ------------------------------------------------------------------------ momentum and queue ------
def test_after_a_step_key_parameters_are_the_momentum_average(tiny_bundle):
    moco = _moco(momentum=0.9)
    optimizer = torch.optim.SGD(moco.optimizer_parameters(), lr=0.5)
    output = moco.training_step(_batch(tiny_bundle.train_images[:16]), _info())
    optimizer.zero_grad()
    output.loss.backward()
    optimizer.step()
    keys_before = [p.detach().clone() for p in moco.key_parameters()]
    queries = [p.detach().clone() for p in moco.query_parameters()]
    assert any(not torch.equal(k, q) for k, q in zip(keys_before, queries)), "the step did not move the query"
    moco.after_optimizer_step(_info())
    for key, before, query in zip(moco.key_parameters(), keys_before, queries):
        torch.testing.assert_close(key, 0.9 * before + 0.1 * query, rtol=1e-6, atol=1e-7)
    for query, after in zip(queries, moco.query_parameters()):
        assert torch.equal(query, after), "the momentum update must not touch the query encoder"


def test_queue_is_first_in_first_out_and_wraps_around():
    moco = _moco(queue_size=10)
    generator = torch.Generator().manual_seed(1)
    expected, pointer = moco.queue.clone(), 0
    for n in (4, 4, 4, 3, 25):   # 25 > K: only the last 10 survive
        keys = torch.randn(n, 128, generator=generator)
        moco.enqueue(keys)
        expected, pointer = update_queue(expected, keys, pointer)
        torch.testing.assert_close(moco.queue, expected)
        assert int(moco.queue_ptr) == pointer
    # by hand for the first three pushes: 4 + 4 = 8 rows, then 2 rows at the end and 2 at the start
    moco = _moco(queue_size=10)
    batches = [torch.randn(4, 128, generator=generator) for _ in range(3)]
    for keys in batches:
        moco.enqueue(keys)
    unit = [nn.functional.normalize(b, dim=1) for b in batches]
    torch.testing.assert_close(moco.queue[0:2], unit[2][2:])   # the oldest rows were overwritten first
    torch.testing.assert_close(moco.queue[2:4], unit[0][2:])
    torch.testing.assert_close(moco.queue[4:8], unit[1])
    torch.testing.assert_close(moco.queue[8:10], unit[2][:2])
    assert int(moco.queue_ptr) == 2


def test_queue_pointer_and_key_encoder_are_in_the_state_dict():
    moco = _moco()
    moco.enqueue(torch.randn(7, 128))
    state = moco.state_dict()
    assert {"queue", "queue_ptr"} <= set(state) and int(state["queue_ptr"]) == 7
    assert any(name.startswith("key_backbone.") for name in state)
    assert any(name.startswith("key_projector.") for name in state)
    fresh = _moco()
    fresh.load_state_dict(state)
    assert torch.equal(fresh.queue, moco.queue) and int(fresh.queue_ptr) == 7


def test_symmetric_loss_enqueues_both_views(tiny_bundle):
    moco = _moco(symmetric=True, queue_size=64)
    output = moco.training_step(_batch(tiny_bundle.train_images[:16]), _info())
    assert output.loss.ndim == 0 and torch.isfinite(output.loss)
    moco.after_optimizer_step(_info())
    assert int(moco.queue_ptr) == 32


# ------------------------------------------------------------------------ shuffle / split BN -------
@pytest.mark.parametrize("shape", [(12, 5), (12, 3, 4, 4)])
def test_split_batch_norm_normalises_each_group_on_its_own(shape):
    torch.manual_seed(0)
    plain = nn.BatchNorm1d(shape[1]) if len(shape) == 2 else nn.BatchNorm2d(shape[1])
    with torch.no_grad():
        plain.weight.uniform_(0.5, 1.5)
        plain.bias.uniform_(-1, 1)
    split = use_split_batch_norm(nn.Sequential(plain), num_splits=3)[0]
    assert isinstance(split, SplitBatchNorm)
    x = torch.randn(shape) * 3 + 1
    out = split(x)
    running_means = []
    for group in range(3):
        reference = nn.BatchNorm1d(shape[1]) if len(shape) == 2 else nn.BatchNorm2d(shape[1])
        reference.load_state_dict({k: v for k, v in split.state_dict().items() if k != "num_batches_tracked"},
                                  strict=False)
        reference.running_mean.zero_()
        reference.running_var.fill_(1)
        torch.testing.assert_close(out[group::3], reference(x[group::3]))
        running_means.append(reference.running_mean)
    torch.testing.assert_close(split.running_mean, torch.stack(running_means).mean(0))
    split.eval()
    plain_eval = nn.BatchNorm1d(shape[1]) if len(shape) == 2 else nn.BatchNorm2d(shape[1])
    plain_eval.load_state_dict(split.state_dict())
    plain_eval.eval()
    torch.testing.assert_close(split(x), plain_eval(x))


def test_shuffled_keys_come_back_in_image_order(tiny_bundle):
    moco = _moco(bn_splits=4).eval()   # eval: BN is per-sample, so any misplaced key would show
    views = contrastive_augment(tiny_bundle.train_images[:16], torch.Generator().manual_seed(0))
    keys = moco.encode_key(views, torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = nn.functional.normalize(moco.key_projector(moco.key_backbone(views)), dim=1)
    torch.testing.assert_close(keys, expected)


def test_batch_must_divide_into_bn_groups(tiny_bundle):
    with pytest.raises(ValueError, match="multiple of 4"):
        _moco(bn_splits=4).training_step(_batch(tiny_bundle.train_images[:18]), _info())


def test_losses_are_float32_under_autocast(tiny_bundle):
    images = tiny_bundle.train_images[:16]
    for method in (_moco(), build_method("simclr", small_net(8), 10)):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = method.training_step(_batch(images), _info())
        assert output.loss.dtype == torch.float32 and torch.isfinite(output.loss)


# ------------------------------------------------------------------------ training ---------------
def _train(method, bundle, **overrides):
    values = dict(max_steps=20, batch_size=64, seed=0, progress=False, monitor_every=0, log_every=5)
    values.update(overrides)
    return fit(method, bundle, TrainConfig(**values))


def _knn(method, bundle):
    from ssl_course.evaluate import evaluate_method

    return evaluate_method(method, bundle, probe=False, classifier=False, knn_bank="all",
                           splits=("test",))["knn_all_labels_accuracy"]


@pytest.mark.slow
def test_simclr_lowers_its_loss_and_beats_chance(tiny_bundle):
    torch.manual_seed(0)
    simclr = build_method("simclr", small_net(8), 10)
    history = _train(simclr, tiny_bundle)
    assert history.step[-1] == 20
    assert history.loss[-1] < history.loss[0] - 0.2, history.loss
    assert _knn(simclr, tiny_bundle) > 0.3   # chance is 0.1


@torch.no_grad()
def _look_up_loss(moco, images):
    """InfoNCE of fixed views of 64 images against fresh keys of 256 other images (eval mode)."""
    moco.eval()
    generator = torch.Generator().manual_seed(123)
    view1, view2, others = (contrastive_augment(x, generator) for x in (images[:64], images[:64], images[64:320]))
    queries = moco.encode_query(view1)
    loss = torch.nn.functional.cross_entropy(
        torch.cat([(nn.functional.normalize(queries, dim=1) * moco.encode_key(view2)).sum(1, keepdim=True),
                   nn.functional.normalize(queries, dim=1) @ moco.encode_key(others).T], 1) / moco.temperature,
        torch.zeros(64, dtype=torch.long))
    moco.train()
    return loss.item()


@pytest.mark.slow
def test_moco_lowers_its_loss_and_beats_chance(tiny_bundle):
    # A short run needs a key encoder that keeps up (m = 0.9: a lag of ~10 steps, not ~100) and a
    # queue that fills quickly (128 keys = 4 batches). With the defaults (m = 0.99) MoCo needs a
    # few hundred steps before its loss falls.
    moco = _moco(momentum=0.9, queue_size=128, bn_splits=2)
    before = _look_up_loss(moco, tiny_bundle.train_images)
    history = _train(moco, tiny_bundle, max_steps=80, batch_size=32, log_every=8)
    # The first steps look easy (the queue still holds random vectors); once it holds real keys
    # the loss rises, and from there training brings it down.
    assert history.loss[-1] < max(history.loss) - 0.25, history.loss
    assert _look_up_loss(moco, tiny_bundle.train_images) < before - 0.5
    assert _knn(moco, tiny_bundle) > 0.4   # chance is 0.1
    assert int(moco.queue_ptr) == 80 * 32 % 128


@pytest.mark.slow
def test_cli_trains_moco_and_writes_metrics(tmp_path, capsys):
    from ssl_course.cli import main

    out = tmp_path / "moco"
    code = main(["train", "--method", "moco", "--data", "synthetic", "--labels", "100", "--steps", "5",
                 "--backbone", "tiny", "--batch-size", "32", "--train-subset", "500", "--test-subset", "200",
                 "--hparam", "queue_size=100", "--hparam", "symmetric=true", "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "moco" and metrics["steps"] == 5
    assert metrics["hparams"]["queue_size"] == 100 and metrics["hparams"]["symmetric"] is True
    assert 0.0 <= metrics["knn_accuracy"] <= 1.0 and 0.0 <= metrics["test_accuracy"] <= 1.0
    printed = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("{"))
    assert json.loads(printed)["test_accuracy"] == metrics["test_accuracy"]
