"""A backbone with an extra exit: the sub-network that SelfCon contrasts against the full network.

SelfCon (Bae, Kim, Ko, Lee, Noh and Yun, AAAI 2023) attaches a small sub-network after an
intermediate stage. Both exits end in a feature vector; their projections are treated as two "views" of the same image,
so one forward pass gives a positive pair without a second augmentation.

Shapes: ``[B,3,32,32]`` → ``(backbone_features [B, D], [exit_features [B, D]])``.
"""
from __future__ import annotations

import torch
from torch import nn


class MultiExitNet(nn.Module):
    """Wraps a backbone with ``stem``/``stages``/``stage_channels`` and adds an exit after ``exit_after``.

    The exit is a strided 3×3 conv block per remaining stage (cheap compared with the real
    stages) that maps to the backbone's ``feature_dim``, then global average pooling.
    """

    def __init__(self, backbone: nn.Module, exit_after: int = 1) -> None:
        super().__init__()
        stages = getattr(backbone, "stages", None)
        if stages is None:
            raise ValueError("MultiExitNet needs a backbone with `stem`, `stages` and `stage_channels` "
                             "(ssl_course.models.resnet18_cifar() or small_net())")
        if not 0 <= exit_after < len(stages) - 1:
            raise ValueError(f"exit_after must be in [0, {len(stages) - 2}] for a backbone with "
                             f"{len(stages)} stages, got {exit_after}")
        self.backbone = backbone
        self.exit_after = exit_after
        self.feature_dim = backbone.feature_dim
        layers: list[nn.Module] = []
        channels = backbone.stage_channels[exit_after]
        for width in backbone.stage_channels[exit_after + 1:]:
            layers += [nn.Conv2d(channels, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            channels = width
        self.exit = nn.Sequential(*layers)

    def forward_exits(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(final_features [B,D], [sub_network_features [B,D]])``."""
        x = self.backbone.stem(images)
        branch = None
        for index, stage in enumerate(self.backbone.stages):
            x = stage(x)
            if index == self.exit_after:
                branch = self.exit(x)
        pool = nn.functional.adaptive_avg_pool2d
        return torch.flatten(pool(x, 1), 1), [torch.flatten(pool(branch, 1), 1)]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The final exit only: what evaluation uses."""
        return self.backbone(images)
