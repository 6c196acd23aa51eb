"""Command line: ``python -m ssl_course train ...`` (one method) and ``python -m ssl_course compare ...``.

Examples::

    python -m ssl_course train --method supervised --data synthetic --labels 250 --epochs 5 --out runs/sup
    python -m ssl_course train --method simclr --data cifar10 --labels 4000 --minutes 15 --out runs/simclr
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence


def _parse_hparam(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--hparam expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    for convert in (int, float):
        try:
            return key, convert(raw)
        except ValueError:
            pass
    if raw.lower() in ("true", "false"):
        return key, raw.lower() == "true"
    return key, raw


def compile_choice(value: str) -> bool | None:
    """``--compile auto|on|off`` -> ``None`` (long CUDA runs) / ``True`` / ``False``."""
    return {"auto": None, "on": True, "off": False}[value]


def _add_common(parser: argparse.ArgumentParser) -> None:
    from ssl_course.data import DATASETS
    from ssl_course.models import BACKBONES

    parser.add_argument("--data", default="synthetic", help=f"one of {list(DATASETS)} (default: synthetic)")
    parser.add_argument("--backbone", default="small", help=f"one of {sorted(BACKBONES)} (default: small)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the method's)")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--train-subset", type=int, default=None, help="use only this many training images")
    parser.add_argument("--test-subset", type=int, default=None, help="use only this many test images")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--compile", choices=["auto", "on", "off"], default="auto",
                        help="torch.compile the backbone (auto: on CUDA for runs of >= 10 min and >= 2000 steps; "
                             "falls back to eager on failure)")


def build_parser() -> argparse.ArgumentParser:
    from ssl_course.methods import method_names

    parser = argparse.ArgumentParser(prog="python -m ssl_course", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train and evaluate one method")
    train.add_argument("--method", required=True, help=f"one of {method_names()}")
    train.add_argument("--labels", type=int, default=250, help="number of labelled training images")
    budget = train.add_argument_group("budget (at least one)")
    budget.add_argument("--epochs", type=float, default=None)
    budget.add_argument("--minutes", type=float, default=None)
    budget.add_argument("--steps", type=int, default=None)
    train.add_argument("--out", required=True, help="output folder (metrics.json, checkpoint.pt)")
    train.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    train.add_argument("--hparam", type=_parse_hparam, action="append", default=[],
                       help="method hyper-parameter key=value (repeatable)")
    train.add_argument("--monitor-every", type=int, default=None,
                       help="steps between kNN monitor checks (default: once per epoch; 0: never)")
    train.add_argument("--knn-bank", type=int, default=None,
                       help="training images in the final kNN bank (default: all; fewer is faster on a CPU)")
    _add_common(train)
    try:
        from ssl_course.compare import add_compare_parser
    except ImportError:  # the comparison module is optional while it is being built
        pass
    else:
        add_compare_parser(commands, _add_common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ssl_course.distributed import init_from_environment

    init_from_environment()  # a no-op unless launched by torchrun with several processes
    try:
        if args.command == "train":
            from ssl_course.experiment import Experiment, run_experiment

            experiment = Experiment(method=args.method, data=args.data, labels=args.labels, epochs=args.epochs,
                                    minutes=args.minutes, steps=args.steps, backbone=args.backbone,
                                    seed=args.seed, batch_size=args.batch_size, lr=args.lr, device=args.device,
                                    train_subset=args.train_subset, test_subset=args.test_subset,
                                    hparams=dict(args.hparam), progress=not args.no_progress,
                                    monitor_every=args.monitor_every, knn_bank_size=args.knn_bank,
                                    compile=compile_choice(args.compile))
            metrics = run_experiment(experiment, args.out, resume=args.resume)
            keys = [k for k in ("test_accuracy", "knn_accuracy", "linear_probe_accuracy", "wall_time_seconds")
                    if k in metrics]
            print(json.dumps({k: metrics[k] for k in keys}))
            return 0
        return args.handler(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
