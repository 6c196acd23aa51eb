"""Datasets, few-label splits, batched augmentations and batch sampling.

Typical notebook use::

    from ssl_course import config
    from ssl_course.data import make_bundle, cifar10_available
    name = "cifar10" if cifar10_available() else "synthetic"
    data = make_bundle(name, num_labels=250, device=config.pick_device(),
                       train_subset=2000 if config.smoke() else None,
                       test_subset=500 if config.smoke() else None)
    data.train_images   # uint8 [N, 3, 32, 32] on the device
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch

from ssl_course.data.augment import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    contrastive_augment,
    denormalize,
    multicrop_augment,
    normalize,
    strong_augment,
    weak_augment,
)
from ssl_course.data.batches import class_balanced_batch, index_stream
from ssl_course.data.beta import beta_sample
from ssl_course.data.cifar10 import CIFAR10_CLASSES, cifar10_available, class_names, load_cifar10
from ssl_course.data.color import ab_bin_centers, lab_to_rgb, rgb_to_lab
from ssl_course.data.jigsaw import hamming_distances, jigsaw_permutations
from ssl_course.data.labeled_memory import LabeledMemory
from ssl_course.data.patches import jigsaw_puzzles, relative_position_pairs
from ssl_course.data.splits import evenly_spaced, few_label_split
from ssl_course.data.synthetic import SYNTHETIC_CLASSES, synthetic_dataset

__all__ = [
    "DATASETS",
    "DataBundle",
    "load_dataset",
    "make_bundle",
    "dataset_class_names",
    "balanced_subset",
    "cifar10_available",
    "load_cifar10",
    "CIFAR10_CLASSES",
    "synthetic_dataset",
    "SYNTHETIC_CLASSES",
    "few_label_split",
    "evenly_spaced",
    "normalize",
    "denormalize",
    "weak_augment",
    "contrastive_augment",
    "strong_augment",
    "multicrop_augment",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "index_stream",
    "class_balanced_batch",
    "beta_sample",
    "LabeledMemory",
    "rgb_to_lab",
    "lab_to_rgb",
    "ab_bin_centers",
    "jigsaw_permutations",
    "hamming_distances",
    "jigsaw_puzzles",
    "relative_position_pairs",
]

#: Names accepted by :func:`load_dataset` and :func:`make_bundle`.
DATASETS: tuple[str, ...] = ("cifar10", "synthetic")

# Synthetic set sizes when num_per_class is not given: a tenth of CIFAR-10, which a small CNN
# fits on a CPU in seconds and which still leaves an unlabelled set larger than the labels.
_SYNTHETIC_PER_CLASS = {True: 500, False: 100}
# Synthetic splits already generated in this process, keyed by (num_per_class, train, seed):
# like the CIFAR-10 loader, re-running a notebook cell (or building several bundles) is instant.
_SYNTHETIC_CACHE: dict[tuple[int, bool, int], tuple[torch.Tensor, torch.Tensor]] = {}
# Subsets are drawn with their own fixed seed, so changing the split seed changes which images
# are labelled but not which images the experiment uses.
_SUBSET_SEED = 12345


def _check_name(name: str) -> str:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: expected one of {DATASETS}. Use 'synthetic' when "
                         "CIFAR-10 is not on this machine (see data/README.md).")
    return name


def load_dataset(name: str, train: bool = True, root: str | Path | None = None,
                 num_per_class: int | None = None, seed: int = 0,
                 download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of one split of a dataset in :data:`DATASETS`.

    Args:
        name: ``"cifar10"`` or ``"synthetic"``.
        train: training or test split.
        root: CIFAR-10 folder (default ``config.data_root()``); ignored for ``"synthetic"``.
        num_per_class: synthetic images per class (default 500 train, 100 test); ignored for CIFAR-10.
        seed: synthetic generation seed; ignored for CIFAR-10.
        download: allow :func:`load_cifar10` to download the archive when it is missing.

    Returns: uint8 ``[N, 3, 32, 32]`` and int64 ``[N]`` CPU tensors. Both datasets are cached
    per process, so the tensors are shared between calls: do not modify them in place.
    """
    _check_name(name)
    if name == "cifar10":
        return load_cifar10(root=root, train=train, download=download)
    per_class = _SYNTHETIC_PER_CLASS[bool(train)] if num_per_class is None else num_per_class
    key = (per_class, bool(train), seed)
    if key not in _SYNTHETIC_CACHE:
        _SYNTHETIC_CACHE[key] = synthetic_dataset(num_per_class=per_class, train=train, seed=seed)
    return _SYNTHETIC_CACHE[key]


def dataset_class_names(name: str, root: str | Path | None = None) -> tuple[str, ...]:
    """Class names of a dataset, in label order."""
    _check_name(name)
    return class_names(root) if name == "cifar10" else SYNTHETIC_CLASSES


def balanced_subset(labels: torch.Tensor, size: int, seed: int = _SUBSET_SEED,
                    num_classes: int | None = None) -> torch.Tensor:
    """Sorted indices of a deterministic class-balanced subset of ``size`` images (``size`` % classes == 0)."""
    try:
        return few_label_split(labels, size, seed=seed, num_classes=num_classes)[0]
    except ValueError as err:
        raise ValueError(f"cannot take a class-balanced subset of {size} images: {err}") from err


@dataclass
class DataBundle:
    """Everything a training run needs about its data, kept on one device.

    Images are uint8 ``[N, 3, 32, 32]`` (augmentation converts them per batch); labels int64
    ``[N]``. ``labeled_idx`` / ``unlabeled_idx`` index ``train_images`` (sorted, disjoint).
    The training labels of unlabelled images are kept for evaluation (kNN monitor, pseudo-label
    accuracy); methods must only read ``train_labels[labeled_idx]``.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    labeled_idx: torch.Tensor
    unlabeled_idx: torch.Tensor
    num_classes: int
    class_names: tuple[str, ...]
    name: str

    def to(self, device: torch.device | str) -> DataBundle:
        """A bundle with every tensor on ``device`` (the same object's tensors if already there)."""
        moved = {f.name: getattr(self, f.name).to(device) for f in fields(self)
                 if isinstance(getattr(self, f.name), torch.Tensor)}
        return replace(self, **moved)

    @property
    def device(self) -> torch.device:
        return self.train_images.device

    @property
    def num_labels(self) -> int:
        return len(self.labeled_idx)

    def __repr__(self) -> str:
        # The default dataclass repr would print every pixel.
        return (f"DataBundle(name={self.name!r}, train={tuple(self.train_images.shape)}, "
                f"test={tuple(self.test_images.shape)}, labeled={len(self.labeled_idx)}, "
                f"unlabeled={len(self.unlabeled_idx)}, num_classes={self.num_classes}, device={self.device})")


def make_bundle(name: str, num_labels: int, seed: int = 0, device: torch.device | str = "cpu",
                root: str | Path | None = None, train_subset: int | None = None,
                test_subset: int | None = None, download: bool = True) -> DataBundle:
    """Load a dataset, optionally shrink it, split off ``num_labels`` labels, move it to ``device``.

    Args:
        name: one of :data:`DATASETS`.
        num_labels: labelled training images (class-balanced, a multiple of the class count).
        seed: seed of the few-label split.
        device: where the tensors of the bundle live.
        root: CIFAR-10 folder (default ``config.data_root()``).
        train_subset, test_subset: keep a class-balanced deterministic subset of this many
            images (smoke runs); ``None`` keeps everything. The subset does not depend on ``seed``.
        download: allow downloading CIFAR-10 when it is missing.
    """
    _check_name(name)
    train_images, train_labels = load_dataset(name, train=True, root=root, download=download)
    test_images, test_labels = load_dataset(name, train=False, root=root, download=download)
    num_classes = len(dataset_class_names(name, root))
    if train_subset is not None:
        keep = balanced_subset(train_labels, train_subset, num_classes=num_classes)
        train_images, train_labels = train_images[keep], train_labels[keep]
    if test_subset is not None:
        keep = balanced_subset(test_labels, test_subset, num_classes=num_classes)
        test_images, test_labels = test_images[keep], test_labels[keep]
    labeled_idx, unlabeled_idx = few_label_split(train_labels, num_labels, seed=seed, num_classes=num_classes)
    bundle = DataBundle(train_images=train_images, train_labels=train_labels, test_images=test_images,
                        test_labels=test_labels, labeled_idx=labeled_idx, unlabeled_idx=unlabeled_idx,
                        num_classes=num_classes, class_names=dataset_class_names(name, root), name=name)
    return bundle.to(device)
