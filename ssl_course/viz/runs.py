"""The runs of a notebook's "method against the baseline" cell, shown beside the course's reference runs.

:func:`ssl_course.experiment.run_methods` returns a run folder per method (in present mode: the
reference folders). :func:`plot_runs` draws every run's training curves and one method's logged
quantities, each beside its shipped reference (:mod:`ssl_course.reference`); :func:`print_reference_results`
says which final numbers the learner is looking at, or what the reference got.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from .plots import plot_history, plot_logs


def load_run_history(run_dir: str | Path) -> dict:
    """The training history (``history.json``) of a run folder, as a dict."""
    path = Path(run_dir) / "history.json"
    if not path.is_file():
        raise FileNotFoundError(f"no history.json in {run_dir}: give a run folder of run_methods or fit(out_dir=...)")
    return json.loads(path.read_text())


def plot_runs(run_dirs: Mapping[str, str | Path], logs_of: str | None = None, keys: Sequence[str] = (),
              title: str | None = None, reference_lines: dict | None = None) -> dict[str, dict]:
    """Training curves of every run, then the logged quantities ``keys`` of the run ``logs_of``.

    ``run_dirs`` maps a method's name to its run folder (as :func:`~ssl_course.experiment.run_methods`
    returns them); each figure draws the shipped reference of its run dashed beside it
    (:func:`plot_history` / :func:`plot_logs` with ``reference=``). Returns the histories by name.
    """
    if logs_of is not None and logs_of not in run_dirs:
        raise KeyError(f"logs_of={logs_of!r} is not one of the runs {sorted(run_dirs)}")
    histories = {name: load_run_history(folder) for name, folder in run_dirs.items()}
    for name, folder in run_dirs.items():
        plot_history(histories[name], title=name, reference=folder)
    if logs_of is not None:
        plot_logs(histories[logs_of], keys, title=title, reference_lines=reference_lines,
                  reference=run_dirs[logs_of])
    return histories


def print_reference_results(run_dirs: Mapping[str, str | Path], key: str = "test_accuracy",
                            label: str = "test accuracy") -> list[str]:
    """One line per run that has a shipped reference: in present mode what it is (the numbers shown
    are the reference's), otherwise the reference's ``key`` to compare with yours. Returns the lines."""
    from ssl_course import reference

    lines = []
    for name, folder in run_dirs.items():
        shipped = reference.load_reference(folder)
        if shipped is None:
            continue
        if reference.presenting():
            lines.append(f"{name}: the numbers shown are the course's {reference.describe(folder)}")
        elif shipped["metrics"] and key in shipped["metrics"]:
            lines.append(f"{name}: {label} of the course's {reference.describe(folder)}: "
                         f"{shipped['metrics'][key]:.3f}")
    for line in lines:
        print(line)
    return lines
