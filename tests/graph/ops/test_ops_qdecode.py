"""``ops.qmatmul`` with few lhs rows (decode: ``compiler/lowering/quant_gemv.py``) and with many
(the tiled path), against numpy's matmul by ``gguf``'s dequantized weight, on weights that
``gguf`` quantized, at odd weight row counts (partial chunks) and lhs rows on both sides of the
path's limit."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
from ops_helpers import build, shared_session, tt
from mlir import ir

from max.compiler.lowering import lower_to_linalg
from max.compiler.lowering.quant_gemv import GROUP, LOOP_ATTR, MAX_ROWS
from max.dialects.mo import context as mo_context
from max.dtype import DType
from max.graph import ops
from max.graph.quantization import QuantizationEncoding

Q = QuantizationEncoding


def _weight(enc: QuantizationEncoding, n: int, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n, k)).astype(np.float32)
    return gguf.quants.quantize(w, gguf.GGMLQuantizationType[enc.value])


def _check(enc: QuantizationEncoding, lead: tuple[int, ...], n: int, k: int) -> None:
    raw = _weight(enc, n, k, seed=n + k)
    a = np.random.default_rng(len(lead) + n).standard_normal((*lead, k)).astype(np.float32)
    g = build([tt(DType.float32, *a.shape), tt(DType.uint8, *raw.shape)],
              lambda x, w: ops.qmatmul(enc, None, x, w))
    (out,) = shared_session().load(g).execute(a, raw)
    got = out.to_numpy()
    w = gguf.quants.dequantize(raw, gguf.GGMLQuantizationType[enc.value]).astype(np.float64)
    want = a.astype(np.float64) @ w.T
    assert got.shape == (*lead, n) and got.dtype == np.float32
    # f32 sums of k products: bounded relative to the size of the terms, not of the sum.
    scale = np.abs(a).astype(np.float64) @ np.abs(w).T
    assert np.all(np.abs(got - want) <= 2e-7 * k * scale + 1e-6), np.abs(got - want).max()


@pytest.mark.parametrize("enc", [Q.Q4_1, Q.Q8_0, Q.Q4_0])
@pytest.mark.parametrize("m", [1, 3, 8, 128])
@pytest.mark.parametrize("n", [1, 7, 193])
def test_qmatmul_rows_match_numpy(enc: QuantizationEncoding, m: int, n: int) -> None:
    _check(enc, (m,), n, 96)


@pytest.mark.parametrize(("enc", "lead", "n", "k"), [
    (Q.Q4_1, (1,), 1536, 576),  # SmolLM2's gate/up at decode
    (Q.Q4_1, (8,), 576, 1536),  # its down projection, 8 rows
    (Q.Q8_0, (1, 1), 300, 576),  # the head's encoding, a batch of one
    (Q.Q4_1, (2, 5), 33, 576),  # 10 rows: the tiled path
    (Q.Q4_0, (MAX_ROWS,), 17, 64),  # the most rows this path takes
    (Q.Q4_0, (MAX_ROWS + 1,), 17, 64),  # one more: the tiled path
])
def test_qmatmul_rows_model_shapes(enc: QuantizationEncoding, lead: tuple[int, ...], n: int,
                                   k: int) -> None:
    _check(enc, lead, n, k)


def _lowered(rows: int, enc: QuantizationEncoding = Q.Q4_1) -> str:
    k = 2 * enc.elements_per_block
    g = build([tt(DType.float32, rows, k), tt(DType.uint8, 40, 2 * enc.block_size)],
              lambda x, w: ops.qmatmul(enc, None, x, w))
    with mo_context.make_context():
        module = ir.Module.parse(g._text())
        lower_to_linalg(module)
        return str(module)


def test_few_rows_stream_the_weight_without_decoding_it_whole() -> None:
    text = _lowered(4)
    assert LOOP_ATTR in text and "scf.forall" in text
    assert "linalg.matmul" not in text and "40x64xf32" not in text  # no decoded weight tile
    text = _lowered(MAX_ROWS + 1)  # many rows: decoded tiles and a matmul
    assert LOOP_ATTR not in text and "linalg.matmul" in text
    assert LOOP_ATTR not in _lowered(4, Q.Q4_K)  # an encoding this path does not decode


def test_one_thread_and_plain_loops(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The chunk loop is an scf.forall: OpenMP with threads, loops with one thread and in the
    plain-loops pipeline (the schedule's fallback)."""
    from max.compiler.targets.cpu import lower
    from max.engine import InferenceSession

    monkeypatch.setenv("MAX_CACHE_DIR", str(tmp_path))
    enc, n, k = Q.Q4_1, 37, 64
    raw = _weight(enc, n, k, seed=1)
    a = np.random.default_rng(2).standard_normal((2, k)).astype(np.float32)
    g = build([tt(DType.float32, 2, k), tt(DType.uint8, *raw.shape)],
              lambda x, w: ops.qmatmul(enc, None, x, w))
    (out,) = InferenceSession(num_threads=1).load(g).execute(a, raw)
    w = gguf.quants.dequantize(raw, gguf.GGMLQuantizationType[enc.value])
    np.testing.assert_allclose(out.to_numpy(), a @ w.T, rtol=1e-5, atol=1e-5)
    with mo_context.make_context():
        module = ir.Module.parse(g._text())
        lower_to_linalg(module)
        lower(module, schedule=False)
        text = str(module)
    assert "scf.forall" not in text and "llvm.func" in text


@pytest.mark.parametrize("enc", [Q.Q4_1, Q.Q8_0, Q.Q4_0])
def test_symbolic_rows(enc: QuantizationEncoding) -> None:
    """``[batch, seq, k]`` with symbolic dims: the rows go in groups of GROUP, then one by
    one; one compiled model gives numpy's result for any count. Two qmatmuls of the same
    rows in one graph (as a layer's projections are)."""
    n, k = 45, 96
    raw = _weight(enc, n, k, seed=7)
    raw2 = _weight(enc, 7, k, seed=9)
    g = build([tt(DType.float32, "batch", "seq", k), tt(DType.uint8, *raw.shape),
               tt(DType.uint8, *raw2.shape)],
              lambda x, w, w2: [ops.qmatmul(enc, None, x, w), ops.qmatmul(enc, None, x, w2)])
    model = shared_session().load(g)
    qt = gguf.GGMLQuantizationType[enc.value]
    ws = [gguf.quants.dequantize(r, qt).astype(np.float64) for r in (raw, raw2)]
    rng = np.random.default_rng(8)
    for lead in [(1, 1), (1, 2), (3, 1), (2, GROUP // 2), (1, GROUP + 3), (2, 64), (0, 3)]:
        a = rng.standard_normal((*lead, k)).astype(np.float32)
        for out, w in zip(model.execute(a, raw, raw2), ws, strict=True):
            want = a.astype(np.float64) @ w.T
            scale = np.abs(a).astype(np.float64) @ np.abs(w).T
            assert out.to_numpy().shape == (*lead, w.shape[0])
            assert np.all(np.abs(out.to_numpy() - want) <= 2e-7 * k * scale + 1e-6), lead


def test_weight_rows_are_prefetched_ahead() -> None:
    """After bufferization each weight row of the decode loop prefetches every line of the row
    DISTANCE ahead (40 rows of 40 bytes: one line, and the last byte's)."""
    from max.compiler.pipelines.prefetch import DISTANCE, LOCALITY
    from max.compiler.targets.cpu import CPU

    g = build([tt(DType.float32, 1, 64), tt(DType.uint8, 40, 40)],
              lambda x, w: ops.qmatmul(Q.Q4_1, None, x, w))
    with mo_context.make_context():
        module = ir.Module.parse(g._text())
        lower_to_linalg(module)
        CPU.run(module, until="mo-prefetch-weights", threads=2)
        text = str(module)
    assert text.count("memref.prefetch") == 2 and f"locality<{LOCALITY}>" in text
    assert f"arith.constant {DISTANCE} : index" in text


@pytest.mark.parametrize("enc", [Q.Q4_0, Q.Q4_1])
def test_nibbles_become_table_lookups(enc: QuantizationEncoding) -> None:
    """On AVX-512 the 4-bit codes' conversions to f32 are vpermps lookups (mo-nibble-lookup):
    none is left as a conversion; the numbers are the other tests' (same pipeline)."""
    from max.compiler.host_cpu import host
    from max.compiler.pipelines.nibble_lookup import INTRINSIC
    from max.compiler.targets.cpu import CPU

    if not host().has_permvar:
        pytest.skip("the host has no AVX-512F: the conversions stay")
    g = build([tt(DType.float32, 1, 64), tt(DType.uint8, 40, 2 * (18 if enc == Q.Q4_0 else 20))],
              lambda x, w: ops.qmatmul(enc, None, x, w))
    with mo_context.make_context():
        module = ir.Module.parse(g._text())
        lower_to_linalg(module)
        CPU.run(module, until="mo-nibble-lookup", threads=2)
        text = str(module)
    assert text.count(INTRINSIC) >= 2
    assert not [line for line in text.splitlines()
                if "arith.sitofp" in line and "vector<16xi32>" in line]
