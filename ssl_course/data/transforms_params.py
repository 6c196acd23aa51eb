r"""Parametrised image transformations whose parameters a network can be asked to predict (AET).

Auto-Encoding Transformations (AET, Zhang, Qi, Wang and Luo, CVPR 2019) and its ensemble
En-AET (Wang, Kihara, Luo and Qi, 2019) draw a random transformation :math:`t` with a parameter
vector :math:`\theta_t`, apply it to an image :math:`x`, and train a network to recover
:math:`\theta_t` from the representations of :math:`x` and :math:`t(x)`. This module provides the
transformations of En-AET's official code (``maple-research-lab/EnAET``,
``Data_Processing/AET_All_Dataloader.py``), batched and on the device: every image gets its own
parameters, drawn from a ``torch.Generator`` so a resumed run repeats them.

Families (name → parameter vector, every entry scaled to lie in ``[-1, 1]``):

=============  ===  ============================================================================
``projective``  8   displacement of the four corners (scale 0.8-1.2 about the centre, then
                    each corner moved by up to 1/8 of the image size), divided by their bound
``affine``      6   ``cos a, sin a, tx, ty, s, h``: rotation ``a`` in ±180°, translation up to
                    20 % of the size, scale in ``scale_range`` (En-AET 0.8-1.2, stored as
                    ``(scale - 1) / 0.2``; AET's CIFAR code 0.7-1.3), shear ±30° (/30°)
``similarity``  5   the first five of ``affine`` (no shear)
``euclidean``   4   the first four of ``affine`` (no scale, no shear)
``ccbs``        4   colour (saturation), contrast, brightness and sharpness factors in
                    0.2-1.8, applied in that order, each stored as ``(factor - 1) / 0.8``
=============  ===  ============================================================================

The first four are *spatial* (they move pixels), ``ccbs`` is *non-spatial* (it changes their
values). All-zero parameters (``affine`` family: ``[1, 0, 0, 0, 0, 0]``) are the identity:
:func:`identity_parameters`.

Geometry. Coordinates are ``affine_grid``'s normalised ones (``align_corners=False``): the image
spans ``[-1, 1]`` in x (left → right) and y (top → bottom), so for square images (CIFAR) they are
pixel geometry up to a scale. A spatial transformation is a map :math:`p \mapsto p'` that says
where the content at :math:`p` in :math:`x` lands in :math:`t(x)`; warping samples :math:`x` at
the *inverse* map of every output pixel (bilinear, mid-grey :data:`FILL` outside the image, as the
official ``resample=PIL.Image.BILINEAR, fillcolor=(128, 128, 128)``). The affine map is
:math:`p' = M p + t` with torchvision's (≤ 0.4) rotation-scale-shear matrix, which both official
codes use (``_get_inverse_affine_matrix``):

.. math::

    M = s \begin{pmatrix}\cos a & -\sin(a + h)\\ \sin a & \cos(a + h)\end{pmatrix}

(the x axis turned by :math:`a`, the y axis by :math:`a + h`). The projective one is the
homography that sends the corners :math:`(\pm 1, \pm 1)` to their displaced positions, solved
per image by the four-point linear system (``torch.linalg.solve``).

Differences from the official loader, on purpose (also in ``docs/RECIPES.md``):

* the official projective transformation also turns the corner order by a random multiple of
  90°, and its regression target is the 8 homography coefficients normalised by fixed
  statistics; here no 90° turn, and the target is the corner displacements, bounded in [-1, 1];
* translations and corner shifts are continuous (official: whole pixels), and the rotation
  centre is the image centre (official: half a pixel to the right and below it, PIL's
  ``size * 0.5 + 0.5``);
* the official ``ccbs`` target is the raw factor in 0.2-1.8, which its ``tanh`` regressor cannot
  reach above 1; here the factor is rescaled to [-1, 1].

The public functions compute in float32 even inside ``torch.autocast``
(:func:`ssl_course.precision.full_precision`): the parameters are regression targets, and warps
through bfloat16 matrix products moved pixels by up to 0.16 (of 1) in a batch of 32 CIFAR images.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from ssl_course.data.augment import (
    _adjust_brightness,
    _adjust_contrast,
    _adjust_saturation,
    _adjust_sharpness,
    _check_images,
    _rand,
    to_float01,
)
from ssl_course.precision import full_precision

__all__ = [
    "AET_AFFINE_SCALE_RANGE",
    "FAMILIES",
    "FILL",
    "NON_SPATIAL_FAMILIES",
    "SPATIAL_FAMILIES",
    "TransformationFamily",
    "affine_matrices",
    "apply_transformation",
    "identity_parameters",
    "num_parameters",
    "projective_matrices",
    "random_transformation",
    "sample_parameters",
]

# Official ranges (ops/argparser.py of maple-research-lab/EnAET): rotation ±180°, translation 20 %
# of the size, scale 0.8-1.2, shear ±30°, projective corner shift 4 px of 32 (= 1/8 of the size).
MAX_ROTATION_DEG = 180.0
MAX_TRANSLATION = 0.2
SCALE_RANGE = (0.8, 1.2)
MAX_SHEAR_DEG = 30.0
MAX_CORNER_SHIFT = 0.125
CCBS_RANGE = (0.2, 1.8)
#: AET's own CIFAR affine code (``maple-research-lab/AET`` ``cifar/affine/main.py``: ``--shrink 0.7
#: --enlarge 1.3``); its projective code keeps 0.8-1.2, as En-AET does for every family.
AET_AFFINE_SCALE_RANGE = (0.7, 1.3)
#: Value of the pixels a spatial warp brings in from outside the image, in [0, 1]: both official
#: codes pass ``fillcolor=(128, 128, 128)``.
FILL = 128 / 255

# Corners in normalised coordinates, in the order top-left, top-right, bottom-right, bottom-left.
_CORNERS = ((-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0))
# Largest corner displacement in normalised units: the scale moves a corner by up to 0.2 (|c| = 1
# per axis) and the shift by 2 × 1/8 (the image is 2 units wide).
_CORNER_BOUND = (SCALE_RANGE[1] - 1.0) + 2 * MAX_CORNER_SHIFT


@dataclass(frozen=True)
class TransformationFamily:
    """One family: how many parameters, how to draw them, how to apply them to float images."""

    name: str
    num_parameters: int
    spatial: bool
    sample: Callable[[int, torch.Generator | None, torch.device], Tensor]   # -> [B, P]
    apply: Callable[[Tensor, Tensor, tuple[float, float]], Tensor]        # ([B,3,H,W], [B,P], scale range)
    identity: tuple[float, ...]


# --------------------------------------------------------------------------------------------
# Affine family and its special cases
# --------------------------------------------------------------------------------------------

def _sample_affine(b: int, generator: torch.Generator | None, device: torch.device, shear: bool = True,
                   scale: bool = True) -> Tensor:
    u = _rand((b, 4), generator, device) * 2 - 1                                   # [B, 4] in [-1, 1)
    angle = u[:, 0] * math.radians(MAX_ROTATION_DEG)
    scale_param = u[:, 2:3] if scale else torch.zeros_like(u[:, 2:3])
    shear_param = u[:, 3:4] if shear else torch.zeros_like(u[:, 3:4])
    translation = _rand((b, 2), generator, device) * 2 - 1                          # [B, 2]
    return torch.cat([angle.cos()[:, None], angle.sin()[:, None], translation, scale_param, shear_param], 1)


@full_precision()
def affine_matrices(params: Tensor, scale_range: tuple[float, float] = SCALE_RANGE) -> tuple[Tensor, Tensor]:
    """Parameters ``[B, 4|5|6]`` (``cos a, sin a, tx, ty[, s[, h]]``) → forward map ``(M [B,2,2], t [B,2])``.

    ``M = scale · [[cos a, -sin(a + h)], [sin a, cos(a + h)]]`` as torchvision's (≤ 0.4)
    ``_get_inverse_affine_matrix`` that both official codes call; ``s`` in [-1, 1] stands for the
    scale ``mid + s · half`` of ``scale_range``, as the official ``aff_para`` does. Missing trailing
    entries mean scale 1 and shear 0, so the same function serves the Euclidean, similarity and
    affine families. ``(cos a, sin a)`` is renormalised to unit length, so a regressed (not exactly
    unit) pair still gives a rotation.
    """
    b, p = params.shape
    zeros = params.new_zeros(b)
    cos_sin = F.normalize(params[:, :2], dim=1)
    cos, sin = cos_sin[:, 0], cos_sin[:, 1]
    translation = params[:, 2:4] * (2 * MAX_TRANSLATION)                             # normalised units
    low, high = scale_range
    scale = (low + high) / 2 + (high - low) / 2 * (params[:, 4] if p > 4 else zeros)
    shear = math.radians(MAX_SHEAR_DEG) * (params[:, 5] if p > 5 else zeros)
    cos_sheared = cos * shear.cos() - sin * shear.sin()                               # cos(a + h)
    sin_sheared = sin * shear.cos() + cos * shear.sin()                               # sin(a + h)
    matrix = torch.stack([torch.stack([cos, -sin_sheared], 1), torch.stack([sin, cos_sheared], 1)], 1)
    return scale.view(b, 1, 1) * matrix, translation


def _fill_outside(x: Tensor, grid: Tensor) -> Tensor:
    """Bilinear ``grid_sample`` with :data:`FILL` (official mid-grey) outside the image."""
    return F.grid_sample(x - FILL, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + FILL


def _warp_affine(x: Tensor, params: Tensor, scale_range: tuple[float, float] = SCALE_RANGE) -> Tensor:
    matrix, translation = affine_matrices(params.to(x.dtype), scale_range)
    inverse = torch.linalg.inv(matrix)                                             # output → input
    theta = torch.cat([inverse, -(inverse @ translation.unsqueeze(2))], dim=2)     # [B, 2, 3]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return _fill_outside(x, grid)


# --------------------------------------------------------------------------------------------
# Projective family
# --------------------------------------------------------------------------------------------

def _sample_projective(b: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    u = _rand((b, 9), generator, device) * 2 - 1
    corners = torch.tensor(_CORNERS, device=device).view(1, 8)
    scale = (SCALE_RANGE[1] - 1.0) * u[:, :1]                                       # [B, 1]: s - 1
    displacement = scale * corners + (2 * MAX_CORNER_SHIFT) * u[:, 1:]              # [B, 8]
    return displacement / _CORNER_BOUND


@full_precision()
def projective_matrices(params: Tensor) -> Tensor:
    """Parameters ``[B, 8]`` → homographies ``G [B, 3, 3]`` mapping *output* points to *input* points.

    The four displaced corners ``d_i`` (where the corners ``c_i`` of the input land) must map back
    to ``c_i``: eight equations ``x = (g0 u + g1 v + g2) / (g6 u + g7 v + 1)``, ``y = (g3 u + g4 v
    + g5) / (g6 u + g7 v + 1)`` for ``(u, v) = d_i``, ``(x, y) = c_i``, solved in float64.
    """
    b = params.shape[0]
    corners = torch.tensor(_CORNERS, dtype=torch.float64, device=params.device).expand(b, 4, 2)
    displaced = corners + _CORNER_BOUND * params.to(torch.float64).view(b, 4, 2)
    u, v = displaced.unbind(2)                                                     # [B, 4] each
    x, y = corners.unbind(2)
    one, zero = torch.ones_like(u), torch.zeros_like(u)
    rows_x = torch.stack([u, v, one, zero, zero, zero, -x * u, -x * v], 2)        # [B, 4, 8]
    rows_y = torch.stack([zero, zero, zero, u, v, one, -y * u, -y * v], 2)
    system = torch.cat([rows_x, rows_y], 1)                                        # [B, 8, 8]
    solution = torch.linalg.solve(system, torch.cat([x, y], 1))                    # [B, 8]
    return torch.cat([solution, torch.ones_like(solution[:, :1])], 1).view(b, 3, 3).to(params.dtype)


def _warp_projective(x: Tensor, params: Tensor, scale_range: tuple[float, float] = SCALE_RANGE) -> Tensor:
    # scale_range is the affine families' (one signature for every family); the projective
    # scale is 0.8-1.2 in both official codes (SCALE_RANGE, built into _CORNER_BOUND)
    b = x.shape[0]
    homography = projective_matrices(params).to(x.dtype)                          # [B, 3, 3]
    identity = torch.eye(2, 3, dtype=x.dtype, device=x.device).expand(b, 2, 3)
    points = F.affine_grid(identity, list(x.shape), align_corners=False)           # [B, H, W, 2]
    homogeneous = torch.cat([points, torch.ones_like(points[..., :1])], -1)        # [B, H, W, 3]
    mapped = torch.einsum("bij,bhwj->bhwi", homography, homogeneous)               # [B, H, W, 3]
    grid = mapped[..., :2] / mapped[..., 2:]
    return _fill_outside(x, grid)


# --------------------------------------------------------------------------------------------
# Non-spatial family: colour, contrast, brightness, sharpness (PIL ImageEnhance order)
# --------------------------------------------------------------------------------------------

def _sample_ccbs(b: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    return _rand((b, 4), generator, device) * 2 - 1


def _apply_ccbs(x: Tensor, params: Tensor, scale_range: tuple[float, float] = SCALE_RANGE) -> Tensor:
    half_width = (CCBS_RANGE[1] - CCBS_RANGE[0]) / 2
    factors = 1.0 + half_width * params.to(x.dtype)                                # [B, 4]
    x = _adjust_saturation(x, factors[:, 0])
    x = _adjust_contrast(x, factors[:, 1])
    x = _adjust_brightness(x, factors[:, 2])
    return _adjust_sharpness(x, factors[:, 3])


FAMILIES: dict[str, TransformationFamily] = {
    "projective": TransformationFamily("projective", 8, True, _sample_projective, _warp_projective, (0.0,) * 8),
    "affine": TransformationFamily("affine", 6, True, _sample_affine, _warp_affine, (1.0,) + (0.0,) * 5),
    "similarity": TransformationFamily(
        "similarity", 5, True, lambda b, g, d: _sample_affine(b, g, d, shear=False)[:, :5], _warp_affine,
        (1.0,) + (0.0,) * 4),
    "euclidean": TransformationFamily(
        "euclidean", 4, True, lambda b, g, d: _sample_affine(b, g, d, shear=False, scale=False)[:, :4],
        _warp_affine, (1.0,) + (0.0,) * 3),
    "ccbs": TransformationFamily("ccbs", 4, False, _sample_ccbs, _apply_ccbs, (0.0,) * 4),
}
SPATIAL_FAMILIES = tuple(name for name, family in FAMILIES.items() if family.spatial)
NON_SPATIAL_FAMILIES = tuple(name for name, family in FAMILIES.items() if not family.spatial)


def _family(name: str) -> TransformationFamily:
    if name not in FAMILIES:
        raise ValueError(f"unknown transformation family {name!r}: choose one of {sorted(FAMILIES)}")
    return FAMILIES[name]


def num_parameters(name: str) -> int:
    """Length of the parameter vector a network must regress for family ``name``."""
    return _family(name).num_parameters


def identity_parameters(name: str, batch_size: int, device: torch.device | str = "cpu") -> Tensor:
    """``[batch_size, P]`` parameters that leave every image unchanged."""
    row = torch.tensor(_family(name).identity, device=device)
    return row.expand(batch_size, -1).clone()


def sample_parameters(name: str, batch_size: int, generator: torch.Generator | None = None,
                      device: torch.device | str = "cpu") -> Tensor:
    """``[batch_size, P]`` random parameters of family ``name``, one row per image, from ``generator``."""
    return _family(name).sample(batch_size, generator, torch.device(device))


@full_precision()
def apply_transformation(name: str, images: Tensor, params: Tensor,
                         scale_range: tuple[float, float] = SCALE_RANGE) -> Tensor:
    """Apply family ``name`` with per-image ``params [B, P]`` to ``images`` (uint8 or float in [0, 1]).

    ``scale_range`` is what the affine and similarity families' scale entry in [-1, 1] stands
    for (En-AET's 0.8-1.2 by default; :data:`AET_AFFINE_SCALE_RANGE` for AET's CIFAR code).
    Returns float32 images in ``[0, 1]`` (not normalised), ``[B, 3, H, W]`` on ``images.device``.
    """
    family = _family(name)
    _check_images(images, "images")
    if not isinstance(params, Tensor) or params.dim() != 2 or params.shape != (images.shape[0], family.num_parameters):
        got = tuple(params.shape) if isinstance(params, Tensor) else type(params).__name__
        raise ValueError(f"params for {name!r} must have shape [B, {family.num_parameters}] = "
                         f"[{images.shape[0]}, {family.num_parameters}] (one row per image); got {got}. "
                         f"Draw them with sample_parameters({name!r}, images.shape[0]).")
    low, high = scale_range
    if not 0 < low <= 1 <= high:
        raise ValueError(f"scale_range must be (low, high) with 0 < low <= 1 <= high; got {scale_range!r}. "
                         f"En-AET uses {SCALE_RANGE}, AET's CIFAR affine code {AET_AFFINE_SCALE_RANGE}.")
    x = to_float01(images)
    return family.apply(x, params.to(device=x.device, dtype=x.dtype), (float(low), float(high))).clamp_(0, 1)


@full_precision()
@torch.no_grad()
def random_transformation(name: str, images: Tensor, generator: torch.Generator | None = None,
                          scale_range: tuple[float, float] = SCALE_RANGE) -> tuple[Tensor, Tensor]:
    """Draw per-image parameters and apply them: ``(transformed [B,3,H,W] in [0,1], params [B,P])``."""
    _check_images(images, "images")
    params = sample_parameters(name, images.shape[0], generator, images.device)
    return apply_transformation(name, images, params, scale_range), params
