"""Run a notebook's jupytext source (``notebooks/_src/NN_name.py``) top to bottom as a plain Python script.

    python tools/run_notebook_source.py notebooks/_src/04_simclr_moco.py

The source holds exactly the notebook's cells (``tests/test_notebooks.py`` checks it), its markdown
cells as comments, so running it runs the notebook without Jupyter: what a machine without
``nbclient``/``ipykernel`` (a lent GPU machine) needs to record references
(``tools/record_reference.py --runner script``). Figures go to matplotlib's ``Agg`` backend and are
closed; where IPython is missing, ``IPython.display.display`` prints its argument instead. The
working directory is the notebooks' folder, as when Jupyter runs them.
"""
from __future__ import annotations

import os
import runpy
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _display_fallback() -> None:
    """Without IPython, ``from IPython.display import Markdown, display`` gets printing stand-ins."""
    try:
        import IPython.display  # noqa: F401
        return
    except ImportError:
        pass

    class Shown:
        def __init__(self, data: object = None, **_: object) -> None:
            self.data = data

        def __repr__(self) -> str:
            return str(self.data)

    def show(*objects: object, **_: object) -> None:
        for item in objects:
            print(repr(item))

    display = types.ModuleType("IPython.display")
    display.display = show
    display.Markdown = display.HTML = display.Image = Shown
    package = types.ModuleType("IPython")
    package.display = display
    package.get_ipython = lambda: None
    sys.modules.update({"IPython": package, "IPython.display": display})


def run_source(source: Path) -> None:
    """Execute ``source`` as ``__main__`` from the notebooks' folder, its figures closed as it goes."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    show = plt.show

    def show_and_close(*args: object, **kwargs: object) -> None:   # figures never pile up
        show(*args, **kwargs)
        plt.close("all")

    plt.show = show_and_close
    _display_fallback()
    notebooks = source.parent.parent if source.parent.name == "_src" else source.parent
    os.chdir(notebooks)
    runpy.run_path(str(source), run_name="__main__")
    plt.close("all")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].endswith(".py"):
        print("usage: python tools/run_notebook_source.py notebooks/_src/NN_name.py", file=sys.stderr)
        return 2
    source = Path(args[0]).resolve()
    if not source.is_file():
        print(f"no notebook source at {source}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))   # this checkout's ssl_course, also on a machine where nothing is installed
    run_source(source)
    return 0


if __name__ == "__main__":
    sys.exit(main())
