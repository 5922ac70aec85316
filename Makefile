# ParkingHQ Business Workflow — the two commands: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
export PORT

.PHONY: run test setup lint format loadtest bench clean screenshot

$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

## German and English: the .po files are in the repository, the compiled .mo files are built here.
PO_FILES := $(shell find . -path ./.venv -prune -o -path ./node_modules -prune -o -path ./var -prune -o -name '*.po' -print)
var/.messages-compiled: $(VENV)/.installed $(PO_FILES)
	@mkdir -p var
	$(PY) manage.py compilemessages --ignore=.venv --ignore=node_modules --ignore=var -v 0
	@touch $@

setup: $(VENV)/.installed node_modules/.installed var/.messages-compiled

## Bring the portal up with demo data on SQLite and an embedded broker (no services needed);
## migrates, loads the demo data and starts web + worker + beat on 127.0.0.1:$(PORT).
run: setup
	$(PY) scripts/run_all.py

## Lint, then the whole test suite against PostgreSQL and Redis. A skipped test fails the run
## (--no-skips: a missing service or browser is an error); line coverage is printed per file and per app.
APPS := accounts billing carparks connect monitoring notifications parkinghq workflows
COV_ARGS := $(foreach app,$(APPS),--cov=$(app)) --cov-report=term:skip-covered --cov-report=json:var/coverage.json
test: setup
	@$(PY) scripts/check_services.py
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@mkdir -p var && rm -f var/coverage.json
	$(PY) -m pytest --no-skips $(COV_ARGS) $(PYTEST_ARGS); status=$$?; \
		$(PY) scripts/coverage_by_app.py var/coverage.json; exit $$status

## Load test (not part of `make test`): 50 agents + API clients for 2 minutes against gunicorn and a
## Celery worker on a throw-away database; fails on any error, records p50/p95 in docs/benchmarks.md.
## Shorter: make loadtest LOADTEST_ARGS="--duration 30s".
loadtest: setup
	@$(PY) scripts/check_services.py
	$(PY) bench/loadtest.py --record $(LOADTEST_ARGS)

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## Screenshot of a running portal (make run in another shell) into docs/screenshot.png.
screenshot:
	$(PY) scripts/screenshot.py http://127.0.0.1:$(PORT) docs/screenshot.png --user agent --path /basket/ --width 1600 --height 900

clean:
	rm -rf var staticfiles
