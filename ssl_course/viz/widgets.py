"""Interactive sliders that degrade gracefully.

In JupyterLab, :func:`interactive_plot` shows ipywidgets sliders and redraws on change. When the
notebook runs headless (the tests, ``SSL_COURSE_SMOKE=1``) or ipywidgets is missing, it draws
once with the default values, so every notebook still runs top to bottom.
"""
from __future__ import annotations

from typing import Any, Callable


def interactive_plot(draw: Callable[..., Any], **sliders: tuple[float, float, float, float]):
    """Call ``draw(**values)`` under sliders ``name=(min, max, step, default)``.

    Example: ``interactive_plot(show_softmax, temperature=(0.02, 2.0, 0.02, 0.5))``.
    """
    from ssl_course.config import smoke

    defaults = {}
    for name, spec in sliders.items():
        if len(spec) != 4:
            raise ValueError(f"slider {name!r} needs (min, max, step, default), got {spec!r}")
        low, high, step, default = spec
        if not low <= default <= high:
            raise ValueError(f"slider {name!r}: default {default} outside [{low}, {high}]")
        defaults[name] = default
    if smoke():
        return draw(**defaults)
    try:
        import ipywidgets as widgets
    except ImportError:
        return draw(**defaults)
    controls = {}
    for name, (low, high, step, default) in sliders.items():
        is_int = all(float(v).is_integer() for v in (low, high, step, default))
        slider = widgets.IntSlider if is_int else widgets.FloatSlider
        controls[name] = slider(min=low, max=high, step=step, value=default, description=name,
                                continuous_update=False)
    return widgets.interact(draw, **controls)
