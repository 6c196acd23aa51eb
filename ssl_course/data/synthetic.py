"""A synthetic 10-class image dataset that a small CNN learns in seconds on a CPU.

Why it exists: every notebook and test must run without CIFAR-10 (offline machines, CI smoke
runs). The classes are defined by *shape or texture*, never by colour, and every image gets
nuisance variation (position, scale, a small rotation, foreground and background colours,
pixel noise). That keeps the dataset a fair miniature of the real problem: augmentations that
change colour or position should not change the class, and a network has to learn shape.

Classes (label: name):

====  ====================  ==========================================
0     circle                filled disc
1     square                filled square
2     triangle              filled triangle, apex up
3     cross                 a plus sign
4     horizontal_stripes    full-image stripes
5     vertical_stripes      full-image stripes
6     diagonal_stripes      full-image stripes at 45 degrees
7     checkerboard          full-image checkerboard
8     ring                  an annulus (hollow circle)
9     dots                  a full-image lattice of dots
====  ====================  ==========================================

Everything is computed in torch on whole batches (one pass per class, vectorised over its
images); 5,000 32x32 images take a few tens of milliseconds.
"""
from __future__ import annotations

import math

import torch

__all__ = ["SYNTHETIC_CLASSES", "synthetic_dataset"]

SYNTHETIC_CLASSES: tuple[str, ...] = (
    "circle", "square", "triangle", "cross", "horizontal_stripes",
    "vertical_stripes", "diagonal_stripes", "checkerboard", "ring", "dots",
)

# Offsets that keep the train and test random streams apart for every seed: (seed, train)
# maps one-to-one onto a generator seed, so test images are never a replay of training ones.
_STREAM_TRAIN = 0
_STREAM_TEST = 1


def _generator_seed(seed: int, train: bool) -> int:
    return 2 * seed + (_STREAM_TRAIN if train else _STREAM_TEST) + 0x5EED_0000


def _class_mask(label: int, u: torch.Tensor, v: torch.Tensor, period: torch.Tensor,
                phase: torch.Tensor) -> torch.Tensor:
    """Foreground mask ``[n, H, W]`` (bool) for one class.

    ``u, v`` are per-image local coordinates ``[n, H, W]`` (already shifted, rotated and scaled,
    so the shape's nominal size is fixed here); ``period``/``phase`` are ``[n, 1, 1]`` texture
    parameters in the same units.
    """
    two_pi = 2 * math.pi
    r = torch.sqrt(u * u + v * v)
    if label == 0:    # circle
        return r < 0.55
    if label == 1:    # square
        return torch.maximum(u.abs(), v.abs()) < 0.47
    if label == 2:    # triangle: apex at v=-0.6, base at v=0.45 with half-width 0.6
        return (v < 0.45) & (u.abs() < (v + 0.6) * (0.6 / 1.05))
    if label == 3:    # cross
        bar = 0.17
        return ((u.abs() < bar) & (v.abs() < 0.6)) | ((v.abs() < bar) & (u.abs() < 0.6))
    if label == 4:    # horizontal stripes: intensity varies along v (down the image)
        return torch.sin(two_pi * v / period + phase) > 0
    if label == 5:    # vertical stripes
        return torch.sin(two_pi * u / period + phase) > 0
    if label == 6:    # diagonal stripes
        return torch.sin(two_pi * (u + v) / (math.sqrt(2) * period) + phase) > 0
    if label == 7:    # checkerboard: product of two square waves
        return torch.sin(two_pi * u / period + phase) * torch.sin(two_pi * v / period + phase) > 0
    if label == 8:    # ring
        return (r > 0.33) & (r < 0.58)
    if label == 9:    # dots: peaks of two crossed cosines
        return (torch.cos(two_pi * u / period + phase) + torch.cos(two_pi * v / period + phase)) > 1.2
    raise ValueError(f"label must be in 0..9, got {label}")


def synthetic_dataset(num_per_class: int = 200, train: bool = True, seed: int = 0,
                      image_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate ``10 * num_per_class`` images of the 10 shape/texture classes.

    Args:
        num_per_class: images per class (classes are exactly balanced).
        train: ``True`` and ``False`` draw from different random streams, so a test set never
            repeats training images even with the same ``seed``.
        seed: the same ``(seed, train, num_per_class, image_size)`` always gives the same images.
        image_size: height = width of the images (geometry is defined relative to the size).

    Returns:
        ``images``: uint8 ``[10 * num_per_class, 3, image_size, image_size]`` and ``labels``:
        int64 ``[10 * num_per_class]`` in a shuffled order (not sorted by class). CPU tensors.
    """
    for name, value, low in (("num_per_class", num_per_class, 1), ("image_size", image_size, 8),
                             ("seed", seed, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    num_classes = len(SYNTHETIC_CLASSES)
    n = num_classes * num_per_class
    g = torch.Generator().manual_seed(_generator_seed(seed, train))

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=g)

    labels = torch.arange(num_classes).repeat_interleave(num_per_class)
    labels = labels[torch.randperm(n, generator=g)]

    # Per-image nuisance parameters, all drawn up front so the stream does not depend on the
    # order in which classes are rendered below. Units: the image spans [-1, 1].
    centre = (rand(n, 2) - 0.5) * 0.5                       # shift of up to +-0.25 (+-4 px at 32)
    scale = 0.75 + 0.45 * rand(n)                           # 0.75 .. 1.2
    angle = (rand(n) - 0.5) * math.radians(24)              # +-12 degrees: stripes keep their class
    period = 0.30 + 0.20 * rand(n)                          # texture period: 4.8 .. 8 px at 32
    phase = rand(n) * 2 * math.pi
    # Colours: a dark background and a bright foreground with independent hues, so luminance
    # contrast always exists but colour carries no class information. Randomly swap the two
    # so "bright object on dark ground" is not a constant either.
    background = 0.05 + 0.40 * rand(n, 3)
    foreground = 0.55 + 0.40 * rand(n, 3)
    swap = rand(n, 1) < 0.5
    background, foreground = torch.where(swap, foreground, background), torch.where(swap, background, foreground)
    noise_std = 0.02 + 0.06 * rand(n, 1, 1, 1)
    noise = torch.randn((n, 3, image_size, image_size), generator=g) * noise_std

    # Pixel-centre coordinates in [-1, 1].
    coords = (torch.arange(image_size, dtype=torch.float32) + 0.5) / image_size * 2 - 1
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")            # [H, W]

    mask = torch.zeros(n, image_size, image_size, dtype=torch.bool)
    for label in range(num_classes):
        idx = (labels == label).nonzero(as_tuple=True)[0]
        dx = xx - centre[idx, 0, None, None]
        dy = yy - centre[idx, 1, None, None]
        cos, sin = torch.cos(angle[idx])[:, None, None], torch.sin(angle[idx])[:, None, None]
        s = scale[idx][:, None, None]
        u = (cos * dx + sin * dy) / s
        v = (-sin * dx + cos * dy) / s
        mask[idx] = _class_mask(label, u, v, period[idx][:, None, None], phase[idx][:, None, None])

    m = mask[:, None].float()                                           # [n, 1, H, W]
    images = background[:, :, None, None] * (1 - m) + foreground[:, :, None, None] * m + noise
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8).contiguous()
    return images, labels.to(torch.int64).contiguous()
