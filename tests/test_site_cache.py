"""A notebook stored by ``tools/site_cache.py`` is what the site shows: MyST-NB finds it and executes nothing.

A real Sphinx build with the site's own ``docs/site/conf.py`` over a one-notebook project: the
notebook's code cell raises if it is ever executed (the site's conf makes a failing cell break the
build), and the stored run has an output no execution would print.
"""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import site_cache  # noqa: E402

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("myst_nb")
get_cache = pytest.importorskip("jupyter_cache").get_cache

STORED = "printed by the stored run"
KERNELSPEC = {"display_name": "Python (ssl-course)", "language": "python", "name": "ssl-course"}


def tiny_notebook(path: Path, code: str = "raise RuntimeError('executed: the cache was missed')") -> Path:
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    notebook.cells = [nbformat.v4.new_markdown_cell("# Tiny\n\nOne cell."), nbformat.v4.new_code_cell(code)]
    nbformat.write(notebook, path)
    return path


def executed_copy(path: Path):
    """What a test's execution leaves: the site's view of the notebook with outputs and execution counts."""
    executed = copy.deepcopy(site_cache.read_as_site(path))
    cell = executed.cells[1]
    cell.execution_count = 1
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=STORED + "\n")]
    return executed


def test_stored_notebook_is_found_by_the_site_build(tmp_path):
    source = tmp_path / "project"
    source.mkdir()
    path = tiny_notebook(source / "tiny.ipynb")
    cache = tmp_path / "cache"
    site_cache.store_executed(path, executed_copy(path), seconds=1.0, folder=cache)

    html = tmp_path / "html"
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-c", str(ROOT / "docs" / "site"),
         "-D", "root_doc=tiny", "-D", "include_patterns=tiny.ipynb", "-D", f"nb_execution_cache_path={cache}",
         "-d", str(tmp_path / "doctrees"), str(source), str(html)],
        capture_output=True, text=True, timeout=300)
    log = build.stdout + build.stderr
    assert build.returncode == 0, log[-3000:]
    assert "Using cached notebook" in log, log[-3000:]
    page = (html / "tiny.html").read_text()
    assert STORED in page and "cache was missed" in page  # the stored output below the (unexecuted) source


def test_changed_code_misses_the_cache_and_markdown_does_not(tmp_path):
    path = tiny_notebook(tmp_path / "tiny.ipynb", code="print(1)")
    site_cache.store_executed(path, executed_copy(path), seconds=1.0, folder=tmp_path / "cache")
    cache = get_cache(str(tmp_path / "cache"))

    reworded = site_cache.read_as_site(path)
    reworded.cells[0].source = "# Tiny, reworded"
    assert cache.match_cache_notebook(reworded).uri == str(path.resolve())

    changed = site_cache.read_as_site(path)
    changed.cells[1].source = "print(2)"
    with pytest.raises(KeyError):
        cache.match_cache_notebook(changed)


def test_a_run_that_differs_from_its_source_is_refused(tmp_path):
    path = tiny_notebook(tmp_path / "tiny.ipynb", code="print(1)")
    executed = executed_copy(path)
    executed.cells[1].metadata["execution"] = {"iopub.execute_input": "2024-01-01T00:00:00"}  # record_timing=True
    with pytest.raises(RuntimeError, match="hashes differently"):
        site_cache.store_executed(path, executed, seconds=1.0, folder=tmp_path / "cache")
