"""SupCon, SelfCon and NNCLR: they learn on synthetic data, their state survives a checkpoint,
NNCLR's queue is FIFO and looked up before it is filled, SelfCon trains both exits."""
from __future__ import annotations

import json

import pytest
import torch
from torch.nn import functional as F

from ssl_course.cli import main
from ssl_course.data.augment import contrastive_augment
from ssl_course.losses import nnclr as nnclr_loss
from ssl_course.methods import build_method
from ssl_course.methods.base import Batch, StepInfo
from ssl_course.train import TrainConfig, fit

SMALL_NNCLR = dict(queue_size=256, proj_hidden_dim=128, pred_hidden_dim=128)
CHANCE = 0.1  # ten balanced classes


@pytest.fixture(autouse=True)
def one_thread():
    # On the shared 2-core machine, two intra-op threads of several processes fight each other and
    # small convolutions get many times slower; one thread keeps these tests well under a minute.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _config(**overrides):
    values = dict(max_steps=25, batch_size=32, seed=0, progress=False, monitor_every=0, log_every=5)
    values.update(overrides)
    return TrainConfig(**values)


def _build(name, **hparams):
    torch.manual_seed(0)
    return build_method(name, "tiny", 10, **hparams)


def _batch(data, size=16, seed=0):
    index = torch.arange(size) * 7 % data.train_images.shape[0]
    return Batch(labeled_images=data.train_images[index], labels=data.train_labels[index],
                 unlabeled_images=data.train_images[index], unlabeled_index=index,
                 generator=torch.Generator().manual_seed(seed), unlabeled_true_labels=data.train_labels[index])


INFO = StepInfo(step=0, epoch=0, progress=0.0, steps_per_epoch=1)


# ------------------------------------------------------------------ learning -------------------
# Measured on this data (tiny backbone, 1000 images, 100 labels, one thread): an untrained network
# already gets kNN 0.49 / probe 0.58 (the synthetic classes differ in colour and texture); after
# these runs SupCon reached probe 0.62, SelfCon 0.65, NNCLR kNN 0.40 (NNCLR first drops below the
# untrained network; 100 steps of batch 64 at the default learning rate reached kNN 0.66).
# Thresholds: chance (0.1) plus margin.
@pytest.mark.parametrize("name, hparams, steps, metric, threshold", [
    ("supcon", {}, 25, "test_accuracy", 0.4),
    ("selfcon", {}, 25, "test_accuracy", 0.4),
    ("nnclr", SMALL_NNCLR, 40, "knn_all_labels_accuracy", 0.25),
])
def test_training_lowers_the_loss_and_beats_chance(tiny_bundle, name, hparams, steps, metric, threshold):
    from ssl_course.evaluate import evaluate_method

    method = _build(name, **hparams)
    history = fit(method, tiny_bundle, _config(max_steps=steps))
    assert history.loss[-1] < history.loss[0] - 0.2, history.loss
    metrics = evaluate_method(method, tiny_bundle, knn_bank="all")   # thresholds set with the all-labels bank
    assert metrics[metric] > max(threshold, CHANCE), metrics
    if name == "nnclr":
        purity = history.logs["nn_purity"]
        assert purity[-1] > purity[0] and purity[-1] > CHANCE, purity


def test_supcon_with_unlabeled_images_draws_both_pools(tiny_bundle):
    method = _build("supcon", use_unlabeled=True)
    assert method.data_sources == ("labeled", "unlabeled") and type(method).data_sources == ("labeled",)
    history = fit(method, tiny_bundle, _config(max_steps=2, log_every=1))
    assert all(torch.isfinite(torch.tensor(history.loss)))
    # 16 labelled + 16 unlabelled images: an unlabelled anchor has one positive, a labelled one more
    assert 1 < history.logs["positives_per_anchor"][0] < 2 * 16


def test_supcon_step_is_the_library_loss_on_two_views(tiny_bundle):
    from ssl_course.losses import supcon

    method = _build("supcon")
    batch = _batch(tiny_bundle)
    loss = method.training_step(batch, INFO).loss
    generator = torch.Generator().manual_seed(0)
    views = [contrastive_augment(batch.labeled_images, generator=generator) for _ in range(2)]
    z = method.project(torch.cat(views))
    expected = supcon(torch.stack(z.chunk(2), 1), batch.labels, temperature=0.1, base_temperature=0.07)
    torch.testing.assert_close(loss, expected)
    assert torch.allclose(z.norm(dim=1), torch.ones(z.shape[0]))


# ------------------------------------------------------------------ SelfCon ---------------------
def test_selfcon_gradients_reach_both_exits_and_embed_is_the_final_exit(tiny_bundle):
    method = _build("selfcon")
    loss = method.training_step(_batch(tiny_bundle), INFO).loss
    loss.backward()

    def grad_norm(module):
        return sum(p.grad.abs().sum().item() for p in module.parameters() if p.grad is not None)

    net = method.backbone  # MultiExitNet
    for part, module in [("final head", method.head), ("sub-network head", method.sub_heads[0]),
                         ("sub-network exit", net.exit), ("last stage (final exit only)", net.backbone.stages[-1]),
                         ("shared first stage", net.backbone.stages[0])]:
        assert grad_norm(module) > 0, f"no gradient reaches the {part}"
    method.eval()
    images = F.interpolate(torch.rand(4, 3, 32, 32), size=32)
    with torch.no_grad():
        torch.testing.assert_close(method.embed(images), net.forward_exits(images)[0])


# ------------------------------------------------------------------ NNCLR -----------------------
def test_nnclr_queue_is_fifo_with_monitoring_buffers():
    method = _build("nnclr", queue_size=5, proj_dim=4, proj_hidden_dim=8, pred_hidden_dim=8)
    z = torch.randn(3, 4) * 5
    method.enqueue(z, torch.tensor([1, 2, 3]), torch.tensor([10, 11, 12]))
    torch.testing.assert_close(method.queue[:3], F.normalize(z, dim=1))
    assert int(method.queue_ptr) == 3
    assert method.queue_labels.tolist() == [1, 2, 3, -1, -1] and method.queue_index.tolist() == [10, 11, 12, -1, -1]
    z2 = torch.randn(3, 4)
    method.enqueue(z2, torch.tensor([4, 5, 6]), torch.tensor([13, 14, 15]))  # wraps around
    assert int(method.queue_ptr) == 1
    torch.testing.assert_close(method.queue[[3, 4, 0]], F.normalize(z2, dim=1))
    assert method.queue_labels.tolist() == [6, 2, 3, 4, 5] and method.queue_index.tolist() == [15, 11, 12, 13, 14]
    z3 = torch.randn(7, 4)  # more rows than slots: only the last five survive, oldest slot first
    method.enqueue(z3, torch.arange(20, 27), torch.arange(30, 37))
    assert int(method.queue_ptr) == (1 + 7) % 5
    assert method.queue_labels.tolist() == [24, 25, 26, 22, 23]
    torch.testing.assert_close(method.queue[[3, 4, 0, 1, 2]], F.normalize(z3[2:], dim=1))
    method.enqueue(torch.randn(2, 4))  # without monitoring labels: marked -1
    assert method.queue_labels[[3, 4]].tolist() == [-1, -1]

    state = method.state_dict()
    assert {"queue", "queue_ptr", "queue_labels", "queue_index"} <= set(state)
    fresh = _build("nnclr", queue_size=5, proj_dim=4, proj_hidden_dim=8, pred_hidden_dim=8)
    fresh.load_state_dict(state)
    for name in ("queue", "queue_ptr", "queue_labels", "queue_index"):
        assert torch.equal(getattr(fresh, name), getattr(method, name))


def test_nnclr_looks_up_before_it_enqueues_view_one_with_per_view_batch_norm(tiny_bundle):
    method = _build("nnclr", **SMALL_NNCLR)
    batch = _batch(tiny_bundle, size=16, seed=3)
    old_queue = method.queue.clone()
    loss = method.training_step(batch, INFO).loss

    generator = torch.Generator().manual_seed(3)
    views = [contrastive_augment(batch.unlabeled_images, generator=generator) for _ in range(2)]
    # one forward pass per view (per-view batch norm): a joint pass over both views gives other z
    z1, z2 = (method.project(view) for view in views)
    p1, p2 = method.predictor(z1), method.predictor(z2)
    torch.testing.assert_close(loss, nnclr_loss(z1, z2, old_queue, 0.1, p1, p2))
    torch.testing.assert_close(method.queue[:16], F.normalize(z1, dim=1).detach())
    assert torch.equal(method.queue[16:], old_queue[16:])
    assert int(method.queue_ptr) == 16
    assert torch.equal(method.queue_labels[:16], batch.unlabeled_true_labels)
    assert torch.equal(method.queue_index[:16], batch.unlabeled_index)


@pytest.mark.parametrize("name, hparams, message", [
    ("supcon", dict(temperature=0.0), "temperature"),
    ("selfcon", dict(exit_after=2), "exit_after"),
    ("nnclr", dict(queue_size=0), "queue_size"),
])
def test_bad_hyper_parameters_fail_clearly(name, hparams, message):
    with pytest.raises(ValueError, match=message):
        build_method(name, "tiny", 10, **hparams)


def test_cli_trains_selfcon_for_five_steps(tmp_path):
    out = tmp_path / "selfcon"
    code = main(["train", "--method", "selfcon", "--data", "synthetic", "--labels", "100", "--steps", "5",
                 "--backbone", "tiny", "--batch-size", "32", "--train-subset", "1000", "--test-subset", "500",
                 "--out", str(out), "--no-progress", "--hparam", "temperature=0.2"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "selfcon" and metrics["steps"] == 5
    assert metrics["hparams"]["temperature"] == 0.2 and metrics["hparams"]["exit_after"] == 1
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and (out / "checkpoint.pt").is_file()
