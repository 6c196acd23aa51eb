"""One command for a short GPU slot: measure the course's speed and record its GPU reference runs.

    python benchmarks/gpu_day.py pack                        # here, once: CIFAR-10 -> data/packed/ (~53 MB)
    python benchmarks/gpu_day.py --dry-run                   # the plan: each step and its estimated seconds
    PYTHONPATH=. python benchmarks/gpu_day.py --out benchmarks/out/gpu_day --archive $OUT/results.tar.gz
    python benchmarks/gpu_day.py --smoke --out /tmp/gpu_day  # CPU, tiny: what the tests run

Steps, in order of value (each is skipped when it would not fit in what is left of ``--budget-s``):

1. ``throughput``: training images/s of every registered method (one epoch's time follows), and the
   FLOPs of its training step per primary image (counted by ``torch.utils.flop_counter``);
2. ``record:<notebook>``: the notebook top to bottom in record mode on the GPU
   (``tools/record_reference.py --device cuda --runner script``, no Jupyter needed): every training
   cell trains its whole ``BUDGET_EPOCHS`` with the ``small`` backbone (a cap of
   :data:`GPU_RECORD_MINUTES` per training that a GPU does not reach) and writes its reference run,
   with device and budget, into ``OUT/results/``; a notebook that finishes gets its marker
   ``recorded_NN_small.json``, which makes present mode show it with these references.
   :data:`RECORD_NOTEBOOKS`, most valuable first (``--record`` names others). The step is stopped
   when the time left runs out: the runs it finished stay, and a rerun continues from them;
3. ``augment_share``: the share of a training step spent in augmentation (weak, contrastive, strong);
4. ``peer``: our SimCLR step against lightly's pipeline with the same backbone (skipped, with the
   reason, when lightly is not installed);
5. ``compile``: SimCLR steps/s with ``torch.compile`` on and off (compile time reported apart);
6. ``train:<method>@<labels>``: the notebooks' training cells at their default epoch budget
   (:data:`TRAINING_CELLS`, most valuable first), each writing ``metrics.json``, ``history.json`` and
   ``embedding.npz`` (see :mod:`ssl_course.results`) into ``OUT/runs/<method>_<labels>/``: the
   methods no recorded notebook trained, when time is left.

The archive (``--archive``) holds everything but checkpoints, ``results/`` with its weights
included, split into parts of at most ``--archive-part-mib`` (a device machine sends back files of
at most 16 MiB, 8 files). Back here, from the repository's root, one command puts the GPU
references into ``results/`` (a single archive or its parts alike)::

    cat FOLDER/results.tar.gz* | tar -xzf - results

The ``small`` references' weights are several MB each (``.gitignore`` keeps them out of git, see
the README): a clone without them presents those notebooks with the CPU's ``tiny`` references.

Every finished step is written at once (``OUT/steps/<step>.json``), the archive and ``report.md``
are rewritten after each step, and a rerun skips finished steps (``--resume-from ARCHIVE`` restores
them on a fresh machine). Estimates come from :data:`ASSUMED_TFLOPS` and the FLOP counts in
``benchmarks/gpu_day_flops.json`` (counted on a CPU by ``--only throughput``); once the
``throughput`` step has run, the remaining training steps are planned from its measured images/s.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tarfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))   # a bare machine: PYTHONPATH=. or nothing, no pip install -e

import torch  # noqa: E402

from ssl_course import config  # noqa: E402

#: The notebooks' training cells, most valuable first: (method, labels, notebooks that train it).
#: The epochs are the cells' ``BUDGET_EPOCHS`` (tests/test_gpu_day.py checks they agree).
TRAINING_CELLS: tuple[tuple[str, int, str], ...] = (
    ("supervised", 250, "00, 04-06, 08, 10, 11"), ("supervised", 4000, "00"),
    ("fixmatch", 250, "08"), ("fixmatch", 4000, "08 (exercise), 12"),
    ("simclr", 250, "04"), ("paws", 250, "11"),
    ("moco", 250, "04"), ("supcon", 250, "05"), ("selfcon", 250, "05"), ("nnclr", 250, "06"),
    ("mixmatch", 250, "08"), ("s4l", 250, "08"), ("featmatch", 250, "10"),
    ("rotation", 250, "02"), ("cpc", 250, "02"),
)
#: Default epoch budget of every notebook training cell and of ``compare``.
BUDGET_EPOCHS = 10
#: ``record:<notebook>`` steps, most valuable first: (the notebook's source in notebooks/_src/, the trainings it
#: runs as (method, share of BUDGET_EPOCHS)): only for the plan's estimate. 00 first: it records the supervised
#: baseline that 08, 10 and 11 share (0.0 there: reused). 08, 10 and 11 next: their lessons (the semi-supervised methods
#: pull ahead of the baseline) need the longest training. 09 is left out: it keeps the tiny backbone on every
#: device, so a GPU recording of it would replace its CPU references under the same names.
RECORD_NOTEBOOKS: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = (
    ("00_setup_and_data", (("supervised", 1.0), ("supervised", 1.0))),
    ("08_mixmatch_fixmatch_s4l", (("supervised", 0.0), ("mixmatch", 1.0), ("fixmatch", 1.0), ("s4l", 1.0))),
    ("11_paws", (("paws", 1.0), ("supervised", 0.0))),
    ("10_featmatch", (("featmatch", 1.0), ("supervised", 0.0))),
    ("04_simclr_moco", (("simclr", 1.0), ("moco", 1.0), ("supervised", 1.0))),
    ("05_supcon_selfcon", (("supcon", 1.0), ("selfcon", 1.0), ("supervised", 1.0))),
    ("06_nnclr", (("nnclr", 1.0), ("nnclr", 0.8), ("supervised", 1.0))),    # + 4 queue sizes x 2 epochs
    ("07_bigbigan", (("bigbigan", 1.0), ("supervised", 1.0), ("simclr", 1.0))),
    ("02_pretext_tasks", (("rotation", 1.0), ("relative_position", 1.0), ("jigsaw", 1.0), ("colorization", 1.0),
                          ("aet", 1.0), ("supervised", 1.0), ("relative_position", 0.3))),   # + the short shortcut runs
    ("03_exemplar_and_cpc", (("exemplar", 1.0), ("cpc", 1.0), ("supervised", 1.0))),
    ("12_compare", (("*", 1.0),)),   # every registered method
)
#: Record steps: the most minutes one training may take. No 10-epoch training of the small backbone comes
#: near it on a GPU, so the runs have their whole budget ("uncapped"); the step's time limit bounds the rest.
GPU_RECORD_MINUTES = 30.0
NOTEBOOK_S = 45           # per recorded notebook: python, imports, data, evaluations, figures
BACKBONE = "small"
#: Sustained training FLOP rate assumed for the plan before anything is measured: a guess (about 8 %
#: of the ~790 TFLOP/s bf16 matrix rate measured on an H200; 32x32 convolutions reach far less than
#: large matrix products). Replaced by the measured images/s as soon as ``throughput`` has run.
ASSUMED_TFLOPS = 60.0
STARTUP_S = 25            # python + CUDA start, decoding the pack
EVAL_S = 12               # per training run: validation + test features, kNN and probe on the labels, embedding sample
FLOPS_FILE = ROOT / "benchmarks" / "gpu_day_flops.json"
TRAIN_SIZE = 50_000


@dataclass
class Context:
    out: Path
    device: torch.device
    smoke: bool
    budget_s: float
    data_name: str
    started: float
    timed_steps: int = 10     # steps timed per method by ``throughput`` (after 2 warm-up steps)
    shrink: int = 1           # ``throughput`` divides each method's batch by this (keeping its ratio)
    record: list[Path] | None = None   # notebook sources for ``record:`` steps instead of RECORD_NOTEBOOKS
    archive_part_bytes: int = 15 * 2**20   # the archive is split into parts of at most this size

    @property
    def results(self) -> Path:
        """Where ``record:`` steps write reference runs (``$SSL_COURSE_RESULTS`` of the notebooks)."""
        return self.out / "results"

    def remaining(self) -> float:
        return self.budget_s - (time.perf_counter() - self.started)

    def subset(self) -> dict[str, int | None]:
        return dict(train_subset=500, test_subset=200) if self.smoke else dict(train_subset=None, test_subset=None)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------ measuring steps ------------------
def _bundle(ctx: Context, labels: int = 250):
    from ssl_course.data import make_bundle

    return make_bundle(ctx.data_name, num_labels=100 if ctx.smoke else labels, device=ctx.device, **ctx.subset())


def _method_batch(cls, smoke: bool, shrink: int = 1) -> tuple[int, int]:
    """(primary batch, unlabelled ratio) of a method; ``shrink`` divides the batch but keeps the ratio."""
    ratio = cls.default_unlabeled_ratio
    batch = 16 if smoke else cls.default_batch_size // shrink
    if "labeled" in cls.data_sources and len(cls.data_sources) > 1:   # semi-supervised: labelled = batch / ratio
        batch = max(batch, ratio)
        batch -= batch % ratio
    return batch, ratio


def count_flops(name: str, data, backbone: str, shrink: int = 8) -> float:
    """FLOPs of one training step of ``name`` per primary image (forward + backward, counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    from ssl_course.methods import build_method, get_method_class
    from ssl_course.train import TrainConfig, fit

    batch, _ = _method_batch(get_method_class(name), smoke=False, shrink=shrink)
    method = build_method(name, backbone, data.num_classes)
    settings = TrainConfig(max_steps=1, batch_size=batch, progress=False, monitor_every=0, compile=False,
                           device=str(data.device))
    with FlopCounterMode(display=False) as counter:
        fit(method, data, settings)
    return counter.get_total_flops() / batch


def time_method(name: str, ctx: Context, data, steps: int, compile: bool = False) -> dict[str, Any]:
    """Training images/s (primary images) of ``name`` through the engine, after its first steps.

    On a GPU: wall-clock time between the logs of the warm-up's last step and of the last step. On
    a CPU: the process's CPU time of the timed steps (a separate ``fit`` after the warm-up), which
    other jobs on a shared CPU do not inflate; with one thread it is what an idle core would take.
    """
    from ssl_course.methods import build_method, get_method_class
    from ssl_course.train import TrainConfig, fit

    batch, ratio = _method_batch(get_method_class(name), ctx.smoke, ctx.shrink)
    warm = 3 if compile else 2
    torch.manual_seed(0)
    method = build_method(name, "tiny" if ctx.smoke else BACKBONE, data.num_classes)

    def settings(total: int) -> TrainConfig:
        return TrainConfig(max_steps=total, batch_size=batch, unlabeled_ratio=ratio, progress=False, monitor_every=0,
                           log_every=1, compile=compile, device=str(ctx.device),
                           # smoke: "eager" only traces, so the test checks the code path, not a C compiler
                           compile_backend="eager" if ctx.smoke else "inductor")

    start = time.perf_counter()
    if ctx.device.type == "cpu":
        fit(method, data, settings(warm))
        cpu_start = time.process_time()
        fit(method, data, settings(steps))
        seconds, timed, clock = time.process_time() - cpu_start, steps, "process CPU time"
    else:
        history = fit(method, data, settings(warm + steps))
        # history.seconds[i] is the time at the end of step history.step[i]: skip the warm-up steps.
        first = history.step.index(warm)
        seconds = history.seconds[-1] - history.seconds[first]
        timed, clock = history.step[-1] - history.step[first], "wall"
    total = time.perf_counter() - start
    images_per_s = timed * batch / seconds
    return {"batch": batch, "unlabeled_ratio": ratio, "timed_steps": timed, "clock": clock,
            "images_per_s": round(images_per_s, 1), "seconds_per_epoch": round(TRAIN_SIZE / images_per_s, 2),
            "warmup_seconds": round(total - seconds, 2)}


def step_throughput(ctx: Context) -> dict[str, Any]:
    from ssl_course.methods import method_names

    data = _bundle(ctx)
    rows = {}
    for name in method_names():   # every registered method, also the ones added after this script
        rows[name] = time_method(name, ctx, data, steps=2 if ctx.smoke else ctx.timed_steps)
        if not ctx.smoke or name in ("supervised", "simclr"):
            rows[name]["gflop_per_image"] = round(count_flops(name, data, "tiny" if ctx.smoke else BACKBONE) / 1e9, 3)
        print(f"  {name:>10}: {rows[name]['images_per_s']:>9,.0f} images/s, "
              f"{rows[name]['seconds_per_epoch']:,.1f} s per epoch of {TRAIN_SIZE} images", flush=True)
    return {"backbone": "tiny" if ctx.smoke else BACKBONE, "methods": rows}


def step_augment_share(ctx: Context) -> dict[str, Any]:
    """Share of a training step spent in augmentation, per pipeline, with the course's backbone."""
    from ssl_course.data import augment as A
    from ssl_course.models import build_backbone

    batch = 16 if ctx.smoke else 512
    images = _bundle(ctx).train_images[:batch]
    labels = torch.randint(0, 10, (batch,), device=ctx.device)
    generator = torch.Generator(device=ctx.device).manual_seed(0)
    torch.manual_seed(0)
    backbone = build_backbone("tiny" if ctx.smoke else BACKBONE)
    model = torch.nn.Sequential(backbone, torch.nn.LazyLinear(10)).to(ctx.device)
    cuda = ctx.device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
    with autocast:
        model(A.weak_augment(images[:2], generator))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    result = {"batch": batch}
    for pipeline, augment in (("weak", A.weak_augment), ("contrastive", A.contrastive_augment),
                              ("strong", A.strong_augment)):
        augment_s = step_s = 0.0
        for repeat in range(3 if ctx.smoke else 12):
            _sync(ctx.device)
            start = time.perf_counter()
            views = augment(images, generator)
            _sync(ctx.device)
            middle = time.perf_counter()
            with autocast:
                loss = torch.nn.functional.cross_entropy(model(views), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            _sync(ctx.device)
            if repeat >= 2:   # the first steps pay for allocation and kernel selection
                augment_s += middle - start
                step_s += time.perf_counter() - start
        timed = (3 if ctx.smoke else 12) - 2
        result[pipeline] = {"augment_share": round(augment_s / step_s, 4),
                            "images_per_s": round(timed * batch / step_s, 1)}
        print(f"  {pipeline:>11}: augmentation {augment_s / step_s:.1%} of the step", flush=True)
    return result


def step_peer(ctx: Context) -> dict[str, Any]:
    try:
        import lightly  # noqa: F401
    except ImportError:
        return {"skipped": "lightly is not installed here: the peer comparison needs it "
                           "(pip install lightly, or carry its wheels; see benchmarks/peer_speed.py)"}
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from peer_speed import time_ours, time_peer

    images = _bundle(ctx).train_images.cpu()
    backbone, batch, steps = ("tiny", 16, 2) if ctx.smoke else (BACKBONE, 256, 30)
    workers = 0 if ctx.smoke else min(8, os.cpu_count() or 1)
    ours = time_ours(images, backbone, batch, steps, ctx.device)
    peer = time_peer(images, backbone, batch, steps, ctx.device, workers)
    print(f"  ours {ours:,.0f} images/s, lightly {peer:,.0f} images/s: {ours / peer:.2f}x", flush=True)
    return {"backbone": backbone, "batch": batch, "workers": workers, "ours_images_per_s": round(ours, 1),
            "lightly_images_per_s": round(peer, 1), "ratio": round(ours / peer, 3)}


def step_compile(ctx: Context) -> dict[str, Any]:
    data = _bundle(ctx)
    steps = 2 if ctx.smoke else 30
    off = time_method("simclr", ctx, data, steps)
    try:
        on = time_method("simclr", ctx, data, steps, compile=True)
    except Exception as error:  # a compiler missing on this machine is a result, not a crash
        return {"eager": off, "compiled": None, "error": f"{type(error).__name__}: {error}"}
    print(f"  eager {off['images_per_s']:,.0f}, compiled {on['images_per_s']:,.0f} images/s "
          f"(compile + warm-up {on['warmup_seconds']:.0f} s)", flush=True)
    return {"eager": off, "compiled": on, "speedup": round(on["images_per_s"] / off["images_per_s"], 3)}


# ------------------------------------------------------------------ training steps --------------------
def train_cell(ctx: Context, method: str, labels: int) -> dict[str, Any]:
    """One notebook training cell at its default epoch budget; never longer than the time left."""
    from ssl_course.experiment import Experiment, load_trained, run_experiment
    from ssl_course.results import save_embedding_sample

    run_dir = ctx.out / "runs" / f"{method}_{labels}"
    minutes = None if ctx.smoke else max(0.2, (ctx.remaining() - EVAL_S) / 60)
    experiment = Experiment(method=method, data=ctx.data_name, labels=100 if ctx.smoke else labels,
                            epochs=BUDGET_EPOCHS, minutes=minutes, steps=3 if ctx.smoke else None,
                            backbone="tiny" if ctx.smoke else BACKBONE, batch_size=16 if ctx.smoke else None,
                            device=str(ctx.device), progress=False, compile=False, **ctx.subset())
    metrics = run_experiment(experiment, run_dir, resume=True)
    trained, data = load_trained(run_dir, device=ctx.device)
    save_embedding_sample(run_dir, trained, data)
    planned_steps = None
    history = json.loads((run_dir / "history.json").read_text())
    if history["epoch"]:
        planned_steps = round(history["step"][-1] / history["epoch"][-1] * BUDGET_EPOCHS)
    finished = metrics["steps"] >= (planned_steps or 0)
    print(f"  {method}@{labels}: validation accuracy {metrics.get('val_accuracy', float('nan')):.3f}, test accuracy "
          f"{metrics['test_accuracy']:.3f}, {metrics['steps']} steps in "
          f"{metrics['wall_time_seconds']:.0f} s{'' if finished else ' (CUT SHORT by the time left)'}", flush=True)
    return {"run": str(run_dir.relative_to(ctx.out)), "epochs": BUDGET_EPOCHS, "full_budget": finished,
            **{key: metrics.get(key) for key in ("val_accuracy", "test_accuracy", "val_knn_accuracy", "knn_accuracy",
                                                 "linear_probe_accuracy", "steps", "wall_time_seconds",
                                                 "eval_seconds", "device")}}


# ------------------------------------------------------------------ recording notebooks -----------------
def _notebook_number(source: Path) -> str:
    return source.name.split("_")[0]


def record_notebook(ctx: Context, source: Path) -> dict[str, Any]:
    """Run one notebook in record mode on ``ctx.device`` into ``ctx.results``; never longer than the time left.

    A separate process group (the notebook runs as a script under ``tools/record_reference.py``), so
    that when time runs out the whole notebook stops and the GPU is free for the next step.
    """
    import signal
    import subprocess

    from ssl_course import reference

    os.environ[reference.RESULTS_ENV] = str(ctx.results)   # for the notebook, and for reading its marker here
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    command = [sys.executable, str(ROOT / "tools" / "record_reference.py"), "--runner", "script",
               "--device", str(ctx.device), "--minutes", str(1.0 if ctx.smoke else GPU_RECORD_MINUTES), str(source)]
    ctx.results.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    limit = max(1.0, ctx.remaining())
    try:
        process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise TimeoutError(f"{source.name}: stopped after {limit:.0f} s, the time left; the runs it finished are in "
                           f"{ctx.results} (and the archive), and a rerun continues from them") from None
    if process.returncode != 0:
        raise RuntimeError(f"{source.name} failed in record mode (exit code {process.returncode}): see the output "
                           "above; the runs it finished are kept")
    number = _notebook_number(source)
    markers = {backbone: json.loads(path.read_text()) for backbone in reference.BACKBONES
               if (path := reference.recording_marker(number, backbone)).is_file()}
    runs = {name: {**entry, "device": json.loads((ctx.results / name / reference.REFERENCE_FILE).read_text())["device"]}
            for marker in markers.values() for name, entry in marker["runs"].items()}
    print(f"  {source.stem}: {len(runs)} reference runs, " + ", ".join(
        f"{name} {entry['steps']} steps in {entry['seconds']:.0f} s" for name, entry in runs.items()), flush=True)
    return {"notebook": source.stem, "backbones": sorted(markers), "complete": bool(markers), "runs": runs,
            "training_seconds": round(sum(entry["seconds"] for entry in runs.values()), 1)}


def _record_sources(record: list[Path] | None) -> list[tuple[Path, tuple[tuple[str, float], ...]]]:
    if record is not None:
        return [(path, (("*", 0.1),)) for path in record]   # unknown notebooks: a tenth of a comparison's time
    return [(ROOT / "notebooks" / "_src" / f"{stem}.py", trainings) for stem, trainings in RECORD_NOTEBOOKS]


def _record_estimate(trainings: tuple[tuple[str, float], ...], measured: dict[str, Any] | None,
                     flops: dict[str, float]) -> tuple[float, str]:
    from ssl_course.methods import method_names

    total, how = NOTEBOOK_S, "from counted FLOPs"
    for method, share in trainings:
        for name in (method_names() if method == "*" else [method]):
            seconds, how = _training_estimate(name, measured, flops)
            total += share * (seconds - EVAL_S) + EVAL_S * (share > 0)
    return total, how


# ------------------------------------------------------------------ the plan ----------------------------
@dataclass
class Step:
    name: str
    estimate_s: float
    run: Callable[[Context], dict[str, Any]]
    note: str = ""


def _flops_per_image() -> dict[str, float]:
    if FLOPS_FILE.is_file():
        return {k: v["gflop_per_image"] * 1e9 for k, v in json.loads(FLOPS_FILE.read_text())["methods"].items()
                if "gflop_per_image" in v}
    return {}


def _training_estimate(method: str, measured: dict[str, Any] | None, flops: dict[str, float]) -> tuple[float, str]:
    if measured and method in measured:
        return BUDGET_EPOCHS * measured[method]["seconds_per_epoch"] + EVAL_S, "from measured images/s"
    per_image = flops.get(method, 3 * 0.683e9)   # unknown method: three views of the small backbone
    seconds = BUDGET_EPOCHS * TRAIN_SIZE * per_image / (ASSUMED_TFLOPS * 1e12)
    return seconds + EVAL_S, f"from counted FLOPs at an assumed {ASSUMED_TFLOPS:.0f} TFLOP/s"


def build_plan(measured: dict[str, Any] | None = None, record: list[Path] | None = None) -> list[Step]:
    from ssl_course.methods import method_names

    names = method_names()
    flops = _flops_per_image()
    try:
        import lightly  # noqa: F401
        peer = Step("peer", 25, step_peer)
    except ImportError:
        peer = Step("peer", 0, step_peer, "skipped: lightly is not installed")
    steps = [Step("throughput", 5 + 4 * len(names), step_throughput, f"{len(names)} registered methods")]
    for source, trainings in _record_sources(record):
        estimate, how = _record_estimate(trainings, measured, flops)
        steps.append(Step(f"record:{source.stem}", estimate, lambda ctx, path=source: record_notebook(ctx, path),
                          f"record mode, {BUDGET_EPOCHS} epochs per training; {how}"))
    steps += [Step("augment_share", 10, step_augment_share), peer,
             Step("compile", 75, step_compile, "compiling takes most of it")]
    cells = list(TRAINING_CELLS) + [(name, 250, "none yet") for name in names
                                    if name not in {cell[0] for cell in TRAINING_CELLS}]
    for method, labels, notebooks in cells:
        if method not in names:
            continue
        estimate, how = _training_estimate(method, measured, flops)
        steps.append(Step(f"train:{method}@{labels}", estimate,
                          lambda ctx, m=method, n=labels: train_cell(ctx, m, n),
                          f"{BUDGET_EPOCHS} epochs, notebooks {notebooks}; {how}"))
    return steps


def print_plan(budget_s: float, record: list[Path] | None = None) -> int:
    steps = build_plan(record=record)
    total = STARTUP_S
    print(f"{'startup':<24} {STARTUP_S:>6.0f} s  python, CUDA, decoding the CIFAR-10 pack")
    for step in steps:
        fits = total + step.estimate_s <= budget_s
        total += step.estimate_s if fits else 0
        print(f"{step.name:<24} {step.estimate_s:>6.0f} s  {step.note}{'' if fits else '  [does not fit: skipped]'}")
    print(f"total {total:.0f} s")
    return round(total)


# ------------------------------------------------------------------ running ------------------------------
def _step_file(out: Path, name: str) -> Path:
    return out / "steps" / (name.replace(":", "_").replace("@", "_") + ".json")


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(value, indent=2))
    partial.replace(path)


def write_report(out: Path) -> str:
    """``report.md``: one section per finished step, from the step files."""
    lines = ["# GPU day report", ""]
    environment = out / "environment.json"
    if environment.is_file():
        env = json.loads(environment.read_text())
        lines += [f"device: {env['device']}; torch {env['torch']}; python {env['python']}; data {env['data']}", ""]
    for path in sorted((out / "steps").glob("*.json"), key=lambda p: p.stat().st_mtime):
        record = json.loads(path.read_text())
        lines.append(f"## {record['step']} ({record['seconds']:.0f} s, {record['status']})")
        result = record.get("result") or {}
        if record["step"] == "throughput" and "methods" in result:
            lines += ["", f"backbone {result['backbone']}", "", "| method | images/s | s per epoch | GFLOP per image |",
                      "|---|---|---|---|"]
            lines += [f"| {m} | {r['images_per_s']:,.0f} | {r['seconds_per_epoch']:.1f} "
                      f"| {r.get('gflop_per_image', '')} |"
                      for m, r in result["methods"].items()]
        elif record["step"].startswith("record:") and "runs" in result:
            lines += ["", f"notebook {result['notebook']} recorded whole: {result['complete']} "
                          f"(backbone {', '.join(result['backbones']) or '-'}), training "
                          f"{result['training_seconds']:.0f} s of the step's {record['seconds']:.0f} s", "",
                      "| reference run | device | steps | seconds | capped | weights |", "|---|---|---|---|---|---|"]
            lines += [f"| {name} | {run['device']} | {run['steps']} | {run['seconds']:.0f} | {run['capped']} "
                      f"| {run['weights']} |" for name, run in result["runs"].items()]
        else:
            shown = result if record["status"] == "ok" else record.get("error")
            lines += ["", "```", json.dumps(shown, indent=1)[:3000], "```"]
        lines.append("")
    text = "\n".join(lines)
    (out / "report.md").write_text(text)
    return text


#: Most archive parts a device machine sends back (it returns at most 8 files from $OUT).
MAX_ARCHIVE_PARTS = 8


def _archive_parts(archive: Path) -> list[Path]:
    """The parts ``<archive>.00``, ``<archive>.01``... of a split archive, in order."""
    return sorted(path for path in archive.parent.glob(archive.name + ".*") if path.suffix[1:].isdigit())


def write_archive(out: Path, archive: Path, part_bytes: int = 15 * 2**20) -> list[Path]:
    """Everything but checkpoints into one ``.tar.gz``: the reports, the runs' results, and ``results/`` whole
    (the reference runs of ``record:`` steps, weights included).

    A device machine sends back at most 8 files of 16 MiB: an archive over ``part_bytes`` is split
    into ``<archive>.00``, ``.01``... (``cat <archive>* | tar -xzf - ...`` reads either form).
    Returns the files written.
    """
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name("partial-" + archive.name)   # never matched by `cat <archive>*`
    results = out / "results"
    with tarfile.open(partial, "w:gz") as tar:
        for path in sorted(out.rglob("*")):
            wanted = path.suffix in (".json", ".md", ".npz") or path.is_relative_to(results)
            if path.is_file() and wanted and path.resolve() != archive.resolve():
                tar.add(path, arcname=str(path.relative_to(out)))
    stale = _archive_parts(archive) + [archive]
    if partial.stat().st_size <= part_bytes:
        written = [archive]
        partial.replace(archive)
    else:
        data = partial.read_bytes()
        written = [archive.with_name(f"{archive.name}.{index:02d}") for index in range(-(-len(data) // part_bytes))]
        for index, part in enumerate(written):
            part.write_bytes(data[index * part_bytes:(index + 1) * part_bytes])
        partial.unlink()
        if len(written) > MAX_ARCHIVE_PARTS:
            print(f"WARNING: the archive has {len(written)} parts; a device machine sends back only "
                  f"{MAX_ARCHIVE_PARTS} files: record fewer notebooks per slot", flush=True)
    for path in stale:
        if path not in written:
            path.unlink(missing_ok=True)
    return written


def read_archive(archive: Path) -> tarfile.TarFile:
    """Open an archive of :func:`write_archive`, whole or split into parts."""
    import io

    if archive.is_file():
        return tarfile.open(archive)
    parts = _archive_parts(archive)
    if not parts:
        raise FileNotFoundError(f"no archive {archive} (nor its parts {archive.name}.00, .01...)")
    return tarfile.open(fileobj=io.BytesIO(b"".join(part.read_bytes() for part in parts)), mode="r:gz")


def _environment(ctx: Context) -> dict[str, Any]:
    from ssl_course.data import cifar10_available
    from ssl_course.data.packed import find_pack, pack_info

    pack = find_pack(config.data_root())
    name = ("cuda: " + torch.cuda.get_device_name(ctx.device)) if ctx.device.type == "cuda" else (
        f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    return {"device": name, "torch": torch.__version__, "python": platform.python_version(),
            "data": ctx.data_name + (f" ({pack_info(pack)})" if ctx.data_name == "cifar10" and pack and not
                                     (config.data_root() / "cifar-10-batches-py").is_dir() else ""),
            "cifar10_available": cifar10_available(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "smoke": ctx.smoke, "budget_s": ctx.budget_s, "epochs": BUDGET_EPOCHS}


def run_plan(ctx: Context, only: list[str] | None, archive: Path | None) -> int:
    ctx.out.mkdir(parents=True, exist_ok=True)
    _write_json(ctx.out / "environment.json", _environment(ctx))
    measured = None
    failures = 0
    for step in build_plan(record=ctx.record):
        if only and not any(step.name == o or step.name.startswith((o + ":", o + "@")) for o in only):
            continue
        path = _step_file(ctx.out, step.name)
        if path.is_file():
            print(f"{step.name}: done in an earlier run, skipped")
        else:
            if step.name.startswith(("train:", "record:")):
                throughput = _step_file(ctx.out, "throughput")
                if measured is None and throughput.is_file():
                    measured = json.loads(throughput.read_text()).get("result", {}).get("methods")
                if measured:   # planned again from the measured images/s
                    replanned = {planned.name: planned.estimate_s for planned in build_plan(measured, ctx.record)}
                    step.estimate_s = replanned[step.name]
            if not ctx.smoke and step.estimate_s > ctx.remaining():
                print(f"{step.name}: needs ~{step.estimate_s:.0f} s, {ctx.remaining():.0f} s left: skipped")
                continue
            print(f"{step.name} (estimated {step.estimate_s:.0f} s, {ctx.remaining():.0f} s left)", flush=True)
            start = time.perf_counter()
            record: dict[str, Any] = {"step": step.name}
            try:
                record.update(status="ok", result=step.run(ctx))
            except Exception as error:   # one broken step must not cost the others their GPU time
                failures += 1
                record.update(status="failed", error=f"{type(error).__name__}: {error}",
                              traceback=traceback.format_exc())
                print(f"  FAILED: {record['error']}", flush=True)
            record["seconds"] = round(time.perf_counter() - start, 1)
            if record["status"] == "ok":
                _write_json(path, record)
            else:
                _write_json(path.with_suffix(".failed"), record)
        write_report(ctx.out)
        if archive is not None:
            write_archive(ctx.out, archive, ctx.archive_part_bytes)
    print(f"finished: {failures} failed step(s); results in {ctx.out}" + (f", archive {archive}" if archive else ""))
    return 1 if failures else 0


def pack(argv: list[str]) -> int:
    from ssl_course.data.cifar10 import CIFAR10_CLASSES, find_batch_folder, load_cifar10
    from ssl_course.data.packed import PACK_FOLDER, PACK_NAME, write_pack

    parser = argparse.ArgumentParser(prog="gpu_day.py pack", description="write CIFAR-10 as one JPEG pack")
    parser.add_argument("--source", default=None, help="folder holding cifar-10-batches-py/ (default: the data root)")
    parser.add_argument("--out", default=str(ROOT / "data" / PACK_FOLDER / PACK_NAME))
    args = parser.parse_args(argv)
    if find_batch_folder(args.source) is None:
        print(f"no CIFAR-10 pickles under {args.source or config.data_root()}: set SSL_COURSE_DATA or --source")
        return 2
    start = time.perf_counter()
    path = write_pack(args.out, load_cifar10(args.source, train=True, download=False),
                      load_cifar10(args.source, train=False, download=False), CIFAR10_CLASSES)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - start:.0f} s")
    return _check_travel_size(path)


#: What may travel to the device machine: the checkout (tracked and untracked files) plus carried paths.
TRAVEL_LIMIT_BYTES = 64 * 2**20


def _check_travel_size(pack_path: Path) -> int:
    """Print what the device call will carry (tracked files + the pack) and fail when it is over the limit."""
    import subprocess

    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                capture_output=True, check=True).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        print("not a git checkout: cannot tell what travels; the device's limit is 64 MiB in all")
        return 0
    files = [ROOT / name.decode() for name in listed if name]
    checkout = sum(path.stat().st_size for path in files if path.is_file())
    total = checkout + pack_path.stat().st_size
    print(f"the device call carries the checkout ({checkout / 2**20:.1f} MiB, results/ included) and the pack: "
          f"{total / 2**20:.1f} MiB of {TRAVEL_LIMIT_BYTES / 2**20:.0f} MiB")
    if total > TRAVEL_LIMIT_BYTES:
        results = sum(path.stat().st_size for path in files if path.is_file() and path.is_relative_to(ROOT / "results"))
        if total - results <= TRAVEL_LIMIT_BYTES:
            print("over the limit with results/ (the course's reference runs, which the GPU day does not read): move "
                  "it out of the checkout for the device call (`mv results ../results_aside`, back afterwards)")
        else:
            print("over the limit even without results/: the checkout has grown; carry less")
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    global BACKBONE
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["pack"]:
        return pack(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "gpu_day"))
    parser.add_argument("--archive", default=None, help="also keep everything but checkpoints in this .tar.gz")
    parser.add_argument("--resume-from", default=None, help="an archive of an earlier run: its steps are skipped")
    parser.add_argument("--budget-s", type=float, default=540.0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--only", nargs="+", default=None, help="step names (train: selects every training step)")
    parser.add_argument("--backbone", default=BACKBONE, help="backbone of the measurements and trainings")
    parser.add_argument("--timed-steps", type=int, default=10, help="steps timed per method by `throughput`")
    parser.add_argument("--shrink", type=int, default=1, help="`throughput`: divide every batch size by this")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (a shared CPU: 1)")
    parser.add_argument("--record", nargs="+", type=Path, default=None,
                        help="notebook sources (notebooks/_src/NN_x.py) for the record: steps, instead of the plan's")
    parser.add_argument("--archive-part-mib", type=float, default=15.0,
                        help="split the archive into parts of at most this many MiB (a device sends back 16 at most)")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="tiny settings on the CPU (for the tests)")
    args = parser.parse_args(argv)
    if args.dry_run:
        print_plan(args.budget_s, args.record)
        return 0
    from ssl_course.data import cifar10_available

    out = Path(args.out)
    if args.resume_from:
        with read_archive(Path(args.resume_from)) as tar:
            tar.extractall(out, filter="data") if sys.version_info >= (3, 12) else tar.extractall(out)
    BACKBONE = args.backbone
    if args.threads:
        torch.set_num_threads(args.threads)
    device = config.pick_device("cpu" if args.smoke else args.device)
    ctx = Context(out=out, device=device, smoke=args.smoke, budget_s=args.budget_s - STARTUP_S,
                  data_name="synthetic" if args.smoke or not cifar10_available() else "cifar10",
                  started=time.perf_counter(), timed_steps=args.timed_steps, shrink=args.shrink, record=args.record,
                  archive_part_bytes=int(args.archive_part_mib * 2**20))
    if ctx.data_name == "synthetic" and not args.smoke:
        print("WARNING: CIFAR-10 not found (no pickles, no pack under data/packed/): training on synthetic data")
    return run_plan(ctx, args.only, Path(args.archive) if args.archive else None)


if __name__ == "__main__":
    sys.exit(main())
