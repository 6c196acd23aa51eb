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
from ssl_course.methods.base import Batch, StepInfo
from ssl_course.methods.colorization import Colorization
from ssl_course.methods.jigsaw import Jigsaw, standardise_tiles
from ssl_course.methods.relative_position import RelativePosition, drop_colours

NAMES = ("relative_position", "jigsaw", "colorization")


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


def test_jigsaw_tiles_are_standardised_one_by_one():
    tiles = torch.rand(4, 9, 3, 8, 8) * torch.arange(1, 10).view(1, 9, 1, 1, 1)
    out = standardise_tiles(tiles)
    torch.testing.assert_close(out.mean(dim=(-2, -1)), torch.zeros(4, 9, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(dim=(-2, -1)), torch.ones(4, 9, 3), atol=1e-3, rtol=0)


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
