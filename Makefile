# Tailor: `make demo` on a fresh machine installs everything and runs the pipeline; `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
BIN := .venv/bin
export TAILOR_HOME ?= $(CURDIR)/data
# No telemetry anywhere: these machines have no internet, and a blocked call slows or hangs a run.
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export DAGSTER_DISABLE_TELEMETRY := true
export FEAST_USAGE := False
export DO_NOT_TRACK := 1

DEMO_USERS ?= 2000
DEMO_DAYS ?= 28
DEMO_SEED ?= 7

.PHONY: help install demo test test-unit test-integration test-e2e ui lint typecheck bench clean

help:
	@echo "make demo   install, generate $(DEMO_DAYS) days for $(DEMO_USERS) users, run every asset"
	@echo "make test   run every test (unit, integration, e2e)"
	@echo "make ui     start the Dagster UI on http://127.0.0.1:3000"
	@echo "make lint | typecheck | bench | clean"

# uv installs the exact versions in uv.lock (see ../shared/STACK_NOTES.md for why they are pinned).
# uv runs as `python -m uv`: a fresh pip install does not always put the `uv` script on PATH.
$(BIN)/tailor: pyproject.toml uv.lock
	@$(PYTHON) -m uv --version >/dev/null 2>&1 || \
		$(PYTHON) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(PYTHON) -m uv sync --frozen --python $(PYTHON)
	@touch $@

install: $(BIN)/tailor

demo: install
	$(BIN)/tailor generate --users $(DEMO_USERS) --days $(DEMO_DAYS) --seed $(DEMO_SEED) --overwrite
	$(BIN)/tailor run

test: install
	$(BIN)/pytest

test-unit: install
	$(BIN)/pytest -m unit

test-integration: install
	$(BIN)/pytest -m integration

test-e2e: install
	$(BIN)/pytest -m e2e

ui: install
	$(BIN)/tailor ui

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/bench_simulator.py --events 1000000 10000000
	$(BIN)/python bench/bench_pipeline.py --events 1000000 10000000

clean:
	rm -rf data dbt_project/target dbt_project/logs .pytest_cache .mypy_cache .ruff_cache
