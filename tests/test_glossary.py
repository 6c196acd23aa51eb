"""docs/glossary.yml: every term is defined (bold or heading) in the notebook it names, and no notebook
before that one uses it in Markdown (docs/NOTEBOOK_SHAPE.md). Terms with a ``known_gap`` warn instead of
failing, and fail once their gap is gone so that the marker never outlives the problem."""
from __future__ import annotations

import json
import re
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import course_map  # noqa: E402

TERMS = course_map.load_glossary()


def test_entries_are_well_formed():
    names = [entry["term"] for entry in TERMS]
    assert len(names) == len(set(names)), "a term is listed twice"
    slugs = set(course_map.notebook_files())
    for entry in TERMS:
        assert "\n" not in entry["definition"].strip() and len(entry["definition"]) < 300, entry["term"]
        assert entry["uses"] and all(isinstance(pattern, str) for pattern in entry["uses"]), entry["term"]
        assert entry["notebook"] in slugs, \
            f"{entry['term']}: no notebook NN_{entry['notebook']}.ipynb (slugs: {sorted(slugs)})"
        assert isinstance(entry.get("known_gap", ""), str), entry["term"]
        # the term's own name is a use: otherwise the patterns miss the word the glossary shows
        assert course_map.uses([entry["term"]], entry["uses"]), f"{entry['term']}: its patterns do not match its name"


def test_every_term_is_defined_before_it_is_used():
    problems = course_map.glossary_problems(TERMS)
    gaps = {entry["term"]: entry["known_gap"] for entry in TERMS if entry.get("known_gap")}
    unexpected = {term: found for term, found in problems.items() if term not in gaps}
    fixed = sorted(term for term in gaps if term not in problems)
    for term in sorted(set(gaps) & set(problems)):
        warnings.warn(f"glossary gap '{term}': {'; '.join(problems[term])} ({gaps[term]})", stacklevel=1)
    assert not unexpected, "\n".join(f"{term}: {'; '.join(found)}" for term, found in unexpected.items())
    assert not fixed, f"no gap left for {fixed}: remove their known_gap from docs/glossary.yml"


def test_glossary_page_is_up_to_date():
    assert course_map.GLOSSARY_MD.read_text() == course_map.glossary_page(TERMS), \
        "docs/glossary.md is stale: python tools/course_map.py"


def test_definition_convention():
    patterns = [r"\btemperatures?\b"]
    assert course_map.defines(["The **temperature** τ divides the logits."], patterns)
    assert course_map.defines(["## What the temperature does\nSome text."], patterns)
    assert not course_map.defines(["The temperature τ divides the logits. **Other** words."], patterns)
    assert course_map.uses(["a temperature", "two temperatures"], patterns) == 2
    assert course_map.uses(["attemperate"], patterns) == 0


def _notebook(folder: Path, name: str, *markdown: str) -> None:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": text} for text in markdown]
    cells.append({"cell_type": "code", "metadata": {}, "source": "temperature = 0.1", "outputs": [],
                  "execution_count": None})
    (folder / name).write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))


def test_problems_are_found_in_number_order(tmp_path):
    """An early use, a missing definition, and code cells (which never count) on a made-up course."""
    _notebook(tmp_path, "00_intro.ipynb", "We will meet the temperature later.")
    _notebook(tmp_path, "01_nce.ipynb", "# NCE\nThe **temperature** scales the scores.")
    _notebook(tmp_path, "02_simclr.ipynb", "A queue appears here, in passing.")
    terms = [{"term": "temperature", "notebook": "nce", "uses": [r"\btemperature\b"], "definition": "."},
             {"term": "queue", "notebook": "simclr", "uses": [r"\bqueue\b"], "definition": "."},
             {"term": "NCE", "notebook": "nce", "uses": [r"\bNCE\b"], "definition": "."}]
    problems = course_map.glossary_problems(terms, tmp_path)
    assert sorted(problems) == ["queue", "temperature"]
    assert re.search(r"00_intro\.ipynb uses it 1×", problems["temperature"][0])
    assert problems["queue"] == ["02_simclr.ipynb does not define it (bold or heading)"]
    renamed = [{**terms[0], "notebook": "missing"}]
    assert "no notebook is named NN_missing.ipynb" in course_map.glossary_problems(renamed, tmp_path)["temperature"][0]
