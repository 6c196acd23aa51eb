"""Checkers for the pretext-task notebook (02): Zhang et al.'s rebalanced colorization loss."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ssl_course.exercises._checking import _NUM_CASES, _Case, _generator, _run_scalar_checks, _Variant
from ssl_course.losses.pretext import class_rebalancing_weights, colorization_loss, soft_encode_ab

__all__ = ["check_colorization_loss"]

_SETTINGS = [  # (B, Q, H, W, dtype)
    (2, 6, 3, 3, torch.float64), (3, 8, 2, 4, torch.float32), (1, 5, 4, 4, torch.float64),
    (4, 7, 2, 2, torch.float32), (2, 10, 3, 2, torch.float64), (3, 6, 1, 5, torch.float32),
]


def _cases() -> list[_Case]:
    gen = _generator(1202)
    cases = []
    for b, q, h, w, dtype in _SETTINGS[:_NUM_CASES]:
        centers = torch.randn(q, 2, generator=gen, dtype=torch.float64) * 20
        ab = torch.randn(b, 2, h, w, generator=gen, dtype=torch.float64) * 20
        targets = soft_encode_ab(ab, centers, neighbours=min(5, q))
        weights = class_rebalancing_weights(torch.rand(q, generator=gen, dtype=torch.float64) + 0.05)
        logits = torch.randn(b, q, h, w, generator=gen, dtype=torch.float64) * 2
        cases.append(_Case((logits.to(dtype), targets.to(dtype), weights.to(dtype)),
                           f"B={b}, Q={q}, {h}x{w} pixels, {str(dtype).replace('torch.', '')}", dtype))
    return cases


def _variants() -> list[_Variant]:
    def no_weights(logits, targets, weights):
        return colorization_loss(logits, targets)

    def weight_by_prediction(logits, targets, weights):
        ce = -(targets * torch.log_softmax(logits, 1)).sum(1)
        return (ce * weights[logits.argmax(1)]).mean()

    def expected_weight(logits, targets, weights):
        ce = -(targets * torch.log_softmax(logits, 1)).sum(1)
        return (ce * torch.einsum("bqhw,q->bhw", targets, weights)).mean()

    def softmax_over_pixels(logits, targets, weights):
        ce = -(targets * torch.log_softmax(logits.flatten(2), 2).view_as(logits)).sum(1)
        return (ce * weights[targets.argmax(1)]).mean()

    def summed(logits, targets, weights):
        b, _, h, w = logits.shape
        return colorization_loss(logits, targets, weights) * b * h * w

    return [
        _Variant(no_weights, "the weights are missing: multiply each pixel's cross-entropy by w[q*], q* = "
                             "the most likely TRUE bin (targets.argmax(1))."),
        _Variant(weight_by_prediction, "the weight must come from the TRUE colour (targets.argmax(1)), not from "
                                       "the network's prediction (logits.argmax(1))."),
        _Variant(expected_weight, "the paper weights a pixel by the weight of its single most likely true bin "
                                  "(argmax of Z), not by the average weight under Z."),
        _Variant(softmax_over_pixels, "the softmax runs over the Q bins (dim=1), not over the pixels."),
        _Variant(summed, "average over the B·H·W pixels (.mean()), do not sum."),
    ]


def check_colorization_loss(fn: Callable[..., Any]) -> bool:
    """Check ``fn(logits, targets, weights)`` against :func:`ssl_course.losses.colorization_loss`."""
    return _run_scalar_checks(
        fn, _cases(), colorization_loss, _variants(),
        "per pixel: -sum_q Z[q] * log_softmax(logits)[q] over dim=1, times weights[targets.argmax(1)]; "
        "then the mean over images and pixels.",
    )
