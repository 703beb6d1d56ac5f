#!/usr/bin/env bash
# One script for a session with a lent GPU (under 8 minutes): the GPU test tier, then GPU
# timings against torch CUDA eager (benchmarks/gpu_check.py). Run from the repository root.
set -u
PY="${PYTHON:-.venv/bin/python}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
timeout 450 "$PY" -m benchmarks.gpu_check "$@"
