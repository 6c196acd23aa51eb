"""The course reads as one arc: numbered notebooks in teaching order, each naming only earlier ones.

Every notebook opens with a **Prerequisites** paragraph and, right after it, a **Recap** of three
questions about what it builds on, answered in the section of ``notebooks/solutions/ANSWERS*.md`` that
the recap links to. The README's course map lists the notebooks in two parts, in order.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIR = ROOT / "notebooks" / "_src"
SOURCES = sorted(SOURCE_DIR.glob("[0-9][0-9]_*.py"))
STEMS = [path.stem for path in SOURCES]
NUMBERS = [stem[:2] for stem in STEMS]
#: The two parts of the course and the last notebook of Part I (README's course map, docs/site/conf.py).
PART_I_LAST = "07"

#: A notebook named in prose: `04_simclr_moco`, "notebook 04", "notebooks 00 to 11", "notebooks 01 and 04".
NAMED_STEM = re.compile(r"`(\d\d)_[a-z0-9_]+`")
NAMED_NUMBERS = re.compile(r"\b[Nn]otebooks? ((?:\d\d)(?:(?:,| and| to|,? and) \d\d)*)")
RANGE = re.compile(r"(\d\d) to (\d\d)")


def _opening(path: Path) -> str:
    """The markdown cells of a notebook source before its first code cell (title, goals, time budget,
    prerequisites, recap), without the comment marks, joined by blank lines."""
    cells = re.split(r"^# %%", path.read_text(), flags=re.M)[1:]
    opening = []
    for cell in cells:
        if not cell.startswith(" [markdown]"):
            break
        opening.append("\n".join(line[2:] if line.startswith("# ") else line.lstrip("#")
                                 for line in cell.splitlines()[1:]).strip("\n"))
    return "\n\n".join(opening)


def _paragraph(opening: str, label: str) -> str:
    """The paragraph that starts with ``**label**`` (up to the next blank line), or ''."""
    match = re.search(rf"^\*\*{label}\*\*.*?(?=\n\s*\n|\Z)", opening, re.M | re.S)
    return match.group(0) if match else ""


def named_notebooks(text: str) -> set[str]:
    """The two-digit numbers of every notebook a text names (ranges expanded)."""
    found = set(NAMED_STEM.findall(text))
    for group in NAMED_NUMBERS.findall(text):
        for start, end in RANGE.findall(group):
            found.update(f"{n:02d}" for n in range(int(start), int(end) + 1))
        found.update(re.findall(r"\d\d", RANGE.sub("", group)))
    return found


def test_notebooks_are_numbered_contiguously_from_00():
    assert NUMBERS == [f"{n:02d}" for n in range(len(NUMBERS))], STEMS
    assert len(NUMBERS) == 13, STEMS
    built = sorted(path.stem for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert built == STEMS, "every source has its built notebook and no built notebook lacks a source"


def test_named_notebooks_are_found_in_prose():
    text = "`00_setup_and_data` (data), notebooks 01 and 04, notebook 02; notebooks 00 to 03"
    assert named_notebooks(text) == {"00", "01", "02", "03", "04"}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_prerequisites_name_only_earlier_notebooks_that_exist(path):
    prerequisites = _paragraph(_opening(path), "Prerequisites")
    assert prerequisites, f"{path.name}: no **Prerequisites** paragraph in its opening cells"
    named = named_notebooks(prerequisites)
    for number in named:
        assert number in NUMBERS, f"{path.name}: its prerequisites name notebook {number}, which does not exist"
        assert number < path.name[:2], (f"{path.name}: its prerequisites name notebook {number}, which does not "
                                        "come before it")
    for stem in re.findall(r"`(\d\d_[a-z0-9_]+)`", prerequisites):
        assert stem in STEMS, f"{path.name}: its prerequisites name `{stem}`, which is no notebook"
    if path.name[:2] != "00":
        assert named, f"{path.name}: its prerequisites name no earlier notebook"


def _answers_section(link: str) -> tuple[Path, str]:
    """The answers file and the section a recap's link points to (``solutions/ANSWERS.md#02-pretext-tasks``)."""
    target, _, anchor = link.partition("#")
    file = (ROOT / "notebooks" / target).resolve()
    assert file.is_file(), f"the recap links to {target}, which does not exist"
    headings = {re.sub(r"[^\w\- ]", "", line[3:].strip().lower()).replace(" ", "-"): line
                for line in file.read_text().splitlines() if line.startswith("## ")}
    assert anchor in headings, f"{file.name} has no section #{anchor} (sections: {sorted(headings)})"
    text = file.read_text()
    start = text.index(headings[anchor])
    following = text.find("\n## ", start + 1)
    return file, text[start:following if following != -1 else len(text)]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_recap_follows_the_prerequisites_with_three_questions_answered(path):
    opening = _opening(path)
    recap = _paragraph(opening, "Recap")
    assert recap, f"{path.name}: no **Recap** paragraph in its opening cells"
    assert opening.index("**Recap**") > opening.index("**Prerequisites**"), f"{path.name}: recap before prerequisites"
    between = opening[opening.index("**Prerequisites**"):opening.index("**Recap**")]
    assert between.count("\n\n") == 1, f"{path.name}: the recap must come right after the prerequisites"
    questions = re.findall(r"^(\d)\. (.+?)(?=^\d\. |\Z)", recap, re.M | re.S)
    assert [number for number, _ in questions] == ["1", "2", "3"], f"{path.name}: expected questions 1, 2, 3"
    assert all(question.strip().endswith("?") for _, question in questions), f"{path.name}: {questions}"
    links = re.findall(r"\]\((solutions/ANSWERS[^)]*\.md#[^)]+)\)", recap)
    assert len(links) == 1, f"{path.name}: the recap links to its answers once, with a section anchor"
    file, section = _answers_section(links[0])
    assert section.startswith(f"## {path.name[:2]} "), f"{path.name}: the recap links to {section.splitlines()[0]!r}"
    block = section[section.index("**Recap.**"):] if "**Recap.**" in section else ""
    answers = re.findall(r"^(\d)\. \S", block.split("\n\n**")[0], re.M)
    assert answers == ["1", "2", "3"], f"{file.name}, section {path.name[:2]}: expected **Recap.** answers 1, 2, 3"


def test_readme_course_map_lists_the_notebooks_in_two_parts_in_order():
    readme = (ROOT / "README.md").read_text()
    course_map = readme[readme.index("## Course map"):]
    course_map = course_map[:course_map.index("\n## ", 1)]
    part_one = course_map.index("**Part I · self-supervised**")
    part_two = course_map.index("**Part II · semi-supervised**")
    row = re.compile(r"^\| \[(\d\d_\w+)\]\(notebooks/", re.M)
    rows = [(match.start(), match.group(1)) for match in row.finditer(course_map)]
    assert [stem for _, stem in rows] == STEMS, "the course map lists every notebook once, in order"
    for position, stem in rows:
        in_part_one = part_one < position < part_two
        assert in_part_one == (stem[:2] <= PART_I_LAST), f"{stem} is listed in the wrong part"
