"""llama.cpp through ``llama-cpp-python`` on the same GGUF file: the LLM benchmark's second peer.

Optional: ``llama-cpp-python`` builds llama.cpp from source (no wheel for this platform on
PyPI; about 10 minutes on 2 cores) and is in no extra; where it does not import, the
benchmark prints ``-``. Built natively on the Sapphire Rapids VMs here it enables AMX, and
``decode`` segfaults (the guest does not grant AMX tile state); build it without::

    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
      -DGGML_BMI2=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON \
      -DGGML_AVX512_VBMI=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
      .venv/bin/python -m pip install --no-binary :all: llama-cpp-python==0.3.36 Measured as ours: the prefill of a 128-token prompt (best of 3) and
decode at batch 1 (the median of ``steps`` steps, each one evaluation of one token and the
argmax of its logits). Its high-level API decodes one sequence at a time, so there is no
batch-8 row for it.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except (ImportError, OSError):  # not installed, or its shared library does not load
        return False
    return True


def _model(path: Path, threads: int, n_ctx: int):  # type: ignore[no-untyped-def]
    from llama_cpp import Llama

    return Llama(model_path=str(path), n_threads=threads, n_threads_batch=threads,
                 n_ctx=n_ctx, n_batch=512, verbose=False)


def prefill_tokens_per_s(path: Path, tokens: list[int], threads: int) -> float:
    llm = _model(path, threads, len(tokens) + 8)
    best = float("inf")
    for _ in range(3):
        llm.reset()
        start = time.perf_counter()
        llm.eval(tokens)
        best = min(best, time.perf_counter() - start)
    return len(tokens) / best


def decode_tokens_per_s(path: Path, prompt: list[int], steps: int, threads: int) -> float:
    llm = _model(path, threads, len(prompt) + steps + 8)
    llm.eval(prompt)
    token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        llm.eval([token])
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        times.append(time.perf_counter() - start)
    return 1.0 / float(np.median(times))


__all__ = ["available", "decode_tokens_per_s", "prefill_tokens_per_s"]
