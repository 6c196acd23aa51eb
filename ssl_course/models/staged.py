"""What every backbone here is: a stem, a list of stages, then global average pooling.

Both :class:`~ssl_course.models.resnet.CifarResNet` and :class:`~ssl_course.models.small.SmallNet`
build the layers; this base class runs them. Exposing the stages (not only the pooled features) is
what lets :class:`~ssl_course.models.multi_exit.MultiExitNet` branch off after any stage and CPC
read the feature maps.
"""
from __future__ import annotations

import torch
from torch import nn


class StagedBackbone(nn.Module):
    """Base class: subclasses set ``stem``, ``stages`` (an ``nn.ModuleList``), ``stage_channels``
    (the width after each stage) and ``feature_dim`` (the width of the last stage)."""

    stem: nn.Module
    stages: nn.ModuleList
    stage_channels: tuple[int, ...]
    feature_dim: int

    def forward_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps after every stage: ``[B, C_i, H_i, W_i]`` for each stage ``i``."""
        maps, x = [], self.stem(images)
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` → ``[B, feature_dim]`` (the last stage, global average pooled)."""
        x = self.stem(images)
        for stage in self.stages:
            x = stage(x)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
