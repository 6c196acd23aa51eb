"""Compare every method under the same budget, backbone and few-label split.

    python -m ssl_course compare --data cifar10 --labels 250 4000 --epochs-per-method 10 --out runs/compare

The budget is in epochs (default :data:`DEFAULT_EPOCHS_PER_METHOD`), so results do not depend on
the machine; ``--minutes-per-method`` remains for "what fits in my evening" comparisons.

(the options are parsed in :mod:`ssl_course.cli`; the figures are drawn by
:func:`ssl_course.viz.plot_curves` and :func:`ssl_course.viz.plot_tsne_grid`).

For each label count, method and seed it trains one run in ``out/runs/<method>_<labels>_s<seed>/``
(see :mod:`ssl_course.experiment`), then writes:

* ``results.csv``: one row per method, label count and seed (status, accuracies, wall time, error);
* ``results.md``: a Markdown table of mean ± std over seeds;
* ``curves.png``: kNN accuracy against wall time, one line per method and label count;
* ``tsne.png``: one t-SNE panel per method, all on the same test images.

Interrupt it and run the same command again: finished runs are kept, an unfinished one resumes
from its checkpoint, and a run that crashed is recorded as failed without stopping the others.

Present and record mode (:mod:`ssl_course.reference`) treat a whole comparison as one reference run,
named by the last part of ``out``: record mode trains every run (each capped like any training) and
writes ``results/<out name>/`` (``compare.json``, ``results.csv``, ``results.md``, ``reference.json``
and, per run, ``runs/<method>_<labels>_s<seed>/`` with its metrics, history and a small sample of
t-SNE features, no weights); present mode trains nothing and copies that folder into ``out``.
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import shutil
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ssl_course import reference
from ssl_course.data.splits import evenly_spaced
from ssl_course.experiment import METRICS_NAME, Experiment, check_budget, load_trained, run_experiment

FORMAT_VERSION = 2   # 2: validation split, knn_accuracy on the labelled bank
SETTINGS_NAME = "compare.json"
TSNE_FEATURES_NAME = "tsne_features.pt"
#: metrics.json keys copied into results.csv (validation beside test; see ssl_course.evaluate for each one)
METRIC_COLUMNS = ("val_accuracy", "test_accuracy", "val_knn_accuracy", "knn_accuracy",
                  "val_knn_all_labels_accuracy", "knn_all_labels_accuracy", "val_linear_probe_accuracy",
                  "linear_probe_accuracy", "wall_time_seconds", "eval_seconds", "steps", "device")
CSV_COLUMNS = ("method", "labels", "seed", "status", *METRIC_COLUMNS, "error")
TSNE_IMAGES = 1000
#: Record mode: the t-SNE features a reference comparison keeps per run (the first ones, in half precision).
REFERENCE_TSNE_IMAGES = 300
#: Experiment fields that run_comparison sets for each run itself (or that make no sense for every method).
NOT_SHARED = ("method", "labels", "seed", "epochs", "minutes", "steps", "hparams", "progress")
#: Shared settings that may differ when a comparison resumes: they change speed, not what is measured.
MAY_CHANGE_ON_RESUME = ("device", "compile", "amp")
#: The budget when neither --epochs-per-method nor --minutes-per-method is given: the notebooks' BUDGET_EPOCHS.
DEFAULT_EPOCHS_PER_METHOD = 10.0


def default_methods() -> list[str]:
    from ssl_course.methods import method_names

    return method_names()


def shared_settings() -> list[str]:
    """The :class:`Experiment` fields that every run of a comparison shares (``data``, ``backbone``...)."""
    return [f.name for f in fields(Experiment) if f.name not in NOT_SHARED]


def _check_settings(out: Path, settings: dict[str, Any], write: bool = True) -> None:
    """Refuse to mix results of another version or other settings into ``out``."""
    path = out / SETTINGS_NAME
    if path.exists():
        try:
            saved = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{path} is not valid JSON ({error}); move the folder away or pick another --out"
            ) from error
        if saved.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{out} holds results from an incompatible version (format "
                             f"{saved.get('format_version')!r}, this is {FORMAT_VERSION}); use a new --out folder")
        fixed = [key for key in (*shared_settings(), "minutes_per_method", "epochs_per_method")
                 if key not in MAY_CHANGE_ON_RESUME]
        different = {key: (saved.get(key), settings[key]) for key in fixed if saved.get(key) != settings[key]}
        if different:
            raise ValueError(f"{out} was made with other settings {different} (saved, now); the comparison "
                             "is only fair under one budget: use a new --out folder")
    if write:
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings, indent=2))


def run_comparison(out: str | Path, labels: Sequence[int] = (250, 4000), methods: Sequence[str] | None = None,
                   minutes_per_method: float | None = None, epochs_per_method: float | None = None,
                   seeds: Sequence[int] = (0,), progress: bool = True, **shared: Any) -> list[dict[str, Any]]:
    """Train and evaluate every (labels, method, seed); return the rows of ``results.csv``.

    ``**shared`` are the :class:`Experiment` fields every run shares (:func:`shared_settings`:
    ``data``, ``backbone``, ``train_subset``, ``test_subset``, ``device``, ``batch_size``...).
    ``progress`` shows one bar over the runs (the runs themselves train without one).
    """
    from ssl_course.methods import get_method_class

    unknown = sorted(set(shared) - set(shared_settings()))
    if unknown:
        raise ValueError(f"run_comparison got unknown setting(s) {unknown}: the settings every run shares are "
                         f"{shared_settings()}; labels, methods, seeds and the budget have their own arguments")
    methods = list(methods) if methods else default_methods()
    for name in methods:
        get_method_class(name)  # unknown names fail before anything trains
    if minutes_per_method is None and epochs_per_method is None:
        epochs_per_method = DEFAULT_EPOCHS_PER_METHOD
    check_budget(minutes_per_method=minutes_per_method, epochs_per_method=epochs_per_method)
    if not labels or not seeds:
        raise ValueError("give at least one label count and one seed")
    out = Path(out)
    every_run = Experiment(method=methods[0], **shared)  # the defaults of the settings not given
    settings = {"format_version": FORMAT_VERSION, **{key: getattr(every_run, key) for key in shared_settings()},
                "minutes_per_method": minutes_per_method, "epochs_per_method": epochs_per_method,
                "labels": list(labels), "methods": methods, "seeds": list(seeds)}
    if reference.presenting():
        return _present_comparison(out, settings)
    _check_settings(out, settings)

    jobs = [(n, m, s) for n in labels for m in methods for s in seeds]
    rows = []
    start = time.perf_counter()
    bar = tqdm(jobs, desc="comparison", disable=not progress)
    for num_labels, method, seed in bar:
        bar.set_postfix(method=method, labels=num_labels, seed=seed)
        run_dir = out / "runs" / f"{method}_{num_labels}_s{seed}"
        experiment = Experiment(method=method, labels=num_labels, seed=seed, minutes=minutes_per_method,
                                epochs=epochs_per_method, progress=False, **shared)
        if reference.recording():
            with _references_inside(reference.reference_dir(out) / "runs"):
                rows.append(_run_one(run_dir, experiment))
            _record_comparison(out, run_dir, rows, time.perf_counter() - start)
        else:
            rows.append(_run_one(run_dir, experiment))
        write_reports(out, rows)
    bar.close()
    return rows


def _present_comparison(out: Path, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Present mode: copy the shipped reference comparison of ``out``'s name into ``out``; return its rows."""
    shipped = reference.reference_dir(out)
    if not (shipped / SETTINGS_NAME).is_file():
        raise reference.missing_reference_error(out)
    _check_settings(shipped, settings, write=False)   # the same settings, or a clear error
    if out.resolve() != shipped.resolve():
        shutil.copytree(shipped, out, dirs_exist_ok=True)   # figures are then drawn into out, not into results/
    with (out / "results.csv").open() as stream:
        return list(csv.DictReader(stream))


@contextlib.contextmanager
def _references_inside(folder: Path) -> Iterator[None]:
    """Record mode: each run's reference lands in ``folder`` (inside the comparison's), not beside the notebooks'."""
    previous = os.environ.get(reference.RESULTS_ENV)
    os.environ[reference.RESULTS_ENV] = str(folder)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(reference.RESULTS_ENV, None)
        else:
            os.environ[reference.RESULTS_ENV] = previous


def _record_comparison(out: Path, run_dir: Path, rows: list[dict[str, Any]], seconds: float) -> None:
    """Record mode: update the reference comparison ``results/<out name>/`` after one more run."""
    shipped = reference.reference_dir(out)
    run_reference = shipped / "runs" / run_dir.name
    features = run_dir / TSNE_FEATURES_NAME
    if run_reference.is_dir() and features.is_file():
        saved = torch.load(features, weights_only=True)
        keep = evenly_spaced(len(saved["labels"]), REFERENCE_TSNE_IMAGES, device=saved["labels"].device)
        torch.save({"features": saved["features"][keep].half(), "labels": saved["labels"][keep]},
                   run_reference / TSNE_FEATURES_NAME)
        (run_reference / "embedding.npz").unlink(missing_ok=True)   # the t-SNE sample above replaces it
    shutil.copy2(out / SETTINGS_NAME, shipped / SETTINGS_NAME)
    write_reports(shipped, rows)
    runs = [json.loads(path.read_text()) for path in sorted((shipped / "runs").glob(f"*/{reference.REFERENCE_FILE}"))]
    budget = {key: value for key, value in json.loads((out / SETTINGS_NAME).read_text()).items()
              if key in ("minutes_per_method", "epochs_per_method", "methods", "labels", "seeds")}
    reference.write_reference_info(out, steps=sum(run["steps"] for run in runs), seconds=seconds, budget=budget,
                                   capped=any(run["capped"] for run in runs), history=None,
                                   device=reference.forced_device() or torch.device("cpu"),
                                   backbone=json.loads((out / SETTINGS_NAME).read_text()).get("backbone"))


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
    for key in METRIC_COLUMNS:
        if metrics.get(key) is not None:
            row[key] = metrics[key]
    return row


def _save_tsne_features(run_dir: Path, experiment: Experiment) -> None:
    """Embed the same test images with the trained model so that the t-SNE grid can be drawn later."""
    from ssl_course.evaluate import extract_features

    method, data = load_trained(run_dir, device=experiment.device)
    index = evenly_spaced(data.test_images.shape[0], TSNE_IMAGES, device=data.test_images.device)
    features = extract_features(method.embed, data.test_images[index])
    torch.save({"features": features.cpu(), "labels": data.test_labels[index].cpu()}, run_dir / TSNE_FEATURES_NAME)


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
    """Mean ± sample std over seeds (in %), one row per method, one column group per label count:
    validation and test accuracy, validation and test kNN accuracy (labelled images as the bank)."""
    labels = sorted({int(r["labels"]) for r in rows})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    header = "| method | " + " | ".join(f"val acc @{n} | test acc @{n} | val kNN @{n} | kNN @{n} | seeds @{n}"
                                       for n in labels) + " |"
    lines = [header, "|" + "---|" * (1 + 5 * len(labels))]
    for method in methods:
        cells = []
        for n in labels:
            chosen = [r for r in rows if r["method"] == method and int(r["labels"]) == n]
            ok = [r for r in chosen if r["status"] == "ok"]
            failed = len(chosen) - len(ok)
            cells += [_mean_std([float(r[key]) for r in ok if r.get(key, "") != ""])
                      for key in ("val_accuracy", "test_accuracy", "val_knn_accuracy", "knn_accuracy")]
            cells.append(f"{len(ok)}" + (f" ({failed} failed)" if failed else ""))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
