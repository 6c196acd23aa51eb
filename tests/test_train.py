"""The engine: budgets, schedule, resume equals an uninterrupted run, checkpoints, non-finite loss,
torch.compile with its eager fallback."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import SimulatedCrash, crash_at

from ssl_course.data import normalize
from ssl_course.methods import build_method
from ssl_course.methods.base import Method, StepOutput
from ssl_course.models import small_net
from ssl_course.train import CHECKPOINT_VERSION, TrainConfig, fit, load_checkpoint, lr_at, save_checkpoint


def _supervised():
    torch.manual_seed(0)
    return build_method("supervised", small_net(8), 10)


def _config(**overrides):
    values = dict(max_steps=6, batch_size=32, seed=3, progress=False, monitor_every=0, log_every=2)
    values.update(overrides)
    return TrainConfig(**values)


def test_training_lowers_the_loss(tiny_bundle):
    history = fit(_supervised(), tiny_bundle, _config(max_steps=40, log_every=10))
    assert history.loss[-1] < history.loss[0]
    assert history.step[-1] == 40


def test_resume_equals_uninterrupted_run(tiny_bundle, tmp_path):
    uninterrupted = _supervised()
    fit(uninterrupted, tiny_bundle, _config())

    interrupted = _supervised()
    crash_at(interrupted, step=4)
    with pytest.raises(SimulatedCrash):
        fit(interrupted, tiny_bundle, _config(out_dir=tmp_path, checkpoint_every=3))
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 3

    resumed = _supervised()  # a fresh process would start from new weights: the checkpoint must restore them
    history = fit(resumed, tiny_bundle, _config(out_dir=tmp_path, checkpoint_every=3, resume=True))
    assert history.step[-1] == 6
    for (name, expected), actual in zip(uninterrupted.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(expected, actual), f"{name} differs after resume"


def test_resume_refuses_a_checkpoint_of_another_run(tiny_bundle, tmp_path):
    fit(_supervised(), tiny_bundle, _config(out_dir=tmp_path))
    with pytest.raises(ValueError, match="different run"):
        fit(_supervised(), tiny_bundle, _config(out_dir=tmp_path, resume=True, batch_size=16))


def test_corrupt_checkpoint_gives_clear_error_and_is_not_overwritten(tiny_bundle, tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="corrupt"):
        fit(_supervised(), tiny_bundle, _config(out_dir=tmp_path, resume=True))
    assert path.read_bytes() == b"not a checkpoint at all"


class Arbitrary:  # unpickling an arbitrary class could run code: weights_only must refuse it
    pass


def test_checkpoints_are_loaded_with_weights_only(tmp_path):
    torch.save({"version": CHECKPOINT_VERSION, "payload": Arbitrary()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_save_checkpoint_is_atomic_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"version": CHECKPOINT_VERSION, "weights": torch.arange(3)})
    save_checkpoint(path, {"version": CHECKPOINT_VERSION, "weights": torch.arange(4)})
    assert torch.equal(load_checkpoint(path)["weights"], torch.arange(4))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"version": CHECKPOINT_VERSION, "weights": torch.ones(2)})

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(path, {"version": CHECKPOINT_VERSION, "weights": torch.zeros(2)})
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["weights"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


class _ExplodingMethod(Method):
    name = "exploding"

    def __init__(self):
        super().__init__(small_net(4), 10)
        self.scale = torch.nn.Parameter(torch.ones(()))

    def training_step(self, batch, step):
        loss = self.scale * 1.0
        if step.step >= 2:
            loss = loss * float("nan")
        return StepOutput(loss)


def test_non_finite_loss_stops_with_the_step(tiny_bundle):
    with pytest.raises(FloatingPointError, match="step 2"):
        fit(_ExplodingMethod(), tiny_bundle, _config(max_steps=10, log_every=5))


def test_time_budget_stops_training(tiny_bundle):
    history = fit(_supervised(), tiny_bundle, _config(max_steps=None, max_minutes=0.02))
    assert history.seconds[-1] < 0.02 * 60 + 5
    assert history.step[-1] >= 1


def test_monitor_records_knn_accuracy(tiny_bundle):
    history = fit(_supervised(), tiny_bundle, _config(max_steps=4, monitor_every=2, monitor_bank_size=300,
                                                     monitor_val_size=100))
    assert history.monitor_step == [2, 4]
    assert all(0.0 <= value <= 1.0 for value in history.monitor_knn)


def test_monitor_reads_validation_images_and_never_test_images(tiny_bundle):
    # Every test image is one flat grey value, which no training or validation image is: a spy on
    # the network's input sees whether the monitor ever feeds it a test image.
    poisoned = dataclasses.replace(tiny_bundle, test_images=torch.full_like(tiny_bundle.test_images, 7))
    test_input = normalize(poisoned.test_images[:1])
    seen = {"test": 0, "batches": 0, "rows": 0}
    method = _supervised()
    embed = method.embed

    def spy(images):
        seen["batches"] += 1
        seen["rows"] += images.shape[0]
        seen["test"] += int((images == test_input).flatten(1).all(1).sum())
        return embed(images)

    method.embed = spy
    history = fit(method, poisoned, _config(max_steps=4, monitor_every=2, monitor_bank_size=300,
                                            monitor_val_size=60))
    assert history.monitor_step == [2, 4] and seen["batches"] > 0
    assert seen["test"] == 0
    # twice: the all-labels bank, the labelled images (the labelled-bank kNN) and the validation subset
    assert seen["rows"] == 2 * (300 + poisoned.num_labels + 60)


def test_monitor_is_off_without_a_validation_split(tiny_bundle):
    empty = tiny_bundle.val_images[:0]
    no_val = dataclasses.replace(tiny_bundle, val_images=empty, val_labels=tiny_bundle.val_labels[:0])
    history = fit(_supervised(), no_val, _config(max_steps=4, monitor_every=2))
    assert history.monitor_step == [] and history.step[-1] == 4


def test_warmup_then_cosine_schedule():
    assert lr_at(0.0, 1.0, 0.1) == 0.0
    assert lr_at(0.05, 1.0, 0.1) == pytest.approx(0.5)
    assert lr_at(0.1, 1.0, 0.1) == pytest.approx(1.0)
    assert lr_at(0.55, 1.0, 0.1) == pytest.approx(0.5)
    assert lr_at(1.0, 1.0, 0.1) == pytest.approx(0.0, abs=1e-12)
    values = [lr_at(p / 100, 1.0, 0.1) for p in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("kwargs, message", [
    ({}, "give a budget"),
    ({"epochs": 0}, "epochs must be > 0"),
    ({"max_minutes": -1}, "max_minutes must be > 0"),
    ({"max_steps": 5, "optimizer": "rmsprop"}, "unknown optimizer"),
    ({"max_steps": 5, "batch_size": 0}, "batch_size must be a positive int"),
    ({"max_steps": 5, "lr": 0.0}, "lr must be > 0"),
])
def test_bad_configs_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_resume_without_out_dir_is_an_error(tiny_bundle):
    with pytest.raises(ValueError, match="out_dir"):
        fit(_supervised(), tiny_bundle, _config(resume=True))


def test_channels_last_conversion_leaves_non_4d_tensors_alone():
    from ssl_course.train import _to_channels_last

    method = _supervised()
    method.register_buffer("memory", torch.zeros(2, 3, 4, 5, 6))
    _to_channels_last(method)
    conv = method.backbone.stem[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert method.memory.ndim == 5


def test_resume_refuses_changed_hyperparameters(tiny_bundle, tmp_path):
    fit(_supervised(), tiny_bundle, _config(out_dir=tmp_path))
    torch.manual_seed(0)
    changed = build_method("supervised", small_net(8), 10, label_smoothing=0.1)
    with pytest.raises(ValueError, match="different run"):
        fit(changed, tiny_bundle, _config(out_dir=tmp_path, resume=True))


# ---------------------------------------------------------------------------------------------
# torch.compile: on where it pays off, state_dict keys unchanged, eager fallback
# ---------------------------------------------------------------------------------------------

def _assert_same_weights(a, b, atol=0.0):
    for (name, expected), actual in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(expected.float(), actual.float(), atol=atol, rtol=0), f"{name} differs"


def _compiler_that_fails(graph_module, example_inputs):
    raise RuntimeError("simulated compiler failure (no C++ compiler, no Triton, ...)")


def test_not_compiled_on_a_cpu_by_default(tiny_bundle):
    method = _supervised()
    fit(method, tiny_bundle, _config(max_steps=1))
    assert getattr(method.backbone, "_compiled_call_impl", None) is None


def test_compiled_backbone_trains_and_checkpoints_keep_their_keys(tiny_bundle, tmp_path):
    """The "eager" backend runs Dynamo's tracing without code generation: quick, and the same maths."""
    eager = _supervised()
    fit(eager, tiny_bundle, _config())
    compiled = _supervised()
    fit(compiled, tiny_bundle, _config(compile=True, compile_backend="eager", out_dir=tmp_path))
    assert compiled.backbone._compiled_call_impl is not None
    _assert_same_weights(eager, compiled, atol=1e-5)
    saved = load_checkpoint(tmp_path / "checkpoint.pt")["method"]
    assert set(saved) == set(eager.state_dict())                         # no "_orig_mod." prefixes
    fresh = _supervised()
    fresh.load_state_dict(saved)                                         # loads into an uncompiled model


def test_compiler_failure_falls_back_to_eager_with_the_same_result(tiny_bundle):
    eager = _supervised()
    fit(eager, tiny_bundle, _config())
    method = _supervised()
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        fit(method, tiny_bundle, _config(compile=True, compile_backend=_compiler_that_fails))
    assert method.backbone._compiled_call_impl is None
    _assert_same_weights(eager, method)                                   # the failed step was redone exactly


def test_errors_of_the_model_itself_are_not_swallowed(tiny_bundle):
    method = _supervised()

    def broken_step(batch, info):
        raise ValueError("a bug in the method")

    method.training_step = broken_step
    with pytest.raises(ValueError, match="a bug in the method"):
        fit(method, tiny_bundle, _config(compile=True, compile_backend="eager"))


@pytest.mark.parametrize("settings, on_cuda, expected", [
    (dict(max_minutes=2), True, False),          # a notebook's short GPU run: compiling would eat it
    (dict(max_minutes=15), True, True),          # the comparison's 15 minutes per method
    (dict(max_steps=100), True, False),
    (dict(max_steps=5000), True, True),
    (dict(max_minutes=15, max_steps=50), True, False),
    (dict(max_minutes=60), False, False),        # never by default on a CPU
    (dict(max_minutes=1, compile=True), False, True),
    (dict(max_minutes=60, compile=False), True, False),
])
def test_when_the_default_compiles(settings, on_cuda, expected):
    from ssl_course.train import _compile_backbone

    method = _supervised()
    config = TrainConfig(compile_backend="eager", **settings)
    total_steps = settings.get("max_steps")
    assert _compile_backbone(method, config, on_cuda, total_steps) is expected
    assert (method.backbone._compiled_call_impl is not None) is expected


def test_compiler_fallback_undoes_what_the_failed_step_wrote(tiny_bundle):
    """A method may write to its own buffers (a queue, a memory) before its first backbone call;
    the eager retry must start from the state before the failed attempt, or it writes twice."""
    def counting(method):
        method.register_buffer("calls", torch.zeros((), dtype=torch.long))
        original = method.training_step

        def step(batch, info):
            method.calls += 1                      # written before the backbone runs
            return original(batch, info)
        method.training_step = step
        return method

    eager = counting(_supervised())
    fit(eager, tiny_bundle, _config())
    method = counting(_supervised())
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        fit(method, tiny_bundle, _config(compile=True, compile_backend=_compiler_that_fails))
    assert int(method.calls) == int(eager.calls) == 6
    _assert_same_weights(eager, method)
