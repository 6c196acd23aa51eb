"""Re-check defaults first chosen from test numbers on a held-out VALIDATION split (never the test set).

The validation split is carved out of the CIFAR-10 training images: ``val_per_class`` images of
every class, drawn with a fixed seed from the unlabelled pool, then removed from the training set
(neither labelled nor unlabelled, and not in the self-supervised pool). The bundle's "test" slot
holds the validation images, so every accuracy this script prints is a validation accuracy.

Usage (one setting per call, one thread, results appended as JSON lines)::

    SSL_COURSE_DATA=/work/shared/data/cifar10 python benchmarks/recheck_defaults.py \
        --method mixmatch --steps 400 --labels 250 -p rampup_fraction=0.0625 -p rampup_images=0
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

from ssl_course.data import make_bundle
from ssl_course.evaluate import evaluate_method
from ssl_course.methods import build_method
from ssl_course.train import TrainConfig, fit


def validation_bundle(num_labels: int, train_subset: int | None, val_per_class: int, seed: int = 0,
                      dataset: str = "cifar10", num_classes: int = 10):
    """A bundle whose test slot holds the library's class-balanced validation split
    (``make_bundle(val_size=...)``): images held out of training, never the test set."""
    data = make_bundle(dataset, num_labels=num_labels, seed=seed, device="cpu", train_subset=train_subset,
                       test_subset=100, val_size=val_per_class * num_classes)
    return dataclasses.replace(data, test_images=data.val_images, test_labels=data.val_labels)


def parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--labels", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--train-subset", type=int, default=20000)
    parser.add_argument("--val-per-class", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("-p", "--hparam", action="append", default=[], help="name=value")
    parser.add_argument("--out", default="recheck_defaults.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(1)
    hparams = {k: parse_value(v) for k, v in (item.split("=", 1) for item in args.hparam)}
    data = validation_bundle(args.labels, args.train_subset, args.val_per_class)
    torch.manual_seed(args.seed)
    method = build_method(args.method, args.backbone, data.num_classes, **hparams)
    start = time.time()
    fit(method, data, TrainConfig(max_steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                  device="cpu", progress=False, monitor_every=0))
    train_seconds = time.time() - start
    metrics = evaluate_method(method, data, knn=True, probe=not method.has_classifier)
    predicted = None
    if method.has_classifier:
        with torch.no_grad():
            from ssl_course.data.augment import normalize
            predicted = torch.bincount(method.predict(normalize(data.test_images)).argmax(1), minlength=10).tolist()
    row = {"method": args.method, "steps": args.steps, "labels": args.labels, "batch_size": args.batch_size,
           "lr": args.lr, "hparams": hparams, "seed": args.seed, "train_seconds": round(train_seconds, 1),
           "val_images": len(data.test_labels), "train_images": len(data.train_labels),
           **{f"val_{k}": round(v, 4) for k, v in metrics.items()}, "val_predicted_classes": predicted}
    print(json.dumps(row), flush=True)
    with open(args.out, "a") as handle:
        handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
