"""Sums after a matmul against a weight start its accumulator (matmul_init): the add is no
kernel of its own, and the numbers are numpy's; what does not qualify is left as it was."""

from __future__ import annotations

import numpy as np
import pytest
from mlir import ir
from mo_helpers import check, make_context

from max.compiler.lowering import lower_to_linalg
from max.compiler.passes.externalize import externalize_constants
from max.compiler.pipelines import arg_layouts, cpu_schedule
from max.compiler.pipelines.matmul_init import INIT, sum_into_inits
from max.compiler.targets.cpu import CPU as TARGET
from max.driver import CPU as CPUDevice
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType, ops

CPU = DeviceRef.CPU()

# A schedule failure raises here instead of silently compiling plain loops.
pytestmark = pytest.mark.usefixtures("schedule_debug")

K, N = 96, 160
_rng = np.random.default_rng(0)
W = (_rng.standard_normal((K, N)) / np.sqrt(K)).astype(np.float32)
B = _rng.standard_normal(N).astype(np.float32)


def _c(v: np.ndarray):
    return ops.constant(v, DType.float32, CPU)


FORWARDS = {
    "bias": (lambda x, r: x @ _c(W) + _c(B), lambda x, r: x @ W + B),
    "bias_first": (lambda x, r: _c(B) + x @ _c(W), lambda x, r: B + x @ W),
    "bias_residual": (lambda x, r: x @ _c(W) + _c(B) + r, lambda x, r: x @ W + B + r),
    "residual_scaled": (lambda x, r: (x @ _c(W)) + r * 0.5, lambda x, r: x @ W + r * 0.5),
}
# Not a sum onto the product: left as an elementwise op after the matmul.
KEPT = {
    "gelu": (lambda x, r: ops.gelu(x @ _c(W) + _c(B)),
             lambda x, r: _gelu(x @ W + B)),
    "twice": (lambda x, r: (lambda p: p + p + _c(B))(x @ _c(W)),
              lambda x, r: 2 * (x @ W) + B),
    "difference": (lambda x, r: x @ _c(W) - _c(B), lambda x, r: x @ W - B),
}


def _gelu(v: np.ndarray) -> np.ndarray:
    from math import erf

    return 0.5 * v * (1 + np.vectorize(erf)(v / np.sqrt(2)))


def _graph(fwd, rows) -> Graph:
    return Graph("g", fwd, input_types=[TensorType(DType.float32, (*rows, K), CPU),
                                        TensorType(DType.float32, (*rows, N), CPU)])


def _rewritten(g: Graph) -> int:
    """How many sums :func:`sum_into_inits` starts matmuls with, in the module as the
    schedule gets it (its constants load-time arguments, as the compile worker makes them)."""
    with make_context():
        m = ir.Module.parse(g._text())
        values = externalize_constants(m)
        fn = next(o.operation for o in m.body.operations if "mo.graph" in o.operation.attributes)
        arg_layouts.mark_load_time_args(fn, 0, len(values))
        lower_to_linalg(m)
        TARGET.run(m, until="mo-output-views")
        count = sum_into_inits(m, cpu_schedule.classify)
        m.operation.verify()
        if count:
            # No elementwise op but the new init reads anything: the sum is the matmul's start.
            text = str(m)
            assert text.count("linalg.generic") == 1 and INIT in text, text
        return count


def _run(g: Graph, ref, rows: tuple[int, ...]) -> InferenceSession:
    model = InferenceSession(devices=[CPUDevice()], num_threads=2).load(g)
    assert model._record.fallbacks == ()
    rng = np.random.default_rng(len(rows) + rows[-1])
    x = rng.standard_normal((*rows, K)).astype(np.float32)
    r = rng.standard_normal((*rows, N)).astype(np.float32)
    out = model.execute(x, r)[0].to_numpy()
    want = ref(x.astype(np.float64), r.astype(np.float64)).astype(np.float32)
    check(out, want, rtol=1e-4, atol=1e-4)
    return model


@pytest.mark.parametrize("name", sorted(FORWARDS))
@pytest.mark.parametrize("rows", [(64,), (2, 40), (1, 24)])  # panels: >= MIN_MACS
def test_sum_starts_the_accumulator(name: str, rows: tuple[int, ...]) -> None:
    fwd, ref = FORWARDS[name]
    g = _graph(fwd, rows)
    assert _rewritten(g) == 1
    _run(g, ref, rows)


def test_symbolic_rows() -> None:
    fwd, ref = FORWARDS["bias_residual"]
    g = _graph(fwd, ("batch", "seq"))
    assert _rewritten(g) == 1
    model = InferenceSession(devices=[CPUDevice()], num_threads=2).load(g)
    rng = np.random.default_rng(9)
    for rows in ((1, 1), (2, 7), (3, 41), (8, 128)):
        x = rng.standard_normal((*rows, K)).astype(np.float32)
        r = rng.standard_normal((*rows, N)).astype(np.float32)
        out = model.execute(x, r)[0].to_numpy()
        check(out, ref(x.astype(np.float64), r).astype(np.float32), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(KEPT))
def test_other_epilogues_are_left_alone(name: str) -> None:
    fwd, ref = KEPT[name]
    g = _graph(fwd, (64,))
    assert _rewritten(g) == 0
    _run(g, ref, (64,))


def test_run_time_weights_are_left_alone() -> None:
    """B a graph input (packed per call, its zero fill fused into the register tiles): the
    add stays an op of its own."""
    g = Graph("g", lambda x, w: x @ w + _c(B),
              input_types=[TensorType(DType.float32, (300, K), CPU),
                           TensorType(DType.float32, (K, N), CPU)])
    assert _rewritten(g) == 0
