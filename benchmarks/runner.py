"""Runs the benchmark table (``python -m benchmarks``): checks every engine, then times them
in alternating blocks and prints medians and ratios."""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
import platform
import statistics
import time
import traceback
from collections.abc import Callable
from importlib import metadata

import numpy as np

from benchmarks import machine, overhead, peers
from benchmarks.graphs import GRAPHS, BenchGraph
from benchmarks.peers import Run

ENGINES = ("ours", "numpy", "torch", "ort", "jax")
PEERS = ENGINES[1:]
HEADERS = {"ours": "ours", "numpy": "numpy", "torch": "torch", "ort": "ORT", "jax": "jax.jit"}
# A sample should last at least this long: tiny calls are timed as a loop of several.
MIN_SAMPLE_S = 2e-3


def _cpu_model() -> str:
    """``lscpu``'s model name, family/model numbers and the vector extensions that matter."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or "unknown"
    flags = set(fields.get("flags", "").split())
    wanted = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    return (f"{fields.get('model name', 'unknown')} (family {fields.get('cpu family', '?')} "
            f"model {fields.get('model', '?')}; {' '.join(wanted)})")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe(threads: int) -> list[str]:
    """The header lines: date, machine, versions, threads."""
    dists = ("numpy", "torch", "onnxruntime", "onnx", "jax", "jaxlib",
             "xtc-mlir-python-bindings")
    return [
        f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"machine: {_cpu_model()}, {len(os.sched_getaffinity(0))} CPUs usable, "
        f"python {platform.python_version()}",
        "versions: " + ", ".join(f"{d} {_version(d)}" for d in dists),
        f"threads: {threads} per engine",
    ]


def _ours(bg: BenchGraph, threads: int) -> Run:
    from max.driver import CPU
    from max.engine import InferenceSession

    model = InferenceSession(devices=[CPU()], num_threads=threads).load(
        bg.graph, weights_registry=bg.weights_registry)
    return Run(lambda: model.execute(*bg.inputs)[0].to_numpy())


def _numpy(bg: BenchGraph) -> Run:
    assert bg.numpy is not None
    return Run(lambda: bg.numpy(bg.inputs, bg.params))


def _runs(bg: BenchGraph, threads: int, engines: frozenset[str]) -> dict[str, Run | None | str]:
    """Each engine's prepared call (None for one not in ``engines``); a string where preparing
    failed (it is printed)."""
    makers: dict[str, Callable[[], Run | None]] = {
        "ours": lambda: _ours(bg, threads),
        "numpy": lambda: _numpy(bg),
        "torch": lambda: peers.torch_run(bg) if peers.installed("torch") else None,
        "ort": lambda: peers.ort_run(bg, threads) if peers.installed("onnxruntime") else None,
        "jax": lambda: peers.jax_run(bg) if peers.installed("jax") else None,
    }
    runs: dict[str, Run | None | str] = {}
    for engine, make in makers.items():
        if engine not in engines:
            runs[engine] = None
            continue
        try:
            runs[engine] = make()
        except Exception as e:  # noqa: BLE001 - reported in the table, the others still run
            runs[engine] = "FAIL"
            print(f"  {engine} could not be prepared for {bg.title!r}: "
                  f"{type(e).__name__}: {str(e)[:400]}")
    return runs


def _check(engine: str, run: Run, want: np.ndarray, bg: BenchGraph) -> int | str:
    """Runs once and compares with the reference: the inner loop count for timing, or
    ``"wrong"``/``"FAIL"``."""
    try:
        if run.prepare:
            run.prepare()
        t0 = time.perf_counter()
        got = run.fetch(run.call())
        once = time.perf_counter() - t0
        np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, rtol=bg.rtol,
                                   atol=bg.atol, err_msg=f"{engine} on {bg.title}")
    except AssertionError as e:
        print(f"  {engine} is wrong on {bg.title!r}: {str(e).strip()[:600]}")
        return "wrong"
    except Exception:  # noqa: BLE001
        print(f"  {engine} failed on {bg.title!r}:\n{traceback.format_exc(limit=3)}")
        return "FAIL"
    if run.prepare:
        return 1  # each sample is one cold/warm load: never looped
    t0 = time.perf_counter()
    run.call()  # a second warm-up: caches, allocators, JIT
    once = min(once, time.perf_counter() - t0)
    return max(1, min(1000, int(MIN_SAMPLE_S / max(once, 1e-9))))


SETTLE_S = 0.3  # longer than any peer's thread-pool spin (libiomp5: 200 ms)
# Untimed calls before each block: after the pause, every engine's first calls of a block ran
# slower and slower less (the caches refilled, the core woken: a concat's samples 0.62, 0.48,
# 0.36, 0.23 ms in one block, every engine alike), and a median over three blocks then
# depended on which engine's blocks began colder.
WARMUP_S = 0.02


def _time(runs: dict[str, Run], inner: dict[str, int], repeat: int) -> dict[str, list[float]]:
    """The samples of each engine, ms. They come in rounds: in each, every engine (the order
    rotated) makes untimed calls for :data:`WARMUP_S` (one at least), then a block of
    consecutive samples. Blocks, not one sample each in turn: the engines' thread pools spin
    for a while after a call (libiomp5 200 ms), which would slow whichever engine runs next
    on 2 cores; rounds, so that a drift of the machine's load spreads over all engines."""
    samples: dict[str, list[float]] = {e: [] for e in runs}
    order = list(runs)
    # Before each block, the previous engine's spinning threads are left to go idle (libiomp5
    # spins 200 ms, libgomp and ONNX Runtime's pool a while too): measured without it, a
    # short multi-threaded op of whichever engine came next waited for a core a whole time
    # slice (p@v: median 3.95 ms, fastest sample 0.097 ms, in one run).
    rounds = min(repeat, 3)
    for r in range(rounds):
        block = repeat // rounds + (r < repeat % rounds)
        for engine in order[r % len(order):] + order[:r % len(order)]:
            run, n = runs[engine], inner[engine]
            time.sleep(SETTLE_S)
            if not run.prepare:
                start = time.perf_counter()
                run.call()
                while time.perf_counter() - start < WARMUP_S:
                    run.call()
            for _ in range(block):
                if run.prepare:
                    run.prepare()
                gc.disable()
                t0 = time.perf_counter()
                for _ in range(n):
                    run.call()
                t1 = time.perf_counter()
                gc.enable()
                samples[engine].append((t1 - t0) / n * 1e3)
    return samples


def _fmt(ms: float) -> str:
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 1:
        return f"{ms:.2f}"
    if ms >= 0.1:
        return f"{ms:.3f}"
    return f"{ms:.4f}"


class Table:
    """Prints the rows of medians as they come; keeps each engine's fastest sample for a
    second table at the end (on a shared machine, the least disturbed one)."""

    def __init__(self, markdown: bool, flops_peak: float | None = None,
                 read_rate: float | None = None) -> None:
        self.markdown = markdown
        self.notes: list[str] = []  # printed after the table (rates)
        self.flops_peak, self.read_rate = flops_peak, read_rate  # the machine's, this run
        self.fastest: list[tuple[str, dict[str, float | str | None]]] = []
        self.header()

    def header(self) -> None:
        cols = ["workload", *(HEADERS[e] + " ms" for e in ENGINES), "best peer", "ours/best"]
        if self.markdown:
            print("| " + " | ".join(cols) + " |")
            print("|" + " --- |" * len(cols))
        else:
            print(f"{cols[0]:56}" + "".join(f"{c:>11}" for c in cols[1:6])
                  + f"{cols[6]:>11}{cols[7]:>10}")

    def row(self, title: str, cells: dict[str, float | str | None]) -> None:
        def text(v: float | str | None) -> str:
            return "-" if v is None else v if isinstance(v, str) else _fmt(v)

        timed = {e: v for e, v in cells.items() if e in PEERS and isinstance(v, float)}
        best = min(timed, key=timed.__getitem__) if timed else None
        ours = cells.get("ours")
        ratio = (f"{ours / timed[best]:.2f}" if best and isinstance(ours, float) else "-")
        best_text = HEADERS[best] if best else "-"
        values = [text(cells.get(e)) for e in ENGINES]
        if self.markdown:
            print("| " + " | ".join([title, *values, best_text, ratio]) + " |", flush=True)
        else:
            print(f"{title[:56]:56}" + "".join(f"{v:>11}" for v in values)
                  + f"{best_text:>11}{ratio:>10}", flush=True)

    def finish(self) -> None:
        if self.notes:
            print()
            for note in self.notes:
                print(note)
        if self.fastest:
            print("\nThe fastest sample of each engine, ms (the same run):")
            self.header()
            for title, cells in self.fastest:
                self.row(title, cells)


def _measure(title: str, bg: BenchGraph, runs: dict[str, Run | None | str], repeat: int,
             table: Table, context=contextlib.nullcontext) -> None:
    want = bg.reference()
    cells: dict[str, float | str | None] = {}
    ready: dict[str, Run] = {}
    inner: dict[str, int] = {}
    with context():
        for engine in ENGINES:
            run = runs.get(engine)
            if run is None or isinstance(run, str):
                cells[engine] = run
                continue
            checked = _check(engine, run, want, bg)
            if isinstance(checked, str):
                cells[engine] = checked
            else:
                ready[engine], inner[engine] = run, checked
        samples = _time(ready, inner, repeat)
    fastest = dict(cells)
    cells.update({e: statistics.median(s) for e, s in samples.items()})
    fastest.update({e: min(s) for e, s in samples.items()})
    table.row(title, cells)
    table.fastest.append((title, fastest))
    if bg.flops or bg.traffic:
        table.notes.append(_rates(title, bg, cells, fastest.get("ours"), table.flops_peak,
                                  table.read_rate))


def _rates(title: str, bg: BenchGraph, cells: dict[str, float | str | None],
           ours_fastest: float | str | None, flops_peak: float | None,
           read_rate: float | None) -> str:
    """The note of a row's rates (medians, and our fastest sample), against the machine's
    limits where measured: a flop rate as a share of the FMA peak; a traffic rate as the time
    over the memory floor (the least traffic read at the machine's read rate; issue 7's chain
    target is <= 1.3). The limits are fastest samples: a median taken while the host's memory
    is in a slow phase compares with the fastest of ours."""
    amount = bg.flops or bg.traffic

    def rate_text(name: str, ms: float) -> str:
        rate = amount / ms / 1e6  # GFLOP/s or GB/s
        if bg.flops and flops_peak:
            return f"{name} {rate:.1f} ({rate * 1e9 / flops_peak:.0%})"
        if bg.traffic and read_rate:
            return f"{name} {rate:.1f} ({read_rate / (rate * 1e9):.2f}x)"
        return f"{name} {rate:.1f}"

    rates = [rate_text(HEADERS[e], ms) for e, ms in cells.items() if isinstance(ms, float)]
    if isinstance(ours_fastest, float):
        rates.append(rate_text("ours fastest", ours_fastest))
    if bg.flops:
        limit = f" (share of the FMA peak, {flops_peak / 1e9:.1f})" if flops_peak else ""
        return f"{title}, median GFLOP/s{limit}: {', '.join(rates)}"
    limit = (f"; time over the floor at the read rate, {read_rate / 1e9:.1f} GB/s"
             if read_rate else "")
    return f"{title}, median GB/s (least traffic{limit}): {', '.join(rates)}"


def _wanted(only: str | None, *names: str) -> bool:
    return only is None or any(only.lower() in n.lower() for n in names)


def _selected(only: str | None) -> list[str]:
    """The workload keys to run: by key, else (nothing matched) by title."""
    keys = [k for k in GRAPHS if k != "tiny"]
    if only is None:
        return keys
    by_key = [k for k in keys if only.lower() in k.lower()]
    return by_key or [k for k in keys if only.lower() in _title(k).lower()]


def _title(key: str) -> str:
    try:
        return GRAPHS[key]().title
    except ModuleNotFoundError:  # a workload whose model package is absent
        return ""


def run_all(only: str | None, repeat: int, threads: int, markdown: bool,
            engines: frozenset[str] = frozenset(ENGINES)) -> None:
    """Prints the header and the table: ``only`` filters the rows, ``engines`` the columns
    (the others print ``-``)."""
    if peers.installed("torch") and "torch" in engines:
        import torch

        torch.set_num_threads(threads)
        torch.set_grad_enabled(False)
    for line in describe(threads):
        print(line)
    missing = [m for m in ("torch", "onnxruntime", "jax") if not peers.installed(m)]
    if missing:
        print(f"not installed (their columns print '-'): {', '.join(missing)}; "
              f"pip install -e '.[test,bench]' (or ./dev bench)")
    flops_peak, read_rate = machine.fma_peak(threads), machine.read_bandwidth(threads)
    print("machine limits, this run: "
          + (f"FMA peak {flops_peak / 1e9:.1f} GFLOP/s" if flops_peak else "FMA peak -")
          + (f", memory read {read_rate / 1e9:.1f} GB/s" if read_rate else ", memory read -")
          + f" ({threads} threads; benchmarks/machine.py)")
    table = Table(markdown, flops_peak, read_rate)

    def measure(title: str, bg: BenchGraph, runs: dict, samples: int, context=None) -> None:
        runs = {e: (r if e in engines else None) for e, r in runs.items()}
        _measure(title, bg, runs, samples, table, context or contextlib.nullcontext)

    for key in _selected(only):
        try:
            bg = GRAPHS[key]()
        except ModuleNotFoundError as e:  # a workload's model package (minilm): row skipped
            print(f"  skipped {key}: {e}")
            continue
        measure(bg.title, bg, _runs(bg, threads, engines), repeat)
    if _wanted(only, "cold compile encoder", "warm load encoder", "overhead"):
        encoder = GRAPHS["encoder"]()
        for row in overhead.overhead_rows(encoder, threads, engines):
            # Each sample compiles: a few suffice.
            measure(row.title, encoder, dict(row.runs), min(repeat, 5), row.context)
            for clean in row.cleanup:
                clean()
    tiny = GRAPHS["tiny"]()
    if _wanted(only, "tiny", tiny.title, "overhead"):
        measure(tiny.title, tiny, _runs(tiny, threads, engines), repeat)
    table.finish()
