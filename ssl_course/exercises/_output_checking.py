"""The machinery behind the semi-supervised exercise checkers (functions with one or several
tensor outputs: probabilities, masks, mixed images and labels).

A checker calls the learner's function on fixed cases (:class:`_Case`), compares every output
with the library's within a dtype-dependent tolerance, and prints either a success line or the
first difference (which output, which entry, both values) followed by the exercise's hint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ._checking import not_implemented_message


@dataclass
class _Case:
    """One input of a checker: positional arguments, a readable description, the reference output."""

    description: str
    args: tuple
    expected: Any
    # Tensors whose row r is printed when output row r differs (kept small for readability).
    row_inputs: dict[str, Tensor] = field(default_factory=dict)


def _tolerances(dtype: torch.dtype) -> tuple[float, float]:
    """(rtol, atol) for comparing with a reference of this dtype."""
    return (1e-7, 1e-9) if dtype == torch.float64 else (1e-4, 1e-5)


def _fmt(value: Tensor) -> str:
    """Compact text of a (small) tensor."""
    value = value.detach().cpu()
    if value.ndim == 0:
        return f"{value.item():.6g}"
    if value.numel() > 12:
        flat = value.flatten()[:12]
        return "[" + ", ".join(f"{v:.5g}" for v in flat.tolist()) + ", ...]"
    return "[" + ", ".join(f"{v:.5g}" for v in value.flatten().tolist()) + "]"


def _as_tensor(value: Any) -> Tensor | None:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return torch.tensor(float(value))
    return None


def _compare_one(name: str, yours: Any, expected: Tensor, case: _Case) -> str | None:
    """Return None when equal, else a message that shows both values."""
    yours_tensor = _as_tensor(yours)
    if yours_tensor is None:
        return f"  {name}: your function returned {type(yours).__name__}, expected a torch.Tensor"
    if yours_tensor.dtype == torch.bool:
        yours_tensor = yours_tensor.to(expected.dtype)
    if not yours_tensor.is_floating_point():
        yours_tensor = yours_tensor.to(expected.dtype)
    expected_shape = tuple(expected.shape)
    your_shape = tuple(yours_tensor.shape)
    if your_shape != expected_shape:
        # A scalar returned as a 1-element tensor is fine.
        if not (yours_tensor.numel() == 1 and expected.numel() == 1):
            return (
                f"  {name}: your output has shape {list(your_shape)}, expected shape {list(expected_shape)}\n"
                f"    yours:    {_fmt(yours_tensor)}\n    expected: {_fmt(expected)}"
            )
        yours_tensor = yours_tensor.reshape(expected.shape)
    rtol, atol = _tolerances(expected.dtype)
    ours = yours_tensor.detach().cpu().double()
    reference = expected.detach().cpu().double()
    close = torch.isclose(ours, reference, rtol=rtol, atol=atol)
    if bool(close.all()):
        return None
    if reference.ndim == 0:
        lines = [f"  {name}:"]
        for input_name, tensor in case.row_inputs.items():
            lines.append(f"    {input_name} = {_fmt(tensor)}")
        lines.append(f"    yours:    {_fmt(ours)}")
        lines.append(f"    expected: {_fmt(reference)}")
        return "\n".join(lines)
    # Show the first row (sample) that differs, and the inputs of that row.
    bad_row = int((~close).reshape(close.shape[0], -1).any(dim=1).nonzero()[0])
    lines = [f"  {name}: first difference in row {bad_row}"]
    for input_name, tensor in case.row_inputs.items():
        lines.append(f"    {input_name}[{bad_row}] = {_fmt(tensor[bad_row])}")
    lines.append(f"    yours:    {_fmt(ours[bad_row])}")
    lines.append(f"    expected: {_fmt(reference[bad_row])}")
    return "\n".join(lines)


def _compare(yours: Any, expected: Any, output_names: tuple[str, ...], case: _Case) -> str | None:
    if isinstance(expected, tuple):
        if not isinstance(yours, (tuple, list)) or len(yours) != len(expected):
            return (
                f"  your function should return a tuple of {len(expected)} tensors "
                f"({', '.join(output_names)}), got {type(yours).__name__}"
                + (f" of length {len(yours)}" if isinstance(yours, (tuple, list)) else "")
            )
        for name, your_part, expected_part in zip(output_names, yours, expected):
            problem = _compare_one(name, your_part, expected_part, case)
            if problem is not None:
                return problem
        return None
    return _compare_one(output_names[0], yours, expected, case)


def _clone(value: Any) -> Any:
    # The learner may modify inputs in place; give it copies so the next case is unaffected.
    return value.clone() if isinstance(value, Tensor) else value


def _run_checks(
    exercise: str,
    learner_fn: Callable[..., Any],
    cases: list[_Case],
    hint: str,
    output_names: tuple[str, ...] = ("output",),
    select: Callable[[Any], Any] | None = None,
) -> bool:
    total = len(cases)
    for number, case in enumerate(cases, start=1):
        try:
            yours = learner_fn(*[_clone(arg) for arg in case.args])
            if select is not None:
                yours = select(yours)
        except NotImplementedError:   # the exercise's stub, not yet filled in
            print(not_implemented_message(exercise))
            return False
        except Exception as error:  # noqa: BLE001 - any learner error is reported, not raised
            print(f"✗ {exercise}: your function raised {type(error).__name__}: {error}")
            print(f"  on input {number} of {total}: {case.description}")
            print(f"  hint: {hint}")
            return False
        problem = _compare(yours, case.expected, output_names, case)
        if problem is not None:
            print(f"✗ {exercise} differs from the reference on input {number} of {total}: {case.description}")
            print(problem)
            print(f"  hint: {hint}")
            return False
    print(f"✓ correct on {total} inputs")
    return True
