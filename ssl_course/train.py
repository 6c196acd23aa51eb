"""The one training engine: every method, every notebook, the CLI and the comparison use :func:`fit`.

What it does for a method (and what a method therefore never has to write):

1. device placement (cuda → mps → cpu), ``channels_last``, bf16/fp16 autocast (on a GPU by default,
   on any device with ``amp="bf16"`` / ``"fp16"``) and ``torch.compile`` of the backbone on a GPU
   (falling back to eager if the compiler fails);
2. index batches that are a pure function of ``(seed, epoch)`` (:mod:`ssl_course.data.batches`)
   and augmentation generators seeded from ``(seed, step)``: a resumed run draws exactly the
   batches an uninterrupted one would;
3. one optimiser per update of the method (SGD, Adam, AdamW or LARS, :mod:`ssl_course.optim`; most
   methods have one update, a GAN has two), each with linear warm-up and cosine decay to its own
   peak, driven by progress through the budget (epochs, steps, or minutes);
4. a ``tqdm.auto`` progress bar, a history of loss / lr / logged scalars, periodic kNN monitoring
   on the validation split (none when the bundle has no validation split; never the test set);
5. atomic checkpoints (temporary file + ``os.replace``) loaded with ``weights_only=True``;
6. a clear error naming the step when the loss stops being finite.

:func:`fit` reads as its steps: start or resume, then per step check the budget, set the learning
rates, draw a batch, run one optimisation step (every update of the method), and flush logs /
monitor / checkpoint when due.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ssl_course import distributed, reference
from ssl_course.config import pick_device
from ssl_course.data.batches import index_stream
from ssl_course.data.splits import evenly_spaced
from ssl_course.evaluate import evaluate_method
from ssl_course.losses import skip_value_checks
from ssl_course.methods.base import Batch, Method, OptimizerSpec, StepInfo, StepOutput
from ssl_course.optim import OPTIMIZERS, OptimizerSettings, build_optimizer
from ssl_course.precision import autocast_dtype, check_amp, dtype_name

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_VERSION = 2   # 2: one optimiser state per update, by name


@dataclass
class TrainConfig:
    """Budget and optimisation settings. ``None`` means "the method's default".

    Give at least one of ``epochs``, ``max_steps`` or ``max_minutes``; with several, training stops
    at whichever comes first. One epoch is ``len(train set) // batch_size`` steps for every method,
    so "10 epochs" is the same number of primary images for all of them.

    ``amp`` chooses mixed precision (:func:`ssl_course.precision.autocast_dtype`). A loss scaler
    (``GradScaler``) runs only for float16 on CUDA, where small gradients would otherwise flush to
    zero. A CPU under ``amp="fp16"`` runs without one: there float16 serves to test a method's
    dtype paths on a machine without a GPU, not to train (a step took ~12x as long as in float32 on
    the course CPU: 2.1 s against 0.16-0.19 s, ``supervised``, ``tiny``, batch 64, one thread; bfloat16
    took 0.15 s); the weights and their gradients stay float32 either way.
    """

    epochs: float | None = None
    max_steps: int | None = None
    max_minutes: float | None = None
    batch_size: int | None = None          # primary batch: labelled (supervised) or unlabelled/all
    unlabeled_ratio: int | None = None     # semi-supervised: unlabelled = ratio × labelled batch
    optimizer: str | None = None           # "sgd", "adamw", "adam" or "lars"; for updates whose spec leaves it
    lr: float | None = None                # None: method.default_lr × batch_size / 256
    weight_decay: float | None = None
    momentum: float | None = None          # SGD / LARS momentum; None: method.default_momentum
    warmup_fraction: float = 0.05
    amp: bool | str = True                 # True: autocast on CUDA only (bf16, else fp16); False: float32;
                                           # "bf16" / "fp16": that autocast dtype on any device (see below)
    channels_last: bool = True             # on CUDA only
    compile: bool | None = None            # torch.compile the backbone; None: on CUDA, for long runs
    compile_backend: Any = "inductor"      # torch.compile's backend ("eager" only traces: for tests)
    monitor_every: int | None = None       # steps between kNN checks; None: once per epoch; 0: never
    monitor_bank_size: int = 10_000        # training images (with their labels) in the monitor's kNN bank
    monitor_val_size: int = 2_000          # validation images the monitor classifies (never test images)
    log_every: int = 10
    checkpoint_every: int | None = None    # steps; None: at every epoch end (when out_dir is set)
    out_dir: str | Path | None = None
    resume: bool = False
    seed: int = 0
    progress: bool = True
    device: str | None = None
    reference_weights: bool = True         # record mode: keep the trained weights in the reference run

    def __post_init__(self) -> None:
        budgets = {"epochs": self.epochs, "max_steps": self.max_steps, "max_minutes": self.max_minutes}
        if all(value is None for value in budgets.values()):
            raise ValueError("give a budget: epochs=, max_steps= or max_minutes=")
        for name, value in budgets.items():
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        for name in ("batch_size", "unlabeled_ratio", "log_every"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}: choose one of {list(OPTIMIZERS)}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        check_amp(self.amp)


@dataclass
class History:
    """What happened during training; plotted by :func:`ssl_course.viz.plot_history`."""

    step: list[int] = field(default_factory=list)
    epoch: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)        # the first update's learning rate
    logs: dict[str, list[float]] = field(default_factory=dict)
    optimizers: dict[str, dict[str, Any]] = field(default_factory=dict)   # settings used, by update name
    autocast: str | None = None          # "bfloat16" / "float16" under autocast; None: float32 (or not recorded)
    monitor_step: list[int] = field(default_factory=list)
    monitor_seconds: list[float] = field(default_factory=list)
    monitor_knn: list[float] = field(default_factory=list)   # kNN accuracy on the validation subset
    final: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> History:
        return cls(**values)


# ---------------------------------------------------------------- checkpoints -------------------
def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a reader sees the old file or the new one, never half.

    The bytes go to a temporary file in the same folder, are flushed to disk, and only then renamed
    over ``path`` (``os.replace`` is atomic on POSIX and Windows).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(state, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code runs while unpickling).

    A missing file raises ``FileNotFoundError``; a truncated or foreign file raises ``ValueError``
    saying so, and the file is left untouched for you to inspect.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for damaged files
        raise ValueError(f"checkpoint {path} is corrupt or not a ssl_course checkpoint ({type(error).__name__}: "
                         f"{error}). It was not modified; move it away or delete it to start again.") from error
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"checkpoint {path} was written by an incompatible version (expected version "
                         f"{CHECKPOINT_VERSION}); delete it or train into a new folder")
    return state


# ---------------------------------------------------------------- schedule and optimisers -------
def lr_at(progress: float, base_lr: float, warmup_fraction: float, start_fraction: float = 0.0,
          final_fraction: float = 0.0) -> float:
    """Linear warm-up over the first ``warmup_fraction`` of training from ``start_fraction`` × ``base_lr``
    to ``base_lr``, then cosine decay to ``final_fraction`` × ``base_lr`` (both 0: from 0 to 0).

    The fractions give PAWS's official shape (suncet ``WarmupCosineSchedule``: ``start_lr`` →
    ``lr`` → ``final_lr``) without any method-specific code here.
    """
    progress = min(max(progress, 0.0), 1.0)
    start, final = start_fraction * base_lr, final_fraction * base_lr
    if warmup_fraction > 0 and progress < warmup_fraction:
        return start + (base_lr - start) * progress / warmup_fraction
    span = 1.0 - warmup_fraction
    return final + (base_lr - final) * 0.5 * (1.0 + math.cos(math.pi * (progress - warmup_fraction) / span))


def _scheduled_lr(progress: float, settings: OptimizerSettings, warmup_fraction: float) -> float:
    """One optimiser's learning rate at ``progress``: :func:`lr_at` with its peak and shape."""
    return lr_at(progress, settings.lr, warmup_fraction, settings.start_lr_fraction, settings.final_lr_fraction)


def optimizer_settings(method: Method, spec: OptimizerSpec, config: TrainConfig, base_lr: float) -> OptimizerSettings:
    """Resolve one :class:`OptimizerSpec`: its own value, else the run's config, else the method's default."""
    def first(*values):
        return next(value for value in values if value is not None)

    return OptimizerSettings(
        name=first(spec.optimizer, config.optimizer, method.default_optimizer),
        lr=base_lr * spec.lr_multiplier,
        weight_decay=first(spec.weight_decay, config.weight_decay, method.default_weight_decay),
        momentum=first(spec.momentum, config.momentum, method.default_momentum),
        nesterov=first(spec.nesterov, method.default_nesterov),
        betas=tuple(spec.betas),
        decay_biases_and_norms=first(spec.decay_biases_and_norms, method.default_decay_biases_and_norms),
        start_lr_fraction=first(spec.start_lr_fraction, method.default_start_lr_fraction),
        final_lr_fraction=first(spec.final_lr_fraction, method.default_final_lr_fraction))


def _method_specs(method: Method) -> dict[str, OptimizerSpec]:
    """The method's optimiser specs, one per update, checked against ``method.updates``."""
    updates, specs = tuple(method.updates), method.optimizer_specs()
    if not updates or len(set(updates)) != len(updates):
        raise ValueError(f"{method.name}.updates must list distinct update names, got {updates!r}")
    if set(specs) != set(updates):
        raise ValueError(f"{method.name}.optimizer_specs() returns specs for {sorted(specs)} but its updates are "
                         f"{list(updates)}: give exactly one OptimizerSpec per update")
    return {update: specs[update] for update in updates}


# ---------------------------------------------------------------- one run -----------------------
@dataclass
class _Run:
    """Everything one call of :func:`fit` works with, set up by :func:`_start_or_resume`."""

    method: Method
    data: Any
    config: TrainConfig
    device: torch.device
    batch_size: int
    steps_per_epoch: int
    total_steps: int | None
    budget_seconds: float | None
    warmup_fraction: float
    parameters: dict[str, list[torch.nn.Parameter]]     # by update name
    settings: dict[str, OptimizerSettings]
    optimizers: dict[str, torch.optim.Optimizer]
    scaler: Any
    amp_dtype: torch.dtype | None
    compiled: bool
    record: dict[str, Any]                              # what must match for a resume
    checkpoint_path: Path | None
    history: History = field(default_factory=History)
    step: int = 0
    elapsed_before: float = 0.0
    start_time: float = field(default_factory=time.perf_counter)
    compiled_step_done: bool = False                     # a first compiled step worked: the compiler works here
    streams: dict[str, Any] = field(default_factory=dict)
    bar: Any = None
    pending: _PendingLogs | None = None

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.start_time

    @property
    def epoch(self) -> int:
        return self.step // self.steps_per_epoch

    def lr(self, progress: float) -> float:
        """The first update's learning rate (the one of single-optimiser methods), for the history."""
        return _scheduled_lr(progress, self.settings[self.method.updates[0]], self.warmup_fraction)


class _PendingLogs:
    """Loss and logged scalars summed on the device since the last flush (no host reads per step)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.loss = torch.zeros((), device=device)
        self.logs: dict[str, torch.Tensor] = {}
        self.first_bad_step = torch.full((), -1, device=device, dtype=torch.long)
        self.steps = 0

    def add(self, step: int, loss: torch.Tensor, logs: dict[str, Any]) -> None:
        loss = loss.detach().float()
        # remember the first non-finite step without a host sync
        self.first_bad_step = torch.where((self.first_bad_step < 0) & ~torch.isfinite(loss),
                                          torch.full_like(self.first_bad_step, step), self.first_bad_step)
        self.loss += loss
        for name, value in logs.items():
            value = torch.as_tensor(value, device=self.device).detach().float()
            self.logs[name] = self.logs.get(name, torch.zeros((), device=self.device)) + value
        self.steps += 1


def fit(method: Method, data, config: TrainConfig) -> History:
    """Train ``method`` on ``data`` (a :class:`ssl_course.data.DataBundle`) within ``config``'s budget.

    Returns the :class:`History`; with ``config.out_dir`` set, also writes ``checkpoint.pt`` (every
    epoch and at the end) and ``history.json``. ``config.resume=True`` continues from the
    checkpoint in ``out_dir`` and gives the same weights as an uninterrupted run.
    """
    if config.out_dir is not None and (reference.presenting() or reference.reusable_recording(
            config.out_dir, {"epochs": config.epochs, "max_steps": config.max_steps})):
        return _load_reference_run(method, data, config)
    if reference.recording() and config.out_dir is not None:
        config = _capped_for_recording(config)
    run = _start_or_resume(method, data, config)
    progress = _check_budget(run)
    while progress < 1.0:
        lr = _set_learning_rates(run, progress)
        batch, info = _draw_batch(run, progress)
        loss, logs = _optimisation_step(run, batch, info)
        run.pending.add(run.step, loss, logs)
        run.step += 1
        run.bar.update(1)
        _after_step(run, lr)
        progress = _check_budget(run)
    run.bar.close()
    if run.pending.steps:
        _flush_logs(run, run.lr(progress))
    _save(run)
    if reference.recording() and config.out_dir is not None:
        _record_reference_run(run)
    return run.history


# ---------------------------------------------------------------- 0. present and record mode ----
def _load_reference_run(method: Method, data, config: TrainConfig) -> History:
    """Present mode (or record mode with this run already recorded at the same budget): the shipped
    reference run's weights and history instead of training.

    A run recorded without weights (``reference_weights=False``: no later cell needs its network)
    gives its history, and :func:`~ssl_course.evaluate.evaluate_method` its recorded metrics; the
    method itself keeps its untrained weights.
    """
    name = Path(config.out_dir).name
    if not reference.has_reference(name):
        raise reference.missing_reference_error(name)
    device = pick_device(config.device)
    method.to(device)
    method.on_fit_start(data.to(device))   # the same set-up as a training run, then its trained weights
    if (reference.reference_dir(name) / reference.WEIGHTS_FILE).is_file():
        reference.load_weights(method, name)
    setattr(method, reference.RUN_NAME_ATTRIBUTE, name)
    method.train()
    return History.from_dict(reference.load_reference(name)["history"])


def _capped_for_recording(config: TrainConfig) -> TrainConfig:
    """Record mode: the cell's budget, stopped after at most ``$SSL_COURSE_RECORD_MINUTES``; never resumed."""
    cap = reference.record_minutes()
    minutes = cap if config.max_minutes is None else min(cap, config.max_minutes)
    return dataclasses.replace(config, max_minutes=minutes, resume=False)


def _record_reference_run(run: _Run) -> None:
    name = Path(run.config.out_dir).name
    if run.config.reference_weights:
        reference.save_weights(run.method, name)
    budget = {"epochs": run.config.epochs, "max_steps": run.config.max_steps, "total_steps": run.total_steps}
    reference.write_reference_info(name, steps=run.step, seconds=run.elapsed(), budget=budget,
                                   capped=run.total_steps is None or run.step < run.total_steps,
                                   history=run.history.to_dict(), device=run.device,
                                   backbone=getattr(run.method, "backbone_name", None))
    setattr(run.method, reference.RUN_NAME_ATTRIBUTE, name)


# ---------------------------------------------------------------- 1. start or resume ------------
def _start_or_resume(method: Method, data, config: TrainConfig) -> _Run:
    """Place data and method on the device, build the optimisers, and load the checkpoint to resume."""
    device = distributed.local_device() or pick_device(config.device)
    data = data.to(device)
    method.to(device)
    method.on_fit_start(data)
    on_cuda = device.type == "cuda"
    if on_cuda and config.channels_last:
        _to_channels_last(method)

    batch_size = config.batch_size or method.default_batch_size
    steps_per_epoch = max(1, data.train_images.shape[0] // batch_size)
    total_steps = None
    if config.epochs is not None:
        total_steps = max(1, round(config.epochs * steps_per_epoch))
    if config.max_steps is not None:
        total_steps = min(total_steps or config.max_steps, config.max_steps)

    specs = _method_specs(method)
    base_lr = config.lr or method.default_lr * batch_size / 256
    settings = {update: optimizer_settings(method, spec, config, base_lr) for update, spec in specs.items()}
    amp_dtype = autocast_dtype(config.amp, device)
    out_dir = Path(config.out_dir) if config.out_dir is not None else None
    run = _Run(
        method=method, data=data, config=config, device=device, batch_size=batch_size,
        steps_per_epoch=steps_per_epoch, total_steps=total_steps,
        budget_seconds=config.max_minutes * 60 if config.max_minutes is not None else None,
        warmup_fraction=config.warmup_fraction,
        parameters={update: list(spec.parameters) for update, spec in specs.items()}, settings=settings,
        optimizers={update: build_optimizer(spec.parameters, settings[update]) for update, spec in specs.items()},
        scaler=_grad_scaler(amp_dtype, device), amp_dtype=amp_dtype,
        compiled=_compile_backbone(method, config, on_cuda, total_steps),
        record=_run_record(method, data, config, batch_size, base_lr, settings),
        checkpoint_path=out_dir / CHECKPOINT_NAME if out_dir is not None else None)
    if config.resume:
        _resume(run)
    run.history.optimizers = {update: value.record() for update, value in settings.items()}
    run.history.autocast = dtype_name(amp_dtype)
    distributed.broadcast_state(method)  # every process starts from rank 0's weights
    run.streams = _index_streams(run)
    run.pending = _PendingLogs(device)
    method.train()
    run.start_time = time.perf_counter()
    run.bar = tqdm(total=total_steps, initial=run.step, desc=method.name, dynamic_ncols=True,
                   disable=not (config.progress and distributed.is_main_process()))
    return run


def _grad_scaler(amp_dtype: torch.dtype | None, device: torch.device):
    """One loss scaler for every optimiser; it only scales under float16 autocast on CUDA (see TrainConfig)."""
    return torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16 and device.type == "cuda")


def _labeled_batch_size(method: Method, config: TrainConfig, batch_size: int) -> int:
    sources = method.data_sources
    if "labeled" in sources and len(sources) > 1:   # semi-supervised: a labelled batch beside the primary one
        return max(1, batch_size // (config.unlabeled_ratio or method.default_unlabeled_ratio))
    return batch_size


def _run_record(method: Method, data, config: TrainConfig, batch_size: int, base_lr: float,
                settings: dict[str, OptimizerSettings]) -> dict[str, Any]:
    return {"method": method.name, "batch_size": batch_size,
            "labeled_batch": _labeled_batch_size(method, config, batch_size),
            "seed": config.seed, "lr": base_lr,
            "optimizers": json.dumps({update: value.record() for update, value in settings.items()}, sort_keys=True),
            "num_labels": int(data.labeled_idx.numel()), "train_size": int(data.train_images.shape[0]),
            "hparams": json.dumps(method.hparams(), sort_keys=True, default=str)}


def _resume(run: _Run) -> None:
    """Continue from ``checkpoint.pt`` in ``out_dir`` if it exists (else start afresh)."""
    if run.checkpoint_path is None:
        raise ValueError("resume=True needs out_dir (the folder holding checkpoint.pt)")
    if not run.checkpoint_path.exists():
        return
    state = load_checkpoint(run.checkpoint_path, map_location=run.device)
    mismatched = {key: (state["run"].get(key), value) for key, value in run.record.items()
                  if state["run"].get(key) != value}
    if mismatched:
        raise ValueError(f"checkpoint {run.checkpoint_path} belongs to a different run: {mismatched} "
                         "(saved, now). Train into a new out_dir or resume with the same settings.")
    run.method.load_state_dict(state["method"])
    for update, optimizer in run.optimizers.items():
        optimizer.load_state_dict(state["optimizers"][update])
    _resume_scaler(run, state)
    run.step, run.elapsed_before = state["step"], state["elapsed"]
    run.history = History.from_dict(json.loads(state["history"]))


def _resume_scaler(run: _Run, state: dict[str, Any]) -> None:
    """The loss scale of the checkpoint, if both runs scale; a change of autocast dtype is allowed, with a warning.

    A checkpoint may move between machines (a GPU run resumed on a CPU), so the dtype is not part of
    the run record; a scaler that starts afresh finds its scale again within a few steps.
    """
    now = dtype_name(run.amp_dtype)
    if "autocast" in state and state["autocast"] != now:
        warnings.warn(f"checkpoint {run.checkpoint_path} was trained in {state['autocast'] or 'float32'}, this run "
                      f"computes in {now or 'float32'} (amp={run.config.amp!r}): training continues, but not as the "
                      "uninterrupted run would have", RuntimeWarning, stacklevel=4)
    if run.scaler.is_enabled() and state["scaler"]:     # a disabled scaler saved an empty state
        run.scaler.load_state_dict(state["scaler"])


def _index_streams(run: _Run) -> dict[str, Any]:
    """One endless index stream per data source, continuing at the run's step."""
    data, sources = run.data, run.method.data_sources
    pools = {"labeled": data.labeled_idx, "unlabeled": data.unlabeled_idx,
             "all": torch.arange(data.train_images.shape[0], device=data.labeled_idx.device)}
    labeled_batch = _labeled_batch_size(run.method, run.config, run.batch_size)
    return {source: index_stream(pools[source].cpu(), labeled_batch if source == "labeled" else run.batch_size,
                                 run.config.seed, number, run.step)
            for number, source in enumerate(sources)}


# ---------------------------------------------------------------- 2. budget and schedule --------
def _check_budget(run: _Run) -> float:
    """Progress through the budget in [0, 1+]: the largest of steps and time used; 1 or more means stop."""
    elapsed = run.elapsed()
    if run.budget_seconds is not None and distributed.is_distributed():
        # All processes must stop at the same step, so they all use rank 0's clock.
        clock = torch.tensor([elapsed], dtype=torch.float64, device=run.device)
        torch.distributed.broadcast(clock, src=0)
        elapsed = clock.item()
    fractions = []
    if run.total_steps is not None:
        fractions.append(run.step / run.total_steps)
    if run.budget_seconds is not None:
        fractions.append(elapsed / run.budget_seconds)
    return max(fractions)


def _set_learning_rates(run: _Run, progress: float) -> float:
    """Every optimiser follows the same schedule shape, scaled to its own peak; returns the history's lr."""
    for update, optimizer in run.optimizers.items():
        lr = _scheduled_lr(progress, run.settings[update], run.warmup_fraction)
        for group in optimizer.param_groups:
            group["lr"] = lr
    return run.lr(progress)


# ---------------------------------------------------------------- 3. draw a batch ---------------
def _draw_batch(run: _Run, progress: float) -> tuple[Batch, StepInfo]:
    """This step's images on the device (indices are cheap CPU tensors), and where the run is."""
    # On CUDA the indices go through pinned memory: a copy from ordinary (pageable) memory would
    # first wait for every queued kernel, i.e. synchronise the step.
    index = {source: _to_device(distributed.local_slice(next(stream)), run.device)
             for source, stream in run.streams.items()}
    labeled_index = index.get("labeled")
    unlabeled_index = index.get("unlabeled", index.get("all"))
    images, labels = run.data.train_images, run.data.train_labels
    batch = Batch(
        labeled_images=images[labeled_index] if labeled_index is not None else None,
        labels=labels[labeled_index] if labeled_index is not None else None,
        unlabeled_images=images[unlabeled_index] if unlabeled_index is not None else None,
        unlabeled_index=unlabeled_index,
        unlabeled_true_labels=labels[unlabeled_index] if unlabeled_index is not None else None,
        **_generators(run))
    info = StepInfo(step=run.step, epoch=run.epoch, progress=progress, steps_per_epoch=run.steps_per_epoch)
    return batch, info


def _generators(run: _Run) -> dict[str, torch.Generator]:
    """Augmentation generators seeded from ``(seed, step)`` (and the process rank for ``generator``)."""
    step_seed = run.config.seed * 1_000_003 + run.step
    return {"generator": torch.Generator(device=run.device).manual_seed(
                (step_seed * 1_009 + distributed.rank()) % 2**63),
            "shared_generator": torch.Generator(device=run.device).manual_seed((step_seed * 1_013 + 977) % 2**63)}


# ---------------------------------------------------------------- 4. one optimisation step ------
def _optimisation_step(run: _Run, batch: Batch, info: StepInfo) -> tuple[torch.Tensor, dict[str, Any]]:
    """Every update of one step, then the method's post-step hook; returns the summed loss and the logs.

    ``torch.compile`` works lazily: a compiler failure shows up in the first step. Then the step is
    redone eagerly from the state it started from (weights, buffers a method may have written
    before the failing call, optimiser and scaler states) with fresh generators, so the run is the
    one an eager run would have been.
    """
    before = _snapshot(run) if run.compiled and not run.compiled_step_done else None
    try:
        loss, logs = _run_updates(run, batch, info)
        run.compiled_step_done = run.compiled_step_done or run.compiled
    except Exception as error:
        if not (run.compiled and _is_compiler_error(error)):
            raise
        run.compiled = _uncompile_backbone(run.method, error)
        if before is not None:
            _restore(run, before)
        loss, logs = _run_updates(run, dataclasses.replace(batch, **_generators(run)), info)
    run.method.after_optimizer_step(info)
    return loss, logs


def _run_updates(run: _Run, batch: Batch, info: StepInfo) -> tuple[torch.Tensor, dict[str, Any]]:
    """For each update in order: clear every gradient, compute its loss, backpropagate, step its optimiser."""
    total, logs = None, {}
    for update in run.method.updates:
        run.method.zero_grad(set_to_none=True)   # no gradient leaks from one update into the next
        output = _update_loss(run, update, batch, info)
        run.scaler.scale(output.loss).backward()
        distributed.average_gradients(run.parameters[update])
        run.scaler.step(run.optimizers[update])
        loss = output.loss.detach().float()
        total = loss if total is None else total + loss
        logs.update(output.logs)
    run.scaler.update()
    return total, logs


def _update_loss(run: _Run, update: str, batch: Batch, info: StepInfo) -> StepOutput:
    # On a GPU, the losses' value checks (probabilities >= 0, labels in range) would each read
    # values back to the host and stall the launch queue; the methods' own outputs need none.
    value_checks = skip_value_checks() if run.device.type == "cuda" else contextlib.nullcontext()
    with value_checks, torch.autocast(run.device.type, dtype=run.amp_dtype, enabled=run.amp_dtype is not None):
        output = run.method.update_step(update, batch, info)
    if output.loss.ndim != 0:
        raise ValueError(f"{run.method.name}: update {update!r} must return a scalar loss, got shape "
                         f"{tuple(output.loss.shape)}")
    return output


def _snapshot(run: _Run) -> dict[str, Any]:
    """Copies of the method's weights and buffers (queues, memories), optimiser and scaler states."""
    return {"method": {name: value.detach().clone() for name, value in run.method.state_dict().items()},
            "optimizers": {update: copy.deepcopy(optimizer.state_dict())
                           for update, optimizer in run.optimizers.items()},
            "scaler": copy.deepcopy(run.scaler.state_dict())}


def _restore(run: _Run, snapshot: dict[str, Any]) -> None:
    run.method.load_state_dict(snapshot["method"])
    for update, optimizer in run.optimizers.items():
        optimizer.load_state_dict(snapshot["optimizers"][update])
    run.scaler = _grad_scaler(run.amp_dtype, run.device)   # forgets which optimisers the failed attempt stepped
    run.scaler.load_state_dict(snapshot["scaler"])


# ---------------------------------------------------------------- 5. logs, monitor, checkpoints -
def _after_step(run: _Run, lr: float) -> None:
    """Flush logs, monitor, end the epoch and checkpoint when due: the only host reads of a step."""
    end_of_epoch = run.step % run.steps_per_epoch == 0
    if run.pending.steps >= run.config.log_every or end_of_epoch:
        _flush_logs(run, lr)
    monitor_every = run.steps_per_epoch if run.config.monitor_every is None else run.config.monitor_every
    if monitor_every and run.step % monitor_every == 0 and run.data.val_size:
        _evaluate(run)
    if end_of_epoch:
        run.method.on_epoch_end(run.step // run.steps_per_epoch - 1, run.data)
        if run.config.checkpoint_every is None:
            _save(run)
    if run.config.checkpoint_every and run.step % run.config.checkpoint_every == 0:
        _save(run)


def _flush_logs(run: _Run, lr: float) -> None:
    """Append the averages since the last flush to the history; stop if a loss was not finite."""
    pending, history = run.pending, run.history
    bad = int(pending.first_bad_step.item())
    if bad >= 0:
        run.bar.close()
        raise FloatingPointError(
            f"{run.method.name}: the loss became non-finite at step {bad} (epoch {bad // run.steps_per_epoch}). "
            f"Lower the learning rate (now {lr:.3g}), check the inputs, or disable AMP (amp=False). "
            "The last good checkpoint, if any, is untouched.")
    history.step.append(run.step)
    history.epoch.append(run.step / run.steps_per_epoch)
    history.seconds.append(run.elapsed())
    history.loss.append(pending.loss.item() / pending.steps)
    history.lr.append(lr)
    for name, total in pending.logs.items():
        history.logs.setdefault(name, []).append(total.item() / pending.steps)
    run.bar.set_postfix(loss=f"{history.loss[-1]:.3f}", lr=f"{lr:.3g}")
    run.pending = _PendingLogs(run.device)


def _evaluate(run: _Run) -> None:
    """The periodic kNN monitor (rank 0 evaluates, with every process's batch-norm statistics synced)."""
    distributed.broadcast_state(run.method)
    if distributed.is_main_process():
        _monitor(run.method, run.data, run.config, run.history, run.step, run.elapsed())
        run.bar.set_postfix(loss=f"{run.history.loss[-1]:.3f}", val_knn=f"{run.history.monitor_knn[-1]:.3f}")


def _save(run: _Run) -> None:
    """Checkpoint the method, every optimiser (by update name), the scaler and the history."""
    distributed.broadcast_state(run.method)  # batch-norm statistics drift apart between processes
    if run.checkpoint_path is None or not distributed.is_main_process():
        return
    history = json.dumps(run.history.to_dict())
    save_checkpoint(run.checkpoint_path, {
        "version": CHECKPOINT_VERSION, "run": run.record, "step": run.step, "elapsed": run.elapsed(),
        "method": run.method.state_dict(),
        "optimizers": {update: optimizer.state_dict() for update, optimizer in run.optimizers.items()},
        "scaler": run.scaler.state_dict(), "autocast": dtype_name(run.amp_dtype), "history": history})
    (run.checkpoint_path.parent / "history.json").write_text(history)


def _to_device(indices: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cuda":
        return indices.pin_memory().to(device, non_blocking=True)
    return indices.to(device)


#: ``compile=None`` compiles only runs at least this long (minutes, or steps without a time budget).
COMPILE_MIN_MINUTES = 10.0
COMPILE_MIN_STEPS = 2_000


def _compile_backbone(method: Method, config: TrainConfig, on_cuda: bool, total_steps: int | None) -> bool:
    """``torch.compile`` the backbone in place (``nn.Module.compile``), where it pays off.

    The backbone does nearly all the arithmetic of a step, and compiling it in place keeps the
    ``state_dict`` keys unchanged (``torch.compile(module)`` would prefix them with ``_orig_mod.``
    and break checkpoints). Default (``compile=None``): on CUDA, for runs of at least
    ``COMPILE_MIN_MINUTES`` and ``COMPILE_MIN_STEPS`` steps (each where it is set). Compilation
    happens in the first steps and counts against the budget; on the course CPU it took 29 s for a
    small network, and on a GPU it is commonly tens of seconds for a ResNet (not measured here: no
    GPU was lent), so a notebook's 2-minute run would lose much of its budget to it. On a CPU it
    is off: the compile time outweighs the gain in this course's runs.
    """
    if config.compile is None:
        long_run = ((config.max_minutes is None or config.max_minutes >= COMPILE_MIN_MINUTES)
                    and (total_steps is None or total_steps >= COMPILE_MIN_STEPS))
        wanted = on_cuda and long_run
    else:
        wanted = config.compile
    if not wanted:
        return False
    try:
        method.backbone.compile(backend=config.compile_backend)
    except Exception as error:  # noqa: BLE001 - e.g. a Python version torch.compile does not support
        warnings.warn(f"torch.compile is unavailable ({type(error).__name__}: {error}); training eagerly",
                      stacklevel=3)
        return False
    return True


def _is_compiler_error(error: BaseException) -> bool:
    """Errors raised by the compiler stack (Dynamo, AOTAutograd, Inductor / Triton), not by the model."""
    modules = ("torch._dynamo", "torch._inductor", "torch._functorch", "triton")
    return type(error).__module__.startswith(modules)


def _uncompile_backbone(method: Method, error: BaseException) -> bool:
    """Undo :func:`_compile_backbone` after a compiler failure; returns ``False`` (not compiled)."""
    method.backbone._compiled_call_impl = None   # what nn.Module.compile set; None means eager
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    warnings.warn(f"torch.compile failed ({type(error).__name__}: {first_line}); the backbone runs "
                  "eagerly from now on (same results, without the compiler's speed-up). Pass "
                  "compile=False to skip the attempt.", RuntimeWarning, stacklevel=3)
    return False


@torch.no_grad()
def _to_channels_last(module: torch.nn.Module) -> None:
    """Store 4-D weights (convolutions) as NHWC, which tensor cores prefer; leave other tensors alone
    (``module.to(memory_format=...)`` would fail on a method's 5-D buffers)."""
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.ndim == 4:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)


def _monitor(method: Method, data, config: TrainConfig, history: History, step: int, seconds: float) -> None:
    """kNN accuracy on a fixed subset of the *validation* split (the test set stays unread until the
    final metrics), with a fixed subset of the training images and their labels as the bank."""
    val_count = min(config.monitor_val_size, data.val_size)
    index = evenly_spaced(data.val_size, val_count, device=data.val_images.device)
    subset = dataclasses.replace(data, val_images=data.val_images[index], val_labels=data.val_labels[index])
    metrics = evaluate_method(method, subset, knn=True, probe=False, classifier=False,
                              knn_bank=config.monitor_bank_size, splits=("val",))
    history.monitor_step.append(step)
    history.monitor_seconds.append(seconds)
    history.monitor_knn.append(metrics["val_knn_all_labels_accuracy"])
