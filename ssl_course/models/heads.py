"""Projection and prediction heads: small MLPs on top of a backbone's features."""
from __future__ import annotations

from torch import nn


def mlp_head(in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2,
             batch_norm: bool = True, last_batch_norm: bool = False) -> nn.Sequential:
    """An MLP ``in_dim → hidden_dim → … → out_dim`` with BN + ReLU between layers.

    SimCLR/MoCo v2 use ``num_layers=2``; NNCLR's projector has 3 layers and ends with BN
    (``last_batch_norm=True``); prediction heads (NNCLR, BYOL-style) use 2 layers.
    ``num_layers=1`` gives a plain linear map.
    """
    sizes = {"in_dim": in_dim, "hidden_dim": hidden_dim, "out_dim": out_dim, "num_layers": num_layers}
    for name, value in sizes.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    layers: list[nn.Module] = []
    dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
    for index in range(num_layers):
        last = index == num_layers - 1
        layers.append(nn.Linear(dims[index], dims[index + 1], bias=not (batch_norm and (not last or last_batch_norm))))
        if not last:
            if batch_norm:
                layers.append(nn.BatchNorm1d(dims[index + 1]))
            layers.append(nn.ReLU())
        elif last_batch_norm:
            layers.append(nn.BatchNorm1d(dims[index + 1]))
    return nn.Sequential(*layers)
