"""Label efficiency: a linear probe on a self-supervised encoder against a network trained from scratch.

The case for self-supervised pretraining in one figure: with 4, 25, 100 and 400 labels per class,
compare the test accuracy of

* **SimCLR + linear probe**: SimCLR pretrained once on the (unlabelled) training images, frozen;
  a logistic-regression head (:func:`ssl_course.evaluate.linear_probe`) fitted on the labelled
  images only. The same pretraining serves every label count: only the probe sees labels;
* **random encoder + linear probe**: the same architecture, untrained, probed the same way (how
  much of the probe's accuracy the pretraining is responsible for);
* **from scratch**: the ``supervised`` method (weak augmentation, cross-entropy), trained on the
  labelled images only for a fixed number of steps, its own classifier evaluated.

Each label count is run for ``--seeds`` different labelled splits (the probes are cheap; the
from-scratch runs cost ``--scratch-steps`` steps each). The training set is a class-balanced
subset of CIFAR-10 (``--train-subset``), so the pretraining fits a small CPU budget::

    SSL_COURSE_DATA=/path/to/cifar10 PYTHONPATH=. python benchmarks/label_efficiency.py \\
        --out benchmarks/figures --pretrain-epochs 15
    python benchmarks/label_efficiency.py --smoke --out /tmp/label_efficiency   # synthetic, seconds

Writes ``label_efficiency.json`` (every accuracy, the budget, the device, the wall times) and
``label_efficiency_<device>.png`` to ``--out``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LABELS_PER_CLASS = (4, 25, 100, 400)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/figures")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--train-subset", type=int, default=10_000, help="training images kept (balanced)")
    parser.add_argument("--test-subset", type=int, default=2_000)
    parser.add_argument("--pretrain-epochs", type=float, default=15, help="SimCLR epochs over the subset")
    parser.add_argument("--pretrain-batch", type=int, default=256)
    parser.add_argument("--scratch-steps", type=int, default=500, help="steps of each from-scratch run")
    parser.add_argument("--scratch-batch", type=int, default=64)
    parser.add_argument("--labels-per-class", type=int, nargs="+", default=list(LABELS_PER_CLASS))
    parser.add_argument("--seeds", type=int, default=2, help="labelled splits per label count")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--smoke", action="store_true", help="synthetic data, a few steps")
    return parser.parse_args()


def _pretrain(args, data, device):
    """SimCLR on the training images (labels unused); returns the trained method and its seconds."""
    from ssl_course.methods import build_method
    from ssl_course.train import TrainConfig, fit

    method = build_method("simclr", args.backbone, data.num_classes).to(device)
    config = TrainConfig(epochs=args.pretrain_epochs, batch_size=args.pretrain_batch, monitor_every=0,
                         progress=True, device=str(device), seed=0)
    start = time.perf_counter()
    fit(method, data, config)
    return method, time.perf_counter() - start


def _probe_all(encoder_name, embed, data, splits):
    """Linear-probe accuracy of ``embed`` for every (labels per class, seed) split."""
    import torch

    from ssl_course.evaluate import extract_features, linear_probe

    with torch.no_grad():
        train_features = extract_features(embed, data.train_images)
        test_features = extract_features(embed, data.test_images)
    results = {}
    for (per_class, seed), labeled in splits.items():
        results[f"{per_class}/{seed}"] = linear_probe(train_features[labeled], data.train_labels[labeled],
                                                      test_features, data.test_labels, data.num_classes)
        print(f"{encoder_name}: {per_class} labels/class, split {seed}: {results[f'{per_class}/{seed}']:.3f}")
    return results


def _from_scratch(args, data, labeled, seed, device):
    """Train ``supervised`` on the labelled images only; return its test accuracy."""
    from ssl_course.evaluate import evaluate_method
    from ssl_course.methods import build_method
    from ssl_course.train import TrainConfig, fit

    split = _relabel(data, labeled)
    method = build_method("supervised", args.backbone, data.num_classes).to(device)
    config = TrainConfig(max_steps=args.scratch_steps, batch_size=args.scratch_batch, monitor_every=0,
                         progress=False, device=str(device), seed=seed)
    fit(method, split, config)
    return evaluate_method(method, split, knn=False, probe=False)["classifier_accuracy"]


def _relabel(data, labeled):
    """The same images with another labelled subset (``labeled``: indices into the training set)."""
    import dataclasses

    import torch

    unlabeled = torch.ones(data.train_images.shape[0], dtype=torch.bool, device=labeled.device)
    unlabeled[labeled] = False
    return dataclasses.replace(data, labeled_idx=labeled,
                               unlabeled_idx=unlabeled.nonzero().squeeze(1))


def _figure(report, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    styles = {"simclr_probe": ("SimCLR pretrained, linear probe", "tab:blue", "o"),
              "random_probe": ("random encoder, linear probe", "tab:gray", "s"),
              "scratch": ("trained from scratch on the labels", "tab:red", "^")}
    figure, axis = plt.subplots(figsize=(7, 4.5))
    per_class = report["labels_per_class"]
    for key, (label, colour, marker) in styles.items():
        runs = np.array([[report[key][f"{n}/{s}"] for s in range(report["seeds"])] for n in per_class]) * 100
        axis.plot(per_class, runs.mean(1), marker=marker, color=colour, label=label, linewidth=2)
        for column in range(runs.shape[1]):
            axis.scatter(per_class, runs[:, column], color=colour, alpha=0.35, s=18)
    axis.set_xscale("log")
    axis.set_xticks(per_class, [str(n) for n in per_class])
    axis.set(xlabel="labelled images per class (log scale)", ylabel="test accuracy (%)",
             title=f"Label efficiency, {report['budget_short']}")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=10, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def main() -> None:
    args = _parse()
    import torch

    from ssl_course.data import cifar10_available, few_label_split, make_bundle
    from ssl_course.methods import build_method

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.smoke:
        args.train_subset, args.test_subset, args.pretrain_epochs, args.scratch_steps = 500, 200, 0.2, 3
        args.labels_per_class = [2, 4, 8, 16]
    device = torch.device(args.device)
    name = "cifar10" if cifar10_available() and not args.smoke else "synthetic"
    data = make_bundle(name, max(args.labels_per_class) * 10, device=device, train_subset=args.train_subset,
                       test_subset=args.test_subset, download=False)
    splits = {(n, seed): few_label_split(data.train_labels.cpu(), n * data.num_classes, seed=seed,
                                         num_classes=data.num_classes)[0].to(device)
              for n in args.labels_per_class for seed in range(args.seeds)}
    started = time.perf_counter()
    method, pretrain_s = _pretrain(args, data, device)
    method.eval()
    report = {"simclr_probe": _probe_all("SimCLR probe", method.embed, data, splits)}
    torch.manual_seed(0)
    random_method = build_method("simclr", args.backbone, data.num_classes).to(device).eval()
    report["random_probe"] = _probe_all("random probe", random_method.embed, data, splits)
    report["scratch"] = {}
    scratch_start = time.perf_counter()
    for (per_class, seed), labeled in splits.items():
        accuracy = _from_scratch(args, data, labeled, seed, device)
        report["scratch"][f"{per_class}/{seed}"] = accuracy
        print(f"from scratch: {per_class} labels/class, split {seed}: {accuracy:.3f}")
    budget = (f"{args.backbone} backbone, {name} subset of {data.train_images.shape[0]} training / "
              f"{data.test_images.shape[0]} test images; SimCLR {args.pretrain_epochs:g} epochs at batch "
              f"{args.pretrain_batch}; from scratch {args.scratch_steps} steps at batch {args.scratch_batch}")
    report.update(labels_per_class=list(args.labels_per_class), seeds=args.seeds, data=name, budget=budget,
                  budget_short=f"SimCLR {args.pretrain_epochs:g} epochs on {data.train_images.shape[0]} images",
                  device=f"{device.type}: {platform.processor() or platform.machine()}, "
                         f"{torch.get_num_threads()} torch threads, torch {torch.__version__}",
                  date=datetime.date.today().isoformat(), command=" ".join(sys.argv),
                  pretrain_seconds=round(pretrain_s, 1),
                  scratch_seconds=round(time.perf_counter() - scratch_start, 1),
                  total_seconds=round(time.perf_counter() - started, 1))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "label_efficiency.json").write_text(json.dumps(report, indent=2))
    _figure(report, out / f"label_efficiency_{device.type}.png")
    print(json.dumps({k: v for k, v in report.items() if not isinstance(v, dict)}, indent=2))


if __name__ == "__main__":
    main()
