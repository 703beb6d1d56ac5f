"""Activations after a matmul against a weight in panels run on each C block (panel_epilogue):
one kernel, numpy's numbers, every shape of rows (static, few, symbolic, odd); what does not
qualify stays an op of its own, still right."""

from __future__ import annotations

import re
from math import erf

import numpy as np
import pytest
from mlir import ir
from mo_helpers import check, make_context

from max.compiler.lowering import lower_to_linalg
from max.compiler.passes.externalize import externalize_constants
from max.compiler.pipelines import arg_layouts, cpu_schedule, matmul_init, matmul_pack
from max.compiler.pipelines.matmul_schedule import FUSED
from max.compiler.pipelines.panel_epilogue import PANEL_EPILOGUE, SCRATCH, fuse
from max.compiler.targets.cpu import CPU as TARGET
from max.driver import CPU as CPUDevice
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType, ops

CPU = DeviceRef.CPU()

# A schedule failure raises here instead of silently compiling plain loops.
pytestmark = pytest.mark.usefixtures("schedule_debug")

K, N = 96, 160  # N: 5 panels of 32 (an odd count: a thread split over panels is uneven)
_rng = np.random.default_rng(0)
W = (_rng.standard_normal((K, N)) / np.sqrt(K)).astype(np.float32)
W2 = (_rng.standard_normal((K, N)) / np.sqrt(K)).astype(np.float32)
B = _rng.standard_normal(N).astype(np.float32)
B3 = _rng.standard_normal((1, 1, N)).astype(np.float32)


def _c(v: np.ndarray):
    return ops.constant(v, DType.float32, CPU)


def _gelu(v: np.ndarray) -> np.ndarray:
    return 0.5 * v * (1 + np.vectorize(erf)(v / np.sqrt(2)))


FORWARDS = {
    "gelu_bias": (lambda x, r: ops.gelu(x @ _c(W) + _c(B)), lambda x, r: _gelu(x @ W + B)),
    "relu_scaled": (lambda x, r: ops.relu(x @ _c(W)) * 0.5,
                    lambda x, r: np.maximum(x @ W, 0) * 0.5),
    "tanh_residual": (lambda x, r: ops.tanh(x @ _c(W) + _c(B)) + r,
                      lambda x, r: np.tanh(x @ W + B) + r),
    "sigmoid_bias3": (lambda x, r: ops.sigmoid(x @ _c(W) + _c(B3[0, 0])) * r,
                      lambda x, r: r / (1 + np.exp(-(x @ W + B3[0, 0])))),
}


def _graph(fwd, rows, n_out: int = N) -> Graph:
    return Graph("g", fwd, input_types=[TensorType(DType.float32, (*rows, K), CPU),
                                        TensorType(DType.float32, (*rows, n_out), CPU)])


def _lowered(g: Graph) -> ir.Module:
    """``g`` lowered to linalg, its constants load-time arguments as the compile worker makes
    them (inside a context)."""
    m = ir.Module.parse(g._text())
    values = externalize_constants(m)
    fn = next(o.operation for o in m.body.operations if "mo.graph" in o.operation.attributes)
    arg_layouts.mark_load_time_args(fn, 0, len(values))
    lower_to_linalg(m)
    return m


def _fused(g: Graph) -> int:
    """How many epilogues :func:`fuse` forms in the module as the schedule gets it (constants
    as load-time arguments, as the compile worker makes them); checks what it marks."""
    with make_context(), ir.Location.unknown():
        m = _lowered(g)
        TARGET.run(m, until="mo-output-views")
        matmul_init.sum_into_inits(m, cpu_schedule.classify)
        matmul_pack.rewrite(m, cpu_schedule.classify)
        count = fuse(m, cpu_schedule.classify)
        m.operation.verify()
        text = str(m)
        assert text.count(f"{PANEL_EPILOGUE} =") == count
        if count:
            # The panel matmul and its fill belong to the epilogue's schedule, and C starts
            # from a scratch tensor of its own.
            assert text.count(FUSED) == 2 * count and text.count(f"{SCRATCH} =") == count, text
        return count


def _run(g: Graph, ref, rows: tuple[int, ...], n_out: int = N) -> None:
    model = InferenceSession(devices=[CPUDevice()], num_threads=2).load(g)
    assert model._record.fallbacks == ()
    rng = np.random.default_rng(len(rows) + rows[-1])
    x = rng.standard_normal((*rows, K)).astype(np.float32)
    r = rng.standard_normal((*rows, n_out)).astype(np.float32)
    out = model.execute(x, r)[0].to_numpy()
    want = ref(x.astype(np.float64), r.astype(np.float64)).astype(np.float32)
    check(out, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(FORWARDS))
# 64 rows: one block; 300: blocks of 100 rows (8-row tiles and a 4-row remainder); 24 and
# (1, 24): few rows, threads split the panels.
@pytest.mark.parametrize("rows", [(64,), (300,), (2, 40), (1, 24)])
def test_epilogue_runs_on_the_matmul_tiles(name: str, rows: tuple[int, ...]) -> None:
    fwd, ref = FORWARDS[name]
    g = _graph(fwd, rows)
    assert _fused(g) == 1
    _run(g, ref, rows)


@pytest.mark.parametrize("name", ["gelu_bias", "tanh_residual"])
def test_symbolic_rows(name: str) -> None:
    """Rows known at run time: blocks of static rows, the last one's register tiles padded."""
    fwd, ref = FORWARDS[name]
    g = _graph(fwd, ("batch", "seq"))
    assert _fused(g) == 1
    model = InferenceSession(devices=[CPUDevice()], num_threads=2).load(g)
    rng = np.random.default_rng(9)
    for rows in ((1, 1), (1, 8), (2, 7), (3, 41), (8, 128)):
        x = rng.standard_normal((*rows, K)).astype(np.float32)
        r = rng.standard_normal((*rows, N)).astype(np.float32)
        out = model.execute(x, r)[0].to_numpy()
        check(out, ref(x.astype(np.float64), r).astype(np.float32), rtol=1e-4, atol=1e-4)


def test_two_outputs_of_one_shape() -> None:
    """Two epilogues, two outputs of the same shape: their scratch C and their results stay
    apart (CSE would merge equal empty tensors)."""
    def fwd(x, r):
        return ops.gelu(x @ _c(W) + _c(B)), ops.relu(x @ _c(W2)) + r

    g = _graph(fwd, (64,))
    assert _fused(g) == 2
    model = InferenceSession(devices=[CPUDevice()], num_threads=2).load(g)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, K)).astype(np.float32)
    r = rng.standard_normal((64, N)).astype(np.float32)
    a, b = (t.to_numpy() for t in model.execute(x, r))
    xd = x.astype(np.float64)
    check(a, _gelu(xd @ W + B).astype(np.float32), rtol=1e-4, atol=1e-4)
    check(b, (np.maximum(xd @ W2, 0) + r).astype(np.float32), rtol=1e-4, atol=1e-4)


def test_epilogue_feeding_another_matmul() -> None:
    """An MLP: the epilogue's result is no output but the next matmul's A."""
    w_out = (_rng.standard_normal((N, K)) / np.sqrt(N)).astype(np.float32)

    def fwd(x, r):
        return ops.gelu(x @ _c(W) + _c(B)) @ _c(w_out) + r

    g = _graph(fwd, ("rows",), n_out=K)
    assert _fused(g) == 1
    model = InferenceSession(devices=[CPUDevice()], num_threads=2).load(g)
    rng = np.random.default_rng(4)
    for rows in (5, 64, 129):
        x = rng.standard_normal((rows, K)).astype(np.float32)
        r = rng.standard_normal((rows, K)).astype(np.float32)
        out = model.execute(x, r)[0].to_numpy()
        want = _gelu(x.astype(np.float64) @ W + B) @ w_out + r
        check(out, want.astype(np.float32), rtol=1e-4, atol=1e-4)


def test_row_broadcast_is_left_alone() -> None:
    """A per-row scale (read along the rows, not the panels): no view over [rows, J, P]."""
    def fwd(x, r):
        return ops.relu(x @ _c(W)) * ops.slice_tensor(r, [slice(None), slice(0, 1)])

    g = _graph(fwd, (64,))
    assert _fused(g) == 0
    _run(g, lambda x, r: np.maximum(x @ W, 0) * r[:, :1], (64,))


def test_run_time_weights_are_left_alone() -> None:
    """B a graph input (packed per call, block by block): the activation stays its own op."""
    g = Graph("g", lambda x, w: ops.gelu(x @ w),
              input_types=[TensorType(DType.float32, (300, K), CPU),
                           TensorType(DType.float32, (K, N), CPU)])
    assert _fused(g) == 0
    model = InferenceSession(devices=[CPUDevice()], num_threads=2).load(g)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((300, K)).astype(np.float32)
    w = rng.standard_normal((K, N)).astype(np.float32)
    check(model.execute(x, w)[0].to_numpy(),
          _gelu(x.astype(np.float64) @ w).astype(np.float32), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(FORWARDS))
def test_one_thread_keeps_one_block_of_scratch(name: str) -> None:
    # One thread, no split around the epilogue: C's scratch is one cache block (100 rows of
    # 300), not all of C (each block then went back to memory).
    fwd, ref = FORWARDS[name]
    g = _graph(fwd, (300,))
    with make_context(), ir.Location.unknown():
        m = _lowered(g)
        TARGET.run(m, until="mo-vectorize-memrefs", threads=1)
        allocs = re.findall(r"memref\.alloc\(\)(?: \{[^}]*\})? : (memref<[^>]*>)", str(m))
    assert allocs == [f"memref<100x{N // 32}x32xf32>"], allocs
    model = InferenceSession(devices=[CPUDevice()], num_threads=1).load(g)
    assert model._record.fallbacks == ()
    rng = np.random.default_rng(7)
    x = rng.standard_normal((300, K)).astype(np.float32)
    r = rng.standard_normal((300, N)).astype(np.float32)
    want = ref(x.astype(np.float64), r.astype(np.float64)).astype(np.float32)
    check(model.execute(x, r)[0].to_numpy(), want, rtol=1e-4, atol=1e-4)
