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


@register
class SimCLR(Method):
    """Backbone + 2-layer MLP projection head trained with NT-Xent on two views of every image.

    Args:
        backbone: any course backbone (exposes ``feature_dim``).
        num_classes: number of classes (only used by evaluation; SimCLR never reads a label).
        temperature: :math:`\\tau` of NT-Xent (0.5, the paper's CIFAR-10 value).
        proj_hidden_dim: width of the head's hidden layer (512).
        proj_dim: output size of the head, the space where the loss is computed (128).
    """

    name = "simclr"
    data_sources = ("all",)          # self-supervised on every training image, labels unused
    default_optimizer = "sgd"        # the engine's SGD uses Nesterov momentum 0.9
    default_lr = 0.3                 # per 256 images; the engine scales it by batch_size / 256
    default_weight_decay = 5e-4
    default_batch_size = 256

    def __init__(self, backbone: nn.Module, num_classes: int, temperature: float = 0.5,
                 proj_hidden_dim: int = 512, proj_dim: int = 128) -> None:
        super().__init__(backbone, num_classes)
        self.temperature = _positive_float("temperature", temperature)
        self.proj_hidden_dim = _positive_int("proj_hidden_dim", proj_hidden_dim)
        self.proj_dim = _positive_int("proj_dim", proj_dim)
        self.projector = mlp_head(backbone.feature_dim, self.proj_hidden_dim, self.proj_dim, num_layers=2)

    def project(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised float images ``[B,3,H,W]`` → projections ``z = g(f(x))`` ``[B, proj_dim]``."""
        return self.projector(self.backbone(images))

    def training_step(self, batch: Batch, step: StepInfo) -> StepOutput:
        images = batch.unlabeled_images
        if images is None or images.shape[0] < 2:
            raise ValueError("SimCLR needs a batch of at least 2 images in batch.unlabeled_images "
                             "(its negatives are the other images of the batch)")
        # 1. two independent random views of every image
        view1 = contrastive_augment(images, generator=batch.generator)
        view2 = contrastive_augment(images, generator=batch.generator)
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
