"""The one training engine: every method, every notebook, the CLI and the comparison use :func:`fit`.

What it does for a method (and what a method therefore never has to write):

1. device placement (cuda → mps → cpu), ``channels_last``, bf16/fp16 autocast and ``torch.compile``
   of the backbone on a GPU (falling back to eager if the compiler fails);
2. index batches that are a pure function of ``(seed, epoch)`` and augmentation generators seeded
   from ``(seed, step)``: a resumed run draws exactly the batches an uninterrupted one would;
3. SGD (or AdamW / LARS-free SGD) with linear warm-up and cosine decay, driven by progress
   through the budget (epochs, steps, or minutes);
4. a ``tqdm.auto`` progress bar, a history of loss / lr / logged scalars, periodic kNN monitoring;
5. atomic checkpoints (temporary file + ``os.replace``) loaded with ``weights_only=True``;
6. a clear error naming the step when the loss stops being finite.
"""
from __future__ import annotations

import contextlib
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

from ssl_course import distributed
from ssl_course.config import pick_device
from ssl_course.data.splits import evenly_spaced
from ssl_course.evaluate import evaluate_method
from ssl_course.losses import skip_value_checks
from ssl_course.methods.base import Batch, Method, StepInfo

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_VERSION = 1


@dataclass
class TrainConfig:
    """Budget and optimisation settings. ``None`` means "the method's default".

    Give at least one of ``epochs``, ``max_steps`` or ``max_minutes``; with several, training stops
    at whichever comes first. One epoch is ``len(train set) // batch_size`` steps for every method,
    so "10 epochs" is the same number of primary images for all of them.
    """

    epochs: float | None = None
    max_steps: int | None = None
    max_minutes: float | None = None
    batch_size: int | None = None          # primary batch: labelled (supervised) or unlabelled/all
    unlabeled_ratio: int | None = None     # semi-supervised: unlabelled = ratio × labelled batch
    optimizer: str | None = None           # "sgd" or "adamw"
    lr: float | None = None                # None: method.default_lr × batch_size / 256
    weight_decay: float | None = None
    momentum: float = 0.9
    warmup_fraction: float = 0.05
    amp: bool = True                       # autocast on CUDA only
    channels_last: bool = True             # on CUDA only
    compile: bool | None = None            # torch.compile the backbone; None: on CUDA, for long runs
    compile_backend: Any = "inductor"      # torch.compile's backend ("eager" only traces: for tests)
    monitor_every: int | None = None       # steps between kNN checks; None: once per epoch; 0: never
    monitor_bank_size: int = 10_000
    monitor_test_size: int = 2_000
    log_every: int = 10
    checkpoint_every: int | None = None    # steps; None: at every epoch end (when out_dir is set)
    out_dir: str | Path | None = None
    resume: bool = False
    seed: int = 0
    progress: bool = True
    device: str | None = None

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
        if self.optimizer is not None and self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}: choose 'sgd' or 'adamw'")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")


@dataclass
class History:
    """What happened during training; plotted by :func:`ssl_course.viz.plot_history`."""

    step: list[int] = field(default_factory=list)
    epoch: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    logs: dict[str, list[float]] = field(default_factory=dict)
    monitor_step: list[int] = field(default_factory=list)
    monitor_seconds: list[float] = field(default_factory=list)
    monitor_knn: list[float] = field(default_factory=list)
    final: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "History":
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


# ---------------------------------------------------------------- batches ------------------------
def _permutation(size: int, seed: int, stream: int, epoch: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(((seed * 1_000_003 + stream) * 1_000_003 + epoch) % 2**63)
    return torch.randperm(size, generator=generator)


def _index_stream(pool: torch.Tensor, batch_size: int, seed: int, stream: int, start: int):
    """Batches ``start, start+1, …`` of ``pool`` in a per-pass shuffled order, cycling forever."""
    if pool.numel() == 0:
        raise ValueError("cannot draw batches from an empty index pool")
    batches_per_pass = max(1, pool.numel() // batch_size)
    number, order, order_pass = start, None, -1
    while True:
        pass_index, offset = divmod(number, batches_per_pass)
        if pool.numel() >= batch_size:
            if pass_index != order_pass:  # one shuffle per pass, not per batch
                order, order_pass = _permutation(pool.numel(), seed, stream, pass_index), pass_index
            yield pool[order[offset * batch_size:(offset + 1) * batch_size]]
        else:  # fewer images than a batch (e.g. 40 labels): sample with repetition
            generator = torch.Generator().manual_seed(((seed * 7919 + stream) * 1_000_003 + number) % 2**63)
            yield pool[torch.randint(pool.numel(), (batch_size,), generator=generator)]
        number += 1


# ---------------------------------------------------------------- schedule -----------------------
def lr_at(progress: float, base_lr: float, warmup_fraction: float) -> float:
    """Linear warm-up over the first ``warmup_fraction`` of training, then cosine decay to 0."""
    progress = min(max(progress, 0.0), 1.0)
    if warmup_fraction > 0 and progress < warmup_fraction:
        return base_lr * progress / warmup_fraction
    span = 1.0 - warmup_fraction
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * (progress - warmup_fraction) / span))


def _build_optimizer(method: Method, name: str, lr: float, weight_decay: float, momentum: float):
    decay, no_decay = [], []
    for parameter in method.optimizer_parameters():
        # Biases and normalisation scales are not weight-decayed (standard practice since ResNet).
        (no_decay if parameter.ndim <= 1 else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True)


# ---------------------------------------------------------------- the loop -----------------------
def fit(method: Method, data, config: TrainConfig) -> History:
    """Train ``method`` on ``data`` (a :class:`ssl_course.data.DataBundle`) within ``config``'s budget.

    Returns the :class:`History`; with ``config.out_dir`` set, also writes ``checkpoint.pt`` (every
    epoch and at the end) and ``history.json``. ``config.resume=True`` continues from the
    checkpoint in ``out_dir`` and gives the same weights as an uninterrupted run.
    """
    device = distributed.local_device() or pick_device(config.device)
    main_process = distributed.is_main_process()
    data = data.to(device)
    method.to(device)
    on_cuda = device.type == "cuda"
    if on_cuda and config.channels_last:
        _to_channels_last(method)

    batch_size = config.batch_size or method.default_batch_size
    ratio = config.unlabeled_ratio or method.default_unlabeled_ratio
    sources = method.data_sources
    semi = "labeled" in sources and len(sources) > 1
    labeled_batch = max(1, batch_size // ratio) if semi else batch_size
    train_size = data.train_images.shape[0]
    steps_per_epoch = max(1, train_size // batch_size)
    total_steps = None
    if config.epochs is not None:
        total_steps = max(1, round(config.epochs * steps_per_epoch))
    if config.max_steps is not None:
        total_steps = min(total_steps or config.max_steps, config.max_steps)
    budget_seconds = config.max_minutes * 60 if config.max_minutes is not None else None

    compiled = _compile_backbone(method, config, on_cuda, total_steps)
    compiled_step_done = False   # a first compiled step succeeded: the compiler works here
    optimizer_name = config.optimizer or method.default_optimizer
    base_lr = config.lr or method.default_lr * batch_size / 256
    weight_decay = config.weight_decay if config.weight_decay is not None else method.default_weight_decay
    optimizer = _build_optimizer(method, optimizer_name, base_lr, weight_decay, config.momentum)
    amp_dtype = None
    if on_cuda and config.amp:
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    run_record = {"method": method.name, "batch_size": batch_size, "labeled_batch": labeled_batch,
                  "seed": config.seed, "optimizer": optimizer_name, "lr": base_lr,
                  "num_labels": int(data.labeled_idx.numel()), "train_size": train_size,
                  "hparams": json.dumps(method.hparams(), sort_keys=True, default=str)}
    history, step, elapsed_before = History(), 0, 0.0
    out_dir = Path(config.out_dir) if config.out_dir is not None else None
    checkpoint_path = out_dir / CHECKPOINT_NAME if out_dir is not None else None
    if config.resume:
        if checkpoint_path is None:
            raise ValueError("resume=True needs out_dir (the folder holding checkpoint.pt)")
        if checkpoint_path.exists():
            state = load_checkpoint(checkpoint_path, map_location=device)
            mismatched = {key: (state["run"].get(key), value) for key, value in run_record.items()
                          if state["run"].get(key) != value}
            if mismatched:
                raise ValueError(f"checkpoint {checkpoint_path} belongs to a different run: {mismatched} "
                                 "(saved, now). Train into a new out_dir or resume with the same settings.")
            method.load_state_dict(state["method"])
            optimizer.load_state_dict(state["optimizer"])
            scaler.load_state_dict(state["scaler"])
            step, elapsed_before = state["step"], state["elapsed"]
            history = History.from_dict(json.loads(state["history"]))
    distributed.broadcast_state(method)  # every process starts from rank 0's weights

    def progress_of(current_step: int, elapsed: float) -> float:
        fractions = []
        if total_steps is not None:
            fractions.append(current_step / total_steps)
        if budget_seconds is not None:
            fractions.append(elapsed / budget_seconds)
        return max(fractions)

    def save(current_step: int, elapsed: float) -> None:
        distributed.broadcast_state(method)  # batch-norm statistics drift apart between processes
        if checkpoint_path is None or not main_process:
            return
        save_checkpoint(checkpoint_path, {
            "version": CHECKPOINT_VERSION, "run": run_record, "step": current_step, "elapsed": elapsed,
            "method": method.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
            "history": json.dumps(history.to_dict())})
        (out_dir / "history.json").write_text(json.dumps(history.to_dict()))

    pools = {"labeled": data.labeled_idx, "unlabeled": data.unlabeled_idx,
             "all": torch.arange(train_size, device=data.labeled_idx.device)}
    streams = {source: _index_stream(pools[source].cpu(), labeled_batch if source == "labeled" and semi
                                     else batch_size, config.seed, number, step)
               for number, source in enumerate(sources)}
    monitor_every = steps_per_epoch if config.monitor_every is None else config.monitor_every

    method.train()
    start_time = time.perf_counter()
    loss_sum = torch.zeros((), device=device)
    log_sums: dict[str, torch.Tensor] = {}
    first_bad_step = torch.full((), -1, device=device, dtype=torch.long)
    steps_since_log = 0
    bar = tqdm(total=total_steps, initial=step, desc=method.name, disable=not (config.progress and main_process),
               dynamic_ncols=True)

    def elapsed_now() -> float:
        return elapsed_before + time.perf_counter() - start_time

    while True:
        elapsed = elapsed_now()
        if budget_seconds is not None and distributed.is_distributed():
            # All processes must stop at the same step, so they all use rank 0's clock.
            clock = torch.tensor([elapsed], dtype=torch.float64, device=device)
            torch.distributed.broadcast(clock, src=0)
            elapsed = clock.item()
        progress = progress_of(step, elapsed)
        if progress >= 1.0:
            break
        epoch = step // steps_per_epoch
        lr = lr_at(progress, base_lr, config.warmup_fraction)
        for group in optimizer.param_groups:
            group["lr"] = lr

        # 1. gather this step's images on the device (indices are cheap CPU tensors). On CUDA the
        # indices go through pinned memory: a copy from ordinary (pageable) memory would first
        # wait for every queued kernel, i.e. synchronise the step.
        index = {source: _to_device(distributed.local_slice(next(stream)), device)
                 for source, stream in streams.items()}
        labeled_index = index.get("labeled")
        unlabeled_index = index.get("unlabeled", index.get("all"))
        step_seed = config.seed * 1_000_003 + step

        def generators() -> dict[str, torch.Generator]:
            return {"generator": torch.Generator(device=device).manual_seed(
                        (step_seed * 1_009 + distributed.rank()) % 2**63),
                    "shared_generator": torch.Generator(device=device).manual_seed(
                        (step_seed * 1_013 + 977) % 2**63)}
        batch = Batch(
            labeled_images=data.train_images[labeled_index] if labeled_index is not None else None,
            labels=data.train_labels[labeled_index] if labeled_index is not None else None,
            unlabeled_images=data.train_images[unlabeled_index] if unlabeled_index is not None else None,
            unlabeled_index=unlabeled_index,
            unlabeled_true_labels=data.train_labels[unlabeled_index] if unlabeled_index is not None else None,
            **generators())
        info = StepInfo(step=step, epoch=epoch, progress=progress, steps_per_epoch=steps_per_epoch)

        # 2. the method's loss, under autocast on a GPU, and its gradients. torch.compile works
        # lazily: a compiler failure shows up here, in the first step. Then the step is redone
        # eagerly from the state it started from (a method may have written to its queues or
        # memories before the failing call) with fresh generators, so the run is the one an
        # eager run would have been.
        before_first_compiled_step = _snapshot(method) if compiled and not compiled_step_done else None
        try:
            output = _loss_and_gradients(method, batch, info, optimizer, scaler, device, amp_dtype)
            compiled_step_done = compiled_step_done or compiled
        except Exception as error:
            if not (compiled and _is_compiler_error(error)):
                raise
            compiled = _uncompile_backbone(method, error)
            if before_first_compiled_step is not None:
                method.load_state_dict(before_first_compiled_step)
            output = _loss_and_gradients(method, dataclasses.replace(batch, **generators()), info,
                                         optimizer, scaler, device, amp_dtype)
        loss = output.loss

        # 3. optimise; remember the first non-finite step without a host sync
        distributed.average_gradients(method.optimizer_parameters())
        scaler.step(optimizer)
        scaler.update()
        method.after_optimizer_step(info)
        detached = loss.detach().float()
        first_bad_step = torch.where((first_bad_step < 0) & ~torch.isfinite(detached),
                                     torch.full_like(first_bad_step, step), first_bad_step)
        loss_sum += detached
        for name, value in output.logs.items():
            value = torch.as_tensor(value, device=device).detach().float()
            log_sums[name] = log_sums.get(name, torch.zeros((), device=device)) + value
        steps_since_log += 1
        step += 1
        bar.update(1)

        # 4. logging, monitoring, checkpoints (the only places that read values back to the host)
        end_of_epoch = step % steps_per_epoch == 0
        if steps_since_log >= config.log_every or end_of_epoch:
            bad = int(first_bad_step.item())
            if bad >= 0:
                bar.close()
                raise FloatingPointError(
                    f"{method.name}: the loss became non-finite at step {bad} (epoch {bad // steps_per_epoch}). "
                    f"Lower the learning rate (now {lr:.3g}), check the inputs, or disable AMP (amp=False). "
                    "The last good checkpoint, if any, is untouched.")
            history.step.append(step)
            history.epoch.append(step / steps_per_epoch)
            history.seconds.append(elapsed_now())
            history.loss.append(loss_sum.item() / steps_since_log)
            history.lr.append(lr)
            for name, total in log_sums.items():
                history.logs.setdefault(name, []).append(total.item() / steps_since_log)
            bar.set_postfix(loss=f"{history.loss[-1]:.3f}", lr=f"{lr:.3g}")
            loss_sum.zero_()
            log_sums = {}
            steps_since_log = 0
        if monitor_every and step % monitor_every == 0:
            distributed.broadcast_state(method)
            if main_process:
                _monitor(method, data, config, history, step, elapsed_now())
                bar.set_postfix(loss=f"{history.loss[-1]:.3f}", knn=f"{history.monitor_knn[-1]:.3f}")
        if end_of_epoch:
            method.on_epoch_end(epoch, data)
            if config.checkpoint_every is None:
                save(step, elapsed_now())
        if config.checkpoint_every and step % config.checkpoint_every == 0:
            save(step, elapsed_now())
    bar.close()
    if steps_since_log:
        bad = int(first_bad_step.item())
        if bad >= 0:
            raise FloatingPointError(f"{method.name}: the loss became non-finite at step {bad}.")
        history.step.append(step)
        history.epoch.append(step / steps_per_epoch)
        history.seconds.append(elapsed_now())
        history.loss.append(loss_sum.item() / steps_since_log)
        history.lr.append(lr_at(progress_of(step, elapsed_now()), base_lr, config.warmup_fraction))
        for name, total in log_sums.items():
            history.logs.setdefault(name, []).append(total.item() / steps_since_log)
    save(step, elapsed_now())
    return history


def _snapshot(method: Method) -> dict[str, torch.Tensor]:
    """A copy of the method's weights and buffers (queues, memories), to undo a failed step."""
    return {name: value.detach().clone() for name, value in method.state_dict().items()}


def _to_device(indices: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cuda":
        return indices.pin_memory().to(device, non_blocking=True)
    return indices.to(device)


def _loss_and_gradients(method: Method, batch: Batch, info: StepInfo, optimizer, scaler, device: torch.device,
                        amp_dtype: torch.dtype | None):
    # On a GPU, the losses' value checks (probabilities >= 0, labels in range) would each read
    # values back to the host and stall the launch queue; the methods' own outputs need none.
    value_checks = skip_value_checks() if device.type == "cuda" else contextlib.nullcontext()
    with value_checks, torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        output = method.training_step(batch, info)
    if output.loss.ndim != 0:
        raise ValueError(f"{method.name}.training_step must return a scalar loss, got shape "
                         f"{tuple(output.loss.shape)}")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(output.loss).backward()
    return output


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
    """kNN accuracy on a fixed subset of the test set, with a fixed subset of the training set as bank."""
    test_count = min(config.monitor_test_size, data.test_images.shape[0])
    index = evenly_spaced(data.test_images.shape[0], test_count, device=data.test_images.device)
    subset = dataclasses.replace(data, test_images=data.test_images[index], test_labels=data.test_labels[index])
    metrics = evaluate_method(method, subset, knn=True, probe=False, classifier=False,
                              knn_bank_size=config.monitor_bank_size)
    history.monitor_step.append(step)
    history.monitor_seconds.append(seconds)
    history.monitor_knn.append(metrics["knn_accuracy"])
