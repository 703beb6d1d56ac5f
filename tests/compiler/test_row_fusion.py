"""Row groups (compiler/pipelines/row_fusion.py): softmax, logsoftmax and layer norm over the
last axis run every pass on one row at a time, in one loop (one forall when threaded).

Numbers against numpy (float64 references) on odd, symbolic and 16-bit shapes; the IR: one
exp per element, one row loop, no full-size intermediate."""

from __future__ import annotations

import re

import numpy as np
import pytest
from mo_helpers import Compiled, check, mo_type, one_op_module, scheduled_ir


# A schedule failure raises here instead of silently compiling plain loops.
pytestmark = pytest.mark.usefixtures("schedule_debug")


def _softmax(x: np.ndarray, log: bool = False) -> np.ndarray:
    x = x.astype(np.float64)
    y = x - x.max(axis=-1, keepdims=True)
    if log:
        return y - np.log(np.exp(y).sum(axis=-1, keepdims=True))
    e = np.exp(y)
    return e / e.sum(axis=-1, keepdims=True)


def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    x = x.astype(np.float64)
    mean, var = x.mean(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * g + b


def _concrete(dims: tuple, sizes: dict[str, int]) -> tuple[int, ...]:
    return tuple(sizes[d] if isinstance(d, str) else d for d in dims)


SHAPES = [((1, 1), {}), ((7, 65), {}), ((3, 5, 129), {}), ((2, 4097), {}), ((1, 12, 5, 7), {}),
          ((13, 64), {}), (("n", 100), {"n": 9}), ((3, "k"), {"k": 67}), ((512, 4096), {})]


@pytest.mark.parametrize("dims,sizes", SHAPES)
@pytest.mark.parametrize("op", ["softmax", "logsoftmax"])
def test_softmax_matches_numpy(op: str, dims: tuple, sizes: dict[str, int]) -> None:
    shape = _concrete(dims, sizes)
    text = one_op_module(op, [("f32", dims)], ("f32", dims), f"axis = {len(dims) - 1} : i64")
    x = (np.random.default_rng(len(shape)).standard_normal(shape) * 4).astype(np.float32)
    (got,), _ = Compiled(text)([x], [(shape, "float32")])
    check(got, _softmax(x, op == "logsoftmax").astype(np.float32), rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("dims,sizes", SHAPES)
def test_layer_norm_matches_numpy(dims: tuple, sizes: dict[str, int]) -> None:
    shape = _concrete(dims, sizes)
    t, g = mo_type("f32", dims), mo_type("f32", dims[-1:])
    text = (f"func.func @g(%x: {t}, %w: {g}, %b: {g}) -> {t} attributes {{mo.graph}} {{\n"
            f'  %0 = "mo.layer_norm"(%x, %w, %b) {{epsilon = 1.0e-05 : f32}} : ({t}, {g}, {g})'
            f" -> {t}\n  func.return %0 : {t}\n}}\n")
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    w, b = (rng.standard_normal(shape[-1:]).astype(np.float32) for _ in range(2))
    (got,), _ = Compiled(text)([x, w, b], [(shape, "float32")])
    check(got, _layer_norm(x, w, b).astype(np.float32), rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("op", ["softmax", "logsoftmax"])
def test_masked_and_nan_rows(op: str) -> None:
    """-inf (a mask) gives exactly 0 (-inf for logsoftmax); a row with a NaN is NaN, as in
    numpy (the row max skips NaN; exp(NaN - max) spreads it through the sum); a huge spread
    is fine."""
    x = np.zeros((4, 70), np.float32)
    x[0, 5:] = -np.inf
    x[1, 3] = np.nan
    x[2] = np.linspace(-200, 50, 70)
    x[3, 0] = 3e38
    text = one_op_module(op, [("f32", (4, 70))], ("f32", (4, 70)), "axis = 1 : i64")
    (got,), _ = Compiled(text)([x], [((4, 70), "float32")])
    with np.errstate(invalid="ignore", divide="ignore"):
        want = _softmax(x, op == "logsoftmax").astype(np.float32)
    assert (got[0, 5:] == (0 if op == "softmax" else -np.inf)).all()
    assert np.isnan(got[1]).all()
    check(got, want, rtol=1e-5, atol=1e-6)


def _exp_sites(ir_text: str) -> int:
    """Copies of the exp polynomial: each ends in one ``arith.shli`` (its 2^n)."""
    return len(re.findall(r"arith\.shli", ir_text))


@pytest.mark.parametrize("op", ["softmax", "logsoftmax"])
def test_one_exp_per_element_in_one_row_loop(op: str) -> None:
    shape = (512, 4096)
    text = one_op_module(op, [("f32", shape)], ("f32", shape), "axis = 1 : i64")
    lowered = scheduled_ir(text)
    # 4096 = 64 full vectors: no remainder, so one exp code site, run once per element.
    assert _exp_sites(lowered) == 1
    assert "math.exp" not in lowered  # the lowering's own polynomial, not libm's
    assert lowered.count("scf.forall") == 1  # the whole softmax forks once
    # No full-size intermediate, and no row buffer either: softmax's exp goes straight into
    # the output row (row_output.py), which the last pass scales in place.
    allocs = "".join(line for line in lowered.splitlines() if "memref.alloc" in line)
    assert "memref<512x4096xf32>" not in allocs and "memref<1x4096xf32>" not in allocs
    # The second pass prefetches the next row: a line per 16 columns of each 64-wide step.
    # Input, output and the next row (16 KiB each) fit in L1 together: prefetcht0.
    assert lowered.count("memref.prefetch") == 4
    assert lowered.count("locality<3>") == 4
    if op == "softmax":
        # Three passes: max, exp (its sum in the same loop: sibling_loops.py), scale.
        rows = lowered.split("scf.for %arg3 = %c0 to %c256 step %c1")[1]
        assert len(re.findall(r"scf\.for %arg\d+ = %c0 to %c4096 step %c64", rows)) == 3
        # The running max is a compare and select (one vmaxps, max_select.py), started at
        # -inf; only the merge after the loop is a maxnumf.
        assert lowered.count("arith.cmpf ogt") == 1 and lowered.count("maxnumf") == 1


def test_layer_norm_is_one_row_loop() -> None:
    t, g = mo_type("f32", (512, 4096)), mo_type("f32", (4096,))
    text = (f"func.func @g(%x: {t}, %w: {g}, %b: {g}) -> {t} attributes {{mo.graph}} {{\n"
            f'  %0 = "mo.layer_norm"(%x, %w, %b) {{epsilon = 1.0e-05 : f32}} : ({t}, {g}, {g})'
            f" -> {t}\n  func.return %0 : {t}\n}}\n")
    lowered = scheduled_ir(text)
    assert lowered.count("scf.forall") == 1
    assert "memref.alloc() {alignment = 64 : i64} : memref<512x4096xf32>" not in lowered
    # 1 / sqrt(var + eps) once per row: hoisted out of the vector loop.
    assert lowered.count("math.sqrt") == 1
    # Two passes over each row: both moments in one loop (sibling_loops.py), then the
    # normalisation, which prefetches the next row into L2 (gamma and beta fill L1).
    rows = lowered.split("scf.for %arg5 = %c0 to %c256 step %c1")[1]
    assert len(re.findall(r"scf\.for %arg\d+ = %c0 to %c4096 step %c64", rows)) == 2
    assert lowered.count("locality<2>") == 4


@pytest.mark.parametrize("offset,first", [(0.0, None), (1e3, None), (-3e4, None),
                                          (1e3, 50.0), (0.0, 1e4)])
def test_layer_norm_moments_are_accurate(offset: float, first: float | None) -> None:
    """The one-pass moments are sums about each row's first element: accurate for rows far
    from 0 (the plain sums of x and x^2 would cancel there), with an outlier first, and
    for constant rows (a variance of exactly 0, never negative)."""
    shape = (6, 1000)
    t, g = mo_type("f32", shape), mo_type("f32", shape[-1:])
    text = (f"func.func @g(%x: {t}, %w: {g}, %b: {g}) -> {t} attributes {{mo.graph}} {{\n"
            f'  %0 = "mo.layer_norm"(%x, %w, %b) {{epsilon = 1.0e-05 : f32}} : ({t}, {g}, {g})'
            f" -> {t}\n  func.return %0 : {t}\n}}\n")
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(shape) + offset).astype(np.float32)
    if first is not None:
        x[:, 0] = offset + first
    x[5] = offset  # a constant row: normalises to beta
    w, b = (rng.standard_normal(shape[-1:]).astype(np.float32) for _ in range(2))
    (got,), _ = Compiled(text)([x, w, b], [(shape, "float32")])
    want = _layer_norm(x, w, b)
    check(got[:5], want[:5].astype(np.float32), rtol=1e-3, atol=3e-3 if abs(offset) > 1e4 else 2e-4)
    check(got[5], b, rtol=0, atol=1e-6 * (1 + abs(offset)))


def test_masked_softmax_producer_joins_the_row_loop() -> None:
    """where(mask, x, fill) feeds max and exp: fused into the rows, never a full tensor."""
    shape = (64, 300)
    t, m = mo_type("f32", shape), mo_type("i1", shape)
    text = (f"func.func @g(%x: {t}, %m: {m}, %n: {t}) -> {t} attributes {{mo.graph}} {{\n"
            f'  %0 = "mo.where"(%m, %x, %n) : ({m}, {t}, {t}) -> {t}\n'
            f'  %1 = "mo.softmax"(%0) {{axis = 1 : i64}} : ({t}) -> {t}\n'
            f"  func.return %1 : {t}\n}}\n")
    lowered = scheduled_ir(text)
    assert "memref<64x300xf32>" not in "".join(
        line for line in lowered.splitlines() if "memref.alloc" in line)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(np.float32)
    mask = rng.random(shape) < 0.7
    fill = np.full(shape, -1e9, np.float32)
    (got,), _ = Compiled(text)([x, mask, fill], [(shape, "float32")])
    check(got, _softmax(np.where(mask, x, fill)).astype(np.float32), rtol=1e-5, atol=1e-7)


def _three_layers(x, w1, w2, w3):
    from max.graph import ops

    for w in (w1, w2, w3):
        x = ops.softmax(x @ w)
    return x


def test_repeated_groups_are_transformed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three layers of softmax(x @ w) on symbolic rows: a layer's row group that prints as
    an earlier one's takes its result, with its own schedule ids (renumbered back), and every
    row is right."""
    from mo_helpers import graph_text, record_scripts

    applied = record_scripts(monkeypatch)
    text = graph_text(_three_layers, [("n", 64)] + [(64, 64)] * 3)
    assert scheduled_ir(text).count("mo.row_loop") == 3
    # The third layer's ops come in another order (its sum's fill first): transformed anew.
    assert sum("mo.row_loop" in s for s in applied) == 2, len(applied)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((37, 64)).astype(np.float32)
    ws = [(rng.standard_normal((64, 64)) / 4).astype(np.float32) for _ in range(3)]
    compiled = Compiled(text)
    assert not compiled.fallbacks  # each fused op found by its own id: scheduled, vectorized
    (got,), _ = compiled([x, *ws], [((37, 64), "float32")])
    want = x
    for w in ws:
        want = _softmax(want.astype(np.float64) @ w)
    check(got, want.astype(np.float32), rtol=2e-5, atol=1e-6)
