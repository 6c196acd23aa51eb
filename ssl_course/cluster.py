r"""Per-class k-means: the class prototypes FeatMatch's attention compares every feature with.

:func:`extract_prototypes` clusters the features of every class separately into ``p`` clusters
and returns the cluster means, ``[C * p, D]``. All classes are clustered at once: the points are
grouped into a padded ``[C, S, D]`` batch (:func:`_group_by_class`), seeded with k-means++
(:func:`_kmeans_plus_plus`), refined by Lloyd iterations (:func:`_lloyd`), and each final
cluster is summarised by the mean of its raw features (:func:`_cluster_means`).

Kuo, Ma, Huang and Kira, "FeatMatch: Feature-Based Augmentation for Semi-Supervised Learning",
ECCV 2020 (``extract_fp`` in ``GT-RIPL/FeatMatch`` ``train/featmatch.py``). k-means++: Arthur and
Vassilvitskii, "k-means++: The Advantages of Careful Seeding", SODA 2007.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ssl_course.losses._checks import check_matrix, check_positive_int, check_tensor

__all__ = ["extract_prototypes"]


@torch.no_grad()
def extract_prototypes(
    features: Tensor,
    pseudo_labels: Tensor,
    num_classes: int,
    prototypes_per_class: int,
    iters: int = 20,
    generator: torch.Generator | None = None,
    metric: str = "euclidean",
) -> tuple[Tensor, Tensor]:
    r"""Per-class k-means prototypes, all classes clustered at once (batched Lloyd iterations).

    For every class :math:`c` with feature set :math:`X_c`, find ``p`` centroids minimising

    .. math::
        \sum_{x \in X_c} \min_{j=1..p} \lVert x - \mu_{c,j} \rVert_2^2

    with k-means++ seeding and ``iters`` Lloyd steps (assign each point to its nearest centroid,
    move each centroid to the mean of its points). The prototypes are the cluster means of the
    features: ``[C * p, D]``, class 0's prototypes first, with labels ``[0]*p + [1]*p + ...``.

    Relation to ``GT-RIPL/FeatMatch`` ``train/featmatch.py`` (``extract_fp``, ``kmeans``): the
    official code runs scikit-learn ``KMeans`` per class on L2-normalised features
    (``metric='cosine'``) and returns the means of the raw features of each cluster; it adds
    the class mean as one extra prototype and, for a class with too few points, simply keeps
    all of them (so classes can have different numbers of prototypes). ``metric="cosine"``
    reproduces the clustering-on-normalised-features part; the fixed ``p`` per class is a
    choice of this library so that ``prototypes`` is one rectangular tensor.

    Classes with fewer than ``p`` samples: their samples become the prototypes, repeated
    cyclically to fill the ``p`` slots (``n`` samples -> ``x_0, ..., x_{n-1}, x_0, ...``). A
    repeated prototype only counts twice in the attention softmax, which is harmless, and it
    keeps the shape fixed. A class with **no** sample raises ``ValueError``.

    Deterministic given ``generator`` (a ``torch.Generator`` on the features' device); without
    one the global RNG is used. Runs under ``no_grad``: prototypes are constants. Reads the class
    counts back to the host (a missing class must raise), so call it between steps, not inside one.

    Args:
        features: ``[N, D]`` float features (e.g. stored backbone features).
        pseudo_labels: ``[N]`` int64 class of each feature (labels or confident pseudo-labels).
        num_classes: ``C``; every class in ``0..C-1`` must occur.
        prototypes_per_class: ``p >= 1``.
        iters: number of Lloyd iterations (stops early once assignments no longer change).
        generator: RNG for the k-means++ seeding.
        metric: ``"euclidean"`` or ``"cosine"`` (cluster L2-normalised features).

    Returns:
        ``(prototypes [C * p, D], prototype_labels [C * p] int64)``.
    """
    _check_extract_prototypes_args(features, pseudo_labels, num_classes, prototypes_per_class, iters, metric,
                                   generator)
    p = prototypes_per_class
    # 1. Group the points of every class into one padded batch.
    groups = _group_by_class(features.detach(), pseudo_labels.long(), num_classes, p)
    points = F.normalize(groups.raw_points, dim=-1) if metric == "cosine" else groups.raw_points  # [C, S, D]
    valid_float = groups.valid.to(points.dtype)  # [C, S]
    # 2. k-means++ seeds, then 3. Lloyd iterations, all classes in parallel.
    centroids = _kmeans_plus_plus(points, valid_float, p, generator)  # [C, p, D]
    centroids = _lloyd(points, valid_float, centroids, iters, normalize=metric == "cosine")
    # 4. Prototypes: the mean raw feature of each final cluster.
    prototypes = _cluster_means(points, groups.raw_points, groups.valid, centroids)  # [C, p, D]
    # 5. Classes with at most p samples: their (cyclically repeated) samples themselves.
    small = (groups.counts <= p).unsqueeze(-1).unsqueeze(-1)  # [C, 1, 1]
    prototypes = torch.where(small, groups.raw_points[:, :p], prototypes)
    prototype_labels = torch.arange(num_classes, device=features.device).repeat_interleave(p)
    return prototypes.reshape(num_classes * p, -1), prototype_labels


class _ClassGroups(NamedTuple):
    raw_points: Tensor  # [C, S, D] features, slot s of class c = its point number (s mod count_c)
    valid: Tensor  # [C, S] bool, False on the padding of classes smaller than S
    counts: Tensor  # [C] points per class


def _group_by_class(raw_features: Tensor, labels: Tensor, num_classes: int, p: int) -> _ClassGroups:
    """Group the points by class into a padded ``[C, S, D]`` batch, ``S = max(max_c count_c, p)``.

    Slot ``s`` of class ``c`` holds that class's point number ``s mod count_c``: a class smaller
    than ``p`` is thereby repeated cyclically up to ``p`` slots; ``valid`` masks the padding.
    """
    device = raw_features.device
    counts = torch.bincount(labels, minlength=num_classes)  # [C]
    missing = (counts == 0).nonzero().flatten().tolist()
    if missing:
        raise ValueError(
            f"classes {missing} have no samples, so they cannot get prototypes; "
            f"lower the pseudo-label threshold or add labelled features"
        )
    sizes = counts.clamp_min(p)  # [C]
    max_size = int(sizes.max())
    order = torch.argsort(labels, stable=True)  # indices grouped by class
    starts = torch.cumsum(counts, dim=0) - counts  # first position of each class in 'order'
    slots = torch.arange(max_size, device=device)
    within_class = slots.unsqueeze(0) % counts.unsqueeze(1)  # [C, S]
    point_index = order[starts.unsqueeze(1) + within_class]  # [C, S]
    valid = slots.unsqueeze(0) < sizes.unsqueeze(1)  # [C, S]
    return _ClassGroups(raw_features[point_index], valid, counts)


def _squared_distances(points: Tensor, centroids: Tensor) -> Tensor:
    """``[C, S, D]`` x ``[C, p, D]`` -> ``[C, S, p]`` squared Euclidean distances.

    Uses ``|x|^2 - 2 x.c + |c|^2`` (a batched matmul) instead of broadcasting ``x - c``, which
    would allocate a ``[C, S, p, D]`` tensor.
    """
    point_norms = (points ** 2).sum(dim=-1, keepdim=True)  # [C, S, 1]
    centroid_norms = (centroids ** 2).sum(dim=-1).unsqueeze(1)  # [C, 1, p]
    cross = points @ centroids.transpose(1, 2)  # [C, S, p]
    return (point_norms - 2 * cross + centroid_norms).clamp_min(0)


def _kmeans_plus_plus(points: Tensor, valid_float: Tensor, p: int, generator: torch.Generator | None) -> Tensor:
    """``p`` k-means++ seeds per class: ``[C, S, D]`` points -> ``[C, p, D]`` centroids.

    The first centroid is drawn uniformly, each next one with probability proportional to the
    squared distance to the nearest centroid chosen so far, so the seeds spread over the clusters
    (plain random seeding often puts two seeds in one cluster and none in another).
    """
    class_index = torch.arange(points.shape[0], device=points.device)
    first = torch.multinomial(valid_float, 1, generator=generator).squeeze(1)  # [C]
    centroids = [points[class_index, first]]  # list of [C, D]
    nearest_squared = _squared_distances(points, centroids[0].unsqueeze(1)).squeeze(-1)  # [C, S]
    for _ in range(1, p):
        weights = nearest_squared * valid_float
        # All remaining points coincide with a centroid (duplicates): pick uniformly.
        degenerate = weights.sum(dim=1, keepdim=True) <= 0
        weights = torch.where(degenerate, valid_float, weights)
        chosen = torch.multinomial(weights, 1, generator=generator).squeeze(1)
        centroids.append(points[class_index, chosen])
        new_distance = _squared_distances(points, centroids[-1].unsqueeze(1)).squeeze(-1)
        nearest_squared = torch.minimum(nearest_squared, new_distance)
    return torch.stack(centroids, dim=1)


def _lloyd(points: Tensor, valid_float: Tensor, centroids: Tensor, iters: int, normalize: bool) -> Tensor:
    """Up to ``iters`` Lloyd steps (assign to the nearest centroid, move it to its points' mean)."""
    p = centroids.shape[1]
    assignment = None
    for _ in range(iters):
        new_assignment = _squared_distances(points, centroids).argmin(dim=-1)  # [C, S]
        if assignment is not None and torch.equal(new_assignment, assignment):
            break  # converged: the centroids would not move any more
        assignment = new_assignment
        membership = F.one_hot(assignment, p).to(points.dtype) * valid_float.unsqueeze(-1)  # [C, S, p]
        cluster_sizes = membership.sum(dim=1)  # [C, p]
        cluster_sums = membership.transpose(1, 2) @ points  # [C, p, D]
        means = cluster_sums / cluster_sizes.clamp_min(1).unsqueeze(-1)
        # An empty cluster keeps its previous centroid instead of collapsing to 0.
        centroids = torch.where(cluster_sizes.unsqueeze(-1) > 0, means, centroids)
        if normalize:
            centroids = F.normalize(centroids, dim=-1)
    return centroids


def _cluster_means(points: Tensor, raw_points: Tensor, valid: Tensor, centroids: Tensor) -> Tensor:
    """Mean of the *raw* features of each final cluster, ``[C, p, D]``.

    For ``"euclidean"`` this is the centroid itself. A cluster left empty (only possible with
    duplicate points) takes the raw feature of the point nearest to its centroid.
    """
    p = centroids.shape[1]
    class_index = torch.arange(points.shape[0], device=points.device)
    distances = _squared_distances(points, centroids)  # [C, S, p]
    distances = distances.masked_fill(~valid.unsqueeze(-1), float("inf"))
    membership = F.one_hot(distances.argmin(dim=-1), p).to(points.dtype) * valid.to(points.dtype).unsqueeze(-1)
    cluster_sizes = membership.sum(dim=1)  # [C, p]
    raw_means = (membership.transpose(1, 2) @ raw_points) / cluster_sizes.clamp_min(1).unsqueeze(-1)
    nearest_point = distances.argmin(dim=1)  # [C, p]
    nearest_raw = raw_points[class_index.unsqueeze(1), nearest_point]  # [C, p, D]
    return torch.where(cluster_sizes.unsqueeze(-1) > 0, raw_means, nearest_raw)


def _check_extract_prototypes_args(features: Tensor, pseudo_labels: Tensor, num_classes: int,
                                   prototypes_per_class: int, iters: int, metric: str,
                                   generator: torch.Generator | None) -> None:
    check_matrix("features", features, "[N, D]")
    check_tensor("pseudo_labels", pseudo_labels)
    check_positive_int("num_classes", num_classes)
    check_positive_int("prototypes_per_class", prototypes_per_class)
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 0:
        raise ValueError(f"iters must be an int >= 0, got {iters!r}")
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
    if pseudo_labels.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"pseudo_labels must hold integer class indices (int64), got dtype {pseudo_labels.dtype}")
    if pseudo_labels.ndim != 1 or pseudo_labels.shape[0] != features.shape[0]:
        raise ValueError(
            f"pseudo_labels must have shape [N={features.shape[0]}], got shape {tuple(pseudo_labels.shape)}"
        )
    if pseudo_labels.device != features.device:
        raise ValueError(f"pseudo_labels is on {pseudo_labels.device} but features are on {features.device}")
    if int(pseudo_labels.min()) < 0 or int(pseudo_labels.max()) >= num_classes:
        raise ValueError(
            f"pseudo_labels must lie in [0, {num_classes - 1}], got values in "
            f"[{int(pseudo_labels.min())}, {int(pseudo_labels.max())}]"
        )
    if generator is not None and generator.device.type != features.device.type:
        raise ValueError(
            f"generator is on {generator.device} but features are on {features.device}; "
            f"create it with torch.Generator(device=features.device)"
        )
