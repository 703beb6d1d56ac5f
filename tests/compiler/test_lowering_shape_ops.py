"""reshape, transpose, broadcast_to, concat, slice through a .so vs numpy."""

from __future__ import annotations

import numpy as np
import pytest
from mo_helpers import Compiled, check, mo_type, one_op_module, run_one

from max.compiler.passes.registry import CompilationError
from max.compiler.pipelines.cpu import have_system_linker

pytestmark = pytest.mark.skipif(not have_system_linker(), reason="no system linker")

I64_MIN, I64_MAX = -(2**63), 2**63 - 1


def test_reshape_symbolic_two_sizes() -> None:
    c = Compiled(one_op_module("reshape", [("f32", ("n", 6))], ("f32", ("n * 2", 3))))
    for n in (1, 4):
        x = np.arange(n * 6, dtype=np.float32).reshape(n, 6)
        (out,), _ = c([x], [((n * 2, 3), "float32")])
        check(out, x.reshape(n * 2, 3))


def test_reshape_of_transpose_and_to_scalar() -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    out, _ = run_one("reshape", [("f32", (2, 3))], ("f32", (3, 2)), [x], (3, 2))
    check(out, x.reshape(3, 2))
    one = np.array([[5.0]], np.float32)
    out, _ = run_one("reshape", [("f32", (1, 1))], ("f32", ()), [one], ())
    check(out, one.reshape(()))


def test_transpose_symbolic() -> None:
    c = Compiled(one_op_module("transpose", [("si32", ("a", 3, "b"))], ("si32", ("b", "a", 3)),
                               "permutation = array<i64: 2, 0, 1>"))
    for a, b in ((2, 5), (4, 1)):
        x = np.arange(a * 3 * b, dtype=np.int32).reshape(a, 3, b)
        (out,), _ = c([x], [((b, a, 3), "int32")])
        check(out, x.transpose(2, 0, 1))


def test_broadcast_to_unbound_symbol_is_an_error() -> None:
    with pytest.raises(CompilationError, match="not bound"):
        Compiled(one_op_module("broadcast_to", [("f32", (3, 1))], ("f32", ("n", 3, 4))))


def test_broadcast_to_static_and_bound() -> None:
    x = np.arange(3, dtype=np.float32).reshape(3, 1)
    out, _ = run_one("broadcast_to", [("f32", (3, 1))], ("f32", (2, 3, 4)), [x], (2, 3, 4))
    check(out, np.broadcast_to(x, (2, 3, 4)))


def test_concat_symbolic() -> None:
    # concat is binary: a three-way concat is a chain, sizes add up algebraically.
    ta, tb = mo_type("f32", ("n", 2)), mo_type("f32", ("m", 2))
    t_nm, t_out = mo_type("f32", ("n + m", 2)), mo_type("f32", ("n * 2 + m", 2))
    text = (f"func.func @g(%a: {ta}, %b: {tb}) -> {t_out} attributes {{mo.graph}} {{\n"
            f'  %r = "mo.concat"(%a, %b) {{axis = 0 : i64}} : ({ta}, {tb}) -> {t_nm}\n'
            f'  %s = "mo.concat"(%r, %a) {{axis = 0 : i64}} : ({t_nm}, {ta}) -> {t_out}\n'
            f"  func.return %s : {t_out}\n}}\n")
    c = Compiled(text)
    for n, m in ((1, 2), (3, 0), (0, 4)):
        a = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
        b = -np.arange(m * 2, dtype=np.float32).reshape(m, 2)
        (out,), _ = c([a, b], [((2 * n + m, 2), "float32")])
        check(out, np.concatenate([a, b, a]))


def test_concat_chain_copies_each_leaf_once() -> None:
    # A chain of binary concats lowers to one tensor.empty and one insert_slice per leaf (not
    # 2 per concat, each copying all before it again); the shared %r stays a concat of its own.
    t = mo_type("f32", ("n", 2))
    t2, t3, t4 = (mo_type("f32", (f"n * {k}", 2)) for k in (2, 3, 4))
    text = (f"func.func @g(%a: {t}, %b: {t}) -> ({t4}, {t3}) attributes {{mo.graph}} {{\n"
            f'  %r = "mo.concat"(%a, %b) {{axis = 0 : i64}} : ({t}, {t}) -> {t2}\n'
            f'  %s = "mo.concat"(%r, %a) {{axis = 0 : i64}} : ({t2}, {t}) -> {t3}\n'
            f'  %u = "mo.concat"(%s, %b) {{axis = 0 : i64}} : ({t3}, {t}) -> {t4}\n'
            f'  %v = "mo.concat"(%b, %r) {{axis = 0 : i64}} : ({t}, {t2}) -> {t3}\n'
            f"  func.return %u, %v : {t4}, {t3}\n}}\n")
    c = Compiled(text, keep_ir=True)
    assert c.lowered.count("tensor.insert_slice") == 2 + 3 + 2, c.lowered
    for n in (0, 3):
        a = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
        b = -1 - a
        (u, v), _ = c([a, b], [((4 * n, 2), "float32"), ((3 * n, 2), "float32")])
        check(u, np.concatenate([a, b, a, b]))
        check(v, np.concatenate([b, a, b]))


def test_concat_last_axis() -> None:
    t = mo_type("si64", (2, "k"))
    out_t = mo_type("si64", (2, "k * 2"))
    text = (f"func.func @g(%a: {t}) -> {out_t} attributes {{mo.graph}} {{\n"
            f'  %r = "mo.concat"(%a, %a) {{axis = 1 : i64}} : ({t}, {t}) -> {out_t}\n'
            f"  func.return %r : {out_t}\n}}\n")
    c = Compiled(text)
    x = np.arange(6).reshape(2, 3)
    (out,), _ = c([x], [((2, 6), "int64")])
    check(out, np.concatenate([x, x], axis=1))


SLICES = [
    (1, 5, 1), (-3, I64_MAX, 1), (I64_MIN, I64_MAX, 2), (I64_MAX, I64_MIN, -1), (5, 1, -2),
    (-1, -10, -3), (100, 200, 1), (2, 2, 1), (-100, 3, 1), (I64_MAX, 0, -1),
]


@pytest.mark.parametrize("start,stop,step", SLICES)
def test_slice_python_semantics_symbolic(start: int, stop: int, step: int) -> None:
    # The input dim is symbolic (runtime clamping); the result length is static per test size.
    for n in (0, 3, 8):
        expected_len = len(range(*slice(start, stop, step).indices(n)))
        t = one_op_module("slice", [("f32", ("n", 2))], ("f32", (expected_len, 2)),
                          f"starts = array<i64: {start}, 0>, stops = array<i64: {stop}, 2>, "
                          f"steps = array<i64: {step}, 1>")
        c = Compiled(t)
        x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
        (out,), _ = c([x], [((expected_len, 2), "float32")])
        check(out, x[start:stop:step])


def test_slice_static_negative_step_2d() -> None:
    x = np.arange(20, dtype=np.int32).reshape(4, 5)
    out, _ = run_one("slice", [("si32", (4, 5))], ("si32", (2, 3)), [x], (2, 3),
                     "starts = array<i64: -1, 0>, stops = array<i64: 0, 5>, "
                     "steps = array<i64: -2, 2>")
    check(out, x[-1:0:-2, 0:5:2])
