"""The budget ladder of the semi-supervised claims: validation and test accuracy against CPU-minutes.

Reads the reference runs of notebooks 08, 10 and 11 (and their second seed) from ``results/``, and the same
runs at earlier caps from the git revisions that shipped them, and prints one markdown table
(``benchmarks/RESULTS.md``, "Budget ladder")::

    python tools/budget_ladder.py --earlier 01d322e:1.5

``--earlier REV:CAP`` names a revision whose ``results/`` held the notebooks' references recorded with a
cap of CAP minutes (several may be given).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("supervised", "mixmatch", "fixmatch", "s4l", "paws", "featmatch")
NOTEBOOK = {"supervised": "08", "mixmatch": "08", "fixmatch": "08", "s4l": "08", "paws": "11", "featmatch": "10"}
#: Their numbers before issue 21 renumbered the notebooks: earlier revisions name the runs this way.
NOTEBOOK_BEFORE_ISSUE_21 = {"supervised": "07", "mixmatch": "07", "fixmatch": "07", "s4l": "07", "paws": "08",
                            "featmatch": "09"}


def _read(revision: str | None, path: str) -> dict | None:
    if revision is None:
        file = ROOT / path
        return json.loads(file.read_text()) if file.is_file() else None
    shown = subprocess.run(["git", "show", f"{revision}:{path}"], cwd=ROOT, capture_output=True, text=True)
    return json.loads(shown.stdout) if shown.returncode == 0 else None


def _renumbered(revision: str | None) -> bool:
    """True when the revision (None: the working tree) has the notebooks' current numbers (PAWS is 11)."""
    if revision is None:
        return True
    return subprocess.run(["git", "cat-file", "-e", f"{revision}:notebooks/_src/11_paws.py"], cwd=ROOT,
                          capture_output=True).returncode == 0


def _run_paths(method: str, seed: int, shared: bool, renumbered: bool = True) -> list[str]:
    name = f"{method}_cifar10_250_tiny"
    if seed:
        return [f"results/seed{seed}_{name}"]
    candidates = [f"results/{(NOTEBOOK if renumbered else NOTEBOOK_BEFORE_ISSUE_21)[method]}_{name}"]
    if method == "supervised" and shared:
        candidates.insert(0, f"results/shared_{name}")
    return candidates


def rows(revision: str | None, seed: int) -> list[str]:
    lines, renumbered = [], _renumbered(revision)
    for method in METHODS:
        for path in _run_paths(method, seed, shared=revision is None, renumbered=renumbered):
            metrics, info = _read(revision, f"{path}/metrics.json"), _read(revision, f"{path}/reference.json")
            if metrics is None or info is None:
                continue
            cap = info.get("record_minutes")
            lines.append(f"| {info['date'][:10]} | {info['device']} | {cap:g} | {method} | {seed} | {info['steps']} | "
                         f"{info['seconds'] / 60:.1f}{' (capped)' if info.get('capped') else ''} | "
                         f"{metrics['val_accuracy']:.3f} | {metrics['test_accuracy']:.3f} | `{path}` "
                         f"{'@ ' + revision if revision else ''} |")
            break
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--earlier", nargs="*", default=[], help="REV:CAP of earlier recordings")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    args = parser.parse_args(argv)
    print("| date | device | cap (min) | method | seed | steps | minutes trained | val acc | test acc | run |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for earlier in args.earlier:
        revision = earlier.split(":")[0]
        print("\n".join(rows(revision, 0)))
    for seed in args.seeds:
        print("\n".join(rows(None, seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
