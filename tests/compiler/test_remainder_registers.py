"""A row reduction's partial vector kept in registers through the masked remainder of a
symbolic row (compiler/pipelines/remainder_registers.py): the buffer must be gone, the
remainder a select, and the numbers numpy's for every remainder length (none, one lane, a
full tile less one) and across rows whose partial vectors must not leak into each other."""

from __future__ import annotations

import numpy as np
import pytest
from mo_helpers import Compiled, check, mo_type, one_op_module, scheduled_ir

# A schedule failure raises here instead of silently compiling plain loops.
pytestmark = pytest.mark.usefixtures("schedule_debug")

COLS = [1, 12, 63, 64, 65, 77, 128, 1000]


def test_symbolic_row_sum_keeps_its_partial_vector_in_registers() -> None:
    text = one_op_module("reduce_sum", [("f32", ("n", "c"))], ("f32", ("n", 1)),
                         "axis = 1 : i64")
    ir_text = scheduled_ir(text)
    assert "memref<1x1x64xf32>" not in ir_text, ir_text  # the partial sums' buffer
    assert "arith.select" in ir_text and "iter_args" in ir_text, ir_text


def test_symbolic_softmax_has_no_partial_buffer() -> None:
    text = one_op_module("softmax", [("f32", ("n", "c"))], ("f32", ("n", "c")),
                         "axis = 1 : i64")
    assert "memref<1x64xf32>" not in scheduled_ir(text)


@pytest.mark.parametrize("cols", COLS)
def test_symbolic_row_reductions_match_numpy(cols: int) -> None:
    rng = np.random.default_rng(cols)
    n = 19
    # Rows of very different sizes: a partial vector carried into the next row would show.
    x = (rng.standard_normal((n, cols)) * np.arange(1, n + 1)[:, None] ** 2).astype(np.float32)
    x64 = x.astype(np.float64)
    for op, ref in (("reduce_sum", x64.sum(axis=1, keepdims=True)),
                    ("reduce_max", x64.max(axis=1, keepdims=True)),
                    ("reduce_min", x64.min(axis=1, keepdims=True)),
                    ("reduce_mean", x64.mean(axis=1, keepdims=True))):
        c = Compiled(one_op_module(op, [("f32", ("n", "c"))], ("f32", ("n", 1)),
                                   "axis = 1 : i64"))
        (out,), _ = c([x], [((n, 1), "float32")])
        check(out, ref.astype(np.float32), rtol=2e-5, atol=1e-4)


@pytest.mark.parametrize("cols", COLS)
def test_symbolic_softmax_and_layer_norm_match_numpy(cols: int) -> None:
    rng = np.random.default_rng(100 + cols)
    n = 23
    x = (rng.standard_normal((n, cols)) * 3 + rng.standard_normal((n, 1)) * 5).astype(
        np.float32)
    x[3, -1] = 40.0  # the row's max in its last lane (the masked remainder's)
    x64 = x.astype(np.float64)
    e = np.exp(x64 - x64.max(axis=1, keepdims=True))
    for op, ref in (("softmax", e / e.sum(axis=1, keepdims=True)),
                    ("logsoftmax", np.log(e / e.sum(axis=1, keepdims=True)))):
        c = Compiled(one_op_module(op, [("f32", ("n", "c"))], ("f32", ("n", "c")),
                                   "axis = 1 : i64"))
        (out,), _ = c([x], [((n, cols), "float32")])
        check(out, ref.astype(np.float32), rtol=2e-5, atol=1e-6)
    tx, tg = mo_type("f32", ("n", "c")), mo_type("f32", ("c",))
    text = (f"func.func @g(%x: {tx}, %g: {tg}, %b: {tg}) -> {tx} attributes {{mo.graph}} {{\n"
            f'  %r = "mo.layer_norm"(%x, %g, %b) {{epsilon = 1.0e-05 : f32}} : '
            f"({tx}, {tg}, {tg}) -> {tx}\n  func.return %r : {tx}\n}}\n")
    g, b = rng.standard_normal(cols).astype(np.float32), rng.standard_normal(cols).astype(
        np.float32)
    (out,), _ = Compiled(text)([x, g, b], [((n, cols), "float32")])
    mean, var = x64.mean(axis=1, keepdims=True), x64.var(axis=1, keepdims=True)
    ref = (x64 - mean) / np.sqrt(var + 1e-5) * g + b
    # A row of one element has no spread: its variance is 0 and its result beta exactly.
    check(out, ref.astype(np.float32), rtol=1e-4, atol=2e-4)
