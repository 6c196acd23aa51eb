"""Every notebook runs top to bottom in smoke mode and is stored without outputs.

Smoke mode (``SSL_COURSE_SMOKE=1``) shrinks data and training inside the notebooks themselves, so
the same cells run here as on a learner's laptop; CIFAR-10 is used when ``SSL_COURSE_DATA``
points at it, synthetic data otherwise. Each smoke-mode run happens under the kernel environment of
the web site and is stored in the site's notebook cache (``tools/site_cache.py``), so ``make site``
shows these runs instead of executing every notebook a second time.
"""
from __future__ import annotations

import json
import os
import re
import statistics
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import site_cache  # noqa: E402

NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_clean(path):
    notebook = json.loads(path.read_text())
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{path.name} cell {index} has stored outputs: clear them"
            assert cell.get("execution_count") is None, f"{path.name} cell {index} has an execution count"


def opening_text(cells: list[dict]) -> str:
    """The markdown cells before a notebook's first code cell, joined: its opening (title and goals,
    time budget, prerequisites and recap, in cells short enough to read)."""
    opening = []
    for cell in cells:
        if cell["cell_type"] == "code":
            break
        opening.append("".join(cell["source"]))
    return "\n\n".join(opening)


def test_opening_text_stops_at_the_first_code_cell():
    cells = [{"cell_type": "markdown", "source": ["# Title"]}, {"cell_type": "markdown", "source": ["**Time**"]},
             {"cell_type": "code", "source": ["x = 1"]}, {"cell_type": "markdown", "source": ["later"]}]
    assert opening_text(cells) == "# Title\n\n**Time**"
    assert opening_text(cells[2:]) == ""


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_opens_with_goals_budget_and_prerequisites(path):
    notebook = json.loads(path.read_text())
    assert notebook["cells"][0]["cell_type"] == "markdown"
    first = opening_text(notebook["cells"]).lower()
    assert "learn" in first, f"{path.name}: the first cell should say what you will learn"
    assert re.search(r"gpu", first) and re.search(r"cpu", first), f"{path.name}: state the time budget on GPU and CPU"
    assert "prerequisite" in first, f"{path.name}: list the prerequisites"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_mode(path, monkeypatch, tmp_path):
    """Runs under the site's kernel environment, then stores the run in the site's cache: `make site` shows it."""
    pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    for key, value in site_cache.kernel_env("smoke").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SSL_COURSE_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("SSL_COURSE_MODE", raising=False)   # smoke mode trains (learn mode)
    if os.environ.get("PYTEST_XDIST_WORKER"):  # one core per parallel kernel
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run = site_cache.execute(path, timeout=site_cache.CELL_TIMEOUT_S["smoke"])
    try:
        site_cache.store_executed(path, run.notebook, run.seconds)
    except Exception as error:  # noqa: BLE001 - the site then executes this notebook itself
        warnings.warn(f"{path.name} ran but could not be stored in the site's cache ({error!r}): "
                      "`make site` will execute it again", stacklevel=1)


@pytest.mark.slow
@pytest.mark.cifar
def test_notebook_11_runs_in_present_mode_without_a_stall(monkeypatch, tmp_path):
    """Three present-mode runs of 11 in fresh kernels: none idles until a cell timeout, none takes twice the median.

    Before ``interactive_plot`` stopped drawing inside an Output widget, nbclient missed the reply of
    one of its slider cells in a good part of the runs and sat idle until the cell timeout
    (``tools/repro_stall.py``); ``site_cache.execute`` raises ``CellStalledError`` for such a cell.
    """
    pytest.importorskip("nbclient")
    for key, value in site_cache.kernel_env("present").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SSL_COURSE_RUNS", str(tmp_path / "runs"))
    if os.environ.get("PYTEST_XDIST_WORKER"):
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
    path = NOTEBOOK_DIR / "11_paws.ipynb"
    seconds = [site_cache.execute(path, timeout=site_cache.CELL_TIMEOUT_S["present"]).seconds for _ in range(3)]
    assert max(seconds) <= 2 * statistics.median(seconds), f"wall times {[round(s) for s in seconds]} s"


SOURCE_DIR = NOTEBOOK_DIR / "_src"


def test_every_notebook_has_a_source_and_every_source_a_notebook():
    sources = {path.stem for path in SOURCE_DIR.glob("*.py")}
    notebooks = {path.stem for path in NOTEBOOKS}
    assert sources == notebooks, (f"sources without a notebook: {sorted(sources - notebooks)}, notebooks without "
                                  f"a source: {sorted(notebooks - sources)}; run `make notebooks`")


@pytest.mark.parametrize("source", sorted(SOURCE_DIR.glob("*.py")), ids=lambda p: p.stem)
def test_notebook_is_built_from_its_source(source):
    """The stored notebook holds exactly the cells jupytext reads from its percent-format source."""
    jupytext = pytest.importorskip("jupytext")
    expected = jupytext.read(source, fmt="py:percent")
    target = NOTEBOOK_DIR / f"{source.stem}.ipynb"
    assert target.exists(), f"{target.name} is missing: run `make notebooks`"
    stored = json.loads(target.read_text())
    cells = [(cell["cell_type"], "".join(cell["source"])) for cell in stored["cells"]]
    assert cells == [(cell.cell_type, cell.source) for cell in expected.cells], (
        f"{target.name} is out of date with {source.relative_to(NOTEBOOK_DIR.parent)}: run `make notebooks`")
    kernel = stored["metadata"].get("kernelspec", {}).get("name")
    assert kernel == "ssl-course", f"{target.name}: kernel is {kernel!r}, not ssl-course"
