"""AET and En-AET methods: the ablation switches, the weight ramp, the parts each term trains.
(That they learn is checked in test_methods_learn.py.)"""
from __future__ import annotations

import inspect

import pytest
import torch

from ssl_course.data import transforms_params
from ssl_course.methods import Batch, StepInfo, build_method
from ssl_course.methods import aet as aet_module
from ssl_course.methods.enaet import OFFICIAL_WEIGHTS, EnAET
from ssl_course.methods.mixmatch import MixMatch


def _batch(data, seed: int = 0) -> Batch:
    labeled = data.labeled_idx[:16]
    unlabeled = torch.arange(0, 16)
    return Batch(labeled_images=data.train_images[labeled], labels=data.train_labels[labeled],
                 unlabeled_images=data.train_images[unlabeled], unlabeled_index=unlabeled,
                 generator=torch.Generator().manual_seed(seed))


INFO = StepInfo(step=3, epoch=0, progress=0.5, steps_per_epoch=10)


def test_enaet_with_both_terms_off_is_mixmatch(tiny_bundle):
    torch.manual_seed(0)
    mixmatch = build_method("mixmatch", "tiny", 10)
    torch.manual_seed(0)
    enaet = build_method("enaet", "tiny", 10, aet_weight=0.0, kl_weight=0.0)
    a = mixmatch.training_step(_batch(tiny_bundle), INFO)
    b = enaet.training_step(_batch(tiny_bundle), INFO)
    assert torch.equal(a.loss, b.loss)


def test_enaet_terms_train_their_parts(tiny_bundle):
    torch.manual_seed(0)
    full = build_method("enaet", "tiny", 10)
    out = full.training_step(_batch(tiny_bundle), INFO)
    assert {"loss_kl", "aet_projective", "aet_ccbs", "loss_x", "loss_u"} <= set(out.logs)
    out.loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in full.decoders.parameters() if p.dim() > 1)
    # without the AET ensemble the decoders get nothing; the KL term still trains the classifier
    torch.manual_seed(0)
    kl_only = build_method("enaet", "tiny", 10, aet_weight=0.0)
    out = kl_only.training_step(_batch(tiny_bundle), INFO)
    assert "loss_kl" in out.logs and "aet_projective" not in out.logs
    out.loss.backward()
    assert all(p.grad is None for p in kl_only.decoders.parameters())
    # adding the KL term changes the loss by exactly kl_weight * loss_kl
    torch.manual_seed(0)
    no_kl = build_method("enaet", "tiny", 10, aet_weight=0.0, kl_weight=0.0)
    base = no_kl.training_step(_batch(tiny_bundle), INFO).loss
    torch.manual_seed(0)
    kl = build_method("enaet", "tiny", 10, aet_weight=0.0, kl_weight=2.0)
    step = kl.training_step(_batch(tiny_bundle), INFO)
    torch.testing.assert_close(step.loss, base + step.logs["kl_weight"] * step.logs["loss_kl"])
    assert step.logs["kl_weight"] == pytest.approx(2.0 * step.logs["lambda_u"] / kl.lambda_u)


def test_enaet_kl_weight_follows_the_lambda_u_ramp_unless_asked_for_the_official_constant(tiny_bundle):
    ramped = build_method("enaet", "tiny", 10, kl_weight=2.0)
    assert ramped.kl_weight_at(0.0) == 0.0                        # no pull towards an untrained guess
    assert ramped.kl_weight_at(ramped.lambda_u / 2) == pytest.approx(1.0)
    assert ramped.kl_weight_at(ramped.lambda_u) == pytest.approx(2.0)
    official = build_method("enaet", "tiny", 10, kl_weight=2.0, kl_rampup=False)
    assert official.kl_weight_at(0.0) == 2.0
    torch.manual_seed(0)
    early = ramped.training_step(_batch(tiny_bundle), StepInfo(step=0, epoch=0, progress=0.0, steps_per_epoch=10))
    assert early.logs["kl_weight"] == 0.0 and early.logs["lambda_u"] == 0.0


def test_enaet_weights_ramp_to_the_official_values():
    method = build_method("enaet", "tiny", 10)
    assert method.aet_weights_at(0.0) == [0.0] * 5
    assert method.aet_weights_at(0.05) == pytest.approx([w / 2 for w in OFFICIAL_WEIGHTS.values()])
    assert method.aet_weights_at(0.5) == pytest.approx(list(OFFICIAL_WEIGHTS.values()))
    assert build_method("enaet", "tiny", 10, aet_weight=2.0).aet_weights_at(1.0)[0] == 2.0


def test_aet_step_logs_each_family_and_families_parse_from_the_command_line(tiny_bundle):
    method = build_method("aet", "tiny", 10, families="projective, ccbs")
    assert method.families == ("projective", "ccbs")
    out = method.training_step(_batch(tiny_bundle), INFO)
    assert {"aet_projective", "aet_ccbs"} == set(out.logs)
    torch.testing.assert_close(out.loss, out.logs["aet_projective"] + out.logs["aet_ccbs"])
    with pytest.raises(ValueError, match="families must be distinct names"):
        build_method("aet", "tiny", 10, families="projective,perspective")
    with pytest.raises(ValueError, match="one number >= 0 per family"):
        build_method("aet", "tiny", 10, weights=(1.0,))


def test_enaet_accepts_and_passes_on_every_mixmatch_setting():
    """En-AET is MixMatch plus terms: every MixMatch hyper-parameter (e.g. the official BN momentum
    0.001, docs/RECIPES.md) must be accepted with MixMatch's default and reach MixMatch."""
    mixmatch = inspect.signature(MixMatch.__init__).parameters
    enaet = inspect.signature(EnAET.__init__).parameters
    for name, parameter in list(mixmatch.items())[3:]:
        assert name in enaet, f"enaet does not accept MixMatch's {name!r}"
        assert enaet[name].default == parameter.default, name
    method = build_method("enaet", "tiny", 10, bn_momentum=0.001)
    assert method.hparams()["bn_momentum"] == 0.001
    norms = [m for m in method.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.momentum == 0.001 for m in norms)


def test_aet_draws_its_affine_scales_from_its_own_code_and_enaet_from_its_own(tiny_bundle, monkeypatch):
    """AET's cifar/affine/main.py: scale 0.7-1.3; En-AET's ops/argparser.py: 0.8-1.2."""
    ranges = []
    original = aet_module.random_transformation

    def spy(name, images, generator, scale_range=transforms_params.SCALE_RANGE):
        ranges.append((name, tuple(scale_range)))
        return original(name, images, generator, scale_range)

    monkeypatch.setattr(aet_module, "random_transformation", spy)
    aet = build_method("aet", "tiny", 10)
    assert aet.affine_scale_range == (0.7, 1.3)
    aet.training_step(_batch(tiny_bundle), StepInfo(0, 0, 0.0, 10))
    assert ranges == [("projective", (0.7, 1.3)), ("affine", (0.7, 1.3))]   # the projective warp ignores it
    ranges.clear()
    enaet = build_method("enaet", "tiny", 10)
    enaet.training_step(_batch(tiny_bundle), StepInfo(0, 0, 0.5, 10))
    assert {r for _, r in ranges} == {(0.8, 1.2)}
    with pytest.raises(ValueError, match="affine_scale_range"):
        build_method("aet", "tiny", 10, affine_scale_range=(1.1, 1.3))
