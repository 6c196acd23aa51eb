r"""Semi-supervised losses: sharpening, PAWS, MixMatch, FixMatch and S4L-Rotation.

Every function here is a *pure* function of tensors: no module state, no randomness, no
optimiser. A method's ``training_step`` computes logits / embeddings with its networks and
hands them to these functions. Shapes use

* ``N`` – number of (unlabelled) samples in the batch,
* ``M`` – number of labelled support samples (PAWS),
* ``C`` – number of classes (the course's notation, ``docs/notation.md``; ``K`` counts negatives),
* ``D`` – embedding dimension.

All functions accept float32 and float64 tensors on any device, and raise ``ValueError``
with a readable message when an input has the wrong shape, dtype or value range, so that
course participants see *what* is wrong instead of a cryptic broadcasting error.

Papers and official code whose conventions are reproduced:

* PAWS – Assran et al., "Semi-Supervised Learning of Visual Features by Non-Parametrically
  Predicting View Assignments with Support Samples", ICCV 2021;
  ``facebookresearch/suncet`` ``src/losses.py`` (``init_paws_loss``) and ``src/paws_train.py``.
* MixMatch – Berthelot et al., "MixMatch: A Holistic Approach to Semi-Supervised Learning",
  NeurIPS 2019; ``google-research/mixmatch`` ``mixmatch.py`` and ``libml/layers.py``.
* FixMatch – Sohn et al., "FixMatch: Simplifying Semi-Supervised Learning with Consistency and
  Confidence", NeurIPS 2020; ``google-research/fixmatch`` ``fixmatch.py`` (same convention in
  the PyTorch port ``kekmodel/FixMatch-pytorch``).
* S4L – Zhai et al., "S4L: Self-Supervised Semi-Supervised Learning", ICCV 2019;
  ``google-research/s4l`` ``semi_supervised/rotation.py``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import (
    check_class_indices,
    check_floating,
    check_matrix,
    check_non_negative,
    check_positive,
    check_probability_rows,
    check_same_device_dtype_all,
    check_tensor,
    check_unit_interval,
    value_checks_enabled,
)

__all__ = [
    "sharpen",
    "snn",
    "me_max_regularizer",
    "paws",
    "soft_cross_entropy",
    "mixmatch_guess_labels",
    "mixup",
    "mixmatch_loss",
    "fixmatch_loss",
    "s4l_loss",
]

# PAWS zeroes target probabilities below this value "for numerical stability"
# (facebookresearch/suncet src/losses.py: ``targets[targets < 1e-4] *= 0``).
PAWS_TARGET_FLOOR = 1e-4


# ----------------------------------------------------------------------------------------
# Sharpening and soft cross-entropy (shared by PAWS, MixMatch and FeatMatch)
# ----------------------------------------------------------------------------------------
def sharpen(p: Tensor, T: float) -> Tensor:
    r"""Temperature sharpening of probability rows.

    .. math::
        \operatorname{Sharpen}(p, T)_k = \frac{p_k^{1/T}}{\sum_j p_j^{1/T}}

    ``T < 1`` makes each distribution peakier (``T -> 0`` tends to one-hot at the argmax),
    ``T = 1`` leaves a normalised row unchanged and ``T > 1`` flattens it. The argmax never
    moves because ``x -> x^{1/T}`` is increasing.

    Used with ``T = 0.5`` for MixMatch's label guess (Berthelot et al. 2019, Eq. 7;
    ``google-research/mixmatch`` ``mixmatch.py`` ``guess_label``), ``T = 0.25`` for PAWS targets
    (``facebookresearch/suncet`` ``src/losses.py`` ``sharpen``) and ``T = 0.75`` for FeatMatch's
    pseudo-labels.

    Args:
        p: ``[N, C]`` non-negative probabilities (rows need not be normalised exactly: the
            output is renormalised).
        T: temperature, ``> 0``.

    Returns:
        ``[N, C]`` sharpened probabilities, rows summing to 1, same dtype/device as ``p``.

    Raises:
        ValueError: ``p`` is not a floating 2-D tensor, has negative entries, or ``T <= 0``.
    """
    T = _check_sharpen_args(p, T)
    # 1. Work in log space: p^(1/T) / sum_j p_j^(1/T) == softmax(log(p) / T). Raising small
    #    probabilities to a large power 1/T underflows to 0 (and 0/0 = nan) when T is small;
    #    the log-space softmax subtracts the row maximum first and stays finite.
    # 2. Clamp at the smallest positive float so that log(0) is finite: an exact zero then
    #    contributes tiny^(1/T) ~ 0, and its gradient is 0 instead of nan.
    log_p = torch.log(p.clamp_min(torch.finfo(p.dtype).tiny))
    return torch.softmax(log_p / T, dim=1)


def soft_cross_entropy(logits: Tensor, target_probs: Tensor) -> Tensor:
    r"""Cross-entropy between soft targets and the softmax of ``logits``, averaged over rows.

    .. math::
        \mathcal{L} = \frac{1}{N} \sum_{i=1}^{N} \Big( -\sum_{k=1}^{C} t_{ik} \log \operatorname{softmax}(z_i)_k \Big)

    The targets are treated as constants (``detach``): targets are guessed labels / mixed
    one-hot labels, and no gradient should flow into whatever produced them. This is
    MixMatch's labelled term (``softmax_cross_entropy_with_logits_v2`` on mixed one-hot labels,
    ``google-research/mixmatch`` ``mixmatch.py``) and FeatMatch's ``log_loss``
    (``GT-RIPL/FeatMatch`` ``loss/common.py``: ``-mean(sum(prob.detach() * log_softmax(logits)))``).

    Args:
        logits: ``[N, C]`` unnormalised class scores.
        target_probs: ``[N, C]`` target distributions (rows >= 0 summing to 1).

    Returns:
        Scalar tensor.
    """
    _check_soft_cross_entropy_args(logits, target_probs)
    # log_softmax is the numerically stable log(softmax(z)) (no log(0) for very negative logits).
    log_probs = F.log_softmax(logits, dim=1)
    return -(target_probs.detach() * log_probs).sum(dim=1).mean()


# ----------------------------------------------------------------------------------------
# PAWS
# ----------------------------------------------------------------------------------------
def snn(
    query: Tensor,
    support_embeddings: Tensor,
    support_labels: Tensor,
    temperature: float = 0.1,
) -> Tensor:
    r"""PAWS soft-nearest-neighbour classifier: class probabilities from labelled supports.

    .. math::
        \pi(z_i) = \sum_{m=1}^{M} \frac{\exp(\hat z_i \cdot \hat z_{S,m} / \tau)}
                   {\sum_{m'} \exp(\hat z_i \cdot \hat z_{S,m'} / \tau)} \, y_{S,m}
        \;=\; \operatorname{softmax}\!\big(\hat z \hat z_S^{\top} / \tau\big)\, y_S,
        \qquad \hat z = z / \lVert z \rVert_2

    Each query is compared (cosine similarity) with every support embedding; the softmax over
    the supports (``dim=1``) gives attention weights, and the prediction is the weighted
    average of the supports' labels. Matches ``snn`` inside ``init_paws_loss`` in
    ``facebookresearch/suncet`` ``src/losses.py`` (``softmax(query @ supports.T / tau) @ labels``
    after ``torch.nn.functional.normalize``); ``tau = 0.1`` is its default.

    Args:
        query: ``[N, D]`` embeddings to classify (normalised inside).
        support_embeddings: ``[M, D]`` labelled support embeddings (normalised inside).
        support_labels: ``[M, C]`` one-hot (or label-smoothed) float labels of the supports.
        temperature: ``tau > 0``; smaller means closer to hard nearest neighbour.

    Returns:
        ``[N, C]`` class probabilities (rows sum to 1).
    """
    temperature = _check_snn_args(query, support_embeddings, support_labels, temperature)

    # 1. L2-normalise, so that the dot product is a cosine similarity in [-1, 1] and the
    #    temperature alone controls how sharp the neighbour weights are.
    query = F.normalize(query, dim=1)
    support_embeddings = F.normalize(support_embeddings, dim=1)
    # 2. Soft nearest neighbours: a softmax over the M supports for every query.
    neighbour_weights = torch.softmax(query @ support_embeddings.T / temperature, dim=1)  # [N, M]
    # 3. The prediction is the neighbour-weighted average of the support labels.
    return neighbour_weights @ support_labels  # [N, C]


def me_max_regularizer(probabilities: Tensor, sharpen_temperature: float = 0.25) -> Tensor:
    r"""PAWS mean-entropy-maximisation (ME-MAX) term: negative entropy of the mean prediction.

    .. math::
        \bar p = \frac{1}{N} \sum_{i=1}^{N} \operatorname{Sharpen}(p_i, T), \qquad
        \mathcal{R} = \sum_{k=1}^{C} \bar p_k \log \bar p_k = -H(\bar p)

    Minimising :math:`\mathcal{R}` pushes the *average* prediction towards uniform, so that the
    model cannot collapse to predicting one class for every image, while each individual
    prediction may stay confident. The minimum is :math:`-\log C`, reached when :math:`\bar p`
    is uniform. There is no ``+ log C`` offset.

    Matches Step 4 of ``init_paws_loss`` in ``facebookresearch/suncet`` ``src/losses.py``:
    ``avg_probs = AllReduce(mean(sharpen(probs), dim=0))`` and
    ``rloss -= sum(log(avg_probs ** (-avg_probs)))`` (note it averages the **sharpened** anchor
    predictions). Here there is no distributed all-reduce: the mean is over this batch.

    Args:
        probabilities: ``[N, C]`` predictions (e.g. :func:`snn` outputs of the anchor views).
        sharpen_temperature: ``T > 0`` used to sharpen each row before averaging.

    Returns:
        Scalar tensor, ``>= -log C``.
    """
    sharpen_temperature = _check_me_max_args(probabilities, sharpen_temperature)
    # 1. Average the sharpened predictions over the batch.
    mean_prediction = sharpen(probabilities, sharpen_temperature).mean(dim=0)  # [C]
    # 2. sum_k pbar_k log pbar_k. The official code writes log(pbar^(-pbar)), which is 0 for a
    #    class with pbar = 0; the clamp reproduces that (0 * log(tiny) = 0) without a nan.
    log_mean = torch.log(mean_prediction.clamp_min(torch.finfo(mean_prediction.dtype).tiny))
    return (mean_prediction * log_mean).sum()


def paws(
    anchor_views: Tensor,
    target_views: Tensor,
    support_embeddings: Tensor,
    support_labels: Tensor,
    temperature: float = 0.1,
    sharpen_temperature: float = 0.25,
    me_max: bool = True,
    multicrop: int = 0,
    target_support_embeddings: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    r"""PAWS loss: cross-entropy to sharpened soft-nearest-neighbour targets, plus ME-MAX.

    With :math:`\pi` the soft nearest neighbour classifier (:func:`snn`), anchor predictions
    :math:`p_i = \pi(z_i)` and targets :math:`t_i = \operatorname{Sharpen}(\pi(z^+_i), T)`
    computed **without gradient** from the target views:

    .. math::
        \mathcal{L}_{\text{PAWS}} = \frac{1}{n} \sum_{i=1}^{n} \Big( -\sum_k t_{ik} \log p_{ik} \Big)
        \qquad
        \mathcal{R}_{\text{ME-MAX}} = \sum_k \bar p_k \log \bar p_k,\;
        \bar p = \tfrac{1}{n} \textstyle\sum_i \operatorname{Sharpen}(p_i, T)

    The training step minimises ``cross_entropy + me_max_term``
    (``facebookresearch/suncet`` ``src/paws_train.py``: ``loss = ploss + me_max``).

    Conventions of ``init_paws_loss`` in ``facebookresearch/suncet`` ``src/losses.py``:

    * **Pairing.** Row ``i`` of ``target_views`` is the target of row ``i`` of the anchors.
      The caller swaps the two global views, e.g. ``target_views = cat([h2, h1])`` for anchors
      ``cat([z1, z2, ...])``, so each view is pulled towards the *other* view's assignment
      (``paws_train.py`` does exactly this swap).
    * **Multi-crop.** With ``multicrop = m`` the anchors are ``[view 1 (B); view 2 (B); m*B small
      crops]`` (small crop ``j`` of image ``b`` is row ``2B + jB + b``) and ``target_views`` has
      ``2B`` rows. Every small crop's target is the average of its image's two global targets,
      ``0.5 * (t[:B] + t[B:])``, repeated ``m`` times (official:
      ``mc_target = 0.5*(targets[:batch_size]+targets[batch_size:])``). The average is symmetric,
      so it does not matter that the global targets were swapped.
    * **Target floor.** Target entries below ``1e-4`` are set to 0 (``targets[targets < 1e-4] *= 0``);
      rows are *not* renormalised afterwards, as in the official code.
    * **Supports.** ``paws_train.py`` computes anchors and anchor supports from ``z`` (output of
      the optional prediction head) and targets and target supports from ``h`` (the projection
      output before that head, detached); without a prediction head ``z = h``. Pass the target
      supports as ``target_support_embeddings`` (they must share the target views' dimension);
      by default the targets use ``support_embeddings``.
    * ``tau = 0.1`` (``temperature``) and ``T = 0.25`` (``sharpen_temperature``) are the official
      defaults; the same ``T`` sharpens the anchor predictions inside ME-MAX.

    Args:
        anchor_views: ``[(2 + multicrop) * B, D]`` embeddings that receive gradients.
        target_views: ``[2B, D]`` embeddings used (under ``no_grad``) to build targets; with
            ``multicrop = 0`` it must have as many rows as ``anchor_views``.
        support_embeddings: ``[M, D]`` labelled supports for the anchor predictions.
        support_labels: ``[M, C]`` one-hot / smoothed labels of the supports.
        temperature: ``tau > 0`` of the soft nearest neighbours.
        sharpen_temperature: ``T > 0`` for target sharpening and ME-MAX.
        me_max: whether to compute the ME-MAX term; if ``False`` it is a zero tensor.
        multicrop: number ``m >= 0`` of small crops per image in ``anchor_views``.
        target_support_embeddings: optional ``[M, D]`` supports for the targets.

    Returns:
        ``(cross_entropy, me_max_term)``, two scalar tensors.
    """
    temperature, sharpen_temperature = _check_paws_args(
        anchor_views, target_views, support_labels, target_support_embeddings, multicrop, temperature,
        sharpen_temperature)
    if target_support_embeddings is None:
        target_support_embeddings = support_embeddings
    num_targets = target_views.shape[0]

    # 1. Anchor predictions: soft nearest neighbours of every anchor view (with gradient).
    anchor_probs = snn(anchor_views, support_embeddings, support_labels, temperature)

    # 2. Targets: sharpened soft-nearest-neighbour predictions of the target views. No gradient:
    #    the target is a fixed "label" for this step, like the teacher in self-distillation.
    with torch.no_grad():
        targets = snn(target_views.detach(), target_support_embeddings.detach(), support_labels, temperature)
        targets = sharpen(targets, sharpen_temperature)
        if multicrop > 0:
            # 2a. A small crop sees only part of the image, so its target is the average of the
            #     two global-view targets of the same image, repeated once per small crop.
            batch_size = num_targets // 2
            small_crop_target = 0.5 * (targets[:batch_size] + targets[batch_size:])
            targets = torch.cat([targets] + [small_crop_target] * multicrop, dim=0)
        # 2b. Drop near-zero target mass (official "numerical stability" step, no renormalisation).
        targets = torch.where(targets < PAWS_TARGET_FLOOR, torch.zeros_like(targets), targets)

    # 3. Cross-entropy H(target, prediction), averaged over all anchors.
    cross_entropy = -(targets * torch.log(anchor_probs)).sum(dim=1).mean()

    # 4. ME-MAX: keep the mean (sharpened) anchor prediction close to uniform.
    if me_max:
        me_max_term = me_max_regularizer(anchor_probs, sharpen_temperature)
    else:
        me_max_term = anchor_probs.new_zeros(())
    return cross_entropy, me_max_term


# ----------------------------------------------------------------------------------------
# MixMatch
# ----------------------------------------------------------------------------------------
def mixmatch_guess_labels(
    logits_per_augmentation: Tensor | Sequence[Tensor],
    T: float = 0.5,
) -> Tensor:
    r"""MixMatch label guessing: average the predictions over n_a augmentations, then sharpen.

    .. math::
        \bar q_b = \frac{1}{n_a} \sum_{a=1}^{n_a} \operatorname{softmax}(z_{b,a}), \qquad
        q_b = \operatorname{Sharpen}(\bar q_b, T)

    (Berthelot et al. 2019, Eq. 6-7; ``google-research/mixmatch`` ``mixmatch.py``
    ``guess_label`` with ``T = 0.5`` and ``nu`` = :math:`n_a` = 2). Computed without gradient
    (official: ``tf.stop_gradient(guess.p_target)``).

    Args:
        logits_per_augmentation: ``[n_a, N, C]`` logits, or a list of n_a ``[N, C]`` logits, one
            per augmentation of the same N unlabelled images.
        T: sharpening temperature ``> 0``.

    Returns:
        ``[N, C]`` guessed label distributions (detached, rows sum to 1).
    """
    stacked, T = _check_mixmatch_guess_labels_args(logits_per_augmentation, T)  # [n_a, N, C]
    with torch.no_grad():
        # 1. Average the class distributions (not the logits) over the n_a augmentations.
        mean_probs = torch.softmax(stacked.detach(), dim=-1).mean(dim=0)  # [N, C]
        # 2. Sharpen to lower the entropy of the guess (implicit entropy minimisation).
        return sharpen(mean_probs, T)


def mixup(
    x1: Tensor,
    p1: Tensor,
    x2: Tensor,
    p2: Tensor,
    lam: float | Tensor,
) -> tuple[Tensor, Tensor]:
    r"""MixMatch's MixUp variant: convex combination that stays closer to the first input.

    .. math::
        \lambda' = \max(\lambda, 1 - \lambda), \quad
        x' = \lambda' x_1 + (1 - \lambda') x_2, \quad
        p' = \lambda' p_1 + (1 - \lambda') p_2

    Taking :math:`\lambda' \ge 0.5` (Berthelot et al. 2019, Eq. 9) keeps each mixed sample
    closer to ``x1``, so mixed labelled samples can still be used in the labelled loss and mixed
    unlabelled ones in the unlabelled loss. The official code draws one
    :math:`\lambda \sim \mathrm{Beta}(\alpha, \alpha)` **per sample**
    (``google-research/mixmatch`` ``libml/layers.py`` ``MixMode.augment_pair``:
    ``mix = Beta(beta, beta).sample([N, 1, 1, 1]); mix = max(mix, 1 - mix)``), which is why
    ``lam`` may be a ``[N]`` tensor. Drawing λ and the permutation of ``x2`` is the caller's job.

    Args:
        x1: ``[N, ...]`` float images or features.
        p1: ``[N, C]`` label distributions of ``x1``.
        x2: ``[N, ...]`` partners (same shape as ``x1``), e.g. a shuffled copy of the batch.
        p2: ``[N, C]`` label distributions of ``x2``.
        lam: mixing coefficient in ``[0, 1]``: a Python float, a 0-d tensor, or a ``[N]`` tensor.

    Returns:
        ``(mixed_x [N, ...], mixed_p [N, C])``.
    """
    lam = _check_mixup_args(x1, p1, x2, p2, lam)  # [N]
    batch_size = x1.shape[0]
    # 1. lambda' = max(lambda, 1 - lambda) >= 0.5: the mixed sample stays closer to x1.
    lam = torch.maximum(lam, 1 - lam)
    # 2. Broadcast the per-sample weight over all non-batch dimensions ([N] -> [N, 1, 1, ...]).
    lam_x = lam.reshape((batch_size,) + (1,) * (x1.ndim - 1))
    lam_p = lam.reshape(batch_size, 1)
    # 3. Mix inputs and labels with the same weight.
    mixed_x = lam_x * x1 + (1 - lam_x) * x2
    mixed_p = lam_p * p1 + (1 - lam_p) * p2
    return mixed_x, mixed_p


def mixmatch_loss(
    logits_x: Tensor,
    targets_x: Tensor,
    logits_u: Tensor,
    targets_u: Tensor,
    lambda_u: float = 75.0,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""MixMatch loss on mixed labelled and unlabelled batches.

    .. math::
        \mathcal{L}_X = \frac{1}{|X'|} \sum_{(x, p) \in X'} H\big(p, \operatorname{softmax}(f(x))\big), \quad
        \mathcal{L}_U = \frac{1}{|U'|\,C} \sum_{(u, q) \in U'} \lVert q - \operatorname{softmax}(f(u)) \rVert_2^2,

    .. math::
        \mathcal{L} = \mathcal{L}_X + \lambda_U \mathcal{L}_U

    :math:`\mathcal{L}_U` is the mean squared error over **all** ``N_u * C`` entries, exactly
    ``tf.reduce_mean(tf.square(labels_y - tf.nn.softmax(logits_y)))`` in
    ``google-research/mixmatch`` ``mixmatch.py`` (the paper writes ``1/(L|U'|)``, the same thing).
    Targets are constants (detached), as the official targets come from ``tf.stop_gradient``.

    Ramp-up of :math:`\lambda_U` is the caller's job: the official code multiplies ``w_match`` by
    ``clip(step / (warmup_kimg << 10), 0, 1)`` where ``step`` counts training *images* and
    ``warmup_kimg = 1024``, i.e. a linear ramp over the first 1024 × 1024 images (16,384 steps
    at batch size 64). The paper uses :math:`\lambda_U = 75` for CIFAR-10 (the script's flag
    default ``w_match`` is 100).

    Args:
        logits_x: ``[N_x, C]`` logits of the mixed labelled batch.
        targets_x: ``[N_x, C]`` mixed label distributions.
        logits_u: ``[N_u, C]`` logits of the mixed unlabelled batch.
        targets_u: ``[N_u, C]`` mixed guessed label distributions.
        lambda_u: weight ``>= 0`` of the unlabelled term (already ramped by the caller).

    Returns:
        ``(total, loss_x, loss_u)`` scalar tensors.
    """
    lambda_u = _check_mixmatch_loss_args(logits_x, targets_x, logits_u, targets_u, lambda_u)
    # 1. Labelled term: soft cross-entropy against the mixed (one-hot) labels.
    loss_x = soft_cross_entropy(logits_x, targets_x)
    # 2. Unlabelled term: squared error between probabilities, averaged over every entry.
    #    The L2 loss is bounded, so it is less sensitive to wrong guesses than cross-entropy.
    loss_u = ((torch.softmax(logits_u, dim=1) - targets_u.detach()) ** 2).mean()
    total = loss_x + lambda_u * loss_u
    return total, loss_x, loss_u


# ----------------------------------------------------------------------------------------
# FixMatch
# ----------------------------------------------------------------------------------------
def fixmatch_loss(
    logits_weak: Tensor,
    logits_strong: Tensor,
    threshold: float = 0.95,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""FixMatch unlabelled loss: confident hard pseudo-labels from the weak view.

    .. math::
        q_b = \operatorname{softmax}(z^{\text{weak}}_b), \quad
        \hat y_b = \arg\max_k q_{bk}, \quad
        m_b = \mathbb{1}\big[\max_k q_{bk} \ge \gamma\big],

    .. math::
        \mathcal{L}_u = \frac{1}{N} \sum_{b=1}^{N} m_b \,
            H\big(\hat y_b, \operatorname{softmax}(z^{\text{strong}}_b)\big)

    The average is over **all** N unlabelled samples, not only the confident ones, so the loss
    scale grows as more samples pass the threshold (``google-research/fixmatch`` ``fixmatch.py``:
    ``loss_xeu = reduce_mean(loss_xeu * pseudo_mask)``; ``kekmodel/FixMatch-pytorch``:
    ``(F.cross_entropy(logits_u_s, targets_u, reduction='none') * mask).mean()``). The
    pseudo-labels come from the weak view without gradient (``tf.stop_gradient``), and the mask
    uses ``>=`` as in the official code. The supervised term and the weight
    :math:`\lambda_u = 1` are added by the caller.

    Args:
        logits_weak: ``[N, C]`` logits of the weakly augmented unlabelled images.
        logits_strong: ``[N, C]`` logits of the strongly augmented versions of the same images.
        threshold: confidence threshold :math:`\gamma \in [0, 1]` (0.95; the paper writes :math:`\tau`).

    Returns:
        ``(loss, mask, pseudo_labels)``: scalar loss; ``mask`` float ``[N]`` of 0/1 (its mean is
        the fraction of samples that passed, handy to plot); ``pseudo_labels`` int64 ``[N]``.
    """
    threshold = _check_fixmatch_loss_args(logits_weak, logits_strong, threshold)
    # 1. Pseudo-labels from the weak view: no gradient, they act as fixed targets.
    with torch.no_grad():
        weak_probs = torch.softmax(logits_weak.detach(), dim=1)
        max_probs, pseudo_labels = weak_probs.max(dim=1)
        # 2. Keep only confident predictions (as 0/1 floats, so they can multiply the loss).
        mask = (max_probs >= threshold).to(logits_weak.dtype)
    # 3. Cross-entropy of the strong view against the hard pseudo-label, per sample.
    per_sample = F.cross_entropy(logits_strong, pseudo_labels, reduction="none")
    # 4. Mean over ALL unlabelled samples (masked ones contribute 0).
    loss = (per_sample * mask).mean()
    return loss, mask, pseudo_labels


# ----------------------------------------------------------------------------------------
# S4L-Rotation
# ----------------------------------------------------------------------------------------
def s4l_loss(
    logits_labeled: Tensor,
    labels: Tensor,
    rotation_logits: Tensor,
    rotation_labels: Tensor,
    rotation_weight: float = 1.0,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""S4L-Rotation: supervised cross-entropy plus the 4-way rotation-prediction loss.

    .. math::
        \mathcal{L} = \underbrace{\frac{1}{N_l}\sum_i H(y_i, f_c(x_i))}_{\text{classification}}
        + w \underbrace{\frac{1}{R}\sum_{r} H(a_r, f_r(\operatorname{rot}_{a_r}(x_r)))}_{\text{rotation}},
        \qquad a_r \in \{0^\circ, 90^\circ, 180^\circ, 270^\circ\}

    The rotation task is self-supervised, so it uses labelled **and** unlabelled images, each
    rotated by all four angles (build them with ``ssl_course.losses.pretext.rotate_batch`` or
    ``torch.rot90``). Following ``google-research/s4l`` ``semi_supervised/rotation.py``:

    * the classification loss is the mean cross-entropy; the official code feeds all four
      rotated copies of each labelled image to the classifier with the label repeated
      (``tf.tile(labels_class[:, None], [1, num_angles])``, image-major order). To do the same
      with ``rotate_batch``, whose output is rotation-major (row ``k*B + i`` is image ``i``
      rotated by ``k*90°``), pass its class logits with ``labels.repeat(4)``;
    * the official rotation loss is the mean of two means (unlabelled rotations, labelled
      rotations); here it is one mean over all ``R`` rotation rows, which is identical when
      the two groups have the same size;
    * ``loss = loss_class + rot_loss_weight * loss_rot``.

    Args:
        logits_labeled: ``[N_l, C]`` class logits of labelled images.
        labels: ``[N_l]`` int64 class indices.
        rotation_logits: ``[R, 4]`` rotation logits of rotated (labelled and unlabelled) images.
        rotation_labels: ``[R]`` int64 rotation indices in ``{0, 1, 2, 3}`` (multiples of 90°).
        rotation_weight: ``w >= 0``.

    Returns:
        ``(total, classification, rotation)`` scalar tensors.
    """
    rotation_weight = _check_s4l_loss_args(logits_labeled, labels, rotation_logits, rotation_labels,
                                           rotation_weight)
    # 1. Supervised classification on the labelled images.
    classification = F.cross_entropy(logits_labeled, labels.long())
    # 2. Self-supervised rotation prediction on every rotated image.
    rotation = F.cross_entropy(rotation_logits, rotation_labels.long())
    total = classification + rotation_weight * rotation
    return total, classification, rotation


# ----------------------------------------------------------------------------------------
# Input checks, one helper per loss (the vocabulary is in _checks.py)
# ----------------------------------------------------------------------------------------
def _check_sharpen_args(p: Tensor, T: float | Tensor) -> float | Tensor:
    check_matrix("p", p, "[N, C]")
    check_probability_rows("p", p, must_sum_to_one=False)
    return check_positive("T", T)


def _check_soft_cross_entropy_args(logits: Tensor, target_probs: Tensor) -> None:
    check_matrix("logits", logits, "[N, C]")
    check_matrix("target_probs", target_probs, "[N, C]")
    if logits.shape != target_probs.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and target_probs {tuple(target_probs.shape)} must have the same shape"
        )
    check_same_device_dtype_all(logits=logits, target_probs=target_probs)
    check_probability_rows("target_probs", target_probs)


def _check_snn_args(query: Tensor, support_embeddings: Tensor, support_labels: Tensor,
                    temperature: float | Tensor) -> float | Tensor:
    check_matrix("query", query, "[N, D]")
    check_matrix("support_embeddings", support_embeddings, "[M, D]")
    check_tensor("support_labels", support_labels)
    if not support_labels.is_floating_point():
        raise ValueError(
            f"support_labels must be float one-hot labels of shape [M, C], got dtype {support_labels.dtype}; "
            f"build them with torch.nn.functional.one_hot(labels, num_classes).float()"
        )
    check_matrix("support_labels", support_labels, "[M, C]")
    if query.shape[1] != support_embeddings.shape[1]:
        raise ValueError(
            f"query has dimension D={query.shape[1]} but support_embeddings has D={support_embeddings.shape[1]}"
        )
    if support_labels.shape[0] != support_embeddings.shape[0]:
        raise ValueError(
            f"support_labels has {support_labels.shape[0]} rows but there are "
            f"{support_embeddings.shape[0]} support embeddings; need one label row per support"
        )
    check_same_device_dtype_all(query=query, support_embeddings=support_embeddings, support_labels=support_labels)
    check_probability_rows("support_labels", support_labels)
    return check_positive("temperature", temperature)


def _check_me_max_args(probabilities: Tensor, sharpen_temperature: float | Tensor) -> float | Tensor:
    check_matrix("probabilities", probabilities, "[N, C]")
    return check_positive("sharpen_temperature", sharpen_temperature)


def _check_paws_args(anchor_views: Tensor, target_views: Tensor, support_labels: Tensor,
                     target_support_embeddings: Tensor | None, multicrop: int, temperature: float | Tensor,
                     sharpen_temperature: float | Tensor) -> tuple[float | Tensor, float | Tensor]:
    """Shapes of the anchors, targets and supports; returns the two temperatures."""
    check_matrix("anchor_views", anchor_views, "[(2 + multicrop) * B, D]")
    check_matrix("target_views", target_views, "[2B, D]")
    if isinstance(multicrop, bool) or not isinstance(multicrop, int) or multicrop < 0:
        raise ValueError(f"multicrop must be an int >= 0 (number of small crops), got {multicrop!r}")
    num_targets = target_views.shape[0]
    if multicrop == 0:
        if anchor_views.shape[0] != num_targets:
            raise ValueError(
                f"with multicrop=0, anchor_views ({anchor_views.shape[0]} rows) and target_views "
                f"({num_targets} rows) must have the same number of rows: row i of target_views is the "
                "target of anchor i"
            )
    else:
        if num_targets % 2 != 0:
            raise ValueError(
                f"with multicrop={multicrop}, target_views must hold the two global views [2B, D], "
                f"got an odd number of rows {num_targets}"
            )
        batch_size = num_targets // 2
        expected = (2 + multicrop) * batch_size
        if anchor_views.shape[0] != expected:
            raise ValueError(
                f"with multicrop={multicrop} and B={batch_size} images (target_views has 2B={num_targets} rows), "
                f"anchor_views must have (2 + multicrop) * B = {expected} rows, got {anchor_views.shape[0]}"
            )
    check_tensor("support_labels", support_labels)
    if target_support_embeddings is not None:
        check_matrix("target_support_embeddings", target_support_embeddings, "[M, D]")
        if target_support_embeddings.shape[0] != support_labels.shape[0]:
            raise ValueError(
                f"target_support_embeddings has {target_support_embeddings.shape[0]} rows but support_labels "
                f"has {support_labels.shape[0]}"
            )
    return check_positive("temperature", temperature), check_positive("sharpen_temperature", sharpen_temperature)


def _check_mixmatch_guess_labels_args(logits_per_augmentation: Tensor | Sequence[Tensor],
                                      T: float | Tensor) -> tuple[Tensor, float | Tensor]:
    """Check the n_a logits and ``T``; return the logits stacked as ``[n_a, N, C]``, and ``T``."""
    if isinstance(logits_per_augmentation, (list, tuple)):
        if len(logits_per_augmentation) == 0:
            raise ValueError("logits_per_augmentation must contain at least one [N, C] tensor")
        for index, logits in enumerate(logits_per_augmentation):
            check_matrix(f"logits_per_augmentation[{index}]", logits, "[N, C]")
            if logits.shape != logits_per_augmentation[0].shape:
                raise ValueError(
                    f"all augmentations must have the same shape, got {tuple(logits_per_augmentation[0].shape)} "
                    f"and {tuple(logits.shape)} (index {index})"
                )
            check_same_device_dtype_all(first=logits_per_augmentation[0],
                                        **{f"logits_per_augmentation[{index}]": logits})
        return torch.stack(list(logits_per_augmentation), dim=0), check_positive("T", T)
    check_floating("logits_per_augmentation", logits_per_augmentation)
    if logits_per_augmentation.ndim != 3:
        raise ValueError(
            "logits_per_augmentation must be [n_a, N, C] (or a list of n_a [N, C] tensors, one per augmentation), "
            f"got shape {tuple(logits_per_augmentation.shape)}"
        )
    if 0 in logits_per_augmentation.shape:
        raise ValueError(f"logits_per_augmentation must not be empty, got {tuple(logits_per_augmentation.shape)}")
    return logits_per_augmentation, check_positive("T", T)


def _check_mixup_args(x1: Tensor, p1: Tensor, x2: Tensor, p2: Tensor, lam: float | Tensor) -> Tensor:
    """Check the pairs and return ``lam`` as a ``[N]`` tensor in the dtype and on the device of ``x1``."""
    check_floating("x1", x1)
    check_floating("x2", x2)
    if x1.shape != x2.shape:
        raise ValueError(f"x1 {tuple(x1.shape)} and x2 {tuple(x2.shape)} must have the same shape")
    if x1.ndim < 1 or x1.shape[0] == 0:
        raise ValueError(f"x1 must have a non-empty batch dimension [N, ...], got shape {tuple(x1.shape)}")
    check_matrix("p1", p1, "[N, C]")
    check_matrix("p2", p2, "[N, C]")
    if p1.shape != p2.shape or p1.shape[0] != x1.shape[0]:
        raise ValueError(
            f"p1 {tuple(p1.shape)} and p2 {tuple(p2.shape)} must both be [N, C] with N = {x1.shape[0]} (rows of x1)"
        )
    check_same_device_dtype_all(x1=x1, x2=x2, p1=p1, p2=p2)
    check_probability_rows("p1", p1)
    check_probability_rows("p2", p2)
    batch_size = x1.shape[0]
    if isinstance(lam, Tensor):
        if not lam.is_floating_point():
            raise ValueError(f"lam must be a float tensor, got dtype {lam.dtype}")
        if lam.ndim == 0:
            lam = lam.reshape(1).expand(batch_size)
        elif lam.ndim != 1 or lam.shape[0] != batch_size:
            raise ValueError(f"lam must be a float, a 0-d tensor or a [N={batch_size}] tensor, "
                             f"got shape {tuple(lam.shape)}")
        if value_checks_enabled() and bool(((lam < 0) | (lam > 1)).any()):
            raise ValueError("every lam must lie in [0, 1]")
        return lam.to(device=x1.device, dtype=x1.dtype)
    return torch.full((batch_size,), check_unit_interval("lam", lam), device=x1.device, dtype=x1.dtype)


def _check_mixmatch_loss_args(logits_x: Tensor, targets_x: Tensor, logits_u: Tensor, targets_u: Tensor,
                              lambda_u: float | Tensor) -> float | Tensor:
    check_matrix("logits_u", logits_u, "[N_u, C]")
    check_matrix("targets_u", targets_u, "[N_u, C]")
    if logits_u.shape != targets_u.shape:
        raise ValueError(f"logits_u {tuple(logits_u.shape)} and targets_u {tuple(targets_u.shape)} "
                         "must have the same shape")
    check_same_device_dtype_all(logits_u=logits_u, targets_u=targets_u)
    check_probability_rows("targets_u", targets_u)
    check_matrix("logits_x", logits_x, "[N_x, C]")
    check_matrix("targets_x", targets_x, "[N_x, C]")
    if logits_x.shape != targets_x.shape:
        raise ValueError(f"logits_x {tuple(logits_x.shape)} and targets_x {tuple(targets_x.shape)} "
                         "must have the same shape")
    check_same_device_dtype_all(logits_x=logits_x, targets_x=targets_x, logits_u=logits_u)
    check_probability_rows("targets_x", targets_x)
    if logits_x.shape[1] != logits_u.shape[1]:
        raise ValueError(f"logits_x has {logits_x.shape[1]} classes but logits_u has {logits_u.shape[1]}")
    return check_non_negative("lambda_u", lambda_u)


def _check_fixmatch_loss_args(logits_weak: Tensor, logits_strong: Tensor,
                              threshold: float | Tensor) -> float | Tensor:
    check_matrix("logits_weak", logits_weak, "[N, C]")
    check_matrix("logits_strong", logits_strong, "[N, C]")
    if logits_weak.shape != logits_strong.shape:
        raise ValueError(
            f"logits_weak {tuple(logits_weak.shape)} and logits_strong {tuple(logits_strong.shape)} "
            f"must have the same shape (the same N images, two augmentations)"
        )
    check_same_device_dtype_all(logits_weak=logits_weak, logits_strong=logits_strong)
    return check_unit_interval("threshold", threshold)


def _check_s4l_loss_args(logits_labeled: Tensor, labels: Tensor, rotation_logits: Tensor,
                         rotation_labels: Tensor, rotation_weight: float | Tensor) -> float | Tensor:
    check_matrix("logits_labeled", logits_labeled, "[N_l, C]")
    check_class_indices("labels", labels, logits_labeled.shape[0], logits_labeled.shape[1])
    check_matrix("rotation_logits", rotation_logits, "[R, 4]")
    if rotation_logits.shape[1] != 4:
        raise ValueError(
            f"rotation_logits must have 4 columns (0, 90, 180, 270 degrees), got shape {tuple(rotation_logits.shape)}"
        )
    check_class_indices("rotation_labels", rotation_labels, rotation_logits.shape[0], 4)
    return check_non_negative("rotation_weight", rotation_weight)
