"""How the notebooks read: every figure is followed by what to look for in it, and no markdown cell
is a wall of text.

Heuristic for "a code cell draws a figure" (kept simple on purpose, so that a learner-facing cell
that draws is caught rather than argued about): the cell's source calls ``plt.show()``,
``plt.subplots(...)``, ``plt.figure(...)`` or ``plt.imshow(...)``, or one of the course's drawing
helpers (``image_grid``, ``plot_history``, ``plot_logs``, ``plot_runs``, ``plot_per_class_accuracy``,
``plot_tsne``, ``plot_tsne_grid``, ``plot_curves``, ``small_multiples``, ``interactive_plot``).
The first markdown cell after it must contain "What to look for" (a slider and its static
small-multiples twin, two code cells in a row, share one such cell).

Words of a markdown cell: whitespace-separated tokens that contain a letter or a digit, after
removing LaTeX display blocks (``$$ ... $$``), inline LaTeX (``$...$``), URLs and HTML comments;
at most ``MAX_WORDS``, the opening cells included (title and what you will learn, time budget,
prerequisites and recap: several cells before the first code cell, see ``test_notebooks.py``).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MAX_WORDS = 250
LOOK_FOR = "what to look for"

DRAWS = re.compile(r"\bplt\.(?:show|subplots|figure|imshow)\(|\b(?:image_grid|plot_history|plot_logs|plot_runs|"
                   r"plot_per_class_accuracy|plot_tsne|plot_tsne_grid|plot_curves|small_multiples|"
                   r"interactive_plot)\(")
DISPLAY_MATH = re.compile(r"\$\$.*?\$\$", re.DOTALL)
INLINE_MATH = re.compile(r"\$[^$\n]+\$")
URL = re.compile(r"https?://\S+|<!--.*?-->", re.DOTALL)
WORD = re.compile(r"\S*[A-Za-z0-9]\S*")

def _cells(path: Path) -> list[tuple[str, str]]:
    return [(cell["cell_type"], "".join(cell["source"])) for cell in json.loads(path.read_text())["cells"]]


def prose_words(markdown: str) -> int:
    """Words of prose in a markdown cell (LaTeX, URLs and HTML comments removed)."""
    for pattern in (DISPLAY_MATH, URL, INLINE_MATH):
        markdown = pattern.sub(" ", markdown)
    return len(WORD.findall(markdown))


def draws_a_figure(source: str) -> bool:
    return DRAWS.search(source) is not None


def test_the_heuristics_see_what_they_should():
    assert draws_a_figure("image_grid(x, nrow=8)\nplt.show()")
    assert draws_a_figure("interactive_plot(show, temperature=(0.1, 1.0, 0.1, 0.5))")
    assert not draws_a_figure("print(plot_budget)\nresults = run_methods(...)")
    assert prose_words("one two $$\\frac{a}{b} c d e$$ three $x + y$ https://example.org/a b") == 4
    assert prose_words("- **Budget.** 10 epochs") == 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_figure_is_followed_by_what_to_look_for(path):
    cells = _cells(path)
    missing = []
    for index, (kind, source) in enumerate(cells):
        if kind != "code" or not draws_a_figure(source):
            continue
        following = next((text for later, text in cells[index + 1:] if later == "markdown"), "")
        if LOOK_FOR not in following.lower():
            missing.append(f"cell {index} ({source.strip().splitlines()[-1][:50]!r})")
    assert not missing, (f"{path.name}: figures without a 'What to look for' note in the next markdown cell: "
                         f"{missing}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_markdown_cell_is_a_wall_of_text(path):
    markdown = [(index, source) for index, (kind, source) in enumerate(_cells(path)) if kind == "markdown"]
    too_long = [f"cell {index}: {prose_words(source)} words ({source[:40]!r})"
                for index, source in markdown if prose_words(source) > MAX_WORDS]
    assert not too_long, f"{path.name}: markdown cells over {MAX_WORDS} words (split or tighten them): {too_long}"
