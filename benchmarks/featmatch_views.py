"""Per-step time of FeatMatch against the number of strong views K (CPU, tiny backbone).

Times ``training_step`` + backward + an SGD step at the default batch (128 unlabelled, 64
labelled images) with prototypes active (the official ``train2`` phase), on synthetic images.
Reports wall and process CPU seconds per step (``time.process_time``), since a loaded machine
stretches wall time but not CPU time much.

    PYTHONPATH=$PWD nice -n 15 python benchmarks/featmatch_views.py --steps 24 --views 1 2 8
"""
from __future__ import annotations

import argparse
import time

import torch

from ssl_course.data import make_bundle
from ssl_course.methods import Batch, StepInfo, build_method


def time_steps(data, views: int, weak: bool, steps: int, threads: int) -> tuple[float, float]:
    torch.manual_seed(0)
    method = build_method("featmatch", "tiny", data.num_classes, num_strong_views=views,
                          weak_view_consistency=weak)
    method.refresh_prototypes(data)
    optimizer = torch.optim.SGD(method.parameters(), lr=0.01, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    num_unlabeled, num_labeled = method.default_batch_size, method.default_batch_size // method.default_unlabeled_ratio

    def one_step(i: int) -> None:
        lab = data.labeled_idx[torch.randint(len(data.labeled_idx), (num_labeled,), generator=generator)]
        unl = data.unlabeled_idx[torch.randint(len(data.unlabeled_idx), (num_unlabeled,), generator=generator)]
        batch = Batch(labeled_images=data.train_images[lab], labels=data.train_labels[lab],
                      unlabeled_images=data.train_images[unl], unlabeled_index=unl, generator=generator)
        output = method.training_step(batch, StepInfo(step=i, epoch=0, progress=0.5, steps_per_epoch=100))
        optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        optimizer.step()

    for i in range(2):  # warm-up
        one_step(i)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(steps):
        one_step(i)
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--views", type=int, nargs="+", default=[1, 2, 8])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = make_bundle("synthetic", num_labels=100, seed=0, device="cpu", train_subset=1000, test_subset=10)
    rows = [(1, False)] + [(k, True) for k in args.views]
    for views, weak in rows:
        wall, cpu = time_steps(data, views, weak, args.steps, args.threads)
        print(f"K={views} weak_view_consistency={weak}: {wall:.3f} s wall, {cpu:.3f} s CPU per step "
              f"({args.threads} thread(s), {args.steps} steps)", flush=True)


if __name__ == "__main__":
    main()
