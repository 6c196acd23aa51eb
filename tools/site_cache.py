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
from typing import TYPE_CHECKING

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


#: Seconds one cell may run before it counts as hung. Present and smoke mode cells take seconds to
#: a few minutes; a kernel message lost between kernel and client (seen a few times in many runs:
#: both then wait, idle) would otherwise hold a build for MyST-NB's whole timeout.
CELL_TIMEOUT_S = 480
#: The same for :func:`fill` in present mode, whose cells load reference runs: none takes a minute.
PRESENT_CELL_TIMEOUT_S = 240


def execute(path: Path, timeout: int = CELL_TIMEOUT_S, attempts: int = 2) -> tuple[nbformat.NotebookNode, float]:
    """Run ``read_as_site(path)`` top to bottom in the current environment; returns it and the seconds taken.

    A run that times out or loses its kernel is retried in a fresh kernel (``attempts`` runs in all);
    a cell that raises fails at once. ``record_timing=False``: timings would land in the cells'
    metadata, which the cache's hash covers.
    """
    import warnings

    import nbclient

    for attempt in range(1, attempts + 1):
        notebook = read_as_site(path)
        client = nbclient.NotebookClient(notebook, timeout=timeout, kernel_name="python3", record_timing=False,
                                         resources={"metadata": {"path": str(Path(path).parent)}})
        start = time.perf_counter()
        try:
            client.execute()
            return notebook, time.perf_counter() - start
        except (nbclient.exceptions.CellTimeoutError, nbclient.exceptions.DeadKernelError) as error:
            if attempt == attempts:
                raise
            warnings.warn(f"{Path(path).name}: {type(error).__name__} ({error}); running it again in a fresh kernel",
                          stacklevel=2)
    raise AssertionError("unreachable")


def fill(mode: str, notebooks: list[Path] | None = None) -> int:
    """Execute every notebook the cache of ``mode`` lacks (with :func:`execute`'s retry) and store it.

    ``make site`` calls this before Sphinx, so MyST-NB finds every notebook in the cache and a lost
    kernel message costs one retry instead of a hung build. Returns the number executed.
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
        notebook, seconds = execute(path, timeout=PRESENT_CELL_TIMEOUT_S if mode == "present" else CELL_TIMEOUT_S)
        store_executed(path, notebook, seconds, mode=mode)
        executed += 1
        print(f"site cache ({mode}): executed {path.name} in {seconds:.0f} s", flush=True)
    return executed


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="fill the site's notebook cache of one mode")
    parser.add_argument("mode", choices=sorted(MODE_ENV))
    parser.add_argument("notebooks", nargs="*", type=Path)
    arguments = parser.parse_args()
    fill(arguments.mode, arguments.notebooks or None)
