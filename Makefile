# ПОС ОГ — the two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON := $(shell command -v $(PYTHON))
export UV_LINK_MODE := copy

.PHONY: help setup demo test lint unit integration e2e browser bench fmt clean chromium

help:
	@echo "make demo   — set everything up and run the whole flow on the embedded default"
	@echo "make test   — set everything up and run lint, type checks and the whole test suite"
	@echo "make bench  — benchmarks on PostgreSQL + RabbitMQ (see bench/)"
	@echo "make lint   — ruff, mypy --strict, import-linter"

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

# The virtual environment follows the lock file exactly.
$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --quiet
	@touch $@

# Bytecode compiled ahead of time. Where PYTHONDONTWRITEBYTECODE is set (as on this project's
# machines and in many CI images) Python never caches it, and every process compiles each module it
# imports, each time: that doubled the start-up of each `posog` process the end-to-end tests run.
# Stale files are harmless: Python checks each against its source and compiles an edited one afresh.
$(VENV)/.compiled: $(VENV)/.synced
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null
	@touch $@

setup: $(VENV)/.synced $(VENV)/.compiled
	@$(BIN)/python -m compileall -q -j 0 src migrations >/dev/null

chromium:
	@command -v /usr/bin/chromium >/dev/null || { \
	  echo "Installing Debian's Chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); }

demo: setup
	$(BIN)/posog demo $(ARGS)

lint: setup
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/ruff format --check src tests bench migrations
	$(BIN)/mypy
	$(BIN)/lint-imports

# The suite on two processes (pytest-xdist; this project's machines and CI runners have two cores):
# a test goes to whichever process is free, the tests of one xdist group (tests/conftest.py) to one
# process, one after another. `make test PYTEST_WORKERS=0` runs it in one process. The lint runs
# meanwhile (its output, kept in test-output/lint.log, is printed after the tests'); either failing
# fails `make test`.
PYTEST_WORKERS ?= 2

test: setup chromium
	@mkdir -p test-output
	@$(MAKE) --no-print-directory lint >test-output/lint.log 2>&1 & lint=$$!; \
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS); tests=$$?; \
	wait $$lint; linted=$$?; cat test-output/lint.log; \
	if [ $$linted -ne 0 ]; then echo "make lint failed (its output is above)"; fi; \
	[ $$tests -eq 0 ] && [ $$linted -eq 0 ]

unit: setup
	$(BIN)/pytest -q tests/unit

integration: setup
	$(BIN)/pytest -q tests/integration

e2e: setup
	$(BIN)/pytest -q tests/e2e

bench: setup
	$(BIN)/python -m bench $(ARGS)

fmt: setup
	$(BIN)/ruff format src tests bench migrations
	$(BIN)/ruff check --fix src tests bench migrations

clean:
	rm -rf $(VENV) $(TOOLS) var .pytest_cache .mypy_cache .ruff_cache
