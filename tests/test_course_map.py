"""docs/course_map.md: one row per registered method, its generated columns up to date with the code and
with the reference comparison in results/, and the family diagram drawn from the same facts."""
from __future__ import annotations

import csv
import re
import shutil
import sys
from pathlib import Path

import pytest

from ssl_course.methods import get_method_class, method_names

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import course_map  # noqa: E402
from course_map_facts import FAMILIES, METHODS  # noqa: E402


def _table_rows(text: str) -> dict[str, list[str]]:
    """``{method name: cells}`` of the generated table in ``text``."""
    block = text.split(course_map.BEGIN)[1].split(course_map.END)[0]
    rows = {}
    for line in block.splitlines():
        match = re.match(r"\| [^|]*\(`(\w+)`\) \|", line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
    return rows


def test_every_registered_method_has_facts_and_one_row():
    rows = _table_rows(course_map.COURSE_MAP.read_text())
    assert sorted(rows) == method_names(), "docs/course_map.md's table must list exactly the registered methods"
    assert sorted(METHODS) == method_names(), "tools/course_map_facts.py must describe exactly the registered methods"


def test_page_is_up_to_date_with_the_code_and_results():
    stale = course_map.outdated()
    assert not stale, "\n".join(stale) + "\nrun: python tools/course_map.py"


def test_course_column_is_the_validation_accuracy_in_results():
    rows = _table_rows(course_map.COURSE_MAP.read_text())
    recorded = course_map.course_numbers()
    for name, cells in rows.items():
        row = recorded.get(name)
        if row is None or row["status"] != "ok":
            assert not cells[-1][0].isdigit(), f"{name}: a number in the course column, but results/ has none"
            continue
        assert cells[-1].startswith(f"{100 * float(row['val_accuracy']):.1f} %"), name


def test_the_table_follows_a_changed_results_file(tmp_path):
    """The course column is read from results.csv: a changed, missing or failed row shows up."""
    folder = tmp_path / course_map.COMPARISON.name
    folder.mkdir()
    rows = [{"method": name, "status": "ok", "val_accuracy": "0.4321", "steps": "7", "error": ""}
            for name in method_names() if name not in ("paws", "moco")]
    rows.append({"method": "moco", "status": "failed", "val_accuracy": "", "steps": "", "error": "OOM"})
    with (folder / "results.csv").open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    table = _table_rows(course_map.BEGIN + "\n" + course_map.methods_table(folder) + course_map.END)
    assert table["simclr"][-1] == "43.2 % (7 steps)"
    assert table["paws"][-1] == "not recorded"
    assert table["moco"][-1] == "failed (OOM)"


def test_labels_and_evaluation_columns_follow_the_code():
    rows = _table_rows(course_map.COURSE_MAP.read_text())
    for name in method_names():
        cls = get_method_class(name)
        labels, evaluation = rows[name][3], rows[name][8]
        assert labels.startswith("none") == ("labeled" not in cls.data_sources), name
        assert evaluation.startswith("own classifier") == cls.has_classifier, name


def test_facts_name_real_families_and_methods_without_cycles():
    for name, facts in METHODS.items():
        assert facts.family in FAMILIES, f"{name}: unknown family {facts.family!r}"
        assert set(facts.builds_on) <= set(METHODS), f"{name} builds on unknown methods {facts.builds_on}"
        assert re.fullmatch(r"\d\d", facts.notebook), f"{name}: notebook must be two digits, got {facts.notebook!r}"
        assert facts.published.startswith("—") or re.search(r"\d", facts.published), \
            f"{name}: a published cell is a number with its source, or '—' and why"

    def ancestors(name: str, seen: tuple[str, ...]) -> None:
        assert name not in seen, f"'builds on' cycle: {' → '.join(seen + (name,))}"
        for parent in METHODS[name].builds_on:
            ancestors(parent, seen + (name,))

    for name in METHODS:
        ancestors(name, ())


def test_markers_are_required():
    with pytest.raises(ValueError, match="BEGIN generated"):
        course_map.replace_between_markers("no markers here", "table")


def test_family_diagram_is_drawn_from_the_facts(tmp_path):
    """The committed SVG is what --figure draws now (deterministic), with every method and family named."""
    pytest.importorskip("matplotlib")
    drawn = tmp_path / "families.svg"
    course_map.draw_families(drawn)
    committed = course_map.FIGURE.read_text()
    assert drawn.read_text() == committed, "docs/course_map_families.svg is stale: python tools/course_map.py --figure"
    for facts in METHODS.values():
        assert facts.title in committed
    for title, _ in FAMILIES.values():
        for word in re.split(r"[\s/-]+", title):   # titles wrap at spaces and hyphens
            assert word in committed, f"family title word {word!r} missing from the diagram"


def test_readme_and_site_link_the_pages():
    readme = (ROOT / "README.md").read_text()
    assert "docs/course_map.md" in readme.split("## Course map", 1)[1][:600], \
        "the README's course section must link docs/course_map.md near its top"
    conf = (ROOT / "docs" / "site" / "conf.py").read_text()
    for page in ("docs/course_map", "docs/glossary"):
        assert f'"{page}"' in conf, f"docs/site/conf.py's DOCS must list {page}"


def test_check_mode_reports_a_stale_page(tmp_path, monkeypatch):
    page = tmp_path / "course_map.md"
    shutil.copy(course_map.COURSE_MAP, page)
    page.write_text(course_map.replace_between_markers(page.read_text(), "| stale |\n"))
    monkeypatch.setattr(course_map, "COURSE_MAP", page)
    assert any("methods table" in line for line in course_map.outdated())
    assert course_map.main(["--check"]) == 1
