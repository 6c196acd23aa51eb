"""Checkers for the AET / En-AET notebook exercises (``02_pretext_tasks`` for AET, ``09_enaet`` for En-AET).

Each checker runs the learner's function and the library's (``ssl_course.losses.transformation``)
on 6 fixed random inputs. When the answers differ it also runs the usual wrong versions and, if
one of them matches the learner's output, names that mistake.

    from ssl_course.exercises import check_aet_loss
    check_aet_loss(my_aet_loss)
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ssl_course.losses.transformation import aet_loss, transformation_consistency_loss

from ._checking import _dtype_name
from ._output_checking import _Case, _clone, _run_checks

__all__ = ["check_aet_loss", "check_transformation_consistency"]

_DTYPES = (torch.float32, torch.float64)

AET_HINT = ("square the difference between predicted and true parameters and average over every entry "
            "(rows AND parameters), as nn.MSELoss does.")
KL_HINT = ("KL(q || p): sum over classes of q * (log q − log_softmax(logits)), entries with q = 0 count 0, "
           "then the mean over rows. The guess q is the target, the transformed copy's prediction p is "
           "what is trained.")

# The usual mistakes: (what to tell the learner, the wrong function).
AET_MISTAKES: list[tuple[str, Callable[[Tensor, Tensor], Tensor]]] = [
    ("you summed over the parameters instead of averaging (a factor P too large)",
     lambda p, t: (p - t).pow(2).sum(1).mean()),
    ("you forgot to square: that is the mean absolute error",
     lambda p, t: (p - t).abs().mean()),
    ("you took the root: that is the RMSE, not the MSE",
     lambda p, t: (p - t).pow(2).mean().sqrt()),
    ("you summed over the batch instead of averaging",
     lambda p, t: (p - t).pow(2).mean(1).sum()),
]
KL_MISTAKES: list[tuple[str, Callable[[Tensor, Tensor], Tensor]]] = [
    ("your KL is the wrong way round: KL(p || q) instead of KL(q || p)",
     lambda z, q: (F.softmax(z, 1) * (F.log_softmax(z, 1) - torch.log(q))).sum(1).mean()),
    (("you dropped the q·log q term: that is the cross-entropy H(q, p), which differs from the KL by the "
      "entropy of q"),
     lambda z, q: -(q * F.log_softmax(z, 1)).sum(1).mean()),
    (("you averaged over classes as well ('mean' reduction) instead of summing over classes "
      "('batchmean')"),
     lambda z, q: (q * (torch.log(q) - F.log_softmax(z, 1))).mean()),
    (("you used softmax probabilities where log-probabilities belong (F.kl_div expects log p as its "
      "first argument)"),
     lambda z, q: F.kl_div(F.softmax(z, 1), q, reduction="batchmean")),
]


def _aet_cases() -> list[_Case]:
    generator = torch.Generator().manual_seed(1101)
    cases = []
    for index, (n, p) in enumerate([(4, 8), (3, 6), (5, 5), (2, 4), (6, 4), (1, 8)]):
        dtype = _DTYPES[index % 2]
        predicted = (torch.rand(n, p, generator=generator, dtype=torch.float64) * 2 - 1).to(dtype)
        true = (torch.rand(n, p, generator=generator, dtype=torch.float64) * 2 - 1).to(dtype)
        cases.append(_Case(f"predicted, true of shape [{n}, {p}] ({_dtype_name(dtype)})", (predicted, true),
                           aet_loss(predicted, true), {"predicted": predicted, "true": true}))
    return cases


def _kl_cases() -> list[_Case]:
    generator = torch.Generator().manual_seed(1102)
    cases = []
    for index, (n, k) in enumerate([(4, 3), (3, 10), (5, 2), (2, 4), (6, 5), (1, 3)]):
        dtype = _DTYPES[index % 2]
        logits = (torch.randn(n, k, generator=generator, dtype=torch.float64) * 2).to(dtype)
        q = torch.softmax(torch.randn(n, k, generator=generator, dtype=torch.float64) * 3, 1).to(dtype)
        cases.append(_Case(f"logits, q of shape [{n}, {k}] ({_dtype_name(dtype)})", (logits, q),
                           transformation_consistency_loss(logits, q), {"logits": logits, "q": q}))
    return cases


def _name_the_mistake(fn: Callable[..., Any], cases: list[_Case],
                      mistakes: list[tuple[str, Callable[..., Tensor]]]) -> None:
    """After a failed check: if the learner's outputs equal one wrong version on every case, say which."""
    try:
        outputs = [fn(*[_clone(arg) for arg in case.args]) for case in cases]
    except Exception:  # noqa: BLE001 - the failure was already reported
        return
    for message, wrong in mistakes:
        try:
            if all(isinstance(out, Tensor) and torch.allclose(out.detach().double().reshape(()),
                                                              wrong(*case.args).detach().double(),
                                                              rtol=1e-4, atol=1e-6)
                   for out, case in zip(outputs, cases)):
                print(f"  the mistake: {message}.")
                return
        except Exception:  # noqa: BLE001, S112 - a shape the wrong version cannot take: not this mistake
            continue


def check_aet_loss(fn: Callable[[Tensor, Tensor], Tensor]) -> bool:
    """Check ``fn(predicted [N, P], true [N, P]) -> scalar`` (AET's mean squared parameter error)."""
    cases = _aet_cases()
    passed = _run_checks("aet_loss", fn, cases, AET_HINT, output_names=("loss",))
    if not passed:
        _name_the_mistake(fn, cases, AET_MISTAKES)
    return passed


def check_transformation_consistency(fn: Callable[[Tensor, Tensor], Tensor]) -> bool:
    """Check ``fn(logits [N, K], q [N, K]) -> scalar`` (En-AET's KL(q || softmax(logits)), batch mean)."""
    cases = _kl_cases()
    passed = _run_checks("transformation_consistency", fn, cases, KL_HINT, output_names=("loss",))
    if not passed:
        _name_the_mistake(fn, cases, KL_MISTAKES)
    return passed
