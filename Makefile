# `make test` is THE test command (CI runs it through .ci/run).
# Every target uses .venv/bin/... so nothing needs activating.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= examples/langgraph.json
PYTEST_ARGS ?=
STAMP := $(VENV)/.installed

export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PYTHONUNBUFFERED := 1

.PHONY: install run run-services lint test bench

install: $(STAMP)

$(BIN)/python:
	@echo "==> creating $(VENV) with $$($(PYTHON) --version)"
	@$(PYTHON) -m venv $(VENV)

# Reinstalls when pyproject.toml changes; `rm $(STAMP)` forces it.
$(STAMP): pyproject.toml | $(BIN)/python
	@echo "==> installing the project and its test tools into $(VENV) (pip install -e '.[test]')"
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@
	@echo "==> installed"

run: install
	@echo "==> broker dev: API + worker in one process on .broker/dev.sqlite3, graphs from $(CONFIG)"
	@$(BIN)/broker dev --config $(CONFIG)

# The production topology on local Postgres and Redis: one API and one worker process.
run-services: install
	@echo "==> checking Postgres and Redis (DATABASE_URI / REDIS_URI, or local services)"
	@$(BIN)/python -m tests.services
	@echo "==> broker migrate"
	@$(BIN)/broker migrate
	@echo "==> broker worker (background) + broker api (foreground) with $(CONFIG); Ctrl-C stops both"
	@$(BIN)/broker worker --config $(CONFIG) & worker=$$!; \
	trap 'kill -TERM $$worker 2>/dev/null && wait $$worker || true' EXIT; \
	trap 'exit 130' INT TERM; \
	$(BIN)/broker api --config $(CONFIG)

lint: install
	@echo "==> ruff check"
	@$(BIN)/ruff check .
	@echo "==> ruff format --check"
	@$(BIN)/ruff format --check .
	@echo "==> mypy (strict)"
	@$(BIN)/mypy
	@echo "==> lint-imports"
	@$(BIN)/lint-imports

test: install lint
	@echo "==> pytest"
	@status=0; $(BIN)/pytest $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then echo "==> pytest collected no tests: that is a failure here" >&2; fi; \
	exit $$status

# `make bench`: our server vs LangGraph's dev server vs this machine's ceilings (bench/README.md).
# BENCH_ARGS="--quick" for a smoke run, "--only latency,streaming", "--no-reference".
BENCH_ARGS ?=
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): pyproject.toml $(STAMP)
	@echo "==> installing the bench extra into $(VENV) (pip install -e '.[test,bench]')"
	@$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	@touch $@

bench: $(BENCH_STAMP)
	@echo "==> checking Postgres and Redis (DATABASE_URI / REDIS_URI, or local services)"
	@$(BIN)/python -m tests.services
	@$(BIN)/python -m bench.run $(BENCH_ARGS)
