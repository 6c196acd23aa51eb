"""torch.compile in the engine: on where it pays off, state_dict keys unchanged, eager fallback."""
from __future__ import annotations

import pytest
import torch

from ssl_course.methods import build_method
from ssl_course.models import small_net
from ssl_course.train import TrainConfig, fit, load_checkpoint


def _supervised():
    torch.manual_seed(0)
    return build_method("supervised", small_net(8), 10)


def _config(**overrides):
    values = dict(max_steps=4, batch_size=32, seed=3, progress=False, monitor_every=0, log_every=2)
    values.update(overrides)
    return TrainConfig(**values)


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
