# riskstream: every developer action is one make target; `make help` lists them.
# A fresh machine needs Python 3.11, Java 17 and Maven (for the one-time jar fetch).

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install jars lint format config-docs test test-unit demo bench clean peers-env

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create the virtualenv and install riskstream with dev tools (once)

jars: install ## fetch the pinned jars into the cache (once) and verify their sha256
	$(BIN)/riskstream jars fetch

lint: install ## ruff (lint + format check), mypy --strict and the import-linter layer contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

format: install ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

config-docs: install ## regenerate core/resources/riskstream.yaml and docs/configuration.md's reference from the settings model
	$(BIN)/python -m core.config_doc --write

.PHONY: golden
golden: install ## regenerate the golden files of the feature spec (schemas/json/feature_set.*.json)
	$(BIN)/python -m schemas.feature_set

test: jars lint ## set everything up, lint, then run the whole suite on the real Kafka and Flink
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: install ## only the tests that need no JVM
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

demo: jars ## start Kafka, stream simulated payments through the job on the mini-cluster, stop
	$(BIN)/riskstream demo

QUIX_VENV := .venv-quix

$(QUIX_VENV)/.installed: bench/requirements-quix.txt
	$(PYTHON) -m venv $(QUIX_VENV)
	$(QUIX_VENV)/bin/python -m pip install --quiet -r bench/requirements-quix.txt
	touch $@

peers-env: $(QUIX_VENV)/.installed ## the Quix Streams virtualenv of bench/peers.py (its pins conflict with ours)

clean: ## remove the virtualenv and runtime files (the jar cache is kept)
	rm -rf $(VENV) $(QUIX_VENV) .riskstream .pytest_cache .mypy_cache .ruff_cache .import_linter_cache *.egg-info
