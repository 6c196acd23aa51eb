"""Record the course's reference runs (``results/``) by running notebooks in record mode, or time present mode.

Record mode (``SSL_COURSE_MODE=record``, see :mod:`ssl_course.reference`): every training cell trains
on the CPU for at most ``--minutes`` minutes and writes its reference run into ``results/``. Run it
with the real CIFAR-10 (``SSL_COURSE_DATA``), one notebook per core::

    SSL_COURSE_DATA=/path/to/data OMP_NUM_THREADS=1 python tools/record_reference.py notebooks/04_simclr_moco.ipynb

``--clean`` first deletes the notebook's old reference runs (``results/NN_*``; a baseline shared
with other notebooks, ``results/shared_*``, is kept). A run already recorded at the same cap and
budget is reused, not trained again, so a recording that stopped half-way continues where it stopped
and a shared baseline is trained once; ``--fresh`` records every run again. ``--present`` runs the
notebooks in present mode instead (nothing is written) and prints how long each took: the check that
a recorded notebook presents.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CELL_TIMEOUT_S = 1800


def run_notebook(path: Path, mode: str, environment: dict[str, str]) -> float:
    """Execute ``path`` top to bottom in ``mode`` (outputs are discarded); returns the seconds it took."""
    import nbclient
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    previous = dict(os.environ)
    os.environ.update({**environment, "SSL_COURSE_MODE": mode, "TQDM_DISABLE": "1", "MPLBACKEND": "Agg"})
    try:
        client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                         resources={"metadata": {"path": str(path.parent)}})
        start = time.perf_counter()
        client.execute()
        return time.perf_counter() - start
    finally:
        os.environ.clear()
        os.environ.update(previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--minutes", type=float, default=None,
                        help="record mode: the most minutes one training may take (default: 1.5)")
    parser.add_argument("--clean", action="store_true", help="delete the notebooks' old reference runs first")
    parser.add_argument("--present", action="store_true", help="run in present mode and time it (writes nothing)")
    parser.add_argument("--fresh", action="store_true",
                        help="record every run again, even one already recorded at the same cap and budget")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from ssl_course import reference

    environment = {"SSL_COURSE_RECORD_COMMAND": "python tools/record_reference.py "
                   + " ".join(shlex.quote(str(a)) for a in (argv if argv is not None else sys.argv[1:]))}
    if args.minutes is not None:
        environment[reference.RECORD_MINUTES_ENV] = str(args.minutes)
    if args.fresh:
        environment[reference.RECORD_REUSE_ENV] = "0"
    for path in args.notebooks:
        if not path.is_file():
            parser.error(f"no notebook at {path}")
        if args.clean and not args.present:
            number = path.name.split("_")[0]
            for old in reference.results_dir().glob(f"{number}_*"):
                shutil.rmtree(old)
        seconds = run_notebook(path.resolve(), "present" if args.present else "record", environment)
        print(f"{path.name}: {'presented' if args.present else 'recorded'} in {seconds:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
