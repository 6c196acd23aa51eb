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
from ssl_course.data.splits import (
    DEFAULT_VAL_SIZE,
    default_val_size,
    evenly_spaced,
    few_label_split,
    validation_split,
)
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
    "validation_split",
    "default_val_size",
    "DEFAULT_VAL_SIZE",
    "VALIDATION_SEED",
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
#: Seed of the validation split: fixed, so every run seed (and every method) is validated on the
#: same images, as every run is tested on the same test set.
VALIDATION_SEED = 2024


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
    ``[N]``. Three disjoint sets of images:

    * ``train_images`` / ``train_labels``: what training may use. ``labeled_idx`` (sorted) indexes
      the few labelled images; ``unlabeled_idx`` is *every* training image, the labelled ones
      included, as in FixMatch's and MixMatch's official code (so ``"unlabeled"`` and ``"all"``
      data sources draw from the same pool). The labels of the other images are kept for
      evaluation only (kNN banks, pseudo-label accuracy); methods must only read
      ``train_labels[labeled_idx]``.
    * ``val_images`` / ``val_labels``: the class-balanced validation split held out of the training
      set (may be empty). The kNN monitor and the choice of hyper-parameters read it; no method
      trains on it.
    * ``test_images`` / ``test_labels``: read only for the final metrics.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
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

    @property
    def val_size(self) -> int:
        return int(self.val_images.shape[0])

    def __repr__(self) -> str:
        # The default dataclass repr would print every pixel.
        return (f"DataBundle(name={self.name!r}, train={tuple(self.train_images.shape)}, "
                f"val={tuple(self.val_images.shape)}, test={tuple(self.test_images.shape)}, "
                f"labeled={len(self.labeled_idx)}, "
                f"unlabeled={len(self.unlabeled_idx)}, num_classes={self.num_classes}, device={self.device})")


def make_bundle(name: str, num_labels: int, seed: int = 0, device: torch.device | str = "cpu",
                root: str | Path | None = None, train_subset: int | None = None,
                test_subset: int | None = None, download: bool = True,
                val_size: int | None = None) -> DataBundle:
    """Load a dataset, optionally shrink it, hold out a validation split, split off ``num_labels``
    labels, move it to ``device``.

    Args:
        name: one of :data:`DATASETS`.
        num_labels: labelled training images (class-balanced, a multiple of the class count), drawn
            from the images left after the validation split.
        seed: seed of the few-label split (the validation split has its own fixed seed,
            :data:`VALIDATION_SEED`, so it is the same for every run seed).
        device: where the tensors of the bundle live.
        root: CIFAR-10 folder (default ``config.data_root()``).
        train_subset, test_subset: keep a class-balanced deterministic subset of this many
            images (smoke runs); ``None`` keeps everything. The subset does not depend on ``seed``.
        download: allow downloading CIFAR-10 when it is missing.
        val_size: class-balanced validation images held out of the (subset of the) training set;
            ``None``: :func:`default_val_size` (5,000 of CIFAR-10's 50,000, a tenth of smaller sets);
            0: no validation split.
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
    if val_size is None:
        val_size = default_val_size(len(train_labels), num_classes)
    keep, held_out = validation_split(train_labels, val_size, seed=VALIDATION_SEED, num_classes=num_classes)
    val_images, val_labels = train_images[held_out], train_labels[held_out]
    train_images, train_labels = train_images[keep], train_labels[keep]
    labeled_idx, _ = few_label_split(train_labels, num_labels, seed=seed, num_classes=num_classes)
    unlabeled_idx = torch.arange(len(train_labels))   # every training image, the labelled ones included
    bundle = DataBundle(train_images=train_images, train_labels=train_labels, val_images=val_images,
                        val_labels=val_labels, test_images=test_images,
                        test_labels=test_labels, labeled_idx=labeled_idx, unlabeled_idx=unlabeled_idx,
                        num_classes=num_classes, class_names=dataset_class_names(name, root), name=name)
    return bundle.to(device)
