# Two commands: `make demo` and `make test`. Everything else here is what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS := web,train,dev

.PHONY: install test test-fast lint format demo bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	@touch $(STAMP)

install: $(STAMP)

## The whole suite, SQLite and the PostgreSQL/Redis services of this machine included.
test: $(STAMP)
	$(PY) -m pytest; status=$$?; if [ $$status -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$status

## Only the fast tests (no services, no browser, nothing slow).
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow and not browser and not postgres and not redis"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## Until the platform lands: generate an official-size example and score it with the command line.
demo: $(STAMP)
	$(PY) -m scorer.demo

bench: $(STAMP)
	$(PY) benchmarks/scoring.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
