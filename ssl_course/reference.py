"""Reference runs that ship with the course, and the three modes a notebook can run in.

``SSL_COURSE_MODE`` (one switch for every notebook) says what a training cell does:

* ``learn`` (the default): train, as a learner does. Where the course ships a reference run of the
  same cell, the notebooks draw it beside the learner's own run (:func:`load_reference`).
* ``present``: train nothing. :func:`ssl_course.train.fit` loads the reference run's weights and
  history from ``results/<run name>/`` instead of training, :func:`ssl_course.evaluate.evaluate_method`
  returns the stored metrics of that run, and :func:`ssl_course.experiment.run_experiment` returns its
  ``metrics.json``: a whole notebook runs in about a minute on any laptop, with real curves, tables and
  t-SNE plots, for a reading group or a projector.
* ``record``: how the reference runs are made (``tools/record_reference.py``). Every training cell
  trains as in ``learn`` mode but stops after at most ``$SSL_COURSE_RECORD_MINUTES`` minutes (default
  :data:`DEFAULT_RECORD_MINUTES`) and writes what ``present`` mode needs into ``results/``, with the
  device, date, budget and steps it really had (:func:`describe` turns them into a figure caption).

A run is named by the last part of its ``out_dir`` (for example ``04_simclr_cifar10_250_tiny``), so
the name is the same in every mode. Presentation uses the CPU, and so does recording unless
``$SSL_COURSE_RECORD_DEVICE`` names a GPU (:func:`forced_device`). A notebook chooses its backbone
with :func:`notebook_backbone`: the ``tiny`` one on a CPU, the ``small`` one on a GPU, so a GPU
recording writes ``..._small`` references beside the CPU's ``..._tiny`` ones. Present mode shows a
notebook's ``small`` references when a GPU recording of the whole notebook exists (its marker
``recorded_<notebook>_small.json``, :func:`recorded_notebook`), else the ``tiny`` ones.

What a reference folder holds (all small enough for git; ``tests/test_reference.py`` checks the total):

* ``reference.json``: device, backbone, date, the budget the cell asked for, the recording cap, the
  steps and seconds the run had, the command that made it;
* ``history.json``: the :class:`ssl_course.train.History` (curves);
* ``weights.pt``: the trained method's ``state_dict`` in half precision (float tensors), only for runs
  whose later cells need the trained network (``TrainConfig(reference_weights=True)``, the default of
  :func:`ssl_course.train.fit`);
* ``evaluations.json``: the metrics each :func:`~ssl_course.evaluate.evaluate_method` call computed;
* ``metrics.json`` and ``embedding.npz`` for runs made by :func:`~ssl_course.experiment.run_experiment`
  (the format of :mod:`ssl_course.results`).

Beside the run folders, ``recorded_<notebook>_<backbone>.json`` (:func:`write_recording_marker`)
says that a recording of the whole notebook finished, on which device, and which runs it needs.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from pathlib import Path
from typing import Any

import torch

from ssl_course.config import MODE_ENV, MODES, RECORD_DEVICE_ENV, REPO_ROOT, mode, record_device

__all__ = ["MODE_ENV", "MODES", "RESULTS_ENV", "RECORD_MINUTES_ENV", "DEFAULT_RECORD_MINUTES",
           "REFERENCE_FILE", "WEIGHTS_FILE", "EVALUATIONS_FILE", "SHARED_RUNS", "shared_name", "reusable_recording",
           "RECORD_REUSE_ENV", "RECORD_DEVICE_ENV", "RECORD_LOG_ENV", "mode", "presenting", "recording",
           "record_device", "notebook_backbone", "recorded_notebook", "recording_marker", "write_recording_marker",
           "note_recorded", "logged_runs", "run_backbone", "device_description",
           "forced_device", "results_dir", "reference_dir", "has_reference", "record_minutes",
           "load_reference", "describe", "save_weights", "load_weights", "write_reference_info",
           "evaluation_key", "stored_evaluation", "store_evaluation", "missing_reference_error"]

#: Where the reference runs live: ``$SSL_COURSE_RESULTS`` if set, else ``<repo>/results``.
RESULTS_ENV = "SSL_COURSE_RESULTS"
#: Record mode: the most minutes one training may take.
RECORD_MINUTES_ENV = "SSL_COURSE_RECORD_MINUTES"
DEFAULT_RECORD_MINUTES = 1.5
#: Record mode: a note on how the notebooks were run, copied into each ``reference.json``.
RECORD_COMMAND_ENV = "SSL_COURSE_RECORD_COMMAND"
#: Record mode: ``0`` records every run again instead of reusing one already recorded at the same budget.
RECORD_REUSE_ENV = "SSL_COURSE_RECORD_REUSE"
#: Record mode: a file where every run the notebook recorded or reused is noted (one folder per line), so
#: that ``tools/record_reference.py`` can list them in the notebook's marker (:func:`write_recording_marker`).
RECORD_LOG_ENV = "SSL_COURSE_RECORD_LOG"
#: The backbones a notebook chooses between (:func:`notebook_backbone`): CPU and GPU.
BACKBONES = ("tiny", "small")

REFERENCE_FILE = "reference.json"
WEIGHTS_FILE = "weights.pt"
EVALUATIONS_FILE = "evaluations.json"
#: The attribute that ties a trained method to its reference run (set by ``fit`` in present/record mode).
RUN_NAME_ATTRIBUTE = "reference_run_name"


def presenting() -> bool:
    """True in ``present`` mode: training cells load the shipped reference runs."""
    return mode() == "present"


def recording() -> bool:
    """True in ``record`` mode: training cells train (capped) and write reference runs."""
    return mode() == "record"


def forced_device() -> torch.device | None:
    """The device the mode imposes: the CPU in present mode, :func:`record_device` in record mode
    (the CPU unless ``$SSL_COURSE_RECORD_DEVICE`` names another), else None."""
    if mode() == "present":
        return torch.device("cpu")
    return record_device() if mode() == "record" else None


def results_dir() -> Path:
    """The folder of reference runs: ``$SSL_COURSE_RESULTS`` if set, else ``<repo>/results``."""
    env = os.environ.get(RESULTS_ENV, "").strip()
    return Path(env).expanduser() if env else REPO_ROOT / "results"


def _run_name(run: str | Path) -> str:
    name = Path(run).name
    if not name or name in (".", ".."):
        raise ValueError(f"cannot name a reference run after {str(run)!r}: give the run's folder, "
                         "e.g. runs/04_simclr_cifar10_250_tiny")
    return name


#: Reference runs that several notebooks share: the same method, data, labels, backbone and settings
#: trained in each of them. One recording serves them all (``shared_<run>`` in :func:`results_dir`), so
#: their numbers agree and the course records the baseline once. Maps the run (without its notebook
#: number) to the notebooks whose run of that name is the shared one.
SHARED_RUNS: dict[str, tuple[str, ...]] = {
    "supervised_cifar10_250_tiny": ("00", "08", "10", "11"),
    "supervised_cifar10_250_small": ("00", "08", "10", "11"),   # the same cells on a GPU
}
SHARED_PREFIX = "shared_"


def shared_name(run: str | Path) -> str:
    """The folder name of a run's reference: ``shared_<run>`` for the runs of :data:`SHARED_RUNS`, else its own."""
    name = _run_name(run)
    notebook, _, rest = name.partition("_")
    if notebook in SHARED_RUNS.get(rest, ()):
        return SHARED_PREFIX + rest
    return name


def reference_dir(run: str | Path) -> Path:
    """The reference folder of a run, named by the last part of its ``out_dir`` (see :data:`SHARED_RUNS`)."""
    return results_dir() / shared_name(run)


def has_reference(run: str | Path) -> bool:
    """True when the course ships a reference of this run (its ``reference.json`` exists)."""
    return (reference_dir(run) / REFERENCE_FILE).is_file()


def reusable_recording(run: str | Path, budget: dict[str, Any]) -> bool:
    """Record mode: True when this run's reference is already recorded with the same budget and the same
    cap (or finished uncapped under a smaller one).

    Recording then reuses it instead of training again: a shared baseline is trained once for every
    notebook that uses it, and a recording that was interrupted continues with the first run it had not
    finished (``$SSL_COURSE_RECORD_REUSE=0`` records everything again). ``budget`` holds the cell's
    ``epochs`` and ``max_steps``.
    """
    if not recording() or os.environ.get(RECORD_REUSE_ENV, "1").strip() == "0" or not has_reference(run):
        return False
    info = json.loads((reference_dir(run) / REFERENCE_FILE).read_text())
    asked = info.get("budget_asked") or {}
    if not all(asked.get(key) == value for key, value in budget.items()):
        return False
    if info.get("device_type", "cpu") != record_device().type:   # a CPU run is no GPU recording (older ones: CPU)
        return False
    # the same cap, or a run that finished its whole budget within a cap no larger than this one (it would
    # train the same steps again)
    recorded_cap = info.get("record_minutes")
    reusable = recorded_cap == record_minutes() or (not info.get("capped", True) and recorded_cap is not None
                                                    and recorded_cap <= record_minutes())
    if reusable:
        note_recorded(run)
    return reusable


def record_minutes() -> float:
    """Record mode's cap on one training, in minutes (``$SSL_COURSE_RECORD_MINUTES``, default 1.5)."""
    raw = os.environ.get(RECORD_MINUTES_ENV, "").strip()
    if not raw:
        return DEFAULT_RECORD_MINUTES
    try:
        minutes = float(raw)
    except ValueError:
        minutes = float("nan")
    if not minutes > 0:
        raise ValueError(f"{RECORD_MINUTES_ENV}={raw!r}: expected a positive number of minutes, e.g. 1.5")
    return minutes


def missing_reference_error(run: str | Path) -> FileNotFoundError:
    """The error of present mode when a training cell has no shipped reference run."""
    available = sorted(path.name for path in results_dir().glob("*") if (path / REFERENCE_FILE).is_file())
    hint = f"the ones there: {', '.join(available[:12])}{' ...' if len(available) > 12 else ''}" if available \
        else "there are none: is the course's results/ folder missing?"
    return FileNotFoundError(
        f"{MODE_ENV}=present: no reference run named {_run_name(run)!r} in {results_dir()} ({hint}). "
        f"This cell's settings differ from the recorded ones, or it has no reference: unset {MODE_ENV} "
        "to train it yourself.")


def load_reference(run: str | Path) -> dict[str, Any] | None:
    """The shipped reference of a run, or None: ``{"info", "history", "metrics", "evaluations", "embedding"}``.

    ``info`` is ``reference.json``; ``history`` the History as a dict; ``metrics`` and ``embedding``
    only for :func:`~ssl_course.experiment.run_experiment` runs (else None).
    """
    if not has_reference(run):
        return None
    folder = reference_dir(run)

    def read(name: str) -> Any:
        path = folder / name
        return json.loads(path.read_text()) if path.is_file() else None

    embedding = None
    if (folder / "embedding.npz").is_file():
        import numpy as np
        with np.load(folder / "embedding.npz", allow_pickle=False) as saved:
            embedding = {name: saved[name] for name in saved.files}
    return {"info": read(REFERENCE_FILE), "history": read("history.json"), "metrics": read("metrics.json"),
            "evaluations": read(EVALUATIONS_FILE) or {}, "embedding": embedding}


def describe(run: str | Path) -> str:
    """A one-line caption for a figure that shows a reference run (device, budget, steps, date)."""
    reference = load_reference(run)
    if reference is None:
        return "no reference run"
    info = reference["info"]
    minutes = info["seconds"] / 60
    capped = " (capped)" if info.get("capped") else ""
    return (f"reference run: {info['steps']} steps in {minutes:.1f} min{capped} on {info['device']}, "
            f"{info['date'][:10]}")


# ---------------------------------------------------------------- weights ----------------------
def _training_only(method: torch.nn.Module, name: str) -> bool:
    """True for a state entry only training reads (``Method.training_only_state``): not in reference weights."""
    return name.startswith(tuple(getattr(method, "training_only_state", ())))


def save_weights(method: torch.nn.Module, run: str | Path) -> Path:
    """Write the method's ``state_dict`` (float tensors in half precision) to the run's reference folder.

    Entries only training reads (``Method.training_only_state``: replay memories, feature buffers) are
    left out; :func:`load_weights` keeps the freshly built method's values for them.
    """
    folder = reference_dir(run)
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: value.detach().to("cpu", torch.float16 if value.is_floating_point() else value.dtype).clone()
             for name, value in method.state_dict().items() if not _training_only(method, name)}
    path = folder / WEIGHTS_FILE
    temporary = path.with_suffix(".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)   # atomic: a reader never sees half a file
    return path


def load_weights(method: torch.nn.Module, run: str | Path) -> None:
    """Load the run's reference weights into ``method`` (each tensor back in the method's own dtype).

    ``run`` is a run name (looked up in :func:`results_dir`) or a folder holding ``weights.pt``. The
    parts named by the method's ``training_only_state`` were not saved: they keep their values.
    """
    path = Path(run) / WEIGHTS_FILE
    if not path.is_file():
        path = reference_dir(run) / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"the reference run {_run_name(run)!r} has no {WEIGHTS_FILE}: it was recorded "
                                "without weights (reference_weights=False), so its network cannot be restored; "
                                f"unset {MODE_ENV} to train it yourself")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    own = method.state_dict()
    needed = {name for name in own if not _training_only(method, name)}
    if not needed <= set(saved) <= set(own):
        missing, extra = sorted(needed - set(saved)), sorted(set(saved) - set(own))
        raise ValueError(f"the reference weights of {_run_name(run)!r} do not fit this method (missing "
                         f"{missing[:5]}, unexpected {extra[:5]}): the notebook's settings changed since "
                         "the reference was recorded; re-record it (tools/record_reference.py)")
    method.load_state_dict({name: saved[name].to(own[name].device, own[name].dtype) if name in saved else own[name]
                            for name in own})


def device_description(device: torch.device) -> str:
    """How ``reference.json`` names a device: ``CPU (x86_64, 1 thread)``, ``cuda (NVIDIA H100 80GB HBM3)``."""
    device = torch.device(device)
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"CPU ({platform.machine()}, {threads} thread{'s' if threads > 1 else ''})"
    if device.type == "cuda" and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def write_reference_info(run: str | Path, *, steps: int, seconds: float, budget: dict[str, Any],
                         capped: bool, history: dict[str, Any] | None, device: torch.device,
                         backbone: str | None = None) -> Path:
    """Write ``reference.json`` and ``history.json`` of a recorded run (no ``history.json`` when ``history`` is None,
    e.g. for a whole comparison, whose runs have their own). ``backbone``: its name (else read from the run's name)."""
    folder = reference_dir(run)
    folder.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    info = {"name": shared_name(run), "device": device_description(device), "device_type": device.type,
            "backbone": backbone or _backbone_in_name(shared_name(run)),
            "steps": int(steps), "seconds": round(float(seconds), 1),
            "budget_asked": budget, "record_minutes": record_minutes(), "capped": bool(capped),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": os.environ.get(RECORD_COMMAND_ENV, f"{MODE_ENV}=record"),
            "versions": {"torch": torch.__version__, "python": platform.python_version()}}
    if history is not None:
        (folder / "history.json").write_text(json.dumps(history))
    path = folder / REFERENCE_FILE
    path.write_text(json.dumps(info, indent=2))
    note_recorded(run)
    return path


# ---------------------------------------------------------------- evaluations ------------------
def evaluation_key(**arguments: Any) -> str:
    """A stable key for one evaluate_method call's settings."""
    return json.dumps(arguments, sort_keys=True, default=str)


def stored_evaluation(method: torch.nn.Module, key: str) -> dict[str, float] | None:
    """Present mode: the metrics recorded for this evaluation of this reference run, else None."""
    name = getattr(method, RUN_NAME_ATTRIBUTE, None)
    if name is None or not presenting():
        return None
    path = reference_dir(name) / EVALUATIONS_FILE
    stored = json.loads(path.read_text()) if path.is_file() else {}
    return stored.get(key)


def store_evaluation(method: torch.nn.Module, key: str, metrics: dict[str, float]) -> None:
    """Record mode: keep the metrics of this evaluation of this run for present mode."""
    name = getattr(method, RUN_NAME_ATTRIBUTE, None)
    if name is None or not recording():
        return
    path = reference_dir(name) / EVALUATIONS_FILE
    stored = json.loads(path.read_text()) if path.is_file() else {}
    stored[key] = {metric: float(value) for metric, value in metrics.items()}
    path.write_text(json.dumps(stored, indent=1, sort_keys=True))


# ---------------------------------------------------------------- whole notebooks and backbones -
def _backbone_in_name(name: str) -> str | None:
    """The backbone a run's name states (the course's run names hold ``_tiny`` or ``_small``), else None."""
    found = [part for part in name.split("_") if part in BACKBONES]
    return found[-1] if found else None


def run_backbone(name: str) -> str | None:
    """The backbone of a recorded run: its ``reference.json``'s ``backbone``, else the one its name states."""
    path = results_dir() / name / REFERENCE_FILE
    info = json.loads(path.read_text()) if path.is_file() else {}
    return info.get("backbone") or _backbone_in_name(name)


def note_recorded(run: str | Path) -> None:
    """Record mode: note in ``$SSL_COURSE_RECORD_LOG`` (if set) that this run was recorded or reused."""
    log = os.environ.get(RECORD_LOG_ENV, "").strip()
    if not log or not recording():
        return
    with open(log, "a") as stream:
        stream.write(str(reference_dir(run).resolve()) + "\n")


def logged_runs(log: str | Path) -> list[str]:
    """The reference folders of :func:`results_dir` that a recording's log names, in order, each once.

    Runs recorded inside another reference (the runs of a comparison) are not listed: their
    comparison is."""
    path = Path(log)
    lines = path.read_text().splitlines() if path.is_file() else []
    folder = results_dir().resolve()
    names = [Path(line).name for line in lines if line.strip() and Path(line).parent == folder]
    return list(dict.fromkeys(names))


def _check_notebook(notebook: str) -> str:
    if not (isinstance(notebook, str) and len(notebook) == 2 and notebook.isdigit()):
        raise ValueError(f"notebook {notebook!r}: expected the notebook's two-digit number as a string, e.g. '04'")
    return notebook


def recording_marker(notebook: str, backbone: str) -> Path:
    """The marker of a whole-notebook recording: ``results/recorded_<notebook>_<backbone>.json``."""
    if backbone not in BACKBONES:
        raise ValueError(f"backbone {backbone!r}: expected one of {list(BACKBONES)}")
    return results_dir() / f"recorded_{_check_notebook(notebook)}_{backbone}.json"


def write_recording_marker(notebook: str, runs: list[str]) -> list[Path]:
    """After a notebook ran top to bottom in record mode: write its marker, one per backbone of its runs.

    ``runs`` are the reference folders the notebook recorded or reused (:func:`logged_runs`). The
    marker lists them, with whether each has weights, so that present mode uses this backbone for
    the notebook only while every one of them is there (:func:`recorded_notebook`): reference
    folders deleted, or weights kept out of git, send it back to the ``tiny`` references.
    """
    by_backbone: dict[str, dict[str, Any]] = {}
    for name in runs:
        info = json.loads((results_dir() / name / REFERENCE_FILE).read_text())
        backbone = run_backbone(name)
        if backbone not in BACKBONES:
            continue   # a run whose backbone is neither of the notebook's choices: not part of the choice
        entry = by_backbone.setdefault(backbone, {"notebook": notebook, "backbone": backbone, "devices": [],
                                                  "runs": {}})
        if info["device"] not in entry["devices"]:
            entry["devices"].append(info["device"])
        entry["runs"][name] = {"weights": (results_dir() / name / WEIGHTS_FILE).is_file(), "steps": info["steps"],
                               "seconds": info["seconds"], "capped": info["capped"]}
    written = []
    for backbone, entry in by_backbone.items():
        entry.update(record_minutes=record_minutes(), date=_dt.datetime.now(_dt.timezone.utc).isoformat(
            timespec="seconds"), command=os.environ.get(RECORD_COMMAND_ENV, f"{MODE_ENV}=record"))
        path = recording_marker(notebook, backbone)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(entry, indent=2))
        written.append(path)
    return written


def recorded_notebook(notebook: str, backbone: str) -> bool:
    """True when a whole recording of this notebook with this backbone is here: its marker, and every
    run the marker lists (with its weights where the recording kept them)."""
    path = recording_marker(notebook, backbone)
    if not path.is_file():
        return False
    try:
        runs = json.loads(path.read_text())["runs"]
    except (ValueError, KeyError, TypeError):
        return False   # a marker that cannot be read promises nothing
    return bool(runs) and all(
        (results_dir() / name / REFERENCE_FILE).is_file()
        and (not entry.get("weights") or (results_dir() / name / WEIGHTS_FILE).is_file())
        for name, entry in runs.items())


def notebook_backbone(notebook: str, smoke: bool, device: torch.device | str) -> str:
    """The backbone a notebook trains, records or presents: ``"tiny"`` or ``"small"`` (~16x the compute).

    Learning and recording: ``"tiny"`` in smoke mode and on a CPU, else ``"small"`` (so a GPU
    recording writes ``_small`` references). Presenting (always on the CPU): ``"small"`` when a GPU
    recording of the whole notebook is here (:func:`recorded_notebook`), else the CPU's ``"tiny"``.
    """
    _check_notebook(notebook)
    if presenting():
        return "small" if recorded_notebook(notebook, "small") else "tiny"
    return "tiny" if smoke or torch.device(device).type == "cpu" else "small"
