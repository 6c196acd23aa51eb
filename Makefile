# Two commands: `make lab` (set up and open the course) and `make test` (set up and run every test).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Tests use both cores by default; override with `make test PYTEST_ARGS="-n 0"`.
PYTEST_ARGS ?= -n 2

.PHONY: lab test setup kernel clean-venv

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

test: setup kernel
	$(PY) -m pytest $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
