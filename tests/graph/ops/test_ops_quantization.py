"""``max.graph.quantization``, ``ops.dequantize`` and ``ops.qmatmul`` against the ``gguf``
package: dequantization bit for bit, qmatmul against numpy's matmul by gguf's dequantized
weight, and the builders' errors."""

from __future__ import annotations

import re

import gguf
import numpy as np
import pytest
from ops_helpers import CPU, build, shared_session, tile_loop_kinds, tt
from mlir import ir

from max.compiler.lowering import lower_to_linalg
from max.dialects.mo import context as mo_context
from max.dialects.mo.opdefs import OPS, TypeRuleError
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import Graph, TensorType, ops
from max.graph.quantization import BlockParameters, QuantizationConfig, QuantizationEncoding

Q = QuantizationEncoding
GGUF_ENCODINGS = [Q.Q4_0, Q.Q4_1, Q.Q8_0, Q.Q4_K, Q.Q5_K, Q.Q6_K]
# The float16 fields of each block (scale, min): kept finite for matmul data.
_HALVES = {Q.Q4_0: (0,), Q.Q4_1: (0, 2), Q.Q8_0: (0,), Q.Q4_K: (0, 2), Q.Q5_K: (0, 2),
           Q.Q6_K: (208,)}


def _gguf_type(enc: QuantizationEncoding) -> gguf.GGMLQuantizationType:
    return gguf.GGMLQuantizationType[enc.value]


def _blocks(enc: QuantizationEncoding, rows: int, nblocks: int, seed: int = 0) -> np.ndarray:
    """Random blocks with finite float16 scales (gguf has no quantizer for the K-quants)."""
    rng = np.random.default_rng(seed)
    b = rng.integers(0, 256, (rows, nblocks, enc.block_size), dtype=np.uint8)
    for at in _HALVES[enc]:
        scale = rng.uniform(-0.05, 0.05, (rows, nblocks)).astype(np.float16)
        b[..., at:at + 2] = scale[..., None].view(np.uint8)
    return b.reshape(rows, nblocks * enc.block_size)


def _run(types: list[TensorType], fn, *inputs: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    (out,) = shared_session().load(build(types, fn)).execute(*inputs)
    return out.to_numpy()


# -- the encodings ------------------------------------------------------------------------------


@pytest.mark.parametrize("enc", GGUF_ENCODINGS)
def test_block_parameters_are_ggufs(enc: QuantizationEncoding) -> None:
    per_block, nbytes = gguf.GGML_QUANT_SIZES[_gguf_type(enc)]
    assert enc.block_parameters == BlockParameters(per_block, nbytes)
    assert (enc.elements_per_block, enc.block_size) == (per_block, nbytes)
    assert enc.is_gguf
    assert enc.name == enc.value.lower()


def test_gptq_and_config() -> None:
    assert not Q.GPTQ.is_gguf
    assert Q.GPTQ.name == "gptq"
    config = QuantizationConfig(quant_method="gptq", bits=4, group_size=128)
    assert (config.desc_act, config.sym) == (False, False)
    assert Q("Q4_K") is Q.Q4_K


# -- dequantize -------------------------------------------------------------------------------


@pytest.mark.parametrize("enc", GGUF_ENCODINGS)
def test_dequantize_is_ggufs_bit_for_bit(enc: QuantizationEncoding) -> None:
    # Every byte pattern: inf/nan/subnormal float16 scales, all quant codes.
    raw = np.random.default_rng(1).integers(0, 256, (2, 3, 2 * enc.block_size), dtype=np.uint8)
    got = _run([tt(DType.uint8, *raw.shape)], lambda x: ops.dequantize(enc, x), raw)
    with np.errstate(invalid="ignore", over="ignore"):
        want = gguf.quants.dequantize(raw, _gguf_type(enc))
    assert got.dtype == np.float32 and got.shape == (2, 3, 2 * enc.elements_per_block)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("enc", [Q.Q4_0, Q.Q4_1, Q.Q8_0])
def test_dequantize_of_ggufs_quantization(enc: QuantizationEncoding) -> None:
    w = np.random.default_rng(2).standard_normal((5, 96)).astype(np.float32)
    raw = gguf.quants.quantize(w, _gguf_type(enc))
    got = _run([tt(DType.uint8, "rows", raw.shape[1])], lambda x: ops.dequantize(enc, x), raw)
    want = gguf.quants.dequantize(raw, _gguf_type(enc))
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    np.testing.assert_allclose(got, w, atol=0.5)  # and it is w, quantized


@pytest.mark.parametrize("enc", [Q.Q4_0, Q.Q6_K])
def test_dequantize_ranks_and_symbolic_rows(enc: QuantizationEncoding) -> None:
    nb = enc.block_size
    rng = np.random.default_rng(6)
    cases = [((2 * nb,), [(2 * nb,)]), ((1, nb), [(1, nb)]),
             (("a", 3, nb), [(2, 3, nb), (0, 3, nb)])]
    for dims, shapes in cases:
        model = shared_session().load(build([tt(DType.uint8, *dims)],
                                      lambda x: ops.dequantize(enc, x)))
        for shape in shapes:
            raw = rng.integers(0, 256, shape, dtype=np.uint8)
            (out,) = model.execute(raw)
            got = out.to_numpy()
            assert got.shape == (*shape[:-1], shape[-1] // nb * enc.elements_per_block)
            if raw.size:  # gguf cannot reshape an empty array
                with np.errstate(invalid="ignore", over="ignore"):
                    want = gguf.quants.dequantize(raw, _gguf_type(enc))
                np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_dequantize_symbolic_leading_dim_type() -> None:
    g = build([tt(DType.uint8, "batch", 4, 144)], lambda x: ops.dequantize(Q.Q4_K, x))
    assert "!mo.tensor<f32, [\"batch\", 4, 256]" in str(g).replace("'", '"')


# -- qmatmul ----------------------------------------------------------------------------------


@pytest.mark.parametrize("enc", GGUF_ENCODINGS)
@pytest.mark.parametrize(("lead", "n"), [((3,), 70), ((2, 1), 64), ((1,), 7), ((5,), 1)])
def test_qmatmul_matches_numpy_on_ggufs_weight(enc: QuantizationEncoding, lead: tuple[int, ...],
                                               n: int) -> None:
    nblocks = 2
    k = nblocks * enc.elements_per_block
    raw = _blocks(enc, n, nblocks, seed=n)
    a = np.random.default_rng(3).standard_normal((*lead, k)).astype(np.float32)
    got = _run([tt(DType.float32, *a.shape), tt(DType.uint8, *raw.shape)],
               lambda x, w: ops.qmatmul(enc, None, x, w), a, raw)
    w = gguf.quants.dequantize(raw, _gguf_type(enc)).astype(np.float64)
    want = a.astype(np.float64) @ w.T
    assert got.shape == (*lead[:-1], lead[-1], n) and got.dtype == np.float32
    # f32 accumulation over k terms: relative to the size of the terms, not of the sum.
    scale = np.abs(a).astype(np.float64) @ np.abs(w).T
    assert np.all(np.abs(got - want) <= 1e-6 * k * scale + 1e-6)


def test_qmatmul_symbolic_rows() -> None:
    enc = Q.Q4_0
    w = np.random.default_rng(4).standard_normal((40, 64)).astype(np.float32)
    raw = gguf.quants.quantize(w, gguf.GGMLQuantizationType.Q4_0)
    model = shared_session().load(build([tt(DType.float32, "batch", "seq", 64),
                                   tt(DType.uint8, 40, raw.shape[1])],
                                  lambda x, w: ops.qmatmul(enc, None, x, w)))
    deq = gguf.quants.dequantize(raw, gguf.GGMLQuantizationType.Q4_0)
    for shape in [(2, 3, 64), (1, 1, 64), (0, 5, 64)]:
        a = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
        (out,) = model.execute(a, raw)
        np.testing.assert_allclose(out.to_numpy(), a @ deq.T, rtol=1e-5, atol=1e-5)


def test_qmatmul_decodes_tiles_never_the_whole_weight() -> None:
    g = build([tt(DType.float32, 32, 4096), tt(DType.uint8, 4096, 4096 // 32 * 18)],
              lambda x, w: ops.qmatmul(Q.Q4_0, None, x, w))
    with mo_context.make_context():
        module = ir.Module.parse(g._text())
        lower_to_linalg(module)
        text = str(module)
    assert "tensor<64x4096xf32>" in text  # one tile of 64 weight rows
    assert "tensor<4096x128xf32>" in text  # the scales, one per 32 elements
    assert "4096x4096xf32" not in text


_SESSIONS: dict[int, InferenceSession] = {}


def _session(threads: int) -> InferenceSession:
    if threads not in _SESSIONS:
        _SESSIONS[threads] = InferenceSession(num_threads=threads)
    return _SESSIONS[threads]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("enc", [Q.Q4_1, Q.Q6_K])
@pytest.mark.parametrize("n", [64, 128, 192])  # one tile (no loop), two, three (split unevenly)
def test_qmatmul_tiles_on_one_and_two_threads(n: int, enc: QuantizationEncoding,
                                              threads: int) -> None:
    k = 2 * enc.elements_per_block
    raw = _blocks(enc, n, 2, seed=n)
    a = np.random.default_rng(n).standard_normal((16, k)).astype(np.float32)
    g = build([tt(DType.float32, 16, k), tt(DType.uint8, *raw.shape)],
              lambda x, w: ops.qmatmul(enc, None, x, w))
    (out,) = _session(threads).load(g).execute(a, raw)
    w = gguf.quants.dequantize(raw, _gguf_type(enc)).astype(np.float64)
    scale = np.abs(a).astype(np.float64) @ np.abs(w).T
    assert np.all(np.abs(out.to_numpy() - a.astype(np.float64) @ w.T) <= 1e-6 * k * scale + 1e-6)


def _cpu_ir(g: Graph, threads: int) -> str:
    """The graph through the CPU target up to its kernels' outlining (OpenMP made)."""
    from max.compiler.targets import cpu as cpu_target

    with mo_context.make_context():
        module = ir.Module.parse(g._text())
        lower_to_linalg(module)
        cpu_target.CPU.run(module, until="mo-outline-kernels", threads=threads)
        return str(module)


def test_qmatmul_tiles_are_shared_by_the_threads() -> None:
    # 16 rows (the tiled path), 3 tiles of 64 weight rows: one OpenMP loop over the tiles,
    # each thread a range of them; one thread runs them as a plain loop.
    g = build([tt(DType.float32, 16, 64), tt(DType.uint8, 192, 36)],
              lambda x, w: ops.qmatmul(Q.Q4_0, None, x, w))
    two = _cpu_ir(g, threads=2)
    assert re.search(r"omp.loop_nest \(%\w+\) : index = \(%c0\) to \(%c3\) step \(%c1\)", two)
    assert "omp." not in _cpu_ir(g, threads=1)


# -- errors -----------------------------------------------------------------------------------


def _error(types: list[TensorType], fn) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError) as e:
        build(types, fn)
    return str(e.value)


def test_dequantize_errors() -> None:
    msg = _error([tt(DType.uint8, 3, 20)], lambda x: ops.dequantize(Q.Q4_0, x))
    assert "dequantize" in msg and "q4_0" in msg and "[3, 20]" in msg and "18-byte" in msg
    msg = _error([tt(DType.int8, 3, 18)], lambda x: ops.dequantize(Q.Q4_0, x))
    assert "dequantize" in msg and "q4_0" in msg and "int8" in msg and "[3, 18]" in msg
    msg = _error([tt(DType.uint8, 3, "n")], lambda x: ops.dequantize(Q.Q6_K, x))
    assert "q6_k" in msg and "static" in msg
    msg = _error([tt(DType.uint8, 3, 16)], lambda x: ops.dequantize(Q.GPTQ, x))
    assert "dequantize" in msg and "gptq needs a QuantizationConfig" in msg


def test_qmatmul_errors() -> None:
    f32, u8 = DType.float32, DType.uint8
    msg = _error([tt(f32, 2, 64), tt(u8, 8, 18)], lambda a, w: ops.qmatmul(Q.Q4_0, None, a, w))
    assert "qmatmul" in msg and "K dims differ" in msg and "[2, 64]" in msg and "[8, 18]" in msg
    msg = _error([tt(f32, 2, 32), tt(u8, 8, 19)], lambda a, w: ops.qmatmul(Q.Q4_0, None, a, w))
    assert "qmatmul" in msg and "q4_0" in msg and "[8, 19]" in msg
    msg = _error([tt(f32, 2, 32), tt(f32, 8, 18)], lambda a, w: ops.qmatmul(Q.Q4_0, None, a, w))
    assert "qmatmul" in msg and "float32" in msg and "uint8" in msg
    msg = _error([tt(DType.float64, 2, 32), tt(u8, 8, 18)],
                 lambda a, w: ops.qmatmul(Q.Q4_0, None, a, w))
    assert "lhs must be float32" in msg and "float64" in msg
    msg = _error([tt(f32, 32), tt(u8, 8, 18)], lambda a, w: ops.qmatmul(Q.Q4_0, None, a, w))
    assert "rank" in msg
    msg = _error([tt(f32, 2, 32), tt(u8, 2, 8, 18)],
                 lambda a, w: ops.qmatmul(Q.Q4_0, None, a, w))
    assert "rank 2" in msg
    with pytest.raises(TypeError, match="config must be a QuantizationConfig"):
        build([tt(f32, 2, 32), tt(u8, 8, 18)], lambda a, w: ops.qmatmul(Q.Q4_0, "gptq", a, w))
    msg = _error([tt(f32, 2, 32), tt(u8, 8, 18), tt(DType.int64, 32)],
                 lambda a, w, p: ops.qmatmul(Q.Q4_0, None, a, w, p))
    assert "qmatmul" in msg and "q4_0" in msg and "one rhs tensor" in msg


def test_qmatmul_ignores_a_config_for_gguf_encodings() -> None:
    """As MAX: the GGUF blocks hold their own parameters."""
    config = QuantizationConfig("gptq", 4, 128)
    t = build([tt(DType.float32, 2, 32), tt(DType.uint8, 8, 18)],
              lambda a, w: ops.qmatmul(Q.Q4_0, config, a, w)).output_types[0]
    assert [int(d) for d in t.shape] == [2, 8]


def test_verifier_rule_rejects_partial_blocks() -> None:
    """The MO rule (what the verifier applies to files) checks the blocks too."""
    x = TensorType(DType.uint8, [4, 100], CPU)
    with pytest.raises(TypeRuleError, match="mo.dequantize: q4_k operand x"):
        OPS["mo.dequantize"].infer("mo.dequantize", [x], {"encoding": "q4_k"})
    a, w = TensorType(DType.float32, [2, 256], CPU), TensorType(DType.uint8, [3, 144], CPU)
    with pytest.raises(TypeRuleError, match="unknown|not one of"):
        OPS["mo.qmatmul"].infer("mo.qmatmul", [a, w], {"encoding": "q3_k"})
    sig = OPS["mo.qmatmul"].infer("mo.qmatmul", [a, w], {"encoding": "q4_k"})
    assert [int(d) for d in sig.shape] == [2, 3]


def test_graph_with_qmatmul_round_trips(tmp_path) -> None:  # type: ignore[no-untyped-def]
    g = build([tt(DType.float32, 1, 32), tt(DType.uint8, 4, 34)],
              lambda a, w: ops.qmatmul(Q.Q8_0, None, a, w))
    g.save(tmp_path / "g.mlirbc")
    loaded = Graph("g", path=tmp_path / "g.mlirbc")
    assert "mo.qmatmul" in str(loaded)


@pytest.mark.parametrize("enc", GGUF_ENCODINGS)
@pytest.mark.parametrize("op", ["dequantize", "qmatmul"])
def test_the_schedule_vectorizes_the_tile_loop(enc: QuantizationEncoding, op: str) -> None:
    """Every linalg op in the tile loop is one the CPU schedule tiles and vectorizes: the
    element decoding (elementwise) and the matmuls, none fused into unscheduled loops."""
    from max.compiler.lowering.quantization import TILE_LOOP
    from max.compiler.pipelines import cpu_schedule

    assert TILE_LOOP == cpu_schedule.SCHEDULED_LOOP
    k = 2 * enc.elements_per_block
    w = tt(DType.uint8, 128, 2 * enc.block_size)
    g = (build([w], lambda q: ops.dequantize(enc, q)) if op == "dequantize" else
         build([tt(DType.float32, 32, k), w], lambda x, q: ops.qmatmul(enc, None, x, q)))
    kinds = [kind for _, kind in tile_loop_kinds(g)]
    want = ["elementwise"] if op == "dequantize" else ["elementwise"] * 2 + ["matmul"] * 2
    assert kinds == want  # the decoding and its fills; the matmuls
