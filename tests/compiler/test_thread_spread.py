"""OpenMP workers that wake on the caller's core move off it (thread_spread): the call in
every parallel region, and a worker placed on the caller's core found elsewhere after one
call."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mlir import ir
from mo_helpers import chain_text, make_context, needs_omp, two_threads  # noqa: F401

from max.compiler.lowering import lower_to_linalg
from max.compiler.pipelines import cpu_threads, thread_gate, thread_spread
from max.compiler.targets.cpu import CPU

pytestmark = [pytest.mark.usefixtures("two_threads"),
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")]


def _after_openmp(text: str) -> ir.Module:
    m = ir.Module.parse(text)
    lower_to_linalg(m)
    CPU.run(m, until="mo-forall-to-openmp", threads=2)
    return m


@needs_omp
def test_each_region_passes_the_callers_core_to_the_helper() -> None:
    """Two threaded ops (a matmul and a softmax): each omp.parallel starts with the helper's
    call, given the ``sched_getcpu`` made just before it; the helper and its declarations are
    defined once."""
    t = "!mo.tensor<f32, [512, 512], \"cpu:0\">"
    w = "!mo.tensor<f32, [512, 512], \"cpu:0\">"
    text = (f"func.func @g(%a: {t}, %b: {w}) -> {t} attributes {{mo.graph}} {{\n"
            f'  %0 = "mo.matmul"(%a, %b) : ({t}, {w}) -> {t}\n'
            f'  %1 = "mo.softmax"(%0) {{axis = 1 : i64}} : ({t}) -> {t}\n'
            f"  func.return %1 : {t}\n}}\n")
    with make_context():
        m = _after_openmp(text)
        regions = thread_gate.parallel_regions(m)
        assert len(regions) >= 2
        for par in regions:
            first = par.regions[0].blocks[0].operations[0]
            assert first.name == "llvm.call"
            assert ir.FlatSymbolRefAttr(first.attributes["callee"]).value == thread_spread.HELPER
            core = first.operands[0].owner
            assert core.name == "llvm.call"
            assert ir.FlatSymbolRefAttr(core.attributes["callee"]).value == "sched_getcpu"
        names = [ir.StringAttr(op.attributes["sym_name"]).value
                 for op in m.body.operations if "sym_name" in op.attributes]
        for name in (thread_spread.HELPER, "sched_getcpu", "omp_get_thread_num",
                     "sched_getaffinity", "sched_setaffinity"):
            assert names.count(name) == 1, name
        # Run again on the same module (max-opt replays a stage): nothing changes.
        before = str(m)
        assert thread_spread.spread_workers(m) == 0 and str(m) == before
        assert m.operation.verify()


def test_one_thread_has_no_region_and_no_helper() -> None:
    with make_context():
        m = ir.Module.parse(chain_text((512, 4096)))
        lower_to_linalg(m)
        CPU.run(m, until="mo-forall-to-openmp", threads=1)
        assert "omp.parallel" not in str(m) and thread_spread.HELPER not in str(m)


# The worker is put on the caller's core (its mask then widened again, so that only the helper
# moves it), the caller pinned there; after one call the worker must be on another core.
# Without the helper the worker stayed on the caller's core in 3 runs of 3 here.
_SCRIPT = """
import os, sys, threading
import numpy as np
sys.path.insert(0, {tests!r})
from mo_helpers import Compiled
c = Compiled({text!r})
a = np.full((1024, 1024), 0.5, np.float32)
def run():
    (out,), _ = c([a, a], [(a.shape, "float32")])
    assert np.allclose(out, np.exp(0.5), rtol=1e-6)
before = set(os.listdir("/proc/self/task"))
run()
workers = [int(t) for t in set(os.listdir("/proc/self/task")) - before]
assert workers, "no OpenMP worker"
first, second = sorted(os.sched_getaffinity(0))[:2]
def core(tid):
    return int(open(f"/proc/self/task/{{tid}}/stat").read().rsplit(")", 1)[1].split()[36])
os.sched_setaffinity(threading.get_native_id(), {{first}})
for attempt in range(5):
    for w in workers:
        os.sched_setaffinity(w, {{first}})
        os.sched_setaffinity(w, {{first, second}})
    placed = [core(w) for w in workers]
    run()
    after = [core(w) for w in workers]
    assert all(x != first for x in after), (placed, after)
print("ok")
"""


@needs_omp
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_a_worker_on_the_callers_core_leaves_it() -> None:
    script = _SCRIPT.format(tests=str(Path(__file__).parent), text=chain_text((1024, 1024)))
    env = {**os.environ, cpu_threads.THREADS_ENV: "2"}
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                       text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split()[0] == "ok", r.stdout
