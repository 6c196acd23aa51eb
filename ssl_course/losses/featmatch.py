r"""FeatMatch losses: sharpened pseudo-labels, the consistency ramp and the total loss.

Kuo, Ma, Huang and Kira, "FeatMatch: Feature-Based Augmentation for Semi-Supervised
Learning", ECCV 2020. Official code: ``GT-RIPL/FeatMatch`` (``model/model.py`` ``AttenHead``,
``train/featmatch.py`` ``FeatMatchTrainer``, ``train/ssltrainer.py``, ``loss/common.py``).

How the pieces fit in one training step (names of the official code in brackets):

1. The backbone maps images to features ``f`` (``fx``). Every few hundred iterations
   (``sample_interval = 500``) class prototypes are re-extracted from stored features by
   per-class k-means (:func:`ssl_course.cluster.extract_prototypes`; ``extract_fp``).
2. The attention module refines each feature with information from the prototypes,
   ``g = AugF(f)`` (:class:`ssl_course.models.PrototypeAttention`; ``AttenHead``, output ``fxg``).
3. One linear classifier is applied to both: ``p_g = Clf(g)`` (``logits_xg``) and
   ``p_f = Clf(f)`` (``logits_xf``).
4. Pseudo-label: the refined prediction of the weakly augmented view, sharpened with
   ``T = 0.75`` and detached (:func:`featmatch_pseudo_labels`; ``prob_xu_fake``).
5. Consistency of every view of an unlabelled image (``K`` strong views and the weak one,
   official ``K = 8``; :func:`featmatch_consistency`) with the pseudo-label, both with the soft
   cross-entropy (``criterion = "log_loss"`` in the configs, :func:`soft_cross_entropy`):
   ``L_con-g`` uses the refined prediction ``p_g`` (official ``loss_con``, weighted by
   ``config['loss']['mix']``) and ``L_con-f`` uses the raw-feature prediction ``p_f`` (official
   ``loss_graph``, weighted by ``config['loss']['graph']``). The CIFAR-10 configs use
   ``mix = 0.5`` and ``graph = 2.0``.
6. ``L = L_clf + λ_g L_con-g + λ_f L_con-f`` (:func:`featmatch_loss`), with the consistency
   weights ramped up by :func:`consistency_ramp`.

The official trainer also mixes the batch with MixUp (``data_mixup``) before computing these
losses, trains the first ``pretrain_iters = 3000`` iterations without attention, and builds
prototypes from labelled features plus confident unlabelled ones; those are orchestration
choices left to the method class.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ._checks import check_3d, check_matrix, check_non_negative, check_positive, check_same_shape, check_tensor
from .semi_supervised import sharpen, soft_cross_entropy  # noqa: F401  (FeatMatch's "log_loss")

__all__ = [
    "featmatch_pseudo_labels",
    "featmatch_consistency",
    "featmatch_loss",
    "consistency_ramp",
]


# ----------------------------------------------------------------------------------------
# Pseudo-labels, ramp and total loss
# ----------------------------------------------------------------------------------------
def featmatch_pseudo_labels(refined_logits_weak: Tensor, T: float = 0.75) -> Tensor:
    r"""FeatMatch pseudo-labels: sharpened refined prediction of the weak view, no gradient.

    .. math::
        \hat p = \operatorname{Sharpen}\big(\operatorname{softmax}(\operatorname{Clf}(g_{\text{weak}})), T\big),
        \qquad T = 0.75

    ``refined_logits_weak`` are the classifier logits of the *attention-refined* features
    ``g = AugF(f)`` of the weakly augmented unlabelled images. Matches ``train2`` in
    ``GT-RIPL/FeatMatch`` ``train/featmatch.py``: ``softmax(logits_xgu[:, 0].detach())`` raised to
    ``1 / T`` and renormalised, with ``T = 0.75`` from the configs (``data_augment.T``).

    Args:
        refined_logits_weak: ``[N, C]`` logits.
        T: sharpening temperature ``> 0``.

    Returns:
        ``[N, C]`` detached soft pseudo-labels (rows sum to 1).
    """
    T = _check_featmatch_pseudo_labels_args(refined_logits_weak, T)
    with torch.no_grad():
        # 1. Class distribution of the refined weak-view features.
        probabilities = torch.softmax(refined_logits_weak.detach(), dim=1)
        # 2. Sharpen to a lower-entropy target.
        return sharpen(probabilities, T)


def featmatch_consistency(logits: Tensor, targets: Tensor) -> Tensor:
    r"""FeatMatch consistency over several views of each unlabelled image.

    .. math::
        \mathcal{L}_{\text{con}} = \frac{1}{V}\sum_{v=1}^{V} \frac{1}{N}\sum_{i=1}^{N}
            H\big(\tilde p_{v,i}, \operatorname{softmax}(z_{v,i})\big),
        \qquad H(t, q) = -\sum_{c=1}^{C} t_c \log q_c

    ``z_{v,i}`` are the classifier logits of view ``v`` of unlabelled image ``i`` (after MixUp, so
    ``\tilde p_{v,i}`` is that row's mixed pseudo-label). The official trainer
    (``GT-RIPL/FeatMatch`` ``train/featmatch.py`` ``train2``) feeds every image as ``1 + K`` views
    (view 0 the weak flip-and-crop one that also gives the pseudo-label, then ``K`` RandAugment
    views, ``K = 8`` on CIFAR-10), so ``V = K + 1``: the **weak view is in the consistency term**
    with its own sharpened prediction as target, and every view weighs ``1 / V``. The official
    ``log_loss`` averages over all ``V · N`` rows at once, which is the same average because every
    view has ``N`` rows. Used for both ``L_con-g`` (refined features) and ``L_con-f`` (raw features).

    Args:
        logits: ``[V, N, C]`` logits, view-major.
        targets: ``[V, N, C]`` soft targets (rows >= 0 summing to 1), treated as constants.

    Returns:
        Scalar tensor.
    """
    _check_featmatch_consistency_args(logits, targets)
    # All views have N rows, so the mean over V·N rows is the mean over views of per-view means.
    return soft_cross_entropy(logits.flatten(0, 1), targets.flatten(0, 1))


def consistency_ramp(step: int | float, ramp_steps: int | float, max_weight: float, schedule: str = "sigmoid") -> float:
    r"""Ramp-up of a consistency weight from 0 to ``max_weight`` over ``ramp_steps`` steps.

    With :math:`t = \operatorname{clip}(\text{step} / \text{ramp\_steps}, 0, 1)`:

    .. math::
        w_{\text{sigmoid}} = w_{\max} \exp\!\big(-5 (1 - t)^2\big), \qquad
        w_{\text{linear}} = w_{\max}\, t

    The "sigmoid-shaped" ramp is the common one from Laine & Aila (2017) / Mean Teacher
    (Tarvainen & Valpola 2017). The official FeatMatch code uses the **linear** ramp
    (``GT-RIPL/FeatMatch`` ``train/ssltrainer.py`` ``get_consistency_coeff`` returns
    ``curr_iter / coeff_rampup``, with the exponential version commented out, and
    ``coeff_rampup = 75000`` iterations on CIFAR-10): use ``schedule="linear"`` to match it.
    After ``ramp_steps`` the weight stays at ``max_weight``; ``ramp_steps = 0`` means no ramp.

    Args:
        step: current step ``>= 0``.
        ramp_steps: length of the ramp ``>= 0``.
        max_weight: final weight ``>= 0``.
        schedule: ``"sigmoid"`` or ``"linear"``.

    Returns:
        The weight as a Python float.
    """
    step, ramp_steps, max_weight = _check_consistency_ramp_args(step, ramp_steps, max_weight, schedule)
    if ramp_steps == 0:
        return max_weight
    progress = min(step / ramp_steps, 1.0)
    if schedule == "linear":
        return max_weight * progress
    return max_weight * math.exp(-5.0 * (1.0 - progress) ** 2)


def featmatch_loss(
    clf_loss: Tensor,
    con_g_loss: Tensor,
    con_f_loss: Tensor,
    lambda_g: float,
    lambda_f: float,
) -> Tensor:
    r"""FeatMatch total loss: supervised term plus two consistency terms.

    .. math::
        \mathcal{L} = \mathcal{L}_{\text{clf}}
            + \lambda_g \mathcal{L}_{\text{con-g}} + \lambda_f \mathcal{L}_{\text{con-f}}

    * :math:`\mathcal{L}_{\text{clf}}`: cross-entropy of labelled images (official: on the
      refined prediction ``logits_xg`` of the mixed labelled batch);
    * :math:`\mathcal{L}_{\text{con-g}} = \frac{1}{V}\sum_{v=1}^{V} H(\hat p, \operatorname{Clf}(g_v))`:
      consistency of the predictions of the ``V = K + 1`` views (``K`` strong views and the weak
      one) from the **attention-refined** features ``g = AugF(f)`` with the pseudo-label
      :math:`\hat p` (official ``loss_con``, weight ``config['loss']['mix']``, 0.5 on CIFAR-10);
    * :math:`\mathcal{L}_{\text{con-f}} = \frac{1}{V}\sum_{v=1}^{V} H(\hat p, \operatorname{Clf}(f_v))`:
      the same for the predictions from the **raw** image features ``f`` (official
      ``loss_graph``, weight ``config['loss']['graph']``, 2.0 on CIFAR-10).

    Both consistency terms are :func:`featmatch_consistency` against
    :func:`featmatch_pseudo_labels`. The official code multiplies both lambdas by the ramp
    (``loss_pred + coeff * (mix * loss_con + graph * loss_graph)``), so pass already-ramped
    weights, e.g. ``lambda_g = consistency_ramp(step, ramp, 0.5, "linear")``. This function is
    only the weighted sum; it exists so the formula has one documented home.

    Args:
        clf_loss: scalar supervised loss.
        con_g_loss: scalar consistency loss on refined features.
        con_f_loss: scalar consistency loss on raw features.
        lambda_g: weight ``>= 0`` of ``con_g_loss``.
        lambda_f: weight ``>= 0`` of ``con_f_loss``.

    Returns:
        Scalar tensor.
    """
    lambda_g, lambda_f = _check_featmatch_loss_args(clf_loss, con_g_loss, con_f_loss, lambda_g, lambda_f)
    return clf_loss + lambda_g * con_g_loss + lambda_f * con_f_loss


# ----------------------------------------------------------------------------------------
# Input checks, one helper per function (the vocabulary is in _checks.py)
# ----------------------------------------------------------------------------------------
def _check_featmatch_pseudo_labels_args(refined_logits_weak: Tensor, T: float | Tensor) -> float | Tensor:
    check_matrix("refined_logits_weak", refined_logits_weak, "[N, C]")
    return check_positive("T", T)


def _check_featmatch_consistency_args(logits: Tensor, targets: Tensor) -> None:
    fix = "stack the views first: [views, images, classes], e.g. logits.view(V, N, C)"
    check_3d("logits", logits, "[V, N, C]", fix)
    check_3d("targets", targets, "[V, N, C]", fix)
    check_same_shape("logits", logits, "targets", targets)


def _check_consistency_ramp_args(step: object, ramp_steps: object, max_weight: object,
                                 schedule: str) -> tuple[float, float, float]:
    numbers = tuple(float(check_non_negative(name, value)) for name, value in
                    (("step", step), ("ramp_steps", ramp_steps), ("max_weight", max_weight)))
    if schedule not in ("sigmoid", "linear"):
        raise ValueError(f"schedule must be 'sigmoid' or 'linear', got {schedule!r}")
    return numbers


def _check_featmatch_loss_args(clf_loss: Tensor, con_g_loss: Tensor, con_f_loss: Tensor, lambda_g: float | Tensor,
                               lambda_f: float | Tensor) -> tuple[float | Tensor, float | Tensor]:
    for name, value in (("clf_loss", clf_loss), ("con_g_loss", con_g_loss), ("con_f_loss", con_f_loss)):
        check_tensor(name, value)
        if value.ndim != 0:
            raise ValueError(f"{name} must be a scalar (0-d) tensor, got shape {tuple(value.shape)}")
        if not value.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    return check_non_negative("lambda_g", lambda_g), check_non_negative("lambda_f", lambda_f)
