r"""En-AET: MixMatch + an ensemble of AET losses + consistency under transformations.

Wang, Kihara, Luo and Qi, "EnAET: A Self-Trained Framework for Semi-Supervised and Supervised
Learning with Ensemble Transformations", IEEE TIP 2021 (arXiv 1911.09265). Official code:
``maple-research-lab/EnAET`` (``AET_MultiT/train_AETall_fast.py`` for the step,
``ops/argparser.py`` for the weights, ``MixMatch/SemiLoss.py`` for MixMatch's loss).

Algorithm (one step; the official step in the same order)::

    1-5. MixMatch (ssl_course.methods.mixmatch): loss L_MM, guessed labels q [B_u, C] of the
         unlabelled images, and their first weak view u                      # u [B_u,3,H,W]
    6.   for each family k (projective, affine, similarity, Euclidean, ccbs):
             u_k = t_k(u; θ_k)                                               # θ_k [B_u, P_k]
    7.   z, z_1..z_F = backbone([u, u_1..u_F])      # one pass
         θ̂_k = decoder_k(z, z_k)                   # AET ensemble:  L_AET = Σ_k w_k(t) MSE(θ̂_k, θ_k)
         p_k = classifier(z_k)                     # consistency:   L_KL = KL(q || softmax(p_k)), mean over k
    8.   loss = L_MM + L_AET + λ_KL · L_KL

Weights (official defaults, ``ops/argparser.py``): ``w = (1.0, 0.75, 0.5, 0.2, 0.05)`` for
projective, affine, similarity, Euclidean and ccbs (``max_lambda`` … ``max_lambda4``), each ramped
linearly from 0: the official weight is ``min(lambda_k · epoch / 1024, max_lambda_k)`` with
``lambda_k = 10 · max_lambda_k`` over a 1024-epoch run, i.e. full weight after the first **tenth**
of training (``aet_rampup_fraction = 0.1`` here). ``λ_KL = 1`` (``KL_Lambda``), not ramped. The
KL term uses the classifier's prediction on each transformed copy against the sharpened guess of
the untransformed image, ``F.kl_div(log_softmax, q, 'batchmean')``, averaged over the families.

Ablation switches: ``aet_weight`` multiplies every family weight (0 turns the AET ensemble off),
``kl_weight`` is λ_KL (0 turns the consistency off); with both 0 this is MixMatch, step for step.

Simplifications (also in ``docs/RECIPES.md``, section ``enaet``):

* one optimiser (MixMatch's AdamW) for the backbone, classifier and decoders; the official code
  trains each decoder with its own SGD (lr 0.1, Nesterov) and the classifier with Adam;
* the decoders are :class:`ssl_course.methods.aet.TransformationDecoder` MLPs on pooled features
  (official: wide-ResNet blocks on feature maps with an attention module);
* the untransformed view and all copies share one backbone pass (official: one pass per family);
* MixMatch's λ_u ramp is the course's (see ``methods/mixmatch.py``); the official En-AET ramps it
  over 16 of 1024 epochs. The official ``mix_mode=1`` (Cutout copies in MixUp) is not reproduced.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ssl_course.data.transforms_params import FAMILIES
from ssl_course.losses.transformation import (
    aet_ensemble_loss,
    transformation_consistency_loss,
)

from . import register
from .aet import decoder_dict, parse_families, transformation_error, transformed_copies
from .base import Batch, StepInfo, StepOutput
from .mixmatch import MixMatch

#: The official per-family weights (``max_lambda`` … ``max_lambda4`` of ``ops/argparser.py``).
OFFICIAL_WEIGHTS: dict[str, float] = {"projective": 1.0, "affine": 0.75, "similarity": 0.5, "euclidean": 0.2,
                                      "ccbs": 0.05}


@register
class EnAET(MixMatch):
    """MixMatch's classifier + one transformation decoder per family, with the KL consistency."""

    name = "enaet"

    def __init__(self, backbone: nn.Module, num_classes: int, families: str | Sequence[str] = tuple(FAMILIES),
                 aet_weight: float = 1.0, kl_weight: float = 1.0, aet_rampup_fraction: float = 0.1,
                 hidden_dim: int = 256, T: float = 0.5, K: int = 2, alpha: float = 0.75, lambda_u: float = 75.0,
                 rampup_fraction: float = 1 / 16, rampup_images: int = 1024 * 1024, ema_decay: float = 0.999,
                 bn_momentum: float | None = None, kl_rampup: bool = True) -> None:
        super().__init__(backbone, num_classes, T=T, K=K, alpha=alpha, lambda_u=lambda_u,
                         rampup_fraction=rampup_fraction, rampup_images=rampup_images, ema_decay=ema_decay,
                         bn_momentum=bn_momentum)
        self.families = parse_families(families)
        for name, value in (("aet_weight", aet_weight), ("kl_weight", kl_weight)):
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number >= 0 (0 switches the term off), got {value!r}")
        if not 0.0 <= aet_rampup_fraction <= 1.0:
            raise ValueError(f"aet_rampup_fraction must be in [0, 1], got {aet_rampup_fraction}")
        self.aet_weight, self.kl_weight = float(aet_weight), float(kl_weight)
        self.kl_rampup = bool(kl_rampup)
        self.aet_rampup_fraction, self.hidden_dim = float(aet_rampup_fraction), hidden_dim
        self.decoders = decoder_dict(backbone.feature_dim, self.families, hidden_dim)

    def aet_weights_at(self, progress: float) -> list[float]:
        """The families' weights after the linear ramp (full after ``aet_rampup_fraction`` of the budget)."""
        ramp = min(1.0, max(0.0, progress) / self.aet_rampup_fraction) if self.aet_rampup_fraction > 0 else 1.0
        return [self.aet_weight * OFFICIAL_WEIGHTS[name] * ramp for name in self.families]

    def kl_weight_at(self, lambda_u: float) -> float:
        """λ_KL on MixMatch's λ_u ramp (``kl_rampup=True``): ``kl_weight · λ_u(t) / λ_u``; else ``kl_weight``.

        The KL term pulls every transformed copy towards the guess q of an untrained classifier. Unramped
        (the official setting), short runs collapse: after 130 steps on CIFAR-10 both the live and the EMA
        classifier predicted one class for 99.9 % of validation images (``docs/RECIPES.md``, enaet).
        """
        if not self.kl_rampup or self.lambda_u == 0:
            return self.kl_weight
        return self.kl_weight * lambda_u / self.lambda_u

    def training_step(self, batch: Batch, step: StepInfo) -> StepOutput:
        # 1-5. MixMatch: its loss, the guessed labels q and the first weak view u of the unlabelled images
        output, q, u = self.mixmatch_step(batch, step)
        if self.aet_weight == 0 and self.kl_weight == 0:
            return output                                    # MixMatch alone (ablation)
        # 6. one random transformation per family of u, with its parameters θ_k
        copies, params = transformed_copies(u, self.families, batch.generator)
        # 7. one backbone pass: z for u, z_k for its copies
        features = self.backbone(torch.cat([u] + copies)).split(u.shape[0])             # (1+F) × [B_u, D]
        loss, logs = output.loss, dict(output.logs)
        if self.aet_weight > 0:
            predicted = [self.decoders[name](features[0], z_k).float()      # float32 like the targets θ_k
                         for name, z_k in zip(self.families, features[1:])]
            weights = self.aet_weights_at(step.progress)
            loss_aet, per_family = aet_ensemble_loss(predicted, params, weights)
            loss = loss + loss_aet
            logs.update({f"aet_{name}": per_family[k].detach() for k, name in enumerate(self.families)})
            logs["aet_weight_total"] = sum(weights)
        if self.kl_weight > 0:
            copy_logits = self.classifier(torch.cat(features[1:])).float()               # [F·B_u, C]
            loss_kl = transformation_consistency_loss(copy_logits, q.repeat(len(self.families), 1))
            kl_weight = self.kl_weight_at(float(logs["lambda_u"]))
            loss = loss + kl_weight * loss_kl
            logs["loss_kl"] = loss_kl.detach()
            logs["kl_weight"] = kl_weight
        return StepOutput(loss, logs)

    @torch.no_grad()
    def transformation_error(self, images: torch.Tensor, seed: int = 0) -> dict[str, float]:
        """Mean squared parameter error per family on ``images`` (uint8); see :class:`~ssl_course.methods.aet.AET`."""
        return transformation_error(self.backbone, self.decoders, images, seed)

