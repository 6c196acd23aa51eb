"""The machinery behind the scalar-loss exercise checkers (contrastive and NCE notebooks).

A checker runs the learner's function and the library's reference on a few random cases
(:class:`_Case`), compares them with a dtype-dependent tolerance, and prints either a success
line or the first failing case with both values and a hint: the hint of the first known wrong
variant (:class:`_Variant`) the learner's result matches, else a generic one. The failing
case's arguments are kept for :func:`last_failed_input`.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

_NUM_CASES = 6
_TOLERANCE = {  # (rtol, atol) per input dtype: float32 allows for a different summation order
    torch.float32: (1e-4, 1e-5),
    torch.float64: (1e-8, 1e-10),
}


@dataclass
class _Case:
    args: tuple[Any, ...]
    description: str
    dtype: torch.dtype


@dataclass
class _Variant:
    """A known wrong implementation and the hint to show when the learner's result matches it."""

    compute: Callable[..., Any]
    hint: str


@dataclass
class _Outcome:
    ok: bool
    lines: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Shared machinery
# --------------------------------------------------------------------------------------------
def _shape(t: Tensor) -> str:
    return "[" + ", ".join(str(s) for s in t.shape) + "]"


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _copy(arg: Any) -> Any:
    return arg.clone() if isinstance(arg, Tensor) else arg


def _close(a: Tensor, b: Tensor, dtype: torch.dtype) -> bool:
    rtol, atol = _TOLERANCE.get(dtype, (1e-4, 1e-5))
    if a.shape != b.shape:
        return False
    return bool(torch.allclose(a.double(), b.double(), rtol=rtol, atol=atol))


def _matching_hint(result: Tensor, case: _Case, variants: Sequence[_Variant]) -> str | None:
    for variant in variants:
        try:
            wrong = variant.compute(*case.args)
        except Exception:  # a variant that does not apply to this input (e.g. shapes)
            continue
        if isinstance(wrong, Tensor) and _close(result, wrong, case.dtype):
            return variant.hint
    return None


_last_failed_args: tuple[Any, ...] | None = None


def last_failed_input() -> tuple[Any, ...] | None:
    """The arguments of the last input a checker reported as failing (copies), to rerun by hand:
    ``fn(*last_failed_input())``."""
    return None if _last_failed_args is None else tuple(_copy(a) for a in _last_failed_args)


def _remember(case: _Case) -> None:
    global _last_failed_args
    _last_failed_args = tuple(_copy(a) for a in case.args)


def _report(case: _Case, lines: list[str]) -> None:
    if lines and lines[0].startswith(NOT_IMPLEMENTED):   # an untouched stub: no input to rerun
        print("\n".join(lines))
        return
    _remember(case)
    print("\n".join(lines if _RERUN in lines else [*lines, _RERUN]))


#: First words of the verdict on an exercise stub that still raises NotImplementedError.
NOT_IMPLEMENTED = "✗ not implemented yet"


def not_implemented_message(exercise: str = "") -> str:
    """The friendly verdict on a stub that still raises NotImplementedError (shared by every checker)."""
    where = f" ({exercise})" if exercise else ""
    return (f"{NOT_IMPLEMENTED}{where}: your function raised NotImplementedError. Replace the "
            "`raise NotImplementedError` line with your code, then run this cell again.")


_RERUN = ("    to rerun it: from ssl_course.exercises.contrastive import last_failed_input; "
          "your_fn(*last_failed_input())")


def _call(fn: Callable[..., Any], case: _Case, index: int) -> tuple[Any, _Outcome | None]:
    try:
        return fn(*[_copy(a) for a in case.args]), None
    except NotImplementedError:   # the exercise's stub, not yet filled in
        return None, _Outcome(False, [not_implemented_message()])
    except Exception as exc:  # the learner's code may raise anything; report it, don't crash
        _remember(case)
        frames = traceback.extract_tb(exc.__traceback__)
        where = ""
        if len(frames) > 1:  # frames[0] is this checker's call
            last = frames[-1]
            code = (last.line or "").strip()
            where = f"    at line {last.lineno} in {last.name}" + (f": {code}" if code else "")
        return None, _Outcome(
            False,
            [
                f"✗ your function raised {type(exc).__name__} on input {index + 1} of {_NUM_CASES} "
                f"({case.description}):",
                f"    {type(exc).__name__}: {exc}",
                *([where] if where else []),
                _RERUN,
            ],
        )


def _format_value(t: Tensor) -> str:
    if t.numel() == 1:
        return f"{t.item():.10g}"
    flat = t.detach().reshape(-1).double()
    shown = ", ".join(f"{v:.5g}" for v in flat[:6].tolist())
    return f"tensor of shape {_shape(t)}: [{shown}{', ...' if flat.numel() > 6 else ''}]"


def _run_scalar_checks(
    fn: Callable[..., Any],
    cases: Sequence[_Case],
    reference: Callable[..., Tensor],
    variants: Sequence[_Variant],
    generic_hint: str,
) -> bool:
    """Compare a learner's scalar loss with the library's on every case; print the verdict."""
    for index, case in enumerate(cases):
        expected = reference(*case.args)
        result, failure = _call(fn, case, index)
        if failure is None:
            failure = _judge_scalar(result, expected, case, index, variants, generic_hint)
        if failure is not None:
            _report(case, failure.lines)
            return False
    print(f"✓ correct on {len(cases)} inputs")
    return True


def _judge_scalar(
    result: Any,
    expected: Tensor,
    case: _Case,
    index: int,
    variants: Sequence[_Variant],
    generic_hint: str,
) -> _Outcome | None:
    where = f"input {index + 1} of {_NUM_CASES} ({case.description})"
    if not isinstance(result, Tensor):
        return _Outcome(False, [
            f"✗ on {where} your function returned {type(result).__name__} {result!r}, not a tensor.",
            "    hint: return the loss as a tensor (no .item()), so that loss.backward() works.",
        ])
    if result.numel() != 1:
        return _Outcome(False, [
            f"✗ on {where} your function returned a tensor of shape {_shape(result)}; "
            "expected a scalar.",
            "    hint: average the per-anchor losses with .mean() to get one number.",
        ])
    result = result.detach().reshape(())
    if torch.isnan(result):
        return _Outcome(False, [
            f"✗ on {where} your function returned NaN (expected {_format_value(expected)}).",
            "    hint: look for 0/0 (an anchor without positives) or exp() overflow "
            "(subtract the row maximum, or use torch.logsumexp / F.cross_entropy).",
        ])
    if _close(result, expected, case.dtype) and result.dtype == expected.dtype:
        return None
    lines = [
        f"✗ differs on {where}:",
        f"    your value:     {_format_value(result)} ({_dtype_name(result.dtype)})",
        f"    expected value: {_format_value(expected)} ({_dtype_name(expected.dtype)})",
    ]
    if result.dtype != expected.dtype and _close(result, expected, torch.float32):
        lines.append(
            f"    hint: the value is right but the dtype is not: compute in the inputs' dtype "
            f"({_dtype_name(case.dtype)}); avoid .float() / torch.tensor(...) without dtype=."
        )
    else:
        hint = _matching_hint(result, case, variants)
        lines.append(f"    hint: {hint if hint is not None else generic_hint}")
    return _Outcome(False, lines)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
