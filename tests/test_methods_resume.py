"""Every registered method: a run interrupted mid-training and resumed from its checkpoint ends with
exactly the weights and buffers (queues, memories, prototypes, EMA copies) of an uninterrupted run.

New methods are covered by registering them. The run crosses an epoch end (FeatMatch makes its
prototypes there) before the checkpoint, and the power cut happens inside a step after the
checkpoint; the resumed method starts from other random weights and buffers, so everything it
ends with must come from the checkpoint.
"""
from __future__ import annotations

import pytest
import torch
from conftest import SimulatedCrash, crash_at

from ssl_course.data import make_bundle
from ssl_course.methods import build_method, method_names
from ssl_course.train import TrainConfig, fit, load_checkpoint

#: Smaller settings where a method's defaults would make this test slow (structure unchanged).
SMALL = {
    "moco": dict(queue_size=40, bn_splits=2),           # batches of 32: the queue pointer wraps mid-batch
    "nnclr": dict(queue_size=64, proj_hidden_dim=64, pred_hidden_dim=64),
    "paws": dict(multicrop=1, support_per_class=2),
    "featmatch": dict(prototypes_per_class=2),
}
TOTAL, CHECKPOINT_EVERY, CRASH = 7, 5, 6     # 160 images / batch 32 = 5 steps per epoch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    return make_bundle("synthetic", num_labels=100, seed=0, device="cpu", train_subset=160, test_subset=50)


def _method(name: str, data, seed: int = 0):
    torch.manual_seed(seed)
    return build_method(name, "tiny", data.num_classes, **SMALL.get(name, {}))


def _config(**overrides) -> TrainConfig:
    return TrainConfig(max_steps=TOTAL, batch_size=32, seed=3, progress=False, monitor_every=0, log_every=2,
                       checkpoint_every=CHECKPOINT_EVERY, **overrides)


@pytest.mark.slow
@pytest.mark.parametrize("name", method_names())
def test_resume_equals_uninterrupted_run(name, data, tmp_path):
    uninterrupted = _method(name, data)
    fit(uninterrupted, data, _config())

    interrupted = _method(name, data)
    crash_at(interrupted, step=CRASH)   # mid-step: the earlier updates of a multi-update method already ran
    with pytest.raises(SimulatedCrash):
        fit(interrupted, data, _config(out_dir=tmp_path))
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == CHECKPOINT_EVERY

    resumed = _method(name, data, seed=1)    # other initial weights and buffers: the checkpoint must restore them
    history = fit(resumed, data, _config(out_dir=tmp_path, resume=True))
    assert history.step[-1] == TOTAL
    expected, actual = uninterrupted.state_dict(), resumed.state_dict()
    assert expected.keys() == actual.keys()
    for key, value in expected.items():
        assert torch.equal(value, actual[key]), f"{name}: {key} differs after resume"
