# profilecast developer commands. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.profilecast-installed
export PROFILECAST_HOME ?= $(CURDIR)/.profilecast
DEMO_CONTACTS ?= 3000
DEMO_DATE ?= 2026-10-31
DEMO_SEED ?= 42

.DEFAULT_GOAL := help
.PHONY: help install demo simulate test lint format airflow lock clean bench bench-identity benchmark benchmark-deps browser up cluster

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

# Bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set (as on CI machines)
# Python never caches it, and every Airflow, dbt and GX process compiled its imports from
# source again (the quality gate spent 6 of its 15 s doing so). compileall also covers a
# venv made before this rule (it skips what is up to date).
$(STAMP): pyproject.toml dev/pyproject.toml requirements.lock Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==0.13.9
	$(UV) pip install --python $(PY) --quiet --compile-bytecode -r requirements.lock
	$(UV) pip install --python $(PY) --quiet --no-deps -e . -e dev
	$(PY) -m compileall -q -j 0 plugins dags dev/profilecast_dev \
	  $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') > /dev/null
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install pinned dependencies (idempotent)

demo: $(STAMP) ## Generate a sample and run the whole DAG for one date, then print the summary
	$(VENV)/bin/profilecast generate --contacts $(DEMO_CONTACTS) --seed $(DEMO_SEED) --end-date $(DEMO_DATE) --out $(PROFILECAST_HOME)/sample
	PROFILECAST_SOURCES=$${PROFILECAST_SOURCES:-$(PROFILECAST_HOME)/sample} $(VENV)/bin/profilecast run --date $(DEMO_DATE)

SIM_CONTACTS ?= 3000
SIM_DAYS ?= 5
simulate: $(STAMP) ## Run SIM_DAYS daily intervals under a real scheduler and check the invariants
	$(VENV)/bin/profilecast simulate --contacts $(SIM_CONTACTS) --days $(SIM_DAYS)

cluster: $(STAMP) ## One interval on a loopback Celery cluster (PostgreSQL metadata and warehouse, Redis broker, two workers, S3 exports)
	$(VENV)/bin/profilecast cluster --contacts $${CLUSTER_CONTACTS:-2000}

browser: ## Install Debian's chromium for the preview test (as root; nothing when present)
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	  else echo "chromium missing and not root: the preview test will skip outside CI"; fi; }

test: $(STAMP) browser ## Run lint and the whole test suite (unit, DAG integrity, end to end)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/sqlfluff lint dbt_project/models
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist load --no-loadscope-reorder --durations=12

lint: $(STAMP) ## ruff lint + format check, sqlfluff on the dbt models
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/sqlfluff lint dbt_project/models

format: $(STAMP) ## Apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

airflow: $(STAMP) ## Start `airflow standalone` on the project's DAGs (UI on http://localhost:8080)
	$(VENV)/bin/profilecast airflow-standalone

BENCH_STAMP := $(VENV)/.profilecast-bench-installed
$(BENCH_STAMP): $(STAMP) requirements-bench.lock
	$(UV) pip install --python $(PY) --quiet --compile-bytecode -r requirements-bench.lock
	@touch $(BENCH_STAMP)

benchmark-deps: $(BENCH_STAMP) ## Install the benchmark-only pins (Splink, the identity reference)

BENCH_CONTACTS ?= 100000
# BENCH_ARGS=--reuse-world keeps the world an earlier run of the same size generated
BENCH_ARGS ?=
bench: $(STAMP) ## The pipeline at BENCH_CONTACTS, stage by stage against each floor, full run and next day (bench.md)
	$(PY) benchmarks/bench.py --contacts $(BENCH_CONTACTS) --out $(PROFILECAST_HOME)/bench-run-$(BENCH_CONTACTS) $(BENCH_ARGS)

bench-identity: $(BENCH_STAMP) ## Identity accuracy on Splink's labelled sets, profilecast and Splink side by side (identity.md)
	$(PY) benchmarks/identity_side_by_side.py --out $(PROFILECAST_HOME)/bench-identity

benchmark: $(BENCH_STAMP) ## Scale benchmarks (BENCH_CONTACTS=1000000 for the full run): time, memory, accuracy
	$(PY) benchmarks/sources_scale.py --contacts $(BENCH_CONTACTS) --workers 2 --out $(PROFILECAST_HOME)/bench-$(BENCH_CONTACTS)
	$(PY) benchmarks/pipeline_scale.py --contacts $(BENCH_CONTACTS) --out $(PROFILECAST_HOME)/bench-$(BENCH_CONTACTS) --warehouse-only
	$(PY) benchmarks/gate_scale.py --home $(PROFILECAST_HOME)/bench-$(BENCH_CONTACTS)/home --profiles $(BENCH_CONTACTS)
	$(PY) benchmarks/render_export.py --recipients $(BENCH_CONTACTS)
	$(PY) benchmarks/external_report.py
	$(PY) benchmarks/identity_side_by_side.py --out $(PROFILECAST_HOME)/bench-identity
	$(PY) benchmarks/identity_external.py --thresholds 4,10

lock: ## Re-resolve requirements.in into requirements.lock
	@test -x $(UV) || (python3 -m venv $(VENV) && $(VENV)/bin/pip install --quiet uv==0.13.9)
	$(UV) pip compile requirements.in --python-version 3.11 -o requirements.lock
	$(UV) pip compile requirements-bench.in -c requirements.lock --python-version 3.11 -o requirements-bench.lock

clean: ## Remove generated data, the warehouse and Airflow state (keeps .venv)
	rm -rf $(PROFILECAST_HOME) dbt_project/target dbt_project/logs

up: $(STAMP) ## Start the event collector and Airflow (scheduler, DAG processor, triggerer, API server)
	PROFILECAST_WAKE_URL=$${PROFILECAST_WAKE_URL:-redis://127.0.0.1:6379/0} $(VENV)/bin/profilecast up
