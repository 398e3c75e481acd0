# The two commands a new user needs: `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PGDIR := .pgdata
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-fast bench profile profile-refusals screenshots lint db-start db-stop clean _test-in-cluster

# Debian's python3 needs python3-venv for `-m venv`; root gets it installed, others are told.
$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "Python >= 3.11 is required (found $$($(PYTHON) --version))"; exit 1; }
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  rm -rf $(VENV); \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv \
	    && $(PYTHON) -m venv $(VENV); \
	  else echo "python3 -m venv failed: install python3-venv (sudo apt-get install python3-venv)"; exit 1; fi; }
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@ $(VENV)/.installed

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,bench]'
	@touch $@ $(VENV)/.installed-dev $(VENV)/.installed

## run: install, provide PostgreSQL (unless DATABASE_URL is set), migrate, serve on 127.0.0.1:8000
## with the outbox worker beside gunicorn (Ctrl-C stops both)
run: $(VENV)/.installed
	@set -euo pipefail; \
	if [ -z "$${DATABASE_URL:-}" ]; then \
	  DATABASE_URL=$$($(BIN)/python -m booking_service.devtools.pgcluster start $(PGDIR) --env-file .env); \
	  export DATABASE_URL; \
	  echo "Using the project-local PostgreSQL cluster in $(PGDIR) ($$(echo "$$DATABASE_URL" | sed -E 's#(//[^:/@]+):[^@]*@#\1:***@#'); password in .env)"; \
	  if [ -z "$${SECRET_KEY:-}" ]; then \
	    SECRET_KEY=$$($(BIN)/python -m booking_service.devtools.pgcluster secret-key $(PGDIR)); \
	    export SECRET_KEY; \
	  fi; \
	fi; \
	$(BIN)/alembic upgrade head; \
	$(BIN)/flask --app wsgi schema check; \
	$(BIN)/flask --app wsgi demo setup --url http://$(HOST):$(PORT); \
	$(BIN)/flask --app wsgi worker & worker=$$!; \
	trap 'kill -TERM $$worker 2>/dev/null; wait $$worker' EXIT; \
	$(BIN)/gunicorn -c deploy/gunicorn.conf.py --bind $(HOST):$(PORT) wsgi:app

## test: install dev dependencies, lint and type-check, check migrations against models, run the
## whole suite
test: $(VENV)/.installed-dev lint
	$(BIN)/python -m booking_service.devtools.pgcluster throwaway -- \
	  $(MAKE) --no-print-directory _test-in-cluster

# Runs inside a throwaway cluster: DATABASE_URL and BOOKING_TEST_PG point at it.
_test-in-cluster:
	$(BIN)/alembic upgrade head
	$(BIN)/alembic check
	$(BIN)/pytest

## test-fast: the inner loop: the suite without the `stack` and `browser` tests (no nginx,
## gunicorn, PgBouncer or Chromium), no lint and no `alembic check`; `make test` runs them all
test-fast: $(VENV)/.installed-dev
	$(BIN)/python -m booking_service.devtools.pgcluster throwaway -- \
	  $(BIN)/pytest -q -m "not stack and not browser" $(PYTEST_ARGS)

## bench: measure the booking path (wrk → nginx → gunicorn → PostgreSQL, fsync on) and rewrite
## docs/PERFORMANCE.md; not part of `make test` (it takes a few minutes)
bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench.run

## profile: CPU time, statements and (PROFILE_ARGS=--pyinstrument) a call tree of one booking,
## in-process against a throwaway cluster: the quick loop for making the booking path cheaper
profile: $(VENV)/.installed-bench
	$(BIN)/python -m bench.profile $(PROFILE_ARGS)

## profile-refusals: one refusal in a diary of 50,000 bookings, alternatives found by PostgreSQL
## and by the Python engine, alternating (wall, CPU, statements, rows; EXPLAIN ANALYZE)
profile-refusals: $(VENV)/.installed-bench
	$(BIN)/python -m bench.refusals $(PROFILE_ARGS)

## screenshots: the owner's web page at desktop and phone width, in headless Chromium, into
## docs/screenshots/ (the README shows them); the pages' browser test with a demo diary
screenshots: $(VENV)/.installed-dev
	SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/python -m booking_service.devtools.pgcluster \
	  throwaway -- $(BIN)/pytest -q -p no:cacheprovider \
	  tests/browser/test_owner_pages.py::test_every_page_fits_a_phone_and_a_desktop

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

db-start: $(VENV)/.installed
	@$(BIN)/python -m booking_service.devtools.pgcluster start $(PGDIR)

db-stop:
	@[ ! -x $(BIN)/python ] || $(BIN)/python -m booking_service.devtools.pgcluster stop $(PGDIR)

clean: db-stop
	rm -rf $(VENV) $(PGDIR)
