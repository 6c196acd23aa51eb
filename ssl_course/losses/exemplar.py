r"""Exemplar losses: every image its own class.

``exemplar_loss`` is the surrogate-class cross-entropy of Exemplar-CNN (Dosovitskiy et al. 2014):
image :math:`i` of the training set is class :math:`i`, and heavily augmented copies of it must be
recognised as that class. ``batch_hard_triplet_loss`` is the metric-learning form of the same idea
that S4L-Exemplar uses (Zhai et al. 2019): copies of one image must be closer to each other than
to any copy of another image. ``s4l_exemplar_loss`` combines it with the supervised cross-entropy.

The parametric classifier over all images is the bridge to *instance discrimination* (Wu et al.
2018), which replaces the weight row of class :math:`i` by a stored embedding of image :math:`i`
and the huge softmax by NCE, and from there to InfoNCE and SimCLR (notebooks 01 and 04).
All functions are pure and compute in the dtype and on the device of their inputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import (
    check_2d,
    check_3d,
    check_floating,
    check_labels,
    check_nonempty,
    check_same_device_dtype,
    value_checks_enabled,
)

__all__ = ["exemplar_loss", "batch_hard_triplet_loss", "s4l_exemplar_loss"]


def _check_index_range(name: str, indices: Tensor, upper: int, fix: str) -> None:
    """Value check (skipped on the GPU training path): every index lies in ``0..upper-1``."""
    if value_checks_enabled() and indices.numel() and (indices.min() < 0 or indices.max() >= upper):
        raise ValueError(
            f"{name} must lie in 0..{upper - 1}; got values from {int(indices.min())} to "
            f"{int(indices.max())}. {fix}"
        )


def _check_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------------------------
# Exemplar-CNN: a classifier with one class per image
# --------------------------------------------------------------------------------------------
def exemplar_loss(logits: Tensor, exemplar_ids: Tensor) -> Tensor:
    r"""Cross-entropy of the surrogate-class classifier: each view must name the image it came from.

    Shapes:
        logits:       ``[M, N]`` scores of :math:`M` augmented views over :math:`N` surrogate
                      classes (one per training image).
        exemplar_ids: ``[M]`` int64 in ``0..N-1``: the index of the image each view was made from.
        returns:      a scalar (0-dim tensor) in the logits' dtype.

    With :math:`T_m` a random transformation, :math:`x_{i_m}` the image behind view :math:`m`,
    :math:`f_\theta` the network and :math:`W \in \mathbb{R}^{N\times F}` the classifier:

    .. math::

        \mathcal{L} = -\frac{1}{M}\sum_{m=1}^{M}
        \log\frac{\exp(w_{i_m}^\top f_\theta(T_m x_{i_m}))}{\sum_{j=1}^{N}\exp(w_j^\top f_\theta(T_m x_{i_m}))}

    Row :math:`w_j` plays the role of a stored prototype of image :math:`j`; replacing it by a
    memory of :math:`f_\theta(x_j)` and the :math:`N`-way softmax by NCE gives instance
    discrimination (Wu et al. 2018); taking the prototypes from the current batch gives SimCLR.

    References:
        Dosovitskiy, Springenberg, Riedmiller and Brox, "Discriminative Unsupervised Feature
        Learning with Convolutional Neural Networks", NeurIPS 2014 (Exemplar-CNN; N surrogate
        classes, each the transformations of one seed patch).
    """
    check_floating("logits", logits)
    check_2d("logits", logits, "[M, N] (views, surrogate classes)")
    check_nonempty("logits", logits, 0, "views")
    check_labels("exemplar_ids", exemplar_ids, logits.shape[0], "logits.shape[0]")
    _check_index_range("exemplar_ids", exemplar_ids, logits.shape[1],
                       "Each training image needs its own class: build the method with "
                       "num_exemplars equal to the training-set size.")
    # One class per image: the label of a view is simply the index of its image.
    return F.cross_entropy(logits, exemplar_ids.to(device=logits.device, dtype=torch.long))


# --------------------------------------------------------------------------------------------
# Batch-hard triplet loss (S4L-Exemplar)
# --------------------------------------------------------------------------------------------
def batch_hard_triplet_loss(embeddings: Tensor, identities: Tensor, margin: float = 0.0,
                            soft_margin: bool = True) -> Tensor:
    r"""Batch-hard triplet loss: each anchor against its farthest positive and its nearest negative.

    Shapes:
        embeddings: ``[M, D]`` (S4L L2-normalises them first, see :func:`s4l_exemplar_loss`).
        identities: ``[M]`` integer identities: rows with the same value are copies of one image.
        returns:    a scalar (0-dim tensor) in the embeddings' dtype.

    With Euclidean distances :math:`d_{ab} = \lVert e_a - e_b \rVert_2`, positives
    :math:`P(a) = \{p \ne a : y_p = y_a\}` and negatives :math:`N(a) = \{n : y_n \ne y_a\}`:

    .. math::

        \mathcal{L} = \frac{1}{M}\sum_{a=1}^{M}
        \ell\Big(\max_{p \in P(a)} d_{ap} \;-\; \min_{n \in N(a)} d_{an} \;+\; m\Big),
        \qquad \ell = \operatorname{softplus} \text{ (soft margin) or } [\,\cdot\,]_+ \text{ (hinge)}

    S4L uses the soft margin with :math:`m = 0`, the defaults. An anchor without a positive or
    without a negative contributes 0 (it still counts in the mean, as in the official code); give
    every identity at least two rows. Distances come from :math:`\lVert a\rVert^2 + \lVert
    b\rVert^2 - 2a^\top b`, clamped at :math:`10^{-12}` before the square root as the official
    code does (the gradient of :math:`\sqrt{x}` is infinite at 0), which avoids materialising the
    :math:`[M, M, D]` differences.

    References:
        Hermans, Beyer and Leibe, "In Defense of the Triplet Loss for Person Re-Identification",
        2017 (batch hard, soft margin). Zhai, Oliver, Kolesnikov and Beyer, "S4L: Self-Supervised
        Semi-Supervised Learning", ICCV 2019, Section 3.2 (S4L-Exemplar); google-research/s4l
        ``semi_supervised/exemplar.py`` (``batch_hard(..., margin=0.0, soft=True,
        sample_pos=False, sample_neg=False)``, averaged over anchors).
    """
    check_floating("embeddings", embeddings)
    check_2d("embeddings", embeddings, "[M, D] (one row per copy)")
    check_nonempty("embeddings", embeddings, 0, "rows")
    check_nonempty("embeddings", embeddings, 1, "feature dimensions")
    check_labels("identities", identities, embeddings.shape[0], "embeddings.shape[0]")
    margin = _check_number("margin", margin)
    identities = identities.to(embeddings.device)

    # 1. All pairwise Euclidean distances, [M, M].
    squared_norms = (embeddings * embeddings).sum(dim=1)
    squared = squared_norms[:, None] + squared_norms[None, :] - 2.0 * embeddings @ embeddings.T
    distances = squared.clamp_min(1e-12).sqrt()
    # 2. Who is a positive (same image, not myself) and who is a negative (another image).
    same = identities[:, None] == identities[None, :]
    myself = torch.eye(len(identities), dtype=torch.bool, device=embeddings.device)
    positive, negative = same & ~myself, ~same
    # 3. Hardest positive: the farthest copy; hardest negative: the nearest other image.
    hardest_positive = distances.masked_fill(~positive, float("-inf")).amax(dim=1)   # [M]
    hardest_negative = distances.masked_fill(~negative, float("inf")).amin(dim=1)    # [M]
    # 4. Soft (softplus) or hard (hinge) margin, averaged over the anchors.
    violation = hardest_positive - hardest_negative + margin
    per_anchor = F.softplus(violation) if soft_margin else F.relu(violation)
    return per_anchor.mean()


def s4l_exemplar_loss(
    logits_labeled: Tensor,
    labels: Tensor,
    embeddings_labeled: Tensor,
    embeddings_unlabeled: Tensor,
    triplet_weight: float = 1.0,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""S4L-Exemplar: cross-entropy on the labelled copies plus the batch-hard triplet loss on all copies.

    Shapes:
        logits_labeled:       ``[B_l, K, C]`` class logits of the :math:`K` augmented copies of
                              each labelled image.
        labels:               ``[B_l]`` int64 class of each labelled image (shared by its copies).
        embeddings_labeled:   ``[B_l, K, D]`` embedding-head outputs of the labelled copies.
        embeddings_unlabeled: ``[B_u, K, D]`` embedding-head outputs of the unlabelled copies.
        returns:              ``(total, classification, triplet)`` scalar tensors.

    The copies of image :math:`b` form one identity. With :math:`\hat e = e / \lVert e\rVert` and
    :math:`\mathcal{T}` the batch-hard soft-margin triplet loss of :func:`batch_hard_triplet_loss`:

    .. math::

        \mathcal{L} = \frac{1}{B_l K}\sum_{b,k} H\big(y_b, f_c(x_{b,k})\big)
        + w\,\tfrac{1}{2}\Big(\mathcal{T}\big(\{\hat e^{\,u}_{b,k}\}\big)
        + \mathcal{T}\big(\{\hat e^{\,l}_{b,k}\}\big)\Big)

    The triplet loss runs on the unlabelled and on the labelled copies separately (negatives come
    only from the same group) and the two means are averaged, with :math:`w = 1`, as in
    google-research/s4l (``--triplet_loss_unsup 1 --triplet_loss_sup 1 --triplet_loss_weight 1.0``,
    8 copies per image: ``crop_inception_patches(8,224)``). Taking identities from the ``[B, K]``
    layout means a caller cannot pair the wrong copies.

    References:
        Zhai, Oliver, Kolesnikov and Beyer, "S4L: Self-Supervised Semi-Supervised Learning",
        ICCV 2019, Section 3.2; Hermans, Beyer and Leibe 2017 (batch-hard triplet loss).
    """
    check_floating("logits_labeled", logits_labeled)
    check_3d("logits_labeled", logits_labeled, "[B_l, K, C] (labelled images, copies, classes)")
    for name, tensor, layout in (("embeddings_labeled", embeddings_labeled, "[B_l, K, D]"),
                                 ("embeddings_unlabeled", embeddings_unlabeled, "[B_u, K, D]")):
        check_floating(name, tensor)
        check_3d(name, tensor, f"{layout} (images, copies, embedding dimension)")
        check_nonempty(name, tensor, 0, "images")
        if tensor.shape[1] < 2:
            raise ValueError(f"{name} needs at least 2 copies per image (a triplet needs a positive); "
                             f"got shape {tuple(tensor.shape)}. S4L uses 8 copies.")
    check_same_device_dtype("embeddings_labeled", embeddings_labeled, "embeddings_unlabeled", embeddings_unlabeled)
    if logits_labeled.shape[:2] != embeddings_labeled.shape[:2]:
        raise ValueError(f"logits_labeled and embeddings_labeled must describe the same [B_l, K] copies; got "
                         f"{tuple(logits_labeled.shape)} and {tuple(embeddings_labeled.shape)}.")
    batch_labeled, copies, num_classes = logits_labeled.shape
    check_labels("labels", labels, batch_labeled, "logits_labeled.shape[0]")
    _check_index_range("labels", labels, num_classes, "Pass class indices of the labelled images.")
    triplet_weight = _check_number("triplet_weight", triplet_weight)

    # 1. Every copy of a labelled image is classified with that image's label.
    repeated_labels = labels.to(logits_labeled.device, torch.long).repeat_interleave(copies)   # [B_l·K]
    classification = F.cross_entropy(logits_labeled.reshape(-1, num_classes), repeated_labels)

    # 2. Triplet loss per group on L2-normalised embeddings; identity = the image a copy came from.
    def group_triplet(embeddings: Tensor) -> Tensor:
        images, group_copies, dim = embeddings.shape
        identities = torch.arange(images, device=embeddings.device).repeat_interleave(group_copies)
        return batch_hard_triplet_loss(F.normalize(embeddings, dim=-1).reshape(-1, dim), identities)

    triplet = 0.5 * (group_triplet(embeddings_unlabeled) + group_triplet(embeddings_labeled))
    # 3. Weighted sum.
    return classification + triplet_weight * triplet, classification, triplet
