"""Plots the notebooks share: training history, image grids, per-class accuracy, bar charts."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch


def reference_history(run) -> tuple[dict | None, str]:
    """The shipped reference run to draw beside a learner's run, and its caption.

    ``run`` is a run name or ``out_dir`` (see :mod:`ssl_course.reference`). Returns ``(None, caption)``
    when there is nothing to draw beside: no reference, or present mode (the run shown *is* the
    reference, and the caption says so).
    """
    from ssl_course import reference

    if run is None or not reference.has_reference(run):
        return None, ""
    caption = reference.describe(run)
    if reference.presenting():
        return None, caption
    return reference.load_reference(run)["history"], caption


def _draw_reference(axis, steps, values, label: str | None) -> None:
    axis.plot(steps, values, color="gray", linestyle="--", linewidth=1.2, label=label)


def plot_history(history, title: str | None = None, axes=None, reference=None):
    """Loss, learning rate and (when monitored) kNN accuracy against training step.

    ``history`` is a :class:`ssl_course.train.History` (or its ``to_dict()``). ``reference``: the
    run's name or ``out_dir``; when the course ships a reference of that run, its curves are drawn
    dashed beside yours, and the title says what the reference is (in present mode: that the curves
    shown are the reference run's). Returns the figure.
    """
    values = history if isinstance(history, dict) else history.to_dict()
    shipped, caption = reference_history(reference)
    monitored = bool(values["monitor_step"])
    if axes is None:
        figure, axes = plt.subplots(1, 3 if monitored else 2, figsize=(12 if monitored else 8, 3.4))
    else:
        figure = np.atleast_1d(axes)[0].figure
    axes = np.atleast_1d(axes)
    own = "your run" if shipped is not None else None
    axes[0].plot(values["step"], values["loss"], label=own)
    axes[0].set(xlabel="step", ylabel="loss", title="training loss")
    axes[1].plot(values["step"], values["lr"], color="tab:orange", label=own)
    axes[1].set(xlabel="step", ylabel="learning rate", title="schedule")
    if monitored:
        axes[2].plot(values["monitor_step"], values["monitor_knn"], marker="o", color="tab:green", label=own)
        axes[2].set(xlabel="step", ylabel="validation kNN accuracy", title="kNN monitor", ylim=(0, 1))
    if shipped is not None:
        _draw_reference(axes[0], shipped["step"], shipped["loss"], "reference")
        _draw_reference(axes[1], shipped["step"], shipped["lr"], "reference")
        if monitored and shipped["monitor_step"]:
            _draw_reference(axes[2], shipped["monitor_step"], shipped["monitor_knn"], "reference")
        for axis in axes:
            axis.legend(fontsize=9)
    heading = "\n".join(part for part in (title, caption) if part)
    if heading:
        figure.suptitle(heading)
    figure.tight_layout()
    return figure


def plot_logs(history, keys: Sequence[str], title: str | None = None, reference_lines: dict | None = None,
              ncols: int = 3, reference=None):
    """One small axis per logged quantity, each with its own y-scale, training step on x.

    Loss terms of different sizes (a cross-entropy near 2, a regulariser near -2.3, an accuracy in
    [0, 1]) drawn on one axis hide each other; here every key of ``history["logs"]`` gets its own
    panel. ``reference_lines`` maps a key to ``(value, label)`` drawn as a dashed line (e.g. the
    ME-MAX minimum ``-log K``). ``reference``: the run's name or ``out_dir``, as for
    :func:`plot_history` (the shipped reference's curves dashed beside yours). Returns the figure.
    """
    values = history if isinstance(history, dict) else history.to_dict()
    shipped, caption = reference_history(reference)
    missing = [key for key in keys if key not in values["logs"]]
    if missing:
        raise KeyError(f"keys {missing} are not in the history's logs; available: {sorted(values['logs'])}")
    ncols = min(ncols, len(keys))
    nrows = -(-len(keys) // ncols)
    figure, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.0 * nrows), squeeze=False)
    for axis, key in zip(axes.flat, keys):
        series = values["logs"][key]
        # a key first logged later than the others has fewer points: they are the LAST log points
        steps = values["step"][len(values["step"]) - len(series):] if len(values["step"]) >= len(series) \
            else range(len(series))
        axis.plot(list(steps), series, label="your run" if shipped is not None else None)
        if shipped is not None and key in shipped["logs"]:
            other = shipped["logs"][key]
            _draw_reference(axis, shipped["step"][len(shipped["step"]) - len(other):], other, "reference")
        if reference_lines and key in reference_lines:
            level, label = reference_lines[key]
            axis.axhline(level, color="gray", linestyle=":", linewidth=1, label=label)
        if axis.get_legend_handles_labels()[1]:
            axis.legend(fontsize=9)
        axis.set(xlabel="training step", ylabel=key, title=key)
    for axis in list(axes.flat)[len(keys):]:
        axis.set_visible(False)
    heading = "\n".join(part for part in (title, caption) if part)
    if heading:
        figure.suptitle(heading)
    figure.tight_layout()
    return figure


def to_display(images: torch.Tensor) -> np.ndarray:
    """``uint8 [N,3,H,W]`` or normalised float images → ``float [N,H,W,3]`` in [0, 1] for imshow."""
    if images.dtype == torch.uint8:
        array = images.float() / 255.0
    else:
        from ssl_course.data.augment import denormalize

        array = denormalize(images.float())
    return array.clamp(0, 1).permute(0, 2, 3, 1).detach().cpu().numpy()


def image_grid(images: torch.Tensor, nrow: int = 8, titles: Sequence[str] | None = None,
               scale: float = 1.2, suptitle: str | None = None):
    """Show images in a grid of ``nrow`` columns; returns the figure."""
    pictures = to_display(images)
    count = len(pictures)
    rows = max(1, int(np.ceil(count / nrow)))
    figure, axes = plt.subplots(rows, nrow, figsize=(nrow * scale, rows * scale * (1.25 if titles else 1)),
                                squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < count:
            axis.imshow(pictures[index], interpolation="nearest")
            if titles is not None:
                axis.set_title(str(titles[index]), fontsize=8)
    if suptitle:
        figure.suptitle(suptitle)
    figure.tight_layout()
    return figure


def plot_per_class_accuracy(accuracy: torch.Tensor | Sequence[float], class_names: Sequence[str],
                            label: str | None = None, axis=None):
    """Bar chart of per-class accuracy; call twice on the same ``axis`` to compare two models."""
    values = np.asarray(accuracy, dtype=float)
    if axis is None:
        _, axis = plt.subplots(figsize=(8, 3))
    series = len(axis.containers)  # bars already drawn: the second series sits beside the first
    axis.bar(np.arange(len(values)) - 0.2 + 0.4 * series, values, width=0.4, label=label)
    axis.set_xticks(np.arange(len(values)))
    axis.set_xticklabels(class_names, rotation=45, ha="right")
    axis.set(ylabel="accuracy", ylim=(0, 1))
    if label:
        axis.legend()
    return axis
