"""AET and En-AET methods: the ablation switches, the weight ramp, the parts each term trains.
(That they learn is checked in test_methods_learn.py.)"""
from __future__ import annotations

import pytest
import torch

from ssl_course.methods import Batch, StepInfo, build_method
from ssl_course.methods.enaet import OFFICIAL_WEIGHTS


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
