"""Seconds per training step of each method on the notebooks' CPU set-up: one torch thread, the
``tiny`` backbone, each method's default batch, CIFAR-10's 10 000-image CPU subset.

The notebooks' CPU "Run All" estimates are these step times × the steps of their epochs. One step's
time is the difference between a 6-step and a 2-step run, divided by 4 (start-up and the first
steps' warm-up cancel out).

    SSL_COURSE_DATA=/path/to/data OMP_NUM_THREADS=1 python benchmarks/cpu_step_time.py bigbigan paws
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

#: The notebooks' settings that differ from a method's defaults (notebook 08 keeps 8 supports per class).
NOTEBOOK_HPARAMS = {"paws": {"support_per_class": 8}}


def main(argv: list[str] | None = None) -> int:
    from ssl_course.data import cifar10_available, make_bundle
    from ssl_course.methods import build_method
    from ssl_course.notebook import CPU_SUBSET
    from ssl_course.train import TrainConfig, fit

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("methods", nargs="+", help="method names, e.g. mixmatch fixmatch")
    parser.add_argument("--short", type=int, default=2, help="steps of the short run")
    parser.add_argument("--long", type=int, default=6, help="steps of the long run")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data_name = "cifar10" if cifar10_available() else "synthetic"
    data = make_bundle(data_name, num_labels=250, seed=0, device="cpu", **CPU_SUBSET)
    train_size = len(data.train_images)
    for name in args.methods:
        seconds = {}
        for steps in (args.short, args.long):
            torch.manual_seed(0)
            method = build_method(name, "tiny", data.num_classes, **NOTEBOOK_HPARAMS.get(name, {}))
            history = fit(method, data, TrainConfig(max_steps=steps, seed=0, progress=False, monitor_every=0,
                                                    device="cpu"))
            seconds[steps] = history.seconds[-1]
        per_step = (seconds[args.long] - seconds[args.short]) / (args.long - args.short)
        steps_per_epoch = math.ceil(train_size / method.default_batch_size)
        print(f"{name:>10}: {per_step:.2f} s per step, batch {method.default_batch_size}, {steps_per_epoch} steps "
              f"per epoch of {train_size} images: {per_step * steps_per_epoch:.0f} s per epoch ({data_name})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
