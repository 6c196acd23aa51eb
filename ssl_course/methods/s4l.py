r"""S4L-Rotation (Zhai et al., ICCV 2019): supervised learning plus rotation prediction as an auxiliary task.

"Self-supervised semi-supervised learning": one backbone, two linear heads. The class head learns
from the few labels; the rotation head predicts which of 0°, 90°, 180°, 270° an image was rotated
by, a task that needs no labels and therefore uses the labelled *and* the unlabelled images.
Learning to tell which way is up forces the features to encode object shape and orientation,
which the class head then reuses.

Algorithm box (per step):

1. a weak view (pad-crop + flip) of each labelled and each unlabelled image;
2. every view under the four rotations (:func:`ssl_course.losses.rotate_batch`, rotation-major:
   the first block is the upright images, so its first :math:`B_l` rows are the labelled views);
3. **one** forward pass over all :math:`4(B_l + B_u)` rotated views;
4. class cross-entropy on the upright labelled views, rotation cross-entropy on every view,
   :math:`\mathcal{L} = \mathcal{L}_{\text{class}} + w\,\mathcal{L}_{\text{rot}}` with :math:`w = 1`
   (:func:`ssl_course.losses.s4l_loss`).

Differences from ``google-research/s4l`` (``semi_supervised/rotation.py``, ImageNet): the official
code also classifies the three rotated copies of each labelled image with the unrotated label,
and averages the labelled and unlabelled rotation losses separately (the same thing when both
groups have equal size, as with the default ``unlabeled_ratio = 1``). On CIFAR the class head here
sees upright images only, so rotated copies are not forced to share a class score with the
upright one, which would fight the rotation head. S4L-MOAM's extra terms (VAT, entropy
minimisation, pseudo-label retraining) are not included.
"""
from __future__ import annotations

import torch
from torch import nn

from ssl_course.data.augment import weak_augment
from ssl_course.losses import rotate_batch, s4l_loss

from . import register
from .base import Batch, Method, StepInfo, StepOutput


@register
class S4LRotation(Method):
    """Backbone + class head + 4-way rotation head; rotation on labelled and unlabelled images."""

    name = "s4l"
    data_sources = ("labeled", "unlabeled")
    default_optimizer = "sgd"
    default_batch_size = 128                # unlabelled images per step (×4 rotations)
    default_unlabeled_ratio = 1             # as many labelled images (×4 rotations)
    default_lr = 0.1
    default_weight_decay = 5e-4
    has_classifier = True

    def __init__(self, backbone: nn.Module, num_classes: int, rotation_weight: float = 1.0) -> None:
        super().__init__(backbone, num_classes)
        if not rotation_weight >= 0:
            raise ValueError(f"rotation_weight must be >= 0, got {rotation_weight}")
        self.classifier = nn.Linear(backbone.feature_dim, num_classes)
        self.rotation_head = nn.Linear(backbone.feature_dim, 4)
        self.rotation_weight = float(rotation_weight)

    def training_step(self, batch: Batch, step: StepInfo) -> StepOutput:
        num_labeled = batch.labeled_images.shape[0]
        # 1. weak views of the labelled and the unlabelled images
        views = torch.cat([weak_augment(batch.labeled_images, generator=batch.generator),
                           weak_augment(batch.unlabeled_images, generator=batch.generator)])
        # 2. all four rotations of every view; block 0 is upright, its first rows the labelled ones
        rotated, rotation_labels = rotate_batch(views)
        # 3. one forward pass
        features = self.backbone(rotated)
        class_logits = self.classifier(features[:num_labeled]).float()
        rotation_logits = self.rotation_head(features).float()
        # 4. class CE on the upright labelled views + w · rotation CE on every view
        loss, loss_class, loss_rotation = s4l_loss(class_logits, batch.labels, rotation_logits, rotation_labels,
                                                   self.rotation_weight)
        with torch.no_grad():
            train_acc = (class_logits.argmax(1) == batch.labels).float().mean()
            rotation_acc = (rotation_logits.argmax(1) == rotation_labels).float().mean()
        return StepOutput(loss, {"loss_class": loss_class.detach(), "loss_rotation": loss_rotation.detach(),
                                 "train_acc": train_acc, "rotation_acc": rotation_acc})

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(images))

    def predict_rotation(self, images: torch.Tensor) -> torch.Tensor:
        """Rotation logits ``[B, 4]`` (0°, 90°, 180°, 270°) of normalised images."""
        return self.rotation_head(self.backbone(images))
