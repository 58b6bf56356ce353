# The two commands of the README: `make run` and `make test`. Both work on a machine that has only
# Python 3.11, pip and make: they build .venv from the lock file first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# an older DuckDB (1.x), only for the test that opens the analysts' catalog with it
DUCKDB1 := $(VENV)/duckdb1
DUCKDB1_STAMP := $(DUCKDB1)/.installed
DATA ?= ./var
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: test-fast run test check lint typecheck install lock bench clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/floodwatch serve --data $(DATA) --host $(HOST) --port $(PORT)

$(DUCKDB1_STAMP): requirements-duckdb1.lock $(STAMP)
	rm -rf $(DUCKDB1)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps --target $(DUCKDB1) \
		-r requirements-duckdb1.lock
	touch $(DUCKDB1_STAMP)

test: $(STAMP) $(DUCKDB1_STAMP)
	FLOODWATCH_DUCKDB1=$(DUCKDB1) $(BIN)/python -m pytest -n 2 -q

# the suite without the tests marked slow (crash loops, long property runs): for quick
# iterations; `make test` is still the whole suite and what CI runs
test-fast: $(STAMP) $(DUCKDB1_STAMP)
	FLOODWATCH_DUCKDB1=$(DUCKDB1) $(BIN)/python -m pytest -n 2 -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks -q --benchmark-only

# Regenerate the lock from pyproject.toml (needs network to the package index).
lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install --quiet pip-tools
	.lockenv/bin/pip-compile --quiet --generate-hashes --allow-unsafe --extra dev \
		--output-file requirements.lock pyproject.toml
	rm -rf .lockenv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
