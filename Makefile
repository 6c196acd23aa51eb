# Two commands: `make lab` (set up and open the course) and `make test` (set up and run every test).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Tests use both cores by default; override with `make test PYTEST_ARGS="-n 0"`.
PYTEST_ARGS ?= -n 2

.PHONY: lab test lint notebooks badges site setup kernel clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

kernel: $(STAMP)
	$(PY) -m ipykernel install --user --name ssl-course --display-name "Python (ssl-course)"

lab: setup kernel
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

test: setup kernel lint
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

# Notebooks are built from their percent-format sources in notebooks/_src/ by jupytext; --update
# keeps the cell ids of an existing notebook, so a rebuild changes only the cells you edited.
KERNELSPEC := {"kernelspec": {"display_name": "Python (ssl-course)", "language": "python", "name": "ssl-course"}}
notebooks: setup
	for source in notebooks/_src/*.py; do \
	  $(VENV)/bin/jupytext --quiet --update --to ipynb --update-metadata '$(KERNELSPEC)' \
	    --output notebooks/$$(basename $$source .py).ipynb $$source || exit 1; \
	done

# The course's web site in _build/site/html (Sphinx + MyST-NB, docs/site/conf.py): the README as landing
# page, one executed page per notebook, the library reference. SITE_MODE says how the notebooks run:
# present (default: every training cell loads the course's reference run from results/; needs CIFAR-10),
# smoke (tiny synthetic data, a few steps: every figure, no trained results; the notebook tests fill its
# cache, so after `make test` it executes nothing) or full (the notebooks' own budgets).
# Executed notebooks are cached in _build/site_cache/<mode>: a rebuild reruns only the notebooks that changed.
# tools/site_cache.py fills the cache first (one notebook at a time; a cell that runs to its timeout fails
# the build), so Sphinx only reads it.
SITE_MODE ?= present
SITE_JOBS ?= auto
site: setup
	rm -f _build/site/warnings.txt
	if [ "$(SITE_MODE)" != full ]; then $(PY) tools/site_cache.py $(SITE_MODE); fi
	SSL_COURSE_SITE_MODE=$(SITE_MODE) $(VENV)/bin/sphinx-build -b html -j $(SITE_JOBS) -q --keep-going \
	  -w _build/site/warnings.txt -c docs/site -d _build/site/doctrees . _build/site/html
	$(PY) tools/check_site.py _build/site

# Colab badges (README and notebooks) and the notebooks' Colab install line, from pyproject.toml's
# [project.urls] Repository: change the URL there, then run `make badges`.
badges: setup
	$(PY) tools/course_links.py
	$(MAKE) notebooks

clean-venv:
	rm -rf $(VENV)
