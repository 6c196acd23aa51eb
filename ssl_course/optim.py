r"""Optimisers the engine builds: SGD, Adam, AdamW (PyTorch's) and LARS (written here).

LARS (You, Gitman & Ginsburg 2017, "Large Batch Training of Convolutional Networks",
arXiv:1708.03888) gives every weight tensor its own step size, proportional to how large the
tensor is compared with its gradient, so that no layer moves too far relative to its size when the
batch (and with it the learning rate) is large. SimCLR and PAWS train with it. For a tensor
:math:`w` with gradient :math:`\nabla` in an adapted group, one step is

.. math::

    g = \nabla + \lambda w, \qquad
    r = \eta \, \frac{\lVert w \rVert}{\lVert \nabla \rVert + \lambda \lVert w \rVert + \epsilon}
        \ (r = 1 \text{ when } \lVert w \rVert = 0 \text{ or } \lVert \nabla \rVert = 0), \\
    v \leftarrow \mu v + \mathrm{lr}\, r\, g, \qquad
    w \leftarrow w - v \quad (\text{Nesterov: } w \leftarrow w - (\mu v + \mathrm{lr}\, r\, g))

with trust coefficient :math:`\eta` (``trust_coefficient``, 0.001 in SimCLR's and PAWS's code),
weight decay :math:`\lambda` and momentum :math:`\mu`. Conventions, as in the official code:

* the trust ratio's denominator is the LARS paper's :math:`\lVert\nabla\rVert + \lambda\lVert w\rVert`,
  as in PAWS (``suncet/src/sgd.py``'s ``LARS`` wrapper); SimCLR's TensorFlow ``lars_optimizer.py``
  uses :math:`\lVert\nabla + \lambda w\rVert` instead, a small difference in the same spirit;
* the learning rate sits inside the momentum buffer (``v`` accumulates ``lr``-scaled steps), as in
  both SimCLR's and PAWS's code; PyTorch's SGD (and lightly's LARS) multiply the buffer by the lr
  instead, which is the same for a constant lr and differs slightly while the lr changes;
* biases and normalisation parameters (the 1-D tensors) are excluded from adaptation and weight
  decay: the engine puts them in a group with ``lars_adaptation=False`` and ``weight_decay=0``
  (SimCLR's ``exclude_from_weight_decay`` / ``exclude_from_layer_adaptation``, PAWS's
  ``LARS_exclude``).

The step never reads a value back to the host (the "both norms positive" test is a
``torch.where``), so it does not stall a GPU's launch queue.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import torch
from torch import nn

#: Optimiser names :func:`build_optimizer` accepts.
OPTIMIZERS = ("sgd", "adamw", "adam", "lars")


class LARS(torch.optim.Optimizer):
    """Layer-wise adaptive rate scaling on top of SGD with momentum (formula in the module docstring).

    Args:
        params: parameters or parameter groups. A group may set ``lars_adaptation=False`` to skip
            the trust ratio (biases and normalisation parameters), and its own ``weight_decay``.
        lr: learning rate.
        momentum: :math:`\\mu` (0 disables the buffer).
        weight_decay: :math:`\\lambda`, added to the gradient before the trust ratio is applied.
        nesterov: Nesterov momentum.
        trust_coefficient: :math:`\\eta`.
        eps: keeps the trust ratio finite.
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 nesterov: bool = False, trust_coefficient: float = 0.001, eps: float = 1e-8) -> None:
        if not lr >= 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        if not trust_coefficient > 0:
            raise ValueError(f"trust_coefficient must be > 0, got {trust_coefficient}")
        if nesterov and momentum == 0:
            raise ValueError("nesterov=True needs a momentum > 0")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov,
                        trust_coefficient=trust_coefficient, eps=eps, lars_adaptation=True)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            decay, momentum = group["weight_decay"], group["momentum"]
            for parameter in group["params"]:
                if parameter.grad is None:
                    continue
                gradient = parameter.grad
                # 1. g = ∇ + λw
                update = gradient.add(parameter, alpha=decay) if decay else gradient.clone()
                # 2. r = η‖w‖ / (‖∇‖ + λ‖w‖ + ε), or 1 when a norm is zero
                if group["lars_adaptation"]:
                    weight_norm = torch.linalg.vector_norm(parameter)                  # scalar
                    gradient_norm = torch.linalg.vector_norm(gradient)                 # scalar
                    trust = group["trust_coefficient"] * weight_norm / (
                        gradient_norm + decay * weight_norm + group["eps"])
                    trust = torch.where((weight_norm > 0) & (gradient_norm > 0), trust, torch.ones_like(trust))
                    update.mul_(trust)
                update.mul_(group["lr"])
                # 3. v ← μv + lr·r·g ; w ← w − v (Nesterov: w ← w − (μv + lr·r·g))
                if momentum:
                    state = self.state[parameter]
                    if "momentum_buffer" not in state:
                        buffer = state["momentum_buffer"] = update.clone()
                    else:
                        buffer = state["momentum_buffer"]
                        buffer.mul_(momentum).add_(update)
                    update = update.add(buffer, alpha=momentum) if group["nesterov"] else buffer
                parameter.sub_(update)
        return loss


@dataclass(frozen=True)
class OptimizerSettings:
    """Every setting of one optimiser, resolved (no ``None``): what :func:`build_optimizer` needs
    and what a run records (``lr`` is the peak learning rate of the schedule)."""

    name: str
    lr: float
    weight_decay: float
    momentum: float
    nesterov: bool
    betas: tuple[float, float] = (0.9, 0.999)
    decay_biases_and_norms: bool = False
    start_lr_fraction: float = 0.0     # the schedule's first lr, as a fraction of ``lr``
    final_lr_fraction: float = 0.0     # the schedule's last lr, as a fraction of ``lr``

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.name!r}: choose one of {list(OPTIMIZERS)}")
        for name in ("start_lr_fraction", "final_lr_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    def record(self) -> dict:
        """JSON-ready settings (what ``metrics.json`` reports under ``"optimizer"``)."""
        values = asdict(self)
        values["betas"] = list(self.betas)
        if self.name in ("adam", "adamw"):
            del values["momentum"], values["nesterov"]
        else:
            del values["betas"]
        for name in ("start_lr_fraction", "final_lr_fraction"):   # recorded only when the shape is not the usual one
            if not values[name]:
                del values[name]
        return values


def build_optimizer(parameters: Iterable[nn.Parameter], settings: OptimizerSettings) -> torch.optim.Optimizer:
    """The optimiser ``settings`` describe, over ``parameters``, in two groups: the weights, and the
    1-D parameters (biases, normalisation scales) which get no weight decay and no LARS adaptation
    unless ``settings.decay_biases_and_norms`` (standard practice since ResNet; SimCLR, PAWS)."""
    parameters = list(parameters)
    if not parameters:
        raise ValueError("an optimiser needs at least one parameter: check the method's optimizer_specs()")
    if settings.decay_biases_and_norms:
        weights, biases_and_norms = parameters, []
    else:
        weights = [parameter for parameter in parameters if parameter.ndim > 1]
        biases_and_norms = [parameter for parameter in parameters if parameter.ndim <= 1]
    groups = [{"params": weights, "weight_decay": settings.weight_decay},
              {"params": biases_and_norms, "weight_decay": 0.0}]
    if settings.name == "lars":
        groups[1]["lars_adaptation"] = False
        return LARS(groups, lr=settings.lr, momentum=settings.momentum, nesterov=settings.nesterov)
    if settings.name == "adamw":
        return torch.optim.AdamW(groups, lr=settings.lr, betas=settings.betas)
    if settings.name == "adam":
        return torch.optim.Adam(groups, lr=settings.lr, betas=settings.betas)
    return torch.optim.SGD(groups, lr=settings.lr, momentum=settings.momentum, nesterov=settings.nesterov)
