r"""S4L-Rotation (Zhai et al., ICCV 2019): supervised learning plus rotation prediction as an auxiliary task.

"Self-supervised semi-supervised learning": one backbone, two linear heads. The class head learns
from the few labels; the rotation head predicts which of 0°, 90°, 180°, 270° an image was rotated
by, a task that needs no labels and therefore uses the labelled *and* the unlabelled images.
Learning to tell which way is up forces the features to encode object shape and orientation,
which the class head then reuses.

Algorithm box (per step):

1. a weak view (pad-crop + flip) of each labelled and each unlabelled image;
2. every view under the four rotations (:func:`ssl_course.losses.rotate_batch`, rotation-major:
   block ``k`` holds every view turned by ``k·90°``, its first :math:`B_l` rows the labelled views);
3. **one** forward pass over all :math:`4(B_l + B_u)` rotated views;
4. class cross-entropy on the labelled views under all four rotations, each with the image's
   label, rotation cross-entropy on every view,
   :math:`\mathcal{L} = \mathcal{L}_{\text{class}} + w\,\mathcal{L}_{\text{rot}}` with :math:`w = 1`
   (:func:`ssl_course.losses.s4l_loss`).

Step 4 follows ``google-research/s4l`` (``semi_supervised/rotation.py``): its ``model_fn`` tiles
each label over the ``num_angles`` rotated copies and computes the class loss on all of them, so
the class head learns to name an object in any orientation while the rotation head learns which
orientation it is in. ``classify_rotations=False`` restricts the class loss to the upright views
(an ablation: the class head then never sees a turned image).

Remaining differences from the official code (ImageNet): it averages the labelled and the
unlabelled rotation losses separately (the same as our single mean when both groups have equal
size, as with the default ``unlabeled_ratio = 1``); S4L-MOAM's extra terms (VAT, entropy
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

    def __init__(self, backbone: nn.Module, num_classes: int, rotation_weight: float = 1.0,
                 classify_rotations: bool = True) -> None:
        super().__init__(backbone, num_classes)
        if not rotation_weight >= 0:
            raise ValueError(f"rotation_weight must be >= 0, got {rotation_weight}")
        if not isinstance(classify_rotations, bool):
            raise ValueError(f"classify_rotations must be True or False, got {classify_rotations!r}")
        self.classify_rotations = classify_rotations
        self.classifier = nn.Linear(backbone.feature_dim, num_classes)
        self.rotation_head = nn.Linear(backbone.feature_dim, 4)
        self.rotation_weight = float(rotation_weight)

    def training_step(self, batch: Batch, step: StepInfo) -> StepOutput:
        num_labeled = batch.labeled_images.shape[0]
        # 1. weak views of the labelled and the unlabelled images
        views = torch.cat([weak_augment(batch.labeled_images, generator=batch.generator),
                           weak_augment(batch.unlabeled_images, generator=batch.generator)])
        num_views = views.shape[0]
        # 2. all four rotations of every view; block k holds the views turned by k·90°
        rotated, rotation_labels = rotate_batch(views)                     # [4V,3,H,W], [4V]
        # 3. one forward pass
        features = self.backbone(rotated)                                  # [4V, D]
        # the labelled rows: the first B_l of each rotation block (only block 0 without rotations)
        blocks = 4 if self.classify_rotations else 1
        labeled_features = features.view(4, num_views, -1)[:blocks, :num_labeled]   # [blocks, B_l, D]
        class_logits = self.classifier(labeled_features.flatten(0, 1)).float()      # [blocks·B_l, C]
        class_labels = batch.labels.repeat(blocks)                                  # [blocks·B_l]
        rotation_logits = self.rotation_head(features).float()                       # [4V, 4]
        # 4. class CE on the labelled views (every rotation, label repeated) + w · rotation CE on every view
        loss, loss_class, loss_rotation = s4l_loss(class_logits, class_labels, rotation_logits, rotation_labels,
                                                   self.rotation_weight)
        with torch.no_grad():
            train_acc = (class_logits[:num_labeled].argmax(1) == batch.labels).float().mean()   # upright views
            rotation_acc = (rotation_logits.argmax(1) == rotation_labels).float().mean()
        return StepOutput(loss, {"loss_class": loss_class.detach(), "loss_rotation": loss_rotation.detach(),
                                 "train_acc": train_acc, "rotation_acc": rotation_acc})

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(images))

    def predict_rotation(self, images: torch.Tensor) -> torch.Tensor:
        """Rotation logits ``[B, 4]`` (0°, 90°, 180°, 270°) of normalised images."""
        return self.rotation_head(self.backbone(images))
