r"""Exemplar-CNN: every training image is its own class (Dosovitskiy et al., NeurIPS 2014).

Take an image, distort it heavily (crop, rescale, flip, colour changes) and call all the results
one *surrogate class*. A classifier that must name which image a distorted view came from, out of
:math:`N` images, has to keep what survives the distortions (object parts, shapes, textures) and
ignore what the distortions change (position, scale, colour), without a single label.

Algorithm (one step)::

    1. x = contrastive_augment(images)          # one heavy random view per image   [B,3,H,W]
    2. logits = exemplar_head(backbone(x))      # scores over N surrogate classes   [B, N]
    3. loss = cross_entropy(logits, index)      # exemplar_loss; class = image index in the training set

Design at CIFAR scale (see ``docs/RECIPES.md``):

* **One class per training image.** The paper sampled :math:`N` seed patches from STL-10 and
  found that more surrogate classes help up to about 8000 (its Fig. 3), where classes start to
  collide (near-identical patches in different classes). A CIFAR-10 training set has 50 000
  images; a 50 000-way linear layer on a 64-512-d feature is 3-26 M weights and one
  :math:`[B, 50\,000]` matmul per step, affordable on a laptop. ``num_exemplars`` (default 50 000)
  is the number of classes; build the method with ``num_exemplars = len(training set)`` when
  training on a subset (the paper's 8000-class setting is ``--train-subset 8000`` with
  ``num_exemplars=8000``). Extra rows are classes no image belongs to: harmless, but wasted work.
* **Fresh transformations every step** instead of the paper's fixed set of :math:`K` transformed
  samples per class: the surrogate data set is infinite, as in every later instance-discrimination
  method.
* The problem the paper could not solve at ImageNet scale, and why the field moved on: each weight
  row :math:`w_i` is updated only when image :math:`i` is in the batch (once per epoch), and the
  softmax costs :math:`O(N)` per view. Instance discrimination (Wu et al. 2018) keeps a memory of
  embeddings instead of weight rows and estimates the softmax with NCE; SimCLR takes the other
  views of the batch as the classes (notebooks 01 and 04).

Evaluation uses the pooled backbone features; the classifier is thrown away.
"""
from __future__ import annotations

import torch
from torch import nn

from ssl_course.data.augment import contrastive_augment
from ssl_course.losses import exemplar_loss
from ssl_course.models import mlp_head

from . import register
from .base import Batch, Method, StepInfo, StepOutput

CIFAR10_TRAIN_SIZE = 50_000


@register
class Exemplar(Method):
    """Backbone + linear classifier over ``num_exemplars`` surrogate classes (one per training image)."""

    name = "exemplar"
    data_sources = ("all",)          # every training image is a class; labels unused
    default_optimizer = "sgd"
    default_lr = 0.1                 # per 256 images (the engine scales it)
    default_weight_decay = 5e-4
    default_batch_size = 256

    def __init__(self, backbone: nn.Module, num_classes: int, num_exemplars: int = CIFAR10_TRAIN_SIZE,
                 hidden_dim: int = 512) -> None:
        super().__init__(backbone, num_classes)
        if isinstance(num_exemplars, bool) or not isinstance(num_exemplars, int) or num_exemplars < 2:
            raise ValueError(f"num_exemplars must be an int >= 2 (one class per training image), got {num_exemplars!r}")
        if isinstance(hidden_dim, bool) or not isinstance(hidden_dim, int) or hidden_dim < 0:
            raise ValueError(f"hidden_dim must be an int >= 0 (0: a linear classifier), got {hidden_dim!r}")
        self.num_exemplars, self.hidden_dim = num_exemplars, hidden_dim
        # The paper's network ends with a 512-unit fully connected layer before the N-way softmax;
        # the features evaluated are the backbone's, below that layer.
        self.exemplar_head = (mlp_head(backbone.feature_dim, hidden_dim, num_exemplars, num_layers=2)
                              if hidden_dim else nn.Linear(backbone.feature_dim, num_exemplars))

    def training_step(self, batch: Batch, step: StepInfo) -> StepOutput:
        if batch.unlabeled_index is None:
            raise ValueError("Exemplar needs batch.unlabeled_index: the index of each image is its class")
        # 1. one heavy random view of every image (a fresh member of its surrogate class)
        views = contrastive_augment(batch.unlabeled_images, generator=batch.generator)
        # 2. scores over all surrogate classes, in float32 (a softmax over 50 000 classes)
        logits = self.exemplar_head(self.backbone(views)).float()            # [B, N]
        # 3. the class of a view is the index of its image in the training set
        loss = exemplar_loss(logits, batch.unlabeled_index)
        accuracy = (logits.detach().argmax(1) == batch.unlabeled_index).float().mean()
        return StepOutput(loss, {"exemplar_acc": accuracy})

    @torch.no_grad()
    def surrogate_accuracy(self, images: torch.Tensor, index: torch.Tensor,
                           generator: torch.Generator | None = None) -> float:
        """Share of fresh random views of uint8 training ``images`` assigned to their own image ``index``."""
        views = contrastive_augment(images, generator=generator)
        return (self.exemplar_head(self.backbone(views)).argmax(1) == index.to(views.device)).float().mean().item()

