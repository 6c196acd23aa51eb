"""Interactive sliders that redraw a figure, with a plain drawing where widgets cannot exist.

In a notebook, :func:`interactive_plot` shows one ipywidgets slider per argument above an output
area and redraws the figure there whenever a slider is released. Smoke mode keeps the sliders
(only training is shrunk), so the tests draw through the same code a learner uses. Outside
IPython, or without ipywidgets, it draws once with the default values.

The figure reaches the output area by setting the area's ``outputs`` from the kernel, not by
drawing inside ``with output:``. Drawing inside it makes a headless runner (nbclient: ``jupyter
nbconvert --execute``, papermill, the web site's build) answer every captured output with a
message on the kernel's shell channel while it waits for the cell's reply there, and that send can
swallow the reply's wake-up: the run then sits idle until the cell timeout (jupyter/nbclient#312;
``tools/repro_stall.py`` shows it).
"""
from __future__ import annotations

import traceback
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
    controls = {name: _make_slider(widgets, name, *spec) for name, spec in sliders.items()}
    output = widgets.Output()

    def redraw(_change=None) -> BaseException | None:
        outputs, failure = _draw_captured(draw, {name: control.value for name, control in controls.items()})
        output.outputs = outputs   # one state update, kernel to front end: no reply expected
        return failure

    for control in controls.values():
        control.observe(redraw, names="value")
    display(widgets.VBox([*controls.values(), output]))
    failure = redraw()
    if failure is not None:
        raise RuntimeError(f"{getattr(draw, '__name__', 'the figure')} failed at the slider defaults "
                           f"{defaults}: {failure!r} (traceback in the figure's area)") from failure
    return None


def _draw_captured(draw: Callable[..., Any], values: dict[str, float]) -> tuple[tuple[dict, ...], Exception | None]:
    """Run ``draw(**values)`` and return what it printed and displayed as notebook outputs, and its error.

    The outputs are nbformat output dicts (``stream``, ``display_data``), the form an Output widget
    stores; an exception becomes a ``stderr`` stream with its traceback, as the output area would
    show it, and is returned instead of raised.
    """
    from IPython.utils.capture import capture_output
    from ipywidgets.widgets.interaction import show_inline_matplotlib_plots

    failure = None
    with capture_output() as captured:
        try:
            draw(**values)
            show_inline_matplotlib_plots()   # a figure the drawing left open, not shown
        except Exception as error:  # noqa: BLE001 - shown below the sliders; the first drawing re-raises it
            failure = error
    outputs: list[dict] = []
    if captured.stdout:
        outputs.append({"output_type": "stream", "name": "stdout", "text": captured.stdout})
    outputs += [{"output_type": "display_data", "data": shown.data, "metadata": shown.metadata or {}}
                for shown in captured.outputs]
    stderr = captured.stderr + ("".join(traceback.format_exception(failure)) if failure is not None else "")
    if stderr:
        outputs.append({"output_type": "stream", "name": "stderr", "text": stderr})
    return tuple(outputs), failure
