"""How training time and memory grow with batch size, queue size and support-set size.

Three sweeps, each a real training step of the engine (:func:`ssl_course.train.fit`, augmentation,
forward, backward, optimiser; no monitoring):

* **batch size**: SimCLR. The NT-Xent similarity matrix is ``[2B, 2B]``, so its part grows as
  ``B^2`` while the network grows as ``B``;
* **queue size**: MoCo and NNCLR. Each step compares ``2B`` embeddings with ``K`` queued ones
  (``[2B, K]`` logits; NNCLR also searches the queue for nearest neighbours);
* **support size**: PAWS. Every anchor view is compared with the ``S`` labelled support
  embeddings (``S = support_per_class x classes x support_views``) and the support images also
  go through the network, so this one costs network time, not only a bigger matrix.

Every configuration runs in a fresh process, so its memory figure is its own: on CUDA the peak
of ``torch.cuda.max_memory_allocated`` during training minus what was allocated before it (data
and weights); on a CPU the growth of the process's peak resident memory (``ru_maxrss``) during
training. Time per step is the median over the timed steps (the first two are warm-up). The
script prints a table and writes ``scaling.csv`` and ``scaling.png`` to ``--out``::

    python benchmarks/scaling.py --device cuda --backbone resnet18 --out runs/scaling
    python benchmarks/scaling.py --device cpu --backbone tiny --steps 4 --out runs/scaling_cpu
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: (sweep, method, swept hyper-parameter, values, fixed settings)
SWEEPS = {
    "batch": ("simclr", "batch_size", [64, 128, 256, 512], {}),
    "queue_moco": ("moco", "queue_size", [1024, 4096, 16384, 65536], {"batch_size": 256}),
    "queue_nnclr": ("nnclr", "queue_size", [1024, 4096, 16384, 65536], {"batch_size": 256}),
    "support": ("paws", "support_per_class", [2, 4, 8, 16, 32], {"batch_size": 128}),
}


def _peak_resident_bytes() -> int:
    """Peak resident memory of this process so far (Unix only: ``resource`` does not exist on Windows)."""
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024          # bytes on macOS, KiB on Linux


def _measure(spec: dict) -> dict:
    """Run in a fresh process: build data and method, train ``steps`` steps, report time and memory."""
    import torch

    from ssl_course.config import pick_device
    from ssl_course.data import cifar10_available, make_bundle
    from ssl_course.methods import build_method
    from ssl_course.train import TrainConfig, fit

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    device = pick_device(spec["device"])
    data_name = "cifar10" if cifar10_available() and not spec["synthetic"] else "synthetic"
    data = make_bundle(data_name, 250, device=device, train_subset=5000, test_subset=1000, download=False)
    hparams = {spec["param"]: spec["value"]} if spec["param"] != "batch_size" else {}
    method = build_method(spec["method"], spec["backbone"], 10, **hparams)
    batch_size = spec["value"] if spec["param"] == "batch_size" else spec["fixed"].get("batch_size")
    config = TrainConfig(max_steps=spec["steps"] + 2, batch_size=batch_size, monitor_every=0,
                         log_every=1, progress=False, device=spec["device"], seed=0)
    method.to(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    else:
        before = _peak_resident_bytes()
    history = fit(method, data, config)
    if device.type == "cuda":
        extra = torch.cuda.max_memory_allocated(device) - before
    else:
        extra = _peak_resident_bytes() - before
    step_seconds = [b - a for a, b in zip(history.seconds, history.seconds[1:])][1:]   # drop warm-up
    return {"method": spec["method"], "param": spec["param"], "value": spec["value"],
            "batch_size": batch_size or method.default_batch_size,
            "seconds_per_step": statistics.median(step_seconds), "extra_memory_mb": extra / 2**20,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "data": data_name, "backbone": spec["backbone"], "steps": len(step_seconds)}


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("batch_size", "batch size (SimCLR)"), ("queue_size", "queue size (MoCo, NNCLR)"),
              ("support_per_class", "support images per class (PAWS)")]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), squeeze=False)
    for column, (param, title) in enumerate(panels):
        for method in sorted({r["method"] for r in rows if r["param"] == param}):
            points = sorted((r["value"], r["seconds_per_step"], r["extra_memory_mb"])
                            for r in rows if r["param"] == param and r["method"] == method)
            xs = [p[0] for p in points]
            axes[0][column].plot(xs, [p[1] * 1000 for p in points], "o-", label=method)
            axes[1][column].plot(xs, [p[2] for p in points], "o-", label=method)
        for row, label in ((0, "ms per training step"), (1, "extra peak memory (MiB)")):
            ax = axes[row][column]
            ax.set_xscale("log", base=2)
            ax.set_xlabel(title)
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            ax.legend()
    first = rows[0]
    fig.suptitle(f"Cost of one training step: {first['backbone']} backbone on {first['device']} "
                 f"({first['data']} images)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--backbone", default=None, help="default: resnet18 on CUDA, tiny on a CPU")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per configuration")
    parser.add_argument("--sweeps", nargs="+", default=list(SWEEPS), choices=list(SWEEPS))
    parser.add_argument("--values", type=int, nargs="+", default=None,
                        help="override the swept values (e.g. --sweeps batch --values 32 64)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    parser.add_argument("--synthetic", action="store_true", help="synthetic images even if CIFAR-10 is there")
    parser.add_argument("--out", default="runs/scaling")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_measure(json.loads(args.worker))))
        return
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    if args.values and min(args.values) < 1:
        parser.error("--values must be positive")
    import torch
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = "cpu" if device == "auto" else device
    backbone = args.backbone or ("resnet18" if device == "cuda" else "tiny")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from tqdm.auto import tqdm
    jobs = [(name, value) for name in args.sweeps for value in (args.values or SWEEPS[name][2])]
    rows = []
    for name, value in tqdm(jobs, desc="configurations"):
        method, param, _, fixed = SWEEPS[name]
        spec = {"method": method, "param": param, "value": value, "fixed": fixed, "device": device,
                "backbone": backbone, "steps": args.steps, "threads": args.threads,
                "synthetic": args.synthetic}
        done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True,
                              text=True, cwd=ROOT, env=dict(os.environ))
        if done.returncode != 0:
            tqdm.write(f"{method} {param}={value} failed:\n{done.stderr[-2000:]}")
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    if not rows:
        sys.exit("no configuration ran")

    print(f"\n{'method':8s} {'parameter':>18s} {'value':>7s} {'batch':>6s} {'ms/step':>9s} {'extra MiB':>10s}")
    for r in rows:
        print(f"{r['method']:8s} {r['param']:>18s} {r['value']:7d} {r['batch_size']:6d} "
              f"{r['seconds_per_step'] * 1000:9.1f} {r['extra_memory_mb']:10.1f}")
    print(f"(device {rows[0]['device']}, backbone {backbone}, {rows[0]['data']} images, "
          f"median of {args.steps} steps, torch {torch.__version__})")
    with open(out / "scaling.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _plot(rows, out / "scaling.png")
    print(f"wrote {out / 'scaling.csv'} and {out / 'scaling.png'}")


if __name__ == "__main__":
    main()
