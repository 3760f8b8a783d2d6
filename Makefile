# The README's two commands: `make demo` and `make test`. Everything else supports them.
SHELL := /bin/bash
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Torch goes in first from its CPU wheel, and is repeated in the second install so that
# nothing pulls a newer torch with gigabytes of CUDA packages.
TORCH ?= torch==2.13.0
# Where no local CPU wheel is configured for pip, point it at PyTorch's CPU index:
#   make test TORCH_PIP_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu"
TORCH_PIP_ARGS ?=
EXTRAS ?= dev,readers,viewer,slurm
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo test install system slurm slurm-down browser lint benchmark clean

demo: install  ## Run the embedded demo end to end through Snakemake (results/demo/)
	$(BIN)/snakemake --profile profiles/default

test: install  ## Install if needed, then run the whole test suite
	$(BIN)/python -m pytest

install: $(STAMP)  ## Create $(VENV) with sarise and its extras

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || $(MAKE) system
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_PIP_ARGS) $(TORCH)
	$(BIN)/python -m pip install --quiet $(TORCH_PIP_ARGS) -e ".[$(EXTRAS)]" $(TORCH)
	touch $@

system:  ## Debian packages a fresh machine lacks: Python venv, OpenMPI (run as root)
	$(SUDO) apt-get update -qq
	$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		python3 python3-venv python3-pip openmpi-bin libopenmpi-dev

browser:  ## Debian's Chromium for the viewer tests (Playwright drives it; never downloads one)
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }

slurm:  ## Start a real single-node SLURM cluster here (installs Debian's slurm and munge)
	@command -v slurmctld >/dev/null || { $(SUDO) apt-get update -qq && \
		$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		slurmctld slurmd slurm-client munge; }
	$(SUDO) profiles/slurm/local-cluster.sh up

slurm-down:  ## Stop the local SLURM cluster
	$(SUDO) profiles/slurm/local-cluster.sh down

lint: install  ## Static checks: ruff, snakefmt, snakemake --lint
	$(BIN)/ruff check sarise tests benchmarks
	$(BIN)/ruff format --check sarise tests benchmarks
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

benchmark: install  ## Throughput tables: generator, training, ingest, extraction, projection, search, viewer, the DAG at scale
	$(BIN)/python benchmarks/bench_generate.py
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_extract.py
	$(BIN)/python benchmarks/bench_descriptor.py
	$(BIN)/python benchmarks/bench_retrieval.py
	$(BIN)/python benchmarks/bench_label_purity.py
	$(BIN)/python benchmarks/bench_symmetry.py
	$(BIN)/python benchmarks/bench_channels.py
	$(BIN)/python benchmarks/bench_project.py
	$(BIN)/python benchmarks/bench_view.py
	$(BIN)/python benchmarks/bench_scale.py --sizes 10000 100000  # --sizes 1000000: hours on 2 cores

clean:
	rm -rf results logs .snakemake .cache
