"""One experiment = build data + backbone + method, train with the engine, evaluate, write files.

Shared by ``python -m ssl_course train``, the comparison and the notebooks (:func:`run_methods`),
so all of them record the same fields.
Output folder layout::

    out/metrics.json     method, labels, seed, device, wall time, validation and test accuracy / kNN / probe
    out/checkpoint.pt    the engine's atomic checkpoint (resumable)
    out/history.json     loss, lr and kNN monitor over training
"""
from __future__ import annotations

import datetime as _dt
import json
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

import ssl_course
from ssl_course import distributed, reference
from ssl_course.config import pick_device, runs_dir, seed_everything
from ssl_course.evaluate import evaluate_method
from ssl_course.methods import build_method, get_method_class
from ssl_course.precision import check_amp
from ssl_course.results import save_embedding_sample
from ssl_course.train import TrainConfig, fit

METRICS_NAME = "metrics.json"


@dataclass
class Experiment:
    """Everything that defines one run; unknown names fail early with the valid choices."""

    method: str
    data: str = "synthetic"
    labels: int = 250
    epochs: float | None = None
    minutes: float | None = None
    steps: int | None = None
    backbone: str = "small"
    seed: int = 0
    batch_size: int | None = None
    lr: float | None = None
    device: str | None = None
    train_subset: int | None = None
    test_subset: int | None = None
    hparams: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    monitor_every: int | None = None       # steps between kNN checks (None: once per epoch, 0: never)
    knn_bank: str | int = "labeled"        # kNN bank: "labeled" (knn_accuracy only), "all" or a size (also
                                           # knn_all_labels_accuracy, on every / that many training images)
    val_size: int | None = None            # validation images held out (None: 5,000 of CIFAR-10, a tenth of
                                           # smaller sets; 0: none)
    compile: bool | None = None            # torch.compile the backbone (None: CUDA, long runs)
    amp: bool | str = True                 # autocast: True (CUDA only), False, "bf16" or "fp16" (any device);
                                           # TrainConfig.amp
    reference_weights: bool = False        # record mode: also keep the trained weights in the reference
                                           # run (for notebooks whose later cells need the network)

    def validate(self) -> None:
        from ssl_course.data import DATASETS

        get_method_class(self.method)  # raises ValueError listing the valid names
        if self.data not in DATASETS:
            raise ValueError(f"unknown data set {self.data!r}: choose one of {list(DATASETS)}")
        from ssl_course.models import BACKBONES

        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}: choose one of {sorted(BACKBONES)}")
        check_budget(epochs=self.epochs, minutes=self.minutes, steps=self.steps)
        from ssl_course.evaluate import check_knn_bank

        check_knn_bank(self.knn_bank)
        if self.val_size is not None and (not isinstance(self.val_size, int) or self.val_size < 0):
            raise ValueError(f"--val-size must be an int >= 0 (validation images; 0 for none), got {self.val_size!r}")
        check_amp(self.amp)


def check_budget(**limits: float | None) -> None:
    """The one budget rule, for a run and for a comparison: at least one limit, each one > 0.

    Keywords are the command line's option names (``minutes_per_method`` is ``--minutes-per-method``),
    so that the message names what to type.
    """
    options = {f"--{name.replace('_', '-')}": value for name, value in limits.items()}
    if all(value is None for value in options.values()):
        raise ValueError(f"give a budget: {' or '.join(options)} (at least one)")
    for option, value in options.items():
        if value is not None and not value > 0:
            raise ValueError(f"the budget {option} must be > 0, got {value}")


def run_experiment(experiment: Experiment, out_dir: str | Path | None, resume: bool = False) -> dict[str, Any]:
    """Train and evaluate ``experiment``; write ``metrics.json`` into ``out_dir``; return the metrics."""
    experiment.validate()
    if out_dir is not None and _from_reference(experiment, out_dir):
        return _reference_metrics(out_dir)
    seed_everything(experiment.seed)
    device = distributed.local_device() or pick_device(experiment.device)
    data = _bundle(experiment, device)
    method = build_method(experiment.method, experiment.backbone, data.num_classes, **experiment.hparams)
    config = TrainConfig(epochs=experiment.epochs, max_minutes=experiment.minutes, max_steps=experiment.steps,
                         batch_size=experiment.batch_size, lr=experiment.lr, seed=experiment.seed,
                         device=str(device), out_dir=out_dir, resume=resume, progress=experiment.progress,
                         monitor_every=experiment.monitor_every, compile=experiment.compile, amp=experiment.amp,
                         reference_weights=experiment.reference_weights)
    start = time.perf_counter()
    history = fit(method, data, config)
    train_seconds = time.perf_counter() - start
    if not distributed.is_main_process():  # rank 0 evaluates and writes for everybody
        return {"method": experiment.method, "rank": distributed.rank()}
    start = time.perf_counter()
    metrics = evaluate_method(method, data, knn_bank=experiment.knn_bank, progress=experiment.progress)
    eval_seconds = time.perf_counter() - start
    history.final = dict(metrics)
    record: dict[str, Any] = {
        "method": experiment.method, "data": experiment.data, "labels": experiment.labels,
        "seed": experiment.seed, "backbone": experiment.backbone, "device": _device_name(device),
        "budget": {"epochs": experiment.epochs, "minutes": experiment.minutes, "steps": experiment.steps},
        "steps": history.step[-1] if history.step else 0,
        "train_seconds_this_call": round(train_seconds, 2),
        "eval_seconds": round(eval_seconds, 2),
        "wall_time_seconds": round(history.seconds[-1] if history.seconds else train_seconds, 2),
        "hparams": method.hparams(),
        # the optimiser actually used (name, peak lr, weight decay, momentum, Nesterov); by update name
        # for methods with several optimisers
        "optimizer": (next(iter(history.optimizers.values())) if len(history.optimizers) == 1
                      else history.optimizers),
        "autocast": history.autocast,    # the dtype amp gave on this device ("bfloat16", "float16"), None: float32
        "experiment": {k: v for k, v in asdict(experiment).items() if k != "progress"},
        # knn_accuracy's bank is the labelled images; knn_all_labels_accuracy's (if any) this many training images
        "knn_bank": experiment.knn_bank, "knn_bank_size": _all_labels_bank_size(experiment.knn_bank, data),
        "train_size": int(data.train_images.shape[0]), "val_size": data.val_size,
        "test_size": int(data.test_images.shape[0]),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"ssl_course": ssl_course.__version__, "torch": torch.__version__,
                     "python": platform.python_version()},
        **{key: round(value, 4) for key, value in metrics.items()},
    }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "history.json").write_text(json.dumps(history.to_dict()))  # now with the final metrics
        (out / METRICS_NAME).write_text(json.dumps(record, indent=2))
    if reference.recording() and out_dir is not None:
        _record_reference_results(out_dir, record, history, method, data)
    return record


def _from_reference(experiment: Experiment, out_dir: str | Path) -> bool:
    """True when the run's metrics come from its reference: present mode, or a record-mode run already
    recorded at this budget (:func:`ssl_course.reference.reusable_recording`)."""
    return reference.presenting() or reference.reusable_recording(
        out_dir, {"epochs": experiment.epochs, "max_steps": experiment.steps})


def _reference_metrics(out_dir: str | Path) -> dict[str, Any]:
    """Present mode: the shipped reference run's ``metrics.json`` instead of training."""
    folder = reference.reference_dir(out_dir)
    if not (folder / METRICS_NAME).is_file():
        raise reference.missing_reference_error(out_dir)
    return json.loads((folder / METRICS_NAME).read_text())


def _record_reference_results(out_dir: str | Path, record: dict[str, Any], history, method, data) -> None:
    """Record mode: what present mode returns for this run (metrics, final history, t-SNE sample)."""
    folder = reference.reference_dir(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "history.json").write_text(json.dumps(history.to_dict()))
    (folder / METRICS_NAME).write_text(json.dumps(record, indent=2))
    save_embedding_sample(folder, method, data)


def run_methods(methods: Sequence[str] | Mapping[str, Mapping[str, Any]], tag: str,
                batch_sizes: Mapping[str, int] | None = None, **shared: Any) -> tuple[dict[str, dict], dict[str, Path]]:
    """Train and evaluate several methods one after the other under the same settings (a notebook's
    "method against the baseline, same budget" cell).

    Args:
        methods: method names, or ``{name: hyper-parameters}``.
        tag: prefix of the run folders (the notebook's number, e.g. ``"06"``).
        batch_sizes: per-method batch sizes, overriding ``shared["batch_size"]``.
        **shared: :class:`Experiment` fields common to every run (``data``, ``labels``, ``backbone``,
            ``minutes``/``steps``/``epochs``, ``train_subset``...).

    Each run lives in ``runs_dir()/<tag>_<method>_<data>_<labels>_<backbone>`` and resumes from
    there, so a finished run is not trained again and an interrupted one continues. Prints one
    line per method. Returns ``(metrics by method, run folder by method)``.
    """
    hparams_of = dict(methods) if isinstance(methods, Mapping) else {name: {} for name in methods}
    results: dict[str, dict] = {}
    folders: dict[str, Path] = {}
    for name, hparams in hparams_of.items():
        settings = dict(shared)
        if batch_sizes and name in batch_sizes:
            settings["batch_size"] = batch_sizes[name]
        experiment = Experiment(method=name, hparams=dict(hparams), **settings)
        folders[name] = runs_dir() / f"{tag}_{name}_{experiment.data}_{experiment.labels}_{experiment.backbone}"
        from_reference = _from_reference(experiment, folders[name])
        results[name] = run_experiment(experiment, folders[name], resume=True)
        if from_reference:   # its history and weights are read from the reference folder
            folders[name] = reference.reference_dir(folders[name])
        # name the protocol behind the headline accuracy: the method's own classifier, else a linear probe
        headline = "own classifier" if "classifier_accuracy" in results[name] else "linear probe"
        scores = ", ".join(f"{label} {results[name][key]:.3f}" for key, label in (
            ("val_accuracy", f"validation accuracy ({headline})"), ("test_accuracy", f"test accuracy ({headline})"),
            ("linear_probe_accuracy", "linear probe"), ("knn_accuracy", "kNN (labelled bank)"),
            ("knn_all_labels_accuracy", "kNN (all labels)"))
            if key in results[name])
        print(f"{name:>10}: {scores}, {results[name]['steps']} steps in {results[name]['wall_time_seconds']:.0f} s")
    return results, folders


def _bundle(experiment: Experiment, device: torch.device | str):
    from ssl_course.data import make_bundle

    return make_bundle(experiment.data, num_labels=experiment.labels, seed=experiment.seed, device=device,
                       train_subset=experiment.train_subset, test_subset=experiment.test_subset,
                       val_size=experiment.val_size)


def _all_labels_bank_size(knn_bank: str | int, data) -> int | None:
    """Images in knn_all_labels_accuracy's bank (None when it is not computed)."""
    if knn_bank == "labeled":
        return None
    train_size = int(data.train_images.shape[0])
    return train_size if knn_bank == "all" else min(int(knn_bank), train_size)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def load_trained(run_dir: str | Path, device: str | torch.device | None = None):
    """Rebuild a trained method and its data from a run folder written by :func:`run_experiment`.

    Returns ``(method, data)`` with the method in eval mode, on ``device`` (default: the best one).
    """
    from ssl_course.train import CHECKPOINT_NAME, load_checkpoint

    run_dir = Path(run_dir)
    metrics_path = run_dir / METRICS_NAME
    if not metrics_path.is_file():
        raise FileNotFoundError(f"no {METRICS_NAME} in {run_dir}: train it first with run_experiment or the CLI")
    saved = json.loads(metrics_path.read_text())["experiment"]
    if "knn_bank_size" in saved:    # folders written before the validation split: an all-labels bank size
        saved["knn_bank"] = saved.pop("knn_bank_size") or "all"
        saved.setdefault("val_size", 0)   # they trained on every training image
    experiment = Experiment(**{**saved, "progress": False})
    device = pick_device(device)
    data = _bundle(experiment, device)
    method = build_method(experiment.method, experiment.backbone, data.num_classes, **experiment.hparams)
    method.load_state_dict(load_checkpoint(run_dir / CHECKPOINT_NAME, map_location=device)["method"])
    return method.to(device).eval(), data
