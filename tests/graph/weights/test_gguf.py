"""GGUFWeights on files written here with gguf.GGUFWriter: numpy shapes (GGUF's dims
reversed), quantized tensors kept as their blocks, a graph dequantizing a loaded weight, and
errors."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from max.dtype import DType
from max.engine import InferenceSession
from max.graph import Graph, ops
from max.graph.quantization import QuantizationEncoding
from max.graph.weights import GGUFWeights, load_weights

gguf = pytest.importorskip("gguf")
Q = gguf.GGMLQuantizationType
RNG = np.random.default_rng(1)

F32 = RNG.standard_normal((3, 5)).astype(np.float32)  # GGUF ne = [5, 3]
F16 = RNG.standard_normal((2, 3, 4)).astype(np.float16)
BF16 = np.array([[1.0, -0.5, 3.25]], dtype=ml_dtypes.bfloat16)
FLOATS = RNG.standard_normal((4, 64)).astype(np.float32)  # two blocks of 32 per row


def _write(path: Path, extra: dict[str, tuple[np.ndarray, object]] | None = None) -> Path:
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("blk.0.attn_q.weight", F32)
    writer.add_tensor("blk.0.ffn_up.weight", F16)
    writer.add_tensor("blk.1.norm", BF16.view(np.uint16), raw_dtype=Q.BF16)
    for name, (array, qtype) in (extra or {}).items():
        writer.add_tensor(name, array, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


QUANTIZED = {"blk.2.q4_0": (gguf.quants.quantize(FLOATS, Q.Q4_0), Q.Q4_0),
             "blk.2.q4_1": (gguf.quants.quantize(FLOATS, Q.Q4_1), Q.Q4_1),
             "blk.2.q8_0": (gguf.quants.quantize(FLOATS, Q.Q8_0), Q.Q8_0)}


@pytest.fixture
def weights(tmp_path: Path) -> GGUFWeights:
    return GGUFWeights(_write(tmp_path / "model.gguf", QUANTIZED))


def test_plain_tensors_have_numpy_shapes(weights: GGUFWeights) -> None:
    for node, want, dtype in ((weights.blk[0].attn_q.weight, F32, DType.float32),
                              (weights.blk[0].ffn_up.weight, F16, DType.float16),
                              (weights.blk[1].norm, BF16, DType.bfloat16)):
        data = node.data()
        assert data.dtype == dtype and data.shape == list(want.shape)
        assert data.quantization_encoding is None
        np.testing.assert_array_equal(data.data, want)
        assert not data.data.flags.writeable  # a view of the mapped file


def test_the_reader_is_independent_of_our_shape_reversal(weights: GGUFWeights) -> None:
    reader = gguf.GGUFReader(weights._source)
    tensor = next(t for t in reader.tensors if t.name == "blk.0.attn_q.weight")
    assert list(tensor.shape) == [5, 3]  # GGUF's order: innermost first
    assert weights.blk[0].attn_q.weight.shape == [3, 5]


@pytest.mark.parametrize("name,encoding", [("blk.2.q4_0", QuantizationEncoding.Q4_0),
                                           ("blk.2.q4_1", QuantizationEncoding.Q4_1),
                                           ("blk.2.q8_0", QuantizationEncoding.Q8_0)])
def test_quantized_tensors_stay_quantized(weights: GGUFWeights, name: str,
                                          encoding: QuantizationEncoding) -> None:
    blocks, qtype = QUANTIZED[name]
    data = weights[name].data()
    assert data.dtype == DType.uint8 and data.quantization_encoding is encoding
    assert data.shape == [4, 2 * encoding.block_size]  # two blocks per row
    np.testing.assert_array_equal(data.data, blocks)
    np.testing.assert_allclose(gguf.quants.dequantize(np.asarray(data.data), qtype), FLOATS,
                               atol=0.25)
    w = weights[name].allocate(DType.uint8, (4, 2 * encoding.block_size), encoding)
    assert w.quantization_encoding is encoding
    assert w.original_dtype_and_shape == (DType.float32, [4, 64])
    with pytest.raises(ValueError, match=re.escape(
            f"weight {name!r}: quantization encoding mismatch: expected Q6_K, the checkpoint ")
            + f".*holds {encoding.value}"):
        weights[name].allocate(quantization_encoding=QuantizationEncoding.Q6_K)
    with pytest.raises(ValueError, match=re.escape(
            f"weight {name!r}: cannot convert quantized ({encoding.value}) data")):
        data.astype(DType.float32)


def test_a_loaded_quantized_weight_dequantizes_in_a_graph(weights: GGUFWeights) -> None:
    node = weights.blk[2].q4_0
    with Graph("dequant_from_gguf") as graph:
        w = node.allocate(quantization_encoding=QuantizationEncoding.Q4_0)
        graph.output(ops.dequantize(QuantizationEncoding.Q4_0, w))
    model = InferenceSession().load(graph, weights_registry=weights.allocated_weights)
    (out,) = model.execute()
    want = gguf.quants.dequantize(QUANTIZED["blk.2.q4_0"][0], Q.Q4_0)
    np.testing.assert_array_equal(out.to_numpy(), want)


def test_plain_weights_have_no_encoding_to_match(weights: GGUFWeights) -> None:
    with pytest.raises(ValueError, match="quantization encoding mismatch: expected Q8_0, .*"
                                         "holds none"):
        weights.blk[0].attn_q.weight.allocate(quantization_encoding=QuantizationEncoding.Q8_0)
    with pytest.raises(ValueError, match=r"shape mismatch: expected \[5, 3\], .* holds "
                                         r"\[3, 5\]"):
        weights.blk[0].attn_q.weight.allocate(shape=(5, 3))
    w = weights.blk[0].attn_q.weight.allocate(DType.float32, (3, 5))
    assert w.quantization_encoding is None


def test_unsupported_types_missing_names_and_truncated_files(tmp_path: Path) -> None:
    q5 = gguf.quants.quantize(FLOATS, Q.Q5_0)
    path = _write(tmp_path / "m.gguf", {"blk.3.q5_0": (q5, Q.Q5_0)})
    weights = load_weights([path])
    assert isinstance(weights, GGUFWeights) and weights.blk[3].q5_0.exists()
    with pytest.raises(ValueError, match="weight 'blk.3.q5_0' has GGML type Q5_0, which is not "
                                         "supported"):
        weights.blk[3].q5_0.data()
    with pytest.raises(KeyError, match="did you mean 'blk.0.attn_q.weight'"):
        weights.blk[0].attn_k.weight.allocate()
    whole = path.read_bytes()
    cut = tmp_path / "cut.gguf"
    for size in (len(whole) // 2, 100, 12):
        cut.write_bytes(whole[:size])
        with pytest.raises(ValueError, match=re.escape(f"{cut}: invalid or truncated GGUF file")):
            GGUFWeights(cut)
    # A count that cannot fit in the file is refused before gguf's reader would loop over it.
    writer = gguf.GGUFWriter(str(cut), "llama")
    writer.add_array("vocab", [1, 2, 3])
    writer.add_tensor("w", F32)
    for write in (writer.write_header_to_file, writer.write_kv_data_to_file,
                  writer.write_tensors_to_file, writer.close):
        write()
    raw = bytearray(cut.read_bytes())
    at = raw.index(b"vocab") + len(b"vocab") + 8  # after the value type and the item type
    assert int.from_bytes(raw[at:at + 8], "little") == 3
    raw[at:at + 8] = (1 << 40).to_bytes(8, "little")
    cut.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=f"invalid or truncated GGUF file: array count {1 << 40} "
                                         "cannot fit in the file"):
        GGUFWeights(cut)
    big = tmp_path / "big_endian.gguf"
    writer = gguf.GGUFWriter(str(big), "llama", endianess=gguf.GGUFEndian.BIG)
    writer.add_tensor("w", F32.copy())  # the writer swaps the bytes
    for write in (writer.write_header_to_file, writer.write_kv_data_to_file,
                  writer.write_tensors_to_file, writer.close):
        write()
    with pytest.raises(ValueError, match="a big-endian GGUF file is not supported"):
        GGUFWeights(big)
    with pytest.raises(FileNotFoundError, match="GGUF file not found"):
        GGUFWeights(tmp_path / "absent.gguf")


def test_without_gguf_the_error_names_it(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "m.gguf")
    monkeypatch.setitem(sys.modules, "gguf", None)  # as if gguf were not installed
    with pytest.raises(ImportError, match="GGUFWeights needs the `gguf` package"):
        GGUFWeights(path)
