"""Small multiples: a slider's lesson as a static row of panels.

A slider needs a running kernel; a PDF, a projector or GitHub's notebook viewer shows nothing of
it. :func:`small_multiples` draws the same figure for a few values of one parameter side by side,
so the comparison a learner would make by moving the slider is on the page.

The drawing function receives the axis (or the column of axes) to draw on and the parameter as a
keyword, so one ``draw`` serves both the slider and the static row::

    def draw_softmax(axis, temperature):
        axis.bar(range(10), torch.softmax(scores / temperature, 0))
        axis.set(xlabel="candidate", ylabel="probability")

    small_multiples(draw_softmax, temperature=[0.05, 0.2, 1.0])
    plt.show()
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def small_multiples(draw: Callable[..., Any], *, axes_per_value: int = 1,
                    panel_size: tuple[float, float] = (3.6, 3.0), sharey: bool = True,
                    require_labels: bool = True, title: str | None = None,
                    **parameter: Sequence[Any]) -> Figure:
    """Draw ``draw(axis, name=value)`` once per value, in one row of panels; return the figure.

    Args:
        draw: ``draw(axis, **{name: value})``; with ``axes_per_value > 1`` it receives a tuple of
            that many axes (one column of the grid) instead of one axis.
        axes_per_value: panels drawn for each value (stacked in a column).
        panel_size: (width, height) of one panel in inches.
        sharey: share the y-axis along each row, so heights compare across values.
        require_labels: raise if ``draw`` leaves a panel without an x or a y label (a course rule:
            every axis says what it shows). Turn off for image panels.
        title: optional title above the whole row.
        parameter: exactly one ``name=[value, ...]``; each panel without a title of its own is
            titled ``name = value``.

    The caller shows the figure (``plt.show()``), as after any other figure.
    """
    name, values = _one_parameter(parameter)
    if axes_per_value < 1:
        raise ValueError(f"axes_per_value must be >= 1, got {axes_per_value}")
    figure, grid = plt.subplots(axes_per_value, len(values), squeeze=False, sharey="row" if sharey else False,
                                figsize=(panel_size[0] * len(values), panel_size[1] * axes_per_value))
    for column, value in enumerate(values):
        column_axes = tuple(grid[row, column] for row in range(axes_per_value))
        draw(column_axes[0] if axes_per_value == 1 else column_axes, **{name: value})
        if not column_axes[0].get_title():
            column_axes[0].set_title(f"{name} = {_format(value)}")
        if require_labels:
            for axis in column_axes:
                _check_labels(axis, name, value)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def _one_parameter(parameter: dict[str, Sequence[Any]]) -> tuple[str, list[Any]]:
    if len(parameter) != 1:
        raise TypeError("small_multiples varies exactly one parameter, e.g. "
                        f"small_multiples(draw, temperature=[0.1, 0.5, 1.0]); got {sorted(parameter) or 'none'}")
    (name, values), = parameter.items()
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a list of values to draw side by side, got {values!r}")
    values = list(values)
    if not values:
        raise ValueError(f"{name} needs at least one value to draw")
    return name, values


def _check_labels(axis, name: str, value: Any) -> None:
    missing = [which for which, label in (("x", axis.get_xlabel()), ("y", axis.get_ylabel())) if not label]
    if missing:
        raise ValueError(f"the panel for {name} = {_format(value)} has no {' or '.join(missing)} label: "
                         "set it in draw (axis.set(xlabel=..., ylabel=...)) or pass require_labels=False")


def _format(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
