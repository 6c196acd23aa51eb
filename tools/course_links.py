"""Generate every link to the course's repository from the one place that names it.

``pyproject.toml``'s ``[project.urls] Repository`` is the only copy of the repository's address. From it
this script writes, in the notebooks' sources (``notebooks/_src/*.py``) and the README's course map:

* an "Open in Colab" badge under each notebook's title and in its README row;
* the Colab set-up at the top of each notebook's first code cell (install the package from the
  repository, then :func:`ssl_course.colab.colab_setup`).

Usage (``make badges`` runs the first and rebuilds the notebooks)::

    python tools/course_links.py           # rewrite the sources and the README
    python tools/course_links.py --check   # exit 1 and list what is out of date (tests/test_colab.py)

Moving the repository means changing ``pyproject.toml`` and running ``make badges``.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser under its older name
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "notebooks" / "_src"
README = ROOT / "README.md"
#: The branch whose notebooks the badges open.
BRANCH = "main"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"

_BADGE_RE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")
_COLAB_BLOCK_RE = re.compile(r'\Aimport sys\n\nif "google\.colab" in sys\.modules:.*?\n    colab_setup\(\)\n\n', re.S)


def repository_url(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """``https://github.com/OWNER/NAME`` from ``[project.urls] Repository``."""
    urls = tomllib.loads(pyproject.read_text())["project"].get("urls", {})
    url = urls.get("Repository", "").rstrip("/")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(f"pyproject.toml [project.urls] Repository must be https://github.com/OWNER/NAME, got {url!r}")
    return url


def colab_url(stem: str, url: str) -> str:
    """Colab's address for ``notebooks/<stem>.ipynb`` on GitHub."""
    return f"https://colab.research.google.com/github/{url.removeprefix('https://github.com/')}/blob/{BRANCH}/" \
           f"notebooks/{stem}.ipynb"


def badge(stem: str, url: str) -> str:
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(stem, url)})"


def colab_block(url: str) -> str:
    """The lines that open a notebook's first code cell (Python, percent format)."""
    return (
        "import sys\n\n"
        'if "google.colab" in sys.modules:  # in Colab: install the course, fetch CIFAR-10 (once, a few minutes)\n'
        "    import subprocess\n"
        '    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",\n'
        f'                    "ssl_course @ git+{url}"], check=True)\n'
        "    from ssl_course.colab import colab_setup\n"
        "    colab_setup()\n\n")


def with_links(source: str, stem: str, url: str) -> str:
    """A notebook source with its badge under the title and the Colab block atop its first code cell."""
    lines = source.split("\n")
    title = next((i for i, line in enumerate(lines) if line.startswith("# # ")), None)
    if title is None:
        raise ValueError(f"{stem}: no title line ('# # ...') in the first markdown cell")
    badge_line = f"# {badge(stem, url)}"
    if title + 2 < len(lines) and _BADGE_RE.search(lines[title + 2]):
        lines[title + 2] = badge_line
    else:
        lines[title + 1:title + 1] = ["#", badge_line]
    source = "\n".join(lines)

    code_cell = re.search(r"^# %%\n", source, flags=re.M)  # a code cell's marker has nothing after "%%"
    if code_cell is None:
        raise ValueError(f"{stem}: no code cell for the Colab set-up")
    head, body = source[:code_cell.end()], source[code_cell.end():]
    return head + colab_block(url) + _COLAB_BLOCK_RE.sub("", body, count=1)


def readme_with_badges(readme: str, stems: list[str], url: str) -> str:
    """The README with each course-map row's first cell ``[stem](notebooks/stem.ipynb) <badge>``."""
    for stem in stems:
        row = re.compile(rf"^\| \[{re.escape(stem)}\]\(notebooks/{re.escape(stem)}\.ipynb\)[^|]*\|", re.M)
        if not row.search(readme):
            raise ValueError(f"README.md's course map has no row for {stem}: add "
                             f"'| [{stem}](notebooks/{stem}.ipynb) | what it teaches | laptop GPU | CPU |'")
        readme = row.sub(f"| [{stem}](notebooks/{stem}.ipynb) {badge(stem, url)} |", readme, count=1)
    return readme


def planned_changes(root: Path = ROOT) -> dict[Path, str]:
    """Every file whose generated links differ from what it holds, with its new text."""
    url = repository_url(root / "pyproject.toml")
    sources = sorted((root / "notebooks" / "_src").glob("*.py"))
    changes = {}
    for path in sources:
        text = path.read_text()
        new = with_links(text, path.stem, url)
        if new != text:
            changes[path] = new
    readme = (root / "README.md").read_text()
    new_readme = readme_with_badges(readme, [p.stem for p in sources], url)
    if new_readme != readme:
        changes[root / "README.md"] = new_readme
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report files that are out of date")
    args = parser.parse_args(argv)
    changes = planned_changes()
    if args.check:
        for path in changes:
            print(f"out of date: {path.relative_to(ROOT)} (run `make badges`)")
        return 1 if changes else 0
    for path, text in changes.items():
        path.write_text(text)
        print(f"updated {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
