"""Run-time thread counts (thread_gate): a parallel region of an op with symbolic sizes forks
only when the actual work pays for it, and is correct on either path (numpy reference)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from mlir import ir
from mo_helpers import (  # noqa: F401  (two_threads: a fixture)
    Compiled, chain_text, check, make_context, mo_type, needs_omp, one_op_module, two_threads,
)

from max.compiler.lowering import lower_to_linalg
from max.compiler.pipelines import cpu_threads, thread_gate
from max.compiler.targets.cpu import CPU

pytestmark = pytest.mark.usefixtures("two_threads")


def _regions(text: str) -> list[tuple[str, bool]]:
    """Each ``omp.parallel`` after mo-forall-to-openmp: the op defining its num_threads, and
    whether its loop's bounds are all constants; then ``("marked", True)`` if a run-time
    thread count (``mo.nt``) was made."""
    found: list[tuple[str, bool]] = []
    with make_context():
        m = ir.Module.parse(text)
        lower_to_linalg(m)
        CPU.run(m, until="mo-forall-to-openmp", threads=2)
        nests: list[ir.Operation] = []

        def visit(op: ir.Operation) -> ir.WalkResult:
            if op.name == "omp.parallel":
                nt = thread_gate.num_threads_of(op)
                assert nt is not None
                found.append((nt.owner.name, True))
            elif op.name == "omp.loop_nest":
                nests.append(op)
            return ir.WalkResult.ADVANCE

        m.operation.walk(visit)
        assert len(nests) == len(found)
        for i, nest in enumerate(nests):
            const = all(not isinstance(v.owner, ir.Block) and v.owner.name in (
                "arith.constant", "llvm.mlir.constant") for v in nest.operands)
            found[i] = (found[i][0], const)
        marked = "mo.nt" in str(m)
    return found + ([("marked", True)] if marked else [])


_SYMBOLIC = {
    "elementwise": chain_text(("b", "t", 64)),
    "softmax": one_op_module("softmax", [("f32", ("n", 4097))], ("f32", ("n", 4097)),
                             "axis = 1 : i64"),
    "reduce_sum": one_op_module("reduce_sum", [("f32", ("b", "t", 576))],
                                ("f32", ("b", "t", 1)), "axis = 2 : i64"),
    "matmul": one_op_module("matmul", [("f32", ("m", 256)), ("f32", (256, 256))],
                            ("f32", ("m", 256))),
}


@needs_omp
@pytest.mark.parametrize("name", sorted(_SYMBOLIC))
def test_symbolic_sizes_get_a_run_time_thread_count(name: str) -> None:
    found = _regions(_SYMBOLIC[name])
    assert ("marked", True) in found  # the run-time count, before the split
    regions = [r for r in found if r[0] != "marked"]
    assert regions and all(owner == "arith.index_cast" and not const
                           for owner, const in regions), regions


@needs_omp
@pytest.mark.parametrize("text", [chain_text((301, 257)),
                                  one_op_module("matmul", [("f32", (256, 256))] * 2,
                                                ("f32", (256, 256)))])
def test_static_sizes_keep_a_constant_thread_count(text: str) -> None:
    found = _regions(text)
    assert found and ("marked", True) not in found
    assert all(owner in ("llvm.mlir.constant", "arith.constant") and const
               for owner, const in found), found


@needs_omp
@pytest.mark.parametrize("shape", [(1, 1, 64), (2, 50000, 64)])
def test_symbolic_elementwise_matches_numpy_small_and_large(shape: tuple) -> None:
    c = Compiled(chain_text(("b", "t", 64)))
    rng = np.random.default_rng(3)
    a, b = (rng.standard_normal(shape, dtype=np.float32) for _ in range(2))
    (out,), _ = c([a, b], [(shape, "float32")])
    check(out, np.exp((a + b) * a), rtol=2e-6)


@needs_omp
@pytest.mark.parametrize("m", [1, 3, 100000])
def test_symbolic_matmul_matches_numpy_small_and_large(m: int) -> None:
    c = Compiled(one_op_module("matmul", [("f32", ("m", 24)), ("f32", (24, 40))],
                               ("f32", ("m", 40))))
    rng = np.random.default_rng(m)
    a = rng.standard_normal((m, 24), dtype=np.float32)
    b = rng.standard_normal((24, 40), dtype=np.float32)
    (out,), _ = c([a, b], [((m, 40), "float32")])
    check(out, (a.astype(np.float64) @ b).astype(np.float32), rtol=1e-4, atol=1e-4)


@needs_omp
@pytest.mark.parametrize("m", [1, 300])
def test_symbolic_matmul_epilogue_matches_numpy_small_and_large(m: int) -> None:
    """The run-time count of an epilogue group reads the matmul's sizes, not its result."""
    ta, tb, tc, tbias = (mo_type("f32", d) for d in (("m", 256), (256, 128), ("m", 128), (128,)))
    text = (f"func.func @g(%a: {ta}, %b: {tb}, %bias: {tbias}) -> {tc} attributes {{mo.graph}} {{\n"
            f'  %0 = "mo.matmul"(%a, %b) : ({ta}, {tb}) -> {tc}\n'
            f'  %1 = "mo.add"(%0, %bias) : ({tc}, {tbias}) -> {tc}\n'
            f'  %2 = "mo.relu"(%1) : ({tc}) -> {tc}\n'
            f"  func.return %2 : {tc}\n}}\n")
    assert ("marked", True) in _regions(text)
    rng = np.random.default_rng(m)
    a = rng.standard_normal((m, 256), dtype=np.float32)
    b = rng.standard_normal((256, 128), dtype=np.float32)
    bias = rng.standard_normal(128, dtype=np.float32)
    (out,), _ = Compiled(text)([a, b, bias], [((m, 128), "float32")])
    check(out, np.maximum(a.astype(np.float64) @ b + bias, 0).astype(np.float32), rtol=1e-4,
          atol=1e-4)


# The worker threads of libiomp5 exist only once a region really forks: a small run leaves the
# process with its threads, a large one adds the worker.
_FORK_SCRIPT = """
import os, sys
import numpy as np
sys.path.insert(0, {tests!r})
from mo_helpers import Compiled
c = Compiled({text!r})
def threads():
    return len(os.listdir("/proc/self/task"))
def run(rows):
    a = np.full((2, rows, 64), 0.5, np.float32)
    (out,), _ = c([a, a], [(a.shape, "float32")])
    assert np.allclose(out, np.exp(0.5), rtol=1e-6), rows
before = threads()
for _ in range(3):
    run(1)
small = threads()
run(50000)
print(before, small, threads())
"""


@needs_omp
def test_small_run_time_work_wakes_no_worker() -> None:
    script = _FORK_SCRIPT.format(tests=str(Path(__file__).parent),
                                 text=chain_text(("b", "t", 64)))
    env = {**os.environ, cpu_threads.THREADS_ENV: "2"}
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                       text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    before, small, large = (int(x) for x in r.stdout.split()[-3:])
    assert small == before and large > small, (before, small, large)
