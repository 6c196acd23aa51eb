"""Checker for the PAWS-loss exercise (notebook 11): the whole loss, and the mistake named.

``check_paws_loss(fn)`` runs ``fn(anchors [2B, D], supports [M, D], support_labels [M, K], tau, T)``
and :func:`ssl_course.losses.paws` (two global views, no multi-crop, ME-MAX on, the total
``cross_entropy + me_max``) on six fixed random inputs. When they differ it compares the
learner's value with the known wrong variants below (targets from the same view, no sharpening,
sharpening the predictions instead of the targets, an ME-MAX with the wrong sign, over single
predictions or without sharpening, no L2 normalisation, no 1e-4 floor, no ME-MAX) and prints the
hint of the one it matches.

Assran et al., "Semi-Supervised Learning of Visual Features by Non-Parametrically Predicting View
Assignments with Support Samples", ICCV 2021.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ssl_course.losses.semi_supervised import paws, sharpen

from ._checking import _Case, _dtype_name, _generator, _run_scalar_checks, _shape, _Variant

__all__ = ["check_paws_loss"]

_SETTINGS = [  # (images B, dimension D, supports M, classes K, tau, T, dtype)
    (3, 5, 6, 3, 0.1, 0.25, torch.float64),
    (4, 8, 8, 4, 0.1, 0.25, torch.float32),
    (2, 4, 9, 3, 0.2, 0.5, torch.float64),
    (5, 6, 10, 5, 0.1, 0.3, torch.float32),
    (6, 3, 6, 2, 0.5, 0.25, torch.float64),
    (3, 7, 12, 4, 0.1, 0.25, torch.float32),
]


def _cases() -> list[_Case]:
    generator = _generator(808)
    cases = []
    for images, dim, supports_count, classes, tau, T, dtype in _SETTINGS:
        view1 = torch.randn(images, dim, generator=generator, dtype=torch.float64)
        view2 = view1 + 0.7 * torch.randn(images, dim, generator=generator, dtype=torch.float64)   # a second view
        anchors = torch.cat([view1, view2]).to(dtype)                                             # [2B, D]
        supports = (2.0 * torch.randn(supports_count, dim, generator=generator, dtype=torch.float64)).to(dtype)
        one_hot = F.one_hot(torch.arange(supports_count) % classes, classes).to(dtype)
        labels = 0.9 * one_hot + 0.1 / classes                                                  # smoothed rows
        description = (f"anchors {_shape(anchors)} (B={images} images × 2 views), supports {_shape(supports)}, "
                       f"support_labels {_shape(labels)}, tau={tau}, T={T}, {_dtype_name(dtype)}")
        cases.append(_Case((anchors, supports, labels, tau, T), description, dtype))
    return cases


def _swap_views(anchors: Tensor) -> Tensor:
    half = anchors.shape[0] // 2
    return torch.cat([anchors[half:], anchors[:half]])


def _reference(anchors: Tensor, supports: Tensor, labels: Tensor, tau: float, T: float) -> Tensor:
    cross_entropy, me_max = paws(anchors, _swap_views(anchors), supports, labels, tau, T, me_max=True)
    return cross_entropy + me_max


def _snn(query: Tensor, supports: Tensor, labels: Tensor, tau: float, normalise: bool = True) -> Tensor:
    if normalise:
        query, supports = F.normalize(query, dim=1), F.normalize(supports, dim=1)
    return torch.softmax(query @ supports.T / tau, dim=1) @ labels          # [N, K]


def _variant_loss(anchors: Tensor, supports: Tensor, labels: Tensor, tau: float, T: float, *,
                  same_view: bool = False, sharpen_target: bool = True, sharpen_prediction: bool = False,
                  me_max: str = "right", normalise: bool = True, floor: bool = True) -> Tensor:
    """The PAWS loss with one known mistake switched on (all defaults: the right loss)."""
    predictions = _snn(anchors, supports, labels, tau, normalise)                        # [2B, K]
    targets = _snn(anchors if same_view else _swap_views(anchors), supports, labels, tau, normalise).detach()
    if sharpen_target:
        targets = sharpen(targets, T)
    if floor:
        targets = targets.masked_fill(targets < 1e-4, 0.0)
    scored = sharpen(predictions, T) if sharpen_prediction else predictions
    cross_entropy = -(targets * scored.log()).sum(dim=1).mean()
    sharpened = sharpen(predictions, T)
    if me_max == "none":
        return cross_entropy
    if me_max == "single":      # mean of per-prediction negative entropies instead of the mean prediction's
        return cross_entropy + (sharpened * sharpened.log()).sum(dim=1).mean()
    mean_prediction = (predictions if me_max == "unsharpened" else sharpened).mean(dim=0)
    regulariser = (mean_prediction * mean_prediction.log()).sum()
    return cross_entropy - regulariser if me_max == "sign" else cross_entropy + regulariser


def _variants() -> list[_Variant]:
    def wrong(**mistake: Any) -> Callable[..., Tensor]:
        return lambda *args: _variant_loss(*args, **mistake)

    return [
        _Variant(wrong(same_view=True), "the target of anchor i comes from the OTHER view of its image: rows 0..B-1 "
                                        "take their targets from rows B..2B-1 and vice versa "
                                        "(torch.cat([anchors[B:], anchors[:B]])), not from the anchor itself."),
        _Variant(wrong(sharpen_target=False), "sharpen the targets: t = Sharpen(SNN(other view), T) before the "
                                              "cross-entropy; without it the targets are as unsure as the "
                                              "predictions (and a collapse to the uniform vote costs nothing)."),
        _Variant(wrong(sharpen_target=False, sharpen_prediction=True),
                 "sharpen the TARGETS (the other view's prediction, no gradient), not the predictions "
                 "inside the log."),
        _Variant(wrong(sharpen_prediction=True), "only the targets are sharpened; the cross-entropy uses log of "
                                                 "the anchors' plain SNN predictions."),
        _Variant(wrong(me_max="sign"), "ME-MAX is + sum(p̄ log p̄) (the NEGATIVE entropy of the mean prediction, "
                                       "added to the loss so that minimising it spreads p̄ out); you subtracted it."),
        _Variant(wrong(me_max="single"), "ME-MAX uses the entropy of the MEAN sharpened prediction p̄ (average the "
                                         "rows first, then sum p̄ log p̄), not the mean of the rows' entropies."),
        _Variant(wrong(me_max="unsharpened"), "p̄ is the mean of the SHARPENED predictions Sharpen(SNN(anchor), T)."),
        _Variant(wrong(me_max="none"), "add the ME-MAX term sum(p̄ log p̄) to the cross-entropy."),
        _Variant(wrong(normalise=False), "L2-normalise the anchors and the supports (F.normalize(x, dim=1)): the "
                                         "SNN uses cosine similarities."),
        _Variant(wrong(floor=False), "zero the target entries below 1e-4 (targets[targets < 1e-4] = 0), as the "
                                     "official code does; do not renormalise afterwards."),
    ]


def check_paws_loss(fn: Callable[..., Any]) -> bool:
    """Check ``fn(anchors [2B, D], supports [M, D], support_labels [M, K], tau, T) -> scalar`` (PAWS total loss)."""
    return _run_scalar_checks(
        fn, _cases(), _reference, _variants(),
        "work one case by hand: SNN predictions of all 2B anchors; targets = sharpened SNN predictions of the "
        "swapped rows, without gradient, entries < 1e-4 zeroed; mean over anchors of -sum(t log p); plus "
        "sum(p̄ log p̄) with p̄ the batch mean of the sharpened predictions.",
    )
