# aiida-qdtraps: the two commands are `make demo` and `make test`.
# Both install what is missing (Debian packages, .venv, AiiDA profile + codes) and skip what is there.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON   ?= python3.11
VENV     := .venv
STAMPS   := .make-stamps
PROTOCOL ?= fast
PYTEST_ARGS ?=

# apt-get needs root: use sudo when we are not root.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help setup system-packages demo test bench clean-profile

help:
	@echo "make demo           set everything up, then run the demo (PROTOCOL=$(PROTOCOL))"
	@echo "make test           set everything up, then run the whole test suite"
	@echo "make setup          install Debian cp2k + quantum-espresso, .venv, the project AiiDA profile and codes"
	@echo "make bench          set up, then run benchmarks/overhead.py"
	@echo "make clean-profile  delete the project AiiDA profile (.aiida/): all stored data and scratch"

# -- 1. Debian packages: only when a binary is missing ----------------------------------------------------------------
system-packages:
	@missing=""; \
	command -v cp2k.psmp >/dev/null 2>&1 || missing="$$missing cp2k"; \
	command -v pw.x >/dev/null 2>&1 || missing="$$missing quantum-espresso"; \
	command -v mpirun >/dev/null 2>&1 || missing="$$missing openmpi-bin"; \
	if [ ! -x $(VENV)/bin/python ] && ! $(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1; then \
		missing="$$missing python3.11 python3.11-venv"; \
	fi; \
	if [ -n "$$missing" ]; then \
		echo "system packages: installing$$missing"; \
		$(SUDO) apt-get update; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	else \
		echo "system packages: cp2k, quantum-espresso present (skipped)"; \
	fi

# -- 2. Python environment: rebuilt only when requirements.txt or pyproject.toml change (or .venv is new) --------------
$(VENV)/pyvenv.cfg: | system-packages
	$(PYTHON) -m venv $(VENV)

$(STAMPS)/venv: requirements.txt pyproject.toml $(VENV)/pyvenv.cfg
	@$(VENV)/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 11), f"$(VENV) has Python {sys.version}; remove it and run make again"'
	$(VENV)/bin/python -m pip install --disable-pip-version-check -r requirements.txt
	$(VENV)/bin/python -m pip install --disable-pip-version-check --no-deps -e .
	@mkdir -p $(STAMPS) && touch $@

# -- 3. Project-local AiiDA profile, computer and codes (idempotent, checked in Python) ---------------------------------
setup: system-packages $(STAMPS)/venv
	@echo "python environment: $(VENV) matches requirements.txt + pyproject.toml"
	@$(VENV)/bin/qdtraps setup

# -- The two commands ----------------------------------------------------------------------------------------------
demo test bench: export OMP_NUM_THREADS ?= 1

demo: setup
	$(VENV)/bin/qdtraps demo --protocol $(PROTOCOL)

test: setup
	$(VENV)/bin/python -m pytest -v tests $(PYTEST_ARGS)

bench: setup
	$(VENV)/bin/python benchmarks/overhead.py

clean-profile:
	@if [ -d .aiida ]; then \
		AIIDA_PATH="$(CURDIR)/.aiida" PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/verdi -p qdtraps daemon stop >/dev/null 2>&1 || true; \
		rm -rf .aiida; echo "removed .aiida (profile qdtraps, its storage and scratch)"; \
	else \
		echo "no .aiida to remove"; \
	fi
