"""Batched image augmentations that run on the device where the images already are.

Every function takes a batch ``x`` of images, uint8 ``[B, 3, H, W]`` (or float in ``[0, 1]``),
on any device, and returns *normalised* float32 images on the same device (CIFAR-10 mean/std,
see :func:`normalize`). Each image gets its own random parameters (crop position, flip, jitter
factors, RandAugment ops...), drawn from ``generator``: a ``torch.Generator`` (``None``: the
global RNG of ``x``'s device). A generator on another device than ``x`` is allowed; the numbers
are drawn there and moved, so a CPU generator gives the same augmentations on CPU and GPU up
to floating-point rounding (``tests/test_augment.py`` checks this when CUDA is present).

Pipelines (what the methods of the course use):

* :func:`weak_augment`: reflect-pad 4 + random 32x32 crop + horizontal flip (FixMatch's weak
  view, the standard CIFAR training augmentation). Pure integer index arithmetic: pixels are
  copied, never interpolated.
* :func:`contrastive_augment`: SimCLR's CIFAR recipe. Random resized crop (scale 0.2-1, aspect
  3/4-4/3, bilinear), flip p=0.5, colour jitter (brightness, contrast, saturation 0.8*s, hue
  0.2*s with strength s=0.5, i.e. 0.4/0.4/0.4/0.1) applied with p=0.8 **in a random order per
  image** (as torchvision's ``ColorJitter`` does), grayscale p=0.2, no blur (SimCLR drops blur
  on CIFAR).
* :func:`multicrop_augment`: the same recipe with small crops (default 18x18 from scale
  0.3-0.75, PAWS's CIFAR-10 multi-crop setting).
* :func:`fixmatch_augment`: FixMatch's strong view as the reference PyTorch code
  (kekmodel/FixMatch-pytorch ``RandAugmentMC(n=2, m=10)``): flip + pad-crop, two ops per image
  from its 14-op pool, each applied with probability 0.5 at an integer magnitude 1..9 with that
  pool's ranges, then its ``CutoutAbs(16)``. Used by FixMatch.
* :func:`strong_augment`: a RandAugment with a continuous random magnitude and wider ranges
  (enhance factors 0.1..1.9, the range of the same repository's *other* pool, ``my_augment_pool``
  for ``RandAugmentPC``), every drawn op always applied, then Cutout: a 16x16 square (clipped at
  the border) at a random position filled with gray 0.5, which is ~0 after normalisation. Used
  by FeatMatch and the exercises.

How the per-image randomness is batched: the random resized crop is axis-aligned, so it is
separable: two small matrix products per image (``rows @ image @ columns^T``) give exactly the
bilinear ``grid_sample`` result. RandAugment's rotations and shears use ``affine_grid`` +
``grid_sample`` with one matrix per image. Colour jitter runs its 4 slots in turn; at each slot
brightness, contrast and saturation are one blend ``f*x + (1-f)*target`` over the whole batch
(``f = 1`` for images doing something else there), and hue runs on the images that picked it.
RandAugment runs each op on the images that picked it (:func:`_on_selected`): on a CPU by
gathering them, so the work is that of ``num_ops`` full-batch ops, not of all ops; on a GPU by
running every op on the whole batch and keeping each image's own result, which avoids reading
anything back to the host in the training loop.

Why it is fast on a CPU: boolean selections (``torch.where``, ``masked_fill`` with a random mask)
and freshly allocated large tensors cost more than the arithmetic, so the colour ops use 0/1
float masks and in-place arithmetic, and ``Tensor.max(dim=1)`` (which also computes indices) is
replaced by elementwise ``maximum``.

Why our own implementation rather than a library: torchvision's ``transforms.v2`` draws *one*
set of random parameters per call, so per-image randomness on a batch means a Python loop over
images; the usual alternative, the PIL ``DataLoader`` with worker processes, keeps the images on
the CPU and must copy every batch to the GPU; kornia batches per-image augmentation but is not a
dependency of the course. Measured throughputs against both are in ``benchmarks/RESULTS.md``
("Augmentation throughput"; "Notes moved out of docstrings" for the profiling history). On a
CPU shared with other processes, call ``torch.set_num_threads(1)``: the pipeline's many small
ops pay the thread pool's wake-up cost.

Differences from torchvision, on purpose: crops are continuous (not whole pixels) and the
resize is bilinear without antialiasing (crops are mostly up-sampled on CIFAR); the 10-try
rejection sampling of ``RandomResizedCrop`` is vectorised (10 candidates per image, first valid
one wins, else the whole image) so the crop distribution matches. Rotations/shears are defined
in normalised coordinates, which equals pixel geometry for square images (CIFAR).

Every public augmentation runs in float32 even inside ``torch.autocast`` (:func:`ssl_course.precision.full_precision`):
under autocast the crop's matrix products would round the pixels to bfloat16/float16, and in
float16 the hue rotation's guard against 0/0 on gray pixels (1e-30) rounds to 0 and gives NaN.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from ssl_course.precision import full_precision

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "STRONG_OPS",
    "FIXMATCH_OPS",
    "to_float01",
    "normalize",
    "denormalize",
    "weak_augment",
    "contrastive_augment",
    "multicrop_augment",
    "strong_augment",
    "fixmatch_augment",
    "color_jitter",
    "random_grayscale",
    "cutout",
]

#: Per-channel mean and std of the CIFAR-10 training set on the [0, 1] scale (RGB).
CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)

# ITU-R 601-2 luma weights, as PIL and torchvision use for grayscale.
_LUMA = (0.299, 0.587, 0.114)
_GRAY_FILL = 0.5


# --------------------------------------------------------------------------------------------
# Input handling, random numbers, normalisation
# --------------------------------------------------------------------------------------------

def _check_images(x: object, name: str = "x") -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of images [B, 3, H, W], got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must be a batch of RGB images [B, 3, H, W], got shape {tuple(x.shape)}; "
                         "for a single image use x[None], for HWC images use x.permute(0, 3, 1, 2)")
    if x.dtype != torch.uint8 and not x.is_floating_point():
        raise ValueError(f"{name} must be uint8 (0..255) or float in [0, 1], got {x.dtype}; "
                         "convert with x.to(torch.uint8) or x.float() / 255")


def to_float01(x: Tensor) -> Tensor:
    """uint8 ``[B,3,H,W]`` -> float32 in ``[0, 1]``; float input is only cast to float32."""
    _check_images(x)
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(255.0)
    return x.to(torch.float32)


def _stats(device: torch.device) -> tuple[Tensor, Tensor]:
    mean = torch.tensor(CIFAR10_MEAN, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    return mean, std


@torch.no_grad()
def normalize(x: Tensor) -> Tensor:
    """Images (uint8 or float in [0,1], ``[B,3,H,W]``) -> float32 ``(x - mean) / std`` per channel."""
    fresh = x.dtype != torch.float32                                 # to_float01 then copies already
    x = to_float01(x)
    return _normalize_(x if fresh else x.clone())


def _normalize_(x: Tensor) -> Tensor:
    """:func:`normalize` in place on a float32 batch the caller owns (saves a multi-MB tensor)."""
    mean, std = _stats(x.device)
    return x.sub_(mean).div_(std)


@torch.no_grad()
def denormalize(x: Tensor) -> Tensor:
    """Undo :func:`normalize`: float ``[B,3,H,W]`` or ``[3,H,W]`` -> float in ``[0, 1]``.

    Not clamped (so round trips are exact); use ``.clamp(0, 1)`` before ``imshow``.
    """
    if not isinstance(x, Tensor) or x.dim() not in (3, 4) or x.shape[-3] != 3 or not x.is_floating_point():
        raise ValueError("denormalize expects normalised float images [B, 3, H, W] or [3, H, W], got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    mean, std = _stats(x.device)
    if x.dim() == 3:
        mean, std = mean[0], std[0]
    return x * std + mean


def _rand(shape: Sequence[int], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Uniform [0, 1) numbers drawn on the generator's device (or ``device``), returned on ``device``."""
    draw_device = generator.device if generator is not None else device
    return torch.rand(tuple(shape), generator=generator, device=draw_device).to(device)


def _uniform(shape: Sequence[int], low: float, high: float, generator: torch.Generator | None,
             device: torch.device) -> Tensor:
    return low + (high - low) * _rand(shape, generator, device)


def _check_prob(name: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")


def _check_range(name: str, r: Sequence[float], low: float, high: float) -> tuple[float, float]:
    if len(r) != 2 or not (low <= r[0] <= r[1] <= high):
        raise ValueError(f"{name} must be a pair (lo, hi) with {low} <= lo <= hi <= {high}, got {r!r}")
    return float(r[0]), float(r[1])


def _rows(mask: Tensor) -> Tensor:
    """Indices of the True entries of a 1-D mask (the images a random choice selected)."""
    return mask.nonzero(as_tuple=True)[0]


def _gather_selected(device: torch.device) -> bool:
    """How :func:`_on_selected` works on ``device``: gather the chosen images (CPU) or not (GPU)."""
    return device.type == "cpu"


def _on_selected(x: Tensor, selected: Tensor, op: Callable[..., Tensor], *per_image: Tensor) -> Tensor:
    """``op(images, *per_image)`` applied to the images where ``selected`` (``[B]`` bool) is True.

    On a CPU the chosen images are gathered and only they are computed: the least arithmetic.
    On a GPU, gathering would first have to read how many images were chosen back to the host,
    a synchronisation that stalls the queue of launched kernels; there the op runs on the whole
    batch (cheap on a GPU) and ``torch.where`` keeps its result for the chosen images only.
    Both give the same images: every op here treats each image on its own. Returns the result
    (on a CPU, ``x`` itself, updated in place).
    """
    if _gather_selected(x.device):
        rows = _rows(selected)
        if rows.numel():
            x[rows] = op(x[rows], *(values[rows] for values in per_image))
        return x
    return torch.where(selected.view(-1, 1, 1, 1), op(x, *per_image), x)


# --------------------------------------------------------------------------------------------
# Weak augmentation: pad-crop + flip by index arithmetic
# --------------------------------------------------------------------------------------------

def _reflect(i: Tensor, n: int) -> Tensor:
    """Map indices in ``[-(n-1), 2(n-1)]`` into ``[0, n-1]`` as reflect padding does (edge not repeated)."""
    i = i.abs()
    return torch.where(i > n - 1, 2 * (n - 1) - i, i)


def _pad_crop_flip(x: Tensor, generator: torch.Generator | None, pad: int, flip: bool) -> Tensor:
    """Random crop of the reflect-padded image (same size as ``x``) and random horizontal flip.

    Works on any dtype: it computes, per image, which source pixel lands at each output pixel
    and gathers them, so it never materialises the padded images and never interpolates.
    """
    b, c, h, w = x.shape
    if not isinstance(pad, int) or pad < 0 or pad > min(h, w) - 1:
        raise ValueError(f"pad must be an int in [0, {min(h, w) - 1}] for {h}x{w} images, got {pad!r}")
    u = _rand((b, 3), generator, x.device)
    # Offsets 0..2*pad of the crop's corner in the padded image (min() guards u -> 1.0).
    offset = (u[:, :2] * (2 * pad + 1)).long().clamp_max(2 * pad) - pad          # [B, 2]: dy, dx
    rows = _reflect(torch.arange(h, device=x.device) + offset[:, :1], h)           # [B, H]
    cols = _reflect(torch.arange(w, device=x.device) + offset[:, 1:], w)           # [B, W]
    if flip:
        cols = torch.where(u[:, 2:] < 0.5, cols.flip(1), cols)
    flat = (rows[:, :, None] * w + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    return torch.gather(x.reshape(b, c, h * w), 2, flat).view(b, c, h, w)


@full_precision()
@torch.no_grad()
def weak_augment(x: Tensor, generator: torch.Generator | None = None, pad: int = 4,
                 flip: bool = True) -> Tensor:
    """Reflect-pad by ``pad``, random crop back to ``H x W``, random horizontal flip (p=0.5).

    Args:
        x: uint8 ``[B,3,H,W]`` (or float in [0,1]) on any device.
        generator: source of the per-image offsets and flips (``None``: global RNG).
        pad: maximum shift in pixels (0 disables the crop).
        flip: whether to flip half of the images.

    Returns: normalised float32 ``[B,3,H,W]`` on ``x.device``.
    """
    _check_images(x)
    return normalize(_pad_crop_flip(x, generator, pad, flip))


# --------------------------------------------------------------------------------------------
# Colour operations on float images in [0, 1]; factors are per image, shape [n]
# --------------------------------------------------------------------------------------------

def _grayscale(x: Tensor) -> Tensor:
    """``[n,3,H,W]`` -> luma ``[n,1,H,W]``."""
    r, g, b = x.unbind(1)
    return (r * _LUMA[0]).add_(g, alpha=_LUMA[1]).add_(b, alpha=_LUMA[2]).unsqueeze(1)   # in place: 3x faster


def _blend(x: Tensor, other: Tensor | float, factor: Tensor) -> Tensor:
    """``factor * x + (1 - factor) * other``, clamped to [0, 1]; ``factor`` is ``[n]``."""
    f = factor.view(-1, 1, 1, 1)
    return (f * x + (1 - f) * other).clamp_(0, 1)


def _adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    return _blend(x, 0.0, factor)


def _adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    # Blend with the mean gray level of each image (torchvision / PIL ImageEnhance.Contrast).
    return _blend(x, _grayscale(x).mean(dim=(1, 2, 3), keepdim=True), factor)


def _adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    return _blend(x, _grayscale(x), factor)


# Where each channel peaks on the hue circle (in sixths of a turn) and how its weight falls off:
# red peaks at 0 (= 6), green at 2, blue at 4; see _adjust_hue, step 3.
_HUE_CENTRE = (3.0, 2.0, 4.0)
_HUE_SLOPE = (1.0, -1.0, -1.0)
_HUE_OFFSET = (-1.0, 2.0, 2.0)


def _adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate the hue of ``x`` (``[n,3,H,W]`` in [0,1]) by ``shift`` turns (``[n]``), per image.

    The hexcone HSV round trip of torchvision's ``adjust_hue``, written so that it needs no
    saturation, no ``torch.where`` and few fresh tensors (on a CPU, boolean selections and new
    multi-megabyte tensors cost more than the arithmetic):

    1. hue ``h`` in sixths of a turn from the largest channel: red ``(g-b)/c``, green
       ``2 + (b-r)/c``, blue ``4 + (r-g)/c`` with chroma ``c = max - min``; ties go to red, then
       green (torchvision's convention), gray pixels (``c = 0``) get 0;
    2. ``h <- (h + 6 * shift) mod 6``;
    3. back to RGB keeping max and min: channel ``k`` is ``min + c * clamp(2 - d_k, 0, 1)``, where
       ``d_k`` is the distance around the circle from ``h`` to where channel ``k`` peaks (red 0,
       green 2, blue 4): ``d_red = 3 - |h - 3|``, ``d_green = |h - 2|``, ``d_blue = |h - 4|``.
    """
    r, g, b = x.unbind(1)
    maxc = torch.maximum(r, g)
    maxc = torch.maximum(maxc, b, out=maxc)
    minc = torch.minimum(r, g)
    minc = torch.minimum(minc, b, out=minc)
    chroma = maxc - minc
    # 1. hue in sixths, times chroma. 0/1 masks from sign(max - channel): 0 exactly where that
    # channel is the largest. Few fresh tensors: on a CPU each costs more than its arithmetic.
    red_not_max = (maxc - r).sign_()
    green_not_max = (maxc - g).sign_()
    hue = g - b
    hue.addcmul_(hue, red_not_max, value=-1.0)                              # red largest: g - b
    green = (b - r).add_(chroma, alpha=2.0).mul_(red_not_max)
    hue.add_(green).addcmul_(green, green_not_max, value=-1.0)             # green: 2c + b - r
    hue.add_((r - g).add_(chroma, alpha=4.0).mul_(red_not_max).mul_(green_not_max))   # blue: 4c + r - g
    hue.div_(chroma.clamp_min(1e-30))               # gray pixels: 0 / tiny = 0, as if divided by 1
    # 2. rotate and wrap into [0, 6) (floor is far cheaper than remainder on a CPU).
    hue.add_(6.0 * shift.view(-1, 1, 1))
    hue.sub_(hue.div(6.0).floor_().mul_(6.0))
    # 3. each channel's weight between min (0) and max (1), from its distance to its peak.
    table = torch.tensor((_HUE_CENTRE, _HUE_SLOPE, _HUE_OFFSET), device=x.device, dtype=x.dtype)
    centre, slope, offset = (row.view(1, 3, 1, 1) for row in table)
    weight = (hue.unsqueeze(1) - centre).abs_().mul_(slope).add_(offset).clamp_(0, 1)
    return weight.mul_(chroma.unsqueeze(1)).add_(minc.unsqueeze(1))


@full_precision()
def color_jitter(x: Tensor, generator: torch.Generator | None = None, brightness: float = 0.4,
                 contrast: float = 0.4, saturation: float = 0.4, hue: float = 0.1, p: float = 1.0) -> Tensor:
    """torchvision-style ``ColorJitter`` applied per image with probability ``p``.

    Factors are uniform in ``[1-b, 1+b]`` (brightness, contrast, saturation) and the hue shift in
    ``[-hue, hue]`` turns, drawn per image; the four ops run in a random order per image.
    Input and output: float ``[B,3,H,W]`` in [0, 1] (a new tensor).
    """
    _check_images(x)
    return _color_jitter_(to_float01(x).clone(), generator, brightness, contrast, saturation, hue, p)


def _color_jitter_(x: Tensor, generator: torch.Generator | None, brightness: float, contrast: float,
                   saturation: float, hue: float, p: float) -> Tensor:
    """:func:`color_jitter` in place on a float32 batch the caller owns."""
    _check_prob("p", p)
    if not 0 <= hue <= 0.5 or min(brightness, contrast, saturation) < 0:
        raise ValueError("color_jitter expects brightness, contrast, saturation >= 0 and 0 <= hue <= 0.5, got "
                         f"{brightness}, {contrast}, {saturation}, {hue}")
    b = x.shape[0]
    u = _rand((b, 9), generator, x.device)
    factors = torch.stack([
        1 + brightness * (2 * u[:, 0] - 1),
        1 + contrast * (2 * u[:, 1] - 1),
        1 + saturation * (2 * u[:, 2] - 1),
        hue * (2 * u[:, 3] - 1),
    ], dim=1)                                                        # [B, 4]
    order = u[:, 4:8].argsort(dim=1)                                 # a random permutation per image
    apply = u[:, 8] < p
    one = torch.ones((), device=x.device)
    for slot in range(4):
        op = torch.where(apply, order[:, slot], -1)                  # op id of each image here, -1: none
        # Brightness, contrast and saturation are all the blend f*x + (1-f)*target, with target
        # 0, the image's mean gray or its per-pixel gray. So one blend over the whole batch does
        # all three at this slot; images doing something else get f = 1, target 0: unchanged.
        factor = torch.where((op >= 0) & (op < 3), factors.gather(1, op.clamp(0, 3)[:, None])[:, 0], one)
        gray = _grayscale(x)                                         # [B, 1, H, W]
        mean_gray = gray.mean(dim=(1, 2, 3), keepdim=True)           # before gray is masked in place
        target = gray.mul_((op == 2).view(-1, 1, 1, 1)).add_(mean_gray.mul_((op == 1).view(-1, 1, 1, 1)))
        f = factor.view(-1, 1, 1, 1)
        x.mul_(f).add_(target.mul_(1 - f)).clamp_(0, 1)
        if hue > 0:                                                  # hue is the costly one: its images only
            x = _on_selected(x, op == 3, _adjust_hue, factors[:, 3])
    return x


@full_precision()
def random_grayscale(x: Tensor, generator: torch.Generator | None = None, p: float = 0.2) -> Tensor:
    """Replace each image by its luma (copied to all 3 channels) with probability ``p``. Float in/out."""
    _check_images(x)
    return _random_grayscale_(to_float01(x).clone(), generator, p)


def _random_grayscale_(x: Tensor, generator: torch.Generator | None, p: float) -> Tensor:
    """:func:`random_grayscale` in place on a float32 batch the caller owns."""
    _check_prob("p", p)
    chosen = _rand((x.shape[0],), generator, x.device) < p
    return _on_selected(x, chosen, lambda images: _grayscale(images).expand(-1, 3, -1, -1))


# --------------------------------------------------------------------------------------------
# Contrastive (SimCLR) and multi-crop (PAWS) views
# --------------------------------------------------------------------------------------------

def _random_resized_crop_theta(b: int, h: int, w: int, scale: tuple[float, float], ratio: tuple[float, float],
                               flip_prob: float, generator: torch.Generator | None,
                               device: torch.device, tries: int = 10) -> Tensor:
    """Per-image affine matrices ``[B,2,3]`` (for ``affine_grid``) of random resized crops + flips.

    Follows torchvision's ``RandomResizedCrop.get_params``: up to ``tries`` (area, aspect)
    candidates, the first that fits inside the image wins, otherwise the whole image (aspect
    clamped to ``ratio``). All candidates are drawn at once so every image costs the same.
    """
    u = _rand((b, 2 * tries + 3), generator, device)
    area = (scale[0] + (scale[1] - scale[0]) * u[:, :tries]) * (h * w)            # in pixels^2
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[:, tries:2 * tries]
    aspect = torch.exp(log_r)
    cw = torch.sqrt(area * aspect) / w                                             # fraction of width
    ch = torch.sqrt(area / aspect) / h                                             # fraction of height
    fits = (cw <= 1) & (ch <= 1)
    first = fits.int().argmax(dim=1, keepdim=True)                                 # 0 when none fits
    cw = cw.gather(1, first).squeeze(1)
    ch = ch.gather(1, first).squeeze(1)
    # Fallback (no candidate fits): the largest centred crop whose aspect lies within ratio.
    in_ratio = w / h
    if in_ratio < ratio[0]:
        fb_w, fb_h = 1.0, (w / ratio[0]) / h
    elif in_ratio > ratio[1]:
        fb_w, fb_h = (h * ratio[1]) / w, 1.0
    else:
        fb_w, fb_h = 1.0, 1.0
    any_fits = fits.any(dim=1)
    cw = torch.where(any_fits, cw, torch.full_like(cw, fb_w))
    ch = torch.where(any_fits, ch, torch.full_like(ch, fb_h))
    # Crop centre, uniform over the positions that keep the crop inside the image ([-1, 1] units).
    cx = (2 * u[:, -3] - 1) * (1 - cw)
    cy = (2 * u[:, -2] - 1) * (1 - ch)
    cx = torch.where(any_fits, cx, torch.zeros_like(cx))
    cy = torch.where(any_fits, cy, torch.zeros_like(cy))
    sign = torch.where(u[:, -1] < flip_prob, -1.0, 1.0)                           # -1 mirrors x
    theta = torch.zeros(b, 2, 3, device=device)
    theta[:, 0, 0] = cw * sign
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = ch
    theta[:, 1, 2] = cy
    return theta


def _interpolation_matrix(scale: Tensor, centre: Tensor, size_out: int, size_in: int) -> Tensor:
    """Bilinear weights ``[B, size_out, size_in]`` of a 1-D crop-and-resize along one axis.

    Output pixel ``j`` sits at normalised coordinate ``(2j+1)/size_out - 1`` (``align_corners=False``);
    the crop maps it to ``scale * . + centre`` in the input, i.e. pixel position ``p``. Clamping
    ``p`` to the image is ``grid_sample``'s ``padding_mode="border"``, and the tent
    ``max(0, 1 - |p - i|)`` is exactly the two bilinear weights of the neighbours of ``p``.
    """
    out_coord = (2 * torch.arange(size_out, device=scale.device, dtype=torch.float32) + 1) / size_out - 1
    normalised = scale[:, None] * out_coord + centre[:, None]                           # [B, size_out]
    position = (((normalised + 1) * size_in - 1) / 2).clamp(0, size_in - 1)
    pixels = torch.arange(size_in, device=scale.device, dtype=torch.float32)
    return (position[:, :, None] - pixels).abs_().neg_().add_(1.0).clamp_(min=0)   # 1 - |p - i|, >= 0


def _resized_crop(x: Tensor, theta: Tensor, size: tuple[int, int]) -> Tensor:
    """Axis-aligned crop + bilinear resize of each image, as two small matrix products per image.

    Equal (up to float rounding) to ``grid_sample(x, affine_grid(theta), "bilinear", "border",
    align_corners=False)`` for matrices without rotation or shear (``tests/test_augment.py``
    checks it), and about 1.3x faster on the course CPU because the interpolation is separable:
    ``rows @ image @ columns^T`` with ``[size, H]`` and ``[W, size]`` weight matrices per image.
    """
    b, c, h, w = x.shape
    rows = _interpolation_matrix(theta[:, 1, 1], theta[:, 1, 2], size[0], h)             # [B, h', H]
    cols = _interpolation_matrix(theta[:, 0, 0], theta[:, 0, 2], size[1], w)             # [B, w', W]
    # Columns first with the channels folded into the rows: one [C*H, W] @ [W, w'] product per image.
    resized_cols = torch.bmm(x.reshape(b, c * h, w), cols.transpose(1, 2)).view(b, c, h, size[1])
    return torch.matmul(rows.unsqueeze(1), resized_cols)                                  # [B, C, h', w']


def _as_size(size: int | Sequence[int] | None, h: int, w: int) -> tuple[int, int]:
    if size is None:
        return h, w
    if isinstance(size, int):
        size = (size, size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"size must be a positive int or (height, width), got {size!r}")
    return int(size[0]), int(size[1])


@full_precision()
@torch.no_grad()
def contrastive_augment(x: Tensor, generator: torch.Generator | None = None,
                        crop_scale: tuple[float, float] = (0.2, 1.0),
                        jitter_strength: float = 0.5, jitter_prob: float = 0.8, gray_prob: float = 0.2,
                        flip_prob: float = 0.5, ratio: tuple[float, float] = (3 / 4, 4 / 3),
                        size: int | tuple[int, int] | None = None) -> Tensor:
    """SimCLR's CIFAR augmentation, batched with per-image parameters.

    Random resized crop (``crop_scale`` of the area, aspect in ``ratio``, bilinear) -> flip
    (``flip_prob``) -> colour jitter with strength ``s`` = ``jitter_strength`` (brightness,
    contrast, saturation ``0.8*s``, hue ``0.2*s``; random order per image) with probability
    ``jitter_prob`` -> grayscale with probability ``gray_prob`` -> normalise.

    Args:
        x: uint8 ``[B,3,H,W]`` (or float in [0,1]) on any device.
        size: output size (default: the input size).

    Returns: normalised float32 ``[B,3,size,size]`` on ``x.device``.
    """
    _check_images(x)
    scale = _check_range("crop_scale", crop_scale, 0.0, 1.0)
    if scale[1] <= 0:
        raise ValueError(f"crop_scale must allow a non-empty crop, got {crop_scale!r}")
    ratio = _check_range("ratio", ratio, 1e-3, 1e3)
    for name, p in (("jitter_prob", jitter_prob), ("gray_prob", gray_prob), ("flip_prob", flip_prob)):
        _check_prob(name, p)
    if jitter_strength < 0:
        raise ValueError(f"jitter_strength must be >= 0, got {jitter_strength!r}")
    b, _, h, w = x.shape
    out_size = _as_size(size, h, w)
    theta = _random_resized_crop_theta(b, h, w, scale, ratio, flip_prob, generator, x.device)
    views = _resized_crop(to_float01(x), theta, out_size)
    s = float(jitter_strength)
    if s > 0 and jitter_prob > 0:
        views = _color_jitter_(views, generator, 0.8 * s, 0.8 * s, 0.8 * s, min(0.2 * s, 0.5), jitter_prob)
    if gray_prob > 0:
        views = _random_grayscale_(views, generator, gray_prob)
    return _normalize_(views)


@full_precision()
@torch.no_grad()
def multicrop_augment(x: Tensor, generator: torch.Generator | None = None, size: int | tuple[int, int] = 18,
                      scale: tuple[float, float] = (0.3, 0.75), jitter_strength: float = 0.5,
                      jitter_prob: float = 0.8, gray_prob: float = 0.2) -> Tensor:
    """Small crops for multi-crop methods (PAWS): :func:`contrastive_augment` with a small output.

    Defaults follow PAWS on CIFAR-10: 18x18 crops covering 30-75% of the image, flip, colour
    distortion with strength 0.5. Call it once per extra crop (PAWS uses 6).

    Returns: normalised float32 ``[B,3,size,size]`` on ``x.device``.
    """
    return contrastive_augment(x, generator, crop_scale=scale, jitter_strength=jitter_strength,
                               jitter_prob=jitter_prob, gray_prob=gray_prob, size=size)


# --------------------------------------------------------------------------------------------
# Strong augmentation: RandAugment (FixMatch variant) + Cutout
# --------------------------------------------------------------------------------------------
# Each op maps float images [n,3,H,W] in [0,1] and a signed level [n] in [-1, 1] (the random
# magnitude times a random sign) to new images. Unsigned ops use |level|. Ranges at |level|=1:
# enhance factors 0.1..1.9 (kekmodel/FixMatch-pytorch's ``my_augment_pool``, not the
# ``fixmatch_augment_pool`` of its RandAugmentMC: see fixmatch_augment below), rotate 30 deg,
# shear 0.3, translate 30% of the size, posterize down to 4 bits, solarize threshold down to 0.

def _affine(x: Tensor, matrix: Tensor, shift: Tensor) -> Tensor:
    """Sample ``x`` at ``matrix @ p + shift`` for each output position ``p`` (normalised coords).

    Areas that come from outside the image are gray (0.5), like FixMatch's fill colour;
    subtracting the fill before zero-padded sampling and adding it back does that.
    """
    theta = torch.cat([matrix, shift.unsqueeze(2)], dim=2)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x - _GRAY_FILL, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return (out + _GRAY_FILL).clamp_(0, 1)


def _eye(n: int, device: torch.device) -> Tensor:
    return torch.eye(2, device=device).expand(n, 2, 2).clone()


def _op_identity(x: Tensor, level: Tensor) -> Tensor:
    return x


def _op_autocontrast(x: Tensor, level: Tensor) -> Tensor:
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    flat = hi <= lo                                   # constant channel: leave it as it is
    scale = torch.where(flat, torch.ones_like(hi), 1.0 / torch.where(flat, torch.ones_like(hi), hi - lo))
    return ((x - torch.where(flat, torch.zeros_like(lo), lo)) * scale).clamp_(0, 1)


def _op_equalize(x: Tensor, level: Tensor) -> Tensor:
    """Histogram equalisation per image and channel on 8-bit values (PIL's algorithm), batched."""
    n, c, h, w = x.shape
    v = (x * 255).round_().long().view(n * c, h * w)
    hist = torch.zeros(n * c, 256, dtype=torch.long, device=x.device).scatter_add_(1, v, torch.ones_like(v))
    # PIL spreads all but the last non-empty bin over 255 levels.
    last_bin = 255 - (hist.flip(1) > 0).int().argmax(dim=1, keepdim=True)
    step = (h * w - hist.gather(1, last_bin)) // 255                                 # [n*c, 1]
    lut = ((hist.cumsum(1) - hist + step // 2) // step.clamp_min(1)).clamp_(0, 255)  # exclusive cumsum
    out = torch.where(step > 0, lut.gather(1, v), v)
    return (out.float() / 255).view(n, c, h, w)


def _op_brightness(x: Tensor, level: Tensor) -> Tensor:
    return _adjust_brightness(x, 1 + 0.9 * level)


def _op_color(x: Tensor, level: Tensor) -> Tensor:
    return _adjust_saturation(x, 1 + 0.9 * level)


def _op_contrast(x: Tensor, level: Tensor) -> Tensor:
    return _adjust_contrast(x, 1 + 0.9 * level)


def _smooth(x: Tensor) -> Tensor:
    """PIL's "smooth" filter, the reference image of the sharpness op; borders are kept as they are.

    Kernel [[1,1,1],[1,5,1],[1,1,1]] / 13 = (3x3 box sum + 4 * centre) / 13, summed from shifted
    slices: a depthwise conv2d does the same but was 5x slower on a 1-thread CPU.
    """
    columns = x[:, :, :-2] + x[:, :, 1:-1] + x[:, :, 2:]                      # [n, 3, H-2, W]
    box = columns[..., :-2] + columns[..., 1:-1] + columns[..., 2:]          # [n, 3, H-2, W-2]
    smooth = x.clone()
    smooth[:, :, 1:-1, 1:-1] = box.add_(x[:, :, 1:-1, 1:-1], alpha=4.0).div_(13.0)
    return smooth


def _adjust_sharpness(x: Tensor, factor: Tensor) -> Tensor:
    # As PIL ImageEnhance.Sharpness and torchvision: blend with the smoothed image.
    return _blend(x, _smooth(x), factor)


def _op_sharpness(x: Tensor, level: Tensor) -> Tensor:
    return _adjust_sharpness(x, 1 + 0.9 * level)


def _op_posterize(x: Tensor, level: Tensor) -> Tensor:
    bits = 8 - (4 * level.abs()).round()                                 # 8 (no-op) .. 4 bits
    step = torch.pow(2.0, 8 - bits).view(-1, 1, 1, 1)
    return torch.floor((x * 255).round() / step) * step / 255


def _op_solarize(x: Tensor, level: Tensor) -> Tensor:
    threshold = (1 - level.abs()).view(-1, 1, 1, 1)                      # 1 (no-op) .. 0
    return torch.where(x > threshold, 1 - x, x)


def _op_rotate(x: Tensor, level: Tensor) -> Tensor:
    angle = level * math.radians(30)
    cos, sin = torch.cos(angle), torch.sin(angle)
    matrix = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    return _affine(x, matrix, torch.zeros(len(x), 2, device=x.device))


def _op_shear_x(x: Tensor, level: Tensor) -> Tensor:
    matrix = _eye(len(x), x.device)
    matrix[:, 0, 1] = 0.3 * level
    return _affine(x, matrix, torch.zeros(len(x), 2, device=x.device))


def _op_shear_y(x: Tensor, level: Tensor) -> Tensor:
    matrix = _eye(len(x), x.device)
    matrix[:, 1, 0] = 0.3 * level
    return _affine(x, matrix, torch.zeros(len(x), 2, device=x.device))


def _op_translate_x(x: Tensor, level: Tensor) -> Tensor:
    shift = torch.zeros(len(x), 2, device=x.device)
    shift[:, 0] = 2 * 0.3 * level                 # the image spans 2 units: 0.3 of its width
    return _affine(x, _eye(len(x), x.device), shift)


def _op_translate_y(x: Tensor, level: Tensor) -> Tensor:
    shift = torch.zeros(len(x), 2, device=x.device)
    shift[:, 1] = 2 * 0.3 * level
    return _affine(x, _eye(len(x), x.device), shift)


#: The RandAugment op pool of FixMatch (name -> op). Ops are picked uniformly from it.
STRONG_OPS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "identity": _op_identity,
    "autocontrast": _op_autocontrast,
    "equalize": _op_equalize,
    "brightness": _op_brightness,
    "color": _op_color,
    "contrast": _op_contrast,
    "sharpness": _op_sharpness,
    "posterize": _op_posterize,
    "solarize": _op_solarize,
    "rotate": _op_rotate,
    "shear_x": _op_shear_x,
    "shear_y": _op_shear_y,
    "translate_x": _op_translate_x,
    "translate_y": _op_translate_y,
}


@full_precision()
def cutout(x: Tensor, generator: torch.Generator | None = None, size: int = 16, fill: float = _GRAY_FILL) -> Tensor:
    """Set a ``size x size`` square at a random centre per image to ``fill`` (float images in [0,1]).

    The centre is uniform over the image, so squares near the border are clipped (FixMatch's
    ``CutoutAbs``). Returns a new float tensor.
    """
    x = to_float01(x)
    b, _, h, w = x.shape
    if size <= 0:
        return x
    u = _rand((b, 2), generator, x.device)
    top = (u[:, 0] * h).long() - size // 2
    left = (u[:, 1] * w).long() - size // 2
    ys = torch.arange(h, device=x.device)
    xs = torch.arange(w, device=x.device)
    in_rows = (ys >= top[:, None]) & (ys < top[:, None] + size)                     # [B, H]
    in_cols = (xs >= left[:, None]) & (xs < left[:, None] + size)                   # [B, W]
    hole = (in_rows[:, :, None] & in_cols[:, None, :]).unsqueeze(1).to(x.dtype)    # [B, 1, H, W], 0/1
    # Arithmetic with a 0/1 mask rather than masked_fill: same values, several times faster on a CPU.
    return x.mul(1 - hole).add_(hole, alpha=fill)


@full_precision()
@torch.no_grad()
def strong_augment(x: Tensor, generator: torch.Generator | None = None, num_ops: int = 2,
                   magnitude: float | None = None, pad: int = 4, flip: bool = True,
                   cutout_size: int = 16, ops: Sequence[str] | None = None) -> Tensor:
    """A strong augmentation: flip + pad-crop, RandAugment (every drawn op applied, continuous
    magnitude), Cutout. FixMatch itself uses :func:`fixmatch_augment` (the reference's RandAugmentMC).

    Args:
        x: uint8 ``[B,3,H,W]`` (or float in [0,1]) on any device.
        num_ops: RandAugment ops per image, drawn uniformly with replacement from ``ops``.
        magnitude: strength in [0, 1] for every op; ``None`` (FixMatch's variant) draws it
            uniformly in [0, 1] per image and op. Signed ops (rotate, shear, ...) also get a
            random direction.
        pad, flip: the weak crop/flip applied first (as in FixMatch's strong transform).
        cutout_size: side of the gray Cutout square in pixels (0 disables it).
        ops: subset of :data:`STRONG_OPS` names to draw from (default: all 14).

    Returns: normalised float32 ``[B,3,H,W]`` on ``x.device``.
    """
    _check_images(x)
    if not isinstance(num_ops, int) or num_ops < 0:
        raise ValueError(f"num_ops must be an int >= 0, got {num_ops!r}")
    if magnitude is not None and not 0 <= magnitude <= 1:
        raise ValueError(f"magnitude must be in [0, 1] or None (random per image), got {magnitude!r}")
    if not isinstance(cutout_size, int) or cutout_size < 0:
        raise ValueError(f"cutout_size must be an int >= 0 (0 disables Cutout), got {cutout_size!r}")
    names = list(STRONG_OPS) if ops is None else list(ops)
    unknown = [n for n in names if n not in STRONG_OPS]
    if unknown or not names:
        raise ValueError(f"ops must be a non-empty list of names from {list(STRONG_OPS)}, got {ops!r}")
    pool = [STRONG_OPS[n] for n in names]

    x = to_float01(_pad_crop_flip(x, generator, pad, flip))
    b = x.shape[0]
    u = _rand((b, 3 * num_ops), generator, x.device)
    op_ids = (u[:, :num_ops] * len(pool)).long().clamp_max(len(pool) - 1)           # [B, num_ops]
    mags = u[:, num_ops:2 * num_ops] if magnitude is None else torch.full_like(u[:, :num_ops], magnitude)
    levels = torch.where(u[:, 2 * num_ops:] < 0.5, -mags, mags)                      # random sign
    for k in range(num_ops):
        for op_id, op in enumerate(pool):
            if op is _op_identity:
                continue
            x = _on_selected(x, op_ids[:, k] == op_id, op, levels[:, k])
    x = cutout(x, generator, cutout_size)
    return _normalize_(x)


# --------------------------------------------------------------------------------------------
# FixMatch's RandAugment as the reference PyTorch code (RandAugmentMC)
# --------------------------------------------------------------------------------------------
# Each op maps float images [n,3,H,W] in [0,1], an integer magnitude v [n] in 1..9 and a sign
# [n] (+1/-1; used by the geometric ops only) to new images. Ranges at magnitude v follow
# kekmodel/FixMatch-pytorch ``dataset/randaugment.py`` (``fixmatch_augment_pool``, with
# ``PARAMETER_MAX = 10``): enhance factors 0.05 + 0.09 v, posterize to 4 + floor(0.4 v) bits,
# solarize above 256 - floor(25.6 v), rotate 3 v degrees, shear 0.03 v, translate
# int(0.03 v · 32) pixels. Geometry uses nearest-neighbour sampling and black fill, PIL's
# defaults there; shears and translations are about the top-left corner, as PIL's affine
# ``transform`` coefficients are.

_MC_MAX_LEVEL = 10     # PARAMETER_MAX
_MC_CUTOUT_FILL = 127 / 255


def _mc_factor(v: Tensor) -> Tensor:
    return 0.05 + 0.9 * v / _MC_MAX_LEVEL                               # 0.14 .. 0.86 for v in 1..9


def _pil_affine(x: Tensor, coefficients: Tensor) -> Tensor:
    """PIL's ``Image.transform(size, AFFINE, (a, b, c, d, e, f))`` with nearest sampling and black
    fill: the output pixel centred at (x, y) (pixel units, origin at the top-left corner) takes the
    input at (a x + b y + c, d x + e y + f). ``coefficients`` is ``[n, 6]``."""
    n, _, h, w = x.shape
    a, b, c, d, e, f = coefficients.unbind(1)
    # in normalised coordinates (align_corners=False): u = (x_n + 1) w / 2, v = (y_n + 1) h / 2
    theta = torch.stack([
        torch.stack([a, b * h / w, (a + b * h / w - 1) + 2 * c / w], 1),
        torch.stack([d * w / h, e, (d * w / h + e - 1) + 2 * f / h], 1),
    ], 1)                                                               # [n, 2, 3]
    grid = F.affine_grid(theta, [n, 3, h, w], align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _mc_brightness(x: Tensor, v: Tensor, sign: Tensor) -> Tensor:
    return _adjust_brightness(x, _mc_factor(v))


def _mc_color(x: Tensor, v: Tensor, sign: Tensor) -> Tensor:
    return _adjust_saturation(x, _mc_factor(v))


def _mc_contrast(x: Tensor, v: Tensor, sign: Tensor) -> Tensor:
    return _adjust_contrast(x, _mc_factor(v))


def _mc_sharpness(x: Tensor, v: Tensor, sign: Tensor) -> Tensor:
    return _adjust_sharpness(x, _mc_factor(v))


def _mc_posterize(x: Tensor, v: Tensor, sign: Tensor) -> Tensor:
    bits = 4 + torch.floor(4 * v / _MC_MAX_LEVEL)                        # 4 .. 7 bits
    step = torch.pow(2.0, 8 - bits).view(-1, 1, 1, 1)
    return torch.floor((x * 255).round() / step) * step / 255


def _mc_solarize(x: Tensor, v: Tensor, sign: Tensor) -> Tensor:
    threshold = (256 - torch.floor(256 * v / _MC_MAX_LEVEL)).view(-1, 1, 1, 1)   # PIL: invert >= threshold
    return torch.where((x * 255).round() >= threshold, 1 - x, x)


def _mc_rotate(x: Tensor, v: Tensor, sign: Tensor) -> Tensor:
    n, _, h, w = x.shape
    angle = torch.deg2rad(sign * torch.floor(30 * v / _MC_MAX_LEVEL))
    cos, sin = torch.cos(angle), torch.sin(angle)
    cx, cy = torch.full_like(cos, w / 2), torch.full_like(cos, h / 2)
    # PIL's matrix for rotate(θ): (cos θ, -sin θ, ·, sin θ, cos θ, ·), centre kept in place
    coefficients = torch.stack([cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy], 1)
    return _pil_affine(x, coefficients)


def _mc_shear(axis: int) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    def op(x: Tensor, v: Tensor, sign: Tensor) -> Tensor:
        shear = sign * 0.3 * v / _MC_MAX_LEVEL
        one, zero = torch.ones_like(shear), torch.zeros_like(shear)
        rows = ([one, shear, zero, zero, one, zero] if axis == 0 else [one, zero, zero, shear, one, zero])
        return _pil_affine(x, torch.stack(rows, 1))
    return op


def _mc_translate(axis: int) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    def op(x: Tensor, v: Tensor, sign: Tensor) -> Tensor:
        size = x.shape[3] if axis == 0 else x.shape[2]
        pixels = torch.trunc(sign * 0.3 * v / _MC_MAX_LEVEL * size)      # int() of the signed value
        one, zero = torch.ones_like(pixels), torch.zeros_like(pixels)
        rows = ([one, zero, pixels, zero, one, zero] if axis == 0 else [one, zero, zero, zero, one, pixels])
        return _pil_affine(x, torch.stack(rows, 1))
    return op


def _mc_unsigned(op: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    return lambda x, v, sign: op(x, v)


#: ``RandAugmentMC``'s op pool, in ``fixmatch_augment_pool``'s order (name -> op(x, v, sign)).
FIXMATCH_OPS: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "autocontrast": _mc_unsigned(_op_autocontrast),
    "brightness": _mc_brightness,
    "color": _mc_color,
    "contrast": _mc_contrast,
    "equalize": _mc_unsigned(_op_equalize),
    "identity": _mc_unsigned(_op_identity),
    "posterize": _mc_posterize,
    "rotate": _mc_rotate,
    "sharpness": _mc_sharpness,
    "shear_x": _mc_shear(0),
    "shear_y": _mc_shear(1),
    "solarize": _mc_solarize,
    "translate_x": _mc_translate(0),
    "translate_y": _mc_translate(1),
}


@full_precision()
def cutout_abs(x: Tensor, generator: torch.Generator | None = None, size: int = 16,
               fill: float = _MC_CUTOUT_FILL) -> Tensor:
    """FixMatch-pytorch's ``CutoutAbs``: a gray square whose corner is ``max(0, c - size/2)`` for a
    uniform centre ``c`` per axis, drawn by PIL's ``rectangle`` from that corner to ``corner + size``
    *inclusive* (so ``size + 1`` pixels unless the image border clips it). Float images in [0, 1]."""
    x = to_float01(x)
    b, _, h, w = x.shape
    if size <= 0:
        return x
    u = _rand((b, 2), generator, x.device)
    top = (u[:, 0] * h - size / 2).clamp_min(0).floor()
    left = (u[:, 1] * w - size / 2).clamp_min(0).floor()
    ys = torch.arange(h, device=x.device)
    xs = torch.arange(w, device=x.device)
    in_rows = (ys >= top[:, None]) & (ys <= top[:, None] + size)                    # [B, H]
    in_cols = (xs >= left[:, None]) & (xs <= left[:, None] + size)                  # [B, W]
    hole = (in_rows[:, :, None] & in_cols[:, None, :]).unsqueeze(1).to(x.dtype)    # [B, 1, H, W]
    return x.mul(1 - hole).add_(hole, alpha=fill)


def fixmatch_randaugment_draws(b: int, num_ops: int, generator: torch.Generator | None, device: torch.device,
                               num_choices: int = len(FIXMATCH_OPS)) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The per-image random choices of :func:`fixmatch_augment`, each ``[B, num_ops]``:
    op index (uniform over ``num_choices``, with replacement), magnitude ``v`` (uniform integer
    in 1..9, ``np.random.randint(1, 10)``), applied (probability 0.5), sign (+1 / -1, p = 0.5)."""
    u = _rand((b, 4 * num_ops), generator, device)
    op_ids = (u[:, :num_ops] * num_choices).long().clamp_max(num_choices - 1)
    v = 1 + (u[:, num_ops:2 * num_ops] * (_MC_MAX_LEVEL - 1)).floor().clamp_max(_MC_MAX_LEVEL - 2)
    applied = u[:, 2 * num_ops:3 * num_ops] < 0.5
    sign = torch.where(u[:, 3 * num_ops:] < 0.5, -1.0, 1.0)
    return op_ids, v, applied, sign


@full_precision()
@torch.no_grad()
def fixmatch_augment(x: Tensor, generator: torch.Generator | None = None, num_ops: int = 2, pad: int = 4,
                     flip: bool = True, cutout_size: int = 16) -> Tensor:
    """FixMatch's strong view as the reference PyTorch code: flip + reflect-pad crop, then
    ``RandAugmentMC(n=2, m=10)``, then ``CutoutAbs(16)``.

    Per image and for each of ``num_ops`` slots (:func:`fixmatch_randaugment_draws`): an op
    drawn uniformly from the 14 of :data:`FIXMATCH_OPS`, an integer magnitude ``v`` in 1..9 and
    a sign, and the op is applied with probability 0.5. Everything runs batched on ``x``'s
    device; on a GPU no value is read back to the host (:func:`_on_selected`).

    Source: kekmodel/FixMatch-pytorch, ``dataset/randaugment.py`` (``RandAugmentMC``,
    ``fixmatch_augment_pool``, ``CutoutAbs``) and ``dataset/cifar.py`` (``TransformFixMatch``).

    Args:
        x: uint8 ``[B,3,H,W]`` (or float in [0,1]) on any device.
        num_ops: ops per image (``n``).
        pad, flip: the weak crop/flip applied first.
        cutout_size: ``CutoutAbs``'s ``v`` in pixels (0 disables it).

    Returns: normalised float32 ``[B,3,H,W]`` on ``x.device``.
    """
    _check_images(x)
    if not isinstance(num_ops, int) or num_ops < 0:
        raise ValueError(f"num_ops must be an int >= 0, got {num_ops!r}")
    if not isinstance(cutout_size, int) or cutout_size < 0:
        raise ValueError(f"cutout_size must be an int >= 0 (0 disables Cutout), got {cutout_size!r}")
    pool = list(FIXMATCH_OPS.values())
    x = to_float01(_pad_crop_flip(x, generator, pad, flip))
    op_ids, v, applied, sign = fixmatch_randaugment_draws(x.shape[0], num_ops, generator, x.device)
    for k in range(num_ops):
        for op_id, op in enumerate(pool):
            if op_id == 5:                                   # identity
                continue
            x = _on_selected(x, (op_ids[:, k] == op_id) & applied[:, k], op, v[:, k], sign[:, k])
    x = cutout_abs(x, generator, cutout_size)
    return _normalize_(x)
