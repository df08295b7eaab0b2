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
# pytest-xdist workers of `make test`, each taking whole test modules: two keep both cores of the project's machine busy
# (95 % of the run, /proc/stat; `time` shows half of it, the engines run as detached jobs), the long real-engine tests
# side by side (timings in docs/get_started.md); 1 runs the suite in one process
TEST_WORKERS ?= 2

# apt-get needs root: use sudo when we are not root.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help setup system-packages python-env demo test lint docs bench clean-profile rabbitmq postgresql daemon services-stop cp2k-versions

help:
	@echo "make demo           set everything up, then run the demo (PROTOCOL=$(PROTOCOL))"
	@echo "make test           set everything up, then run ruff and the whole test suite"
	@echo "make lint           ruff check (the rules of pyproject.toml; also a pre-commit hook)"
	@echo "make docs           build the documentation site into docs/_build/html (Sphinx, warnings are errors)"
	@echo "make setup          install Debian cp2k + quantum-espresso, .venv, the project AiiDA profile and codes"
	@echo "make bench          set up, then run benchmarks/overhead.py"
	@echo "make clean-profile  delete the project AiiDA profile (.aiida/): all stored data and scratch"
	@echo "make daemon         start the daemon of the project profile (qdtraps setup --daemon); docs/scaleout.md"
	@echo "make rabbitmq       opt-in: install, configure (consumer_timeout off) and start RabbitMQ"
	@echo "make postgresql     opt-in: install and start PostgreSQL"
	@echo "make cp2k-versions  opt-in: Debian's CP2K 2025.2 and 2026.2 in chroots, as codes cp2k-2025.2/cp2k-2026.2"
	@echo "make services-stop  stop the daemon, RabbitMQ and PostgreSQL"

# -- 1. Debian packages: only when a binary is missing ----------------------------------------------------------------
system-packages:
	@missing=""; \
	command -v cp2k.psmp >/dev/null 2>&1 || missing="$$missing cp2k"; \
	command -v pw.x >/dev/null 2>&1 || missing="$$missing quantum-espresso"; \
	command -v mpirun >/dev/null 2>&1 || missing="$$missing openmpi-bin"; \
	[ -x /usr/sbin/sshd ] || missing="$$missing openssh-server"; \
	[ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/slurmd ] || missing="$$missing slurm-wlm"; \
	[ -x /usr/sbin/munged ] || missing="$$missing munge"; \
	[ -e /usr/lib/x86_64-linux-gnu/libpmix.so ] || ls /usr/lib/*/libpmix.so >/dev/null 2>&1 || missing="$$missing libpmix-dev"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ ! -x $(VENV)/bin/python ] && ! $(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1; then \
		missing="$$missing python3.11 python3.11-venv"; \
	fi; \
	if [ -n "$$missing" ]; then \
		echo "system packages: installing$$missing"; \
		$(SUDO) apt-get update; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	else \
		echo "system packages: cp2k, quantum-espresso, openssh-server, slurm-wlm, chromium present (skipped)"; \
	fi

# -- 2. Python environment (tools/python_env.sh, docs/setup.md): the pinned dependencies in a shared, hash-keyed ----------
# environment (built once per requirements.txt; DeePMD-kit 3.2.0 built from its sdist against torch 2.13.0 CPU,
# docs/mlff.md), and the checkout's thin .venv on top with this package editable. Re-run only when the pins, the entry
# points or the script change, or when either layer is missing.
python-env: system-packages
	@if [ -f $(STAMPS)/venv ] && [ $(STAMPS)/venv -nt requirements.txt ] && [ $(STAMPS)/venv -nt pyproject.toml ] \
		&& [ $(STAMPS)/venv -nt tools/python_env.sh ] && [ -x $(VENV)/bin/python ] \
		&& [ -f "$$(cat $(VENV)/.qdtraps-deps 2>/dev/null)/.complete" ]; then \
		echo "python environment: $(VENV) on $$(cat $(VENV)/.qdtraps-deps) (present, skipped)"; \
	else \
		tools/python_env.sh $(PYTHON) $(VENV) && mkdir -p $(STAMPS) && touch $(STAMPS)/venv; \
	fi

# -- 3. Project-local AiiDA profile, computer and codes (idempotent, checked in Python) ---------------------------------
setup: python-env
	@$(VENV)/bin/qdtraps setup

# -- The two commands ----------------------------------------------------------------------------------------------
demo test bench: export OMP_NUM_THREADS ?= 1

demo: setup
	$(VENV)/bin/qdtraps demo --protocol $(PROTOCOL)

test: setup lint
	$(VENV)/bin/python -m pytest -v --durations=20 -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder tests $(PYTEST_ARGS)

lint: python-env
	$(VENV)/bin/ruff check .

# The documentation site (docs/conf.py): needs neither an AiiDA profile nor the network, but the whole package imports
# (autodoc), deepmd-kit included. tests/test_docs.py builds it the same way in `make test`.
docs: python-env
	$(VENV)/bin/sphinx-build -W --keep-going -b html docs docs/_build/html
	@echo "open docs/_build/html/index.html"

bench: setup
	$(VENV)/bin/python benchmarks/overhead.py

cp2k-versions: setup
	tools/cp2k_debian.sh sid
	tools/cp2k_debian.sh experimental
	. ./env.sh && for version in 2025.2 2026.2; do \
		verdi code show cp2k-$$version@localhost >/dev/null 2>&1 || verdi code create core.code.installed \
			--non-interactive --label cp2k-$$version --computer localhost \
			--filepath-executable /usr/local/bin/cp2k-$$version --default-calc-job-plugin cp2k \
			--description "CP2K $$version (Debian, in a chroot; tools/cp2k_debian.sh)" \
			--prepend-text 'export OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1}'; \
	done

clean-profile:
	@if [ -d .aiida ]; then \
		AIIDA_PATH="$(CURDIR)/.aiida" PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/verdi -p qdtraps daemon stop >/dev/null 2>&1 || true; \
		rm -rf .aiida; echo "removed .aiida (profile qdtraps, its storage and scratch)"; \
	else \
		echo "no .aiida to remove"; \
	fi

# -- Daemon mode and the optional services (docs/scaleout.md); never run by setup, demo or test ------------------------
daemon: setup
	@$(VENV)/bin/qdtraps setup --daemon

RABBITMQ_ADVANCED := /etc/rabbitmq/advanced.config

rabbitmq:
	@if ! command -v rabbitmq-server >/dev/null 2>&1 && [ ! -x /usr/sbin/rabbitmq-server ]; then \
		$(SUDO) apt-get update; $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y rabbitmq-server; \
	fi
	@restart=0; \
	if ! grep -qs 'consumer_timeout, *undefined' $(RABBITMQ_ADVANCED); then \
		echo '[{rabbit, [{consumer_timeout, undefined}]}].' | $(SUDO) tee $(RABBITMQ_ADVANCED) >/dev/null; \
		echo "rabbitmq: wrote $(RABBITMQ_ADVANCED) (consumer_timeout disabled)"; restart=1; \
	fi; \
	if (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then \
		if [ $$restart = 1 ]; then $(SUDO) service rabbitmq-server restart; else echo "rabbitmq: running (skipped)"; fi; \
	else \
		$(SUDO) service rabbitmq-server start; \
	fi

postgresql:
	@if ! command -v pg_ctlcluster >/dev/null 2>&1; then \
		$(SUDO) apt-get update; $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; \
	fi
	@if (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then echo "postgresql: running (skipped)"; \
	else $(SUDO) service postgresql start; fi

services-stop:
	@if [ -d .aiida ]; then \
		AIIDA_PATH="$(CURDIR)/.aiida" PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/verdi -p qdtraps daemon stop || true; \
	fi
	@if (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then $(SUDO) service rabbitmq-server stop; fi
	@if (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then $(SUDO) service postgresql stop; fi
