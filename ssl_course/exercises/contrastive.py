"""Checkers for the contrastive-learning exercises.

Each ``check_*`` function runs the learner's implementation and the library's on six random
inputs (varied batch size, feature dimension, temperature, float32/float64). It prints either
``✓ correct on 6 inputs`` or the first input where the two differ: the input's shapes,
temperature and dtype, both results, and a hint naming the usual mistake when the learner's
result matches a known wrong variant (e.g. a missing diagonal mask). It returns ``True`` when
the implementation is correct.

The learner's function is called positionally with the same arguments as the library function
(e.g. ``fn(z1, z2, temperature)`` for NT-Xent) on copies of the inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ssl_course.losses.contrastive import info_nce, nearest_neighbours, nnclr, nt_xent, supcon
from ssl_course.losses.pretext import rotate_batch

from ._checking import (  # noqa: F401 - last_failed_input is part of this module's interface
    _NUM_CASES,
    _TOLERANCE,
    _call,
    _Case,
    _close,
    _dtype_name,
    _format_value,
    _generator,
    _matching_hint,
    _Outcome,
    _report,
    _run_scalar_checks,
    _shape,
    _Variant,
    last_failed_input,
)

__all__ = [
    "check_info_nce",
    "check_nt_xent",
    "check_supcon",
    "check_nnclr_lookup",
    "check_nnclr_loss",
    "check_rotate_batch",
]


def _random_embeddings(n: int, d: int, dtype: torch.dtype, gen: torch.Generator) -> Tensor:
    """Rows with random norms between 0.5 and 3, so that forgetting to normalise shows up."""
    z = torch.randn(n, d, generator=gen, dtype=torch.float64)
    norms = 0.5 + 2.5 * torch.rand(n, 1, generator=gen, dtype=torch.float64)
    return (F.normalize(z, dim=1) * norms).to(dtype)


def _ce(logits: Tensor, targets: Tensor, reduction: str = "mean") -> Tensor:
    return F.cross_entropy(logits, targets, reduction=reduction)


# --------------------------------------------------------------------------------------------
# InfoNCE (MoCo)
# --------------------------------------------------------------------------------------------
_INFO_NCE_SETTINGS = [  # (N, D, K, temperature, dtype)
    (4, 8, 16, 0.07, torch.float64),
    (6, 16, 32, 0.2, torch.float32),
    (8, 5, 12, 0.5, torch.float64),
    (3, 32, 64, 0.1, torch.float32),
    (10, 12, 20, 1.0, torch.float64),
    (5, 4, 9, 0.3, torch.float32),
]


def _info_nce_cases() -> list[_Case]:
    gen = _generator(101)
    cases = []
    for n, d, k, tau, dtype in _INFO_NCE_SETTINGS:
        q = _random_embeddings(n, d, dtype, gen)
        # positives correlated with their queries, so the loss is not just log(K+1)
        pos = (q.double() + 0.7 * torch.randn(n, d, generator=gen, dtype=torch.float64)).to(dtype)
        neg = _random_embeddings(k, d, dtype, gen)
        desc = (f"query {_shape(q)}, positive_key {_shape(pos)}, negative_keys {_shape(neg)}, "
                f"temperature={tau}, {_dtype_name(dtype)}")
        cases.append(_Case((q, pos, neg, tau), desc, dtype))
    return cases


def _info_nce_logits(q: Tensor, k: Tensor, neg: Tensor, tau: float, normalise: bool = True) -> Tensor:
    if normalise:
        q, k, neg = F.normalize(q, dim=1), F.normalize(k, dim=1), F.normalize(neg, dim=1)
    return torch.cat([(q * k).sum(1, keepdim=True), q @ neg.T], dim=1) / tau


def _info_nce_variants() -> list[_Variant]:
    def zeros(q: Tensor) -> Tensor:
        return torch.zeros(q.shape[0], dtype=torch.long)

    def no_norm(q, k, neg, tau):
        return _ce(_info_nce_logits(q, k, neg, tau, normalise=False), zeros(q))

    def no_tau(q, k, neg, tau):
        return _ce(_info_nce_logits(q, k, neg, 1.0), zeros(q))

    def times_tau(q, k, neg, tau):
        return _ce(_info_nce_logits(q, k, neg, 1.0) * tau, zeros(q))

    def summed(q, k, neg, tau):
        return _ce(_info_nce_logits(q, k, neg, tau), zeros(q), "sum")

    def arange_targets(q, k, neg, tau):
        return _ce(_info_nce_logits(q, k, neg, tau), torch.arange(q.shape[0]))

    def positive_not_in_denominator(q, k, neg, tau):
        logits = _info_nce_logits(q, k, neg, tau)
        return (torch.logsumexp(logits[:, 1:], dim=1) - logits[:, 0]).mean()

    return [
        _Variant(no_norm, "L2-normalise query, positive_key and negative_keys "
                          "(F.normalize(x, dim=1)) so the dot products are cosine similarities."),
        _Variant(no_tau, "divide the logits by the temperature before the softmax."),
        _Variant(times_tau, "divide the logits by the temperature; you multiplied by it."),
        _Variant(summed, "average over the N queries (F.cross_entropy's default reduction='mean'), "
                         "don't sum."),
        _Variant(arange_targets, "the positive sits in column 0 of cat([l_pos, l_neg], dim=1), so every "
                                 "target is 0 (torch.zeros(N, dtype=torch.long)), not arange(N)."),
        _Variant(positive_not_in_denominator, "the positive belongs in the denominator too: the softmax "
                                              "runs over [l_pos, l_neg], all 1+K logits."),
    ]


def check_info_nce(fn: Callable[..., Any]) -> bool:
    """Check ``fn(query, positive_key, negative_keys, temperature)`` against :func:`info_nce`."""
    return _run_scalar_checks(
        fn, _info_nce_cases(), info_nce, _info_nce_variants(),
        "write the loss for one query on paper: -log(exp(q.k+/T) / (exp(q.k+/T) + sum_j exp(q.n_j/T))) "
        "with normalised vectors, and compare term by term on a batch of N=1.",
    )


# --------------------------------------------------------------------------------------------
# NT-Xent (SimCLR)
# --------------------------------------------------------------------------------------------
_NT_XENT_SETTINGS = [  # (N, D, temperature, dtype)
    (4, 8, 0.5, torch.float64),
    (8, 16, 0.1, torch.float32),
    (5, 3, 0.2, torch.float64),
    (12, 32, 1.0, torch.float32),
    (2, 6, 0.07, torch.float64),
    (7, 10, 0.3, torch.float32),
]


def _nt_xent_cases() -> list[_Case]:
    gen = _generator(202)
    cases = []
    for n, d, tau, dtype in _NT_XENT_SETTINGS:
        z1 = _random_embeddings(n, d, dtype, gen)
        z2 = (z1.double() + 0.8 * torch.randn(n, d, generator=gen, dtype=torch.float64)).to(dtype)
        desc = f"z1 {_shape(z1)}, z2 {_shape(z2)}, temperature={tau}, {_dtype_name(dtype)}"
        cases.append(_Case((z1, z2, tau), desc, dtype))
    return cases


def _nt_xent_parts(z1: Tensor, z2: Tensor, tau: float, normalise: bool = True, mask: bool = True):
    n = z1.shape[0]
    if normalise:
        z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    z = torch.cat([z1, z2])
    logits = z @ z.T / tau
    if mask:
        logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    targets = torch.cat([torch.arange(n) + n, torch.arange(n)])
    return logits, targets


def _nt_xent_variants() -> list[_Variant]:
    def summed_directions(z1, z2, tau):
        return 2 * nt_xent(z1, z2, tau)

    def no_mask(z1, z2, tau):
        return _ce(*_nt_xent_parts(z1, z2, tau, mask=False))

    def no_mask_summed(z1, z2, tau):
        return 2 * _ce(*_nt_xent_parts(z1, z2, tau, mask=False))

    def no_norm(z1, z2, tau):
        return _ce(*_nt_xent_parts(z1, z2, tau, normalise=False))

    def no_tau(z1, z2, tau):
        return _ce(*_nt_xent_parts(z1, z2, 1.0))

    def one_direction(z1, z2, tau):
        logits, targets = _nt_xent_parts(z1, z2, tau)
        n = z1.shape[0]
        return _ce(logits[:n], targets[:n])

    def summed_anchors(z1, z2, tau):
        return _ce(*_nt_xent_parts(z1, z2, tau), reduction="sum")

    def cross_view_only(z1, z2, tau):
        a, b = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
        targets = torch.arange(z1.shape[0])
        return 0.5 * (_ce(a @ b.T / tau, targets) + _ce(b @ a.T / tau, targets))

    return [
        _Variant(summed_directions, "you summed the two directions: average over all 2N anchors, as the "
                                    "PyTorch ports do (the official TF code's mean(loss_a + loss_b) is "
                                    "twice the value)."),
        _Variant(no_mask, "mask the self-similarity on the diagonal (logits.masked_fill(eye, -inf)): "
                          "an anchor is not one of its own candidates."),
        _Variant(no_mask_summed, "mask the self-similarity on the diagonal, and average over the 2N "
                                 "anchors instead of summing the two directions."),
        _Variant(no_norm, "L2-normalise z1 and z2 first: NT-Xent uses cosine similarity."),
        _Variant(no_tau, "divide the similarities by the temperature."),
        _Variant(one_direction, "use both views as anchors: average over all 2N anchors, not only "
                                "the N of view 1."),
        _Variant(summed_anchors, "average over the 2N anchors instead of summing."),
        _Variant(cross_view_only, "the candidates of an anchor are all 2N-1 other embeddings, including "
                                  "the other images of its own view, not only the N embeddings of the "
                                  "other view."),
    ]


def check_nt_xent(fn: Callable[..., Any]) -> bool:
    """Check ``fn(z1, z2, temperature)`` against :func:`nt_xent`."""
    return _run_scalar_checks(
        fn, _nt_xent_cases(), nt_xent, _nt_xent_variants(),
        "check the positive's index: for row i < N it is i + N, for row i >= N it is i - N.",
    )


# --------------------------------------------------------------------------------------------
# SupCon
# --------------------------------------------------------------------------------------------
_SUPCON_SETTINGS = [  # (N, V, D, num_classes or None for labels=None, temperature, base_temperature, dtype)
    (6, 2, 8, 3, 0.07, 0.07, torch.float64),
    (8, 2, 16, 4, 0.1, 0.07, torch.float32),
    (5, 3, 4, 2, 0.5, 0.07, torch.float64),
    (6, 2, 8, None, 0.2, 0.2, torch.float32),
    (7, 1, 6, 4, 0.1, 0.1, torch.float64),  # single view: some classes occur once -> no positives
    (9, 2, 12, 5, 0.3, 0.07, torch.float32),
]


def _supcon_cases() -> list[_Case]:
    gen = _generator(303)
    cases = []
    for n, v, d, classes, tau, base_tau, dtype in _SUPCON_SETTINGS:
        raw = torch.randn(n, v, d, generator=gen, dtype=torch.float64)
        features = F.normalize(raw, dim=2).to(dtype)
        if classes is None:
            labels = None
            label_text = "labels=None"
        else:
            labels = torch.randint(0, classes, (n,), generator=gen)
            labels[0] = labels[1]  # at least one class with two samples
            labels[-1] = classes + 7  # a class that appears once
            label_text = f"labels {labels.tolist()}"
        desc = (f"features {_shape(features)}, {label_text}, temperature={tau}, "
                f"base_temperature={base_tau}, {_dtype_name(dtype)}")
        cases.append(_Case((features, labels, tau, base_tau), desc, dtype))
    return cases


def _supcon_parts(features: Tensor, labels: Tensor | None, tau: float, mask_self: bool = True):
    """log-probabilities [A, A], positive mask [A, A] (self included when mask_self=False)."""
    n, v, d = features.shape
    z = features.transpose(0, 1).reshape(v * n, d)
    cls = (torch.arange(n) if labels is None else labels).repeat(v)
    eye = torch.eye(v * n, dtype=torch.bool)
    logits = z @ z.T / tau
    if mask_self:
        logits = logits.masked_fill(eye, float("-inf"))
    log_prob = torch.log_softmax(logits, dim=1)
    positives = cls[:, None] == cls[None, :]
    if mask_self:
        positives = positives & ~eye
    return log_prob, positives


def _supcon_from_parts(log_prob: Tensor, positives: Tensor, scale: float, skip_empty: bool = False):
    count = positives.sum(1)
    mean_pos = torch.where(positives, log_prob, torch.zeros_like(log_prob)).sum(1) / count.clamp(min=1)
    loss = -scale * mean_pos
    return loss[count > 0].mean() if skip_empty else loss.mean()


def _supcon_variants() -> list[_Variant]:
    def no_scale(features, labels, tau, base_tau):
        return supcon(features, labels, tau, tau)

    def self_in_denominator(features, labels, tau, base_tau):
        n, v, d = features.shape
        z = features.transpose(0, 1).reshape(v * n, d)
        log_prob = torch.log_softmax(z @ z.T / tau, dim=1)
        _, positives = _supcon_parts(features, labels, tau)
        return _supcon_from_parts(log_prob, positives, tau / base_tau)

    def no_self_mask(features, labels, tau, base_tau):
        return _supcon_from_parts(*_supcon_parts(features, labels, tau, mask_self=False), tau / base_tau)

    def skip_anchors_without_positives(features, labels, tau, base_tau):
        return _supcon_from_parts(*_supcon_parts(features, labels, tau), tau / base_tau, skip_empty=True)

    def log_outside(features, labels, tau, base_tau):  # L_in: log of the mean probability
        log_prob, positives = _supcon_parts(features, labels, tau)
        count = positives.sum(1)
        prob = torch.where(positives, log_prob.exp(), torch.zeros_like(log_prob)).sum(1)
        loss = -(tau / base_tau) * torch.log(prob.clamp_min(1e-300) / count.clamp(min=1))
        return torch.where(count > 0, loss, torch.zeros_like(loss)).mean()

    def ignore_labels(features, labels, tau, base_tau):
        return supcon(features, None, tau, base_tau) if features.shape[1] > 1 else None

    return [
        _Variant(no_scale, "multiply the loss by temperature / base_temperature, as SupContrast does."),
        _Variant(self_in_denominator, "exclude the anchor itself from the denominator: sum over the "
                                      "A-1 other embeddings (mask the diagonal)."),
        _Variant(no_self_mask, "mask the diagonal: the anchor itself is neither one of its positives "
                               "nor a term of the denominator."),
        _Variant(skip_anchors_without_positives, "anchors without positives contribute 0 but still count "
                                                 "in the mean over all N*V anchors (divide by "
                                                 "max(|P(a)|, 1), then .mean())."),
        _Variant(log_outside, "that is L_in (log of the averaged probability); SupCon uses L_out: average "
                              "the log-probabilities over the positives."),
        _Variant(ignore_labels, "use the labels: every embedding with the anchor's label is a positive, "
                                "not only the other views of the same image."),
    ]


def check_supcon(fn: Callable[..., Any]) -> bool:
    """Check ``fn(features, labels, temperature, base_temperature)`` against :func:`supcon`."""
    return _run_scalar_checks(
        fn, _supcon_cases(), supcon, _supcon_variants(),
        "flatten the views view-major (features.transpose(0, 1).reshape(V*N, D)) and repeat the labels "
        "the same way (labels.repeat(V)); with labels=None use torch.arange(N) as labels.",
    )


# --------------------------------------------------------------------------------------------
# NNCLR nearest-neighbour look-up
# --------------------------------------------------------------------------------------------
_NN_SETTINGS = [  # (N, D, Q, dtype)
    (4, 8, 16, torch.float64),
    (6, 3, 10, torch.float32),
    (8, 16, 64, torch.float64),
    (3, 5, 7, torch.float32),
    (10, 4, 30, torch.float64),
    (5, 32, 20, torch.float32),
]


def _nn_cases() -> list[_Case]:
    gen = _generator(404)
    cases = []
    for n, d, q, dtype in _NN_SETTINGS:
        z = _random_embeddings(n, d, dtype, gen)
        queue = _random_embeddings(q, d, dtype, gen)
        desc = f"z {_shape(z)}, queue {_shape(queue)}, {_dtype_name(dtype)}"
        cases.append(_Case((z, queue), desc, dtype))
    return cases


def _nn_variants() -> list[_Variant]:
    def unnormalised_row(z, queue):
        idx = (F.normalize(z, dim=1) @ F.normalize(queue, dim=1).T).argmax(1)
        return queue[idx]

    def argmin(z, queue):
        idx = (F.normalize(z, dim=1) @ F.normalize(queue, dim=1).T).argmin(1)
        return F.normalize(queue, dim=1)[idx]

    def dot_product(z, queue):
        idx = (z @ queue.T).argmax(1)
        return F.normalize(queue, dim=1)[idx]

    def dot_product_raw(z, queue):
        return queue[(z @ queue.T).argmax(1)]

    def euclidean(z, queue):
        idx = torch.cdist(z, queue).argmin(1)
        return F.normalize(queue, dim=1)[idx]

    def euclidean_raw(z, queue):
        return queue[torch.cdist(z, queue).argmin(1)]

    return [
        _Variant(unnormalised_row, "return the L2-normalised queue row (F.normalize(queue, dim=1)[idx]), "
                                   "not the raw one."),
        _Variant(argmin, "the nearest neighbour has the largest cosine similarity: argmax, not argmin."),
        _Variant(dot_product, "use cosine similarity: normalise z and the queue before the dot product, "
                              "otherwise long queue vectors win."),
        _Variant(dot_product_raw, "use cosine similarity (normalise z and the queue before the dot "
                                  "product) and return the normalised row."),
        _Variant(euclidean, "compare by cosine similarity: Euclidean distance between unnormalised "
                            "vectors picks a different neighbour."),
        _Variant(euclidean_raw, "compare by cosine similarity and return the normalised queue row."),
    ]


def check_nnclr_lookup(fn: Callable[..., Any]) -> bool:
    """Check ``fn(z, queue)`` (nearest queue row per embedding) against :func:`nearest_neighbours`."""
    variants = _nn_variants()
    for index, case in enumerate(_nn_cases()):
        expected = nearest_neighbours(*case.args)
        result, failure = _call(fn, case, index)
        if failure is None:
            failure = _judge_tensor(result, expected, case, index, variants)
        if failure is not None:
            _report(case, failure.lines)
            return False
    print(f"✓ correct on {_NUM_CASES} inputs")
    return True


def _judge_tensor(result: Any, expected: Tensor, case: _Case, index: int,
                  variants: Sequence[_Variant]) -> _Outcome | None:
    where = f"input {index + 1} of {_NUM_CASES} ({case.description})"
    if not isinstance(result, Tensor):
        return _Outcome(False, [f"✗ on {where} your function returned {type(result).__name__}, "
                                f"expected a tensor of shape {_shape(expected)}."])
    if result.dim() == 1 and result.shape[0] == expected.shape[0] and not result.is_floating_point():
        return _Outcome(False, [
            f"✗ on {where} your function returned indices of shape {_shape(result)}.",
            "    hint: return the queue rows themselves (queue_normalised[idx]), shape [N, D].",
        ])
    if result.shape != expected.shape:
        return _Outcome(False, [
            f"✗ on {where} your output has shape {_shape(result)}; expected {_shape(expected)}.",
            "    hint: one neighbour (a D-dimensional row) per row of z.",
        ])
    result = result.detach()
    if _close(result, expected, case.dtype) and result.dtype == expected.dtype:
        return None
    rtol, atol = _TOLERANCE[case.dtype]
    row_ok = torch.isclose(result.double(), expected.double(), rtol=rtol, atol=atol).all(dim=1)
    bad = int((~row_ok).nonzero()[0]) if (~row_ok).any() else 0
    lines = [
        f"✗ differs on {where}, first at row {bad}:",
        f"    your row:     {_format_value(result[bad])} ({_dtype_name(result.dtype)})",
        f"    expected row: {_format_value(expected[bad])} ({_dtype_name(expected.dtype)})",
    ]
    if result.dtype != expected.dtype and _close(result, expected, torch.float32):
        lines.append(f"    hint: the values are right but the dtype is not: keep {_dtype_name(case.dtype)}.")
    else:
        hint = _matching_hint(result, case, variants)
        lines.append("    hint: " + (hint or "for each z, compute the cosine similarity with every queue "
                                               "row and take the row with the largest one."))
    return _Outcome(False, lines)


# --------------------------------------------------------------------------------------------
# NNCLR loss (no predictor)
# --------------------------------------------------------------------------------------------
_NNCLR_SETTINGS = [  # (N, D, Q, temperature, dtype)
    (4, 8, 16, 0.1, torch.float64),
    (6, 5, 12, 0.2, torch.float32),
    (8, 16, 40, 0.5, torch.float64),
    (3, 4, 9, 1.0, torch.float32),
    (10, 12, 30, 0.07, torch.float64),
    (5, 6, 20, 0.3, torch.float32),
]


def _nnclr_cases() -> list[_Case]:
    gen = _generator(505)
    cases = []
    for n, d, q, tau, dtype in _NNCLR_SETTINGS:
        z1 = _random_embeddings(n, d, dtype, gen)
        z2 = (z1.double() + 0.6 * torch.randn(n, d, generator=gen, dtype=torch.float64)).to(dtype)
        queue = _random_embeddings(q, d, dtype, gen)
        desc = f"z1 {_shape(z1)}, z2 {_shape(z2)}, queue {_shape(queue)}, temperature={tau}, {_dtype_name(dtype)}"
        cases.append(_Case((z1, z2, queue, tau), desc, dtype))
    return cases


def _nnclr_direction(anchor: Tensor, other: Tensor, tau: float, reduction: str = "mean") -> Tensor:
    logits = anchor @ F.normalize(other, dim=1).T / tau
    return _ce(logits, torch.arange(anchor.shape[0]), reduction)


def _nnclr_variants() -> list[_Variant]:
    def one_direction(z1, z2, queue, tau):
        return _nnclr_direction(nearest_neighbours(z1, queue), z2, tau)

    def summed_directions(z1, z2, queue, tau):
        return 2 * nnclr(z1, z2, queue, tau)

    def same_view(z1, z2, queue, tau):
        return 0.5 * (_nnclr_direction(nearest_neighbours(z1, queue), z1, tau)
                      + _nnclr_direction(nearest_neighbours(z2, queue), z2, tau))

    def no_neighbour(z1, z2, queue, tau):
        return 0.5 * (_nnclr_direction(F.normalize(z1, dim=1), z2, tau)
                      + _nnclr_direction(F.normalize(z2, dim=1), z1, tau))

    def euclidean_raw(z1, z2, queue, tau):
        def raw(z):
            return F.normalize(queue[torch.cdist(z, queue).argmin(1)], dim=1)
        return 0.5 * (_nnclr_direction(raw(z1), z2, tau) + _nnclr_direction(raw(z2), z1, tau))

    def no_tau(z1, z2, queue, tau):
        return nnclr(z1, z2, queue, 1.0)

    def unnormalised_other(z1, z2, queue, tau):
        nn1, nn2 = nearest_neighbours(z1, queue), nearest_neighbours(z2, queue)
        targets = torch.arange(z1.shape[0])
        return 0.5 * (_ce(nn1 @ z2.T / tau, targets) + _ce(nn2 @ z1.T / tau, targets))

    return [
        _Variant(one_direction, "symmetrise: average the two directions, 0.5 * (L(NN(z1), z2) + L(NN(z2), z1))."),
        _Variant(summed_directions, "average the two directions (0.5 * (...)), don't add them."),
        _Variant(same_view, "the neighbour of view 1 is the positive for view 2 (and vice versa), "
                            "not for view 1 itself."),
        _Variant(no_neighbour, "you contrasted the views directly (SimCLR-style): replace z1 by its nearest "
                               "queue row NN(z1, queue) as the anchor."),
        _Variant(euclidean_raw, "find the neighbour by cosine similarity (normalise before comparing): on "
                                "unnormalised vectors the smallest Euclidean distance picks another row."),
        _Variant(no_tau, "divide the logits by the temperature."),
        _Variant(unnormalised_other, "normalise the other view's embeddings too (F.normalize(z2, dim=1)) "
                                     "so every logit is a cosine similarity divided by the temperature."),
    ]


def check_nnclr_loss(fn: Callable[..., Any]) -> bool:
    """Check ``fn(z1, z2, queue, temperature)`` against :func:`nnclr` without a predictor."""
    return _run_scalar_checks(
        fn, _nnclr_cases(), nnclr, _nnclr_variants(),
        "for N=1 and a queue of two rows, write NN(z1), then -log softmax over the candidates "
        "[z2 of every image] and compare with your code term by term.",
    )


# --------------------------------------------------------------------------------------------
# Rotation pretext task
# --------------------------------------------------------------------------------------------
_ROTATE_SETTINGS = [  # (B, C, size, dtype)
    (2, 3, 4, torch.uint8),
    (3, 1, 5, torch.float32),
    (4, 3, 8, torch.float64),
    (1, 2, 3, torch.float32),
    (5, 3, 6, torch.uint8),
    (2, 4, 7, torch.float64),
]


def _rotate_cases() -> list[_Case]:
    gen = _generator(505)
    cases = []
    for b, c, size, dtype in _ROTATE_SETTINGS:
        if dtype == torch.uint8:
            x = torch.randint(0, 256, (b, c, size, size), generator=gen, dtype=torch.uint8)
        else:
            x = torch.randn(b, c, size, size, generator=gen, dtype=dtype)
        cases.append(_Case((x,), f"x {_shape(x)}, {_dtype_name(dtype)}", dtype))
    return cases


def _rotate_variants() -> list[tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor], str]]:
    """(images, labels, hint) for the usual wrong orders and directions."""
    def interleaved(x):
        return torch.stack([torch.rot90(x, k, dims=(2, 3)) for k in range(4)], dim=1).flatten(0, 1)

    def clockwise(x):
        return torch.cat([torch.rot90(x, -k, dims=(2, 3)) for k in range(4)])

    def interleaved_labels(x):
        return torch.arange(4).repeat(x.shape[0])

    def block_labels(x):
        return torch.arange(4).repeat_interleave(x.shape[0])

    return [
        (interleaved, interleaved_labels,
         "the order is rotation-major: first the whole batch at 0°, then the whole batch at 90°, ... "
         "(torch.cat over k), not each image's four rotations next to each other."),
        (interleaved, block_labels,
         "the order is rotation-major: first the whole batch at 0°, then the whole batch at 90°, ... "
         "(torch.cat over k), not each image's four rotations next to each other."),
        (clockwise, block_labels,
         "rotate counter-clockwise as torch.rot90(x, k, dims=(2, 3)) does; you rotated clockwise."),
    ]


def check_rotate_batch(fn: Callable[[Tensor], Any]) -> bool:
    """Check ``fn(x) -> (x_rot, rotation_labels)`` against :func:`rotate_batch`."""
    for index, case in enumerate(_rotate_cases()):
        (x,) = case.args
        expected_x, expected_y = rotate_batch(x)
        result, failure = _call(fn, case, index)
        lines = [] if failure is None else failure.lines
        where = f"input {index + 1} of {_NUM_CASES} ({case.description})"
        if failure is None:
            lines = _judge_rotation(result, x, expected_x, expected_y, where)
        if lines:
            _report(case, lines)
            return False
    print(f"✓ correct on {_NUM_CASES} inputs")
    return True


def _judge_rotation(result: Any, x: Tensor, expected_x: Tensor, expected_y: Tensor, where: str) -> list[str]:
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        return [f"✗ on {where} your function returned {type(result).__name__}; expected a pair "
                "(x_rot, rotation_labels).",
                "    hint: return x_rot, rotation_labels"]
    got_x, got_y = result
    if not isinstance(got_x, Tensor) or not isinstance(got_y, Tensor):
        return [f"✗ on {where} both outputs must be tensors; got {type(got_x).__name__} and "
                f"{type(got_y).__name__}."]
    if got_x.shape != expected_x.shape:
        return [f"✗ on {where} x_rot has shape {_shape(got_x)}; expected {_shape(expected_x)}.",
                "    hint: 4 rotations of each of the B images, concatenated on dim 0: [4B, C, H, W]."]
    if got_x.dtype != x.dtype:
        return [f"✗ on {where} x_rot has dtype {_dtype_name(got_x.dtype)}; expected "
                f"{_dtype_name(x.dtype)} (rotating must not change the images' dtype)."]
    if got_y.shape != expected_y.shape:
        return [f"✗ on {where} rotation_labels has shape {_shape(got_y)}; expected {_shape(expected_y)}.",
                "    hint: one label per rotated image."]
    images_ok = torch.equal(got_x, expected_x)
    labels_ok = torch.equal(got_y.cpu().long(), expected_y.cpu())
    if images_ok and labels_ok:
        if got_y.dtype != torch.long:
            return [f"✗ on {where} rotation_labels has dtype {_dtype_name(got_y.dtype)}; expected int64.",
                    "    hint: F.cross_entropy needs int64 (torch.long) class indices."]
        return []
    lines = [f"✗ differs on {where}:"]
    if not images_ok:
        bad = int((got_x != expected_x).flatten(1).any(1).nonzero()[0])
        lines.append(f"    x_rot[{bad}] differs: expected image {bad % x.shape[0]} rotated by "
                     f"{90 * (bad // x.shape[0])}° counter-clockwise.")
    if not labels_ok:
        lines.append(f"    your labels:     {got_y.tolist()}")
        lines.append(f"    expected labels: {expected_y.tolist()}")
    for images_of, labels_of, hint in _rotate_variants():
        if torch.equal(got_x, images_of(x)) and torch.equal(got_y.cpu().long(), labels_of(x)):
            lines.append(f"    hint: {hint}")
            break
    else:
        if images_ok:
            lines.append("    hint: label k for the k-th block of B images: "
                         "torch.arange(4).repeat_interleave(B).")
        else:
            lines.append("    hint: use torch.rot90(x, k, dims=(2, 3)) for k = 0, 1, 2, 3 and torch.cat the "
                         "results on dim 0.")
    return lines
