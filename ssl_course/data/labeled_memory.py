"""A small per-class store of the most recent labelled images, and class-balanced draws from it.

PAWS needs a class-balanced support batch every step, but the engine hands a method random
labelled batches and never the whole labelled set. :class:`LabeledMemory` keeps up to
``per_class`` of the most recent labelled images of every class, filled from those batches, and
draws the support batch from them. Its contents are registered buffers, so checkpoints hold
them and a resumed run draws the same supports.

Both operations avoid reading values back to the host once every class has been seen, so a GPU
training step does not wait for them (see ``tests/test_host_sync.py``).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ssl_course.data.batches import class_balanced_batch

__all__ = ["LabeledMemory"]


class LabeledMemory(nn.Module):
    """Per-class ring buffers of uint8 images: slots ``[c * per_class, (c + 1) * per_class)`` hold class ``c``.

    Buffers: ``images`` (uint8 ``[C * per_class, 3, H, H]``, 4-D so that the engine's
    channels_last conversion applies to it), ``count`` (``[C]``, filled slots per class) and
    ``next`` (``[C]``, where the next image of each class goes).

    Args:
        num_classes: number of classes ``C``.
        per_class: capacity per class.
        image_size: side ``H`` of the (square, RGB) images.
    """

    def __init__(self, num_classes: int, per_class: int, image_size: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.per_class = per_class
        self.register_buffer("images", torch.zeros(num_classes * per_class, 3, image_size, image_size,
                                                   dtype=torch.uint8))
        self.register_buffer("count", torch.zeros(num_classes, dtype=torch.long))
        self.register_buffer("next", torch.zeros(num_classes, dtype=torch.long))
        # Host copy of "every class is in memory" (see every_class_seen); a checkpoint resets it.
        self._all_seen_on_host = False
        self.register_load_state_dict_post_hook(lambda module, keys: setattr(module, "_all_seen_on_host", False))

    @torch.no_grad()
    def remember(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Write labelled ``uint8`` images into the per-class ring buffers (the newest win)."""
        if images.dtype != torch.uint8 or tuple(images.shape[1:]) != tuple(self.images.shape[1:]):
            raise ValueError(f"labelled images must be uint8 [B,{','.join(map(str, self.images.shape[1:]))}] "
                             f"(set image_size), got {images.dtype} {tuple(images.shape)}")
        capacity = self.per_class
        labels = labels.to(self.count.device).long()
        one_hot = F.one_hot(labels, self.num_classes)                                 # [B, C]
        in_batch = one_hot.sum(0)                                                     # [C]
        rank = (one_hot.cumsum(0) - one_hot).gather(1, labels[:, None]).squeeze(1)   # rank within its class
        overflow = (in_batch[labels] - capacity).clamp_min(0)                         # >0: more than fit
        slot = (self.next[labels] + rank - overflow) % capacity
        # With more than `capacity` images of a class only the last `capacity` survive. Rather than
        # dropping the others with a boolean selection (which reads a count back to the host: a
        # GPU synchronisation), each row writes the image of the row that finally owns its slot,
        # so rows that share a slot write the same image.
        count = labels.shape[0]
        by_class = torch.argsort(labels * count + torch.arange(count, device=labels.device))
        class_start = in_batch.cumsum(0) - in_batch
        owner = by_class[class_start[labels] + overflow + (rank - overflow) % capacity]
        self.images[labels * capacity + slot] = images[owner].to(self.images.device)
        written = in_batch.clamp_max(capacity)
        self.next.copy_((self.next + written) % capacity)
        self.count.copy_((self.count + in_batch).clamp_max(capacity))

    @torch.no_grad()
    def draw(self, per_class: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A class-balanced batch: ``uint8 [S,3,H,W]`` images and their classes ``[S]``.

        ``per_class`` images of every class in memory, grouped by class (class 0 first), drawn by
        :func:`class_balanced_batch` (without replacement while a class has enough) in the first
        steps, then, once every class is in memory, by the same rule computed without host reads
        (:meth:`_draw_all_classes`). A class not yet in memory is left out.
        """
        count = self.count
        if self.every_class_seen():
            return self._draw_all_classes(per_class, generator)
        present = count > 0
        if not bool(present.any()):
            raise RuntimeError("the labelled memory is empty: call remember_labeled() before draw_support()")
        capacity = self.per_class
        device = count.device
        slot_class = torch.arange(self.num_classes, device=device).repeat_interleave(capacity)   # [C*cap]
        filled = (torch.arange(capacity, device=device)[None, :] < count[:, None]).flatten()
        filled_slots = filled.nonzero().squeeze(1)
        if bool(present.all()):
            flat = class_balanced_batch(slot_class, filled_slots, per_class, generator, num_classes=self.num_classes)
            classes = torch.arange(self.num_classes, device=device).repeat_interleave(per_class)
        else:  # first steps only: leave out the classes that have not been seen yet
            kept = present.nonzero().squeeze(1)
            renumbered = present.long().cumsum(0) - 1                                # class -> rank among kept
            flat = class_balanced_batch(renumbered[slot_class], filled_slots, per_class, generator,
                                        num_classes=kept.numel())
            classes = kept.repeat_interleave(per_class)
        return self.images[flat], classes

    def every_class_seen(self) -> bool:
        """Whether every class has an image in memory. Read from the device only until it is true
        (classes never leave the memory), then kept on the host: GPU steps need not wait for it."""
        if not self._all_seen_on_host:
            self._all_seen_on_host = bool((self.count > 0).all())
        return self._all_seen_on_host

    @torch.no_grad()
    def _draw_all_classes(self, per_class: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`draw` once every class is in memory, without reading anything back.

        The same rule as :func:`class_balanced_batch` on the filled slots: each class's filled
        slots in a random order, ``per_class`` of them, wrapping around (repeats as even as
        possible) when a class has fewer. Sorting every slot by ``2 * class + noise`` for filled
        slots and ``2 * class + 1.5`` for empty ones puts each class's filled slots first, in
        random order, without selecting them (a selection's size would have to be read back).
        """
        count, capacity, device = self.count, self.per_class, self.count.device
        draw_device = generator.device if generator is not None else device
        noise = torch.rand(self.num_classes * capacity, generator=generator, device=draw_device).to(device)
        slot_class = torch.arange(self.num_classes, device=device).repeat_interleave(capacity)   # [C*cap]
        filled = (torch.arange(capacity, device=device)[None, :] < count[:, None]).flatten()
        key = 2.0 * slot_class.double() + torch.where(filled, noise.double(), torch.full_like(noise, 1.5).double())
        order = torch.argsort(key)
        within = torch.arange(per_class, device=device)
        starts = torch.arange(self.num_classes, device=device) * capacity  # first slot of each class
        positions = starts[:, None] + within[None, :] % count[:, None]
        classes = torch.arange(self.num_classes, device=device).repeat_interleave(per_class)
        return self.images[order[positions.flatten()]], classes
