"""weights_format / load_weights dispatch and their errors; WeightData on its own."""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from max.driver import Tensor
from max.dtype import DType
from max.graph import weights as graph_weights
from max.graph.weights import WeightData, WeightsFormat, load_weights, weights_format


def test_formats_from_extensions() -> None:
    assert weights_format([Path("a-00001.safetensors"), Path("a-00002.safetensors")]) is (
        WeightsFormat.safetensors)
    assert weights_format([Path("m.gguf")]) is WeightsFormat.gguf
    for name in ("pytorch_model.bin", "m.pt", "m.PTH"):
        assert weights_format([Path(name)]) is WeightsFormat.pytorch
    assert WeightsFormat.gguf.value == "gguf" and WeightsFormat("pytorch") is WeightsFormat.pytorch


def test_format_errors() -> None:
    with pytest.raises(ValueError, match="weights_format: no weight paths given"):
        weights_format([])
    with pytest.raises(ValueError, match="m.onnx: unknown weight file extension '.onnx'; "
                                         "supported: .gguf, .safetensors, .bin, .pt, .pth"):
        weights_format([Path("m.onnx")])
    with pytest.raises(ValueError, match="unknown weight file extension '\\(none\\)'"):
        weights_format([Path("model")])
    with pytest.raises(ValueError, match="mixed weight formats are not supported, got gguf, "
                                         "safetensors"):
        weights_format([Path("a.safetensors"), Path("b.gguf")])


def test_load_weights_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown weight file extension '.txt'"):
        load_weights([tmp_path / "w.txt"])
    with pytest.raises(FileNotFoundError, match="weight file not found: .*absent.safetensors"):
        load_weights([tmp_path / "absent.safetensors"])
    for name in ("a.gguf", "b.gguf"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ValueError, match="load_weights: gguf checkpoints are one file, got 2"):
        load_weights([tmp_path / "a.gguf", tmp_path / "b.gguf"])


def test_weight_data_from_numpy_and_astype() -> None:
    arr = np.array([[1.0, 2.5], [-3.0, 1e-3]], np.float32)
    data = WeightData.from_numpy(arr, "layer.w")
    assert data.name == "layer.w" and data.dtype == DType.float32 and data.shape == [2, 2]
    assert data.data is arr and data.quantization_encoding is None
    half = data.astype(DType.bfloat16)
    assert half.dtype == DType.bfloat16 and half.name == "layer.w"
    np.testing.assert_array_equal(half.data, arr.astype(ml_dtypes.bfloat16))
    np.testing.assert_array_equal(data.astype(DType.int32).data, arr.astype(np.int32))
    # DLPack both ways: a driver Tensor reads the same memory.
    np.testing.assert_array_equal(Tensor.from_dlpack(half).to_numpy(), half.data)
    viewed = data.view(DType.uint8)
    assert viewed.shape == [2, 8] and viewed.data.tobytes() == arr.tobytes()
    with pytest.raises(TypeError, match="WeightData 'x': dtype must be a DType"):
        WeightData(arr, "x", np.float32, [2, 2])  # type: ignore[arg-type]


def test_max_graph_exports_the_module() -> None:
    assert set(graph_weights.__all__) == {
        "GGUFWeights", "PytorchWeights", "SafetensorWeights", "WeightData", "Weights",
        "WeightsFormat", "load_weights", "weights_format"}


@pytest.mark.parametrize("module", ["max.graph.weights", "max.graph.weights.format",
                                    "max.graph.weights.weights",
                                    "max.graph.weights.load_safetensors"])
def test_docstring_examples_run(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0
