# Quick start: `make demo` (main job) and `make test` (test suite).
# Both create ./.venv on first use and install what they need into it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# PyTorch 2.13.0 from pip's configured index (on the machines skpred is
# developed on, the CPU build); TORCH="torch==2.13.0 --index-url
# https://download.pytorch.org/whl/cpu" takes the CPU build from PyTorch's index.
TORCH  ?= torch==2.13.0

.PHONY: demo test test-all docs install clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[dev,examples,notebook,distributed]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m skpred.experiments fig4 --quick --out results

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m "slow or not slow"

# Documentation, warnings as errors (runs the example gallery).
docs: $(STAMP)
	$(PY) -m pip install --quiet -e ".[docs]"
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
