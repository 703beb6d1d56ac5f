"""``ops.qmatmul`` whose weight is given at load time (a named ``Weight``) and read only by
decode-path qmatmuls: the engine stores it ``ENC_split`` (``runtime/layouts``: each row's codes,
then its scales, then its mins) and the decode loop reads 16 blocks' scales at once. Against
numpy's matmul by ``gguf``'s dequantized weight, for block counts on both sides of 16."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
from ops_helpers import shared_session

from max.dtype import DType
from max.graph import DeviceRef, Graph, TensorType, Weight, ops
from max.graph.quantization import QuantizationEncoding
from max.runtime.layouts import apply_layout

Q = QuantizationEncoding
CPU = DeviceRef.CPU()


def _raw(enc: QuantizationEncoding, n: int, k: int) -> np.ndarray:
    w = np.random.default_rng(n * k).standard_normal((n, k)).astype(np.float32)
    return gguf.quants.quantize(w, gguf.GGMLQuantizationType[enc.value])


def _want(enc: QuantizationEncoding, raw: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, ...]:
    w = gguf.quants.dequantize(raw, gguf.GGMLQuantizationType[enc.value]).astype(np.float64)
    return a.astype(np.float64) @ w.T, np.abs(a).astype(np.float64) @ np.abs(w).T


@pytest.mark.parametrize("enc", [Q.Q4_1, Q.Q4_0, Q.Q8_0])
@pytest.mark.parametrize("k", [32, 544, 576, 1536])  # 1, 17, 18 and 48 blocks a row
@pytest.mark.parametrize("rows", [1, 3, "rows"])
def test_split_weight_matches_numpy(enc: QuantizationEncoding, k: int, rows: int | str) -> None:
    n = 37  # a partial chunk of weight rows
    raw = _raw(enc, n, k)
    w = Weight("w", DType.uint8, raw.shape)
    g = Graph(f"split_{enc.value}_{k}_{rows}", lambda x: ops.qmatmul(enc, None, x, w),
              input_types=[TensorType(DType.float32, (rows, k), CPU)])
    model = shared_session().load(g, weights_registry={"w": raw})
    assert model._record.weight_layouts == (f"{enc.value.lower()}_split",)
    rng = np.random.default_rng(k)
    for m in ((1, 2, 8, 9, 17) if isinstance(rows, str) else (rows,)):
        a = rng.standard_normal((m, k)).astype(np.float32)
        got = model.execute(a)[0].to_numpy()
        want, scale = _want(enc, raw, a)
        assert np.all(np.abs(got - want) <= 2e-7 * k * scale + 1e-6), (m, np.abs(got - want).max())
    # The caller's array is untouched: the model reads its own rearranged copy.
    np.testing.assert_array_equal(raw, _raw(enc, n, k))


def test_weight_with_another_reader_stays_blocked() -> None:
    """A weight that a dequantize also reads keeps GGUF's order (one layout per weight)."""
    raw = _raw(Q.Q4_1, 16, 64)
    w = Weight("w", DType.uint8, raw.shape)
    g = Graph("split_shared", lambda x: (ops.qmatmul(Q.Q4_1, None, x, w),
                                         ops.dequantize(Q.Q4_1, w)),
              input_types=[TensorType(DType.float32, ("rows", 64), CPU)])
    model = shared_session().load(g, weights_registry={"w": raw})
    assert model._record.weight_layouts == ("",)
    a = np.random.default_rng(0).standard_normal((2, 64)).astype(np.float32)
    got, deq = (t.to_numpy() for t in model.execute(a))
    want, scale = _want(Q.Q4_1, raw, a)
    assert np.all(np.abs(got - want) <= 2e-7 * 64 * scale + 1e-6)
    np.testing.assert_array_equal(deq, gguf.quants.dequantize(raw, gguf.GGMLQuantizationType.Q4_1))


@pytest.mark.parametrize(("layout", "nbytes", "fields"), [
    ("q4_1_split", 20, 2), ("q4_0_split", 18, 1), ("q8_0_split", 34, 1)])
def test_split_layout_bytes(layout: str, nbytes: int, fields: int) -> None:
    """Row by row, block by block: the codes, then field 0 of every block, then field 1."""
    raw = np.random.default_rng(nbytes).integers(0, 256, (3, 5 * nbytes), dtype=np.uint8)
    got = apply_layout(raw, layout)
    assert got.shape == raw.shape and got.dtype == np.uint8
    code = nbytes - 2 * fields
    for r in range(3):
        for b in range(5):
            block = raw[r, b * nbytes:(b + 1) * nbytes]
            assert bytes(got[r, b * code:(b + 1) * code]) == bytes(block[2 * fields:])
            for i in range(fields):
                at = 5 * code + i * 10 + 2 * b
                assert bytes(got[r, at:at + 2]) == bytes(block[2 * i:2 * i + 2])


def test_split_layout_refuses_partial_blocks() -> None:
    with pytest.raises(ValueError, match="layout 'q4_1_split' needs rows of whole 20-byte "
                                         "blocks, got 30"):
        apply_layout(np.zeros((2, 30), np.uint8), "q4_1_split")


@pytest.mark.parametrize(("n", "k"), [(1536, 576), (16, 64)])
def test_constant_weight(n: int, k: int) -> None:
    """A quantized weight given as a graph constant: a large one is externalized and stored
    split at compile time (constants.bin), a small one stays inline; both are right."""
    raw = _raw(Q.Q4_1, n, k)
    g = Graph(f"split_const_{n}", lambda x: ops.qmatmul(
        Q.Q4_1, None, x, ops.constant(raw, DType.uint8, device=CPU)),
        input_types=[TensorType(DType.float32, ("rows", k), CPU)])
    model = shared_session().load(g)
    a = np.random.default_rng(n).standard_normal((3, k)).astype(np.float32)
    want, scale = _want(Q.Q4_1, raw, a)
    got = model.execute(a)[0].to_numpy()
    assert np.all(np.abs(got - want) <= 2e-7 * k * scale + 1e-6)
