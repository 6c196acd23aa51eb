"""Few-label splits (which training images keep their label) and fixed evaluation subsets.

The semi-supervised protocol of FixMatch and friends: from the training set, keep the labels of
``num_labels`` images, the same number per class, and treat every other training image as
unlabelled. CIFAR-10 is benchmarked at 40, 250 and 4000 labels (4, 25 and 400 per class).

:func:`evenly_spaced` picks the deterministic subsets that the kNN monitor, the kNN bank and the
comparison's t-SNE use, so that every run is measured on the same images.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["few_label_split", "validation_split", "default_val_size", "check_labels_1d", "evenly_spaced"]

#: Validation images held out of a full training set (CIFAR-10: 5,000 of 50,000, as in Oliver et al.
#: 2018, "Realistic evaluation of deep semi-supervised learning algorithms"); smaller sets hold out a tenth.
DEFAULT_VAL_SIZE = 5_000

_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def check_labels_1d(labels: torch.Tensor | np.ndarray | Sequence[int], name: str = "labels") -> torch.Tensor:
    """``labels`` as an int64 CPU tensor, or a ``ValueError`` saying what is wrong with it."""
    if not isinstance(labels, torch.Tensor):
        try:
            labels = torch.as_tensor(np.asarray(labels))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must be a 1-D integer tensor of class ids, got an object of type "
                             f"{type(labels).__name__} that cannot be converted ({err})") from err
    if labels.dim() != 1 or labels.dtype not in _INT_DTYPES:
        raise ValueError(f"{name} must be a 1-D integer tensor of class ids, got a {labels.dim()}-D "
                         f"{str(labels.dtype).replace('torch.', '')} tensor of shape {tuple(labels.shape)}; "
                         "pass e.g. labels.long().flatten() or the labels returned by load_dataset")
    labels = labels.detach().to("cpu", torch.int64)
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError(f"{name} must be >= 0 (class ids), found {int(labels.min())}")
    return labels


def few_label_split(labels: torch.Tensor | np.ndarray | Sequence[int], num_labels: int, seed: int = 0,
                    num_classes: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices into a class-balanced labelled set and the unlabelled rest.

    Args:
        labels: int ``[N]`` class ids of the training set (any device; the split is computed on
            the CPU so it is the same everywhere).
        num_labels: size of the labelled set; must be a multiple of ``num_classes``.
        seed: the same ``(labels, num_labels, seed)`` always gives the same split. For a fixed
            seed the splits are nested: the 40-label set is contained in the 250-label set.
        num_classes: default ``labels.max() + 1``.

    Returns:
        ``(labeled_idx, unlabeled_idx)``: sorted int64 tensors on ``labels``' device, disjoint,
        together covering ``0..N-1``; ``labeled_idx`` holds ``num_labels / num_classes`` indices
        of every class.
    """
    device = labels.device if isinstance(labels, torch.Tensor) else torch.device("cpu")
    cpu_labels = check_labels_1d(labels)
    if cpu_labels.numel() == 0:
        raise ValueError("labels is empty: expected the class ids of the training set")
    if num_classes is None:
        num_classes = int(cpu_labels.max()) + 1
    elif not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int or None, got {num_classes!r}")
    elif int(cpu_labels.max()) >= num_classes:
        raise ValueError(f"labels contain class {int(cpu_labels.max())} but num_classes={num_classes}; "
                         "pass num_classes=None to infer it from the labels")
    if not isinstance(num_labels, (int, np.integer)) or isinstance(num_labels, bool) or num_labels <= 0:
        raise ValueError(f"num_labels must be a positive int, got {num_labels!r}")
    if num_labels % num_classes:
        raise ValueError(f"num_labels must be a multiple of num_classes={num_classes} so that every class "
                         f"gets the same number of labels, got {num_labels}; use e.g. "
                         f"{num_labels - num_labels % num_classes or num_classes} or "
                         f"{num_labels - num_labels % num_classes + num_classes}")
    per_class = int(num_labels) // num_classes
    counts = torch.bincount(cpu_labels, minlength=num_classes)
    if int(counts.min()) < per_class:
        short = int(counts.argmin())
        raise ValueError(f"num_labels={num_labels} asks for {per_class} labels per class, but class {short} "
                         f"has only {int(counts[short])} images (smallest class); use at most "
                         f"{int(counts.min()) * num_classes} labels")

    g = torch.Generator().manual_seed(int(seed))
    # One permutation per class, drawn in class order and independent of num_labels: taking a
    # prefix of it makes the splits for 40, 250 and 4000 labels nested for the same seed.
    chosen = []
    for c in range(num_classes):
        members = (cpu_labels == c).nonzero(as_tuple=True)[0]
        chosen.append(members[torch.randperm(len(members), generator=g)[:per_class]])
    labeled = torch.cat(chosen).sort().values
    is_labeled = torch.zeros(len(cpu_labels), dtype=torch.bool)
    is_labeled[labeled] = True
    unlabeled = (~is_labeled).nonzero(as_tuple=True)[0]
    return labeled.to(device), unlabeled.to(device)


def default_val_size(train_size: int, num_classes: int) -> int:
    """The validation size used when none is given: a tenth of the training images, at most
    :data:`DEFAULT_VAL_SIZE` (5,000 of CIFAR-10's 50,000), rounded down to a multiple of ``num_classes``."""
    size = min(DEFAULT_VAL_SIZE, train_size // 10)
    return size - size % num_classes


def validation_split(labels: torch.Tensor | np.ndarray | Sequence[int], val_size: int, seed: int = 0,
                     num_classes: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Hold out a class-balanced validation split of the training set.

    Args:
        labels: int ``[N]`` class ids of the training set.
        val_size: validation images, a multiple of ``num_classes`` (the same number per class); 0 for none.
        seed: the same ``(labels, val_size, seed)`` always gives the same split.
        num_classes: default ``labels.max() + 1``.

    Returns:
        ``(train_idx, val_idx)``: sorted int64 tensors on ``labels``' device, disjoint, together
        covering ``0..N-1``. Labelled and unlabelled images are then drawn from ``train_idx`` only, so
        that the validation images are never trained on.
    """
    if not isinstance(val_size, (int, np.integer)) or isinstance(val_size, bool) or val_size < 0:
        raise ValueError(f"val_size must be an int >= 0 (validation images; 0 for none), got {val_size!r}")
    device = labels.device if isinstance(labels, torch.Tensor) else torch.device("cpu")
    cpu_labels = check_labels_1d(labels)
    if val_size == 0:
        return (torch.arange(len(cpu_labels), device=device),
                torch.empty(0, dtype=torch.int64, device=device))
    try:
        val_idx, train_idx = few_label_split(cpu_labels, int(val_size), seed=seed, num_classes=num_classes)
    except ValueError as err:
        raise ValueError(f"cannot hold out a class-balanced validation split of {val_size} images "
                         f"(--val-size): {err}".replace("num_labels", "val_size")) from err
    if train_idx.numel() == 0:
        raise ValueError(f"cannot hold out a validation split of {val_size} images: it leaves no training "
                         f"image out of {len(cpu_labels)}; use a smaller --val-size")
    return train_idx.to(device), val_idx.to(device)


def evenly_spaced(total: int, count: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Indices of ``count`` items spread over ``0..total-1``: every ``total // count``-th one.

    No randomness, so two runs (or two methods) measured on these indices see the same items.
    Returns an int64 tensor of ``min(count, total)`` sorted indices on ``device``; all of
    ``0..total-1`` when ``count >= total``.
    """
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise ValueError(f"total must be an int >= 0 (the number of items), got {total!r}")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"count must be a positive int (how many items to keep), got {count!r}")
    every = max(1, total // count)
    return torch.arange(0, total, every, device=device)[:count]
