"""Command line: ``python -m ssl_course train ...`` (one method) and ``python -m ssl_course compare ...``
(every method under one budget, see :mod:`ssl_course.compare`).

Examples::

    python -m ssl_course train --method fixmatch --labels 250 --minutes 5
    python -m ssl_course train --method simclr --data synthetic --steps 200 --backbone tiny
    python -m ssl_course compare --labels 250 4000 --minutes-per-method 15 --out runs/compare

Expected failures (a bad name, a missing data set, a diverging loss, an ``--out`` that is a file)
end with one ``error: ...`` line and exit status 2, never a traceback.

An option whose destination is named like an :class:`~ssl_course.experiment.Experiment` field sets
that field (see :func:`experiment_settings`); the others steer the command itself.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ssl_course.config import RUNS_ENV
from ssl_course.experiment import Experiment

DESCRIPTION = "Train one method (train) or every method under one budget (compare) and write their metrics."
#: One line per sub-command, shown by ``python -m ssl_course --help`` (the README's first examples).
EXAMPLES = {
    "train": ["python -m ssl_course train --method fixmatch --labels 250 --minutes 5",
              "python -m ssl_course train --method simclr --data synthetic --steps 200 --backbone tiny"],
    "compare": ["python -m ssl_course compare --labels 250 4000 --minutes-per-method 15 --out runs/compare"],
}


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


def amp_choice(value: str) -> bool | str:
    """``--amp auto|off|bf16|fp16`` -> ``True`` (autocast on CUDA only) / ``False`` / ``"bf16"`` / ``"fp16"``."""
    return {"auto": True, "off": False}.get(value, value)


#: How a parsed option becomes the Experiment field it is named after; other fields are copied as parsed.
_FIELD_FROM_OPTION = {"hparams": dict, "compile": compile_choice, "amp": amp_choice}


def experiment_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~ssl_course.experiment.Experiment` fields set on the command line: every parsed
    option whose destination is a field's name."""
    settings = {}
    for field in dataclasses.fields(Experiment):
        if hasattr(args, field.name):
            value = getattr(args, field.name)
            convert = _FIELD_FROM_OPTION.get(field.name)
            settings[field.name] = convert(value) if convert else value
    return settings


def knn_bank_choice(value: str) -> str | int:
    """``--knn-bank labeled|all|N`` -> ``"labeled"``, ``"all"`` or the int ``N``."""
    from ssl_course.evaluate import check_knn_bank

    try:
        return check_knn_bank(int(value) if value.isdigit() else value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _add_shared_options(parser: argparse.ArgumentParser) -> None:
    """Options that ``train`` and ``compare`` share: data, network, evaluation and device."""
    from ssl_course.data import DATASETS
    from ssl_course.models import BACKBONES

    parser.add_argument("--data", default="cifar10",
                        help=f"one of {list(DATASETS)} (default: cifar10, downloaded on first use; "
                             "synthetic needs no download)")
    parser.add_argument("--backbone", default="small", help=f"one of {sorted(BACKBONES)} (default: small)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the method's)")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--train-subset", type=int, default=None, help="use only this many training images")
    parser.add_argument("--test-subset", type=int, default=None, help="use only this many test images")
    parser.add_argument("--val-size", type=int, default=None,
                        help="class-balanced validation images held out of the training set, for the kNN monitor "
                             "and val_* metrics (default: 5000 of CIFAR-10, a tenth of a smaller set; 0: none)")
    parser.add_argument("--knn-bank", type=knn_bank_choice, default="labeled",
                        help="kNN evaluation bank: 'labeled' (default; knn_accuracy uses only the labelled images), "
                             "'all' (also knn_all_labels_accuracy with every training image and its label; slow on "
                             "a CPU) or N (the same with N evenly spaced training images)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    parser.add_argument("--compile", choices=["auto", "on", "off"], default="auto",
                        help="torch.compile the backbone (auto: on CUDA for runs of >= 10 min and >= 2000 steps; "
                             "falls back to eager on failure)")
    parser.add_argument("--amp", choices=["auto", "off", "bf16", "fp16"], default="auto",
                        help="mixed precision (autocast): auto = on CUDA only, bfloat16 where the GPU supports it, "
                             "else float16 with a loss scaler; off = float32; bf16 / fp16 = that dtype on any device "
                             "(fp16 on a CPU: only to test a method's dtype paths, ~12x slower than float32)")


def _add_train_parser(commands) -> None:
    from ssl_course.methods import method_names

    train = commands.add_parser("train", help="train and evaluate one method", epilog=_examples("train"),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--method", required=True, help=f"one of {method_names()}")
    train.add_argument("--labels", type=int, default=250, help="number of labelled training images")
    budget = train.add_argument_group("budget (at least one)")
    budget.add_argument("--epochs", type=float, default=None)
    budget.add_argument("--minutes", type=float, default=None)
    budget.add_argument("--steps", type=int, default=None)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", default=None,
                       help="output folder for metrics.json, history.json, checkpoint.pt "
                            f"(default: runs/METHOD-LABELSlabels-DATE-TIME, under ${RUNS_ENV} if set)")
    train.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    train.add_argument("--hparam", dest="hparams", type=_parse_hparam, action="append", default=[],
                       help="method hyper-parameter key=value (repeatable)")
    train.add_argument("--monitor-every", type=int, default=None,
                       help="steps between kNN monitor checks (default: once per epoch; 0: never)")
    _add_shared_options(train)
    train.set_defaults(handler=_train)


def _add_compare_parser(commands) -> None:
    from ssl_course.compare import DEFAULT_EPOCHS_PER_METHOD

    compare = commands.add_parser("compare", help="train every method under the same budget and compare",
                                  epilog=_examples("compare"), formatter_class=argparse.RawDescriptionHelpFormatter)
    compare.add_argument("--labels", type=int, nargs="+", default=[250, 4000])
    compare.add_argument("--methods", nargs="+", default=None, help="default: every registered method")
    budget = compare.add_argument_group("budget per method")
    budget.add_argument("--epochs-per-method", type=float, default=None,
                        help=f"the budget: epochs per run (default: {DEFAULT_EPOCHS_PER_METHOD:g}, the notebooks' "
                             "BUDGET_EPOCHS, unless --minutes-per-method is given)")
    budget.add_argument("--minutes-per-method", type=float, default=None,
                        help="a wall-clock budget instead (results then depend on the machine)")
    compare.add_argument("--seeds", type=int, nargs="+", default=[0])
    compare.add_argument("--out", required=True)
    _add_shared_options(compare)
    compare.set_defaults(handler=_compare)


def _examples(*commands: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for name in commands for line in EXAMPLES[name])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ssl_course", description=DESCRIPTION,
                                     epilog=_examples(*EXAMPLES), formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, title="commands", metavar="{train,compare}")
    _add_train_parser(commands)
    _add_compare_parser(commands)
    return parser


def default_out(method: str, labels: int, now: _dt.datetime | None = None) -> Path:
    """``runs/fixmatch-250labels-20250131-142501``: a new, readable folder per run, under ``$SSL_COURSE_RUNS``
    when that is set, else under ``runs/`` in the current folder."""
    stamp = (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    return Path(os.environ.get(RUNS_ENV, "").strip() or "runs").expanduser() / f"{method}-{labels}labels-{stamp}"


def prepare_out(out: str | Path) -> Path:
    """Create the output folder now, so that a bad ``--out`` fails before training rather than at the
    first checkpoint."""
    out = Path(out)
    blocker = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ValueError(f"--out {out}: {blocker} is a file, not a folder. Choose another --out (a folder that "
                         "does not exist yet, or one from an earlier run together with --resume).")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"--out {out}: cannot create the folder ({error.strerror or error}). "
                         "Choose a folder you can write to.") from error
    return out


def _train(args: argparse.Namespace) -> int:
    from ssl_course.experiment import run_experiment

    experiment = Experiment(**experiment_settings(args))
    experiment.validate()  # bad names and budgets fail before any folder is made
    if args.out is None:
        if args.resume:
            raise ValueError("--resume continues the run in --out: name that folder (it was printed when the run "
                             "started), e.g. --out runs/fixmatch-250labels-20250131-142501")
        args.out = default_out(args.method, args.labels)
    out = prepare_out(args.out)
    print(f"{args.method} with {args.labels} labels on {args.data}: writing to {out}", flush=True)
    if args.data == "cifar10":
        from ssl_course.config import data_root
        from ssl_course.data import cifar10_available

        if not cifar10_available():
            print(f"CIFAR-10 is not in {data_root()} (set $SSL_COURSE_DATA to use a copy elsewhere): "
                  "downloading the official archive (170 MB) there once", flush=True)
    metrics = run_experiment(experiment, out, resume=args.resume)
    keys = [k for k in ("val_accuracy", "test_accuracy", "knn_accuracy", "knn_all_labels_accuracy",
                        "linear_probe_accuracy", "wall_time_seconds", "eval_seconds") if k in metrics]
    print(json.dumps({k: metrics[k] for k in keys}))
    print(f"done: metrics.json, history.json and checkpoint.pt are in {out}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from ssl_course.compare import markdown_table, run_comparison

    # `labels` (a list here) and `progress` are run_comparison's own arguments; the rest is shared by every run.
    rows = run_comparison(args.out, methods=args.methods, minutes_per_method=args.minutes_per_method,
                          epochs_per_method=args.epochs_per_method, seeds=args.seeds, **experiment_settings(args))
    try:
        import matplotlib

        matplotlib.use("Agg")
        from ssl_course.viz.comparison import plot_curves, plot_tsne_grid

        plot_curves(args.out)
        plot_tsne_grid(args.out)
    except FileNotFoundError as error:
        print(f"note: {error}")
    print(markdown_table(rows))
    failed = [r for r in rows if r["status"] != "ok"]
    for row in failed:
        print(f"FAILED {row['method']} @{row['labels']} seed {row['seed']}: {row['error']}")
    return 1 if failed and len(failed) == len(rows) else 0


def _hint(args: argparse.Namespace, error: Exception) -> str:
    """A next step for the errors a newcomer meets first."""
    if isinstance(error, FileNotFoundError) and getattr(args, "data", None) == "cifar10":
        return ("\nNo CIFAR-10 on this machine and no download possible? Try the course on its synthetic data "
                "set: add --data synthetic.")
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ssl_course.distributed import init_from_environment

    init_from_environment()  # a no-op unless launched by torchrun with several processes
    try:
        return args.handler(args)
    # Expected failures, each with a message that says how to fix it: bad names or budgets, a bad --out,
    # missing data, a diverging loss (FloatingPointError from the engine).
    except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, FloatingPointError) as error:
        print(f"error: {error}{_hint(args, error)}", file=sys.stderr)
        return 2
