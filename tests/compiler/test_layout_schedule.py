"""Transposes, reductions over outer axes and 16-bit floats: scheduled (no linalg op left to
plain loops, vector code present) and equal to numpy, at odd sizes and at model shapes."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from mo_helpers import Compiled, check, mo_type, one_op_module, scheduled_ir


NP = {"f32": np.float32, "f16": np.float16, "bf16": ml_dtypes.bfloat16}


# A schedule failure raises here instead of silently compiling plain loops.
pytestmark = pytest.mark.usefixtures("schedule_debug")


def unscheduled_ops(text: str) -> list[str]:
    """The linalg ops of ``text``'s graph left to plain loops by the schedule."""
    lowered = scheduled_ir(text)
    assert "vector." in lowered  # something was vectorized
    return [line.strip() for line in lowered.splitlines()
            if "linalg." in line and "linalg.yield" not in line and "linalg.index" not in line]


def _data(shape: tuple[int, ...], elt: str = "f32", seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 3
    return x.astype(NP[elt])


def _perm_text(shape: tuple, perm: tuple[int, ...], elt: str = "f32") -> str:
    out = tuple(shape[p] for p in perm)
    return one_op_module("transpose", [(elt, shape)], (elt, out),
                         f"permutation = array<i64: {', '.join(map(str, perm))}>")


@pytest.mark.parametrize("shape,perm", [
    ((1, 1), (1, 0)), ((17, 33), (1, 0)), ((16, 16), (1, 0)), ((65, 63), (1, 0)),
    ((512, 4096), (1, 0)), ((1, 128, 12, 32), (0, 2, 1, 3)), ((12, 128, 64), (0, 2, 1)),
    ((3, 5, 7), (2, 1, 0)), ((4, 17, 19), (0, 2, 1)), ((2, 3, 5, 7), (3, 1, 2, 0)),
    ((2, 3, 33, 18), (0, 3, 2, 1)), ((8, 16, 16), (1, 2, 0)), ((2, 31, 4, 37), (0, 2, 3, 1)),
])
def test_transposes_are_scheduled_and_exact(shape: tuple, perm: tuple) -> None:
    text = _perm_text(shape, perm)
    assert unscheduled_ops(text) == []
    x = _data(shape)
    out = tuple(shape[p] for p in perm)
    (got,), _ = Compiled(text)([x], [(out, "float32")])
    check(got, np.ascontiguousarray(x.transpose(perm)))


def test_transpose_reads_rows_and_shuffles_in_registers() -> None:
    """A 2-D transpose is 16x16 blocks: row loads, shuffles, row stores (no scalar gather)."""
    lowered = scheduled_ir(_perm_text((64, 64), (1, 0)))
    assert lowered.count("vector.shuffle") >= 64
    assert "memref.load" not in lowered


@pytest.mark.parametrize("rows", [1, 15, 17, 40])
def test_symbolic_transpose_one_binary_many_sizes(rows: int) -> None:
    text = _perm_text(("n", 33, 5), (2, 1, 0))
    assert unscheduled_ops(text) == []
    c = Compiled(text)
    x = _data((rows, 33, 5), seed=rows)
    (got,), _ = c([x], [((5, 33, rows), "float32")])
    check(got, np.ascontiguousarray(x.transpose(2, 1, 0)))


@pytest.mark.parametrize("elt", ["f16", "bf16"])
def test_half_transpose(elt: str) -> None:
    text = _perm_text((37, 70), (1, 0), elt)
    assert unscheduled_ops(text) == []
    x = _data((37, 70), elt)
    (got,), _ = Compiled(text)([x], [((70, 37), np.dtype(NP[elt]).name)])
    assert np.array_equal(got.view(np.uint16), np.ascontiguousarray(x.T).view(np.uint16))


_REDUCE = {"reduce_sum": np.sum, "reduce_max": np.max, "reduce_min": np.min,
           "reduce_mean": np.mean}


@pytest.mark.parametrize("op", sorted(_REDUCE))
@pytest.mark.parametrize("shape,axis", [
    ((1, 1), 0), ((5, 1), 0), ((7, 63), 0), ((13, 65), 0), ((3, 129), 0), ((512, 4096), 0),
    ((3, 17, 5), 1), ((8, 512, 64), 1), ((4, 6, 7, 67), 1), ((4, 6, 7, 67), 2), ((9, 2, 3), 0),
])
def test_outer_axis_reductions(op: str, shape: tuple, axis: int) -> None:
    out = tuple(1 if i == axis else d for i, d in enumerate(shape))
    text = one_op_module(op, [("f32", shape)], ("f32", out), f"axis = {axis} : i64")
    assert unscheduled_ops(text) == []
    x = _data(shape, seed=len(shape))
    (got,), _ = Compiled(text)([x], [(out, "float32")])
    want = _REDUCE[op](x.astype(np.float64), axis=axis, keepdims=True).astype(np.float32)
    check(got, want, rtol=1e-5, atol=2e-6 * shape[axis])


def test_several_axes_and_a_symbolic_outer_dim() -> None:
    """sum over axes 0 and 2 (two reductions, both scheduled), with a symbolic batch."""
    ta, tb, tc = (mo_type("f32", d) for d in (("b", 6, 7, 33), (1, 6, 7, 33), (1, 6, 1, 33)))
    text = (f"func.func @g(%x: {ta}) -> {tc} attributes {{mo.graph}} {{\n"
            f'  %0 = "mo.reduce_sum"(%x) {{axis = 0 : i64}} : ({ta}) -> {tb}\n'
            f'  %1 = "mo.reduce_sum"(%0) {{axis = 2 : i64}} : ({tb}) -> {tc}\n'
            f"  func.return %1 : {tc}\n}}\n")
    assert unscheduled_ops(text) == []
    c = Compiled(text)
    for b in (1, 3, 10):
        x = _data((b, 6, 7, 33), seed=b)
        (got,), _ = c([x], [((1, 6, 1, 33), "float32")])
        check(got, x.astype(np.float64).sum(axis=(0, 2), keepdims=True).astype(np.float32),
              rtol=1e-5, atol=1e-5)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("shape,axis", [((8, 512, 64), 1), ((8, 512, 64), 0), ((5, 7, 3), 1),
                                        ((1, 1, 1), 0), ((3, 65, 17), 0), ((2, 9, 129), 1)])
def test_softmax_over_an_outer_axis(shape: tuple, axis: int) -> None:
    text = one_op_module("softmax", [("f32", shape)], ("f32", shape), f"axis = {axis} : i64")
    assert unscheduled_ops(text) == []
    x = _data(shape, seed=axis)
    (got,), _ = Compiled(text)([x], [(shape, "float32")])
    check(got, _softmax(x.astype(np.float64), axis).astype(np.float32), rtol=1e-5, atol=1e-7)


def _ulps(got: np.ndarray, want: np.ndarray) -> int:
    bits = [np.where(a.view(np.uint16) & 0x8000, -(a.view(np.uint16).astype(np.int64) & 0x7FFF),
                     a.view(np.uint16).astype(np.int64)) for a in (got, want)]
    return int(np.abs(bits[0] - bits[1]).max())


@pytest.mark.parametrize("elt", ["f16", "bf16"])
@pytest.mark.parametrize("shape", [(1, 1), (3, 63), (5, 65), (64, 4096)])
def test_half_elementwise_softmax_and_layer_norm(elt: str, shape: tuple) -> None:
    """16-bit graphs: scheduled, computed in f32 and rounded once at the store."""
    t, g = mo_type(elt, shape), mo_type(elt, shape[-1:])
    text = (f"func.func @g(%x: {t}, %y: {t}, %w: {g}, %b: {g}) -> ({t}, {t}, {t}) "
            f"attributes {{mo.graph}} {{\n"
            f'  %0 = "mo.mul"(%x, %y) : ({t}, {t}) -> {t}\n'
            f'  %1 = "mo.add"(%0, %x) : ({t}, {t}) -> {t}\n'
            f'  %2 = "mo.softmax"(%x) {{axis = 1 : i64}} : ({t}) -> {t}\n'
            f'  %3 = "mo.layer_norm"(%x, %w, %b) {{epsilon = 1.0e-05 : f32}} : ({t}, {g}, {g}) '
            f"-> {t}\n  func.return %1, %2, %3 : {t}, {t}, {t}\n}}\n")
    assert unscheduled_ops(text) == []
    x, y = _data(shape, elt, 1), _data(shape, elt, 2)
    w, b = _data(shape[-1:], elt, 3), _data(shape[-1:], elt, 4)
    dt = np.dtype(NP[elt]).name
    got = Compiled(text)([x, y, w, b], [(shape, dt)] * 3)[0]
    xf, yf, wf, bf = (a.astype(np.float32) for a in (x, y, w, b))
    # The vector code keeps the plain loops' rounding, exactly: f16 ops round after each op
    # (as numpy's float16 arithmetic), a bf16 chain runs in f32 and rounds once at the store
    # (SOFT_BF16). Softmax and layer norm run in f32, summing in another order: 1 ulp.
    assert _ulps(got[0], x * y + x if elt == "f16" else (xf * yf + xf).astype(NP[elt])) == 0
    assert _ulps(got[1], _softmax(xf, 1).astype(NP[elt])) <= 1
    # Layer norm against float64: its sums may run in any order, so the bound is 2 ulps of
    # the terms' size (a result near 0, where b cancels the normalized term, has tiny ulps).
    x64 = x.astype(np.float64)
    mean, var = x64.mean(axis=1, keepdims=True), x64.var(axis=1, keepdims=True)
    normed = (x64 - mean) / np.sqrt(var + 1e-5) * wf
    ulp = 2.0 ** -10 if elt == "f16" else 2.0 ** -7
    bound = 2 * ulp * (np.abs(normed) + np.abs(bf))
    assert np.all(np.abs(got[2].astype(np.float64) - (normed + bf)) <= bound)


@pytest.mark.parametrize("elt", ["f16", "bf16"])
def test_half_outer_axis_reductions(elt: str) -> None:
    shape = (33, 7, 130)
    text = one_op_module("reduce_sum", [(elt, shape)], (elt, (33, 1, 130)), "axis = 1 : i64")
    assert unscheduled_ops(text) == []
    x = _data(shape, elt, 5)
    (got,), _ = Compiled(text)([x], [((33, 1, 130), np.dtype(NP[elt]).name)])
    want = x.astype(np.float32).sum(axis=1, keepdims=True).astype(NP[elt])
    assert _ulps(got, want) <= 1


def test_bf16_vectors_keep_subnormals() -> None:
    """Full 64-wide bf16 vectors round in integer code too: subnormal results are kept (the
    hardware conversion, vcvtneps2bf16, flushes them)."""
    tiny = np.float32(ml_dtypes.finfo(ml_dtypes.bfloat16).smallest_subnormal)
    x = ((np.arange(1024, dtype=np.float32) % 97 + 1) * tiny).astype(ml_dtypes.bfloat16)
    t = mo_type("bf16", (1024,))
    text = (f"func.func @g(%x: {t}) -> {t} attributes {{mo.graph}} {{\n"
            f'  %0 = "mo.add"(%x, %x) : ({t}, {t}) -> {t}\n  func.return %0 : {t}\n}}\n')
    assert unscheduled_ops(text) == []
    (got,), _ = Compiled(text)([x], [((1024,), "bfloat16")])
    want = (x.astype(np.float32) * 2).astype(ml_dtypes.bfloat16)
    assert np.array_equal(got.view(np.uint16), want.view(np.uint16))
    assert (got.astype(np.float32) != 0).all()


@pytest.mark.parametrize("axis", [1, 2])
def test_masked_softmax(axis: int) -> None:
    """Attention's softmax(where(mask, scores, -1e9)), over the keys or the queries."""
    shape = (3, 17, 65)
    t, m = mo_type("f32", shape), mo_type("i1", (1, *shape[1:]))
    text = (f"func.func @g(%x: {t}, %m: {m}, %n: {t}) -> {t} attributes {{mo.graph}} {{\n"
            f'  %0 = "mo.where"(%m, %x, %n) : ({m}, {t}, {t}) -> {t}\n'
            f'  %1 = "mo.softmax"(%0) {{axis = {axis} : i64}} : ({t}) -> {t}\n'
            f"  func.return %1 : {t}\n}}\n")
    assert unscheduled_ops(text) == []
    x = _data(shape, seed=axis)
    mask = np.tril(np.ones(shape[1:], bool), k=3)[None]
    fill = np.full(shape, -1e9, np.float32)
    (got,), _ = Compiled(text)([x, mask, fill], [(shape, "float32")])
    want = _softmax(np.where(mask, x, fill).astype(np.float64), axis).astype(np.float32)
    check(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("elt", ["f16", "bf16"])
def test_half_softmax_widens_inside_each_consumer(elt: str) -> None:
    """The widened input is no f32 tensor of its own, nor is exp(x - max): the row passes
    (row_fusion) read the 16-bit input and keep only row values."""
    shape = (64, 256)
    text = one_op_module("softmax", [(elt, shape)], (elt, shape), "axis = 1 : i64")
    lowered = scheduled_ir(text)
    assert "memref.alloc() {alignment = 64 : i64} : memref<64x256xf32>" not in lowered
    x = _data(shape, elt, 7)
    (got,), _ = Compiled(text)([x], [(shape, np.dtype(NP[elt]).name)])
    assert _ulps(got, _softmax(x.astype(np.float32), 1).astype(NP[elt])) <= 1


def test_argmax_and_argmin_of_one_tensor_keep_their_own_inits() -> None:
    """Small static fills are vectorized on memrefs, not on tensors: there, two identical
    vectorized inits were merged by CSE and argmin returned argmax's indices."""
    t, o = mo_type("f32", (3, 4)), mo_type("si64", (1, 4))
    text = (f"func.func @g(%x: {t}) -> ({o}, {o}) attributes {{mo.graph}} {{\n"
            f'  %0 = "mo.argmax"(%x) {{axis = 0 : i64}} : ({t}) -> {o}\n'
            f'  %1 = "mo.argmin"(%x) {{axis = 0 : i64}} : ({t}) -> {o}\n'
            f"  func.return %0, %1 : {o}, {o}\n}}\n")
    x = _data((3, 4), seed=9)
    (a, b), _ = Compiled(text)([x], [((1, 4), "int64")] * 2)
    check(a, x.argmax(0, keepdims=True))
    check(b, x.argmin(0, keepdims=True))
