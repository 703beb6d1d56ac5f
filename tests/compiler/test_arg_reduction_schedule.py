"""argmax/argmin as two scheduled reductions (the extreme value, then its first position).

Positions must survive the schedule's vector-wide partial reductions: ties, NaNs and the answer
in every tile, sizes around the vector width, symbolic axes, integer and 16-bit inputs.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from mlir import ir
from mo_helpers import Compiled, check, make_context, one_op_module

from max.compiler.pipelines import cpu_schedule

REF = {"argmax": np.argmax, "argmin": np.argmin}


@pytest.mark.parametrize("op", ["argmax", "argmin"])
@pytest.mark.parametrize("n", [1, 7, 63, 64, 65, 130, 4096, 4099])
def test_last_axis_positions(op: str, n: int) -> None:
    rng = np.random.default_rng(n)
    rows = 9
    x = rng.standard_normal((rows, n)).astype(np.float32)
    if n > 2:
        x[1, :] = 0.5  # all tied: the first
        x[2, n // 2] = x[2, n - 1] = 40.0 if op == "argmax" else -40.0  # tie in two tiles
        x[3, n - 1] = np.nan  # a NaN in the last tile wins
        x[4, [n // 3, n - 2]] = np.nan  # the first NaN
        x[5, n - 1] = np.inf if op == "argmax" else -np.inf
    c = Compiled(one_op_module(op, [("f32", (rows, n))], ("si64", (rows, 1)), "axis = 1 : i64"))
    assert not c.fallbacks or n == 1  # a 1-wide axis folds to a linalg.map: a plain copy
    (out,), _ = c([x], [((rows, 1), "int64")])
    check(out, REF[op](x, axis=1, keepdims=True))


@pytest.mark.parametrize("op", ["argmax", "argmin"])
def test_symbolic_axis(op: str) -> None:
    c = Compiled(one_op_module(op, [("f32", (3, "n"))], ("si64", (3, 1)), "axis = 1 : i64"))
    assert not c.fallbacks
    for n in (1, 64, 100, 1000):
        x = np.random.default_rng(n).standard_normal((3, n)).astype(np.float32)
        x[0, n - 1] = 100.0 if op == "argmax" else -100.0
        (out,), _ = c([x], [((3, 1), "int64")])
        check(out, REF[op](x, axis=1, keepdims=True))


@pytest.mark.parametrize("elt,np_dtype", [("si32", np.int32), ("ui8", np.uint8),
                                          ("f16", np.float16), ("bf16", ml_dtypes.bfloat16)])
def test_other_element_types(elt: str, np_dtype) -> None:
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((4, 300)) * 50).astype(np_dtype)
    x[0, 200] = x[0].max()  # a tie after the first maximum
    for op in ("argmax", "argmin"):
        c = Compiled(one_op_module(op, [(elt, (4, 300))], ("si32", (4, 1)), "axis = 1 : i64"))
        (out,), _ = c([x], [((4, 1), "int32")])
        check(out, REF[op](x, axis=1, keepdims=True).astype(np.int32))


def test_outer_axis() -> None:
    x = np.random.default_rng(6).standard_normal((130, 70)).astype(np.float32)
    x[129, 3] = 99.0
    c = Compiled(one_op_module("argmax", [("f32", (130, 70))], ("si64", (1, 70)),
                               "axis = 0 : i64"))
    (out,), _ = c([x], [((1, 70), "int64")])
    check(out, np.argmax(x, axis=0, keepdims=True))


def test_reduction_reading_its_position_is_not_tiled_into_partials() -> None:
    """The guard: a last-axis reduction whose body reads linalg.index stays unscheduled (a
    recorded fallback), since partial reductions would see tile-relative positions."""
    text = """
    func.func @f(%x: tensor<4x128xf32>, %acc: tensor<4xi64>) -> tensor<4xi64> {
      %r = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>,
                                            affine_map<(d0, d1) -> (d0)>],
                           iterator_types = ["parallel", "reduction"]}
          ins(%x : tensor<4x128xf32>) outs(%acc : tensor<4xi64>) {
      ^bb0(%v: f32, %a: i64):
        %i = linalg.index 1 : index
        %c = arith.index_cast %i : index to i64
        %m = arith.maxsi %c, %a : i64
        linalg.yield %m : i64
      } -> tensor<4xi64>
      return %r : tensor<4xi64>
    }"""
    with make_context():
        m = ir.Module.parse(text)
        fn = m.body.operations[0]
        generic = fn.regions[0].blocks[0].operations[0].operation
        assert generic.name == "linalg.generic"
        assert cpu_schedule.classify(generic) != "reduction"
