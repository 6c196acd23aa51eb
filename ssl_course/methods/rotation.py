"""RotNet: learn features by predicting how much an image was rotated (Gidaris et al., ICLR 2018).

Every unlabelled image is shown at 0°, 90°, 180° and 270°, and a linear head on the backbone must
say which. To recognise that a cat is upside down, the network has to know where a cat's head,
legs and the ground usually are, so the features it learns carry object information without a
single label.

Algorithm (one step)::

    1. x   = weak_augment(images)                 # crop + flip, *before* rotating (see below)
    2. x_r, y_r = rotate_batch(x)                 # [4B,3,H,W], labels k in {0,1,2,3} (k·90°)
    3. logits = rotation_head(backbone(x_r))      # [4B, 4]
    4. loss = cross_entropy(logits, y_r)          # rotation_loss

Conventions:

* All four rotations of an image are in the same batch, as in the paper (the authors found
  this better than one random rotation per image); the engine's ``batch_size`` counts the
  original images, so the network sees ``4 × batch_size`` images per step.
* The flip is applied before the rotation. Flipping *after* a 90° rotation would turn it into
  a flipped 270° rotation, and the label would depend on an orientation the network cannot see.
* Optimiser as RotNet's CIFAR config (``config/CIFAR10_RotNet_NIN4blocks.py`` and
  ``algorithms/Algorithm.py`` in gidariss/FeatureLearningRotNet): SGD, lr 0.1 at batch 128,
  momentum 0.9, Nesterov, weight decay 5e-4 on every parameter (biases and batch-norm scales
  too). The official step schedule (×0.2 at epochs 60, 120, 160 of 200) is replaced by the
  engine's warm-up + cosine.
* Evaluation (kNN, linear probe) uses the pooled backbone features. The paper notes that the last
  layers specialise on the pretext task and that middle blocks transfer best; with the course's
  small backbone the pooled output is the only feature the engine evaluates.
"""
from __future__ import annotations

import torch
from torch import nn

from ssl_course.data.augment import weak_augment
from ssl_course.losses.pretext import rotate_batch, rotation_loss

from . import register
from .base import Batch, Method, StepInfo, StepOutput

NUM_ROTATIONS = 4


@register
class Rotation(Method):
    """Backbone + linear 4-way rotation classifier, trained on every training image (no labels)."""

    name = "rotation"
    data_sources = ("all",)
    default_optimizer = "sgd"
    default_lr = 0.1            # RotNet's CIFAR setting: SGD, lr 0.1, momentum 0.9, wd 5e-4, batch 128
    default_weight_decay = 5e-4
    default_nesterov = True     # RotNet's CIFAR config sets nesterov=True
    default_decay_biases_and_norms = True   # RotNet's SGD decays every parameter, biases and BN included
    default_batch_size = 128    # original images; 4 × 128 = 512 rotated images per step

    def __init__(self, backbone: nn.Module, num_classes: int) -> None:
        super().__init__(backbone, num_classes)
        self.rotation_head = nn.Linear(backbone.feature_dim, NUM_ROTATIONS)

    def training_step(self, batch: Batch, step: StepInfo) -> StepOutput:
        # 1. one weak view (crop + flip) of each image; the flip must come before the rotation
        views = weak_augment(batch.unlabeled_images, generator=batch.generator)
        # 2. the four rotations of every view, rotation-major, with labels k = 0..3 (k · 90°)
        rotated, rotation_labels = rotate_batch(views)
        # 3. backbone + linear rotation head
        logits = self.rotation_head(self.backbone(rotated))
        # 4. four-way cross-entropy
        loss = rotation_loss(logits, rotation_labels)
        accuracy = (logits.detach().argmax(1) == rotation_labels).float().mean()
        return StepOutput(loss, {"rotation_acc": accuracy})

    @torch.no_grad()
    def rotation_accuracy(self, images: torch.Tensor) -> float:
        """Share of the four rotations of normalised ``images`` whose angle the head gets right."""
        rotated, labels = rotate_batch(images)
        logits = self.rotation_head(self.backbone(rotated))
        return (logits.argmax(1) == labels).float().mean().item()
