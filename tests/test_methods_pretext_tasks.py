"""Relative position, jigsaw and colorization as methods: registration, the properties each
method's design promises, checkpoints, and the CLI. (Learning itself: tests/test_methods_learn.py.)"""
from __future__ import annotations

import json

import pytest
import torch

from ssl_course.cli import main
from ssl_course.data import lab_to_rgb, rgb_to_lab
from ssl_course.data.augment import normalize
from ssl_course.methods import build_method
from ssl_course.methods import colorization as colorization_module
from ssl_course.methods.base import Batch, StepInfo
from ssl_course.methods.colorization import Colorization, subsample_ab
from ssl_course.methods.jigsaw import Jigsaw, standardise_tiles
from ssl_course.methods.relative_position import RelativePosition, blur_some, centre_and_scale, drop_colours

NAMES = ("relative_position", "jigsaw", "colorization")


pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(images, seed=0):
    return Batch(labeled_images=None, labels=None, unlabeled_images=images, unlabeled_index=None,
                 generator=torch.Generator().manual_seed(seed))


def test_registered_self_supervised_and_without_classifier():
    for name, cls in zip(NAMES, (RelativePosition, Jigsaw, Colorization)):
        method = build_method(name, "tiny", 10)
        assert isinstance(method, cls) and method.data_sources == ("all",) and not method.has_classifier
        assert method.embed(torch.randn(3, 3, 32, 32)).shape == (3, method.backbone.feature_dim)


@pytest.mark.parametrize("name, hparams", [
    ("relative_position", dict(patch_size=10)), ("relative_position", dict(hidden_dim=0)),
    ("relative_position", dict(downsample_prob=1.5)), ("relative_position", dict(grid_shift=-1)),
    ("jigsaw", dict(tile_size=11)), ("jigsaw", dict(permutation_criterion="random")),
    ("colorization", dict(loss="l1")), ("colorization", dict(rebalance_mix=2.0)),
])
def test_bad_hyper_parameters_are_refused(name, hparams):
    with pytest.raises(ValueError):
        build_method(name, "tiny", 10, **hparams)


def test_colour_dropping_keeps_one_channel_per_patch():
    patches = torch.randn(200, 3, 8, 8, generator=torch.Generator().manual_seed(0)) + 5.0
    dropped = drop_colours(patches, torch.Generator().manual_seed(1))
    kept = (dropped - patches).abs().amax(dim=(2, 3)) < 1e-6                # [N, 3]
    assert torch.all(kept.sum(1) == 1)                                       # exactly one channel survives
    assert dropped[~kept[:, :, None, None].expand_as(dropped)].std() < 0.05  # the others are faint noise
    assert 0.25 < kept.float().mean(0).min() <= kept.float().mean(0).max() < 0.42   # each kept ~1/3 of the time


def test_a_third_of_the_patches_is_shrunk_to_between_2x2_and_7x7_and_regrown():
    """deepcontext's prep_image: 1 patch in 3 shrunk (pixel count uniform) and scaled back up. A patch
    regrown from s x s pixels is a bilinear blow-up of an s x s grid, so each channel has rank s."""
    patches = torch.randn(900, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = blur_some(patches, torch.Generator().manual_seed(1))
    changed = (out - patches).flatten(1).abs().amax(1) > 1e-9
    assert 0.28 < changed.float().mean() < 0.39                                  # about 1/3
    assert torch.equal(out[~changed], patches[~changed])                          # the rest untouched
    ranks = torch.linalg.matrix_rank(out[changed]).amin(1)                        # [changed], per patch
    counts = torch.bincount(ranks, minlength=9)
    assert counts[:2].sum() == 0 and counts[8] == 0 and torch.all(counts[2:8] > 0)   # sides 2..7, all drawn
    assert counts[7] > counts[2]                   # pixel count uniform: large sides more often than small
    assert torch.equal(blur_some(patches, torch.Generator().manual_seed(1), probability=0.0), patches)


def test_centred_and_scaled_patches_hide_brightness_and_contrast():
    patches = torch.rand(50, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = centre_and_scale(patches)
    torch.testing.assert_close(out.mean(dim=(-2, -1)), torch.zeros(50, 3, dtype=torch.float64))
    torch.testing.assert_close(out.pow(2).mean(dim=(1, 2, 3)).sqrt(), torch.ones(50, dtype=torch.float64))
    torch.testing.assert_close(centre_and_scale(3.0 * patches - 7.0), out)        # brighter, stronger: same


def test_relative_position_trunk_sees_patches_after_the_deepcontext_defences():
    # grid_shift=0: an enlarged image is already smooth, which would hide the blurred patches' rank drop
    method = build_method("relative_position", "tiny", 10, grid_shift=0).train()
    seen = []
    method.backbone.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    method.training_step(_batch(images), StepInfo(0, 0, 0.0, 1))
    patches, = seen                                                                # [2B, 3, 8, 8]
    assert patches.shape == (128, 3, 8, 8)
    rms = patches.pow(2).mean(dim=(1, 2, 3)).sqrt()
    torch.testing.assert_close(rms, torch.ones(128), atol=1e-4, rtol=0)           # fixed overall magnitude
    assert patches.mean(dim=(2, 3)).abs().max() < 1e-5                             # mean removed per channel
    channel_rms = patches.pow(2).mean(dim=(2, 3)).sqrt()                           # [2B, 3]
    assert torch.all((channel_rms > 0.5).sum(1) == 1)                              # one colour channel kept
    kept = patches[torch.arange(128), channel_rms.argmax(1)]                       # [2B, 8, 8]
    ranks = torch.linalg.matrix_rank(kept, rtol=1e-4)      # regrown from s x s pixels: rank s < 8
    assert 0.15 < (ranks < 8).float().mean() < 0.55                                # about a third blurred


def _frame_column_of_each_neighbour(grid_shift: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Column (in the original 32-px frame) that each neighbour patch's centre was cut from, and its label."""
    method = build_method("relative_position", "tiny", 10, grid_shift=grid_shift)
    columns = torch.arange(32, dtype=torch.float32).view(1, 1, 1, 32).expand(400, 3, 32, 32)   # pixel = its column
    _, neighbour, labels = method.cut(columns, torch.Generator().manual_seed(0))
    # the enlarged frame is a bilinear blow-up of a ramp, so a value still names its original column
    return neighbour[:, 0, 4, 3:5].mean(1), labels


def test_the_grid_is_cut_from_anywhere_in_the_frame_not_from_fixed_places():
    """On the 32-px image the 3x3 grid fills the frame, so each position would always come from the
    same place (±1 px) and the place alone would name the label. With the default grid_shift the
    places of the left and the middle column overlap; with grid_shift=0 they are far apart."""
    left_column, middle_column = (0, 3, 5), (1, 6)
    for grid_shift, overlap in ((16, True), (0, False)):
        centres, labels = _frame_column_of_each_neighbour(grid_shift)
        left = centres[torch.isin(labels, torch.tensor(left_column))]
        middle = centres[torch.isin(labels, torch.tensor(middle_column))]
        assert (left.max() > middle.min()) == overlap, (grid_shift, left.min(), left.max(), middle.min())
    centres, labels = _frame_column_of_each_neighbour(16)
    left = centres[torch.isin(labels, torch.tensor(left_column))]
    assert left.max() - left.min() > 8                               # each place spreads over ~ a grid step


def test_jigsaw_tiles_are_standardised_one_by_one():
    tiles = torch.rand(4, 9, 3, 8, 8) * torch.arange(1, 10).view(1, 9, 1, 1, 1)
    out = standardise_tiles(tiles)
    torch.testing.assert_close(out.mean(dim=(-3, -2, -1)), torch.zeros(4, 9), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(dim=(-3, -2, -1)), torch.ones(4, 9), atol=1e-3, rtol=0)
    torch.testing.assert_close(standardise_tiles(5.0 * tiles + 3.0), out, atol=1e-4, rtol=0)


def test_a_standardised_jigsaw_tile_keeps_its_colour_balance():
    """One mean and std per tile (bbrattoli/JigsawPuzzlePytorch): a reddish tile stays reddish.
    Standardising each channel apart would make all three channels look alike."""
    texture = torch.rand(1, 1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    reddish = torch.cat([0.6 + 0.3 * texture, 0.2 + 0.1 * texture, 0.1 + 0.1 * texture], dim=2)   # [1, 1, 3, 8, 8]
    out = standardise_tiles(reddish)[0, 0]
    red, green, blue = out.mean(dim=(-2, -1))
    assert red > 1.0 and green < -0.3 and blue < -0.3          # red stays above the others
    assert out[0].std() > 2 * out[1].std()                     # and keeps its stronger texture


def test_jigsaw_permutations_follow_the_hyper_parameters_and_are_not_saved():
    method = build_method("jigsaw", "tiny", 10, num_permutations=20, permutation_criterion="min_mean")
    assert method.permutations.shape == (20, 9) and method.permutation_head[-1].out_features == 20
    assert "permutations" not in method.state_dict()


def test_colorization_trunk_sees_only_lightness():
    # two images with the same L and different colours (in gamut, so the round trip is exact)
    lightness = torch.full((1, 1, 32, 32), 55.0)
    warm = lab_to_rgb(torch.cat([lightness, torch.full((1, 2, 32, 32), 12.0)], 1))
    cold = lab_to_rgb(torch.cat([lightness, torch.full((1, 2, 32, 32), -12.0)], 1))
    torch.testing.assert_close(rgb_to_lab(warm)[:, 0], rgb_to_lab(cold)[:, 0], atol=1e-3, rtol=0)
    assert (warm - cold).abs().max() > 0.05
    method = build_method("colorization", "tiny", 10).eval()
    torch.testing.assert_close(method.embed(normalize(warm)), method.embed(normalize(cold)), atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("loss", ["classification", "regression"])
def test_colorize_keeps_the_lightness_and_returns_displayable_images(loss):
    method = build_method("colorization", "tiny", 10, loss=loss).eval()
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    coloured = method.colorize(normalize(images))
    assert coloured.shape == (2, 3, 32, 32) and coloured.min() >= 0 and coloured.max() <= 1
    original_l = rgb_to_lab(images.float() / 255)[:, 0]
    assert (rgb_to_lab(coloured)[:, 0] - original_l).abs().mean() < 5.0     # only gamut clipping moves L
    out = method.train().training_step(_batch(images), StepInfo(0, 0, 0.0, 1))
    assert torch.isfinite(out.loss) and set(out.logs) == ({"bin_acc"} if loss == "classification" else {"ab_rmse"})


def test_colorization_prior_counts_the_pixels_seen_and_is_checkpointed():
    method = build_method("colorization", "tiny", 10).train()
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    assert method.bin_counts.sum() == 0
    method.training_step(_batch(images), StepInfo(0, 0, 0.0, 1))
    assert method.bin_counts.sum().item() == pytest.approx(4 * 8 * 8, rel=1e-4)   # one unit per output pixel
    weights = method.rebalancing_weights()
    common, rare = method.bin_counts.argmax(), method.bin_counts.argmin()
    assert weights[rare] > weights[common]                                        # rare colours weigh more
    clone = build_method("colorization", "tiny", 10)
    clone.load_state_dict(method.state_dict())
    torch.testing.assert_close(clone.rebalancing_weights(), method.rebalancing_weights())


def _two_colour_images(count: int) -> torch.Tensor:
    """uint8 images: red-ish left of column 14, blue-ish from column 14 on (the edge inside a 4x4 block)."""
    images = torch.empty(count, 3, 32, 32, dtype=torch.uint8)
    images[:, :, :, :14] = torch.tensor([200, 40, 40], dtype=torch.uint8).view(1, 3, 1, 1)
    images[:, :, :, 14:] = torch.tensor([40, 40, 200], dtype=torch.uint8).view(1, 3, 1, 1)
    return images


def test_subsampled_targets_keep_both_colours_of_an_edge():
    """The official net takes ab at every 4th pixel; averaging 4x4 blocks would mix the two colours
    at the block that straddles the edge into a third, duller one."""
    ab = rgb_to_lab(_two_colour_images(1).float() / 255)[:, 1:].double()
    red, blue = ab[0, :, 0, 0], ab[0, :, 0, 31]
    target = subsample_ab(ab, (8, 8))
    assert target.shape == (1, 2, 8, 8)
    distance_to_nearest = torch.minimum((target - red.view(1, 2, 1, 1)).norm(dim=1),
                                        (target - blue.view(1, 2, 1, 1)).norm(dim=1))
    assert distance_to_nearest.max() < 1e-9                          # only the two true colours
    averaged = torch.nn.functional.adaptive_avg_pool2d(ab, (8, 8))   # the course's former target
    assert torch.minimum((averaged - red.view(1, 2, 1, 1)).norm(dim=1),
                         (averaged - blue.view(1, 2, 1, 1)).norm(dim=1)).max() > 30


def test_colorization_step_trains_on_subsampled_colours_over_ten_bins(monkeypatch):
    seen = []
    original = colorization_module.soft_encode_ab

    def spy(ab, centers, neighbours, sigma):
        seen.append((ab.detach().clone(), neighbours))
        return original(ab, centers, neighbours, sigma)

    monkeypatch.setattr(colorization_module, "soft_encode_ab", spy)
    method = build_method("colorization", "tiny", 10).train()
    images = _two_colour_images(8)
    method.training_step(_batch(images, seed=3), StepInfo(0, 0, 0.0, 1))
    (target_ab, neighbours), = seen
    assert neighbours == 10                                             # NNEncLayer's NN = 10
    colours = rgb_to_lab(images[:1].float() / 255)[0, 1:, 0, [0, 31]].T   # [2 colours, 2]
    distance = (target_ab.permute(0, 2, 3, 1)[..., None, :] - colours).norm(dim=-1).amin(-1)
    assert distance.max() < 0.05     # every target is one of the two colours (crops and flips move the edge)
    targets = original(target_ab, method.centers, neighbours, method.sigma)
    assert torch.all((targets > 0).sum(1) == 10)


def test_grey_images_contribute_no_loss_and_no_gradient():
    grey_values = torch.randint(0, 256, (4, 1, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    grey = grey_values.expand(4, 3, 32, 32).contiguous()
    torch.manual_seed(0)
    method = build_method("colorization", "tiny", 10).train()
    loss = method.training_step(_batch(grey), StepInfo(0, 0, 0.0, 1)).loss
    loss.backward()
    assert loss.item() == 0.0
    assert all(p.grad is None or p.grad.abs().max() == 0 for p in method.parameters())
    assert method.bin_counts.sum() == 0                                 # nor do they enter the prior
    unmasked = build_method("colorization", "tiny", 10, mask_grey_images=False).train()
    assert unmasked.training_step(_batch(grey), StepInfo(0, 0, 0.0, 1)).loss.item() > 0.1


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_cli_trains_a_few_steps(name, tmp_path):
    out = tmp_path / name
    code = main(["train", "--method", name, "--data", "synthetic", "--labels", "50", "--steps", "3",
                 "--backbone", "tiny", "--batch-size", "16", "--train-subset", "200", "--test-subset", "100",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == name and metrics["steps"] == 3
    assert 0.0 <= metrics["knn_accuracy"] <= 1.0 and 0.0 <= metrics["linear_probe_accuracy"] <= 1.0
