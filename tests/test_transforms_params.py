"""The parametrised transformations of AET / En-AET (ssl_course.data.transforms_params)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from torch.nn import functional as F

from ssl_course.data import transforms_params as T


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randint(0, 256, (6, 3, 32, 32), generator=gen(0), dtype=torch.uint8)


@pytest.mark.parametrize("name", list(T.FAMILIES))
def test_identity_parameters_leave_images_unchanged(name, images):
    out = T.apply_transformation(name, images, T.identity_parameters(name, len(images)))
    assert torch.allclose(out, images.float() / 255, atol=1e-6)


@pytest.mark.parametrize("name", list(T.FAMILIES))
def test_parameters_are_seedable_bounded_and_per_image(name, images):
    a, pa = T.random_transformation(name, images, gen(3))
    b, pb = T.random_transformation(name, images, gen(3))
    _, pc = T.random_transformation(name, images, gen(4))
    assert torch.equal(a, b) and torch.equal(pa, pb)
    assert not torch.equal(pa, pc)
    assert pa.shape == (len(images), T.num_parameters(name))
    assert pa.abs().max() <= 1.0
    assert len(torch.unique(pa[:, -1])) == len(images)      # every image its own parameters
    assert not torch.allclose(a, images.float() / 255, atol=1e-3)


def test_special_cases_of_the_affine_family():
    p = T.sample_parameters("affine", 1000, gen(0))
    assert torch.allclose(p[:, 0] ** 2 + p[:, 1] ** 2, torch.ones(1000), atol=1e-5)
    assert T.num_parameters("similarity") == 5 and T.num_parameters("euclidean") == 4
    # The similarity / Euclidean vectors are prefixes of the affine one (official aff_para[:, :5] / [:, :4]).
    assert torch.equal(T.sample_parameters("similarity", 7, gen(1)), T.sample_parameters("affine", 7, gen(1))[:, :5])
    assert torch.equal(T.sample_parameters("euclidean", 7, gen(1)), T.sample_parameters("affine", 7, gen(1))[:, :4])


def test_a_quarter_turn_and_a_one_pixel_shift_are_exact(images):
    x = images.float() / 255
    quarter = torch.tensor([[0.0, 1.0, 0.0, 0.0]]).expand(len(x), 4)     # a = 90°: (x, y) -> (-y, x)
    turned = T.apply_transformation("euclidean", images, quarter)
    assert torch.allclose(turned, torch.rot90(x, k=-1, dims=(2, 3)), atol=1e-5)  # clockwise: right edge -> bottom
    one_pixel = 1 / 32 / T.MAX_TRANSLATION                                      # tx in units of 20 % of 32 px
    shift = torch.tensor([[1.0, 0.0, one_pixel, 0.0]]).expand(len(x), 4)
    shifted = T.apply_transformation("euclidean", images, shift)
    assert torch.allclose(shifted[..., 1:], x[..., :-1], atol=1e-5)
    assert (shifted[..., 0] - 128 / 255).abs().max() < 1e-6                     # official grey fill on the left


def _homography_numpy(params: np.ndarray) -> np.ndarray:
    """The homography sending displaced corners back to the corners, from 4 point pairs (literal)."""
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64)
    displaced = corners + T._CORNER_BOUND * params.reshape(4, 2)
    rows, rhs = [], []
    for (u, v), (x, y) in zip(displaced, corners):
        rows.append([u, v, 1, 0, 0, 0, -x * u, -x * v])
        rhs.append(x)
        rows.append([0, 0, 0, u, v, 1, -y * u, -y * v])
        rhs.append(y)
    g = np.linalg.solve(np.array(rows), np.array(rhs))
    return np.append(g, 1.0).reshape(3, 3)


def _warp_one(image: torch.Tensor, homography: np.ndarray) -> torch.Tensor:
    """Per-image loop oracle: every output pixel centre mapped by the 3x3 matrix, then grid_sample;
    outside the image the official mid-grey (128, 128, 128)."""
    _, h, w = image.shape
    grid = torch.empty(1, h, w, 2, dtype=torch.float64)
    for i in range(h):
        for j in range(w):
            point = np.array([(2 * j + 1) / w - 1, (2 * i + 1) / h - 1, 1.0])
            mapped = homography @ point
            grid[0, i, j] = torch.from_numpy(mapped[:2] / mapped[2])
    fill = 128 / 255
    return F.grid_sample(image[None].double() - fill, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)[0] + fill


def test_projective_warp_matches_a_per_image_loop(images):
    x = images[:3]
    params = T.sample_parameters("projective", 3, gen(5))
    batched = T.apply_transformation("projective", x, params)
    for k in range(3):
        want = _warp_one(x[k].float() / 255, _homography_numpy(params[k].double().numpy()))
        assert torch.allclose(batched[k].double(), want.clamp(0, 1), atol=1e-4)


def _official_forward_matrix(angle_deg: float, scale: float, shear_deg: float) -> np.ndarray:
    """torchvision <= 0.4's RSS(a, scale, shear), which _get_inverse_affine_matrix inverts in both
    maple-research-lab/AET (cifar/affine/dataset.py) and EnAET (Data_Processing/AET_All_Dataloader.py)."""
    a, h = math.radians(angle_deg), math.radians(shear_deg)
    return scale * np.array([[math.cos(a), -math.sin(a + h)], [math.sin(a), math.cos(a + h)]])


@pytest.mark.parametrize("scale_range", [T.SCALE_RANGE, T.AET_AFFINE_SCALE_RANGE])
def test_affine_warp_matches_a_per_image_loop_with_the_official_shear(images, scale_range):
    x = images[:3]
    params = T.sample_parameters("affine", 3, gen(6))
    batched = T.apply_transformation("affine", x, params, scale_range)
    low, high = scale_range
    for k in range(3):
        cos, sin, tx, ty, s, h = params[k].double().tolist()
        # the official aff_para entries back to angle, scale and shear
        angle, scale, shear = math.degrees(math.atan2(sin, cos)), (low + high) / 2 + s * (high - low) / 2, 30 * h
        forward = np.eye(3)
        forward[:2, :2] = _official_forward_matrix(angle, scale, shear)
        forward[:2, 2] = [0.4 * tx, 0.4 * ty]                  # 20 % of the size = 0.4 normalised units
        want = _warp_one(x[k].float() / 255, np.linalg.inv(forward))
        assert torch.allclose(batched[k].double(), want.clamp(0, 1), atol=1e-4)


def test_the_official_shear_turns_the_y_axis_and_keeps_its_length():
    """torchvision's RSS shear rotates the y axis by a + h (unit length), unlike x += tan(h)·y."""
    params = torch.tensor([[math.cos(0.3), math.sin(0.3), 0.0, 0.0, 0.0, 0.5]], dtype=torch.float64)
    matrix, _ = T.affine_matrices(params)
    y_axis = matrix[0, :, 1]
    assert y_axis.norm().item() == pytest.approx(1.0)
    assert math.atan2(-y_axis[0].item(), y_axis[1].item()) == pytest.approx(0.3 + math.radians(15))
    assert matrix[0, :, 0].tolist() == pytest.approx([math.cos(0.3), math.sin(0.3)])


def test_aet_scale_range_is_wider_than_enaet_for_the_same_parameters():
    params = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0, -1.0, 0.0]], dtype=torch.float64)
    enaet, _ = T.affine_matrices(params)
    aet, _ = T.affine_matrices(params, T.AET_AFFINE_SCALE_RANGE)
    assert enaet[:, 0, 0].tolist() == pytest.approx([1.2, 0.8])       # EnAET ops/argparser.py: 0.8-1.2
    assert aet[:, 0, 0].tolist() == pytest.approx([1.3, 0.7])         # AET cifar/affine/main.py: 0.7-1.3
    with pytest.raises(ValueError, match="scale_range"):
        T.apply_transformation("affine", torch.zeros(2, 3, 8, 8), params.float(), (1.1, 1.3))


def test_homography_sends_displaced_corners_to_corners():
    params = T.sample_parameters("projective", 4, gen(7))
    g = T.projective_matrices(params.double())
    corners = torch.tensor(T._CORNERS, dtype=torch.float64)
    displaced = corners + T._CORNER_BOUND * params.double().view(4, 4, 2)
    mapped = torch.einsum("bij,bkj->bki", g, torch.cat([displaced, torch.ones(4, 4, 1, dtype=torch.float64)], 2))
    assert torch.allclose(mapped[..., :2] / mapped[..., 2:], corners.expand(4, 4, 2), atol=1e-10)


def test_projective_with_affine_corners_equals_the_affine_warp(images):
    """A homography that moves the corners as an affine map does IS that affine map."""
    affine = torch.tensor([[math.cos(0.1), math.sin(0.1), 0.2, -0.1, 0.25, 0.0]])
    matrix, translation = T.affine_matrices(affine.double())
    corners = torch.tensor(T._CORNERS, dtype=torch.float64)
    moved = corners @ matrix[0].T + translation[0]
    projective = ((moved - corners) / T._CORNER_BOUND).reshape(1, 8)
    assert projective.abs().max() <= 1
    a = T.apply_transformation("affine", images[:1], affine)
    b = T.apply_transformation("projective", images[:1], projective.float())
    assert torch.allclose(a, b, atol=1e-4)


def test_ccbs_matches_torchvision_in_the_official_order(images):
    x = images[:4].float() / 255
    params = T.sample_parameters("ccbs", 4, gen(8))
    got = T.apply_transformation("ccbs", images[:4], params)
    factors = 1 + 0.8 * params
    for k in range(4):
        c, n, b, s = factors[k].tolist()
        want = TF.adjust_sharpness(TF.adjust_brightness(TF.adjust_contrast(TF.adjust_saturation(x[k], c), n), b), s)
        assert torch.allclose(got[k], want, atol=1e-4)


def test_bad_inputs_say_what_to_fix(images):
    with pytest.raises(ValueError, match="unknown transformation family"):
        T.sample_parameters("perspective", 2)
    with pytest.raises(ValueError, match=r"\[B, 8\]"):
        T.apply_transformation("projective", images, torch.zeros(len(images), 6))
    with pytest.raises(ValueError, match="RGB images"):
        T.apply_transformation("affine", images[0], torch.zeros(1, 6))
