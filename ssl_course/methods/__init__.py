"""Trainable methods. Each file in this folder defines one :class:`Method` subclass and registers it
with :func:`register`; every module here is imported on first use, so adding a method means adding
one file.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from torch import nn

from .base import Batch, Method, OptimizerSpec, StepInfo, StepOutput

METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make ``cls`` available as ``build_method(cls.name, ...)``."""
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise ValueError(f"two methods are registered as {cls.name!r}")
    METHODS[cls.name] = cls
    return cls


def _discover() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base" and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def method_names() -> list[str]:
    """Names accepted by :func:`build_method` and ``python -m ssl_course train --method``."""
    _discover()
    return sorted(METHODS)


def get_method_class(name: str) -> type[Method]:
    names = method_names()
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}: choose one of {names}")
    return METHODS[name]


def build_method(name: str, backbone: nn.Module | str, num_classes: int, **hparams: Any) -> Method:
    """Build a registered method around ``backbone`` (a module, or a name from ``BACKBONES``)."""
    cls = get_method_class(name)
    accepted = set(cls.hyperparameter_names())
    unknown = sorted(set(hparams) - accepted)
    if unknown:
        raise ValueError(f"method {name!r} has no hyper-parameter(s) {unknown}; it accepts {sorted(accepted)}")
    backbone_name = backbone if isinstance(backbone, str) else None
    if isinstance(backbone, str):
        from ssl_course.models import build_backbone

        backbone = build_backbone(backbone)
    method = cls(backbone, num_classes, **hparams)
    method.backbone_name = backbone_name   # recorded in a reference run's reference.json (None: a module given)
    return method


__all__ = ["Batch", "Method", "OptimizerSpec", "StepInfo", "StepOutput", "METHODS", "register", "method_names",
           "get_method_class", "build_method"]
