"""Build the course notebooks from their percent-format sources in ``notebooks/_src/``.

A source is a plain Python file whose cells start with ``# %%`` (code) or ``# %% [markdown]``
(markdown; every line of the cell starts with ``# ``). Reviewing a diff of these files is far
easier than reviewing notebook JSON, and the output notebooks are always stored without outputs.

    python tools/py2nb.py            # rebuild every notebook
    python tools/py2nb.py --check    # exit 1 if a notebook is out of date (the tests run this)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "notebooks" / "_src"
NOTEBOOKS = ROOT / "notebooks"


def parse_cells(text: str) -> list[tuple[str, str]]:
    """``[(cell_type, source)]`` from a percent-format file."""
    cells: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("# %%"):
            kind = "markdown" if "[markdown]" in line else "code"
            cells.append((kind, []))
            continue
        if not cells:
            if line.strip():
                raise ValueError("the source must start with a '# %%' cell marker")
            continue
        kind, lines = cells[-1]
        if kind == "markdown":
            if line.strip() and not line.startswith("#"):
                raise ValueError(f"markdown line does not start with '#': {line!r}")
            line = line[2:] if line.startswith("# ") else line[1:]
        lines.append(line)
    result = []
    for kind, lines in cells:
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        result.append((kind, "\n".join(lines)))
    return result


def build_notebook(source: Path) -> str:
    cells = []
    for kind, text in parse_cells(source.read_text()):
        lines = text.splitlines(keepends=True)
        cell = {"cell_type": kind, "metadata": {}, "source": lines}
        if kind == "code":
            cell.update({"execution_count": None, "outputs": []})
        cells.append(cell)
    notebook = {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python (ssl-course)", "language": "python", "name": "ssl-course"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    for index, cell in enumerate(cells):
        cell["id"] = f"{source.stem[:40]}-{index}".replace("_", "-")
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report notebooks that are out of date")
    args = parser.parse_args(argv)
    stale = []
    for source in sorted(SOURCES.glob("*.py")):
        target = NOTEBOOKS / f"{source.stem}.ipynb"
        text = build_notebook(source)
        if args.check:
            if not target.exists() or target.read_text() != text:
                stale.append(target.name)
        else:
            target.write_text(text)
            print(f"wrote {target.relative_to(ROOT)}")
    if stale:
        print("out of date (run python tools/py2nb.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
