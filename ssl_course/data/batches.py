"""Which images go into each training batch, as index tensors: the engine's one source of batches.

The images stay in one uint8 tensor on the device; a "batch" is a tensor of indices into it.
:func:`index_stream` gives each data source of a method (labelled, unlabelled, all images) an
endless stream of index batches whose shuffling is derived from ``(seed, source, pass)`` alone,
on the CPU, so that

* a run resumed at step ``s`` sees exactly the batches it would have seen (the stream starts at
  batch ``s``),
* the batches are the same on every device and machine.

A semi-supervised step pairs a labelled batch with ``unlabeled_ratio`` times as many unlabelled
images (FixMatch's ``mu = 7``): two streams, one per source, each cycling over its own pool.
:func:`class_balanced_batch` draws PAWS's class-balanced support sets.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

__all__ = ["index_stream", "permutation", "class_balanced_batch"]


def _check_positive_int(name: str, value: object) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def permutation(size: int, seed: int, stream: int, epoch: int) -> torch.Tensor:
    """A shuffled ``arange(size)`` that depends only on ``(seed, stream, epoch)`` (a fixed mix, not ``hash``)."""
    generator = torch.Generator().manual_seed(((seed * 1_000_003 + stream) * 1_000_003 + epoch) % 2**63)
    return torch.randperm(size, generator=generator)


def index_stream(pool: torch.Tensor, batch_size: int, seed: int, stream: int, start: int = 0) -> Iterator[torch.Tensor]:
    """Batches ``start, start+1, …`` of ``pool`` (a 1-D CPU index tensor), cycling forever.

    Each pass over the pool is a fresh permutation (``permutation(len(pool), seed, stream, pass)``)
    cut into ``len(pool) // batch_size`` batches; the incomplete rest of a pass is skipped. When
    the pool holds fewer images than a batch (e.g. 40 labels and a batch of 64), every batch is
    drawn with repetition, seeded from ``(seed, stream, batch number)`` (FixMatch also samples its
    small labelled set with replacement). ``stream`` separates the sources' shuffles, so e.g. the
    labelled order does not change when the unlabelled pool changes size.
    """
    if pool.ndim != 1 or pool.numel() == 0:
        raise ValueError(f"cannot draw batches from an empty or non 1-D index pool (shape {tuple(pool.shape)})")
    batch_size = _check_positive_int("batch_size", batch_size)
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    batches_per_pass = max(1, pool.numel() // batch_size)
    number, order, order_pass = start, None, -1
    while True:
        pass_index, offset = divmod(number, batches_per_pass)
        if pool.numel() >= batch_size:
            if pass_index != order_pass:  # one shuffle per pass, not per batch
                order, order_pass = permutation(pool.numel(), seed, stream, pass_index), pass_index
            yield pool[order[offset * batch_size:(offset + 1) * batch_size]]
        else:
            generator = torch.Generator().manual_seed(((seed * 7919 + stream) * 1_000_003 + number) % 2**63)
            yield pool[torch.randint(pool.numel(), (batch_size,), generator=generator)]
        number += 1


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
