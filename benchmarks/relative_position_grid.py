"""How much of the relative-position label the neighbour patch gives away ALONE (issue 22).

On 32x32 images the 3x3 grid of 8-px patches with 3-px gaps and ±1 px jitter fills the frame, so
each of the 8 neighbour positions is always cut from the same place. Whatever a patch shows about
where in the frame it lies (sky at the top, the object in the middle) then names the label. This
script trains a fresh trunk + linear layer that sees only the neighbour patch, after the method's
own cut (``RelativePosition.cut``, with its ``grid_shift``) and defences (``RelativePosition.defend``),
and reports its accuracy on the VALIDATION split (chance 1/8). A large value is a shortcut the
real task can take without comparing the two patches.

Usage (one thread; results printed as a table)::

    SSL_COURSE_DATA=/work/shared/data/cifar10 python benchmarks/relative_position_grid.py \
        --steps 1000 --seeds 0 1 --grid-shifts 0 16

``--full-task`` trains the method itself instead (``fit``, 128 pairs per step, default
hyper-parameters but ``grid_shift``) and prints its validation position accuracy and the trunk's
kNN (5 000-image bank) and linear probe (250 labels).
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from ssl_course.data import make_bundle
from ssl_course.data.augment import normalize, weak_augment
from ssl_course.evaluate import evaluate_method
from ssl_course.methods import build_method
from ssl_course.models import build_backbone
from ssl_course.train import TrainConfig, fit


def neighbour_only_accuracy(data, grid_shift: int, steps: int, seed: int, batch_size: int = 128,
                            defences: bool = True) -> float:
    """Train a `tiny` trunk + linear layer on neighbour patches alone; accuracy on the validation split."""
    hparams = {} if defences else dict(color_drop=False, downsample_prob=0.0, normalise_patches=False)
    cutter = build_method("relative_position", "tiny", data.num_classes, grid_shift=grid_shift, **hparams)

    def neighbours(images: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        views = weak_augment(images, generator=generator, pad=0)            # the method's flip
        centre, neighbour, labels = cutter.cut(views, generator)
        return cutter.defend(torch.cat([centre, neighbour]), generator)[len(images):], labels

    torch.manual_seed(seed)
    trunk = build_backbone("tiny")
    model = nn.Sequential(trunk, nn.Linear(trunk.feature_dim, 8))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    generator = torch.Generator().manual_seed(100 + seed)
    for _ in range(steps):
        index = torch.randint(len(data.train_images), (batch_size,), generator=generator)
        patches, labels = neighbours(data.train_images[index], generator)
        loss = nn.functional.cross_entropy(model(patches), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    correct = total = 0
    with torch.no_grad():
        generator = torch.Generator().manual_seed(7)
        for start in range(0, len(data.val_images), 500):
            patches, labels = neighbours(data.val_images[start:start + 500], generator)
            correct += (model(patches).argmax(1) == labels).sum().item()
            total += len(labels)
    return correct / total


def full_task(data, grid_shift: int, steps: int, seed: int) -> dict[str, float]:
    """Train relative_position itself; validation position accuracy, kNN and probe of the trunk."""
    torch.manual_seed(seed)
    method = build_method("relative_position", "tiny", data.num_classes, grid_shift=grid_shift)
    fit(method, data, TrainConfig(max_steps=steps, batch_size=128, seed=seed, device="cpu", progress=False,
                                  monitor_every=0))
    results = evaluate_method(method, data, knn=True, probe=True, knn_bank=5000, splits=("val",))
    method.eval()
    chunks = range(0, len(data.val_images), 500)
    results["val_position_accuracy"] = sum(method.position_accuracy(normalize(data.val_images[i:i + 500]), seed=i)
                                           for i in chunks) / len(chunks)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--grid-shifts", type=int, nargs="+", default=[0, 16])
    parser.add_argument("--no-defences", action="store_true", help="also measure without the patch defences")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--full-task", action="store_true", help="train the method itself (see the docstring)")
    parser.add_argument("--smoke", action="store_true", help="synthetic data, a few steps (checks the script runs)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = (make_bundle("synthetic", num_labels=50, train_subset=300, test_subset=100, val_size=100) if args.smoke
            else make_bundle("cifar10", num_labels=250, device="cpu"))
    if args.full_task:
        print("| grid_shift | seed | steps | position accuracy | kNN (5000 bank) | linear probe |")
        print("|---|---|---|---|---|---|")
        for grid_shift in args.grid_shifts:
            for seed in args.seeds:
                r = full_task(data, grid_shift, args.steps, seed)
                print(f"| {grid_shift} | {seed} | {args.steps} | {r['val_position_accuracy']:.3f} | "
                      f"{r['val_knn_all_labels_accuracy']:.3f} | {r['val_linear_probe_accuracy']:.3f} |", flush=True)
        return
    print("| grid_shift | defences | seed | steps | neighbour-only accuracy (val, chance 0.125) | time |")
    print("|---|---|---|---|---|---|")
    for grid_shift in args.grid_shifts:
        for defences in ([True, False] if args.no_defences else [True]):
            for seed in args.seeds:
                start = time.time()
                accuracy = neighbour_only_accuracy(data, grid_shift, args.steps, seed, defences=defences)
                print(f"| {grid_shift} | {'on' if defences else 'off'} | {seed} | {args.steps} | {accuracy:.3f} | "
                      f"{time.time() - start:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
