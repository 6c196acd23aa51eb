"""Backbones expose feature_dim and map CIFAR-sized images to it; heads and the multi-exit net."""
from __future__ import annotations

import pytest
import torch

from ssl_course.models import BACKBONES, MultiExitNet, build_backbone, mlp_head, resnet18_cifar, small_net


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbones_map_images_to_feature_dim(name):
    model = build_backbone(name).eval()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, model.feature_dim)


def test_resnet18_has_a_cifar_stem():
    model = resnet18_cifar()
    first = model.stem[0]
    assert first.kernel_size == (3, 3) and first.stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    assert 11.0e6 < sum(p.numel() for p in model.parameters()) < 11.3e6


def test_unknown_backbone_lists_choices():
    with pytest.raises(ValueError, match="choose one of"):
        build_backbone("vgg")


def test_mlp_head_shapes_and_validation():
    head = mlp_head(16, 32, 8, num_layers=3, last_batch_norm=True)
    assert head(torch.randn(4, 16)).shape == (4, 8)
    assert isinstance(head[-1], torch.nn.BatchNorm1d)
    with pytest.raises(ValueError):
        mlp_head(16, 0, 8)


def test_multi_exit_returns_two_feature_vectors_and_gradients_reach_both():
    net = MultiExitNet(small_net(8), exit_after=1)
    final, exits = net.forward_exits(torch.randn(3, 3, 32, 32))
    assert final.shape == exits[0].shape == (3, 64)
    (final.sum() + exits[0].sum()).backward()
    assert net.exit[0].weight.grad is not None
    with pytest.raises(ValueError, match="exit_after"):
        MultiExitNet(small_net(8), exit_after=5)
