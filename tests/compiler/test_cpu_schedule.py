"""The CPU schedule (tiling + vectorization) against numpy, and the polynomial exp."""

from __future__ import annotations

import numpy as np
import pytest
from mlir import ir
from mo_helpers import Compiled, check, make_context, mo_type, one_op_module, scheduled_ir

from max.compiler.pipelines import cpu_schedule, memref_vectorize


# A schedule failure raises here instead of silently compiling plain loops.
pytestmark = pytest.mark.usefixtures("schedule_debug")


def _matmul_text(m: int | str, n: int, k: int, batch: tuple = ()) -> str:
    return one_op_module("matmul", [("f32", (*batch, m, k)), ("f32", (k, n))],
                         ("f32", (*batch, m, n)))


def test_matmul_becomes_fmas_with_no_linalg_left() -> None:
    text = scheduled_ir(_matmul_text(64, 64, 64))
    assert "linalg." not in text
    assert text.count("vector.fma") >= 8
    assert "vector.mask" not in text  # divisible: no remainder


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (7, 33, 5), (8, 32, 1), (33, 65, 17),
                                   (64, 64, 64), (100, 70, 300), (257, 300, 65)])
@pytest.mark.parametrize("dynamic", [False, True])
def test_matmul_matches_numpy(m: int, n: int, k: int, dynamic: bool) -> None:
    c = Compiled(_matmul_text("m" if dynamic else m, n, k))
    rng = np.random.default_rng(m * n + k)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    (out,), _ = c([a, b], [((m, n), "float32")])
    ref = (a.astype(np.float64) @ b).astype(np.float32)
    check(out, ref, rtol=1e-4, atol=1e-5 * np.sqrt(k))


def test_dynamic_matmul_runs_many_sizes_from_one_binary() -> None:
    c = Compiled(_matmul_text("m", 40, 9))
    rng = np.random.default_rng(0)
    b = rng.standard_normal((9, 40), dtype=np.float32)
    for m in (1, 2, 7, 8, 9, 255, 256, 257, 1000):
        a = rng.standard_normal((m, 9), dtype=np.float32)
        (out,), _ = c([a, b], [((m, 40), "float32")])
        check(out, (a.astype(np.float64) @ b).astype(np.float32), rtol=1e-4, atol=1e-5)


def test_batched_matmul_rank2_rhs() -> None:
    c = Compiled(_matmul_text(5, 33, 7, batch=("b",)))
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 5, 7), dtype=np.float32)
    b = rng.standard_normal((7, 33), dtype=np.float32)
    (out,), _ = c([a, b], [((3, 5, 33), "float32")])
    check(out, (a.astype(np.float64) @ b).astype(np.float32), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("batch", [(1,), (2,), (1, 3)])
def test_static_batch_rows_stay_one_scheduled_matmul(batch: tuple[int, ...]) -> None:
    """[*batch, m, k] @ [k, n] with static batch dims (a linear layer on [1, 128, 384]): the
    collapsed rows must stay a linalg.matmul, which the schedule turns into FMAs. A static
    collapse_shape was folded back into a 4-loop generic that stayed plain loops (100x
    slower); the numbers must still be numpy's."""
    text = _matmul_text(16, 32, 24, batch=batch)
    scheduled = scheduled_ir(text)
    assert "linalg.generic" not in scheduled and "linalg.matmul" not in scheduled
    assert scheduled.count("vector.fma") >= cpu_schedule.MR  # one per row of a tile
    c = Compiled(text)
    rng = np.random.default_rng(len(batch))
    a = rng.standard_normal((*batch, 16, 24), dtype=np.float32)
    b = rng.standard_normal((24, 32), dtype=np.float32)
    (out,), _ = c([a, b], [((*batch, 16, 32), "float32")])
    check(out, (a.astype(np.float64) @ b).astype(np.float32), rtol=1e-4, atol=1e-5)


def test_static_rows_with_a_symbolic_k() -> None:
    """[1, 8, k] @ [k, 5]: the rows are static, k is not (a static-rows view once put k's
    dynamic-size sentinel into the shape: silently wrong numbers)."""
    c = Compiled(one_op_module("matmul", [("f32", (1, 8, "k")), ("f32", ("k", 5))],
                               ("f32", (1, 8, 5))))
    rng = np.random.default_rng(3)
    for k in (1, 6, 70):
        a = rng.standard_normal((1, 8, k), dtype=np.float32)
        b = rng.standard_normal((k, 5), dtype=np.float32)
        (out,), _ = c([a, b], [((1, 8, 5), "float32")])
        check(out, (a.astype(np.float64) @ b).astype(np.float32), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("batch", [(12,), ("b",), (2, 3)])
def test_batched_matmul_is_one_scheduled_batch_matmul(batch: tuple) -> None:
    """[*batch, m, k] @ [*batch, k, n] (attention's q @ k^T): one scheduled
    linalg.batch_matmul over the collapsed batch, not a batched generic left to plain loops."""
    text = one_op_module("matmul", [("f32", (*batch, 16, 24)), ("f32", (*batch, 24, 32))],
                         ("f32", (*batch, 16, 32)))
    scheduled = scheduled_ir(text)
    assert "linalg." not in scheduled
    assert scheduled.count("vector.fma") >= 8
    shape = tuple(3 if d == "b" else d for d in batch)
    rng = np.random.default_rng(len(batch))
    a = rng.standard_normal((*shape, 16, 24), dtype=np.float32)
    b = rng.standard_normal((*shape, 24, 32), dtype=np.float32)
    (out,), _ = Compiled(text)([a, b], [((*shape, 16, 32), "float32")])
    check(out, (a.astype(np.float64) @ b).astype(np.float32), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(1,), (63,), (64,), (65,), (1000,), (3, 5), (7, 129)])
def test_elementwise_chain_vectorized(shape: tuple[int, ...]) -> None:
    dims = ("n",) + shape[1:]
    t = mo_type("f32", dims)
    text = (f"func.func @g(%a: {t}, %b: {t}) -> {t} attributes {{mo.graph}} {{\n"
            f'  %0 = "mo.add"(%a, %b) : ({t}, {t}) -> {t}\n'
            f'  %1 = "mo.mul"(%0, %a) : ({t}, {t}) -> {t}\n'
            f'  %2 = "mo.relu"(%1) : ({t}) -> {t}\n'
            f'  %3 = "mo.exp"(%2) : ({t}) -> {t}\n'
            f"  func.return %3 : {t}\n}}\n")
    ir_text = scheduled_ir(text)
    assert "linalg." not in ir_text and "math.exp" not in ir_text
    c = Compiled(text)
    rng = np.random.default_rng(2)
    a = rng.standard_normal(shape, dtype=np.float32)
    b = rng.standard_normal(shape, dtype=np.float32)
    (out,), _ = c([a, b], [(shape, "float32")])
    check(out, np.exp(np.maximum((a + b) * a, 0)), rtol=2e-6)


@pytest.mark.parametrize("shape", [(4099, 3), ("n", 3), (5, 7, 9), (2, 63), ("n", "m", 3)])
def test_elementwise_op_with_a_short_last_dim_is_flattened(shape: tuple) -> None:
    # Tiled per row, [4099, 3] ran one 3-lane masked vector a row: flattened to one loop,
    # whole 16-lane vectors. Not with two symbolic dims: the expand_shape back would have two
    # dynamic sizes in its group, which memref's expand_shape lowering aborts on.
    t = mo_type("f32", shape)
    text = (f"func.func @g(%a: {t}, %b: {t}) -> {t} attributes {{mo.graph}} {{\n"
            f'  %0 = "mo.mul"(%a, %b) : ({t}, {t}) -> {t}\n'
            f'  %1 = "mo.tanh"(%0) : ({t}) -> {t}\n'
            f"  func.return %1 : {t}\n}}\n")
    ir_text = scheduled_ir(text, until="mo-schedule-tensors")
    assert ("tensor.collapse_shape" in ir_text) == (shape.count("n") + shape.count("m") < 2)
    c = Compiled(text)
    real = tuple({"n": 4099, "m": 5}.get(d, d) for d in shape)
    rng = np.random.default_rng(3)
    a = rng.standard_normal(real, dtype=np.float32)
    b = rng.standard_normal(real, dtype=np.float32)
    (out,), _ = c([a, b], [(real, "float32")])
    check(out, np.tanh(a.astype(np.float64) * b).astype(np.float32), rtol=2e-6, atol=2e-7)


def test_exp_matches_numpy_everywhere() -> None:
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 88.72, 88.73, 89.0, 1e30, -1e30,
                         -87.3, -87.4, -103.9, -104.0, -110.0, 1e-30, -1e-30, 1e-45, 0.5,
                         -0.5, 0.34657359, -0.34657359, 1.0, -1.0, 20.0], np.float32)
    grid = np.linspace(-105, 89, 200_001, dtype=np.float32)
    x = np.concatenate([specials, grid, np.float32(np.random.default_rng(3).standard_normal(
        10_000) * 10)]).astype(np.float32)
    c = Compiled(one_op_module("exp", [("f32", ("n",))], ("f32", ("n",))))
    (out,), _ = c([x], [(x.shape, "float32")])
    with np.errstate(over="ignore"):
        ref = np.exp(x.astype(np.float64))
    f32 = np.finfo(np.float32)
    assert np.array_equal(np.isnan(out), np.isnan(x))
    assert np.array_equal(np.isinf(out), ref > f32.max)
    normal = (ref >= f32.tiny) & (ref <= f32.max)
    rel = np.abs(out[normal] - ref[normal]) / ref[normal]
    assert rel.max() < 3e-7, rel.max()
    tiny = ref < f32.tiny  # denormal results (and 0): absolute error
    assert np.abs(out[tiny] - ref[tiny]).max() <= 2 * 1.4e-45


@pytest.mark.parametrize("op", ["reduce_sum", "reduce_max"])
@pytest.mark.parametrize("n,cols", [(1, 1), (3, 5), (4, 64), (5, 65), (2, 1000)])
def test_last_axis_reductions(op: str, n: int, cols: int) -> None:
    c = Compiled(one_op_module(op, [("f32", ("n", cols))], ("f32", ("n", 1)), "axis = 1 : i64"))
    x = np.random.default_rng(4).standard_normal((n, cols), dtype=np.float32)
    (out,), _ = c([x], [((n, 1), "float32")])
    ref = (x.astype(np.float64).sum(axis=1, keepdims=True) if op == "reduce_sum"
           else x.max(axis=1, keepdims=True)).astype(np.float32)
    check(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n,cols", [(1, 1), (3, 7), (2, 64), (5, 100), (4, 4096)])
def test_softmax_and_layer_norm(n: int, cols: int) -> None:
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((n, cols)) * 4).astype(np.float32)
    c = Compiled(one_op_module("softmax", [("f32", ("n", cols))], ("f32", ("n", cols)),
                               "axis = 1 : i64"))
    (out,), _ = c([x], [((n, cols), "float32")])
    e = np.exp(x.astype(np.float64) - x.max(axis=1, keepdims=True))
    check(out, (e / e.sum(axis=1, keepdims=True)).astype(np.float32), rtol=1e-5, atol=1e-7)
    tx, tg = mo_type("f32", ("n", cols)), mo_type("f32", (cols,))
    text = (f"func.func @g(%x: {tx}, %g: {tg}, %b: {tg}) -> {tx} attributes {{mo.graph}} {{\n"
            f'  %r = "mo.layer_norm"(%x, %g, %b) {{epsilon = 1.0e-05 : f32}} : ({tx}, {tg}, {tg})'
            f" -> {tx}\n  func.return %r : {tx}\n}}\n")
    g = rng.standard_normal(cols).astype(np.float32)
    b = rng.standard_normal(cols).astype(np.float32)
    (out,), _ = Compiled(text)([x, g, b], [((n, cols), "float32")])
    x64 = x.astype(np.float64)
    mean, var = x64.mean(axis=1, keepdims=True), x64.var(axis=1, keepdims=True)
    check(out, ((x64 - mean) / np.sqrt(var + 1e-5) * g + b).astype(np.float32),
          rtol=1e-4, atol=1e-5)


def test_unsupported_ops_fall_back_to_loops() -> None:
    # f64 erf has no vector lowering (fast_math approximates f32 only): the schedule leaves it
    # alone, the result stays right.
    c = Compiled(one_op_module("erf", [("f64", ("n", 70))], ("f64", ("n", 70))))
    x = np.linspace(-3, 3, 140).reshape(2, 70)
    (out,), _ = c([x], [((2, 70), "float64")])
    from math import erf

    check(out, np.vectorize(erf)(x), rtol=1e-15, atol=1e-16)


def test_schedule_failure_falls_back_to_plain_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAX_SCHEDULE_DEBUG")

    def broken(module: ir.Module) -> None:
        raise RuntimeError("a schedule that fails half-way (the module is already bufferized)")

    monkeypatch.setattr(memref_vectorize, "vectorize_memrefs", broken)
    fallbacks = _matmul_records()
    # Never silent: the records say the whole module fell back, and which kernels are plain.
    assert fallbacks[0] == ("whole module: a schedule that fails half-way (the module is "
                            "already bufferized)")
    assert fallbacks[1:] == ["matmul (linalg.fill)", "matmul (linalg.matmul)"]


def _matmul_records() -> list[str]:
    """Compiles a [m, 9] @ [9, 33] matmul, checks it at m = 5 against numpy; its fallback
    records."""
    c = Compiled(_matmul_text("m", 33, 9))
    rng = np.random.default_rng(6)
    a = rng.standard_normal((5, 9), dtype=np.float32)
    b = rng.standard_normal((9, 33), dtype=np.float32)
    (out,), _ = c([a, b], [((5, 33), "float32")])
    check(out, (a.astype(np.float64) @ b).astype(np.float32), rtol=1e-4, atol=1e-5)
    return c.fallbacks


def test_a_schedule_that_leaves_invalid_ir_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pass manager does not verify between passes (MAX_VERIFY_EACH unset), so each
    schedule stage's result is verified: an invalid module falls back to plain loops there.
    The bad constant here is unused: a later canonicalize would erase it unseen."""
    monkeypatch.delenv("MAX_SCHEDULE_DEBUG")
    monkeypatch.delenv("MAX_VERIFY_EACH", raising=False)
    real = memref_vectorize.vectorize_memrefs

    def leaves_invalid_ir(module: ir.Module) -> None:
        real(module)
        entry = next(op.operation for op in module.body.operations
                     if "mo.num_inputs" in op.operation.attributes)
        with ir.InsertionPoint.at_block_begin(entry.regions[0].blocks[0]):
            ir.Operation.create("arith.constant", results=[ir.IntegerType.get_signless(32)],
                                attributes={"value": ir.IntegerAttr.get(
                                    ir.IntegerType.get_signless(64), 1)})

    monkeypatch.setattr(memref_vectorize, "vectorize_memrefs", leaves_invalid_ir)
    assert _matmul_records()[0] == ("whole module: stage 'mo-vectorize-memrefs' left a module "
                                    "that does not verify: 'arith.constant' op failed to "
                                    "verify that all of {value, result} have same type")


@pytest.mark.parametrize("op", ["softmax", "layer_norm", "reduce_sum", "reduce_max"])
def test_row_ops_are_vector_code_with_no_linalg_left(op: str) -> None:
    # Each op's schedule runs with failures suppressed: one it stops handling would stay plain
    # (scalar) loops and still compute the right values, which the numeric tests cannot see.
    tx, tg = mo_type("f32", ("n", 256)), mo_type("f32", (256,))
    if op == "layer_norm":
        text = (f"func.func @g(%x: {tx}, %g: {tg}, %b: {tg}) -> {tx} attributes {{mo.graph}} {{\n"
                f'  %r = "mo.layer_norm"(%x, %g, %b) {{epsilon = 1.0e-05 : f32}} : '
                f"({tx}, {tg}, {tg}) -> {tx}\n  func.return %r : {tx}\n}}\n")
    elif op == "softmax":
        text = one_op_module(op, [("f32", ("n", 256))], ("f32", ("n", 256)), "axis = 1 : i64")
    else:
        text = one_op_module(op, [("f32", ("n", 256))], ("f32", ("n", 1)), "axis = 1 : i64")
    ir_text = scheduled_ir(text)
    assert "vector.reduction" in ir_text
    assert "linalg." not in ir_text


def test_fallback_restores_the_module_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A schedule failure after a stage recorded module attributes (a weight's load-time
    layout, chosen while lowering): the plain pipeline starts from the module as it was,
    its attributes included, and the result is right."""
    from max.compiler.lowering import lower_to_linalg
    from max.compiler.pipelines import arg_layouts
    from max.compiler.targets import cpu as cpu_target

    monkeypatch.delenv("MAX_SCHEDULE_DEBUG")

    def broken(module: ir.Module) -> None:
        module.operation.attributes["mo.half_done"] = ir.UnitAttr.get()
        raise RuntimeError("fails after setting an attribute")

    monkeypatch.setattr(memref_vectorize, "vectorize_memrefs", broken)
    with make_context():
        m = ir.Module.parse(_matmul_text("m", 33, 9))
        lower_to_linalg(m)
        arg_layouts.record(m, "w0", "t")
        records = cpu_target.lower(m)
        assert records[0] == "whole module: fails after setting an attribute"
        assert arg_layouts.layouts(m) == {"w0": "t"}
        assert "mo.half_done" not in m.operation.attributes
