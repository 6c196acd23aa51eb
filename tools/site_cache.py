"""The web site's notebook cache, shared by the site build and the notebook tests, so CI runs each notebook once.

``make site`` (``docs/site/conf.py``) runs MyST-NB in its ``cache`` mode: before executing a notebook it
looks it up in a jupyter-cache folder, :func:`cache_dir`, and uses the stored outputs when one matches.
The match is jupyter-cache's hash of the notebook as MyST-NB reads it (:func:`read_as_site`): the code
cells' sources and metadata and the ``kernelspec``, after MyST-NB renamed the kernel by
:data:`KERNEL_ALIASES`; markdown cells, cell ids and outputs are not hashed. A notebook whose code
changed misses the cache and is executed by the site as before.

``tests/test_notebooks.py`` executes every notebook in smoke mode under the kernel environment of
:func:`kernel_env` (the one the site gives its kernels) and then stores the executed notebook here with
:func:`store_executed`, which is what MyST-NB itself stores after executing it.
"""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import nbformat

ROOT = Path(__file__).resolve().parent.parent
#: The notebooks name the "ssl-course" kernel (``make kernel``); the site runs any Python 3 kernel.
KERNEL_ALIASES = {".*": "python3"}
#: Environment of each site mode, forced on the kernels.
MODE_ENV = {
    "present": {"SSL_COURSE_MODE": "present"},   # every training cell loads the course's reference run (results/)
    "smoke": {"SSL_COURSE_SMOKE": "1", "SSL_COURSE_MODE": "learn"},
    "full": {"SSL_COURSE_MODE": "learn"},
}
#: Environment of every mode; a value the builder's own environment already sets is kept.
COMMON_ENV = {
    "TQDM_DISABLE": "1",  # progress bars would be frozen widgets on a static page
    "OMP_WAIT_POLICY": "PASSIVE",  # parallel kernels: idle threads sleep
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",  # figures become cell outputs (Agg shows none)
}


def cache_dir(mode: str = "smoke") -> Path:
    """The jupyter-cache folder of one site mode, ``_build/site_cache/<mode>`` in this checkout."""
    if mode not in MODE_ENV:
        raise ValueError(f"site mode {mode!r}: choose one of {sorted(MODE_ENV)}")
    return ROOT / "_build" / "site_cache" / mode


def kernel_env(mode: str = "smoke", environ: dict[str, str] | None = None) -> dict[str, str]:
    """The variables the site sets for its kernels in ``mode``, given the builder's environment ``environ``."""
    environ = {} if environ is None else environ
    common = {key: environ.get(key, value) for key, value in COMMON_ENV.items()}
    return {**common, **MODE_ENV[mode]}


def read_as_site(path: Path) -> nbformat.NotebookNode:
    """The notebook as MyST-NB's Sphinx parser hands it to the cache: nbformat 4, kernel renamed by alias."""
    import nbformat

    notebook = nbformat.reads(Path(path).read_text(encoding="utf8"), as_version=4)
    kernelspec = notebook.metadata.get("kernelspec", {})
    for pattern, alias in KERNEL_ALIASES.items():
        if "name" in kernelspec and re.fullmatch(pattern, kernelspec["name"]):
            kernelspec["name"] = alias
            break
    return notebook


def store_executed(path: Path, executed: nbformat.NotebookNode, seconds: float, mode: str = "smoke",
                   folder: Path | None = None) -> None:
    """Store ``executed`` (``read_as_site(path)`` run top to bottom without errors) in the site's cache.

    ``folder`` defaults to :func:`cache_dir` of ``mode``. A file lock serialises the writes of parallel
    test workers (the cache is a sqlite database plus files). Raises when ``executed`` would not be
    found by the site's look-up of ``path`` (e.g. execution added hashed metadata).
    """
    from filelock import FileLock  # a dependency of torch
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    folder = cache_dir(mode) if folder is None else Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock", timeout=120):
        cache = get_cache(str(folder))
        _, wanted = cache.create_hashed_notebook(read_as_site(path))
        _, stored = cache.create_hashed_notebook(executed)
        if stored != wanted:
            raise RuntimeError(f"{Path(path).name}: the executed notebook hashes differently from its source "
                               "(execution changed a hashed field): the site would not find it")
        # the same call MyST-NB makes after executing a notebook itself (myst_nb/core/execute/cache.py)
        cache.cache_notebook_bundle(CacheBundleIn(executed, str(Path(path).resolve()),
                                                  data={"execution_seconds": seconds}),
                                    check_validity=False, overwrite=True)


#: Seconds one cell may run in :func:`execute` before it counts as hung, per site mode: about five
#: times the slowest cell measured (every notebook once, ``tools/repro_stall.py --plain``, a busy 2-core
#: CPU, 2026-12-06: 26 s in present mode, 60 s in smoke mode; ``benchmarks/RESULTS.md``), a margin for
#: slower machines and one thread per test worker. ``full`` mode trains as long as each notebook's
#: budget says (hours on a CPU): no limit.
CELL_TIMEOUT_S: dict[str, int | None] = {"present": 120, "smoke": 300, "full": None}


class Execution(NamedTuple):
    """One top-to-bottom run: the executed notebook, its seconds, and each code cell's seconds by index."""

    notebook: nbformat.NotebookNode
    seconds: float
    cell_seconds: dict[int, float]


class CellStalledError(RuntimeError):
    """A cell ran until its timeout: a hang, or a kernel reply the client read only when the timeout fired."""


def execute(path: Path, timeout: int | None = CELL_TIMEOUT_S["smoke"]) -> Execution:
    """Run ``read_as_site(path)`` top to bottom in the current environment, once, in one kernel.

    Raises nbclient's ``CellExecutionError`` for a cell that raises and :class:`CellStalledError` for a
    cell that ran ``timeout`` seconds: nbclient does not always raise then, because a reply that sat
    unread in its socket is read when the timeout fires and the run goes on, which hid a lost wake-up
    for a long time (``tools/repro_stall.py``). ``record_timing=False``: timings would land in the
    cells' metadata, which the cache's hash covers; cells are timed by hooks instead.
    """
    import nbclient

    notebook = read_as_site(path)
    started: dict[int, float] = {}
    cell_seconds: dict[int, float] = {}

    def cell_sent(cell, cell_index):  # noqa: ARG001 - nbclient passes both by name
        started[cell_index] = time.perf_counter()

    def cell_done(cell, cell_index, execute_reply):  # noqa: ARG001
        cell_seconds[cell_index] = time.perf_counter() - started[cell_index]

    client = nbclient.NotebookClient(notebook, timeout=timeout, kernel_name="python3", record_timing=False,
                                     on_cell_execute=cell_sent, on_cell_executed=cell_done,
                                     resources={"metadata": {"path": str(Path(path).parent)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    stalled = {index: round(s) for index, s in cell_seconds.items() if timeout and s >= timeout}
    if stalled:
        raise CellStalledError(f"{Path(path).name}: cells {stalled} (index: seconds) ran to the {timeout} s cell "
                               "timeout. Run `python tools/repro_stall.py` on the notebook to see which kernel "
                               "message came late")
    return Execution(notebook, seconds, cell_seconds)


def fill(mode: str, notebooks: list[Path] | None = None) -> int:
    """Execute every notebook the cache of ``mode`` lacks and store it.

    ``make site`` calls this before Sphinx, so MyST-NB finds every notebook in the cache, and a cell
    that hangs fails the build after :data:`CELL_TIMEOUT_S` instead of MyST-NB's much longer timeout.
    Returns the number executed.
    """
    import os

    from jupyter_cache import get_cache

    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) if notebooks is None else notebooks
    os.environ.update(kernel_env(mode, dict(os.environ)))
    folder = cache_dir(mode)
    folder.parent.mkdir(parents=True, exist_ok=True)
    executed = 0
    for path in notebooks:
        cache = get_cache(str(folder))
        try:
            cache.match_cache_notebook(read_as_site(path))
            continue   # already there with this code
        except KeyError:
            pass
        run = execute(path, timeout=CELL_TIMEOUT_S[mode])
        store_executed(path, run.notebook, run.seconds, mode=mode)
        executed += 1
        slowest = max(run.cell_seconds.values(), default=0.0)
        print(f"site cache ({mode}): executed {path.name} in {run.seconds:.0f} s (slowest cell {slowest:.0f} s)",
              flush=True)
    return executed


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="fill the site's notebook cache of one mode")
    parser.add_argument("mode", choices=sorted(MODE_ENV))
    parser.add_argument("notebooks", nargs="*", type=Path)
    arguments = parser.parse_args()
    fill(arguments.mode, arguments.notebooks or None)
