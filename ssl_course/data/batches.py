"""Which images go into each training batch, as index tensors.

The images stay in one uint8 tensor on the device; a "batch" is a tensor of indices into it.
All shuffling is derived from ``(seed, epoch)`` alone, on the CPU, so that

* a run resumed from a checkpoint at epoch ``e`` sees exactly the batches it would have seen,
* the batches are the same on every device and machine.

``SemiSupervisedBatches`` pairs a labelled batch with ``mu`` times as many unlabelled images
per step (FixMatch's ``mu = 7``); one epoch is one pass over the unlabelled set.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from ssl_course.data.splits import check_labels_1d

__all__ = ["SemiSupervisedBatches", "shuffled_batches", "class_balanced_batch", "epoch_generator"]

# Independent random streams per purpose, so e.g. the labelled order does not change when the
# unlabelled set changes size.
_STREAM_UNLABELED = 1
_STREAM_LABELED = 2
_STREAM_SINGLE = 3


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A CPU generator seeded from ``(seed, epoch, stream)`` (a fixed mix, not Python's ``hash``)."""
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be >= 0, got seed={seed}, epoch={epoch}")
    mixed = ((int(seed) * 1_000_003 + int(epoch)) * 101 + int(stream)) % (2**63 - 1)
    return torch.Generator().manual_seed(mixed)


def _check_index(name: str, idx: torch.Tensor | Sequence[int] | np.ndarray) -> torch.Tensor:
    idx = check_labels_1d(idx, name=name)
    if idx.numel() == 0:
        raise ValueError(f"{name} is empty: expected at least one image index")
    return idx


def _check_positive_int(name: str, value: object) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def shuffled_batches(indices: torch.Tensor | Sequence[int], batch_size: int, seed: int = 0, epoch: int = 0,
                     drop_last: bool = True, device: torch.device | str | None = None) -> list[torch.Tensor]:
    """One epoch of shuffled index batches over ``indices`` (for methods that use one set).

    Returns a list of int64 tensors of length ``batch_size`` (the last one shorter when
    ``drop_last=False``), on ``device`` (default: ``indices``' device, CPU for lists). The order
    depends only on ``(seed, epoch)``.
    """
    device = torch.device(device) if device is not None else (
        indices.device if isinstance(indices, torch.Tensor) else torch.device("cpu"))
    idx = _check_index("indices", indices)
    batch_size = _check_positive_int("batch_size", batch_size)
    if drop_last and len(idx) < batch_size:
        raise ValueError(f"batch_size={batch_size} is larger than the {len(idx)} indices, so drop_last=True "
                         "leaves no batch; use a smaller batch_size or drop_last=False")
    order = idx[torch.randperm(len(idx), generator=epoch_generator(seed, epoch, _STREAM_SINGLE))]
    stop = len(order) - len(order) % batch_size if drop_last else len(order)
    return [b.to(device) for b in order[:stop].split(batch_size)]


class SemiSupervisedBatches:
    """Paired labelled / unlabelled index batches at a fixed ratio.

    Each step yields ``(labeled_batch_idx [labeled_batch_size], unlabeled_batch_idx
    [labeled_batch_size * unlabeled_ratio])``. One epoch is one pass over the unlabelled set in
    a shuffled order (the incomplete last batch is dropped). The labelled set is usually much
    smaller, so within an epoch it is cycled through successive fresh permutations; with 40
    labels and a batch of 64, a batch repeats some labelled images (as in FixMatch, which
    samples the labelled set with replacement).

    Everything depends only on ``(seed, epoch)``: ``epoch_batches(e)`` is the same list every
    time, so a resumed run can restart at any epoch and step.

    Args:
        labeled_idx, unlabeled_idx: 1-D int index tensors (from :func:`few_label_split`).
        labeled_batch_size: labelled images per step (FixMatch: 64).
        unlabeled_ratio: ``mu``, unlabelled images per labelled image (FixMatch: 7).
        seed: base seed of the shuffles.
        device: where the yielded index tensors live (default: ``labeled_idx``' device).
    """

    def __init__(self, labeled_idx: torch.Tensor | Sequence[int], unlabeled_idx: torch.Tensor | Sequence[int],
                 labeled_batch_size: int, unlabeled_ratio: int = 7, seed: int = 0,
                 device: torch.device | str | None = None) -> None:
        if device is None:
            device = labeled_idx.device if isinstance(labeled_idx, torch.Tensor) else "cpu"
        self.device = torch.device(device)
        self.labeled_idx = _check_index("labeled_idx", labeled_idx)
        self.unlabeled_idx = _check_index("unlabeled_idx", unlabeled_idx)
        self.labeled_batch_size = _check_positive_int("labeled_batch_size", labeled_batch_size)
        self.unlabeled_ratio = _check_positive_int("unlabeled_ratio", unlabeled_ratio)
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        self.seed = seed
        self.unlabeled_batch_size = self.labeled_batch_size * self.unlabeled_ratio
        self.steps_per_epoch = len(self.unlabeled_idx) // self.unlabeled_batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"the unlabelled set ({len(self.unlabeled_idx)} images) is smaller than one unlabelled "
                             f"batch (labeled_batch_size * unlabeled_ratio = {self.unlabeled_batch_size}); "
                             "lower the batch size or the ratio, or use more unlabelled data")

    def __repr__(self) -> str:
        return (f"SemiSupervisedBatches(labeled={len(self.labeled_idx)}, unlabeled={len(self.unlabeled_idx)}, "
                f"batch={self.labeled_batch_size}+{self.unlabeled_batch_size}, "
                f"steps_per_epoch={self.steps_per_epoch}, seed={self.seed})")

    def __len__(self) -> int:
        """Steps per epoch (iteration itself is endless, see :meth:`__iter__`)."""
        return self.steps_per_epoch

    def epoch_batches(self, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The ``steps_per_epoch`` pairs ``(labeled_batch_idx, unlabeled_batch_idx)`` of ``epoch``."""
        steps = self.steps_per_epoch
        unl_gen = epoch_generator(self.seed, epoch, _STREAM_UNLABELED)
        unl = self.unlabeled_idx[torch.randperm(len(self.unlabeled_idx), generator=unl_gen)]
        unl = unl[: steps * self.unlabeled_batch_size]

        lab_gen = epoch_generator(self.seed, epoch, _STREAM_LABELED)
        needed = steps * self.labeled_batch_size
        rounds = -(-needed // len(self.labeled_idx))                    # ceil division
        lab = torch.cat([self.labeled_idx[torch.randperm(len(self.labeled_idx), generator=lab_gen)]
                         for _ in range(rounds)])[:needed]
        return list(zip(lab.to(self.device).split(self.labeled_batch_size),
                        unl.to(self.device).split(self.unlabeled_batch_size)))

    def iter_from(self, epoch: int = 0, step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless batches starting at ``(epoch, step)``: what a resumed run continues with."""
        if not 0 <= step < self.steps_per_epoch:
            raise ValueError(f"step must be in [0, {self.steps_per_epoch}), got {step}")
        while True:
            yield from self.epoch_batches(epoch)[step:]
            epoch, step = epoch + 1, 0

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless batches from epoch 0; stop by step count (``itertools.islice``)."""
        return self.iter_from(0, 0)


def class_balanced_batch(labels: torch.Tensor, labeled_idx: torch.Tensor, per_class: int,
                         generator: torch.Generator | None = None, num_classes: int | None = None) -> torch.Tensor:
    """Indices of ``per_class`` labelled images of every class, grouped by class (PAWS support set).

    Args:
        labels: int ``[N]`` labels of the whole training set.
        labeled_idx: int ``[L]`` indices of the labelled images (only these are sampled).
        per_class: images per class. Drawn without replacement when a class has enough labelled
            images; otherwise its images are repeated as evenly as possible (each one appears
            ``per_class // count`` or one more times).
        generator: source of randomness (``None``: global RNG); it may live on any device.
        num_classes: default ``labels[labeled_idx].max() + 1``.

    Returns:
        int64 ``[num_classes * per_class]`` on ``labeled_idx``' device, ordered so that
        ``labels[idx]`` equals ``arange(num_classes).repeat_interleave(per_class)``.
    """
    if not isinstance(labels, torch.Tensor) or not isinstance(labeled_idx, torch.Tensor):
        raise ValueError("labels and labeled_idx must be torch tensors (labels [N], labeled_idx [L])")
    if labels.dim() != 1 or labeled_idx.dim() != 1 or labeled_idx.numel() == 0:
        raise ValueError(f"expected 1-D labels [N] and non-empty 1-D labeled_idx [L], got shapes "
                         f"{tuple(labels.shape)} and {tuple(labeled_idx.shape)}")
    per_class = _check_positive_int("per_class", per_class)
    device = labeled_idx.device
    lab_labels = labels.to(device)[labeled_idx].long()
    if num_classes is None:
        num_classes = int(lab_labels.max()) + 1
    counts = torch.bincount(lab_labels, minlength=num_classes)
    if len(counts) > num_classes:
        raise ValueError(f"labels contain class {len(counts) - 1} but num_classes={num_classes}")
    if int(counts.min()) == 0:
        missing = (counts == 0).nonzero(as_tuple=True)[0].tolist()
        raise ValueError(f"classes {missing} have no labelled image, so a class-balanced batch is impossible; "
                         "use a class-balanced split (few_label_split) or pass num_classes")
    # Sort labelled images by class, in a random order within each class (class id + a random
    # fraction as sort key), then take per_class consecutive entries per class, wrapping around.
    draw_device = generator.device if generator is not None else device
    noise = torch.rand(len(lab_labels), generator=generator, device=draw_device).to(device)
    order = torch.argsort(lab_labels.double() + noise.double())
    starts = torch.cumsum(counts, 0) - counts                                    # first slot of each class
    within = torch.arange(per_class, device=device)
    pos = starts[:, None] + within[None, :] % counts[:, None]                    # [C, per_class]
    return labeled_idx[order[pos.flatten()]]
