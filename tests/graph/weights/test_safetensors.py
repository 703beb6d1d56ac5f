"""SafetensorWeights on files written here by the safetensors package: hierarchical access,
shards, zero-copy views of the mapped file, errors, and a graph that runs on loaded weights."""

from __future__ import annotations

import json
import re
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file

from max.driver import Tensor
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType, Weight, ops
from max.graph.weights import SafetensorWeights, WeightData, Weights, load_weights

CPU = DeviceRef.CPU()
RNG = np.random.default_rng(0)

BERT = {
    "encoder.layer.0.attention.self.query.weight": RNG.standard_normal((4, 6)).astype(np.float32),
    "encoder.layer.0.attention.self.query.bias": RNG.standard_normal(4).astype(np.float16),
    "encoder.layer.1.attention.self.query.weight": RNG.integers(-9, 9, (2, 3), dtype=np.int64),
    "encoder.layer.10.output.weight": np.arange(5, dtype=np.uint8),
    "pooler.scale": np.array(0.5, np.float32),
}


def _write(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    save_file(tensors, str(path))
    return path


@pytest.fixture
def bert(tmp_path: Path) -> SafetensorWeights:
    return SafetensorWeights([_write(tmp_path / "model.safetensors", BERT)])


def test_attribute_and_index_access_give_the_files_tensors(bert: SafetensorWeights) -> None:
    q = bert.encoder.layer[0].attention.self.query.weight
    assert q.name == "encoder.layer.0.attention.self.query.weight"
    assert bert.encoder["layer"]["1"].name == "encoder.layer.1"
    for name, want in BERT.items():
        node = bert
        for part in name.split("."):
            node = node[int(part)] if part.isdigit() else getattr(node, part)
        data = node.data()
        assert isinstance(data, WeightData) and data.name == name
        assert data.dtype == DType.from_numpy(want.dtype) and data.shape == list(want.shape)
        assert data.quantization_encoding is None
        np.testing.assert_array_equal(data.data, want)
        np.testing.assert_array_equal(node.raw_tensor(), want)
        assert node.exists() and node.dtype == data.dtype and node.shape == data.shape
    assert not bert.encoder.layer[0].exists()
    assert isinstance(bert, Weights)


def test_items_are_relative_to_the_prefix_and_stop_at_dots(bert: SafetensorWeights) -> None:
    layer1 = dict(bert.encoder.layer[1].items())
    assert list(layer1) == ["attention.self.query.weight"]  # not layer 10
    assert layer1["attention.self.query.weight"].name == (
        "encoder.layer.1.attention.self.query.weight")
    assert sorted(n for n, _ in bert.items()) == sorted(BERT)
    assert list(bert.nothing.items()) == []


def test_tensors_are_read_only_views_of_one_mapping(bert: SafetensorWeights) -> None:
    a = bert.encoder.layer[0].attention.self.query.weight.raw_tensor()
    b = bert.encoder.layer[0].attention.self.query.bias.raw_tensor()
    assert isinstance(a, np.ndarray) and not a.flags.writeable
    assert not a.flags.owndata and isinstance(a.base, np.memmap)
    assert a.base is b.base  # both views of the same file mapping
    with pytest.raises(ValueError, match="read-only"):
        a[0, 0] = 1


def test_allocate_validates_and_registers_the_view(bert: SafetensorWeights) -> None:
    node = bert.encoder.layer[0].attention.self.query.weight
    w = node.allocate(DType.float32, (4, 6))
    assert isinstance(w, Weight) and w.name == node.name
    assert w.dtype == DType.float32 and w.shape == [4, 6] and w.device == CPU
    registry = bert.allocated_weights
    assert list(registry) == [node.name]
    assert registry[node.name] is node.raw_tensor()  # the same view, not a copy
    assert bert.pooler.allocated_weights is registry  # shared by every view
    with pytest.raises(ValueError, match=re.escape(
            "weight 'encoder.layer.0.attention.self.query.weight': shape mismatch: expected "
            "[6, 4], the checkpoint ") + ".*model.safetensors holds \\[4, 6\\]"):
        node.allocate(shape=[6, 4])
    with pytest.raises(ValueError, match="'pooler.scale': dtype mismatch: expected "
                                         "DType.float16, .* holds DType.float32"):
        bert.pooler.scale.allocate(dtype=DType.float16)
    assert list(registry) == [node.name]  # nothing registered by a failed allocate


def test_missing_keys_suggest_the_closest_names(bert: SafetensorWeights) -> None:
    with pytest.raises(KeyError, match=re.escape(
            "no weight named 'encoder.layer.0.attention.self.querry.weight' in ") + ".*"
            + re.escape("did you mean 'encoder.layer.0.attention.self.query.weight'")):
        bert.encoder.layer[0].attention.self.querry.weight.allocate()
    with pytest.raises(KeyError, match="no weight named 'encoder.layer.1' .*it is a prefix of "
                                       "1 weight"):
        bert.encoder.layer[1].data()
    with pytest.raises(KeyError, match="no weight named 'zzz' .*the checkpoint holds 5"):
        bert.zzz.raw_tensor()
    assert bert.allocated_weights == {}


def test_allocate_as_bytes(bert: SafetensorWeights) -> None:
    node = bert.encoder.layer[0].attention.self.query.weight
    w = node.allocate_as_bytes(DType.float32)
    assert w.dtype == DType.uint8 and w.shape == [4, 24]
    assert w.original_dtype_and_shape == (DType.float32, [4, 6])
    raw = bert.allocated_weights[node.name]
    np.testing.assert_array_equal(raw.view(np.float32), BERT[node.name])
    scalar = bert.pooler.scale.allocate_as_bytes()
    assert scalar.shape == [4]
    with pytest.raises(ValueError, match="dtype mismatch"):
        bert.pooler.scale.allocate_as_bytes(DType.int32)


def test_sharded_files_and_bfloat16(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file as save_torch  # numpy has no bfloat16

    bf_torch = torch.tensor([[1.5, -2.0], [0.25, 3.0]], dtype=torch.bfloat16)
    save_torch({"b.bf": bf_torch}, str(tmp_path / "model-00002-of-00002.safetensors"))
    bf = bf_torch.float().numpy().astype(ml_dtypes.bfloat16)
    first = _write(tmp_path / "model-00001-of-00002.safetensors",
                   {"a.w": np.ones((2, 2), np.float32)})
    weights = load_weights([first, tmp_path / "model-00002-of-00002.safetensors"])
    assert isinstance(weights, SafetensorWeights)
    data = weights.b.bf.data()
    assert data.dtype == DType.bfloat16
    np.testing.assert_array_equal(data.data, bf)
    np.testing.assert_array_equal(weights.a.w.raw_tensor(), np.ones((2, 2)))
    # astype converts (bfloat16 -> float32 exactly)
    np.testing.assert_array_equal(data.astype(DType.float32).data, bf_torch.float().numpy())


def test_a_tensor_in_two_shards_is_refused(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.safetensors", {"x": np.zeros(2, np.float32)})
    b = _write(tmp_path / "b.safetensors", {"x": np.ones(2, np.float32)})
    with pytest.raises(ValueError, match="tensor 'x' is in two files: .*a.safetensors and "
                                         ".*b.safetensors"):
        SafetensorWeights([a, b])


def test_truncated_and_corrupt_files_are_refused(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.safetensors", BERT).read_bytes()
    n = int.from_bytes(good[:8], "little")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good[:-10])  # header intact, data short
    with pytest.raises(ValueError, match=re.escape(
            f"{cut}: truncated safetensors file: the header describes "
            f"{len(good) - 8 - n} bytes of tensor data, {len(good) - 18 - n} follow it")):
        SafetensorWeights([cut])
    cut.write_bytes(good[: 8 + n // 2])  # header cut
    with pytest.raises(ValueError, match="truncated safetensors file: the header needs"):
        SafetensorWeights([cut])
    cut.write_bytes(good[:5])
    with pytest.raises(ValueError, match="not a safetensors file: 5 bytes"):
        SafetensorWeights([cut])
    header = json.dumps({"x": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}})
    cut.write_bytes(len(header).to_bytes(8, "little") + header.encode() + bytes(16))
    with pytest.raises(ValueError, match=r"invalid safetensors header: tensor 'x': 12 bytes "
                                         r"for shape \[2, 2\] of F32 \(16 bytes\)"):
        SafetensorWeights([cut])
    # Overlapping tensors: our reading of the header accepts them, the package refuses.
    header = json.dumps({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                         "y": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})
    cut.write_bytes(len(header).to_bytes(8, "little") + header.encode() + bytes(8))
    with pytest.raises(ValueError, match="invalid safetensors file: "):
        SafetensorWeights([cut])
    cut.write_bytes((3).to_bytes(8, "little") + b"{x]")
    with pytest.raises(ValueError, match="invalid safetensors header: Expecting"):
        SafetensorWeights([cut])


def test_linear_layer_runs_on_loaded_weights(tmp_path: Path) -> None:
    w = RNG.standard_normal((5, 3)).astype(np.float32)
    b = RNG.standard_normal(3).astype(np.float32)
    path = _write(tmp_path / "linear.safetensors", {"layer.weight": w, "layer.bias": b})
    weights = load_weights([path])
    x_type = TensorType(DType.float32, ("batch", 5), CPU)
    with Graph("linear_from_file", input_types=[x_type]) as graph:
        (x,) = graph.inputs
        weight = weights.layer.weight.allocate(DType.float32, (5, 3))
        bias = graph.add_weight(weights.layer.bias.allocate(DType.float32, (3,)))
        graph.output(ops.matmul(x, weight) + bias)
    model = InferenceSession().load(graph, weights_registry=weights.allocated_weights)
    x = RNG.standard_normal((4, 5)).astype(np.float32)
    (y,) = model.execute(Tensor.from_numpy(x))
    np.testing.assert_allclose(y.to_numpy(), x @ w + b, rtol=1e-5, atol=1e-6)
