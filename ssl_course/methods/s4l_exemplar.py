r"""S4L-Exemplar (Zhai et al., ICCV 2019): supervised learning plus an exemplar triplet loss.

The Exemplar variant of "self-supervised semi-supervised learning": every image, labelled or not,
is shown as :math:`K = 8` heavily augmented copies. An embedding head must place the copies of one
image closer to each other than to any copy of another image (a batch-hard triplet loss with a
soft margin); a class head learns from the labelled copies. The triplet loss needs no labels, so
the unlabelled images shape the features the class head reuses.

Algorithm box (per step, labelled batch :math:`B_l` and unlabelled batch :math:`B_u = B_l`):

1. :math:`K` heavy views of every labelled and unlabelled image (crop, flip, colour jitter);
2. **one** forward pass over all :math:`K(B_l + B_u)` views;
3. class cross-entropy on every labelled copy (label repeated :math:`K` times); batch-hard
   soft-margin triplet loss on the L2-normalised embeddings, separately for the unlabelled and the
   labelled copies, the two means averaged (:func:`ssl_course.losses.s4l_exemplar_loss`);
4. :math:`\mathcal{L} = \mathcal{L}_{\text{class}} + w\,\mathcal{L}_{\text{triplet}}`, :math:`w = 1`.

Follows ``google-research/s4l`` (``semi_supervised/exemplar.py``, ``config/s4l_exemplar.sh``):
8 copies, 1000-d embedding head beside the class head, margin 0 with softplus, hardest positive
and negative (no sampling), equal labelled and unlabelled batches. Differences (``docs/RECIPES.md``):
the augmentation is the course's :func:`~ssl_course.data.augment.contrastive_augment` without
grayscale (the official code uses Inception crops, HSV noise and flips), and the default batch is
64 + 64 images (× 8 copies = 1024 views per step) instead of 512 + 512 on TPUs.
"""
from __future__ import annotations

import torch
from torch import nn

from ssl_course.data.augment import contrastive_augment
from ssl_course.losses import s4l_exemplar_loss

from . import register
from .base import Batch, Method, StepInfo, StepOutput


@register
class S4LExemplar(Method):
    """Backbone + class head + embedding head; triplet loss on copies of labelled and unlabelled images."""

    name = "s4l_exemplar"
    data_sources = ("labeled", "unlabeled")
    default_optimizer = "sgd"
    default_batch_size = 64                 # unlabelled images per step (× 8 copies)
    default_unlabeled_ratio = 1             # as many labelled images (× 8 copies), as in S4L
    default_lr = 0.1
    default_weight_decay = 5e-4
    has_classifier = True

    def __init__(self, backbone: nn.Module, num_classes: int, copies: int = 8, embed_dim: int = 1000,
                 triplet_weight: float = 1.0) -> None:
        super().__init__(backbone, num_classes)
        if isinstance(copies, bool) or not isinstance(copies, int) or copies < 2:
            raise ValueError(f"copies must be an int >= 2 (a triplet needs two copies of an image), got {copies!r}")
        if isinstance(embed_dim, bool) or not isinstance(embed_dim, int) or embed_dim < 1:
            raise ValueError(f"embed_dim must be a positive int, got {embed_dim!r}")
        if not triplet_weight >= 0:
            raise ValueError(f"triplet_weight must be >= 0, got {triplet_weight}")
        self.copies, self.embed_dim, self.triplet_weight = copies, embed_dim, float(triplet_weight)
        self.classifier = nn.Linear(backbone.feature_dim, num_classes)
        self.embedding_head = nn.Linear(backbone.feature_dim, embed_dim)

    def training_step(self, batch: Batch, step: StepInfo) -> StepOutput:
        num_labeled = batch.labeled_images.shape[0]
        images = torch.cat([batch.labeled_images, batch.unlabeled_images])        # [B, 3, H, W], B = B_l + B_u
        # 1. K heavy views of every image, copy-major: row k·B + b is copy k of image b
        views = contrastive_augment(images.repeat(self.copies, 1, 1, 1), generator=batch.generator, gray_prob=0.0)
        # 2. one forward pass; back to image-major [B, K, F]
        features = self.backbone(views).unflatten(0, (self.copies, images.shape[0])).transpose(0, 1)
        labeled, unlabeled = features[:num_labeled], features[num_labeled:]
        class_logits = self.classifier(labeled).float()                         # [B_l, K, C]
        embeddings_labeled = self.embedding_head(labeled).float()               # [B_l, K, D]
        embeddings_unlabeled = self.embedding_head(unlabeled).float()           # [B_u, K, D]
        # 3.-4. class CE on every labelled copy + w · batch-hard triplet on each group
        loss, loss_class, loss_triplet = s4l_exemplar_loss(class_logits, batch.labels, embeddings_labeled,
                                                           embeddings_unlabeled, self.triplet_weight)
        with torch.no_grad():
            train_acc = (class_logits.argmax(-1) == batch.labels[:, None]).float().mean()
        return StepOutput(loss, {"loss_class": loss_class.detach(), "loss_triplet": loss_triplet.detach(),
                                 "train_acc": train_acc})

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(images))

