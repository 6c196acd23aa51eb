r"""Transformation losses: AET's parameter regression, its variational form (AVT), En-AET's ensemble and consistency.

A transformation :math:`t` with parameters :math:`\theta_t` (``ssl_course.data.transforms_params``)
turns an image :math:`x` into :math:`t(x)`. A decoder sees the encoder's representations of both
and predicts :math:`\hat\theta_t`; the encoder is trained, through the decoder, to make that
prediction possible, so its representation must keep whatever the transformation changed
(orientation, position, scale, colour...).

* AET – Zhang, Qi, Wang and Luo, "AET vs. AED: Unsupervised Representation Learning by
  Auto-Encoding Transformations rather than Data", CVPR 2019 (:func:`aet_loss`).
* AVT – Qi, Zhang, Wang and Luo, "AVT: Unsupervised Learning of Transformation Equivariant
  Representations by Autoencoding Variational Transformations", ICCV 2019
  (:func:`avt_gaussian_nll`).
* En-AET – Wang, Kihara, Luo and Qi, "EnAET: A Self-Trained Framework for Semi-Supervised and
  Supervised Learning with Ensemble Transformations", IEEE TIP 2021 (arXiv 1911.09265);
  official code ``maple-research-lab/EnAET``: ``AET_MultiT/train_AETall_fast.py``
  (:func:`aet_ensemble_loss`, :func:`transformation_consistency_loss`).

Shapes: ``N`` images, ``P`` parameters of one transformation family, ``K`` classes. All functions
are pure, compute in their inputs' dtype and device, and return 0-dim tensors.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import (
    check_2d,
    check_floating,
    check_nonempty,
    check_same_device_dtype,
    check_same_shape,
    probability_sum_tolerance,
    value_checks_enabled,
)

__all__ = ["aet_ensemble_loss", "aet_loss", "avt_gaussian_nll", "transformation_consistency_loss"]


def _check_pair(name_a: str, a: object, name_b: str, b: object, layout: str) -> None:
    check_floating(name_a, a)
    check_floating(name_b, b)
    check_2d(name_a, a, layout)
    check_2d(name_b, b, layout)
    assert isinstance(a, Tensor) and isinstance(b, Tensor)
    check_nonempty(name_a, a)
    check_same_shape(name_a, a, name_b, b)
    check_same_device_dtype(name_a, a, name_b, b)


def aet_loss(predicted_params: Tensor, true_params: Tensor) -> Tensor:
    r"""AET's loss: mean squared error between predicted and true transformation parameters.

    .. math::
        \mathcal{L}_{\mathrm{AET}} = \frac{1}{NP}\sum_{n=1}^{N}\sum_{p=1}^{P}
            \big(\hat\theta_{n,p} - \theta_{n,p}\big)^2,
        \qquad \hat\theta_n = D\big(E(x_n), E(t_n(x_n))\big)

    The paper writes :math:`\tfrac12\lVert M(\hat\theta) - M(\theta)\rVert_2^2` on the
    transformation matrix; the official code regresses the (normalised) parameter vector with
    ``nn.MSELoss()``, i.e. the mean over rows *and* parameters, which is what this computes.

    Shapes: ``predicted_params [N, P]`` and ``true_params [N, P]`` → scalar.
    """
    _check_pair("predicted_params", predicted_params, "true_params", true_params, "[N, P]")
    return (predicted_params - true_params).pow(2).mean()


def aet_ensemble_loss(predicted: Sequence[Tensor], true: Sequence[Tensor],
                      weights: Sequence[float]) -> tuple[Tensor, Tensor]:
    r"""En-AET's ensemble: a weighted sum of one AET loss per transformation family.

    .. math::
        \mathcal{L}_{\mathrm{ens}}
            = \sum_{k=1}^{F} w_k\,\mathcal{L}_{\mathrm{AET}}\big(\hat\theta^{(k)}, \theta^{(k)}\big)

    Each family has its own parameter count ``P_k`` and its own decoder. The official weights
    (``ops/argparser.py``, ``max_lambda`` … ``max_lambda4``) are 1.0 (projective), 0.75 (affine),
    0.5 (similarity), 0.2 (Euclidean) and 0.05 (colour-contrast-brightness-sharpness); the
    official code ramps each linearly from 0 over the first tenth of training (the ramp is the
    caller's business: pass the current weights).

    Shapes: ``predicted[k]`` and ``true[k]`` ``[N_k, P_k]``; ``weights`` ``F`` numbers →
    ``(total scalar, per-family losses [F] without the weights)``.
    """
    if not (isinstance(predicted, Sequence) and isinstance(true, Sequence) and isinstance(weights, Sequence)):
        raise ValueError(  # noqa: TRY004 - the course reports every bad input as ValueError
            "predicted, true and weights must be sequences (lists or tuples) with one entry per "
            "transformation family; for a single family call aet_loss instead.")
    if not (len(predicted) == len(true) == len(weights)) or len(predicted) == 0:
        raise ValueError(f"predicted, true and weights need one entry per family and the same length >= 1; "
                         f"got {len(predicted)}, {len(true)} and {len(weights)}.")
    if any(not isinstance(w, (int, float)) or isinstance(w, bool) or not math.isfinite(w) or w < 0
           for w in weights):
        raise ValueError(f"weights must be finite numbers >= 0 (0 switches a family off); got {list(weights)}.")
    for k, (p, t) in enumerate(zip(predicted, true)):
        _check_pair(f"predicted[{k}]", p, f"true[{k}]", t, "[N, P]")
    per_family = torch.stack([aet_loss(p, t) for p, t in zip(predicted, true)])     # [F]
    weight_vector = torch.tensor(list(weights), dtype=per_family.dtype, device=per_family.device)
    return (weight_vector * per_family).sum(), per_family


def transformation_consistency_loss(transformed_logits: Tensor, target_probabilities: Tensor) -> Tensor:
    r"""En-AET's consistency: KL from the guessed label of an image to the prediction on its transformed copy.

    .. math::
        \mathcal{L}_{\mathrm{KL}} = \frac{1}{N}\sum_{n=1}^{N}\sum_{k=1}^{K}
            q_{n,k}\,\big(\log q_{n,k} - \log\operatorname{softmax}(z_n)_k\big)
            = \frac1N\sum_n \mathrm{KL}\big(q_n \,\Vert\, p(y \mid t_n(x_n))\big)

    with :math:`q_n` the (sharpened, detached) MixMatch guess for the untransformed image and
    :math:`z_n` the classifier's logits for its transformed copy; terms with :math:`q_{n,k} = 0`
    count 0. This is ``F.kl_div(log_softmax(z), q, reduction='batchmean')`` of the official
    ``Calculate_KLloss_Result``; the official code averages it over the transformation families
    (stack the families' rows into one ``N`` to do the same with equal batch sizes).

    Shapes: ``transformed_logits [N, K]``, ``target_probabilities [N, K]`` (rows sum to 1) → scalar.
    """
    _check_pair("transformed_logits", transformed_logits, "target_probabilities", target_probabilities, "[N, K]")
    if value_checks_enabled():
        if bool((target_probabilities < 0).any()):
            raise ValueError("target_probabilities must be >= 0 (probabilities, e.g. the sharpened guess); "
                             "did you pass logits? Apply softmax (and sharpen) first.")
        tolerance = probability_sum_tolerance(target_probabilities.dtype)
        if bool(((target_probabilities.sum(1) - 1).abs() > tolerance).any()):
            raise ValueError("each row of target_probabilities must sum to 1; normalise it with "
                             "q / q.sum(1, keepdim=True).")
    log_p = F.log_softmax(transformed_logits, dim=1)                                 # [N, K]
    q_log_q = torch.xlogy(target_probabilities, target_probabilities)              # 0 log 0 = 0
    return (q_log_q - target_probabilities * log_p).sum(1).mean()


def avt_gaussian_nll(mean: Tensor, log_variance: Tensor, true_params: Tensor) -> Tensor:
    r"""AVT's decoder loss: negative log-likelihood of the true parameters under a diagonal Gaussian.

    AVT replaces AET's point prediction by a distribution
    :math:`q_\phi(\theta \mid z, \tilde z) = \mathcal N\big(\mu, \operatorname{diag}\sigma^2\big)` over the
    transformation given the representations :math:`z` of :math:`x` and :math:`\tilde z` of
    :math:`t(x)`; maximising :math:`\mathbb E\log q_\phi(\theta\mid z,\tilde z)` maximises a lower bound
    of the mutual information :math:`I(\theta; z, \tilde z)`.

    .. math::
        \mathcal{L}_{\mathrm{AVT}} = \frac1N\sum_{n=1}^{N}\sum_{p=1}^{P}\frac12\Big(
            \log 2\pi + \log\sigma^2_{n,p} + \frac{(\theta_{n,p} - \mu_{n,p})^2}{\sigma^2_{n,p}}\Big)

    With a fixed :math:`\sigma^2 = 1/2` it is :math:`P \cdot` :func:`aet_loss` plus a constant: AET is
    the special case with a fixed variance. AVT also samples :math:`\tilde z` with the
    reparameterisation trick (:math:`\tilde z = \mu_E + \sigma_E\,\epsilon`); that lives in the
    encoder, not here.

    Shapes: ``mean``, ``log_variance``, ``true_params`` ``[N, P]`` → scalar.
    """
    _check_pair("mean", mean, "true_params", true_params, "[N, P]")
    _check_pair("log_variance", log_variance, "true_params", true_params, "[N, P]")
    squared_error = (true_params - mean).pow(2)                                      # [N, P]
    per_entry = 0.5 * (math.log(2 * math.pi) + log_variance + squared_error * torch.exp(-log_variance))
    return per_entry.sum(1).mean()
