"""Figures of a comparison folder written by :func:`ssl_course.compare.run_comparison`.

``plot_curves`` draws every method's kNN monitor (on the validation split) against wall time;
``plot_tsne_grid`` draws one t-SNE panel per method on the same test images. Both read seed 0's runs in ``out/runs/``.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from ssl_course.compare import TSNE_FEATURES_NAME
from ssl_course.experiment import METRICS_NAME

from .tsne import plot_tsne


def plot_curves(out: str | Path):
    """kNN accuracy against wall time for every finished run in ``out`` (seed 0); returns the figure."""
    out = Path(out)
    figure, axis = plt.subplots(figsize=(10, 4.5))
    axis.set_prop_cycle(color=plt.cm.tab20.colors)        # 13 methods: the default 10 colours repeat
    for history_path in sorted((out / "runs").glob("*_s0/history.json")):
        history = json.loads(history_path.read_text())
        name = history_path.parent.name.rsplit("_s", 1)[0]
        times = [t / 60 for t in history["monitor_seconds"]]
        values = history["monitor_knn"]
        metrics_path = history_path.parent / METRICS_NAME
        final = json.loads(metrics_path.read_text()) if metrics_path.exists() else history.get("final", {})
        color = None
        if values:
            line, = axis.plot(times, values, marker=".", label=name)
            color = line.get_color()
        # the lines are validation numbers, so are the stars (test only for a run without a validation split)
        accuracy = final.get("val_accuracy", final.get("test_accuracy"))
        if accuracy is not None and history["seconds"]:
            # Runs shorter than one monitor interval have no line: their star carries the label.
            axis.scatter([history["seconds"][-1] / 60], [accuracy], marker="*", s=80,
                         color=color, label=None if values else name)
    axis.set(xlabel="wall time (minutes)", ylabel="validation accuracy", ylim=(0, 1),
             title="kNN monitor (lines) and final accuracy (stars)")
    if axis.get_legend_handles_labels()[0]:
        # beside the axis, not over it: with every method there are 21 entries, readable on a projector
        axis.legend(fontsize=9, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    figure.tight_layout()
    figure.savefig(out / "curves.png", dpi=120, bbox_inches="tight")
    return figure


def plot_tsne_grid(out: str | Path, labels: int | None = None, class_names: Sequence[str] | None = None):
    """One t-SNE panel per method (seed 0), all on the same test images; returns the figure."""
    out = Path(out)
    paths = sorted((out / "runs").glob(f"*_s0/{TSNE_FEATURES_NAME}"))
    if labels is not None:
        paths = [p for p in paths if p.parent.name.rsplit("_s", 1)[0].endswith(f"_{labels}")]
    if not paths:
        raise FileNotFoundError(f"no finished runs with t-SNE features under {out / 'runs'}")
    columns = min(4, len(paths))
    rows = math.ceil(len(paths) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.2 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for number, (axis, path) in enumerate(zip(axes.flat, paths)):
        saved = torch.load(path, weights_only=True)
        axis.axis("on")
        # One colour key is enough (every panel uses the same colours), inside: below is the next row.
        plot_tsne(saved["features"], saved["labels"], class_names, title=path.parent.name.rsplit("_s", 1)[0],
                  axis=axis, legend=number == 0, legend_below=False)
    figure.tight_layout()
    figure.savefig(out / "tsne.png", dpi=120)
    return figure
