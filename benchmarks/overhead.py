"""The overhead rows: cold compile and warm load of the encoder block, for each engine.

- cold compile: ours is ``InferenceSession.load`` end to end into an empty cache
  (``$MAX_CACHE_DIR`` pointed at a fresh directory before each sample, untimed; the compile
  worker process is already running); ONNX Runtime creates a session from the model's bytes
  (all graph optimisations on); JAX calls a freshly ``jax.jit``-ed function once (trace,
  lower, compile, run; the persistent compilation cache off).
- warm load: ours loads the same graph from the populated cache; ONNX Runtime creates a session
  from the model it optimised and saved before, optimisations off; JAX calls a fresh
  ``jax.jit`` of the same function with its persistent compilation cache populated.

The call overhead row is an ordinary workload (``tiny`` in ``benchmarks/graphs.py``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from benchmarks import peers
from benchmarks.graphs import BenchGraph
from benchmarks.peers import Run


@dataclass
class OverheadRow:
    """A row whose every sample is one load or compile: ``runs`` by engine; ``context`` wraps
    the whole row (JAX's persistent cache on for the warm row only)."""

    title: str
    runs: dict[str, Run | None]
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    cleanup: list[Callable[[], None]] = field(default_factory=list)


@contextlib.contextmanager
def _cache_dir(path: str) -> Iterator[None]:
    old = os.environ.get("MAX_CACHE_DIR")
    os.environ["MAX_CACHE_DIR"] = path
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MAX_CACHE_DIR", None)
        else:
            os.environ["MAX_CACHE_DIR"] = old


def _ours(bg: BenchGraph, threads: int, cold: bool, scratch: str) -> Run:
    from max.driver import CPU
    from max.engine import InferenceSession

    session = InferenceSession(devices=[CPU()], num_threads=threads)
    warm_dir = os.path.join(scratch, "ours-warm")
    state = {"dir": warm_dir}

    def prepare() -> None:
        if cold:  # an empty cache for every sample; the previous one removed
            shutil.rmtree(state["dir"], ignore_errors=True)
            state["dir"] = tempfile.mkdtemp(prefix="cold-", dir=scratch)

    def call():
        with _cache_dir(state["dir"]):
            return session.load(bg.graph)

    if not cold:
        call()  # populate the cache
    return Run(call, lambda model: model.execute(*bg.inputs)[0].to_numpy(), prepare)


def _ort(bg: BenchGraph, threads: int, cold: bool, scratch: str) -> Run | None:
    if not peers.installed("onnxruntime"):
        return None
    import onnxruntime as ort

    model = peers.onnx_model(bg)
    assert model is not None
    feeds = {"x0": bg.inputs[0]}

    def fetch(session) -> np.ndarray:
        return session.run(None, feeds)[0]

    if cold:
        return Run(lambda: peers.ort_session(model, threads), fetch)
    saved = os.path.join(scratch, "encoder.opt.onnx")
    opts = peers.ort_options(threads)
    opts.optimized_model_filepath = saved
    opts.log_severity_level = 3  # not the warning that the saved model suits this machine only
    peers.ort_session(model, threads, opts)
    warm = peers.ort_options(threads)
    warm.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return Run(lambda: peers.ort_session(saved, threads, warm), fetch)


def _jax(bg: BenchGraph) -> Run | None:
    if not peers.installed("jax"):
        return None
    import jax

    state: dict = {}
    x = jax.device_put(bg.inputs[0])

    def prepare() -> None:  # a new function object: nothing cached in memory
        state["f"] = jax.jit(peers.jax_fn(bg))

    def call():
        return state["f"](x).block_until_ready()

    return Run(call, np.asarray, prepare)


@contextlib.contextmanager
def _jax_persistent_cache(path: str) -> Iterator[None]:
    """JAX's on-disk compilation cache, on for the warm-load row only."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache as cc

    saved = {k: getattr(jax.config, k) for k in (
        "jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
        "jax_persistent_cache_min_entry_size_bytes")}
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    cc.reset_cache()
    try:
        yield
    finally:
        for k, v in saved.items():
            jax.config.update(k, v)
        cc.reset_cache()


def overhead_rows(bg: BenchGraph, threads: int,
                  engines: frozenset[str] = frozenset({"ours", "ort", "jax"})) -> list[OverheadRow]:
    """The cold-compile and warm-load rows for the encoder block ``bg``; only ``engines`` are
    prepared."""
    scratch = tempfile.mkdtemp(prefix="max-bench-")
    jax_dir = os.path.join(scratch, "jax-cache")
    use_jax = "jax" in engines and peers.installed("jax")

    def warm_context():
        return _jax_persistent_cache(jax_dir) if use_jax else contextlib.nullcontext()

    rows = []
    for cold in (True, False):
        runs: dict[str, Run | None] = {
            "ours": _ours(bg, threads, cold, scratch), "numpy": None, "torch": None,
            "ort": _ort(bg, threads, cold, scratch) if "ort" in engines else None,
            "jax": _jax(bg) if use_jax else None}
        title = "cold compile: encoder block" if cold else "warm load: encoder block"
        rows.append(OverheadRow(title, runs, contextlib.nullcontext if cold else warm_context))
    rows[-1].cleanup.append(lambda: shutil.rmtree(scratch, ignore_errors=True))
    return rows
