"""Checkers for the FeatMatch notebook exercises (``10_featmatch``).

Each ``check_*`` runs the learner's function and a reference on 6 fixed random inputs (float32
and float64, varied sizes) and prints ``✓ correct on 6 inputs`` or the first input where they
differ, both outputs, and a hint. Exceptions from the learner's function are caught and
reported, so an unfinished stub never stops the notebook.

Usage::

    from ssl_course.exercises.featmatch import check_attention_weights
    check_attention_weights(my_attention_weights)
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ssl_course.losses.featmatch import featmatch_pseudo_labels

from ._checking import _dtype_name
from ._output_checking import _Case, _run_checks

__all__ = ["check_featmatch_pseudo_labels", "check_attention_weights", "check_kmeans_step"]

_DTYPES = (torch.float32, torch.float64)

PSEUDO_LABEL_HINT = (
    "turn the logits into probabilities with softmax(dim=1) first, then sharpen: raise them to the "
    "power 1/T and divide by the row sum. The result must not carry gradients (detach or no_grad)."
)
ATTENTION_HINT = (
    "scores = feature_embeddings @ prototype_embeddings.T divided by sqrt(d), where d is the "
    "embedding size (number of columns), then softmax over the prototypes (dim=1): every row "
    "sums to 1."
)
KMEANS_HINT = (
    "assign every point to the centroid with the smallest squared Euclidean distance, then move "
    "each centroid to the mean of its assigned points; a centroid that received no point keeps "
    "its old position (do not divide by zero)."
)


def _reference_attention(feature_embeddings: Tensor, prototype_embeddings: Tensor) -> Tensor:
    scale = math.sqrt(feature_embeddings.shape[1])
    return torch.softmax(feature_embeddings @ prototype_embeddings.T / scale, dim=1)


def _reference_kmeans_step(points: Tensor, centroids: Tensor) -> Tensor:
    """Loop version: one Lloyd iteration."""
    new = centroids.clone()
    assignment = torch.cdist(points, centroids).argmin(dim=1)
    for j in range(centroids.shape[0]):
        members = points[assignment == j]
        if len(members):
            new[j] = members.mean(dim=0)
    return new


def _pseudo_label_cases() -> list[_Case]:
    generator = torch.Generator().manual_seed(707)
    settings = [(4, 3, 0.75), (6, 10, 0.5), (3, 5, 1.0), (8, 4, 0.25), (2, 2, 0.75), (5, 6, 2.0)]
    cases = []
    for index, (rows, classes, temperature) in enumerate(settings):
        dtype = _DTYPES[index % 2]
        logits = (torch.randn(rows, classes, generator=generator, dtype=torch.float64) * 2).to(dtype)
        cases.append(_Case(
            description=f"logits [{rows}, {classes}] ({_dtype_name(dtype)}), T={temperature}",
            args=(logits, temperature),
            expected=featmatch_pseudo_labels(logits, temperature),
            row_inputs={"logits": logits},
        ))
    return cases


def _attention_cases() -> list[_Case]:
    generator = torch.Generator().manual_seed(808)
    settings = [(4, 6, 3), (5, 10, 8), (3, 4, 16), (6, 20, 4), (2, 3, 2), (7, 12, 32)]
    cases = []
    for index, (rows, prototypes, dim) in enumerate(settings):
        dtype = _DTYPES[index % 2]
        features = (torch.randn(rows, dim, generator=generator, dtype=torch.float64) * 2).to(dtype)
        protos = (torch.randn(prototypes, dim, generator=generator, dtype=torch.float64) * 2).to(dtype)
        cases.append(_Case(
            description=(f"feature_embeddings [{rows}, {dim}], prototype_embeddings [{prototypes}, {dim}] "
                         f"({_dtype_name(dtype)})"),
            args=(features, protos),
            expected=_reference_attention(features, protos),
            row_inputs={"feature_embeddings": features},
        ))
    return cases


def _kmeans_cases() -> list[_Case]:
    generator = torch.Generator().manual_seed(909)
    settings = [(12, 2, 3), (20, 3, 4), (9, 5, 2), (30, 4, 5), (6, 2, 4), (16, 8, 3)]
    cases = []
    for index, (points, dim, clusters) in enumerate(settings):
        dtype = _DTYPES[index % 2]
        data = torch.randn(points, dim, generator=generator, dtype=torch.float64).to(dtype)
        centroids = torch.randn(clusters, dim, generator=generator, dtype=torch.float64).to(dtype)
        if index == 4:  # one centroid far away from every point: it must stay where it is
            centroids[-1] = 100.0
        cases.append(_Case(
            description=f"points [{points}, {dim}], centroids [{clusters}, {dim}] ({_dtype_name(dtype)})",
            args=(data, centroids),
            expected=_reference_kmeans_step(data, centroids),
            row_inputs={"old centroids": centroids},
        ))
    return cases


def check_featmatch_pseudo_labels(fn: Callable[[Tensor, float], Tensor]) -> bool:
    """Check ``fn(logits [N, C], T) -> [N, C]`` against :func:`ssl_course.losses.featmatch_pseudo_labels`."""
    return _run_checks("featmatch_pseudo_labels", fn, _pseudo_label_cases(), PSEUDO_LABEL_HINT,
                       output_names=("pseudo_labels",))


def check_attention_weights(fn: Callable[[Tensor, Tensor], Tensor]) -> bool:
    """Check ``fn(feature_embeddings [N, d], prototype_embeddings [P, d]) -> [N, P]``: one head's
    scaled dot-product attention over the prototypes (as in :class:`PrototypeAttention`)."""
    return _run_checks("attention_weights", fn, _attention_cases(), ATTENTION_HINT, output_names=("weights",))


def check_kmeans_step(fn: Callable[[Tensor, Tensor], Tensor]) -> bool:
    """Check ``fn(points [N, D], centroids [k, D]) -> new centroids [k, D]`` (one Lloyd iteration)."""
    return _run_checks("kmeans_step", fn, _kmeans_cases(), KMEANS_HINT, output_names=("centroids",))
