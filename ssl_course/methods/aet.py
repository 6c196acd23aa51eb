r"""AET: learn features by predicting the transformation between an image and its transformed copy.

Zhang, Qi, Wang and Luo, "AET vs. AED: Unsupervised Representation Learning by Auto-Encoding
Transformations rather than Data", CVPR 2019. Transformations and their parameter vectors:
:mod:`ssl_course.data.transforms_params`; loss: :func:`ssl_course.losses.aet_loss`.

A decoder sees the representation :math:`z = E(x)` of an image and :math:`\tilde z = E(t(x))` of
its transformed copy and must output the parameters :math:`\theta_t`. It can only succeed if the
representation keeps how the image is laid out (where things are, which way up, how large), so
the encoder is pushed to be *equivariant* to the transformations rather than invariant to them, as
contrastive methods are.

Algorithm (one step, ``F`` families, default projective and affine)::

    1. x = weak_augment(images)                                  # [B,3,H,W], crop + flip
    2. for each family k: θ_k ~ p_k,  x_k = t_k(x; θ_k)            # θ_k [B, P_k] in [-1, 1]
    3. z, z_1..z_F = backbone([x, x_1, ..., x_F])                 # one pass, [(1+F)B, D]
    4. θ̂_k = tanh(decoder_k([z, z_k]))                            # [B, P_k]
    5. loss = Σ_k w_k · MSE(θ̂_k, θ_k)                             # aet_ensemble_loss

Conventions and simplifications (see ``docs/RECIPES.md``, section ``aet``):

* AET's CIFAR code (``maple-research-lab/AET`` ``cifar/affine/NetworkInNetwork.py``,
  ``Regressor``) pools each image's last feature map and regresses ``tanh(fc(cat(z, z~)))`` with one
  linear layer (En-AET's decoders add convolutional blocks on feature maps). Here the decoder is a
  2-layer MLP on the concatenated *pooled* features, followed by the same ``tanh``: the pooled
  features are what kNN and the probe evaluate, so they are the ones that must keep the geometry.
* The paper trains one model per family (AET-affine, AET-project); here the families are summed
  with weights (default 1 each), which is En-AET's ensemble restricted to two families.
* Every family's copy and the original go through the backbone in one batch (shared batch-norm
  statistics); the official code runs a forward pass per family.
* The transformations follow AET's own CIFAR code (``maple-research-lab/AET``,
  ``cifar/affine/main.py`` and ``dataset.py``, ``cifar/projective/main.py``): affine scale
  0.7-1.3 (``affine_scale_range``; En-AET uses 0.8-1.2), projective scale 0.8-1.2 with corners
  moved by up to 4 px, bilinear warps with a mid-grey fill, torchvision's shear.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ssl_course.data.augment import denormalize, normalize, weak_augment
from ssl_course.data.transforms_params import (
    AET_AFFINE_SCALE_RANGE,
    FAMILIES,
    SCALE_RANGE,
    num_parameters,
    random_transformation,
)
from ssl_course.losses.transformation import aet_ensemble_loss, aet_loss
from ssl_course.models.heads import mlp_head

from . import register
from .base import Batch, Method, StepInfo, StepOutput


class TransformationDecoder(nn.Module):
    """``D(z, z~) -> θ̂ in (-1, 1)^P``: an MLP on the concatenated representations, then ``tanh``."""

    def __init__(self, feature_dim: int, num_params: int, hidden_dim: int = 256) -> None:
        super().__init__()
        self.mlp = mlp_head(2 * feature_dim, hidden_dim, num_params)

    def forward(self, z: torch.Tensor, z_transformed: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.mlp(torch.cat([z, z_transformed], dim=1)))


def parse_families(families: str | Sequence[str]) -> tuple[str, ...]:
    """``"projective,affine"`` or ``("projective", "affine")`` → a checked tuple of family names."""
    names = tuple(f.strip() for f in families.split(",")) if isinstance(families, str) else tuple(families)
    unknown = [name for name in names if name not in FAMILIES]
    if not names or unknown or len(set(names)) != len(names):
        raise ValueError(f"families must be distinct names from {sorted(FAMILIES)} (a comma-separated string "
                         f"works on the command line); got {families!r}")
    return names


def transformed_copies(views: torch.Tensor, families: Sequence[str], generator: torch.Generator,
                       scale_range: Sequence[float] = SCALE_RANGE) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """One random transformation per family of every normalised view ``[B,3,H,W]``:
    ``(normalised copies, one [B,3,H,W] per family; their parameters, one [B, P_k] per family)``.
    ``scale_range``: the affine / similarity scales (En-AET's 0.8-1.2 by default)."""
    images01 = denormalize(views).clamp_(0, 1)
    copies, params = [], []
    for name in families:
        transformed, theta = random_transformation(name, images01, generator, tuple(scale_range))
        copies.append(normalize(transformed))
        params.append(theta)
    return copies, params


def decoder_dict(feature_dim: int, families: Sequence[str], hidden_dim: int) -> nn.ModuleDict:
    return nn.ModuleDict({name: TransformationDecoder(feature_dim, num_parameters(name), hidden_dim)
                          for name in families})


@register
class AET(Method):
    """Backbone + one transformation decoder per family, trained on every training image (no labels)."""

    name = "aet"
    data_sources = ("all",)
    default_optimizer = "sgd"
    default_lr = 0.1            # AET's CIFAR setting: SGD, lr 0.1, momentum 0.9, wd 5e-4
    default_weight_decay = 5e-4
    default_batch_size = 128    # original images; each family adds as many transformed copies

    def __init__(self, backbone: nn.Module, num_classes: int, families: str | Sequence[str] = ("projective", "affine"),
                 weights: Sequence[float] | None = None, hidden_dim: int = 256,
                 affine_scale_range: Sequence[float] = AET_AFFINE_SCALE_RANGE) -> None:
        super().__init__(backbone, num_classes)
        self.families = parse_families(families)
        self.weights = weights   # as given (None: 1 for every family), so hparams() records the input
        family_weights = tuple(float(w) for w in weights) if weights is not None else (1.0,) * len(self.families)
        if len(family_weights) != len(self.families) or any(w < 0 for w in family_weights):
            raise ValueError(f"weights must give one number >= 0 per family {self.families}; got {weights}")
        if not isinstance(hidden_dim, int) or hidden_dim < 1:
            raise ValueError(f"hidden_dim must be a positive int, got {hidden_dim!r}")
        if len(affine_scale_range) != 2 or not 0 < affine_scale_range[0] <= 1 <= affine_scale_range[1]:
            raise ValueError(f"affine_scale_range must be (low, high) with 0 < low <= 1 <= high; got "
                             f"{affine_scale_range!r}. AET's CIFAR code uses {AET_AFFINE_SCALE_RANGE}.")
        self.family_weights, self.hidden_dim = family_weights, hidden_dim
        self.affine_scale_range = tuple(float(v) for v in affine_scale_range)
        self.decoders = decoder_dict(backbone.feature_dim, self.families, hidden_dim)

    def training_step(self, batch: Batch, step: StepInfo) -> StepOutput:
        # 1. a weak view (crop + flip) of each image
        views = weak_augment(batch.unlabeled_images, generator=batch.generator)
        # 2. one random transformation per family, with its parameters θ_k [B, P_k]
        copies, params = transformed_copies(views, self.families, batch.generator, self.affine_scale_range)
        # 3. one backbone pass over the views and all their copies
        features = self.backbone(torch.cat([views] + copies)).split(views.shape[0])     # (1+F) × [B, D]
        # 4. each family's decoder reads (z, z_k)
        predicted = [self.decoders[name](features[0], z_k) for name, z_k in zip(self.families, features[1:])]
        # 5. weighted sum of the families' mean squared errors, in float32 like the targets θ_k
        #    (under autocast the decoders output bfloat16/float16)
        loss, per_family = aet_ensemble_loss([p.float() for p in predicted], params, self.family_weights)
        logs = {f"aet_{name}": per_family[k].detach() for k, name in enumerate(self.families)}
        return StepOutput(loss, logs)

    @torch.no_grad()
    def transformation_error(self, images: torch.Tensor, seed: int = 0) -> dict[str, float]:
        """Mean squared parameter error per family on ``images`` (uint8), with fixed random
        transformations (``seed``) and no crop: a held-out measure of the pretext task."""
        return transformation_error(self.backbone, self.decoders, images, seed, self.affine_scale_range)


@torch.no_grad()
def transformation_error(backbone: nn.Module, decoders: nn.ModuleDict, images: torch.Tensor,
                         seed: int = 0, scale_range: Sequence[float] = SCALE_RANGE) -> dict[str, float]:
    """Per family, ``MSE(θ̂, θ)`` of ``decoders`` on ``backbone``'s features of ``images`` and their copies."""
    generator = torch.Generator(device=images.device).manual_seed(seed)
    views = normalize(images)
    copies, params = transformed_copies(views, list(decoders), generator, scale_range)
    z = backbone(views)
    return {name: aet_loss(decoders[name](z, backbone(copy)).float(), theta).item()
            for name, copy, theta in zip(decoders, copies, params)}
