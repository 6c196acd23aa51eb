"""CIFAR ResNet-18: the ImageNet ResNet-18 with a 3×3 stride-1 stem and no max-pool.

On 32×32 images the ImageNet stem (7×7 stride-2 conv + max-pool) would shrink the picture to 8×8
before the first residual block; every CIFAR self-supervised paper (SimCLR's CIFAR appendix,
SupCon, solo-learn) replaces it with a single 3×3 convolution, as here.

Shapes: ``[B, 3, 32, 32]`` normalised images → ``[B, 512]`` features (``feature_dim = 512``).
"""
from __future__ import annotations

import torch
from torch import nn

from .staged import StagedBackbone


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a shortcut; the shortcut is a 1×1 conv when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class CifarResNet(StagedBackbone):
    """A ResNet built from ``stem`` + ``stages`` + global average pooling (run by
    :class:`~ssl_course.models.staged.StagedBackbone`); ``stage_channels[i]`` is the width after
    stage ``i``."""

    def __init__(self, blocks_per_stage: tuple[int, ...] = (2, 2, 2, 2),
                 widths: tuple[int, ...] = (64, 128, 256, 512)) -> None:
        super().__init__()
        if len(blocks_per_stage) != len(widths):
            raise ValueError(f"blocks_per_stage {blocks_per_stage} and widths {widths} must have the same length")
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        stages, in_channels = [], widths[0]
        for index, (num_blocks, width) in enumerate(zip(blocks_per_stage, widths)):
            stride = 1 if index == 0 else 2
            layers = [BasicBlock(in_channels, width, stride)]
            layers += [BasicBlock(width, width) for _ in range(num_blocks - 1)]
            stages.append(nn.Sequential(*layers))
            in_channels = width
        self.stages = nn.ModuleList(stages)
        self.stage_channels = tuple(widths)
        self.feature_dim = widths[-1]


def resnet18_cifar() -> CifarResNet:
    """ResNet-18 for 32×32 images (11.2 M parameters, ``feature_dim = 512``)."""
    return CifarResNet((2, 2, 2, 2), (64, 128, 256, 512))
