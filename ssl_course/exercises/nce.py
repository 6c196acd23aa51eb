r"""Checkers for the exercises of notebooks 01 (NCE → InfoNCE) and 02 (pretext tasks and CPC).

Same verdict format as :mod:`ssl_course.exercises.contrastive` (whose machinery this reuses):
six random inputs, "✓ correct on 6 inputs" or the first input where the learner's function
differs, both values, and a hint naming the usual mistake. Exceptions raised by the learner's
function are reported, never propagated, so an unfinished stub leaves the notebook running.

* :func:`check_nce_loss` — binary NCE (Gutmann & Hyvärinen), called as
  ``fn(log_model_data, log_noise_data, log_model_noise, log_noise_noise)`` with ``[N]`` and
  ``[M]`` log-densities; the reference is :func:`nce_loss_reference`.
* :func:`check_cpc_info_nce` — CPC's InfoNCE over a batch of spatial predictions, called as
  ``fn(predictions, targets, temperature)`` with ``[B, S, D]`` inputs; the reference is
  :func:`ssl_course.losses.pretext.cpc_info_nce`.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ssl_course.exercises._checking import (
    _Case,
    _dtype_name,
    _generator,
    _run_scalar_checks,
    _shape,
    _Variant,
)
from ssl_course.losses.pretext import cpc_info_nce

__all__ = ["check_nce_loss", "check_cpc_info_nce", "nce_loss_reference"]


# --------------------------------------------------------------------------------------------
# Binary NCE (Gutmann & Hyvärinen 2010, 2012)
# --------------------------------------------------------------------------------------------
def nce_loss_reference(log_model_data: Tensor, log_noise_data: Tensor, log_model_noise: Tensor,
                       log_noise_noise: Tensor) -> Tensor:
    r"""The binary NCE loss the notebook derives (the negative of Gutmann & Hyvärinen's :math:`J_T`).

    With :math:`N` data samples :math:`x_i`, :math:`M = \nu N` noise samples :math:`y_j`, and
    :math:`G(u) = \log p_m(u) - \log p_n(u)`:

    .. math::

        \mathcal{L} = -\frac{1}{N}\Big[\sum_{i=1}^{N}\log\sigma\big(G(x_i) - \log\nu\big)
                      + \sum_{j=1}^{M}\log\big(1 - \sigma(G(y_j) - \log\nu)\big)\Big]

    Shapes: ``log_model_data``, ``log_noise_data`` ``[N]``; ``log_model_noise``,
    ``log_noise_noise`` ``[M]``; returns a scalar in the inputs' dtype. ``1 - σ(a) = σ(-a)`` and
    ``F.logsigmoid`` keep it finite for large :math:`|G|`.
    """
    n, m = log_model_data.shape[0], log_model_noise.shape[0]
    log_nu = math.log(m / n)
    logit_data = log_model_data - log_noise_data - log_nu
    logit_noise = log_model_noise - log_noise_noise - log_nu
    return -(F.logsigmoid(logit_data).sum() + F.logsigmoid(-logit_noise).sum()) / n


_NCE_SETTINGS = [  # (N, nu, dtype)
    (8, 1, torch.float64),
    (16, 4, torch.float32),
    (5, 10, torch.float64),
    (12, 3, torch.float32),
    (20, 2, torch.float64),
    (6, 5, torch.float32),
]


def _nce_cases() -> list[_Case]:
    gen = _generator(606)

    def draw(count: int, centre: float, dtype: torch.dtype) -> Tensor:
        return (centre + 1.5 * torch.randn(count, generator=gen, dtype=torch.float64)).to(dtype)

    cases = []
    for n, nu, dtype in _NCE_SETTINGS:
        m = n * nu
        # the model likes the data a little more than the noise does, so G is informative
        args = (draw(n, -1.0, dtype), draw(n, -2.0, dtype), draw(m, -2.5, dtype), draw(m, -1.5, dtype))
        desc = (f"log_model_data {_shape(args[0])}, log_noise_data {_shape(args[1])}, log_model_noise "
                f"{_shape(args[2])}, log_noise_noise {_shape(args[3])} (nu={nu}), {_dtype_name(dtype)}")
        cases.append(_Case(args, desc, dtype))
    return cases


def _nce_parts(lmd: Tensor, lnd: Tensor, lmn: Tensor, lnn: Tensor, use_nu: bool = True, invert_nu: bool = False):
    n, m = lmd.shape[0], lmn.shape[0]
    log_nu = math.log(n / m if invert_nu else m / n) if use_nu else 0.0
    return F.logsigmoid(lmd - lnd - log_nu), F.logsigmoid(-(lmn - lnn - log_nu))


def _nce_variants() -> list[_Variant]:
    def no_nu(*args):
        data, noise = _nce_parts(*args, use_nu=False)
        return -(data.sum() + noise.sum()) / args[0].shape[0]

    def inverted_nu(*args):
        data, noise = _nce_parts(*args, invert_nu=True)
        return -(data.sum() + noise.sum()) / args[0].shape[0]

    def mean_over_all(*args):
        data, noise = _nce_parts(*args)
        return -(data.sum() + noise.sum()) / (args[0].shape[0] + args[2].shape[0])

    def two_means(*args):
        data, noise = _nce_parts(*args)
        return -(data.mean() + noise.mean())

    def summed(*args):
        data, noise = _nce_parts(*args)
        return -(data.sum() + noise.sum())

    def objective_not_loss(*args):
        return -nce_loss_reference(*args)

    def swapped_ratio(lmd, lnd, lmn, lnn):
        return nce_loss_reference(lnd, lmd, lnn, lmn)

    return [
        _Variant(no_nu, "the classifier's logit is G(u) - log(nu) with nu = M / N: the noise is nu times "
                        "more frequent, and the prior odds enter as -log(nu)."),
        _Variant(inverted_nu, "nu is the number of noise samples per data sample, M / N (you used N / M)."),
        _Variant(mean_over_all, "divide by N, the number of data samples (Gutmann & Hyvärinen's 1/T_d), "
                                "not by N + M."),
        _Variant(two_means, "average both sums over N: the noise term carries weight nu relative to the data "
                            "term. Two separate means drop that factor and move the optimum away from the "
                            "true normalisation."),
        _Variant(summed, "divide the sum by N, the number of data samples."),
        _Variant(objective_not_loss, "that is the objective J to maximise; return the loss -J to minimise."),
        _Variant(swapped_ratio, "G(u) = log p_model(u) - log p_noise(u): model minus noise, not the other way."),
    ]


def check_nce_loss(fn: Callable[..., Any]) -> bool:
    """Check ``fn(log_model_data, log_noise_data, log_model_noise, log_noise_noise)`` (binary NCE)."""
    return _run_scalar_checks(
        fn, _nce_cases(), nce_loss_reference, _nce_variants(),
        "write it for N = 1 data sample and nu noise samples: -[log s(G(x) - log nu) + sum_j log(1 - "
        "s(G(y_j) - log nu))] with s the sigmoid; use F.logsigmoid(a) for log s(a) and F.logsigmoid(-a) "
        "for log(1 - s(a)).",
    )


# --------------------------------------------------------------------------------------------
# CPC's InfoNCE over spatial predictions
# --------------------------------------------------------------------------------------------
_CPC_SETTINGS = [  # (B, S, D, temperature, dtype)
    (4, 5, 8, 1.0, torch.float64),
    (3, 6, 16, 0.5, torch.float32),
    (2, 9, 4, 1.0, torch.float64),
    (5, 3, 12, 0.2, torch.float32),
    (6, 4, 6, 2.0, torch.float64),
    (3, 7, 10, 1.0, torch.float32),
]


def _cpc_cases() -> list[_Case]:
    gen = _generator(707)
    cases = []
    for b, s, d, tau, dtype in _CPC_SETTINGS:
        targets = torch.randn(b, s, d, generator=gen, dtype=torch.float64) / math.sqrt(d) * 2.0
        predictions = targets + 0.6 * torch.randn(b, s, d, generator=gen, dtype=torch.float64) / math.sqrt(d)
        desc = (f"predictions {_shape(predictions)}, targets {_shape(targets)}, temperature={tau}, "
                f"{_dtype_name(dtype)}")
        cases.append(_Case((predictions.to(dtype), targets.to(dtype), tau), desc, dtype))
    return cases


def _cpc_variants() -> list[_Variant]:
    def per_position(pred, tgt, tau):  # negatives: the same position in the other images only
        b, s, _ = pred.shape
        logits = torch.einsum("isd,jsd->sij", pred, tgt) / tau          # [S, B, B]
        return F.cross_entropy(logits.reshape(s * b, b), torch.arange(b).repeat(s))

    def per_image(pred, tgt, tau):  # negatives: the other positions of the same image only
        b, s, _ = pred.shape
        logits = pred @ tgt.transpose(1, 2) / tau                         # [B, S, S]
        return F.cross_entropy(logits.reshape(b * s, s), torch.arange(s).repeat(b))

    def cosine(pred, tgt, tau):
        return cpc_info_nce(F.normalize(pred, dim=-1), F.normalize(tgt, dim=-1), tau)

    def no_tau(pred, tgt, tau):
        return cpc_info_nce(pred, tgt, 1.0)

    def times_tau(pred, tgt, tau):
        return cpc_info_nce(pred * tau * tau, tgt, tau)

    def summed(pred, tgt, tau):
        return cpc_info_nce(pred, tgt, tau) * pred.shape[0] * pred.shape[1]

    def transposed(pred, tgt, tau):  # each target picks its prediction instead
        return cpc_info_nce(tgt, pred, tau)

    return [
        _Variant(per_position, "the negatives are *all* other B*S targets of the batch (other positions and "
                               "other images), not only the same position in the other images."),
        _Variant(per_image, "the negatives include the patches of the other images too: flatten (b, s) into "
                            "one axis of B*S candidates."),
        _Variant(cosine, "CPC scores plain dot products: do not L2-normalise predictions or targets."),
        _Variant(no_tau, "divide the scores by the temperature."),
        _Variant(times_tau, "divide the scores by the temperature; you multiplied by it."),
        _Variant(summed, "average over the B*S predictions (F.cross_entropy's default), don't sum."),
        _Variant(transposed, "each *prediction* is the query: logits = predictions @ targets.T, one row per "
                             "prediction, softmax over the targets."),
    ]


def check_cpc_info_nce(fn: Callable[..., Any]) -> bool:
    """Check ``fn(predictions, targets, temperature)`` against :func:`ssl_course.losses.cpc_info_nce`."""
    return _run_scalar_checks(
        fn, _cpc_cases(), cpc_info_nce, _cpc_variants(),
        "flatten predictions and targets to [B*S, D], score every prediction against every target "
        "(a [B*S, B*S] matrix of dot products / temperature) and take the cross-entropy with the "
        "diagonal as the right answers.",
    )
