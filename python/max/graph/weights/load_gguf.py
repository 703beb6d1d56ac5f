"""``GGUFWeights``: tensors of a GGUF file, memory-mapped by ``gguf.GGUFReader``.

GGUF lists a tensor's dims innermost first (``ne``); numpy's shape is that list reversed.
Quantized tensors stay quantized: their data is the file's ``uint8`` blocks, whole blocks on
the last axis, as :class:`~max.graph.quantization.QuantizationEncoding` describes them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from max.driver import DLPackArray
from max.dtype import DType
from max.graph.quantization import QuantizationEncoding
from max.graph.shape import Shape
from max.graph.type import DeviceRef
from max.graph.weight import Weight
from max.graph.weights.weights import WeightData, _lazy_import, _NamedWeights

_gguf = _lazy_import("gguf", "GGUFWeights", "gguf==0.19.0")

# GGML type names (gguf.GGMLQuantizationType) of the plain element types and the encodings.
_DTYPES = {
    "F32": DType.float32, "F16": DType.float16, "BF16": DType.bfloat16, "F64": DType.float64,
    "I8": DType.int8, "I16": DType.int16, "I32": DType.int32, "I64": DType.int64,
}
_ENCODINGS = {e.value: e for e in QuantizationEncoding if e.is_gguf}


def _open_reader(path: os.PathLike[str] | str) -> Any:
    gguf = _gguf()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"GGUF file not found: {path}")
    try:
        reader = gguf.GGUFReader(path, "r")
    except (ValueError, IndexError, KeyError, OverflowError, UnicodeDecodeError) as e:
        # The reader fails on short reads and reshapes of a cut file with numpy's messages.
        raise ValueError(f"{path}: invalid or truncated GGUF file: {e}") from None
    size = os.path.getsize(path)
    for t in reader.tensors:
        if t.data_offset + t.n_bytes > size:
            raise ValueError(f"{path}: truncated GGUF file: tensor {t.name!r} ends at byte "
                             f"{t.data_offset + t.n_bytes}, the file has {size}")
    return reader


class GGUFWeights(_NamedWeights):
    """Implementation for loading weights from GGUF (GPT-Generated Unified Format) files.

    ``GGUFWeights`` provides an interface to load model weights from GGUF files, which are
    optimized for quantized large language models. GGUF is the successor to GGML format and
    is commonly used in the ``llama.cpp`` ecosystem for efficient storage and loading of
    quantized models. Quantized tensors (``Q4_0``, ``Q4_1``, ``Q8_0``, ``Q4_K``, ``Q5_K``,
    ``Q6_K``) load as their ``uint8`` blocks with ``quantization_encoding`` set; the others
    as arrays of their element type.

    Args:
        source: Path to a GGUF file or a GGUFReader object.
        tensors: List of tensors in the GGUF checkpoint.
        prefix: Weight name or prefix.
        allocated: Dictionary of allocated values.

    Raises:
        ImportError: If the ``gguf`` package is not installed.
        FileNotFoundError: If the file does not exist.
        ValueError: If the file is not a valid GGUF file or is truncated.
    """

    def __init__(self, source: os.PathLike[str] | Any, tensors: dict[str, Any] | None = None,
                 prefix: str = "", allocated: dict[str, DLPackArray] | None = None) -> None:
        gguf = _gguf()
        self._reader = source if isinstance(source, gguf.GGUFReader) else _open_reader(source)
        self._tensors = (tensors if tensors is not None
                         else {t.name: t for t in self._reader.tensors})
        self._prefix = prefix
        self._allocated = allocated if allocated is not None else {}

    def _names(self) -> dict[str, Any]:
        return self._tensors

    @property
    def _source(self) -> str:
        return os.fspath(getattr(self._reader.data, "filename", None) or "<GGUFReader>")

    def _child(self, prefix: str) -> GGUFWeights:
        return GGUFWeights(self._reader, self._tensors, prefix, self._allocated)

    def _load(self, name: str) -> WeightData:
        tensor = self._tensors[name]
        kind = tensor.tensor_type.name
        shape = [int(d) for d in reversed(tensor.shape)]
        raw = np.asarray(tensor.data).reshape(-1).view(np.uint8)
        if kind in _DTYPES:
            dtype = _DTYPES[kind]
            array = raw.view(dtype.to_numpy()).reshape(shape)
            return WeightData(array, name, dtype, Shape(shape))
        encoding = _ENCODINGS.get(kind)
        if encoding is None:
            raise ValueError(f"{self._source}: weight {name!r} has GGML type {kind}, which is "
                             f"not supported (supported: {', '.join([*_DTYPES, *_ENCODINGS])})")
        if not shape or shape[-1] % encoding.elements_per_block:
            raise ValueError(f"{self._source}: weight {name!r}: {kind} needs a last dim that is "
                             f"a multiple of {encoding.elements_per_block}, got shape {shape}")
        byte_shape = [*shape[:-1], shape[-1] // encoding.elements_per_block * encoding.block_size]
        if raw.size != int(np.prod(byte_shape)):
            raise ValueError(f"{self._source}: weight {name!r}: {raw.size} bytes of {kind} "
                             f"data for shape {shape}")
        return WeightData(raw.reshape(byte_shape), name, DType.uint8, Shape(byte_shape),
                          encoding)

    def allocate(self, dtype: DType | None = None, shape: Iterable[Any] | None = None,
                 quantization_encoding: QuantizationEncoding | None = None,
                 device: DeviceRef = DeviceRef.CPU()) -> Weight:
        """Creates and optionally validates a new Weight.

        A quantized weight is a ``uint8`` weight of whole blocks (its ``shape`` is that of
        the blocks); its ``original_dtype_and_shape`` is float32 and the element shape.

        Args:
            dtype: The dtype the weight must have (``DType.uint8`` for a quantized one).
            shape: The shape the weight must have.
            quantization_encoding: The encoding the weight must have in the file.
            device: The device of the weight.

        Raises:
            KeyError: If no weight has this name (the message suggests the closest ones).
            ValueError: If ``dtype``, ``shape`` or ``quantization_encoding`` disagrees with
                the file, or the weight's GGML type is not supported.
        """
        return super().allocate(dtype, shape, quantization_encoding, device)

    def _encoding_for(self, data: WeightData,
                      requested: QuantizationEncoding | None) -> QuantizationEncoding | None:
        if requested is not None and requested is not data.quantization_encoding:
            held = data.quantization_encoding.value if data.quantization_encoding else "none"
            raise ValueError(f"weight {data.name!r}: quantization encoding mismatch: expected "
                             f"{requested.value}, the checkpoint {self._source} holds {held}")
        return data.quantization_encoding

    def _set_original(self, weight: Weight, data: WeightData) -> None:
        if data.quantization_encoding is not None:
            tensor = self._tensors[data.name]
            weight.original_dtype_and_shape = (
                DType.float32, [int(d) for d in reversed(tensor.shape)])
