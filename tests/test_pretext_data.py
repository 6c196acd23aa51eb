"""Data side of the pretext tasks: CIE Lab conversion, the jigsaw permutation set, patch cutting.

scikit-image is not a dependency of the course, so ``rgb_to_lab`` is checked against a literal
per-pixel implementation of the CIE formulas written with Python floats, against published Lab
values of the sRGB primaries, and by round trips; when scikit-image is installed it is compared too.
"""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from ssl_course.data import (
    ab_bin_centers,
    hamming_distances,
    jigsaw_permutations,
    jigsaw_puzzles,
    lab_to_rgb,
    relative_position_pairs,
    rgb_to_lab,
)
from ssl_course.data.patches import NEIGHBOUR_OFFSETS


# --------------------------------------------------------------------------------- Lab ----------
def _lab_of_one_pixel(r: float, g: float, b: float) -> tuple[float, float, float]:
    """sRGB (D65, 2°) → CIE L*a*b*, one pixel, straight from the definitions."""
    def linear(c):
        return ((c + 0.055) / 1.055) ** 2.4 if c > 0.04045 else c / 12.92

    rl, gl, bl = linear(r), linear(g), linear(b)
    x = (0.412453 * rl + 0.357580 * gl + 0.180423 * bl) / 0.95047
    y = (0.212671 * rl + 0.715160 * gl + 0.072169 * bl) / 1.0
    z = (0.019334 * rl + 0.119193 * gl + 0.950227 * bl) / 1.08883

    def f(t):
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def test_rgb_to_lab_equals_the_per_pixel_formulas():
    images = torch.rand(2, 3, 5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    images[0, :, 0, 0] = 0.0                          # black and a very dark pixel: the linear branch
    images[0, :, 0, 1] = torch.tensor([0.01, 0.02, 0.005])
    lab = rgb_to_lab(images)
    for b, h, w in itertools.product(range(2), range(5), range(4)):
        expected = _lab_of_one_pixel(*images[b, :, h, w].tolist())
        assert lab[b, :, h, w].tolist() == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("rgb, lab", [
    ((1.0, 1.0, 1.0), (100.0, 0.0, 0.0)),          # D65 white
    ((1.0, 0.0, 0.0), (53.24, 80.09, 67.20)),      # sRGB primaries, as tabulated for D65
    ((0.0, 1.0, 0.0), (87.73, -86.18, 83.18)),
    ((0.0, 0.0, 1.0), (32.30, 79.19, -107.86)),
])
def test_primaries_have_their_published_lab_values(rgb, lab):
    got = rgb_to_lab(torch.tensor(rgb, dtype=torch.float64).view(1, 3, 1, 1)).flatten().tolist()
    assert got == pytest.approx(lab, abs=0.02)


def test_lab_round_trip_and_gamut_clipping():
    images = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(lab_to_rgb(rgb_to_lab(images)), images, atol=2e-5, rtol=0)
    far = torch.tensor([50.0, 150.0, -150.0]).view(1, 3, 1, 1)   # outside sRGB: clipped, not NaN
    rgb = lab_to_rgb(far)
    assert torch.isfinite(rgb).all() and rgb.min() >= 0 and rgb.max() <= 1


def test_lab_matches_scikit_image_when_installed():
    color = pytest.importorskip("skimage.color")
    images = torch.rand(2, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    expected = torch.from_numpy(color.rgb2lab(images.permute(0, 2, 3, 1).numpy())).permute(0, 3, 1, 2)
    torch.testing.assert_close(rgb_to_lab(images), expected, atol=1e-6, rtol=0)


def test_lab_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        rgb_to_lab(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="floating point"):
        rgb_to_lab(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))


def test_ab_bins_cover_the_gamut_on_a_grid_of_ten():
    centers = ab_bin_centers()
    assert centers.shape[1] == 2 and 240 <= len(centers) <= 320       # the paper keeps 313
    assert torch.all(centers % 10 == 0)
    ab = rgb_to_lab(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3)))[0, 1:].flatten(1).T
    nearest = torch.cdist(ab, centers).min(1).values
    assert nearest.max() <= 5 * math.sqrt(2) + 1e-4                  # every colour falls in a kept cell


# --------------------------------------------------------------------------- permutations -------
def _min_distance(perms: torch.Tensor) -> int:
    distances = hamming_distances(perms, perms)
    distances.fill_diagonal_(perms.shape[1] + 1)
    return int(distances.min())


def test_greedy_permutation_set_is_far_apart_and_deterministic():
    perms = jigsaw_permutations(100, 9, seed=0)
    assert perms.shape == (100, 9) and perms.dtype == torch.int64
    assert all(sorted(p) == list(range(9)) for p in perms.tolist())           # real permutations
    assert len({tuple(p) for p in perms.tolist()}) == 100                      # all different
    assert _min_distance(perms) >= 6
    assert torch.equal(perms, jigsaw_permutations(100, 9, seed=0))
    assert not torch.equal(perms, jigsaw_permutations(100, 9, seed=1))
    random_set = torch.stack([torch.randperm(9, generator=torch.Generator().manual_seed(s)) for s in range(100)])
    assert _min_distance(random_set) <= 4                                       # about 3 for a random set


def test_the_other_criteria():
    mean_set = jigsaw_permutations(100, 9, criterion="max_mean")
    near_set = jigsaw_permutations(100, 9, criterion="min_mean")
    greedy = jigsaw_permutations(100, 9)
    mean_distance = lambda p: hamming_distances(p, p).sum().item() / (len(p) * (len(p) - 1))  # noqa: E731
    assert mean_distance(mean_set) >= mean_distance(greedy) - 0.05 > mean_distance(near_set) + 3
    assert _min_distance(mean_set) < _min_distance(greedy)


@pytest.mark.parametrize("kwargs", [dict(num_permutations=1), dict(num_tiles=11), dict(num_permutations=7, num_tiles=3),
                                    dict(criterion="best")])
def test_permutations_reject_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        jigsaw_permutations(**kwargs)


# ------------------------------------------------------------------------------- patches --------
def _coordinates() -> torch.Tensor:
    """An image whose pixel (r, c) holds r in channel 0 and c in channel 1, to read positions back."""
    rows, cols = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    return torch.stack([rows, cols, torch.zeros_like(rows)]).float()[None].repeat(64, 1, 1, 1)


def test_relative_position_pairs_put_the_neighbour_where_the_label_says():
    images = _coordinates()
    centre, neighbour, labels = relative_position_pairs(images, 8, 3, 1, torch.Generator().manual_seed(0))
    assert centre.shape == neighbour.shape == (64, 3, 8, 8) and labels.min() >= 0 and labels.max() <= 7
    centre_top, centre_left = centre[:, 0, 0, 0], centre[:, 1, 0, 0]
    assert (centre_top - 12).abs().max() <= 1 and (centre_left - 12).abs().max() <= 1   # 1 + 11, jitter ±1
    for index, label in enumerate(labels.tolist()):
        row, col = NEIGHBOUR_OFFSETS[label]
        dy = neighbour[index, 0, 0, 0] - centre_top[index]
        dx = neighbour[index, 1, 0, 0] - centre_left[index]
        assert abs(dy - 11 * (row - 1)) <= 2 and abs(dx - 11 * (col - 1)) <= 2      # 8 + 3 gap, jitter
        assert torch.equal(neighbour[index, 0], neighbour[index, 0, :, :1].expand(8, 8))  # a real crop


def test_jigsaw_puzzles_apply_the_permutation_of_the_label():
    images = _coordinates()
    perms = jigsaw_permutations(10, 9)
    tiles, labels = jigsaw_puzzles(images, perms, 8, 10, torch.Generator().manual_seed(0))
    assert tiles.shape == (64, 9, 3, 8, 8)
    for index, label in enumerate(labels.tolist()):
        tops, lefts = tiles[index, :, 0, 0, 0], tiles[index, :, 1, 0, 0]
        # position i shows original tile perms[label, i]: its cell is (t // 3, t % 3)
        cells = perms[label]
        region_top = (tops - 10 * (cells // 3)).min()
        region_left = (lefts - 10 * (cells % 3)).min()
        assert torch.all((tops - region_top - 10 * (cells // 3)).abs() <= 4)
        assert torch.all((lefts - region_left - 10 * (cells % 3)).abs() <= 4)
    touching, _ = jigsaw_puzzles(images[:2], perms, 10, 10, torch.Generator().manual_seed(1))
    assert touching.shape == (2, 9, 3, 10, 10)


def test_patch_functions_reject_grids_that_do_not_fit():
    with pytest.raises(ValueError, match="fit"):
        relative_position_pairs(torch.zeros(1, 3, 32, 32), patch_size=10, gap=3, jitter=1)
    with pytest.raises(ValueError, match="tile_size"):
        jigsaw_puzzles(torch.zeros(1, 3, 32, 32), jigsaw_permutations(10, 9), tile_size=12, cell_size=10)
    with pytest.raises(ValueError, match=r"\[P, 9\]"):
        jigsaw_puzzles(torch.zeros(1, 3, 32, 32), torch.zeros(5, 4, dtype=torch.long))
