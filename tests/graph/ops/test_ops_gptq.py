"""GPTQ in ``ops.dequantize`` and ``ops.qmatmul`` against a numpy reference written here: random
4-bit codes packed as AutoGPTQ packs ``qweight`` (eight codes per int32 along K), float16
scales, MAX's packed ``uint8`` operand, act-order (``g_idx``) checkpoints; and the errors."""

from __future__ import annotations

import numpy as np
import pytest
from ops_helpers import CPU, build, shared_session, tile_loop_kinds, tt
from mlir import ir

from max.compiler.lowering import lower_to_linalg
from max.dialects.mo import context as mo_context
from max.dialects.mo.opdefs import OPS, TypeRuleError
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import TensorType, ops
from max.graph.quantization import QuantizationConfig, QuantizationEncoding

GPTQ = QuantizationEncoding.GPTQ


def _config(group: int, desc_act: bool = False, **kw: object) -> QuantizationConfig:
    args: dict = {"quant_method": "gptq", "bits": 4, "group_size": group,
                  "desc_act": desc_act, "sym": True, **kw}
    return QuantizationConfig(**args)


class Checkpoint:
    """A random GPTQ layer ``[K, N]``: codes, scales, g_idx, and MAX's packed operand."""

    def __init__(self, k: int, n: int, group: int, desc_act: bool, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.codes = rng.integers(0, 16, (k, n), dtype=np.int64)
        self.scales = rng.uniform(-0.02, 0.02, (k // group, n)).astype(np.float16)
        # An act-order checkpoint quantizes rows in some order, group by group: row
        # order[p] falls in group p // group. Without desc_act the order is the identity.
        order = rng.permutation(k) if desc_act else np.arange(k)
        self.g_idx = np.empty(k, np.int64)
        self.g_idx[order] = np.arange(k) // group
        qweight = np.zeros((k // 8, n), np.int64)
        for j in range(8):  # AutoGPTQ: code of row 8i + j in bits 4j..4j+3 of word i
            qweight |= self.codes[j::8] << (4 * j)
        qweight = qweight.astype(np.uint32).astype("<u4")
        self.packed = np.concatenate([
            qweight.view(np.uint8).reshape(k // 2, n),
            self.scales.astype("<f2").view(np.uint8).reshape(2 * (k // group), n)])
        self.perm_idx = np.argsort(self.g_idx, kind="stable").astype(np.int32)

    def weight(self) -> np.ndarray:
        """The [K, N] float32 weight each row of which the checkpoint means."""
        s = self.scales.astype(np.float32)[self.g_idx]
        return s * (self.codes.astype(np.float32) - np.float32(8))


def _run(types: list[TensorType], fn, *inputs: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    (out,) = shared_session().load(build(types, fn)).execute(*inputs)
    return out.to_numpy()


@pytest.mark.parametrize("group", [32, 64, 128])
@pytest.mark.parametrize("desc_act", [False, True])
def test_dequantize_is_the_checkpoints_weight(group: int, desc_act: bool) -> None:
    c = Checkpoint(2 * group, 24, group, desc_act, seed=group)
    cfg = _config(group, desc_act)
    if desc_act:
        got = _run([tt(DType.uint8, *c.packed.shape), tt(DType.int32, len(c.perm_idx))],
                   lambda x, p: ops.dequantize(GPTQ, x, config=cfg, perm_idx=p),
                   c.packed, c.perm_idx)
        want = c.weight()[c.perm_idx]  # row p is the weight's row perm_idx[p]
    else:
        got = _run([tt(DType.uint8, *c.packed.shape)],
                   lambda x: ops.dequantize(GPTQ, x, config=cfg), c.packed)
        want = c.weight()
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)  # one f32 product each: exact


@pytest.mark.parametrize("group", [32, 64, 128])
@pytest.mark.parametrize("desc_act", [False, True])
def test_qmatmul_matches_numpy(group: int, desc_act: bool) -> None:
    """With desc_act, as MAX's GPTQLinear: qmatmul(lhs[..., perm_idx], packed, perm_idx)."""
    k, n = 2 * group, 72
    c = Checkpoint(k, n, group, desc_act, seed=group + 1)
    cfg = _config(group, desc_act)
    w = c.weight().astype(np.float64)
    packed_t = tt(DType.uint8, *c.packed.shape)
    if desc_act:
        graph = build([tt(DType.float32, "batch", "seq", k), packed_t, tt(DType.int32, k)],
                      lambda x, q, p: ops.qmatmul(GPTQ, cfg, ops.gather(x, p, axis=2), q, p))
    else:
        graph = build([tt(DType.float32, "batch", "seq", k), packed_t],
                      lambda x, q: ops.qmatmul(GPTQ, cfg, x, q))
    model = shared_session().load(graph)
    rng = np.random.default_rng(3)
    for shape in [(2, 3, k), (1, 1, k), (1, 70, k), (0, 4, k)]:
        a = rng.standard_normal(shape).astype(np.float32)
        extra = (c.perm_idx,) if desc_act else ()
        (out,) = model.execute(a, c.packed, *extra)
        got = out.to_numpy()
        assert got.shape == (*shape[:-1], n) and got.dtype == np.float32
        want = a.astype(np.float64) @ w
        scale = np.abs(a).astype(np.float64) @ np.abs(w)
        assert np.all(np.abs(got - want) <= 1e-6 * k * scale + 1e-6)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("desc_act", [False, True])
def test_the_tiled_path_on_one_and_two_threads(desc_act: bool, threads: int) -> None:
    # 16 static rows (the tiled path), 192 columns: three tiles of 64, which two threads
    # split unevenly; the perm gathers the lhs columns before the tiles.
    k, n, group = 128, 192, 64
    c = Checkpoint(k, n, group, desc_act, seed=7)
    types = [tt(DType.float32, 16, k), tt(DType.uint8, *c.packed.shape)]
    if desc_act:
        g = build([*types, tt(DType.int32, k)],
                  lambda x, q, p: ops.qmatmul(GPTQ, _config(group, True), x, q, p))
    else:
        g = build(types, lambda x, q: ops.qmatmul(GPTQ, _config(group), x, q))
    a = np.random.default_rng(8).standard_normal((16, k)).astype(np.float32)
    # With desc_act, as MAX's GPTQLinear: the lhs comes with its columns in perm's order.
    args = (a[:, c.perm_idx], c.packed, c.perm_idx) if desc_act else (a, c.packed)
    (out,) = InferenceSession(num_threads=threads).load(g).execute(*args)
    w = c.weight().astype(np.float64)
    scale = np.abs(a).astype(np.float64) @ np.abs(w)
    assert np.all(np.abs(out.to_numpy() - a.astype(np.float64) @ w) <= 1e-6 * k * scale + 1e-6)


def test_qmatmul_rank2_lhs_and_odd_n() -> None:
    c = Checkpoint(64, 7, 32, False, seed=9)
    a = np.random.default_rng(4).standard_normal((5, 64)).astype(np.float32)
    got = _run([tt(DType.float32, 5, 64), tt(DType.uint8, *c.packed.shape)],
               lambda x, q: ops.qmatmul(GPTQ, _config(32), x, q), a, c.packed)
    np.testing.assert_allclose(got, a @ c.weight(), rtol=1e-5, atol=1e-5)


def test_perm_out_of_range_is_reported() -> None:
    c = Checkpoint(64, 8, 32, True, seed=2)
    bad = c.perm_idx.copy()
    bad[5] = 64
    model = shared_session().load(build(
        [tt(DType.float32, 2, 64), tt(DType.uint8, *c.packed.shape), tt(DType.int32, 64)],
        lambda x, q, p: ops.qmatmul(GPTQ, _config(32, True), x, q, p)))
    a = np.ones((2, 64), np.float32)
    with pytest.raises((IndexError, ValueError), match="perm index out of range"):
        model.execute(a, c.packed, bad)
    bad[5] = -1
    with pytest.raises((IndexError, ValueError), match="perm index out of range"):
        model.execute(a, c.packed, bad)
    (out,) = model.execute(a, c.packed, c.perm_idx)  # the model stays usable
    np.testing.assert_allclose(out.to_numpy(), a @ c.weight()[c.perm_idx], rtol=1e-5, atol=1e-5)


def _lowered(g) -> str:  # type: ignore[no-untyped-def]
    with mo_context.make_context():
        module = ir.Module.parse(g._text())
        lower_to_linalg(module)
        return str(module)


@pytest.mark.parametrize(("rows", "group", "n"), [(1, 128, 64), (3, 32, 96), (8, 64, 32),
                                                   (2, 16, 64)])
def test_decode_rows_read_the_packed_words_in_registers(rows: int, group: int, n: int) -> None:
    # Up to 8 static rows (in passes of 4): each 64 bytes of words decoded as 16 columns'
    # vector of codes, the group's scales applied once (gptq_gemv); against the checkpoint's
    # weight in float64.
    k = 4 * group
    c = Checkpoint(k, n, group, False, seed=rows + group)
    graph = build([tt(DType.float32, 1, rows, k), tt(DType.uint8, *c.packed.shape)],
                  lambda x, q: ops.qmatmul(GPTQ, _config(group), x, q))
    assert "mo.gptq_gemv" in _lowered(graph)
    model = shared_session().load(graph)
    assert model._record.fallbacks == ()  # the f16 scales' conversion included
    a = np.random.default_rng(rows).standard_normal((1, rows, k)).astype(np.float32)
    (out,) = model.execute(a, c.packed)
    got = out.to_numpy()
    w = c.weight().astype(np.float64)
    want = a.astype(np.float64) @ w
    scale = np.abs(a).astype(np.float64) @ np.abs(w)
    assert got.shape == (1, rows, n)
    assert np.all(np.abs(got - want) <= 1e-6 * k * scale + 1e-6)


def test_symbolic_rows_go_in_passes_of_four_then_one_by_one() -> None:
    k, n, group = 256, 64, 64
    c = Checkpoint(k, n, group, False, seed=7)
    graph = build([tt(DType.float32, "batch", "seq", k), tt(DType.uint8, *c.packed.shape)],
                  lambda x, q: ops.qmatmul(GPTQ, _config(group), x, q))
    assert "mo.gptq_gemv" in _lowered(graph)
    model = shared_session().load(graph)
    w = c.weight().astype(np.float64)
    rng = np.random.default_rng(8)
    for shape in [(1, 1, k), (2, 3, k), (1, 9, k), (3, 11, k), (0, 4, k)]:
        a = rng.standard_normal(shape).astype(np.float32)
        (out,) = model.execute(a, c.packed)
        got = out.to_numpy()
        want = a.astype(np.float64) @ w
        scale = np.abs(a).astype(np.float64) @ np.abs(w)
        assert got.shape == (*shape[:-1], n)
        assert np.all(np.abs(got - want) <= 1e-6 * k * scale + 1e-6)


@pytest.mark.parametrize("rows", [1, 3, 8, "seq", 16])
def test_act_order_walks_the_codes_through_the_inverse_permutation(rows) -> None:
    # As MAX's GPTQLinear: qmatmul(lhs[..., perm_idx], packed, perm_idx), weight row p being
    # code row perm_idx[p]. Both paths read the codes in their order, each code's scale row
    # and lhs column found through the inverse permutation: the decode path (up to 8 rows,
    # symbolic rows) in registers, the tiled one (16 rows) with the lhs columns gathered
    # back and the scales gathered by row, all vector code.
    k, n, group = 256, 64, 32
    c = Checkpoint(k, n, group, True, seed=11)
    graph = build([tt(DType.float32, rows, k), tt(DType.uint8, *c.packed.shape),
                   tt(DType.int32, k)],
                  lambda x, q, p: ops.qmatmul(GPTQ, _config(group, True),
                                              ops.gather(x, p, axis=1), q, p))
    assert ("mo.gptq_gemv" in _lowered(graph)) == (rows != 16)
    model = shared_session().load(graph)
    # (the caller's gather of lhs columns, a gather along the last axis, is plain loops)
    assert [f for f in model._record.fallbacks if not f.startswith("gather ")] == []
    w = c.weight().astype(np.float64)
    for m in ([rows] if isinstance(rows, int) else [1, 6, 0]):
        a = np.random.default_rng(m).standard_normal((m, k)).astype(np.float32)
        (out,) = model.execute(a, c.packed, c.perm_idx)
        got = out.to_numpy()
        want = a.astype(np.float64) @ w
        scale = np.abs(a).astype(np.float64) @ np.abs(w)
        assert got.shape == (m, n)
        assert np.all(np.abs(got - want) <= 1e-6 * k * scale + 1e-6)


@pytest.mark.parametrize("rows", [1, 16])
def test_a_perm_that_is_no_permutation_is_reported(rows: int) -> None:
    c = Checkpoint(64, 32, 32, True, seed=5)
    model = shared_session().load(build(
        [tt(DType.float32, rows, 64), tt(DType.uint8, *c.packed.shape), tt(DType.int32, 64)],
        lambda x, q, p: ops.qmatmul(GPTQ, _config(32, True), x, q, p)))
    bad = c.perm_idx.copy()
    bad[3] = bad[4]  # in range, but one row twice and another never
    a = np.ones((rows, 64), np.float32)
    with pytest.raises(ValueError, match=r"perm is not a permutation of \[0, 64\)"):
        model.execute(a, c.packed, bad)
    (out,) = model.execute(a, c.packed, c.perm_idx)  # the model stays usable
    np.testing.assert_allclose(out.to_numpy(), a @ c.weight()[c.perm_idx], rtol=1e-5, atol=1e-5)


def test_more_rows_or_ragged_columns_keep_the_tiled_path() -> None:
    for rows, n, act in ((9, 64, False), (1, 48, False), (9, 64, True)):
        c = Checkpoint(64, n, 32, act, seed=n)
        types = [tt(DType.float32, rows, 64), tt(DType.uint8, *c.packed.shape)]
        if act:
            g = build([*types, tt(DType.int32, 64)],
                      lambda x, q, p: ops.qmatmul(GPTQ, _config(32, True), x, q, p))
        else:
            g = build(types, lambda x, q: ops.qmatmul(GPTQ, _config(32), x, q))
        assert "mo.gptq_gemv" not in _lowered(g)


def test_qmatmul_decodes_column_tiles_never_the_whole_weight() -> None:
    k = n = 4096
    rows = k // 2 + 2 * (k // 128)
    g = build([tt(DType.float32, 16, k), tt(DType.uint8, rows, n)],
              lambda x, q: ops.qmatmul(GPTQ, _config(128), x, q))
    with mo_context.make_context():
        module = ir.Module.parse(g._text())
        lower_to_linalg(module)
        text = str(module)
    assert "tensor<4096x64xf32>" in text  # one tile of 64 weight columns
    assert "tensor<32x4096xf32>" in text  # the scales, one per 128 rows
    assert "4096x4096xf32" not in text


def test_the_schedule_vectorizes_the_decoding() -> None:
    g = build([tt(DType.float32, 32, 256), tt(DType.uint8, 136, 128)],
              lambda x, q: ops.qmatmul(GPTQ, _config(64), x, q))
    kinds = tile_loop_kinds(g)
    # The decoding (it reads the codes across their rows: the transpose schedule's 16x16
    # blocks), the accumulators' fill (CSE'd into one) and the two matmuls.
    assert kinds == [("linalg.fill", "elementwise"), ("linalg.generic", "transpose"),
                     ("linalg.matmul", "matmul"), ("linalg.matmul", "matmul")]


# -- errors -----------------------------------------------------------------------------------


def _error(types: list[TensorType], fn, exc: type = ValueError) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(exc) as e:
        build(types, fn)
    return str(e.value)


F32, U8 = DType.float32, DType.uint8
# K = 256 at group 128: 128 rows of codes + 4 rows of scales.
_A, _W = tt(F32, 2, 256), tt(U8, 132, 16)


def _qm(cfg: object):  # type: ignore[no-untyped-def]
    return lambda a, w: ops.qmatmul(GPTQ, cfg, a, w)  # type: ignore[arg-type]


def test_config_errors() -> None:
    msg = _error([_A, _W], _qm(None))
    assert "qmatmul" in msg and "gptq needs a QuantizationConfig" in msg
    msg = _error([_A, _W], _qm(_config(128, bits=8)))
    assert "qmatmul" in msg and "gptq with bits=8 is not supported" in msg
    msg = _error([_A, _W], _qm(_config(128, bits=3)))
    assert "gptq with bits=3 is not supported" in msg
    msg = _error([_A, _W], _qm(_config(128, sym=False)))
    assert "gptq with sym=False is not supported" in msg
    msg = _error([_A, _W], _qm(_config(128, quant_method="awq")))
    assert "quant_method 'gptq'" in msg and "'awq'" in msg
    msg = _error([_A, _W], _qm(_config(12)))
    assert "group_size=12" in msg and "multiple of 8" in msg
    msg = _error([_A, _W], _qm("gptq"), TypeError)
    assert "config must be a QuantizationConfig" in msg


def test_shape_and_dtype_errors() -> None:
    cfg = _config(128)
    msg = _error([tt(F32, 2, 200), _W], _qm(cfg))
    assert "K = 200" in msg and "not a multiple of group_size 128" in msg and "[2, 200]" in msg
    msg = _error([_A, tt(U8, 130, 16)], _qm(cfg))
    assert "qmatmul" in msg and "[130, 16]" in msg and "needs 132 rows" in msg
    msg = _error([_A, tt(DType.int8, 132, 16)], _qm(cfg))
    assert "gptq packed weight" in msg and "int8" in msg and "must be uint8" in msg
    msg = _error([_A, tt(U8, 132, 16, 1)], _qm(cfg))
    assert "rank 2" in msg and "[132, 16, 1]" in msg
    msg = _error([_A, tt(U8, 132, "n")], _qm(cfg))
    assert "static dims" in msg
    msg = _error([tt(DType.float64, 2, 256), _W], _qm(cfg))
    assert "lhs must be float32" in msg and "float64" in msg
    msg = _error([tt(F32, 2, "k"), _W], _qm(cfg))
    assert "static K" in msg
    msg = _error([tt(U8, 130, 16)], lambda x: ops.dequantize(GPTQ, x, config=cfg))
    assert "dequantize" in msg and "whole groups of 66" in msg


def test_perm_errors() -> None:
    on, off = _config(128, True), _config(128)
    msg = _error([_A, _W], _qm(on))
    assert "desc_act=True needs perm_idx" in msg
    msg = _error([_A, _W, tt(DType.int32, 256)],
                 lambda a, w, p: ops.qmatmul(GPTQ, off, a, w, p))
    assert "perm_idx but config.desc_act is False" in msg
    msg = _error([_A, _W, tt(F32, 256)], lambda a, w, p: ops.qmatmul(GPTQ, on, a, w, p))
    assert "perm_idx must be int32 or int64 of shape [256]" in msg and "float32" in msg
    msg = _error([_A, _W, tt(DType.int32, 255)], lambda a, w, p: ops.qmatmul(GPTQ, on, a, w, p))
    assert "[255]" in msg
    msg = _error([_A, _W, tt(DType.int32, 256), tt(DType.int32, 256)],
                 lambda a, w, p, r: ops.qmatmul(GPTQ, on, a, w, p, r))
    assert "got 3 rhs tensors" in msg


def test_verifier_rules() -> None:
    """The MO rules (what the verifier applies to files) check the packed operand too."""
    a, w = TensorType(F32, [2, 256], CPU), TensorType(U8, [132, 16], CPU)
    sig = OPS["mo.gptq_qmatmul"].infer("mo.gptq_qmatmul", [a, w], {"group_size": 128})
    assert [int(d) for d in sig.shape] == [2, 16]
    with pytest.raises(TypeRuleError, match="K dims differ"):
        OPS["mo.gptq_qmatmul"].infer("mo.gptq_qmatmul", [TensorType(F32, [2, 128], CPU), w],
                                     {"group_size": 128})
    with pytest.raises(TypeRuleError, match="whole number of 34-row groups"):
        OPS["mo.gptq_qmatmul"].infer("mo.gptq_qmatmul", [a, w], {"group_size": 64})
    with pytest.raises(TypeRuleError, match="positive multiple of 8"):
        OPS["mo.gptq_dequantize"].infer("mo.gptq_dequantize", [w], {"group_size": 0})
    p = TensorType(DType.int16, [256], CPU)
    with pytest.raises(TypeRuleError, match="perm must be int32 or int64"):
        OPS["mo.gptq_qmatmul_perm"].infer("mo.gptq_qmatmul_perm", [a, w, p], {"group_size": 128})
