"""Compare every method under the same budget, backbone and few-label split.

    python -m ssl_course compare --data cifar10 --labels 250 4000 --epochs-per-method 10 --out runs/compare

The budget is in epochs (default :data:`DEFAULT_EPOCHS_PER_METHOD`), so results do not depend on
the machine; ``--minutes-per-method`` remains for "what fits in my evening" comparisons.

For each label count, method and seed it trains one run in ``out/runs/<method>_<labels>_s<seed>/``
(see :mod:`ssl_course.experiment`), then writes:

* ``results.csv``: one row per method, label count and seed (status, accuracies, wall time, error);
* ``results.md``: a Markdown table of mean ± std over seeds;
* ``curves.png``: kNN accuracy against wall time, one line per method and label count;
* ``tsne.png``: one t-SNE panel per method, all on the same test images.

Interrupt it and run the same command again: finished runs are kept, an unfinished one resumes
from its checkpoint, and a run that crashed is recorded as failed without stopping the others.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from ssl_course.experiment import METRICS_NAME, Experiment, run_experiment

FORMAT_VERSION = 1
SETTINGS_NAME = "compare.json"
CSV_COLUMNS = ("method", "labels", "seed", "status", "test_accuracy", "knn_accuracy", "linear_probe_accuracy",
               "wall_time_seconds", "steps", "device", "error")
TSNE_IMAGES = 1000
#: The budget when neither --epochs-per-method nor --minutes-per-method is given: the notebooks' BUDGET_EPOCHS.
DEFAULT_EPOCHS_PER_METHOD = 10.0


def default_methods() -> list[str]:
    from ssl_course.methods import method_names

    return method_names()


def _check_settings(out: Path, settings: dict[str, Any]) -> None:
    """Refuse to mix results of another version or other settings into ``out``."""
    path = out / SETTINGS_NAME
    if path.exists():
        try:
            saved = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON ({error}); move the folder away or pick another --out") from error
        if saved.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{out} holds results from an incompatible version (format "
                             f"{saved.get('format_version')!r}, this is {FORMAT_VERSION}); use a new --out folder")
        fixed = ("data", "backbone", "minutes_per_method", "epochs_per_method", "train_subset", "test_subset")
        different = {key: (saved.get(key), settings[key]) for key in fixed if saved.get(key) != settings[key]}
        if different:
            raise ValueError(f"{out} was made with other settings {different} (saved, now); the comparison "
                             "is only fair under one budget: use a new --out folder")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2))


def run_comparison(out: str | Path, data: str = "synthetic", labels: Sequence[int] = (250, 4000),
                   methods: Sequence[str] | None = None, minutes_per_method: float | None = None,
                   epochs_per_method: float | None = None, seeds: Sequence[int] = (0,), backbone: str = "small",
                   train_subset: int | None = None, test_subset: int | None = None, device: str | None = None,
                   progress: bool = True, compile: bool | None = None) -> list[dict[str, Any]]:
    """Train and evaluate every (labels, method, seed); return the rows of ``results.csv``."""
    from ssl_course.methods import get_method_class

    methods = list(methods) if methods else default_methods()
    for name in methods:
        get_method_class(name)  # unknown names fail before anything trains
    if minutes_per_method is None and epochs_per_method is None:
        epochs_per_method = DEFAULT_EPOCHS_PER_METHOD
    for name, value in (("minutes_per_method", minutes_per_method), ("epochs_per_method", epochs_per_method)):
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")
    if not labels or not seeds:
        raise ValueError("give at least one label count and one seed")
    out = Path(out)
    settings = {"format_version": FORMAT_VERSION, "data": data, "backbone": backbone,
                "minutes_per_method": minutes_per_method, "epochs_per_method": epochs_per_method,
                "train_subset": train_subset, "test_subset": test_subset,
                "labels": list(labels), "methods": methods, "seeds": list(seeds)}
    _check_settings(out, settings)

    jobs = [(n, m, s) for n in labels for m in methods for s in seeds]
    rows = []
    bar = tqdm(jobs, desc="comparison", disable=not progress)
    for num_labels, method, seed in bar:
        bar.set_postfix(method=method, labels=num_labels, seed=seed)
        run_dir = out / "runs" / f"{method}_{num_labels}_s{seed}"
        rows.append(_run_one(run_dir, Experiment(method=method, data=data, labels=num_labels,
                                                 minutes=minutes_per_method, epochs=epochs_per_method,
                                                 backbone=backbone, seed=seed, device=device,
                                                 train_subset=train_subset, test_subset=test_subset,
                                                 progress=False, compile=compile)))
        write_reports(out, rows)
    bar.close()
    return rows


def _run_one(run_dir: Path, experiment: Experiment) -> dict[str, Any]:
    metrics_path = run_dir / METRICS_NAME
    failure_path = run_dir / "failed.json"
    if metrics_path.exists():
        metrics = json.loads(metrics_path.read_text())
        return _row(experiment, "ok", metrics)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        metrics = run_experiment(experiment, run_dir, resume=True)
        _save_tsne_features(run_dir, experiment)
        if failure_path.exists():
            failure_path.unlink()
        return _row(experiment, "ok", metrics)
    except Exception as error:  # one method's crash must not stop the others
        message = f"{type(error).__name__}: {error}"
        failure_path.write_text(json.dumps({"error": message, "traceback": traceback.format_exc()}, indent=2))
        return _row(experiment, "failed", {}, message)


def _row(experiment: Experiment, status: str, metrics: dict[str, Any], error: str = "") -> dict[str, Any]:
    row = {column: "" for column in CSV_COLUMNS}
    row.update(method=experiment.method, labels=experiment.labels, seed=experiment.seed, status=status, error=error)
    for key in ("test_accuracy", "knn_accuracy", "linear_probe_accuracy", "wall_time_seconds", "steps", "device"):
        if key in metrics:
            row[key] = metrics[key]
    return row


def _fixed_test_subset(data, count: int = TSNE_IMAGES) -> torch.Tensor:
    every = max(1, data.test_images.shape[0] // count)
    return torch.arange(0, data.test_images.shape[0], every)[:count]


def _save_tsne_features(run_dir: Path, experiment: Experiment) -> None:
    """Embed the same test images with the trained model so that the t-SNE grid can be drawn later."""
    from ssl_course.data import make_bundle
    from ssl_course.evaluate import extract_features
    from ssl_course.methods import build_method
    from ssl_course.train import load_checkpoint

    data = make_bundle(experiment.data, num_labels=experiment.labels, seed=experiment.seed,
                       train_subset=experiment.train_subset, test_subset=experiment.test_subset)
    method = build_method(experiment.method, experiment.backbone, data.num_classes, **experiment.hparams)
    method.load_state_dict(load_checkpoint(run_dir / "checkpoint.pt")["method"])
    method.eval()
    index = _fixed_test_subset(data)
    features = extract_features(method.embed, data.test_images[index])
    torch.save({"features": features, "labels": data.test_labels[index]}, run_dir / "tsne_features.pt")


def write_reports(out: str | Path, rows: list[dict[str, Any]]) -> None:
    """(Re)write results.csv and results.md from ``rows``; figures when matplotlib can draw them."""
    out = Path(out)
    temporary = out / "results.csv.tmp"
    with temporary.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    temporary.replace(out / "results.csv")
    (out / "results.md").write_text(markdown_table(rows))


def _mean_std(values: list[float]) -> str:
    if not values:
        return "—"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{100 * mean:.1f}"
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{100 * mean:.1f} ± {100 * std:.1f}"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Mean ± sample std over seeds (in %), one row per method, one column group per label count."""
    labels = sorted({int(r["labels"]) for r in rows})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    header = "| method | " + " | ".join(f"test acc @{n} | kNN @{n} | seeds @{n}" for n in labels) + " |"
    lines = [header, "|" + "---|" * (1 + 3 * len(labels))]
    for method in methods:
        cells = []
        for n in labels:
            chosen = [r for r in rows if r["method"] == method and int(r["labels"]) == n]
            ok = [r for r in chosen if r["status"] == "ok"]
            test = [float(r["test_accuracy"]) for r in ok if r["test_accuracy"] != ""]
            knn = [float(r["knn_accuracy"]) for r in ok if r["knn_accuracy"] != ""]
            failed = len(chosen) - len(ok)
            cells += [_mean_std(test), _mean_std(knn), f"{len(ok)}" + (f" ({failed} failed)" if failed else "")]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_curves(out: str | Path):
    """kNN accuracy against wall time for every finished run in ``out`` (seed 0); returns the figure."""
    import matplotlib.pyplot as plt

    out = Path(out)
    figure, axis = plt.subplots(figsize=(7, 4))
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
        if "test_accuracy" in final and history["seconds"]:
            # Runs shorter than one monitor interval have no line: their star carries the label.
            axis.scatter([history["seconds"][-1] / 60], [final["test_accuracy"]], marker="*", s=80,
                         color=color, label=None if values else name)
    axis.set(xlabel="wall time (minutes)", ylabel="accuracy", ylim=(0, 1),
             title="kNN monitor (lines) and final test accuracy (stars)")
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(out / "curves.png", dpi=120)
    return figure


def plot_tsne_grid(out: str | Path, labels: int | None = None, class_names: Sequence[str] | None = None):
    """One t-SNE panel per method (seed 0), all on the same test images; returns the figure."""
    import matplotlib.pyplot as plt

    from ssl_course.viz import plot_tsne

    out = Path(out)
    paths = sorted((out / "runs").glob("*_s0/tsne_features.pt"))
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
        plot_tsne(saved["features"], saved["labels"], class_names, title=path.parent.name.rsplit("_s", 1)[0],
                  axis=axis, legend=number == 0)  # one colour key is enough: every panel uses the same colours
    figure.tight_layout()
    figure.savefig(out / "tsne.png", dpi=120)
    return figure


def add_compare_parser(commands, add_common) -> None:
    """Register ``python -m ssl_course compare`` on the CLI's sub-command parser."""
    parser = commands.add_parser("compare", help="train every method under the same budget and compare")
    parser.add_argument("--labels", type=int, nargs="+", default=[250, 4000])
    parser.add_argument("--methods", nargs="+", default=None, help="default: every registered method")
    parser.add_argument("--epochs-per-method", type=float, default=None,
                        help=f"the budget (default: {DEFAULT_EPOCHS_PER_METHOD:g} epochs unless --minutes-per-method is given)")
    parser.add_argument("--minutes-per-method", type=float, default=None, help="a wall-clock budget instead")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", required=True)
    add_common(parser)
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from ssl_course.cli import compile_choice

    rows = run_comparison(args.out, data=args.data, labels=args.labels, methods=args.methods,
                          minutes_per_method=args.minutes_per_method, epochs_per_method=args.epochs_per_method,
                          seeds=args.seeds, backbone=args.backbone, train_subset=args.train_subset,
                          test_subset=args.test_subset, device=args.device, progress=not args.no_progress,
                          compile=compile_choice(args.compile))
    try:
        import matplotlib

        matplotlib.use("Agg")
        plot_curves(args.out)
        plot_tsne_grid(args.out)
    except FileNotFoundError as error:
        print(f"note: {error}")
    print(markdown_table(rows))
    failed = [r for r in rows if r["status"] != "ok"]
    for row in failed:
        print(f"FAILED {row['method']} @{row['labels']} seed {row['seed']}: {row['error']}")
    return 1 if failed and len(failed) == len(rows) else 0
