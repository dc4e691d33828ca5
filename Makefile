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

# Every figure in docs/benchmarks.md, with the command written there; `make bench-<name>` reruns one of them.
BENCHMARKS := simulator pipeline bandit experiments feature-store stream calibration sequential-aa run-cost app \
	ranker movielens closed-loop recommend service dbt-commits startup

.PHONY: help install install-spark demo test test-unit test-integration test-e2e ui app screenshots lint typecheck bench clean \
	$(addprefix bench-,$(BENCHMARKS))

help:
	@echo "make demo   install, generate $(DEMO_DAYS) days for $(DEMO_USERS) users, run every asset"
	@echo "make test   run every test (unit, integration, e2e)"
	@echo "make ui     start the Dagster UI on http://127.0.0.1:$(UI_PORT) (plain \`dagster dev\` here works too)"
	@echo "make app    start the analyst app on http://127.0.0.1:$(APP_PORT) (Streamlit; docs/app.md)"
	@echo "make screenshots  regenerate docs/img/app-*.png from the demo history (Debian's chromium)"
	@echo "make bench  rerun every benchmark in docs/benchmarks.md (three to four hours on 2 cores)"
	@echo "make bench-NAME  rerun one; NAME is one of: $(BENCHMARKS)"
	@echo "make lint | typecheck | clean"

# uv installs the exact versions in uv.lock (docs/decisions.md says why some are pinned).
# uv runs as `python -m uv`: a fresh pip install does not always put the `uv` script on PATH.
# --compile-bytecode writes every installed module's .pyc once (~20 s): where PYTHONDONTWRITEBYTECODE is set, as on
# these machines, each process would otherwise compile what it imports from source, ~6 s more for every `tailor`
# command, Dagster step and test subprocess (docs/benchmarks.md, "Starting a process that opens Feast").
$(BIN)/tailor: pyproject.toml uv.lock
	@$(PYTHON) -m uv --version >/dev/null 2>&1 || \
		$(PYTHON) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(PYTHON) -m uv sync --frozen --compile-bytecode --python $(PYTHON)
	@touch $@

install: $(BIN)/tailor

# The optional Spark engine (docs/scaling_out.md): `make test` adds the `spark` extra for the DuckDB-Spark parity
# test; `make install` and `make demo` do not. `--inexact` keeps the rest of the venv as uv.lock has it.
$(BIN)/spark-submit: pyproject.toml uv.lock | $(BIN)/tailor
	$(PYTHON) -m uv sync --frozen --inexact --extra spark --compile-bytecode --python $(PYTHON)
	@touch $@

install-spark: $(BIN)/spark-submit

demo: install
	$(BIN)/tailor generate --users $(DEMO_USERS) --days $(DEMO_DAYS) --seed $(DEMO_SEED) --overwrite
	$(BIN)/tailor run

# Two workers (pytest-xdist), one test module each at a time so module fixtures are built once: most of a test's
# time is one process's Python (dbt, Feast, Dagster start-up), so two overlap well even on 2 cores.
# TAILOR_TEST_WORKERS=0 runs in one process.
TAILOR_TEST_WORKERS ?= 2
test: install install-spark
	$(BIN)/pytest -n $(TAILOR_TEST_WORKERS) --dist loadfile --durations=25

test-unit: install
	$(BIN)/pytest -m unit

test-integration: install
	$(BIN)/pytest -m integration

test-e2e: install
	$(BIN)/pytest -m e2e

# `tailor ui` = `dagster dev` from this folder, with the instance under TAILOR_HOME (code location `tailor`).
UI_PORT ?= 3000
ui: install
	$(BIN)/tailor ui --port $(UI_PORT)

# The analyst app (docs/app.md): read-only over the published marts, on loopback, no usage statistics.
APP_PORT ?= 8501
# `tailor app` records its address in the home, so that `tailor run`'s summary names the port it listens on.
app: install
	$(BIN)/tailor app --port $(APP_PORT)

# The README's screenshots: the app on the demo history (`make demo` first), driven by Debian's chromium.
screenshots: install
	$(BIN)/python -m app.screenshots --out docs/img

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

# One after another even under `make -j`: benchmarks that share the 2 cores measure each other.
bench: install
	@for name in $(BENCHMARKS); do $(MAKE) --no-print-directory -j1 bench-$$name || exit 1; done

bench-simulator: install
	$(BIN)/python bench/bench_simulator.py --events 1000000 10000000

bench-pipeline: install
	$(BIN)/python bench/bench_pipeline.py --events 1000000 10000000

bench-bandit: install
	$(BIN)/python bench/bench_bandit.py

bench-experiments: install
	$(BIN)/python bench/bench_experiments.py --experiments 100 --events 10000000

bench-feature-store: install
	$(BIN)/python bench/bench_feature_store.py --impressions 1000000

bench-stream: install
	$(BIN)/python bench/bench_stream.py --events 50000

bench-calibration: install
	$(BIN)/python bench/calibrate_experiments.py --simulations 1000 --demo-simulations 600 --workers 2

bench-sequential-aa: install
	$(BIN)/python bench/bench_sequential_aa.py --worlds 40 --experiments 100 --users 1000 --days 21 --seed 30000

bench-dbt-commits: install
	$(BIN)/python bench/bench_dbt_commits.py --events 10000000 --commits a40eb7a HEAD --repeats 2

bench-run-cost: install
	$(BIN)/python bench/bench_run_cost.py --events 1000000 10000000

# The app's time to first render on the demo (built first if missing) and, with APP_BENCH_BIG_HOME=<a home built
# from 10M events>, on that too (docs/benchmarks.md says how that home was built).
bench-app: install
	@test -f $(TAILOR_HOME)/marts/dim_users.parquet || $(MAKE) --no-print-directory demo
	$(BIN)/python bench/bench_app.py --home $(TAILOR_HOME) --label demo \
		$(if $(APP_BENCH_BIG_HOME),--home $(APP_BENCH_BIG_HOME) --label 10M)

bench-ranker: install
	$(BIN)/python bench/bench_ranker.py --timeout 1500

bench-movielens: install
	$(BIN)/python bench/bench_movielens.py --crosscheck

bench-closed-loop: install
	TAILOR_RANKER_SEARCH_TRIALS=4 $(BIN)/python bench/bench_closed_loop.py --users 1500

bench-recommend: install
	$(BIN)/python bench/bench_recommend.py

bench-service: install
	$(BIN)/python bench/bench_service.py

# What Feast's typeguard checks cost a process that opens the feature store, on the demo (built first if missing).
bench-startup: install
	@test -f $(TAILOR_HOME)/marts/batch_recommendations_by_user.parquet || $(MAKE) --no-print-directory demo
	$(BIN)/python bench/bench_startup.py --home $(TAILOR_HOME)

clean:
	rm -rf data dbt_project/target dbt_project/logs .pytest_cache .mypy_cache .ruff_cache
