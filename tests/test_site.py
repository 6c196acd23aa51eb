"""``tools/check_site.py`` tells a working site from a broken one (``make site`` runs it on the real build;
building the site itself takes minutes and runs in CI after the tests, see ``.ci/run``)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import check_site  # noqa: E402

STEMS = sorted(path.stem for path in (ROOT / "notebooks").glob("[0-9]*.ipynb"))
FIGURE = '<img alt="../_images/a.png" src="../_images/a.png" />'


def fake_build(tmp_path: Path, pages: dict[str, str] | None = None, warnings: str = "") -> Path:
    html = tmp_path / "html"
    (html / "notebooks").mkdir(parents=True)
    (html / "README.html").write_text("".join(f'<a href="notebooks/{stem}.html">x</a>' for stem in STEMS))
    for stem in STEMS:
        (html / "notebooks" / f"{stem}.html").write_text((pages or {}).get(stem, f"<p>text</p>{FIGURE}"))
    api = html / "docs" / "site" / "api"
    api.mkdir(parents=True)
    (api / "ssl_course.losses.contrastive.html").write_text('<span class="math notranslate">\\(\\tau\\)</span>')
    (tmp_path / "warnings.txt").write_text(warnings)
    return tmp_path


def test_a_complete_site_passes(tmp_path):
    docstring = f"{ROOT}/ssl_course/losses/pretext.py:docstring of x:6: ERROR: Unexpected indentation. [docutils]"
    found, tolerated = check_site.problems(fake_build(tmp_path, warnings=docstring + "\n"))
    assert found == [] and len(tolerated) == 1


@pytest.mark.parametrize("breakage, message", [
    ("no figure", "shows no figure"),
    ("missing page", "no page"),
    ("warning on a notebook page", "notebooks/"),
])
def test_a_broken_page_fails(tmp_path, breakage, message):
    stem = STEMS[0]
    build = fake_build(tmp_path, pages={stem: "<p>only text</p>"} if breakage == "no figure" else None,
                       warnings=f"{ROOT}/notebooks/{stem}.ipynb:12: WARNING: image file not readable\n"
                       if breakage == "warning on a notebook page" else "")
    if breakage == "missing page":
        (build / "html" / "notebooks" / f"{stem}.html").unlink()
    found, _ = check_site.problems(build)
    assert len(found) == 1 and message in found[0]


def test_formulas_must_render_in_the_reference(tmp_path):
    build = fake_build(tmp_path)
    (build / "html" / "docs" / "site" / "api" / "ssl_course.losses.contrastive.html").write_text("tau")
    found, _ = check_site.problems(build)
    assert found and "rendered formula" in found[0]
