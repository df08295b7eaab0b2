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
# pytest-xdist workers of `make test`: the two cores of the project's machine give about one core of throughput
# (measured: 1.1 cores busy on average with three workers, 26 min either way), two workers keep the long real-engine
# tests side by side (timings in docs/get_started.md); 1 runs the suite in one process
TEST_WORKERS ?= 2

# apt-get needs root: use sudo when we are not root.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help setup system-packages demo test lint docs bench clean-profile rabbitmq postgresql daemon services-stop cp2k-versions

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

# -- 2. Python environment: rebuilt only when requirements.txt or pyproject.toml change (or .venv is new) --------------
$(VENV)/pyvenv.cfg: | system-packages
	$(PYTHON) -m venv $(VENV)

$(STAMPS)/venv: requirements.txt pyproject.toml $(VENV)/pyvenv.cfg
	@$(VENV)/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 11), f"$(VENV) has Python {sys.version}; remove it and run make again"'
	$(VENV)/bin/python -m pip install --disable-pip-version-check -r requirements.txt
	$(VENV)/bin/python -m pip install --disable-pip-version-check --no-deps -e .
	@mkdir -p $(STAMPS) && touch $@

# -- 2b. DeePMD-kit 3.2.0 (PyTorch backend) built from its sdist against torch 2.13.0 CPU (docs/mlff.md) ---------------
# The PyPI wheel's op library is built for torch 2.11 and does not load with 2.13, and `deepmd-kit[torch]` would pull
# torch 2.11: build the sdist against the installed torch instead (~110 s on 2 cores). Skipped when it already imports.
DEEPMD_VERSION := 3.2.0
DEEPMD_BUILD_DEPS := scikit-build-core==1.1.2 cmake==4.4.4 ninja==1.13.2 setuptools_scm==10.3.4 \
	dependency_groups==1.3.2 hatch-fancy-pypi-readme==25.1.0 packaging
DEEPMD_CHECK := from importlib.metadata import version; import torch, deepmd.pt; \
	from deepmd.pt.cxx_op import ENABLE_CUSTOMIZED_OP; \
	assert version('deepmd-kit') == '$(DEEPMD_VERSION)' and torch.__version__.startswith('2.13.0') and ENABLE_CUSTOMIZED_OP

$(STAMPS)/deepmd: $(STAMPS)/venv
	@if $(VENV)/bin/python -c "$(DEEPMD_CHECK)" >/dev/null 2>&1; then \
		echo "deepmd-kit $(DEEPMD_VERSION) (torch 2.13.0, custom ops): present (skipped)"; \
	else \
		echo "deepmd-kit $(DEEPMD_VERSION): building from sdist against torch 2.13.0 CPU"; \
		$(VENV)/bin/python -m pip install --disable-pip-version-check $(DEEPMD_BUILD_DEPS) torch==2.13.0 numpy==1.26.4; \
		DP_ENABLE_TENSORFLOW=0 DP_ENABLE_PYTORCH=1 DP_VARIANT=cpu CMAKE_ARGS=-DCMAKE_DISABLE_FIND_PACKAGE_MPI=ON \
			CMAKE_BUILD_PARALLEL_LEVEL=$${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
			$(VENV)/bin/python -m pip install --disable-pip-version-check --no-build-isolation \
			--no-binary deepmd-kit deepmd-kit==$(DEEPMD_VERSION) torch==2.13.0 numpy==1.26.4; \
		$(VENV)/bin/python -c "$(DEEPMD_CHECK)"; \
	fi
	@mkdir -p $(STAMPS) && touch $@

# -- 3. Project-local AiiDA profile, computer and codes (idempotent, checked in Python) ---------------------------------
setup: system-packages $(STAMPS)/venv $(STAMPS)/deepmd
	@echo "python environment: $(VENV) matches requirements.txt + pyproject.toml"
	@$(VENV)/bin/qdtraps setup

# -- The two commands ----------------------------------------------------------------------------------------------
demo test bench: export OMP_NUM_THREADS ?= 1

demo: setup
	$(VENV)/bin/qdtraps demo --protocol $(PROTOCOL)

test: setup lint
	$(VENV)/bin/python -m pytest -v --durations=20 -n $(TEST_WORKERS) --dist load --maxschedchunk 1 tests $(PYTEST_ARGS)

lint: $(STAMPS)/venv
	$(VENV)/bin/ruff check .

# The documentation site (docs/conf.py): needs neither an AiiDA profile nor the network, but the whole package imports
# (autodoc), deepmd-kit included. tests/test_docs.py builds it the same way in `make test`.
docs: $(STAMPS)/deepmd
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
