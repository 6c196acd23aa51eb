"""Checker for MoCo's momentum (exponential-moving-average) update of the key encoder.

The learner writes ``fn(key_encoder, query_encoder, momentum)``, which must update the key
encoder's parameters *in place* to ``m·key + (1 - m)·query`` and change nothing else: not the
query encoder (the optimiser trains it), not the key encoder's buffers (batch-norm running
statistics: MoCo's key encoder updates them in its own forward passes, see
:meth:`ssl_course.methods.moco.MoCo.momentum_update`), and without recording an autograd graph.
The checker runs it on small encoders for several momenta and names the mistake it recognises.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ._checking import _format_value, not_implemented_message

__all__ = ["check_momentum_update"]

_SETTINGS = [(0.5, torch.float64), (0.9, torch.float32), (0.99, torch.float64), (0.999, torch.float32),
             (0.0, torch.float64), (0.75, torch.float32)]


def _encoder_pair(seed: int, dtype: torch.dtype) -> tuple[nn.Module, nn.Module]:
    """A key and a query encoder with different weights and different BN statistics."""
    generator = torch.Generator().manual_seed(seed)

    def build() -> nn.Module:
        net = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3)).to(dtype)
        with torch.no_grad():
            for tensor in [*net.parameters(), *net.buffers()]:
                if tensor.is_floating_point():
                    tensor.copy_(torch.randn(tensor.shape, generator=generator, dtype=dtype))
        return net

    key, query = build(), build()
    for parameter in key.parameters():
        parameter.requires_grad_(False)          # MoCo's key encoder gets no gradient
    return key, query


def _tensors(net: nn.Module, kind: str) -> list[torch.Tensor]:
    source = net.parameters() if kind == "parameters" else net.buffers()
    return [t.detach().clone() for t in source if t.is_floating_point()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor], dtype: torch.dtype) -> bool:
    rtol, atol = (1e-5, 1e-6) if dtype == torch.float32 else (1e-10, 1e-12)
    return all(torch.allclose(x, y, rtol=rtol, atol=atol) for x, y in zip(a, b))


def _diagnose(key0, query0, key1, query1, buffers0, buffers1, m, dtype, graph) -> str | None:
    """None when correct, else the message naming the mistake."""
    expected = [m * k + (1 - m) * q for k, q in zip(key0, query0)]
    if not _same(query0, query1, dtype):
        return ("the query encoder changed. Only the key encoder is averaged; the query encoder is "
                "trained by the optimiser. Check the order of the arguments: fn(key_encoder, query_encoder, m).")
    if not _same(buffers0, buffers1, dtype):
        return ("the key encoder's buffers (batch-norm running mean/var) changed. MoCo averages "
                "parameters only (net.parameters()), not net.buffers().")
    if graph:
        return ("the key encoder's parameters now carry an autograd graph. Do the update under "
                "torch.no_grad() (or decorate the function with @torch.no_grad()).")
    if _same(expected, key1, dtype):
        return None
    if _same(key0, key1, dtype):
        return ("the key encoder did not change. Write into the tensors in place (key.mul_(m).add_(query, "
                "alpha=1 - m), key.lerp_(query, 1 - m) or key.copy_(...)); `key = ...` only rebinds a name.")
    if _same([(1 - m) * k + m * q for k, q in zip(key0, query0)], key1, dtype):
        return ("m and 1 - m are swapped: the key keeps the share m of ITSELF, key ← m·key + (1-m)·query, "
                "so that it moves slowly when m is close to 1.")
    if _same(query0, key1, dtype):
        return "the key encoder is a copy of the query encoder: the momentum m was ignored."
    return ("the parameters differ from m·key + (1 - m)·query. Pair the parameters with "
            "zip(key_encoder.parameters(), query_encoder.parameters()) and apply the formula to each.")


def check_momentum_update(fn: Callable[[nn.Module, nn.Module, float], Any]) -> bool:
    """Check ``fn(key_encoder, query_encoder, momentum)`` (in place, returns nothing) on six cases."""
    for index, (momentum, dtype) in enumerate(_SETTINGS):
        key, query = _encoder_pair(900 + index, dtype)
        key0, query0 = _tensors(key, "parameters"), _tensors(query, "parameters")
        buffers0 = _tensors(key, "buffers")
        where = f"input {index + 1} of {len(_SETTINGS)} (momentum={momentum}, {str(dtype).replace('torch.', '')})"
        try:
            fn(key, query, momentum)
        except NotImplementedError:   # the exercise's stub, not yet filled in
            print(not_implemented_message())
            return False
        except Exception as exc:  # the learner's code may raise anything: report it
            print(f"✗ your function raised {type(exc).__name__} on {where}:\n    {type(exc).__name__}: {exc}")
            return False
        graph = any(p.grad_fn is not None for p in key.parameters())
        message = _diagnose(key0, query0, _tensors(key, "parameters"), _tensors(query, "parameters"),
                            buffers0, _tensors(key, "buffers"), momentum, dtype, graph)
        if message is not None:
            first = _tensors(key, "parameters")[0].reshape(-1)[:4]
            wanted = (momentum * key0[0] + (1 - momentum) * query0[0]).reshape(-1)[:4]
            print(f"✗ wrong on {where}:\n    first key weights after your update: {_format_value(first)}\n"
                  f"    expected:                            {_format_value(wanted)}\n    hint: {message}")
            return False
    print(f"✓ correct on {len(_SETTINGS)} inputs")
    return True


def reference_momentum_update(key_encoder: nn.Module, query_encoder: nn.Module, momentum: float) -> None:
    """The library's rule on two modules (what ``MoCo.momentum_update`` does), for the tests."""
    with torch.no_grad():
        for key, query in zip(key_encoder.parameters(), query_encoder.parameters()):
            key.lerp_(query.detach(), 1.0 - momentum)

