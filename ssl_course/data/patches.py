r"""Cutting images into the patches of two pretext tasks, batched on the device.

* :func:`relative_position_pairs` (Doersch, Gupta & Efros, ICCV 2015): a centre patch and one of
  its 8 neighbours on a 3x3 grid, with the neighbour's position (0..7) as the label.
* :func:`jigsaw_puzzles` (Noroozi & Favaro, ECCV 2016): 3x3 tiles shuffled by a permutation from a
  fixed set, with the permutation's index as the label.

Both leave a **gap** between patches and **jitter** their positions, the papers' defence against
the easiest shortcut: matching edges and lines that continue across a boundary, which says
where a patch goes without saying anything about the object. At 32x32 pixels the papers' numbers
(96 px patches, 48 px gaps, 7 px jitter for Doersch; 64 px tiles in 75 px cells for Noroozi) are
scaled down; ``docs/RECIPES.md`` lists both.

Images may be uint8 or float ``[B, C, H, W]``; patches keep their dtype. Random positions are
drawn from ``generator`` on its own device and moved, like :mod:`ssl_course.data.augment`, and
nothing is read back to the host.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["relative_position_pairs", "jigsaw_puzzles", "crop_patches", "NEIGHBOUR_OFFSETS"]

#: (row, column) of the 8 neighbours on the 3x3 grid, in label order (row by row, centre skipped).
NEIGHBOUR_OFFSETS = ((0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2))


def _check_images(images: object) -> Tensor:
    if not isinstance(images, Tensor) or images.dim() != 4:
        got = f"shape {tuple(images.shape)}" if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a batch [B, C, H, W]; got {got}. For one image use images[None].")
    if images.shape[0] == 0:
        raise ValueError("images is an empty batch (B = 0); there is nothing to cut.")
    return images


def _randint(high: int | Tensor, shape: tuple[int, ...], generator: torch.Generator | None,
             device: torch.device) -> Tensor:
    """Integers uniform in ``[0, high)`` (``high`` may be a tensor broadcastable to ``shape``), int64 on ``device``."""
    draw_device = generator.device if generator is not None else device
    uniform = torch.rand(shape, generator=generator, device=draw_device).to(device)
    return (uniform * high).long()


def crop_patches(images: Tensor, top: Tensor, left: Tensor, size: int) -> Tensor:
    """Square patches at given corners: ``top``, ``left`` int64 ``[B, K]`` → ``[B, K, C, size, size]``.

    Patch ``k`` of image ``b`` covers rows ``top[b,k] : top[b,k]+size`` and the matching columns;
    corners must keep the patch inside the image (not checked: the callers build them so).
    """
    batch = images.shape[0]
    steps = torch.arange(size, device=images.device)
    rows = (top[:, :, None] + steps)[:, :, :, None]                     # [B, K, size, 1]
    cols = (left[:, :, None] + steps)[:, :, None, :]                    # [B, K, 1, size]
    index = torch.arange(batch, device=images.device)[:, None, None, None]
    patches = images.permute(0, 2, 3, 1)[index, rows, cols]            # [B, K, size, size, C]
    return patches.permute(0, 1, 4, 2, 3)                                # [B, K, C, size, size]


def relative_position_pairs(images: Tensor, patch_size: int = 8, gap: int = 3, jitter: int = 1,
                            generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """A centre patch and one random neighbour per image, and the neighbour's position.

    The 3x3 grid of ``patch_size`` patches separated by ``gap`` pixels sits in the middle of the
    image; every patch then moves by its own random shift in ``[-jitter, jitter]`` along each axis.
    With the defaults on 32x32 images the grid spans 3·8 + 2·3 = 30 pixels and the jitter uses the
    last two.

    Returns ``(centre [B,C,p,p], neighbour [B,C,p,p], labels int64 [B])`` with labels in 0..7 indexing
    :data:`NEIGHBOUR_OFFSETS`.
    """
    _check_images(images)
    batch, _, height, width = images.shape
    span = 3 * patch_size + 2 * gap
    if patch_size < 1 or gap < 0 or jitter < 0 or span + 2 * jitter > min(height, width):
        raise ValueError(
            f"the 3x3 grid (3·patch_size + 2·gap = {span} pixels) plus 2·jitter ({2 * jitter}) must fit "
            f"in the {height}x{width} image; got patch_size={patch_size}, gap={gap}, jitter={jitter}. "
            f"For 32x32 images use patch_size=8, gap=3, jitter=1.")
    device = images.device
    # 1. which neighbour: one of 8, uniformly; its grid cell (row, col)
    labels = _randint(8, (batch,), generator, device)
    offsets = torch.tensor(NEIGHBOUR_OFFSETS, device=device)            # [8, 2]
    cells = torch.stack([torch.ones_like(offsets[0]).expand(batch, 2), offsets[labels]], dim=1)  # [B, 2, 2]
    # 2. the cells' top-left corners on the centred grid, then each patch's own jitter
    origin = torch.tensor([(height - span) // 2, (width - span) // 2], device=device)
    corners = origin + cells * (patch_size + gap)                        # [B, 2 patches, 2 coords]
    corners = corners + _randint(2 * jitter + 1, (batch, 2, 2), generator, device) - jitter
    # 3. cut
    patches = crop_patches(images, corners[..., 0], corners[..., 1], patch_size)   # [B, 2, C, p, p]
    return patches[:, 0], patches[:, 1], labels


def jigsaw_puzzles(images: Tensor, permutations: Tensor, tile_size: int = 8, cell_size: int = 10,
                   generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Cut each image into a 3x3 grid of tiles and shuffle them by a random permutation of the set.

    A square region of ``3 · cell_size`` pixels is placed at a random position in the image and
    split into 3x3 cells; from each cell a ``tile_size`` tile is cut at a random position, so
    neighbouring tiles are ``0 .. 2·(cell_size - tile_size)`` pixels apart (``tile_size ==
    cell_size``: tiles touch, no gap). Puzzle ``b`` uses permutation ``labels[b]`` of
    ``permutations`` (``[P, 9]``, e.g. :func:`~ssl_course.data.jigsaw_permutations`): its tile at
    position ``i`` is the original tile ``permutations[labels[b], i]``.

    Returns ``(tiles [B, 9, C, tile_size, tile_size], labels int64 [B])``.
    """
    _check_images(images)
    if not isinstance(permutations, Tensor) or permutations.dim() != 2 or permutations.shape[1] != 9:
        raise ValueError("permutations must be an int64 tensor [P, 9] (one permutation of the 9 tiles per "
                         "row); build it with ssl_course.data.jigsaw_permutations().")
    batch, _, height, width = images.shape
    if not 1 <= tile_size <= cell_size or 3 * cell_size > min(height, width):
        raise ValueError(f"need 1 <= tile_size <= cell_size and 3·cell_size <= the image side "
                         f"({min(height, width)}); got tile_size={tile_size}, cell_size={cell_size}. "
                         f"For 32x32 images use tile_size=8, cell_size=10.")
    device = images.device
    # 1. the puzzle region's corner, then every tile's corner inside its own cell
    region = _randint(torch.tensor([height - 3 * cell_size + 1, width - 3 * cell_size + 1], device=device),
                      (batch, 1, 2), generator, device)
    grid = torch.stack(torch.meshgrid(torch.arange(3, device=device), torch.arange(3, device=device),
                                      indexing="ij"), dim=-1).reshape(9, 2)       # [9, 2] row by row
    corners = region + grid * cell_size + _randint(cell_size - tile_size + 1, (batch, 9, 2), generator, device)
    tiles = crop_patches(images, corners[..., 0], corners[..., 1], tile_size)     # [B, 9, C, t, t]
    # 2. a permutation per image, applied to the tile order
    labels = _randint(len(permutations), (batch,), generator, device)
    order = permutations.to(device)[labels]                                         # [B, 9]
    shuffled = torch.gather(tiles, 1, order[:, :, None, None, None].expand_as(tiles))
    return shuffled, labels
