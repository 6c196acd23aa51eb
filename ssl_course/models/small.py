"""A fast small network for laptops and CPUs.

Three stages of ``conv → max-pool → BN → GELU`` followed by a residual 3×3 conv, in the spirit of
the fast CIFAR-10 training scripts (Page's ResNet-9 "DAWNBench" net and Keller Jordan's airbench):
most of the compute happens at low resolution, so it trains several times faster than
ResNet-18 and still reaches the high 80s in supervised CIFAR-10 accuracy.

``width`` scales every layer; ``small_net(width=32)`` has 1.9 M parameters (``feature_dim = 256``),
``small_net(width=64)`` has 7.7 M (``feature_dim = 512``), ``small_net(width=8)`` 0.12 M.
"""
from __future__ import annotations

import torch
from torch import nn

from .staged import StagedBackbone


def _conv_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.GELU())


class _Stage(nn.Module):
    """conv → 2×2 max-pool (halves the resolution) → a residual conv pair."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                                  nn.MaxPool2d(2), nn.BatchNorm2d(out_channels), nn.GELU())
        self.residual = nn.Sequential(_conv_bn(out_channels, out_channels), _conv_bn(out_channels, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(x)
        return x + self.residual(x)


class SmallNet(StagedBackbone):
    """Stem + three down-sampling stages + global pooling: ``[B,3,32,32]`` → ``[B, 8·width]``."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        if width < 4:
            raise ValueError(f"width must be >= 4, got {width}")
        widths = (2 * width, 4 * width, 8 * width)
        self.stem = _conv_bn(3, width)
        self.stages = nn.ModuleList([_Stage(width, widths[0]), _Stage(widths[0], widths[1]),
                                     _Stage(widths[1], widths[2])])
        self.stage_channels = widths
        self.feature_dim = widths[-1]


def small_net(width: int = 32) -> SmallNet:
    """The fast backbone used by smoke mode, CPU runs and the laptop-GPU default."""
    return SmallNet(width)
