r"""SimCLR: learn features by telling two augmented views of an image apart from all other views.

Chen, Kornblith, Norouzi and Hinton, "A Simple Framework for Contrastive Learning of Visual
Representations", ICML 2020 (official code: google-research/simclr).

The algorithm, for a batch of :math:`N` images:

1. draw two random views of every image with the contrastive augmentation (crop, flip, colour
   jitter, grayscale);
2. encode all :math:`2N` views with the backbone :math:`f` and the projection head :math:`g`;
3. NT-Xent: for every view, its partner view is the positive and the other :math:`2N-2` views of
   the batch are the negatives (:func:`ssl_course.losses.nt_xent`).

After training the head is thrown away: :meth:`SimCLR.embed` returns the backbone features
:math:`h = f(x)`, which the paper found to transfer better than :math:`z = g(h)`.

Batch norm: SimCLR trains on many accelerators and aggregates BN statistics over all of them
("global BN"), because per-device BN would let the two views of an image, which sit on the same
device, recognise each other by their shared batch statistics. On one device we pass both views
through the network as one batch of :math:`2N`, which *is* global BN.

Conventions: :func:`~ssl_course.losses.nt_xent` averages over the :math:`2N` anchors; the TF code
reports twice that value (the sum of the two directions' means). The default temperature is the
paper's CIFAR-10 setting, 0.5.

Recipe, as the official CIFAR-10 command (google-research/simclr ``README.md``, ``run.py``,
``model_util.py``, ``data_util.py``): LARS (momentum 0.9, no Nesterov, trust coefficient 0.001,
biases and batch-norm parameters excluded from decay and adaptation), lr 1.0 per 256 images
scaled linearly, weight decay 1e-6, warm-up then cosine decay; random resized crops of 8-100 %
of the area (``CROP_SCALE``), colour-jitter strength 0.5, no blur; projection head
``model_util.projection_head``: hidden layers as wide as the backbone's features, batch norm on
every layer including the output one, no bias and no ReLU on the output. The official head has 3
layers in SimCLR v2's code (``num_proj_layers``), 2 in v1's; we keep v1's 2. Every other
difference is listed in ``docs/RECIPES.md``.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ssl_course import distributed
from ssl_course.data.augment import contrastive_augment
from ssl_course.losses import nt_xent
from ssl_course.models import mlp_head

from . import register
from .base import Batch, Method, StepInfo, StepOutput


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _positive_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


#: Random resized crop area range of SimCLR's ``data_util.crop_and_resize`` (``area_range``).
CROP_SCALE = (0.08, 1.0)


@register
class SimCLR(Method):
    """Backbone + 2-layer MLP projection head trained with NT-Xent on two views of every image.

    Args:
        backbone: any course backbone (exposes ``feature_dim``).
        num_classes: number of classes (only used by evaluation; SimCLR never reads a label).
        temperature: :math:`\\tau` of NT-Xent (0.5, the paper's CIFAR-10 value).
        proj_hidden_dim: width of the head's hidden layer (``None``: the backbone's feature size,
            as ``model_util.projection_head``).
        proj_dim: output size of the head, the space where the loss is computed (128); batch norm
            follows the output layer, as in the official head.
    """

    name = "simclr"
    data_sources = ("all",)          # self-supervised on every training image, labels unused
    default_optimizer = "lars"       # official: LARS, momentum 0.9, no Nesterov
    default_nesterov = False
    default_lr = 1.0                 # per 256 images (official CIFAR-10 command: 1.0, linear scaling)
    default_weight_decay = 1e-6      # official CIFAR-10 command
    default_batch_size = 256         # official 512; 256 fits a laptop GPU

    def __init__(self, backbone: nn.Module, num_classes: int, temperature: float = 0.5,
                 proj_hidden_dim: int | None = None, proj_dim: int = 128) -> None:
        super().__init__(backbone, num_classes)
        self.temperature = _positive_float("temperature", temperature)
        self.proj_hidden_dim = None if proj_hidden_dim is None else _positive_int("proj_hidden_dim", proj_hidden_dim)
        self.proj_dim = _positive_int("proj_dim", proj_dim)
        hidden = backbone.feature_dim if proj_hidden_dim is None else self.proj_hidden_dim
        self.projector = mlp_head(backbone.feature_dim, hidden, self.proj_dim, num_layers=2, last_batch_norm=True)

    def project(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised float images ``[B,3,H,W]`` → projections ``z = g(f(x))`` ``[B, proj_dim]``."""
        return self.projector(self.backbone(images))

    def training_step(self, batch: Batch, step: StepInfo) -> StepOutput:
        images = batch.unlabeled_images
        if images is None or images.shape[0] < 2:
            raise ValueError("SimCLR needs a batch of at least 2 images in batch.unlabeled_images "
                             "(its negatives are the other images of the batch)")
        # 1. two independent random views of every image
        view1 = contrastive_augment(images, generator=batch.generator, crop_scale=CROP_SCALE)
        view2 = contrastive_augment(images, generator=batch.generator, crop_scale=CROP_SCALE)
        # 2. one forward pass over all 2N views (BN statistics over both views: SimCLR's global BN)
        z1, z2 = self.project(torch.cat([view1, view2])).chunk(2)
        # 3. NT-Xent in float32, outside autocast (similarities / 0.5 need more than bf16's 3 digits)
        with torch.autocast(images.device.type, enabled=False):
            # under torchrun, negatives come from the images of every process (gathered with gradient)
            z1, z2 = distributed.gather_with_grad(z1.float()), distributed.gather_with_grad(z2.float())
            loss = nt_xent(z1, z2, self.temperature)
            accuracy = _positive_is_top1(z1.detach(), z2.detach())
        return StepOutput(loss, {"pos_top1": accuracy})


@torch.no_grad()
def _positive_is_top1(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Fraction of the 2N anchors whose most similar other view is their own positive."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    similarity = (z @ z.T).fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return (similarity.argmax(1) == target).float().mean()
