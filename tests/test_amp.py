"""Mixed precision: every method trains under autocast, data preparation stays float32, ``TrainConfig.amp``.

On a GPU the engine runs every step under bfloat16 (or float16) autocast by default. A CPU can run
the same dtype paths: ``amp="bf16"`` / ``"fp16"`` force autocast on any device, so these tests
catch a method that breaks under mixed precision without a GPU.
"""
from __future__ import annotations

import math
import warnings

import pytest
import torch
from conftest import SimulatedCrash, crash_at

from ssl_course.data import augment, make_bundle, transforms_params
from ssl_course.data.color import lab_to_rgb, rgb_to_lab
from ssl_course.losses import transformation_consistency_loss
from ssl_course.losses._checks import check_probability_rows, check_same_device_dtype
from ssl_course.methods import build_method, method_names
from ssl_course.precision import autocast_dtype, full_precision
from ssl_course.train import CHECKPOINT_NAME, TrainConfig, _grad_scaler, fit, load_checkpoint

#: Smaller settings where a method's defaults need more data than a 100-image set or cost seconds.
SMALL = {
    "bigbigan": dict(z_dim=16, generator_width=16, discriminator_width=16, hidden_dim=64),
    "featmatch": dict(prototypes_per_class=1),
    "jigsaw": dict(num_permutations=10),
    "moco": dict(queue_size=32, bn_splits=2),
    "nnclr": dict(queue_size=32),
    "paws": dict(multicrop=2, support_per_class=2),
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small_bundle():
    return make_bundle("synthetic", num_labels=40, seed=0, device="cpu", train_subset=100, test_subset=20,
                       val_size=0)


def _cpu_float16_autocast_works() -> tuple[bool, str]:
    """Whether this torch runs a convolution in float16 under CPU autocast (measured, not assumed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # an old torch warns and disables CPU float16 autocast
        try:
            with torch.autocast("cpu", dtype=torch.float16):
                out = torch.nn.functional.conv2d(torch.ones(1, 3, 8, 8), torch.ones(4, 3, 3, 3))
        except RuntimeError as error:
            return False, f"CPU float16 autocast raised {type(error).__name__}: {error}"
    if out.dtype != torch.float16:
        return False, f"under CPU float16 autocast a conv2d gave {out.dtype}, not float16 (torch {torch.__version__})"
    return True, ""


def _train_two_steps(name: str, data, amp: str, batch_size: int, **config):
    """Build ``name`` on ``tiny``, train two steps under ``amp``; return (method, weights before, history, dtypes)."""
    torch.manual_seed(0)
    method = build_method(name, "tiny", data.num_classes, **SMALL.get(name, {}))
    before = {key: value.detach().clone() for key, value in method.backbone.state_dict().items()}
    seen = set()    # output dtypes of the backbone's convolutions during training: proves that autocast was on
    hooks = [module.register_forward_hook(lambda module, inputs, output: seen.add(output.dtype))
             for module in method.backbone.modules() if isinstance(module, torch.nn.Conv2d)]
    try:
        history = fit(method, data, TrainConfig(max_steps=2, batch_size=batch_size, device="cpu", amp=amp,
                                                warmup_fraction=0.0, progress=False, monitor_every=0,
                                                log_every=1, **config))
    finally:
        for hook in hooks:
            hook.remove()
    return method, before, history, seen


def _assert_trained(name, method, before, history, seen, dtype):
    assert len(history.loss) == 2 and all(math.isfinite(loss) for loss in history.loss), (name, history.loss)
    assert dtype in seen, f"{name}: the backbone never ran in {dtype} (saw {seen}): autocast was not on"
    assert history.autocast == str(dtype).removeprefix("torch.")
    after = method.backbone.state_dict()
    assert all(torch.isfinite(value).all() for value in after.values() if value.is_floating_point()), name
    changed = [key for key, value in before.items() if value.is_floating_point() and not torch.equal(value, after[key])]
    assert changed, f"{name}: no backbone parameter or buffer changed in two steps"


# ------------------------------------------------------------------ every method, bfloat16 ---------
@pytest.mark.parametrize("name", method_names())
def test_every_method_trains_two_steps_under_cpu_bfloat16_autocast(small_bundle, name):
    method, before, history, seen = _train_two_steps(name, small_bundle, "bf16", batch_size=16)
    _assert_trained(name, method, before, history, seen, torch.bfloat16)


# ------------------------------------------------------------------ float16 on a CPU ---------------
@pytest.mark.parametrize("name", ["aet", "enaet", "colorization"])
def test_methods_with_float32_targets_train_under_cpu_float16_autocast(small_bundle, tmp_path, name):
    works, reason = _cpu_float16_autocast_works()
    if not works:
        pytest.skip(reason)
    method, before, history, seen = _train_two_steps(name, small_bundle, "fp16", batch_size=8, out_dir=tmp_path)
    _assert_trained(name, method, before, history, seen, torch.float16)
    checkpoint = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert checkpoint["autocast"] == "float16" and checkpoint["scaler"] == {}   # no loss scaler on a CPU


# ------------------------------------------------------------------ data preparation stays float32 -
def _colour_cube(levels: int = 24) -> torch.Tensor:
    steps = torch.linspace(0.0, 1.0, levels)
    return torch.stack(torch.meshgrid(steps, steps, steps, indexing="ij")).reshape(1, 3, levels, levels ** 2)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_lab_conversion_under_autocast_matches_float32(dtype):
    rgb = _colour_cube()
    lab = rgb_to_lab(rgb)
    with torch.autocast("cpu", dtype=dtype):
        lab_autocast = rgb_to_lab(rgb)
        rgb_back = lab_to_rgb(lab)
    # before the fix: a off by 1.2, b by 0.6, L by 0.2 under bfloat16 autocast
    assert lab_autocast.dtype == torch.float32 and rgb_back.dtype == torch.float32
    torch.testing.assert_close(lab_autocast, lab, atol=1e-3, rtol=0)
    torch.testing.assert_close(rgb_back, lab_to_rgb(lab), atol=1e-3, rtol=0)


def test_lab_of_half_precision_input_is_computed_in_float32():
    rgb = _colour_cube().bfloat16()
    lab = rgb_to_lab(rgb)
    assert lab.dtype == torch.float32
    torch.testing.assert_close(lab, rgb_to_lab(rgb.float()), atol=1e-4, rtol=0)
    assert rgb_to_lab(rgb.double()).dtype == torch.float64


@pytest.mark.parametrize("pipeline", ["contrastive_augment", "multicrop_augment", "strong_augment",
                                      "fixmatch_augment", "color_jitter"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_augmentations_ignore_autocast(small_bundle, pipeline, dtype):
    images = small_bundle.train_images[:32]
    function = getattr(augment, pipeline)
    expected = function(images, torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=dtype):
        views = function(images, torch.Generator().manual_seed(0))
    assert views.dtype == torch.float32 and torch.isfinite(views).all()
    torch.testing.assert_close(views, expected, atol=0, rtol=0)


@pytest.mark.parametrize("family", sorted(transforms_params.FAMILIES))
def test_aet_transformations_and_targets_ignore_autocast(small_bundle, family):
    images, draw = small_bundle.train_images[:16], transforms_params.random_transformation
    expected, expected_params = draw(family, images, torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        copies, params = draw(family, images, torch.Generator().manual_seed(0))
    assert copies.dtype == params.dtype == torch.float32
    torch.testing.assert_close(copies, expected, atol=0, rtol=0)
    torch.testing.assert_close(params, expected_params, atol=0, rtol=0)


def test_full_precision_switches_autocast_off_and_back_on():
    weights = torch.ones(4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with full_precision():
            assert (weights @ weights).dtype == torch.float32
        assert (weights @ weights).dtype == torch.bfloat16


# ------------------------------------------------------------------ the losses' checks -------------
def test_probability_checks_accept_half_precision_probabilities_and_still_catch_logits():
    torch.manual_seed(0)
    logits = torch.randn(512, 261) * 3
    for dtype in (torch.bfloat16, torch.float16):
        check_probability_rows("p", torch.softmax(logits, 1).to(dtype))      # rows sum to 1 ± 0.004 in bfloat16
        check_probability_rows("p", torch.softmax(logits.to(dtype), 1))
        with pytest.raises(ValueError, match="sum to 1"):
            check_probability_rows("p", torch.softmax(logits, 1).to(dtype) * 1.02)
        with pytest.raises(ValueError, match="probabilities"):
            check_probability_rows("p", logits.to(dtype))
    q = torch.softmax(torch.randn(8, 10), 1).bfloat16()
    loss = transformation_consistency_loss(torch.randn(8, 10).bfloat16(), q)
    assert torch.isfinite(loss)


def test_a_dtype_mix_from_autocast_says_to_compute_the_loss_in_float32():
    predicted, target = torch.zeros(4, 8, dtype=torch.bfloat16), torch.zeros(4, 8)
    with pytest.raises(ValueError, match=r"predicted\.float\(\)"):
        check_same_device_dtype("predicted", predicted, "target", target)
    with pytest.raises(ValueError, match=r"predicted\.float\(\)"):
        check_same_device_dtype("target", target, "predicted", predicted)


# ------------------------------------------------------------------ TrainConfig.amp ----------------
@pytest.mark.parametrize("amp", [True, False, "bf16", "fp16"])
def test_amp_accepts_the_documented_values(amp):
    assert TrainConfig(max_steps=1, amp=amp).amp == amp


@pytest.mark.parametrize("amp", ["fp32", "BF16", "bfloat16", 1, None, torch.bfloat16])
def test_amp_rejects_anything_else_with_the_choices(amp):
    with pytest.raises(ValueError, match=r"amp must be one of \[True, False, 'bf16', 'fp16'\]"):
        TrainConfig(max_steps=1, amp=amp)


def test_amp_resolves_to_an_autocast_dtype_per_device(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_dtype(True, cpu) is None and autocast_dtype(False, cuda) is None
    assert autocast_dtype("bf16", cpu) == torch.bfloat16 and autocast_dtype("fp16", cpu) == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert autocast_dtype(True, cuda) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert autocast_dtype(True, cuda) == torch.float16


def test_no_loss_scaler_without_float16_on_cuda():
    cpu = torch.device("cpu")
    assert not _grad_scaler(torch.float16, cpu).is_enabled()
    assert not _grad_scaler(torch.bfloat16, cpu).is_enabled() and not _grad_scaler(None, cpu).is_enabled()
    if torch.cuda.is_available():
        cuda = torch.device("cuda")
        assert _grad_scaler(torch.float16, cuda).is_enabled() and not _grad_scaler(torch.bfloat16, cuda).is_enabled()


# ------------------------------------------------------------------ checkpoints --------------------
def _supervised():
    torch.manual_seed(0)
    return build_method("supervised", "tiny", 10)


def _config(**overrides):
    values = dict(max_steps=4, batch_size=16, seed=1, device="cpu", amp="bf16", progress=False, monitor_every=0,
                  log_every=1)
    values.update(overrides)
    return TrainConfig(**values)


def test_resume_under_bfloat16_equals_the_uninterrupted_run(small_bundle, tmp_path):
    uninterrupted = _supervised()
    fit(uninterrupted, small_bundle, _config())

    interrupted = _supervised()
    crash_at(interrupted, step=3)
    with pytest.raises(SimulatedCrash):
        fit(interrupted, small_bundle, _config(out_dir=tmp_path, checkpoint_every=2))
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["autocast"] == "bfloat16"
    resumed = _supervised()
    history = fit(resumed, small_bundle, _config(out_dir=tmp_path, checkpoint_every=2, resume=True))
    assert history.step[-1] == 4 and history.autocast == "bfloat16"
    for (name, expected), actual in zip(uninterrupted.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(expected, actual), f"{name} differs after resume"


def test_resume_with_another_autocast_dtype_warns_and_continues(small_bundle, tmp_path):
    fit(_supervised(), small_bundle, _config(max_steps=2, out_dir=tmp_path))
    with pytest.warns(RuntimeWarning, match="trained in bfloat16, this run computes in float32"):
        history = fit(_supervised(), small_bundle, _config(out_dir=tmp_path, amp=False, resume=True))
    assert history.step[-1] == 4 and history.autocast is None
