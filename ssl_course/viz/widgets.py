"""Interactive sliders that redraw a figure, with a plain drawing where widgets cannot exist.

In a notebook, :func:`interactive_plot` shows one ipywidgets slider per argument above an output
area and redraws the figure there whenever a slider is released. Smoke mode keeps the sliders
(only training is shrunk), so the tests draw through the same code a learner uses. Outside
IPython, or without ipywidgets, it draws once with the default values.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Slider labels such as "temperature" are shown whole instead of being cut to "temperat…".
SLIDER_STYLE = {"description_width": "initial"}
SLIDER_WIDTH = "520px"


def _check_sliders(sliders: dict[str, tuple[float, float, float, float]]) -> dict[str, float]:
    defaults = {}
    for name, spec in sliders.items():
        if len(spec) != 4:
            raise ValueError(f"slider {name!r} needs (min, max, step, default), got {spec!r}")
        low, high, step, default = spec
        if not low <= default <= high:
            raise ValueError(f"slider {name!r}: default {default} outside [{low}, {high}]")
        if step <= 0:
            raise ValueError(f"slider {name!r}: step must be positive, got {step}")
        defaults[name] = default
    return defaults


def _make_slider(widgets, name: str, low: float, high: float, step: float, default: float):
    is_int = all(float(v).is_integer() for v in (low, high, step, default))
    slider = widgets.IntSlider if is_int else widgets.FloatSlider
    return slider(min=low, max=high, step=step, value=default, description=name, continuous_update=False,
                  style=SLIDER_STYLE, layout=widgets.Layout(width=SLIDER_WIDTH))


def interactive_plot(draw: Callable[..., Any], **sliders: tuple[float, float, float, float]):
    """Call ``draw(**values)`` under sliders ``name=(min, max, step, default)`` and show them.

    Example: ``interactive_plot(show_softmax, temperature=(0.02, 2.0, 0.02, 0.5))``.
    In a notebook it displays the sliders and the figure and returns ``None`` (so the cell does
    not echo the widget twice); an error in the first drawing is raised, so a notebook run
    top to bottom stops on it. Elsewhere it returns what ``draw`` returns.
    """
    defaults = _check_sliders(sliders)
    try:
        import ipywidgets as widgets
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return draw(**defaults)
    if get_ipython() is None:
        return draw(**defaults)
    from ipywidgets.widgets.interaction import show_inline_matplotlib_plots

    controls = {name: _make_slider(widgets, name, *spec) for name, spec in sliders.items()}
    output = widgets.Output()

    def redraw(_change=None) -> BaseException | None:
        failure = None
        with output:  # an exception inside is shown in the output area, and swallowed by it
            output.clear_output(wait=True)
            try:
                draw(**{name: control.value for name, control in controls.items()})
                show_inline_matplotlib_plots()
            except Exception as error:
                failure = error
                raise
        return failure

    for control in controls.values():
        control.observe(redraw, names="value")
    display(widgets.VBox([*controls.values(), output]))
    failure = redraw()
    if failure is not None:
        raise RuntimeError(f"{getattr(draw, '__name__', 'the figure')} failed at the slider defaults "
                           f"{defaults}: {failure!r} (traceback above)") from failure
    return None
