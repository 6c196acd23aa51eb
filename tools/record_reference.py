"""Record the course's reference runs (``results/``) by running notebooks in record mode, or time present mode.

Record mode (``SSL_COURSE_MODE=record``, see :mod:`ssl_course.reference`): every training cell trains
on the CPU for at most ``--minutes`` minutes and writes its reference run into ``results/``. Run it
with the real CIFAR-10 (``SSL_COURSE_DATA``), one notebook per core::

    SSL_COURSE_DATA=/path/to/data OMP_NUM_THREADS=1 python tools/record_reference.py notebooks/04_simclr_moco.ipynb

``--clean`` first deletes the notebook's old reference runs of the backbone it records
(``results/NN_*_tiny`` on a CPU, ``NN_*_small`` on a GPU; a baseline shared with other notebooks,
``results/shared_*``, is kept). A run already recorded at the same cap and
budget is reused, not trained again, so a recording that stopped half-way continues where it stopped
and a shared baseline is trained once; ``--fresh`` records every run again. ``--present`` runs the
notebooks in present mode instead (nothing is written) and prints how long each took: the check that
a recorded notebook presents.

On a GPU (``--device cuda``, which sets ``SSL_COURSE_RECORD_DEVICE``) the notebooks choose the
``small`` backbone and write ``results/NN_..._small/`` references beside the CPU's ``_tiny`` ones.
After a notebook ran top to bottom, its marker ``results/recorded_NN_<backbone>.json`` lists the runs
it recorded or reused; present mode shows a notebook's ``small`` references only while its marker's
runs are all there (``ssl_course.reference.notebook_backbone``). ``--runner script`` runs the
notebook's jupytext source (``notebooks/_src/NN_x.py``, the same cells) as a plain Python script: no
Jupyter needed (what ``benchmarks/gpu_day.py`` uses on a bare GPU machine)::

    PYTHONPATH=. python tools/record_reference.py --device cuda --runner script --minutes 30 notebooks/_src/08_*.py
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: A cell's timeout in present mode. Record mode allows more: a comparison's one cell trains every method.
CELL_TIMEOUT_S = 1800
#: Record mode: the most trainings one cell may hold (notebook 12 trains 21 methods in one cell).
MAX_TRAININGS_PER_CELL = 40


def cell_timeout(mode: str, record_minutes: float) -> float:
    """Seconds one cell may run: :data:`CELL_TIMEOUT_S`, or in record mode enough for
    :data:`MAX_TRAININGS_PER_CELL` capped trainings with their evaluations (twice the cap each)."""
    if mode != "record":
        return CELL_TIMEOUT_S
    return max(CELL_TIMEOUT_S, MAX_TRAININGS_PER_CELL * 2 * record_minutes * 60)


def run_notebook(path: Path, mode: str, environment: dict[str, str]) -> float:
    """Execute ``path`` top to bottom in ``mode`` (outputs are discarded); returns the seconds it took."""
    import nbclient
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    previous = dict(os.environ)
    os.environ.update({**environment, "SSL_COURSE_MODE": mode, "TQDM_DISABLE": "1", "MPLBACKEND": "Agg"})
    try:
        from ssl_course import reference

        timeout = cell_timeout(mode, reference.record_minutes())
        client = nbclient.NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                         resources={"metadata": {"path": str(path.parent)}})
        start = time.perf_counter()
        client.execute()
        return time.perf_counter() - start
    finally:
        os.environ.clear()
        os.environ.update(previous)


def run_script(source: Path, mode: str, environment: dict[str, str]) -> float:
    """Execute a notebook's jupytext source as a plain script in ``mode`` (no Jupyter); returns its seconds."""
    env = {**os.environ, **environment, "SSL_COURSE_MODE": mode, "TQDM_DISABLE": "1", "MPLBACKEND": "Agg"}
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "tools" / "run_notebook_source.py"), str(source)], env=env, check=True)
    return time.perf_counter() - start


def source_of(path: Path) -> Path:
    """The jupytext source of a notebook (``notebooks/_src/<name>.py``); a ``.py`` path is its own."""
    if path.suffix == ".py":
        return path
    source = path.parent / "_src" / f"{path.stem}.py"
    if not source.is_file():
        raise FileNotFoundError(f"{path.name} has no jupytext source at {source}: --runner script runs the source")
    return source


def clean(number: str, backbone: str) -> None:
    """Delete a notebook's reference runs of one backbone (``results/NN_*``) and its marker; shared ones stay."""
    from ssl_course import reference

    for old in reference.results_dir().glob(f"{number}_*"):
        if old.is_dir() and reference.run_backbone(old.name) in (backbone, None):
            shutil.rmtree(old)
    reference.recording_marker(number, backbone).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--minutes", type=float, default=None,
                        help="record mode: the most minutes one training may take (default: 1.5)")
    parser.add_argument("--clean", action="store_true", help="delete the notebooks' old reference runs first")
    parser.add_argument("--present", action="store_true", help="run in present mode and time it (writes nothing)")
    parser.add_argument("--fresh", action="store_true",
                        help="record every run again, even one already recorded at the same cap and budget")
    parser.add_argument("--device", default=None,
                        help="record mode: train on this device (e.g. cuda; default: the CPU); a GPU records the "
                             "notebooks' `small` backbone")
    parser.add_argument("--runner", choices=("kernel", "script"), default="kernel",
                        help="kernel: a Jupyter kernel runs the .ipynb (default); script: python runs its jupytext "
                             "source (no Jupyter needed)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from ssl_course import config, reference

    environment = {"SSL_COURSE_RECORD_COMMAND": "python tools/record_reference.py "
                   + " ".join(shlex.quote(str(a)) for a in (argv if argv is not None else sys.argv[1:]))}
    if args.minutes is not None:
        environment[reference.RECORD_MINUTES_ENV] = str(args.minutes)
    if args.fresh:
        environment[reference.RECORD_REUSE_ENV] = "0"
    if args.device is not None:
        environment[reference.RECORD_DEVICE_ENV] = args.device
    os.environ.update(environment)   # this process writes the markers with the same settings as the notebooks
    device = config.record_device()   # a device this machine lacks fails here, before anything runs
    for path in args.notebooks:
        if not path.is_file():
            parser.error(f"no notebook at {path}")
        if args.runner == "kernel" and path.suffix != ".ipynb":
            parser.error(f"{path}: the kernel runner runs a notebook (.ipynb); use --runner script for a source")
        number = path.name.split("_")[0]
        if args.clean and not args.present:
            clean(number, "tiny" if device.type == "cpu" else "small")
        mode = "present" if args.present else "record"
        with tempfile.TemporaryDirectory() as scratch:
            log = Path(scratch) / "runs.log"
            log.touch()
            settings = {**environment, reference.RECORD_LOG_ENV: str(log)}
            seconds = (run_script(source_of(path).resolve(), mode, settings) if args.runner == "script"
                       else run_notebook(path.resolve(), mode, settings))
            markers = [] if args.present else reference.write_recording_marker(number, reference.logged_runs(log))
        print(f"{path.name}: {'presented' if args.present else 'recorded'} in {seconds:.0f} s"
              + "".join(f"; {marker.name}" for marker in markers), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
