r"""sRGB ↔ CIE L*a*b* (D65 white), batched on the device, for colorization (Zhang et al. 2016).

Both functions follow the same constants as scikit-image's ``rgb2lab`` / ``lab2rgb`` (illuminant
D65, 2° observer), so a learner can compare numbers with that library:

1. sRGB gamma is undone: :math:`c_{lin} = ((c + 0.055)/1.055)^{2.4}` if :math:`c > 0.04045`,
   else :math:`c/12.92`.
2. Linear RGB → XYZ with the sRGB matrix :data:`XYZ_FROM_RGB`, then divided by the D65 white
   :data:`D65_WHITE`.
3. :math:`f(t) = t^{1/3}` if :math:`t > 0.008856`, else :math:`7.787\,t + 16/116`;
   :math:`L = 116 f(Y) - 16`, :math:`a = 500 (f(X) - f(Y))`, :math:`b = 200 (f(Y) - f(Z))`.

``L`` lies in [0, 100]; ``a`` and ``b`` within about [-87, 99] and [-108, 95] for sRGB colours.

Both conversions compute in float32 (float64 stays float64) even inside ``torch.autocast``
(:func:`ssl_course.precision.full_precision`): autocast would run the RGB → XYZ product in
bfloat16, which put a, b and L off by up to 1.3, 0.6 and 0.2 on a 32³ sample of the sRGB cube and
on synthetic images (float16: 0.16, 0.08, 0.03), and colorization's targets are ab.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ssl_course.precision import full_precision

__all__ = ["rgb_to_lab", "lab_to_rgb", "ab_bin_centers", "XYZ_FROM_RGB", "RGB_FROM_XYZ", "D65_WHITE"]

#: Linear sRGB → XYZ (rows X, Y, Z), the matrix scikit-image uses.
XYZ_FROM_RGB = ((0.412453, 0.357580, 0.180423),
                (0.212671, 0.715160, 0.072169),
                (0.019334, 0.119193, 0.950227))
#: XYZ of the D65 reference white, 2° observer.
D65_WHITE = (0.95047, 1.0, 1.08883)
#: XYZ → linear sRGB, inverted once on the CPU (an inverse on the GPU would wait for its error check).
RGB_FROM_XYZ = tuple(map(tuple, torch.linalg.inv(torch.tensor(XYZ_FROM_RGB, dtype=torch.float64)).tolist()))
_EPSILON = 0.008856     # (6/29)^3 in the CIE definition, rounded as in scikit-image
_KAPPA = 7.787


def _check(name: str, images: object, fix: str) -> Tensor:
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
        got = (f"a {images.dim()}-D tensor of shape {tuple(images.shape)}" if isinstance(images, Tensor)
               else f"an object of type {type(images).__name__}")
        raise ValueError(f"{name} must be a float tensor [B, 3, H, W]; got {got}. {fix}")
    if not images.is_floating_point():
        raise ValueError(f"{name} must be floating point; got {images.dtype}. {fix}")
    return images


def _at_least_float32(images: Tensor) -> Tensor:
    """float16 / bfloat16 -> float32 (their 3 significant digits are too few for Lab); others unchanged."""
    return images.float() if images.dtype in (torch.float16, torch.bfloat16) else images


def _matrix(rows, like: Tensor) -> Tensor:
    return torch.tensor(rows, dtype=like.dtype, device=like.device)


@full_precision()
def rgb_to_lab(images: Tensor) -> Tensor:
    """sRGB ``[B, 3, H, W]`` in [0, 1] → L*a*b* ``[B, 3, H, W]`` (channels L, a, b) on the same device,
    float64 for float64 input, else float32 (half-precision input is converted first).

    Values outside [0, 1] are clamped first (the sRGB formulas are defined on [0, 1]).
    """
    _check("images", images, "Pass float RGB in [0, 1], e.g. uint8_images.float() / 255.")
    rgb = _at_least_float32(images).clamp(0.0, 1.0)
    # 1. undo the sRGB gamma curve
    linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055).pow(2.4), rgb / 12.92)
    # 2. linear RGB -> XYZ relative to the white point: [B,3,H,W] x [3,3] over the channel axis
    xyz = torch.einsum("ij,bjhw->bihw", _matrix(XYZ_FROM_RGB, rgb), linear)
    xyz = xyz / _matrix(D65_WHITE, rgb).view(1, 3, 1, 1)
    # 3. the CIE cube-root compression, linear near black
    f = torch.where(xyz > _EPSILON, xyz.clamp_min(_EPSILON).pow(1.0 / 3.0), _KAPPA * xyz + 16.0 / 116.0)
    fx, fy, fz = f.unbind(1)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=1)


@full_precision()
def lab_to_rgb(lab: Tensor) -> Tensor:
    """L*a*b* ``[B, 3, H, W]`` → sRGB ``[B, 3, H, W]`` clipped to [0, 1] (the inverse of :func:`rgb_to_lab`),
    float64 for float64 input, else float32.

    Lab colours outside the sRGB gamut are clipped per channel, as scikit-image does.
    """
    _check("lab", lab, "Pass the output of rgb_to_lab (channels L, a, b), or torch.cat([L, ab], dim=1).")
    lightness, a, b = _at_least_float32(lab).unbind(1)
    # 1. invert the three formulas of step 3 (Z cannot be negative)
    fy = (lightness + 16.0) / 116.0
    f = torch.stack([a / 500.0 + fy, fy, (fy - b / 200.0).clamp_min(0.0)], dim=1)
    threshold = _EPSILON ** (1.0 / 3.0)
    xyz = torch.where(f > threshold, f.pow(3), (f - 16.0 / 116.0) / _KAPPA)
    xyz = xyz * _matrix(D65_WHITE, lab).view(1, 3, 1, 1)
    # 2. XYZ -> linear RGB with the inverse matrix
    linear = torch.einsum("ij,bjhw->bihw", _matrix(RGB_FROM_XYZ, lab), xyz)
    # 3. the sRGB gamma curve, then clip to the displayable range
    rgb = torch.where(linear > 0.0031308, 1.055 * linear.clamp_min(0.0031308).pow(1.0 / 2.4) - 0.055,
                      12.92 * linear)
    return rgb.clamp(0.0, 1.0)


def _ab_bins_in_gamut(grid_size: float, levels: int) -> Tensor:
    steps = torch.linspace(0.0, 1.0, levels, dtype=torch.float64)
    cube = torch.stack(torch.meshgrid(steps, steps, steps, indexing="ij"), dim=0).reshape(1, 3, -1, 1)
    ab = rgb_to_lab(cube)[0, 1:, :, 0].T                                   # [levels^3, 2]
    centres = torch.unique(torch.round(ab / grid_size) * grid_size, dim=0)  # sorted by a, then b
    return centres.float()


_BIN_CACHE: dict[tuple[float, int], Tensor] = {}


def ab_bin_centers(grid_size: float = 10.0, levels: int = 64) -> Tensor:
    """Centres of the quantised ab bins that sRGB colours can reach, float32 ``[Q, 2]`` (columns a, b).

    Zhang et al. (ECCV 2016) quantise the ab plane into a grid of side 10 and keep the ``Q = 313``
    bins that are in gamut. Here the gamut is measured directly: ``levels^3`` colours spread over
    the sRGB cube are converted to Lab, and every grid cell (centre ``10·round(ab/10)``) hit by one
    of them is kept: ``Q = 261`` for the defaults. The count depends a little on which colours the
    sampling hits: 262 at ``levels=128``, 261 again at 256 (every 8-bit colour), because 128 levels
    are not a subset of 256. (The paper's set also comes from the gamut, with ImageNet as the sample
    of colours.) Cached; do not modify the result.
    """
    if not grid_size > 0 or not isinstance(levels, int) or levels < 2:
        raise ValueError(f"need grid_size > 0 and an int levels >= 2; got {grid_size!r}, {levels!r}.")
    key = (float(grid_size), levels)
    if key not in _BIN_CACHE:
        _BIN_CACHE[key] = _ab_bins_in_gamut(float(grid_size), levels)
    return _BIN_CACHE[key]
