"""kNN and linear-probe accuracy of an *untrained* network: what the architecture alone gives.

The floor every self-supervised result of the course is read against (notebook 04's claim): random
convolutional features already separate CIFAR-10 classes well above chance.

    SSL_COURSE_DATA=/path/to/data OMP_NUM_THREADS=1 python benchmarks/untrained_knn.py --backbone tiny
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    from ssl_course.data import make_bundle
    from ssl_course.evaluate import evaluate_method
    from ssl_course.methods import build_method

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--labels", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    data = make_bundle("cifar10", num_labels=args.labels, seed=args.seed, device="cpu")
    method = build_method("simclr", args.backbone, data.num_classes).eval()   # its backbone, as initialised
    metrics = evaluate_method(method, data, knn=True, probe=True, classifier=False, knn_bank="all", splits=("val",))
    print(json.dumps({"backbone": args.backbone, "labels": args.labels, "seed": args.seed,
                      **{key: round(value, 4) for key, value in metrics.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
