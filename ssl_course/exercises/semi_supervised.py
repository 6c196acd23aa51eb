"""Checkers for the semi-supervised notebook exercises.

Each ``check_*`` function runs the learner's implementation and the library's reference
implementation (``ssl_course.losses.semi_supervised``) on 6 fixed random inputs of varied
sizes, temperatures and dtypes, and prints either ``✓ correct on 6 inputs`` or the first input
where the two disagree, both outputs, and a hint about the usual mistake. It returns ``True``
when everything matches. Exceptions raised by the learner's function are caught and reported.

Usage in a notebook::

    from ssl_course.exercises.semi_supervised import check_sharpen

    def my_sharpen(p, T):
        ...

    check_sharpen(my_sharpen)
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ssl_course.losses.semi_supervised import fixmatch_loss, me_max_regularizer, mixup, sharpen, snn

from ._checking import _dtype_name
from ._output_checking import _Case, _run_checks

__all__ = [
    "check_sharpen",
    "check_snn",
    "check_me_max",
    "check_mixup",
    "check_fixmatch_mask",
    "check_fixmatch_loss",
]

NUM_CASES = 6

SHARPEN_HINT = (
    "raise each probability to the power 1/T, not T (T < 1 must make rows peakier), "
    "then divide by the row sum (dim=1) so every row sums to 1."
)
SNN_HINT = (
    "normalise embeddings first (F.normalize(x, dim=1) for the query AND the supports), divide the "
    "cosine similarities by the temperature, take the softmax over the supports (dim=1), then "
    "multiply by support_labels."
)
ME_MAX_HINT = (
    "sharpen every prediction with T, average the sharpened rows over the batch (dim=0) to get p̄, "
    "and return sum(p̄ * log p̄): the negative entropy of the MEAN prediction (no minus sign, no log K "
    "offset, and not the mean of per-sample entropies)."
)
MIXUP_HINT = (
    "use λ' = max(λ, 1−λ) so the mixed sample stays closer to x1, and mix the labels with the same λ' "
    "as the inputs: λ'·x1 + (1−λ')·x2 and λ'·p1 + (1−λ')·p2."
)
FIXMATCH_MASK_HINT = (
    "apply softmax(dim=1) to the weak logits first; a sample passes when its LARGEST probability is "
    ">= threshold; return one 0/1 value per sample (shape [N])."
)
FIXMATCH_LOSS_HINT = (
    "average over all unlabelled samples, not just the confident ones: (mask * per-sample "
    "cross-entropy).mean(); the pseudo-label is the argmax of softmax(weak logits), computed without "
    "gradient, and the cross-entropy uses the STRONG logits."
)


# ----------------------------------------------------------------------------------------
# Case generators (fixed seeds: every learner sees the same 6 inputs)
# ----------------------------------------------------------------------------------------
_DTYPES = (torch.float32, torch.float64)


def _random_probabilities(
    rows: int, classes: int, scale: float, generator: torch.Generator, dtype: torch.dtype
) -> Tensor:
    logits = torch.randn(rows, classes, generator=generator, dtype=torch.float64) * scale
    return torch.softmax(logits, dim=1).to(dtype)


def _sharpen_cases() -> list[_Case]:
    generator = torch.Generator().manual_seed(101)
    settings = [(4, 3, 0.5), (5, 4, 0.25), (3, 6, 2.0), (6, 10, 0.75), (2, 2, 0.1), (8, 5, 1.5)]
    cases = []
    for index, (rows, classes, temperature) in enumerate(settings):
        dtype = _DTYPES[index % 2]
        p = _random_probabilities(rows, classes, 1.5, generator, dtype)
        cases.append(_Case(
            description=f"p of shape [{rows}, {classes}] ({_dtype_name(dtype)}), T={temperature}",
            args=(p, temperature),
            expected=sharpen(p, temperature),
            row_inputs={"p": p},
        ))
    return cases


def _snn_cases() -> list[_Case]:
    generator = torch.Generator().manual_seed(202)
    # (queries N, supports M, dimension D, classes K, temperature)
    settings = [(4, 6, 3, 3, 0.1), (5, 8, 4, 2, 0.5), (3, 10, 5, 4, 0.05),
                (6, 4, 2, 2, 1.0), (2, 9, 3, 3, 0.2), (7, 12, 8, 4, 0.3)]
    cases = []
    for index, (num_queries, num_supports, dim, classes, temperature) in enumerate(settings):
        dtype = _DTYPES[index % 2]
        # Rows with very different norms: an implementation that forgets to normalise differs.
        query_norms = torch.rand(num_queries, 1, generator=generator, dtype=torch.float64) * 4 + 0.3
        support_norms = torch.rand(num_supports, 1, generator=generator, dtype=torch.float64) * 4 + 0.3
        query = (torch.randn(num_queries, dim, generator=generator, dtype=torch.float64) * query_norms).to(dtype)
        supports = (torch.randn(num_supports, dim, generator=generator, dtype=torch.float64) * support_norms).to(dtype)
        classes_of_supports = torch.arange(num_supports) % classes
        labels = F.one_hot(classes_of_supports, classes).to(dtype)
        if index % 3 == 2:  # label smoothing as in PAWS' make_labels_matrix
            labels = labels * 0.9 + 0.1 / classes
        cases.append(_Case(
            description=(f"query [{num_queries}, {dim}], support_embeddings [{num_supports}, {dim}], "
                         f"support_labels [{num_supports}, {classes}] ({_dtype_name(dtype)}), "
                         f"temperature={temperature}"),
            args=(query, supports, labels, temperature),
            expected=snn(query, supports, labels, temperature),
            row_inputs={"query": query},
        ))
    return cases


def _me_max_cases() -> list[_Case]:
    generator = torch.Generator().manual_seed(303)
    # (rows N, classes K, T, logit scale)
    settings = [(6, 3, 0.25, 1.0), (8, 4, 0.5, 2.0), (5, 5, 1.0, 0.5),
                (10, 3, 0.3, 3.0), (4, 6, 0.25, 1.5), (12, 10, 0.1, 1.0)]
    cases = []
    for index, (rows, classes, temperature, scale) in enumerate(settings):
        dtype = _DTYPES[index % 2]
        probabilities = _random_probabilities(rows, classes, scale, generator, dtype)
        if index == 3:  # a batch that collapsed onto class 0: far from uniform
            probabilities = sharpen(probabilities + torch.tensor([2.0] + [0.0] * (classes - 1), dtype=dtype), 1.0)
        cases.append(_Case(
            description=f"probabilities [{rows}, {classes}] ({_dtype_name(dtype)}), T={temperature}",
            args=(probabilities, temperature),
            expected=me_max_regularizer(probabilities, temperature),
            row_inputs={"probabilities": probabilities},
        ))
    return cases


def _mixup_cases() -> list[_Case]:
    generator = torch.Generator().manual_seed(404)
    # (shape of x, classes C, lam): several lam < 0.5, where max(lam, 1 - lam) matters
    settings = [((4, 3), 3, 0.3), ((3, 3, 4, 4), 5, 0.8), ((5, 2), 4, 0.5),
                ((2, 1, 2, 2), 2, 0.1), ((6, 4), 3, 0.0), ((4, 5), 6, 0.65)]
    cases = []
    for index, (shape, classes, lam) in enumerate(settings):
        dtype = _DTYPES[index % 2]
        x1 = torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype)
        x2 = torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype)
        p1 = F.one_hot(torch.randint(classes, (shape[0],), generator=generator), classes).to(dtype)
        p2 = _random_probabilities(shape[0], classes, 1.0, generator, dtype)
        kind = "features" if len(shape) == 2 else "images"
        cases.append(_Case(
            description=(f"{kind} x1, x2 of shape {list(shape)}, p1, p2 of shape [{shape[0]}, {classes}] "
                         f"({_dtype_name(dtype)}), lam={lam}"),
            args=(x1, p1, x2, p2, lam),
            expected=mixup(x1, p1, x2, p2, lam),
            row_inputs={"x1": x1, "x2": x2, "p1": p1, "p2": p2},
        ))
    return cases


def _fixmatch_logits(rows: int, classes: int, generator: torch.Generator, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Weak logits where even rows are confident (a +8 spike) and odd rows are not."""
    weak = torch.randn(rows, classes, generator=generator, dtype=torch.float64) * 0.5
    spikes = torch.randint(classes, (rows,), generator=generator)
    confident = torch.arange(rows) % 2 == 0
    weak[confident, spikes[confident]] += 8.0
    strong = torch.randn(rows, classes, generator=generator, dtype=torch.float64) * 2.0
    return weak.to(dtype), strong.to(dtype)


_FIXMATCH_SETTINGS = [(6, 3, 0.95), (8, 4, 0.8), (5, 10, 0.95), (4, 2, 0.7), (7, 5, 0.9), (10, 6, 0.6)]


def _fixmatch_mask_cases() -> list[_Case]:
    generator = torch.Generator().manual_seed(505)
    cases = []
    for index, (rows, classes, threshold) in enumerate(_FIXMATCH_SETTINGS):
        dtype = _DTYPES[index % 2]
        weak, strong = _fixmatch_logits(rows, classes, generator, dtype)
        _, mask, _ = fixmatch_loss(weak, strong, threshold)
        cases.append(_Case(
            description=f"logits_weak [{rows}, {classes}] ({_dtype_name(dtype)}), threshold={threshold}",
            args=(weak, threshold),
            expected=mask,
            row_inputs={"logits_weak": weak},
        ))
    return cases


def _fixmatch_loss_cases() -> list[_Case]:
    generator = torch.Generator().manual_seed(606)
    cases = []
    for index, (rows, classes, threshold) in enumerate(_FIXMATCH_SETTINGS):
        dtype = _DTYPES[index % 2]
        weak, strong = _fixmatch_logits(rows, classes, generator, dtype)
        loss, mask, _ = fixmatch_loss(weak, strong, threshold)
        cases.append(_Case(
            description=(f"logits_weak, logits_strong [{rows}, {classes}] ({_dtype_name(dtype)}), "
                         f"threshold={threshold} ({int(mask.sum())} of {rows} samples are confident)"),
            args=(weak, strong, threshold),
            expected=loss,
            row_inputs={"logits_weak": weak, "logits_strong": strong},
        ))
    return cases


def _first_if_tuple(value: Any) -> Any:
    return value[0] if isinstance(value, (tuple, list)) else value


# ----------------------------------------------------------------------------------------
# Public checkers
# ----------------------------------------------------------------------------------------
def check_sharpen(fn: Callable[[Tensor, float], Tensor]) -> bool:
    """Check ``fn(p [N, K], T) -> [N, K]`` against :func:`ssl_course.losses.sharpen`."""
    return _run_checks("sharpen", fn, _sharpen_cases(), SHARPEN_HINT)


def check_snn(fn: Callable[[Tensor, Tensor, Tensor, float], Tensor]) -> bool:
    """Check ``fn(query [N, D], support_embeddings [M, D], support_labels [M, K], temperature) -> [N, K]``."""
    return _run_checks("snn", fn, _snn_cases(), SNN_HINT)


def check_me_max(fn: Callable[[Tensor, float], Tensor]) -> bool:
    """Check ``fn(probabilities [N, K], T) -> scalar`` (PAWS ME-MAX term) against the library."""
    return _run_checks("me_max", fn, _me_max_cases(), ME_MAX_HINT, output_names=("me_max",))


def check_mixup(fn: Callable[[Tensor, Tensor, Tensor, Tensor, float], tuple[Tensor, Tensor]]) -> bool:
    """Check ``fn(x1, p1, x2, p2, lam) -> (mixed_x, mixed_p)`` (MixMatch MixUp with λ' = max(λ, 1−λ))."""
    return _run_checks("mixup", fn, _mixup_cases(), MIXUP_HINT, output_names=("mixed_x", "mixed_p"))


def check_fixmatch_mask(fn: Callable[[Tensor, float], Tensor]) -> bool:
    """Check ``fn(logits_weak [N, C], threshold) -> mask [N]`` (0/1 floats or bools)."""
    return _run_checks("fixmatch_mask", fn, _fixmatch_mask_cases(), FIXMATCH_MASK_HINT, output_names=("mask",))


def check_fixmatch_loss(fn: Callable[[Tensor, Tensor, float], Any]) -> bool:
    """Check ``fn(logits_weak, logits_strong, threshold) -> loss`` (or a tuple whose first item is the loss)."""
    return _run_checks(
        "fixmatch_loss", fn, _fixmatch_loss_cases(), FIXMATCH_LOSS_HINT,
        output_names=("loss",), select=_first_if_tuple,
    )
