"""The baseline: cross-entropy on the few labelled images only, with weak augmentation.

Every later method uses the same labels plus something more (unlabelled images, a pretext task,
contrastive views). If it cannot beat this baseline under the same budget, the extra machinery
has not earned its place.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ssl_course.data.augment import weak_augment

from . import register
from .base import Batch, Method, StepInfo, StepOutput


@register
class Supervised(Method):
    """Backbone + linear classifier trained with cross-entropy on the labelled subset."""

    name = "supervised"
    data_sources = ("labeled",)
    default_lr = 0.1
    default_batch_size = 128
    has_classifier = True

    def __init__(self, backbone: nn.Module, num_classes: int, label_smoothing: float = 0.0) -> None:
        super().__init__(backbone, num_classes)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.classifier = nn.Linear(backbone.feature_dim, num_classes)
        self.label_smoothing = label_smoothing

    def training_step(self, batch: Batch, step: StepInfo) -> StepOutput:
        # 1. a weakly augmented view of each labelled image (crop + flip)
        views = weak_augment(batch.labeled_images, generator=batch.generator)
        # 2. plain cross-entropy against the true labels
        logits = self.classifier(self.backbone(views))
        loss = F.cross_entropy(logits, batch.labels, label_smoothing=self.label_smoothing)
        accuracy = (logits.detach().argmax(1) == batch.labels).float().mean()
        return StepOutput(loss, {"train_acc": accuracy})

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(images))

    def embed_and_predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(images)   # the embedding is the backbone's output: one pass for both
        return features, self.classifier(features)
