"""The text learners read: notebook sources, built notebooks, answers and the library's strings.

A LaTeX command written in an ordinary (non-raw) Python string, or in a file generated from one,
loses its first letters silently: ``"\\frac"`` is a form feed followed by ``rac``, ``"\\beta"`` a
backspace and ``eta``, ``"\\tau"`` a tab and ``au``. Jupytext then even splits the markdown line at
the form feed, so the formula renders as "rac{1}{N}". These tests find such characters, and the
remains of such commands, before a learner does. They also keep remarks about the test machinery
out of the notebooks, and keep every exercise stub raising ``NotImplementedError`` (which the
checkers report as "not implemented yet") instead of returning a placeholder value.
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
SOURCES = sorted((NOTEBOOK_DIR / "_src").glob("*.py"))
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
PROSE = sorted([*(NOTEBOOK_DIR / "solutions").glob("*.md"), *(ROOT / "docs").glob("*.md"), ROOT / "README.md"])
PYTHON = sorted(path for folder in ("ssl_course", "notebooks", "tools", "benchmarks")
                for path in (ROOT / folder).rglob("*.py"))

#: Every C0 control character and DEL, except the newline.
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
#: What is left of \frac, \begin and \text once their first escape was eaten.
EATEN_LATEX = re.compile(r"(?<![\\A-Za-z])(?:rac|egin|ext(?:bf|rm|it)?)\{")
#: Remarks about the course's test machinery, which mean nothing to a learner.
HARNESS = re.compile(r"\bnoqa\b|tests/|test suite|the tests run|when the tests|used to share", re.IGNORECASE)
#: Remarks about the machine the course was built on ("timed on a loaded 2-core machine"): a learner's
#: machine is not that one, so a time says what was measured and with which tool, not where.
BUILD_MACHINE = re.compile(r"\b(?:\d+|two)-core[\s#]+machine|\b(?:loaded|busy|quiet(?:er)?|shared)[\s#]+machine",
                           re.IGNORECASE)


def _describe(text: str, match: re.Match) -> str:
    line = text.count("\n", 0, match.start()) + 1
    start = text.rfind("\n", 0, match.start()) + 1
    return f"line {line}: {text[start:start + 100]!r}"


def _notebook_cells(path: Path) -> list[tuple[int, str, str]]:
    cells = json.loads(path.read_text())["cells"]
    return [(index, cell["cell_type"], "".join(cell["source"])) for index, cell in enumerate(cells)]


def test_there_is_text_to_check():
    assert SOURCES and NOTEBOOKS and PROSE and PYTHON


@pytest.mark.parametrize("path", [*SOURCES, *PROSE], ids=lambda p: str(p.relative_to(ROOT)))
def test_no_control_characters_in_sources_and_prose(path):
    text = path.read_text()
    hits = [_describe(text, match) for match in CONTROL.finditer(text)]
    assert not hits, (f"{path.relative_to(ROOT)} contains control characters (a LaTeX command in a "
                      f"non-raw string?): {hits[:3]}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_control_characters_in_built_notebooks(path):
    for index, kind, source in _notebook_cells(path):
        hits = [_describe(source, match) for match in CONTROL.finditer(source)]
        assert not hits, f"{path.name} {kind} cell {index} contains control characters: {hits[:3]}"


@pytest.mark.parametrize("path", [*SOURCES, *NOTEBOOKS, *PROSE], ids=lambda p: str(p.relative_to(ROOT)))
def test_no_latex_command_lost_its_backslash(path):
    if path.suffix == ".ipynb":
        texts = [(f"cell {index}", source) for index, kind, source in _notebook_cells(path) if kind == "markdown"]
    else:
        texts = [("", path.read_text())]
    for where, text in texts:
        hits = [_describe(text, match) for match in EATEN_LATEX.finditer(text)]
        assert not hits, (f"{path.relative_to(ROOT)} {where}: a LaTeX command without its backslash "
                          f"(written as \\f, \\b or \\t in a non-raw string?): {hits[:3]}")


@pytest.mark.parametrize("path", PYTHON, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_control_characters_in_python_strings(path):
    """Docstrings and string literals, after Python has read their escapes ("\\n" is allowed)."""
    tree = ast.parse(path.read_text())
    hits = [f"line {node.lineno}: {node.value[:60]!r}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and CONTROL.search(node.value)]
    assert not hits, (f"{path.relative_to(ROOT)}: string literals with control characters (write LaTeX "
                      f"in raw strings, r\"...\"): {hits[:3]}")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_notebooks_do_not_talk_about_the_test_machinery(path):
    text = path.read_text()
    hits = [_describe(text, match) for match in HARNESS.finditer(text)]
    assert not hits, f"{path.name} speaks about the course's tooling instead of to the learner: {hits[:3]}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_notebooks_do_not_remark_on_the_machine_they_were_built_on(path):
    text = path.read_text()
    hits = [_describe(text, match) for match in BUILD_MACHINE.finditer(text)]
    assert not hits, f"{path.name} speaks about the course's build machine instead of to the learner: {hits[:3]}"


def test_build_machine_pattern_catches_the_remarks_it_is_for():
    assert BUILD_MACHINE.search("steps timed on a loaded 2-core machine")
    assert BUILD_MACHINE.search("measured on a quieter machine")
    assert BUILD_MACHINE.search("0.30 s on a loaded 2-core\n# machine with")
    assert not BUILD_MACHINE.search("a slower machine takes longer but reaches the same numbers")
    assert not BUILD_MACHINE.search("CIFAR-10 when it is on this machine")


def _raises_not_implemented(statement: ast.stmt) -> bool:
    if not isinstance(statement, ast.Raise) or statement.exc is None:
        return False
    exc = statement.exc.func if isinstance(statement.exc, ast.Call) else statement.exc
    return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_exercise_stubs_raise_not_implemented(path):
    """Every `my_*` function a learner fills in raises NotImplementedError and returns nothing yet."""
    stubs = [node for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.FunctionDef) and node.name.startswith("my_")]
    for stub in stubs:
        assert any(_raises_not_implemented(statement) for statement in stub.body), (
            f"{path.name}: exercise stub {stub.name} should end in `raise NotImplementedError(...)`")
        returns = [node for node in ast.walk(stub) if isinstance(node, ast.Return)]
        assert not returns, f"{path.name}: exercise stub {stub.name} returns a placeholder instead of raising"
