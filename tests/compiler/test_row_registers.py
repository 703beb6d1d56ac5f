"""A row reduction's partial vector kept in registers (row_registers): where the row is not
whole vector tiles, its remainder was folded into a one-tile buffer through memory, and the
final load spanned two stores (no store forwarding: twice the time of whole rows). The buffer
must be gone and the numbers numpy's."""

from __future__ import annotations

import numpy as np
import pytest
from mo_helpers import Compiled, check, mo_type, one_op_module, scheduled_ir

# A schedule failure raises here instead of silently compiling plain loops.
pytestmark = pytest.mark.usefixtures("schedule_debug")


def test_ragged_row_sum_keeps_its_partial_vector_in_registers() -> None:
    text = one_op_module("reduce_sum", [("f32", (256, 77))], ("f32", (256, 1)), "axis = 1 : i64")
    ir_text = scheduled_ir(text)
    assert "memref<1x1x64xf32>" not in ir_text, ir_text  # the partial sums' buffer
    assert "vector.insert_strided_slice" in ir_text, ir_text  # the remainder folded in


def _layer_norm_text(n: int, cols: int) -> str:
    tx, tg = mo_type("f32", (n, cols)), mo_type("f32", (cols,))
    return (f"func.func @g(%x: {tx}, %g: {tg}, %b: {tg}) -> {tx} attributes {{mo.graph}} {{\n"
            f'  %r = "mo.layer_norm"(%x, %g, %b) {{epsilon = 1.0e-05 : f32}} : '
            f"({tx}, {tg}, {tg}) -> {tx}\n  func.return %r : {tx}\n}}\n")


@pytest.mark.parametrize("cols", [13, 65, 77, 80, 197, 1000])
def test_ragged_rows_match_numpy(cols: int) -> None:
    rng = np.random.default_rng(cols)
    n = 37
    x = (rng.standard_normal((n, cols)) * 3).astype(np.float32)
    x64 = x.astype(np.float64)
    for op, ref in (("reduce_sum", x64.sum(axis=1, keepdims=True)),
                    ("reduce_max", x64.max(axis=1, keepdims=True)),
                    ("reduce_mean", x64.mean(axis=1, keepdims=True))):
        c = Compiled(one_op_module(op, [("f32", (n, cols))], ("f32", (n, 1)), "axis = 1 : i64"))
        (out,), _ = c([x], [((n, 1), "float32")])
        check(out, ref.astype(np.float32), rtol=1e-5, atol=1e-5)
    e = np.exp(x64 - x64.max(axis=1, keepdims=True))
    for op, ref in (("softmax", e / e.sum(axis=1, keepdims=True)),
                    ("logsoftmax", np.log(e / e.sum(axis=1, keepdims=True)))):
        c = Compiled(one_op_module(op, [("f32", (n, cols))], ("f32", (n, cols)),
                                   "axis = 1 : i64"))
        (out,), _ = c([x], [((n, cols), "float32")])
        check(out, ref.astype(np.float32), rtol=1e-5, atol=1e-6)
    g, b = rng.standard_normal(cols).astype(np.float32), rng.standard_normal(cols).astype(
        np.float32)
    (out,), _ = Compiled(_layer_norm_text(n, cols))([x, g, b], [((n, cols), "float32")])
    mean, var = x64.mean(axis=1, keepdims=True), x64.var(axis=1, keepdims=True)
    check(out, ((x64 - mean) / np.sqrt(var + 1e-5) * g + b).astype(np.float32), rtol=1e-4,
          atol=1e-5)
