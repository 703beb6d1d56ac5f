"""logsoftmax takes the scheduled (tiled, vectorized) path, and stays right on every axis.

Fusion folds logsoftmax's ``exp(x - max)`` into the sum, whose row max is then read by a
broadcast map ``(d0, d1) -> (d0, 0)`` that does not use the reduced loop; the schedule must
still recognize that op as a last-axis reduction (before, it became scalar loops, ~10x slower).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mlir import ir
from mo_helpers import Compiled, check, make_context, one_op_module

from max.compiler.passes.ir_util import walk_ops
from max.compiler.lowering import lower_to_linalg
from max.compiler.pipelines import cpu_schedule
from max.compiler.targets.cpu import CPU


# A schedule failure raises here instead of silently compiling plain loops.
pytestmark = pytest.mark.usefixtures("schedule_debug")


def _reference(x: np.ndarray, axis: int) -> np.ndarray:
    return torch.log_softmax(torch.from_numpy(x.astype(np.float64)), axis).numpy().astype(x.dtype)


def _module(dims: tuple, axis: int, elt: str = "f32") -> str:
    return one_op_module("logsoftmax", [(elt, dims)], (elt, dims), f"axis = {axis} : i64")


def _fused(dims: tuple, axis: int) -> ir.Module:
    """The module after fusion, before the schedule (the caller holds the context)."""
    m = ir.Module.parse(_module(dims, axis))
    lower_to_linalg(m)
    CPU.run(m, until="mo-dps-inits")
    return m


def _generics(m: ir.Module) -> list[ir.Operation]:
    return [op for op in walk_ops(m.operation) if op.name == "linalg.generic"]


@pytest.mark.parametrize("dims", [("n", 4096), (512, 4096), (2, "n", 100)])
def test_every_last_axis_generic_is_tagged(dims: tuple) -> None:
    with make_context():
        m = _fused(dims, len(dims) - 1)
        generics = _generics(m)
        # sum(exp(x - max)) reads the row max through a projection (d0, d1) -> (d0): its
        # exp is the lowering's polynomial (normalization._exp_nonpositive).
        assert any("reduction" in str(op.attributes["iterator_types"]) and
                   "math.fma" in str(op) and len(op.operands) == 3 for op in generics)
        assert all(cpu_schedule.classify(op) is not None for op in generics), \
            [str(op) for op in generics if cpu_schedule.classify(op) is None]


def test_last_axis_reductions_are_vectorized() -> None:
    with make_context():
        m = _fused(("n", 4096), 1)
        cpu_schedule.schedule_tensors(m, threads=1)
        text = str(m)
    assert "vector.multi_reduction <add>" in text
    assert "vector.multi_reduction <maxnumf>" in text  # a NaN still spreads: via the sum
    # The exp polynomial runs on vectors.
    assert "math.fma %" in text and ": vector<" in text.split("math.fma %", 1)[1].split("\n")[0]
    assert "linalg.generic" not in text  # every full tile vectorized; only remainders are left


@pytest.mark.parametrize("n,cols", [(1, 1), (3, 7), (5, 1000), (512, 4096), (7, 65), (2, 64)])
def test_last_axis_matches_torch(n: int, cols: int) -> None:
    rng = np.random.default_rng(n * 7919 + cols)
    x = (rng.standard_normal((n, cols)) * 4).astype(np.float32)
    for dims in [(n, cols), ("n", cols)]:
        (out,), _ = Compiled(_module(dims, 1))([x], [((n, cols), "float32")])
        check(out, _reference(x, 1), rtol=1e-5, atol=2e-6)


def test_dynamic_rows_one_binary() -> None:
    c = Compiled(_module(("n", 1000), 1))
    rng = np.random.default_rng(11)
    for n in (1, 2, 9, 64, 130):
        x = (rng.standard_normal((n, 1000)) * 4).astype(np.float32)
        (out,), _ = c([x], [((n, 1000), "float32")])
        check(out, _reference(x, 1), rtol=1e-5, atol=2e-6)


def test_dynamic_last_axis() -> None:
    c = Compiled(_module((3, "k"), 1))
    rng = np.random.default_rng(12)
    for k in (1, 63, 64, 200):
        x = (rng.standard_normal((3, k)) * 4).astype(np.float32)
        (out,), _ = c([x], [((3, k), "float32")])
        check(out, _reference(x, 1), rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("shape,axis", [((5, 1000), 0), ((4, 6, 70), 1), ((4, 6, 70), 0),
                                        ((4, 6, 70), 2), ((3, 1), 0), ((1, 3), 0)])
def test_other_axes_match_torch(shape: tuple, axis: int) -> None:
    rng = np.random.default_rng(len(shape) * 10 + axis)
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    (out,), _ = Compiled(_module(shape, axis))([x], [(shape, "float32")])
    check(out, _reference(x, axis), rtol=1e-5, atol=2e-6)


def test_f64_and_extremes() -> None:
    x = np.array([[0.0, 1e-30, -1e30, 80.0], [-50.0, -50.0, -50.0, -50.0],
                  [88.0, 88.0, -88.0, 0.0]], np.float64)
    (out,), _ = Compiled(_module(("n", 4), 1, "f64"))([x], [((3, 4), "float64")])
    check(out, _reference(x, 1), rtol=1e-12, atol=1e-12)
    x32 = x.astype(np.float32)
    (out,), _ = Compiled(_module(("n", 4), 1))([x32], [((3, 4), "float32")])
    check(out, _reference(x32, 1), rtol=1e-5, atol=1e-5)
