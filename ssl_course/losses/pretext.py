r"""Pretext tasks: rotation (RotNet), relative patch position, jigsaw, colorization, and CPC v2.

``rotate_batch`` / ``rotation_loss`` build and score the four-way rotation task;
``relative_position_loss`` and ``jigsaw_loss`` score the patch tasks (the patches themselves are
cut by :mod:`ssl_course.data.patches`); ``soft_encode_ab``, ``class_rebalancing_weights``,
``colorization_loss``, ``annealed_mean`` and ``colorization_l2_loss`` are Zhang et al.'s
colorization objective and read-out;
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
    check_vector,
    value_checks_enabled,
)

__all__ = ["rotate_batch", "rotation_loss", "cpc_info_nce", "cpc_patch_grid", "relative_position_loss",
           "jigsaw_loss", "soft_encode_ab", "class_rebalancing_weights", "colorization_loss", "annealed_mean",
           "colorization_l2_loss", "non_grey_mask"]

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
# Relative patch position and jigsaw: classification over a fixed set of answers
# --------------------------------------------------------------------------------------------
def _check_class_labels(name: str, labels: Tensor, logits: Tensor, fix: str) -> None:
    check_labels(name, labels, logits.shape[0], "logits.shape[0]")
    classes = logits.shape[1]
    if value_checks_enabled() and labels.numel() and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"{name} must lie in 0..{classes - 1}; got values from {int(labels.min())} to "
                         f"{int(labels.max())}. {fix}")


def relative_position_loss(logits: Tensor, position_labels: Tensor) -> Tensor:
    r"""Cross-entropy of the 8-way "where is the second patch?" classifier, averaged over pairs.

    Shapes:
        logits:          ``[M, 8]``: scores of the 8 neighbour positions for each (centre, neighbour) pair.
        position_labels: ``[M]`` int64 in ``0..7`` (:data:`ssl_course.data.patches.NEIGHBOUR_OFFSETS` order).
        returns:         a scalar in the logits' dtype.

    .. math::

        \mathcal{L} = -\frac{1}{M}\sum_{m=1}^{M}
        \log\operatorname{softmax}\big(g(f(x^{c}_m), f(x^{n}_m))\big)_{y_m}

    with :math:`f` the shared trunk applied to each patch, :math:`g` the late-fusion head on the
    two concatenated features, :math:`x^c_m, x^n_m` the centre and neighbour patch, :math:`y_m`
    the neighbour's position.

    References:
        Doersch, Gupta and Efros, "Unsupervised Visual Representation Learning by Context
        Prediction", ICCV 2015.
    """
    check_floating("logits", logits)
    check_2d("logits", logits, "[M, 8]")
    check_nonempty("logits", logits, 0, "rows")
    if logits.shape[1] != 8:
        raise ValueError(f"logits must have 8 columns, one per neighbour position; got shape "
                         f"{tuple(logits.shape)}. Give the position head 8 outputs.")
    _check_class_labels("position_labels", position_labels, logits,
                        "Use the labels returned by ssl_course.data.relative_position_pairs.")
    return F.cross_entropy(logits, position_labels.to(device=logits.device, dtype=torch.long))


def jigsaw_loss(logits: Tensor, permutation_labels: Tensor) -> Tensor:
    r"""Cross-entropy of the jigsaw classifier: which of the :math:`P` permutations shuffled the tiles.

    Shapes:
        logits:             ``[M, P]``: one score per permutation of the fixed set.
        permutation_labels: ``[M]`` int64 in ``0..P-1`` (rows of the permutation set).
        returns:            a scalar in the logits' dtype.

    .. math::

        \mathcal{L} = -\frac{1}{M}\sum_{m=1}^{M}\log\operatorname{softmax}
        \big(g([f(t_{m,\pi_m(1)}), \dots, f(t_{m,\pi_m(9)})])\big)_{k_m}

    with :math:`t_{m,j}` the tiles of puzzle :math:`m`, :math:`\pi_m` the permutation with index
    :math:`k_m` in the set, :math:`f` the trunk shared by the 9 tiles and :math:`g` the head on
    their concatenated features (the concatenation order is the shuffled order).

    References:
        Noroozi and Favaro, "Unsupervised Learning of Visual Representations by Solving Jigsaw
        Puzzles", ECCV 2016.
    """
    check_floating("logits", logits)
    check_2d("logits", logits, "[M, P]")
    check_nonempty("logits", logits, 0, "rows")
    _check_class_labels("permutation_labels", permutation_labels, logits,
                        "Use the labels returned by ssl_course.data.jigsaw_puzzles with the same permutation set.")
    return F.cross_entropy(logits, permutation_labels.to(device=logits.device, dtype=torch.long))


# --------------------------------------------------------------------------------------------
# Colorization (Zhang, Isola and Efros, ECCV 2016)
# --------------------------------------------------------------------------------------------
def _check_ab_centers(centers: object) -> None:
    check_floating("centers", centers)
    assert isinstance(centers, Tensor)
    if centers.dim() != 2 or centers.shape[1] != 2 or centers.shape[0] < 2:
        raise ValueError(f"centers must be the ab bin centres [Q, 2] with Q >= 2; got shape "
                         f"{tuple(centers.shape)}. Use ssl_course.data.ab_bin_centers().")


def soft_encode_ab(ab: Tensor, centers: Tensor, neighbours: int = 5, sigma: float = 5.0) -> Tensor:
    r"""Soft one-hot targets over the ab bins: a Gaussian on the ``neighbours`` nearest bin centres.

    Shapes:
        ab:      ``[B, 2, H, W]`` true a and b values of each pixel.
        centers: ``[Q, 2]`` bin centres (:func:`ssl_course.data.ab_bin_centers`).
        returns: ``[B, Q, H, W]`` in ``ab``'s dtype; each pixel's values sum to 1.

    .. math::

        Z_{hw,q} = \frac{\exp(-\lVert y_{hw} - c_q\rVert^2 / 2\sigma^2)\,[q \in \mathcal N_k(y_{hw})]}
        {\sum_{q' \in \mathcal N_k(y_{hw})}\exp(-\lVert y_{hw} - c_{q'}\rVert^2 / 2\sigma^2)}

    with :math:`\mathcal N_k(y)` the :math:`k` bin centres nearest to :math:`y` (paper: :math:`k=5`,
    :math:`\sigma = 5`; the official training code uses :math:`k = 10`, ``NNEncLayer`` in
    ``richzhang/colorization`` ``resources/caffe_traininglayers.py``, and so does
    :class:`ssl_course.methods.colorization.Colorization` by default).

    References:
        Zhang, Isola and Efros, "Colorful Image Colorization", ECCV 2016, Section 2.1.
    """
    check_floating("ab", ab)
    check_ndim("ab", ab, 4, "[B, 2, H, W]")
    assert isinstance(ab, Tensor)
    if ab.shape[1] != 2:
        raise ValueError(f"ab must have 2 channels (a, b); got shape {tuple(ab.shape)}. Take lab[:, 1:].")
    _check_ab_centers(centers)
    if not 1 <= neighbours <= centers.shape[0]:
        raise ValueError(f"neighbours must be between 1 and Q = {centers.shape[0]}; got {neighbours}.")
    check_temperature("sigma", sigma)
    centers = centers.to(device=ab.device, dtype=ab.dtype)
    # 1. squared distance of every pixel's ab to every centre: [B, H, W, Q]
    pixels = ab.permute(0, 2, 3, 1)
    squared = (pixels[..., None, :] - centers).pow(2).sum(-1)
    # 2. Gaussian weights on the k nearest centres, normalised per pixel
    nearest_sq, nearest = squared.topk(neighbours, dim=-1, largest=False)
    weights = torch.softmax(-nearest_sq / (2 * sigma ** 2), dim=-1)
    # 3. scatter into the Q bins and put the bins on the channel axis
    encoded = torch.zeros_like(squared).scatter_(-1, nearest, weights)
    return encoded.permute(0, 3, 1, 2)


def class_rebalancing_weights(prior: Tensor, mix: float = 0.5, centers: Tensor | None = None,
                              sigma: float = 5.0) -> Tensor:
    r"""Per-bin weights that boost rare colours: :math:`w \propto ((1-\lambda)\tilde p + \lambda/Q)^{-1}`.

    Shapes:
        prior:   ``[Q]`` empirical frequency (or count) of each ab bin over the training pixels.
        centers: optional ``[Q, 2]`` bin centres; when given, the prior is first smoothed with a
                 Gaussian of width ``sigma`` in the ab plane, as in the paper.
        returns: ``[Q]`` weights with :math:`\sum_q \tilde p_q w_q = 1`.

    .. math::

        w_q = \frac{\big((1-\lambda)\,\tilde p_q + \lambda/Q\big)^{-1}}
        {\sum_{q'} \tilde p_{q'}\big((1-\lambda)\,\tilde p_{q'} + \lambda/Q\big)^{-1}}

    :math:`\lambda` = ``mix`` (paper: 0.5); ``mix=1`` gives uniform weights (no rebalancing).

    References:
        Zhang, Isola and Efros, "Colorful Image Colorization", ECCV 2016, Section 2.2.
    """
    check_floating("prior", prior)
    check_ndim("prior", prior, 1, "[Q]")
    check_nonempty("prior", prior, 0, "bins")
    if not 0.0 <= mix <= 1.0:
        raise ValueError(f"mix must lie in [0, 1] (the weight of the uniform distribution); got {mix!r}.")
    if value_checks_enabled() and (prior.min() < 0 or prior.sum() <= 0):
        raise ValueError("prior must be non-negative counts or frequencies with a positive sum.")
    # 1. normalise (and smooth) the prior
    p = prior / prior.sum()
    if centers is not None:
        _check_ab_centers(centers)
        check_temperature("sigma", sigma)
        centers = centers.to(prior)
        kernel = torch.exp(-torch.cdist(centers, centers).pow(2) / (2 * sigma ** 2))  # [Q, Q]
        p = kernel @ p
        p = p / p.sum()
    # 2. mix with the uniform distribution and invert
    bins = p.shape[0]
    weights = 1.0 / ((1.0 - mix) * p + mix / bins)
    # 3. normalise so that the expected weight under the prior is 1
    return weights / (p * weights).sum()


def colorization_loss(logits: Tensor, targets: Tensor, weights: Tensor | None = None,
                      image_mask: Tensor | None = None) -> Tensor:
    r"""Zhang et al.'s class-rebalanced multinomial cross-entropy over ab bins, averaged over pixels.

    Shapes:
        logits:  ``[B, Q, H, W]`` scores of the Q ab bins at every output pixel.
        targets: ``[B, Q, H, W]`` soft-encoded true colours (:func:`soft_encode_ab`).
        weights: optional ``[Q]`` rebalancing weights (:func:`class_rebalancing_weights`);
                 ``None`` means 1 for every bin.
        image_mask: optional ``[B]`` factor per image, 1 for images that count and 0 for images
                 left out (the official code's grey-image mask, :func:`non_grey_mask`);
                 ``None`` means 1 for every image.
        returns: a scalar in the logits' dtype.

    .. math::

        \mathcal{L} = -\frac{1}{BHW}\sum_{b,h,w} m_b\, v\big(Z_{b,hw}\big)
        \sum_{q=1}^{Q} Z_{b,hw,q}\,\log\operatorname{softmax}(\ell_{b,hw})_q,
        \qquad v(Z_{hw}) = w_{\arg\max_q Z_{hw,q}}

    (The paper sums over pixels; the mean only rescales the loss. A masked image still counts in
    the :math:`BHW` of the mean, as in the official code, where the mask only scales gradients:
    ``richzhang/colorization`` ``models/colorization_train_val_v2.prototxt``, layer
    ``prior_boost_nongray``.)

    References:
        Zhang, Isola and Efros, "Colorful Image Colorization", ECCV 2016, Eq. 2 and 3.
    """
    check_floating("logits", logits)
    check_ndim("logits", logits, 4, "[B, Q, H, W]")
    check_floating("targets", targets)
    check_same_shape("logits", logits, "targets", targets)
    check_same_device_dtype("logits", logits, "targets", targets)
    check_nonempty("logits", logits, 0, "images")
    # 1. per-pixel cross-entropy with the soft target: [B, H, W]
    cross_entropy = -(targets * torch.log_softmax(logits, dim=1)).sum(1)
    # 2. weight each pixel by the rebalancing weight of its most likely true bin
    if weights is not None:
        check_vector("weights", weights, "[Q]", logits.shape[1], "bin", "Build them from the same ab_bin_centers.")
        cross_entropy = cross_entropy * weights.to(logits)[targets.argmax(1)]
    # 3. leave out the masked images (they still count in the mean's denominator)
    if image_mask is not None:
        check_vector("image_mask", image_mask, "[B]", logits.shape[0], "image",
                     "Build it with non_grey_mask(target_ab).")
        cross_entropy = cross_entropy * image_mask.to(logits)[:, None, None]
    return cross_entropy.mean()


def non_grey_mask(ab: Tensor, threshold: float = 5.0) -> Tensor:
    r"""``[B]`` float mask: 1 for an image with any pixel whose :math:`|a|` or :math:`|b|` exceeds ``threshold``.

    Shapes:
        ab:      ``[B, 2, H, W]`` the colours of each image (the official code tests the
                 subsampled target colours).
        returns: ``[B]`` in ``ab``'s dtype.

    A grey photograph (or one with hardly any colour) has no colour to teach; its targets all sit
    in the grey bin and would pull every prediction towards grey. The official training net
    leaves such images out of the loss (``NonGrayMaskLayer``, threshold 5, in
    ``richzhang/colorization`` ``resources/caffe_traininglayers.py``).

    .. math::

        m_b = \big[\max_{h,w,c} |ab_{b,c,hw}| > \text{threshold}\big]
    """
    check_floating("ab", ab)
    check_ndim("ab", ab, 4, "[B, 2, H, W]")
    assert isinstance(ab, Tensor)
    if ab.shape[1] != 2:
        raise ValueError(f"ab must have 2 channels (a, b); got shape {tuple(ab.shape)}. Take lab[:, 1:].")
    return (ab.abs().flatten(1).amax(1) > threshold).to(ab.dtype)


def annealed_mean(logits: Tensor, centers: Tensor, temperature: float = 0.38) -> Tensor:
    r"""Zhang et al.'s read-out of a colour distribution: the mean of the re-tempered distribution.

    Shapes:
        logits:  ``[B, Q, H, W]`` scores of the Q ab bins.
        centers: ``[Q, 2]`` bin centres.
        returns: ``[B, 2, H, W]`` predicted a and b.

    .. math::

        \hat y_{hw} = \sum_q f_T(z_{hw})_q\, c_q,\qquad
        f_T(z)_q = \frac{\exp(\log z_q / T)}{\sum_{q'}\exp(\log z_{q'} / T)}
        = \operatorname{softmax}(\ell / T)_q

    with :math:`z = \operatorname{softmax}(\ell)`. :math:`T = 1` is the mean (greyish, like L2),
    :math:`T \to 0` the mode (vivid but patchy); the paper uses :math:`T = 0.38`.

    References:
        Zhang, Isola and Efros, "Colorful Image Colorization", ECCV 2016, Section 2.3, Eq. 5.
    """
    check_floating("logits", logits)
    check_ndim("logits", logits, 4, "[B, Q, H, W]")
    _check_ab_centers(centers)
    if centers.shape[0] != logits.shape[1]:
        raise ValueError(f"logits have {logits.shape[1]} bins but centers has {centers.shape[0]}; use the "
                         f"same ab_bin_centers for both.")
    check_temperature("temperature", temperature)
    probabilities = torch.softmax(logits / temperature, dim=1)                      # [B, Q, H, W]
    return torch.einsum("bqhw,qc->bchw", probabilities, centers.to(logits))


def colorization_l2_loss(predicted_ab: Tensor, target_ab: Tensor) -> Tensor:
    r"""The regression baseline: half the squared Euclidean error in ab, averaged over pixels.

    Shapes:
        predicted_ab, target_ab: ``[B, 2, H, W]``.
        returns: a scalar.

    .. math::

        \mathcal{L}_2 = \frac{1}{BHW}\sum_{b,h,w}\tfrac12\,\lVert y_{b,hw} - \hat y_{b,hw}\rVert_2^2

    Its minimiser is the conditional *mean* colour, which for an object that can be red or blue
    is a greyish average: the paper's argument for classification.

    References:
        Zhang, Isola and Efros, "Colorful Image Colorization", ECCV 2016, Eq. 1.
    """
    check_floating("predicted_ab", predicted_ab)
    check_ndim("predicted_ab", predicted_ab, 4, "[B, 2, H, W]")
    check_floating("target_ab", target_ab)
    check_same_shape("predicted_ab", predicted_ab, "target_ab", target_ab)
    check_same_device_dtype("predicted_ab", predicted_ab, "target_ab", target_ab)
    check_nonempty("predicted_ab", predicted_ab, 0, "images")
    return 0.5 * (predicted_ab - target_ab).pow(2).sum(1).mean()


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
