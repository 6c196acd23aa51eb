"""Write the generated parts of the course map and the glossary page.

* ``docs/course_map.md``: the table of every registered method, between the marker comments
  ``<!-- BEGIN generated: methods -->`` and ``<!-- END generated: methods -->``. Its hand-written
  columns come from ``tools/course_map_facts.py``; the labels column from each method's
  ``data_sources``, the evaluation column from ``has_classifier``, the course's own number from the
  reference comparison ``results/12_compare_cifar10_250_tiny/results.csv`` (validation accuracy);
* ``docs/glossary.md``: ``docs/glossary.yml`` as a table (the whole page is generated);
* ``docs/course_map_families.svg`` (``--figure``): the family diagram, drawn with matplotlib.

Usage::

    python tools/course_map.py            # rewrite docs/course_map.md's table and docs/glossary.md
    python tools/course_map.py --figure   # ... and redraw docs/course_map_families.svg
    python tools/course_map.py --check    # exit 1 and say what is out of date (tests/test_course_map.py)
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from course_map_facts import FAMILIES, METHODS  # noqa: E402

COURSE_MAP = ROOT / "docs" / "course_map.md"
GLOSSARY_YML = ROOT / "docs" / "glossary.yml"
GLOSSARY_MD = ROOT / "docs" / "glossary.md"
FIGURE = ROOT / "docs" / "course_map_families.svg"
#: The reference comparison whose validation accuracy is the course's number.
COMPARISON = ROOT / "results" / "12_compare_cifar10_250_tiny"
BEGIN, END = "<!-- BEGIN generated: methods -->", "<!-- END generated: methods -->"
COLUMNS = ("method", "notebook", "family", "labels in training", "positive / target",
           "against collapse and shortcuts", "extra state", "forward passes per step",
           "how the course evaluates it", "published CIFAR-10 (source)", "course reference")


def registered_methods() -> list[str]:
    from ssl_course.methods import method_names

    return method_names()


def labels_used(name: str) -> str:
    """What the training steps read of the labels, from the method's ``data_sources``."""
    from ssl_course.methods import get_method_class

    sources = get_method_class(name).data_sources
    if "labeled" not in sources:
        return "none"
    return "few + unlabelled images" if "unlabeled" in sources else "few"


def evaluation(name: str) -> str:
    """The number the course reports as accuracy (``ssl_course.evaluate``): the method's classifier if it
    has one, else a linear probe on frozen features of the labelled images."""
    from ssl_course.methods import get_method_class

    if get_method_class(name).has_classifier:
        return "own classifier" + METHODS[name].evaluation_note
    return "linear probe on the labelled images (frozen features)"


def course_numbers(folder: Path = COMPARISON) -> dict[str, dict[str, str]]:
    """``{method: row}`` of the reference comparison's ``results.csv`` (empty when it is missing)."""
    path = folder / "results.csv"
    if not path.is_file():
        return {}
    with path.open() as stream:
        return {row["method"]: row for row in csv.DictReader(stream)}


def _course_cell(row: dict[str, str] | None) -> str:
    if row is None:
        return "not recorded"
    if row.get("status") != "ok" or not row.get("val_accuracy"):
        return f"failed ({row.get('error') or row.get('status')})"
    return f"{100 * float(row['val_accuracy']):.1f} % ({row['steps']} steps)"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def methods_table(folder: Path = COMPARISON) -> str:
    """The generated block of ``docs/course_map.md``: a sentence naming the reference run, then the table."""
    numbers = course_numbers(folder)
    missing = [name for name in registered_methods() if name not in METHODS]
    if missing:
        raise ValueError(f"tools/course_map_facts.py has no entry for the registered method(s) {missing}: "
                         "add a MethodFacts for each")
    lines = [_reference_sentence(folder), "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    teaching = list(METHODS)
    order = sorted(registered_methods(), key=lambda name: (METHODS[name].notebook, teaching.index(name)))
    for name in order:
        facts = METHODS[name]
        cells = [f"{facts.title} (`{name}`)", facts.notebook, FAMILIES[facts.family][0],
                 labels_used(name) + facts.label_note, facts.target, facts.against_collapse, facts.state,
                 facts.passes, evaluation(name), facts.published, _course_cell(numbers.get(name))]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _reference_sentence(folder: Path) -> str:
    info_path = folder / "reference.json"
    if not info_path.is_file():
        return (f"The course's column: no reference comparison in `{_shown(folder)}` yet "
                "(`python tools/record_reference.py notebooks/12_compare.ipynb` records one).")
    info = json.loads(info_path.read_text())
    settings_path = folder / "compare.json"
    backbone = json.loads(settings_path.read_text()).get("backbone") if settings_path.is_file() else None
    cap = f", each training capped at {info['record_minutes']:g} min" if info.get("capped") else ""
    return (f"**Course reference**: validation accuracy of the reference comparison "
            f"`{_shown(folder)}/results.csv` (250 labels, one seed, backbone `{backbone}`, "
            f"{info.get('device')}{cap}; recorded {str(info.get('date', '?'))[:10]}), with the training steps "
            "it had. These are minutes of training, the papers' are days: compare methods *within* the "
            "column, not with the published one.")


def replace_between_markers(text: str, block: str) -> str:
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(f"{_shown(COURSE_MAP)} must hold {BEGIN} and then {END}, once each")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{block}{END}{tail}"


# --- the glossary ---------------------------------------------------------------------------------------

def load_glossary(path: Path = GLOSSARY_YML) -> list[dict]:
    """The glossary's terms (``docs/glossary.yml``), each checked for its required keys."""
    import yaml

    terms = yaml.safe_load(path.read_text())["terms"]
    for entry in terms:
        absent = [key for key in ("term", "definition", "notebook", "uses") if key not in entry]
        if absent:
            raise ValueError(f"glossary term {entry.get('term')!r} lacks {absent}")
        for pattern in entry["uses"]:
            re.compile(pattern)
    return terms


def notebook_files(folder: Path = ROOT / "notebooks") -> dict[str, Path]:
    """``{slug: notebook}`` in the course's order; the slug is the file name without its number."""
    paths = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    return {path.stem.split("_", 1)[1]: path for path in paths}


def markdown_cells(path: Path) -> list[str]:
    """The text of every Markdown cell of a notebook."""
    cells = json.loads(path.read_text())["cells"]
    return ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown"]


_BOLD = re.compile(r"\*\*([^*\n]+?)\*\*")


def defines(cells: list[str], patterns: list[str]) -> bool:
    """True when one of ``patterns`` is in bold (``**...**``) or in a heading of these Markdown cells
    (the convention of docs/NOTEBOOK_SHAPE.md)."""
    regexes = [re.compile(pattern, re.IGNORECASE) for pattern in patterns]
    for cell in cells:
        spans = _BOLD.findall(cell) + [line for line in cell.splitlines() if line.lstrip().startswith("#")]
        if any(regex.search(span) for regex in regexes for span in spans):
            return True
    return False


def uses(cells: list[str], patterns: list[str]) -> int:
    """How many times one of ``patterns`` occurs in these Markdown cells."""
    text = "\n".join(cells)
    return sum(len(re.findall(pattern, text, re.IGNORECASE)) for pattern in patterns)


def glossary_problems(terms: list[dict], folder: Path = ROOT / "notebooks") -> dict[str, list[str]]:
    """``{term: problems}`` for every term whose notebook does not define it, or that an earlier notebook
    (in number order) already uses in Markdown; terms without problems are absent."""
    notebooks = notebook_files(folder)
    order = list(notebooks)
    cells = {slug: markdown_cells(path) for slug, path in notebooks.items()}
    problems: dict[str, list[str]] = {}
    for entry in terms:
        slug, patterns, found = entry["notebook"], entry["uses"], []
        if slug not in notebooks:
            problems[entry["term"]] = [f"no notebook is named NN_{slug}.ipynb (slugs: {order})"]
            continue
        if not defines(cells[slug], patterns):
            found.append(f"{notebooks[slug].name} does not define it (bold or heading)")
        for earlier in order[:order.index(slug)]:
            count = uses(cells[earlier], patterns)
            if count:
                found.append(f"{notebooks[earlier].name} uses it {count}× before {notebooks[slug].name} defines it")
        if found:
            problems[entry["term"]] = found
    return problems


def glossary_page(terms: list[dict]) -> str:
    notebooks = notebook_files()
    lines = ["# Glossary", "",
             "<!-- Generated by tools/course_map.py from docs/glossary.yml: edit the .yml, then run the tool. -->",
             "", "Every term the notebooks use, where the course defines it, and what it means. A notebook "
             "*defines* a term where the term is first written in **bold** or in a heading "
             "(docs/NOTEBOOK_SHAPE.md), and no earlier notebook should need it. See also the "
             "[course map](course_map.md).",
             "", "| term | definition | defined in |", "|---|---|---|"]
    for entry in sorted(terms, key=lambda e: e["term"].lower()):
        path = notebooks.get(entry["notebook"])
        where = (f"[{entry['notebook']}](../notebooks/{path.name})" if path else f"{entry['notebook']}")
        lines.append(f"| **{_cell(entry['term'])}** | {_cell(entry['definition'])} | {where} |")
    return "\n".join(lines) + "\n"


# --- the family diagram ---------------------------------------------------------------------------------

def draw_families(path: Path = FIGURE) -> None:
    from course_map_figure import draw

    draw(path)


def outdated() -> list[str]:
    """What ``python tools/course_map.py`` would change (empty when everything is up to date)."""
    stale = []
    if replace_between_markers(COURSE_MAP.read_text(), methods_table()) != COURSE_MAP.read_text():
        stale.append(f"{_shown(COURSE_MAP)}: the methods table differs from the facts and results/")
    if not GLOSSARY_MD.is_file() or GLOSSARY_MD.read_text() != glossary_page(load_glossary()):
        stale.append(f"{_shown(GLOSSARY_MD)}: differs from docs/glossary.yml")
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a generated part is out of date")
    parser.add_argument("--figure", action="store_true", help="also redraw docs/course_map_families.svg")
    args = parser.parse_args(argv)
    if args.check:
        stale = outdated()
        for line in stale:
            print(line)
        if stale:
            print("run: python tools/course_map.py")
        return 1 if stale else 0
    COURSE_MAP.write_text(replace_between_markers(COURSE_MAP.read_text(), methods_table()))
    GLOSSARY_MD.write_text(glossary_page(load_glossary()))
    if args.figure:
        draw_families()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
