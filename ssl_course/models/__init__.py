"""Backbones and heads. Every backbone maps normalised ``[B,3,32,32]`` images to ``[B, feature_dim]``."""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .attention import PrototypeAttention
from .gan import Generator, JointDiscriminator, LatentHead
from .heads import mlp_head
from .multi_exit import MultiExitNet
from .resnet import CifarResNet, resnet18_cifar
from .small import SmallNet, small_net
from .staged import StagedBackbone

#: Backbone names accepted by :func:`build_backbone`, the CLI and the notebooks.
BACKBONES: dict[str, Callable[[], nn.Module]] = {
    "resnet18": resnet18_cifar,
    "small": lambda: small_net(32),
    "small64": lambda: small_net(64),
    "tiny": lambda: small_net(8),
}


def build_backbone(name: str) -> nn.Module:
    """Build a backbone by name; ``ValueError`` listing the valid names otherwise."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}: choose one of {sorted(BACKBONES)}")
    return BACKBONES[name]()


__all__ = ["BACKBONES", "build_backbone", "mlp_head", "MultiExitNet", "CifarResNet", "resnet18_cifar",
           "SmallNet", "small_net", "StagedBackbone", "PrototypeAttention", "Generator", "JointDiscriminator",
           "LatentHead"]
