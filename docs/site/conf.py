"""Sphinx configuration of the course's web site (``make site``): Sphinx + MyST-NB + the Jupyter Book theme.

The source folder is the repository root, so that the README (the landing page) and the notebooks
keep the links they have on GitHub; ``include_patterns`` picks the pages. Every notebook page shows
an execution of its current code, in the mode named by ``$SSL_COURSE_SITE_MODE`` (the Makefile's
``SITE_MODE``): taken from the cache (``tools/site_cache.py``) when it holds one, else executed while
the site builds.

* ``present`` (the default): ``SSL_COURSE_MODE=present``, every training cell loads the course's
  reference run from ``results/`` (real CIFAR-10 runs with stated budgets), so the pages show real
  curves, tables and t-SNE plots; needs CIFAR-10 (``SSL_COURSE_DATA``);
* ``smoke``: ``SSL_COURSE_SMOKE=1``, tiny synthetic data and a few steps: every figure, no trained
  results (the notebook tests store their runs in this mode's cache, so it builds without executing);
* ``full``: the notebooks' own budgets (hours on a CPU).
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # autodoc imports this checkout's ssl_course
sys.path.insert(0, str(ROOT / "tools"))

import site_cache  # noqa: E402

import ssl_course  # noqa: E402

#: Environment each mode gives the notebooks' kernels (they inherit the builder's environment);
#: tests/test_notebooks.py runs the notebooks under the same one and fills the smoke-mode cache.
SITE_MODES = site_cache.MODE_ENV
MODE = os.environ.get("SSL_COURSE_SITE_MODE", "present")
if MODE not in SITE_MODES:
    raise ValueError(f"SSL_COURSE_SITE_MODE={MODE!r}: choose one of {sorted(SITE_MODES)}")
os.environ.update(site_cache.kernel_env(MODE, dict(os.environ)))
# The notebooks' own training runs go to a scratch folder, not the learner's runs/.
os.environ.setdefault("SSL_COURSE_RUNS", tempfile.mkdtemp(prefix="ssl_course_site_runs_"))

project = "ssl_course: contrastive and semi-supervised learning"
author = "the ssl_course authors"
release = version = ssl_course.__version__
copyright = "the ssl_course authors, MIT licence"

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.autosummary", "sphinx.ext.napoleon",
              "sphinx.ext.mathjax", "sphinx.ext.viewcode"]
root_doc = "README"
include_patterns = ["README.md", "notebooks/[0-9]*.ipynb", "docs/*.md", "docs/site/*.md", "docs/site/api/*.rst",
                    "data/README.md", "notebooks/solutions/*.md",
                    "benchmarks/RESULTS.md"]
exclude_patterns = ["_build", ".venv", "**/.ipynb_checkpoints"]

# --- MyST (Markdown) and MyST-NB (notebooks)
myst_enable_extensions = ["dollarmath", "amsmath"]  # the notebooks write formulas as $...$ and $$...$$
myst_heading_anchors = 3  # the README's links to its own sections (#data)
# cache: rerun only changed notebooks; `make test` already stored each notebook's smoke-mode run there
nb_execution_mode = os.environ.get("SSL_COURSE_SITE_EXECUTION", "cache")
nb_execution_cache_path = str(site_cache.cache_dir(MODE))
nb_execution_timeout = 1800
nb_execution_raise_on_error = True  # a cell that fails breaks the build: no page shows a traceback
nb_execution_show_tb = True
nb_kernel_rgx_aliases = site_cache.KERNEL_ALIASES  # the notebooks name the "ssl-course" kernel; any Python 3 will do
nb_merge_streams = True

# --- the library reference, from the docstrings (reST with :math: and .. math::)
autosummary_generate = True
# ignore-module-all: a package documents what it defines, not what it re-exports (no duplicates)
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# --- HTML
html_theme = "sphinx_book_theme"
html_title = "ssl_course"
html_extra_path = ["_extra"]  # index.html: the site's root address opens the README
html_theme_options = {"show_toc_level": 2, "use_download_button": True}
suppress_warnings = ["image.nonlocal_uri", "myst.header"]

# Pages in the left-hand navigation, after the landing page (the README, which GitHub shows too and so
# holds no Sphinx directive: the table of contents is added to it while the site builds).
NOTEBOOKS = sorted(path.stem for path in (ROOT / "notebooks").glob("[0-9]*.ipynb"))
#: The course's two parts, as in the README's course map: Part I ends with notebook 07 (BigBiGAN).
PARTS = {"Part I · self-supervised": [stem for stem in NOTEBOOKS if stem[:2] <= "07"],
         "Part II · semi-supervised": [stem for stem in NOTEBOOKS if stem[:2] > "07"]}
DOCS = ["docs/course_map", "docs/notation", "docs/glossary",
        "docs/site/api", "docs/ARCHITECTURE", "docs/RECIPES", "docs/CONTRIBUTING", "docs/NOTEBOOK_SHAPE",
        "data/README", "benchmarks/RESULTS", "notebooks/solutions/ANSWERS", "notebooks/solutions/ANSWERS_07_11"]


def _toctree(caption: str, pages: list[str]) -> str:
    return "\n\n```{toctree}\n:hidden:\n:caption: " + caption + "\n\n" + "\n".join(pages) + "\n```\n"


def _add_navigation(app, docname: str, source: list[str]) -> None:
    if docname == "README":
        for caption, stems in PARTS.items():
            source[0] += _toctree(caption, [f"notebooks/{stem}" for stem in stems])
        source[0] += _toctree("Library and project", [page for page in DOCS if (ROOT / f"{page}.md").exists()])


def setup(app):
    app.connect("source-read", _add_navigation)
