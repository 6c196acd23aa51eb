"""Record the semi-supervised comparisons of notebooks 08, 10 and 11 again with other seeds, as reference runs.

A claim such as "PAWS beats the supervised baseline" must hold beyond seed noise, so
``ssl_course/claims.json`` checks it on these runs too (its ``seeds`` entries). Each method is trained
exactly as in its notebook's training cell (same data, labels, backbone, budget and hyper-parameters)
but with another seed, which changes the labelled subset, the initial weights and the batches. The runs
are written in record mode, with the same cap per run as the notebooks' references, to
``results/seed<N>_<method>_cifar10_250_tiny/`` (metrics and history, no weights)::

    SSL_COURSE_DATA=/path/to/data OMP_NUM_THREADS=1 python tools/record_seeds.py --seed 1 --minutes 12

A run already recorded at the same cap is kept (the recording resumes where it stopped).
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The methods of the notebooks' semi-supervised comparisons, with their notebook's hyper-parameters.
COMPARISONS = {"supervised": {}, "paws": {"support_per_class": 8}, "mixmatch": {}, "featmatch": {},
               "fixmatch": {}, "s4l": {}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, required=True, help="the seed (the notebooks' references use 0)")
    parser.add_argument("--minutes", type=float, required=True, help="the cap per run, as for the notebooks")
    parser.add_argument("--methods", nargs="+", default=list(COMPARISONS), choices=list(COMPARISONS))
    args = parser.parse_args(argv)
    os.environ.update({"SSL_COURSE_MODE": "record", "SSL_COURSE_RECORD_MINUTES": str(args.minutes),
                       "SSL_COURSE_RECORD_COMMAND": "python tools/record_seeds.py "
                       + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))})
    sys.path.insert(0, str(ROOT))
    from ssl_course.experiment import run_methods

    run_methods({name: COMPARISONS[name] for name in args.methods}, f"seed{args.seed}", data="cifar10",
                labels=250, backbone="tiny", epochs=10, seed=args.seed, reference_weights=False, progress=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
