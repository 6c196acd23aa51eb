"""SupCon: supervised contrastive learning on the few labelled images (Khosla et al., NeurIPS 2020).

Algorithm (the paper's stage 1, then stage 2 by the engine's evaluation)::

    for each batch of labelled images x with labels y:
        v1, v2 = two contrastive augmentations of x
        z = normalise(head(backbone([v1; v2])))         # [2N, 128] on the unit sphere
        loss = L_out^sup(z, y, tau)                     # every same-class embedding is a positive
    stage 2: freeze the backbone, fit a linear classifier on the labelled features

The second stage is the engine's default evaluation for a method without a classifier: a linear
probe on frozen backbone features of the labelled subset (``evaluate.linear_probe``). The
projection head is thrown away after training, as in the paper.

Conventions, from HobbitLong/SupContrast (``main_supcon.py``, ``networks/resnet_big.py``,
``losses.py``):

* head ``Linear(D, D) → ReLU → Linear(D, 128)`` **without** batch norm, output L2-normalised;
* both views go through the network in one concatenated batch;
* temperature: the CIFAR commands use ``--temp 0.1`` for SupCon (and 0.5 for their SimCLR
  baseline); we use **τ = 0.1** with ``base_temperature = 0.07``, the loss class's default, so
  the loss is multiplied by τ/τ_base ≈ 1.43 exactly as in that code (the factor only rescales
  the gradient, i.e. the learning rate);
* SGD with momentum 0.9, weight decay 1e-4, lr 0.5 for a batch of 1024 (``default_lr`` 0.125 is
  that rate for a batch of 256; the engine scales it linearly with the batch size).

Difference from the paper: the paper trains on *all* labels of CIFAR-10; in this course SupCon
sees only the few labelled images (``data_sources = ("labeled",)``), which with 250 labels
means every batch repeats images. Option ``use_unlabeled=True`` also draws an equal-sized batch
of unlabelled images; each gets a label of its own (−1, −2, …), so its only positive is its
other view (SimCLR's instance discrimination) while it is a negative for everything else.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ssl_course import distributed
from ssl_course.data.augment import contrastive_augment
from ssl_course.losses.contrastive import supcon
from ssl_course.models import mlp_head

from . import register
from .base import Batch, Method, StepInfo, StepOutput


@register
class SupCon(Method):
    """Backbone + MLP projection head trained with the SupCon loss on two views of labelled images."""

    name = "supcon"
    data_sources = ("labeled",)
    default_lr = 0.125            # SupContrast: 0.5 at batch 1024
    default_weight_decay = 1e-4
    default_nesterov = False      # SupContrast's set_optimizer: SGD with momentum, no Nesterov
    default_batch_size = 256

    def __init__(self, backbone: nn.Module, num_classes: int, temperature: float = 0.1,
                 base_temperature: float = 0.07, proj_dim: int = 128, use_unlabeled: bool = False) -> None:
        super().__init__(backbone, num_classes)
        if not temperature > 0 or not base_temperature > 0:
            raise ValueError(f"temperature and base_temperature must be > 0, got {temperature}, {base_temperature}")
        if not isinstance(proj_dim, int) or proj_dim < 1:
            raise ValueError(f"proj_dim must be a positive int, got {proj_dim!r}")
        if not isinstance(use_unlabeled, bool):
            raise ValueError(f"use_unlabeled must be True or False, got {use_unlabeled!r}")
        feature_dim = backbone.feature_dim
        self.head = mlp_head(feature_dim, feature_dim, proj_dim, num_layers=2, batch_norm=False)
        self.temperature = float(temperature)
        self.base_temperature = float(base_temperature)
        self.proj_dim = proj_dim
        self.use_unlabeled = use_unlabeled
        if use_unlabeled:
            # The engine reads these per instance: a labelled batch plus as many unlabelled images.
            self.data_sources = ("labeled", "unlabeled")
            self.default_unlabeled_ratio = 1

    def project(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised float images → unit-length projections ``[B, proj_dim]`` (float32)."""
        z = self.head(self.backbone(images))
        with torch.autocast(images.device.type, enabled=False):
            return F.normalize(z.float(), dim=1)

    def training_step(self, batch: Batch, step: StepInfo) -> StepOutput:
        images, labels = batch.labeled_images, batch.labels
        if self.use_unlabeled:
            # 0. (option) unlabelled images join as anchors whose only positive is their other view:
            #    a negative label of their own can never match a class or another image.
            count = batch.unlabeled_images.shape[0]
            first = distributed.rank() * count  # unique across processes, too
            own = -1 - torch.arange(first, first + count, device=labels.device, dtype=labels.dtype)
            images = torch.cat([images, batch.unlabeled_images])
            labels = torch.cat([labels, own])
        # 1. two independent contrastive views of every image
        view1 = contrastive_augment(images, generator=batch.generator)
        view2 = contrastive_augment(images, generator=batch.generator)
        # 2. one forward pass over both views (batch norm sees both), projections on the unit sphere
        z = self.project(torch.cat([view1, view2]))
        features = torch.stack(z.chunk(2), dim=1)                      # [N, 2, proj_dim]
        # Under torchrun, every process contrasts against the images of all processes.
        features = distributed.gather_with_grad(features.float())
        labels = distributed.gather(labels)
        # 3. L_out^sup: positives are the other view and every image of the same class. Computed in
        #    float32 outside autocast: similarities / 0.1 need more than bf16's three digits.
        with torch.autocast(images.device.type, enabled=False):
            loss = supcon(features, labels, temperature=self.temperature, base_temperature=self.base_temperature)
        with torch.no_grad():
            same = labels[:, None] == labels[None, :]
            positives = 2 * same.sum(1).float() - 1                    # per anchor, among the 2N-1 others
        return StepOutput(loss, {"positives_per_anchor": positives.mean()})
