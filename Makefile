# PruneScope: `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch and torchvision are pinned and installed first: on these machines pip takes both from local
# disk (a CUDA build that also runs on the CPU, ~5.5 GB in the venv). PyPI's torchvision does not
# import beside the older torch 2.13.0 CPU file, which is why the pin is 2.14.1 / 0.29.1.
TORCH_PIN ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.PHONY: setup demo serve test test-fast lint bench browser-deps compose-deps clean help

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_PIN)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install PruneScope with its dev tools

demo: setup  ## train, prune and analyse on built-in digits, then serve the dashboard
	$(BIN)/prunescope demo

serve: setup  ## serve the API and dashboard on http://127.0.0.1:8050/
	$(BIN)/prunescope serve

browser-deps:  ## Debian chromium + chromedriver for the browser tests (never downloaded)
	@if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; \
	fi

# Debian's docker-compose 1.29 validates docker-compose.yml (`config -q`, no Docker engine
# needed); --no-install-recommends: not the Docker engine it recommends
compose-deps:  ## Debian docker-compose, the Compose CLI tests/test_compose.py validates with
	@if ! command -v docker-compose >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends docker-compose; \
	fi

test: setup browser-deps compose-deps  ## install what is needed and run every test
	$(BIN)/python -m pytest

test-fast: setup  ## every test except the browser ones
	$(BIN)/python -m pytest -m 'not browser'

lint: setup  ## ruff and mypy
	$(BIN)/ruff check backend frontend models tests bench
	$(BIN)/ruff format --check backend frontend models tests bench
	$(BIN)/mypy backend frontend models

bench: setup  ## run every benchmark; one BENCH line per figure
	@set -e; for b in bench/bench_*.py; do $(BIN)/python $$b; done

clean:  ## remove the virtualenv and caches (keeps prunescope-data/)
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info
