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

.PHONY: install run lint test

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
