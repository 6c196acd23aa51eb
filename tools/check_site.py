"""Check a built site (``make site`` runs it): every notebook has a page with its figures, the README is
the landing page and links to every notebook, the library reference renders its formulas, and no
warning comes from a course page.

Usage: ``python tools/check_site.py [BUILD_DIR]`` (default ``_build/site``, holding ``html/`` and the
builder's ``warnings.txt``). Exit status 1 with one line per problem.

Warnings from the library's docstrings (reST layout, e.g. an indented "Shapes:" block) are counted and
listed but do not fail the check: they change how a docstring looks, not whether the page works.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Warnings whose location starts with one of these are the course's own pages: they fail the check.
COURSE_PAGES = ("README.md", "notebooks/", "docs/", "data/README.md", "benchmarks/RESULTS.md")


def problems(build: Path) -> tuple[list[str], list[str]]:
    """(problems that fail the check, docstring warnings that are only reported)."""
    html, found = build / "html", []
    stems = sorted(path.stem for path in (ROOT / "notebooks").glob("[0-9]*.ipynb"))
    landing = html / "README.html"
    if not landing.is_file():
        return [f"no landing page {landing}"], []
    links = landing.read_text()
    for stem in stems:
        page = html / "notebooks" / f"{stem}.html"
        if not page.is_file():
            found.append(f"{stem}: no page {page.relative_to(build)}")
            continue
        text = page.read_text()
        figures = re.findall(r'<img[^>]+src="\.\./_images/[^"]+"', text)
        if not figures:
            found.append(f"{stem}: the page shows no figure (no image among its outputs)")
        if 'class="output traceback' in text or "ename" in re.findall(r'class="output (\w+)', text):
            found.append(f"{stem}: the page shows an error output")
        if f'href="notebooks/{stem}.html"' not in links:
            found.append(f"{stem}: the landing page does not link to it")
    api = html / "docs" / "site" / "api" / "ssl_course.losses.contrastive.html"
    if not api.is_file() or 'class="math' not in api.read_text():
        found.append(f"the library reference has no rendered formula in {api.relative_to(build)}")
    docstring_warnings = []
    warnings_file = build / "warnings.txt"
    for line in warnings_file.read_text().splitlines() if warnings_file.is_file() else []:
        location = line.replace(str(ROOT) + "/", "")
        if "WARNING" not in location and "ERROR" not in location:
            continue
        (found if location.startswith(COURSE_PAGES) else docstring_warnings).append(location)
    return found, docstring_warnings


def main(argv: list[str]) -> int:
    build = Path(argv[0]) if argv else ROOT / "_build" / "site"
    found, docstring_warnings = problems(build)
    for line in docstring_warnings:
        print(f"docstring layout (not fatal): {line}")
    for line in found:
        print(f"BROKEN: {line}")
    pages = len(list((build / "html").rglob("*.html")))
    print(f"{pages} pages; {len(found)} problems; {len(docstring_warnings)} docstring layout warnings")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
