r"""Pretext tasks: rotation prediction (RotNet) and contrastive predictive coding (CPC v2).

``rotate_batch`` / ``rotation_loss`` build and score the four-way rotation task;
``cpc_patch_grid`` cuts images into the overlapping patch grid CPC encodes, and
``cpc_info_nce`` scores predicted patch embeddings against the actual ones.
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
    check_ndim,
    check_nonempty,
    check_same_device_dtype,
    check_same_shape,
    check_temperature,
    check_tensor,
    value_checks_enabled,
)

__all__ = ["rotate_batch", "rotation_loss", "cpc_info_nce", "cpc_patch_grid"]

NUM_ROTATIONS = 4


# --------------------------------------------------------------------------------------------
# Rotation prediction
# --------------------------------------------------------------------------------------------
def rotate_batch(x: Tensor) -> tuple[Tensor, Tensor]:
    r"""Every image of the batch under the four rotations 0°, 90°, 180° and 270°.

    Shapes:
        x:       ``[B, C, H, W]`` square images (any dtype, e.g. uint8 or float).
        returns: ``(x_rot, rotation_labels)`` with ``x_rot`` ``[4B, C, H, W]`` (same dtype and
                 device as ``x``) and ``rotation_labels`` int64 ``[4B]``.

    Label :math:`k \in \{0,1,2,3\}` means the image was rotated by :math:`k\cdot 90°`
    counter-clockwise, as ``torch.rot90(x, k, dims=(2, 3))`` defines it (the first row of the
    image becomes its first column, read upwards).

    Order (rotation-major): the whole batch rotated by 0°, then the whole batch by 90°, then
    180°, then 270°. Row ``k * B + i`` of ``x_rot`` is image ``i`` rotated by ``k * 90°``, and
    ``rotation_labels == torch.arange(4).repeat_interleave(B)``.

    .. math::

        x^{rot}_{kB+i} = \mathrm{rot}_{90°}^{\,k}(x_i),\qquad y_{kB+i} = k

    References:
        Gidaris, Singh and Komodakis, "Unsupervised Representation Learning by Predicting Image
        Rotations", ICLR 2018 (all four rotations of each image in the same batch).
    """
    _check_rotate_batch_args(x)
    batch = x.shape[0]
    # 1. Rotation-major order keeps each rotation's block contiguous, so a learner can index
    #    x_rot[k * B:(k + 1) * B] to look at one rotation.
    rotated = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(NUM_ROTATIONS)], dim=0)
    # 2. Label k for the k-th block.
    rotation_labels = torch.arange(NUM_ROTATIONS, device=x.device).repeat_interleave(batch)
    return rotated, rotation_labels


def rotation_loss(logits: Tensor, rotation_labels: Tensor) -> Tensor:
    r"""Cross-entropy of the four-way rotation classifier, averaged over the batch.

    Shapes:
        logits:          ``[M, 4]`` unnormalised scores for the rotations 0°, 90°, 180°, 270°.
        rotation_labels: ``[M]`` int64 in ``{0, 1, 2, 3}`` (from :func:`rotate_batch`).
        returns:         a scalar (0-dim tensor) in the logits' dtype.

    .. math::

        \mathcal{L} = -\frac{1}{M}\sum_{m=1}^{M}\log\operatorname{softmax}(\ell_m)_{y_m}

    References:
        Gidaris, Singh and Komodakis, "Unsupervised Representation Learning by Predicting Image
        Rotations", ICLR 2018.
    """
    _check_rotation_loss_args(logits, rotation_labels)
    return F.cross_entropy(logits, rotation_labels.to(device=logits.device, dtype=torch.long))


# --------------------------------------------------------------------------------------------
# Contrastive predictive coding (CPC v2)
# --------------------------------------------------------------------------------------------
def cpc_patch_grid(images: Tensor, patch_size: int = 8, stride: int = 4) -> Tensor:
    r"""Cut each image into CPC's grid of overlapping square patches.

    Shapes:
        images:  ``[B, C, H, W]``.
        returns: ``[B, G_h, G_w, C, p, p]`` with :math:`G_h = (H - p)/s + 1` (likewise
                 :math:`G_w`); a 32x32 image with ``patch_size=8, stride=4`` gives a 7x7 grid.

    Patch ``(r, c)`` covers rows ``r*s : r*s+p`` and columns ``c*s : c*s+p``. The grid must tile
    the image exactly (``(H - p) % s == 0``), so no pixel is silently dropped.

    References:
        Hénaff, Srinivas, De Fauw, Razavi, Doersch, Eslami and van den Oord, "Data-Efficient Image
        Recognition with Contrastive Predictive Coding", ICML 2020 (CPC v2: 256px crops cut into
        a 7x7 grid of 64px patches with 32px overlap; here the same layout at CIFAR scale).
    """
    _check_cpc_patch_grid_args(images, patch_size, stride)
    # 1. unfold along H then W: [B, C, G_h, G_w, p, p], each window a view of the image (no copy).
    patches = images.unfold(2, patch_size, stride).unfold(3, patch_size, stride)
    # 2. Grid position first, channels with their patch: [B, G_h, G_w, C, p, p].
    return patches.permute(0, 2, 3, 1, 4, 5).contiguous()


def cpc_info_nce(predictions: Tensor, targets: Tensor, temperature: float = 1.0) -> Tensor:
    r"""CPC v2's InfoNCE over spatial predictions, negatives drawn from the whole batch.

    Shapes:
        predictions: ``[B, S, D]``: for image ``b`` and target position ``s``, the context
                     network's prediction :math:`\hat z_{b,s}` of that patch's encoding.
        targets:     ``[B, S, D]``: the actual patch encodings :math:`z_{b,s}`.
        returns:     a scalar (0-dim tensor) in the inputs' dtype.

    Scores are plain dot products (CPC does not normalise). For each of the :math:`BS` pairs
    :math:`(b, s)` the positive is :math:`z_{b,s}` and the negatives are all the other
    :math:`BS - 1` target encodings in the batch: other positions of the same image and every
    position of the other images.

    .. math::

        \mathcal{L} = -\frac{1}{BS}\sum_{b=1}^{B}\sum_{s=1}^{S}
        \log\frac{\exp(\hat z_{b,s}^\top z_{b,s}/\tau)}
                 {\sum_{b'=1}^{B}\sum_{s'=1}^{S}\exp(\hat z_{b,s}^\top z_{b',s'}/\tau)}

    With ``temperature=1`` (the default) this is the paper's loss; a different value just
    rescales the scores.

    References:
        van den Oord, Li and Vinyals, "Representation Learning with Contrastive Predictive Coding",
        2018. Hénaff et al., "Data-Efficient Image Recognition with Contrastive Predictive
        Coding", ICML 2020, Section 2 (negatives "taken from other locations in the image and
        other images in the mini-batch").
    """
    _check_cpc_info_nce_args(predictions, targets, temperature)

    batch, positions, dim = predictions.shape
    # 1. Pool all (image, position) pairs: every target in the batch is a candidate.
    predicted = predictions.reshape(batch * positions, dim)
    actual = targets.reshape(batch * positions, dim)
    # 2. Score every prediction against every actual encoding (dot products, as in CPC).
    logits = (predicted @ actual.T) / temperature  # [BS, BS]
    # 3. The right answer for prediction (b, s) is its own target, at the same flat index.
    labels = torch.arange(batch * positions, device=predictions.device)
    # 4. Cross-entropy, averaged over the B*S predictions.
    return F.cross_entropy(logits, labels)


# --------------------------------------------------------------------------------------------
# Input checks, one helper per function (the vocabulary is in _checks.py)
# --------------------------------------------------------------------------------------------
def _check_images(name: str, images: object) -> None:
    check_tensor(name, images)
    check_ndim(name, images, 4, "[B, C, H, W]")
    assert isinstance(images, Tensor)
    check_nonempty(name, images, 0, "images")


def _check_rotate_batch_args(x: Tensor) -> None:
    _check_images("x", x)
    height, width = x.shape[-2:]
    if height != width:
        raise ValueError(
            f"rotate_batch needs square images (a 90° rotation of an H x W image is W x H, and the "
            f"four rotations must share one batch); got x of shape {tuple(x.shape)}. Crop or resize "
            f"to H == W first."
        )


def _check_rotation_loss_args(logits: Tensor, rotation_labels: Tensor) -> None:
    check_floating("logits", logits)
    check_2d("logits", logits, "[M, 4]")
    check_nonempty("logits", logits, 0, "rows")
    if logits.shape[1] != NUM_ROTATIONS:
        raise ValueError(
            f"logits must have {NUM_ROTATIONS} columns, one per rotation (0, 90, 180, 270 degrees); "
            f"got shape {tuple(logits.shape)}. Give the rotation head {NUM_ROTATIONS} outputs."
        )
    check_labels("rotation_labels", rotation_labels, logits.shape[0], "logits.shape[0]")
    if value_checks_enabled() and rotation_labels.numel() and (
            rotation_labels.min() < 0 or rotation_labels.max() >= NUM_ROTATIONS):
        raise ValueError(
            f"rotation_labels must lie in 0..{NUM_ROTATIONS - 1}; got values from "
            f"{int(rotation_labels.min())} to {int(rotation_labels.max())}. Use the labels returned "
            f"by rotate_batch."
        )


def _check_cpc_patch_grid_args(images: Tensor, patch_size: int, stride: int) -> None:
    _check_images("images", images)
    for name, value in (("patch_size", patch_size), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}.")
    height, width = images.shape[-2:]
    for side_name, side in (("height", height), ("width", width)):
        if side < patch_size or (side - patch_size) % stride != 0:
            raise ValueError(
                f"the image {side_name} ({side}) must equal patch_size + a multiple of stride so the "
                f"grid tiles it exactly; got patch_size={patch_size}, stride={stride}. For 32px images "
                f"use patch_size=8, stride=4 (7x7 grid) or patch_size=16, stride=8 (3x3 grid)."
            )


def _check_cpc_info_nce_args(predictions: Tensor, targets: Tensor, temperature: float) -> None:
    check_floating("predictions", predictions)
    check_3d("predictions", predictions, "[B, S, D] (images, target positions, feature dimension)")
    check_floating("targets", targets)
    check_3d("targets", targets, "[B, S, D] (images, target positions, feature dimension)")
    check_same_shape("predictions", predictions, "targets", targets)
    check_same_device_dtype("predictions", predictions, "targets", targets)
    for dim, what in ((0, "images"), (1, "target positions"), (2, "feature dimensions")):
        check_nonempty("predictions", predictions, dim, what)
    check_temperature("temperature", temperature)
