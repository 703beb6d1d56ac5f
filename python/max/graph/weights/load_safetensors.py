"""``SafetensorWeights``: tensors of one or more (sharded) safetensors files, memory-mapped.

Each file is validated whole when it is opened, by the ``safetensors`` package (``safe_open``)
and by our own reading of its header, which also gives each tensor's byte range: the arrays
handed out are read-only numpy views of one ``np.memmap`` of the file, never copies (the
package's own numpy loaders copy every tensor).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any

import numpy as np

from max.driver import DLPackArray
from max.dtype import DType
from max.graph.quantization import QuantizationEncoding
from max.graph.shape import Shape
from max.graph.type import DeviceRef
from max.graph.weight import Weight
from max.graph.weights.weights import WeightData, _NamedWeights

# safetensors dtype names (the format's spec) and ours.
_DTYPES = {
    "BOOL": DType.bool, "U8": DType.uint8, "I8": DType.int8, "U16": DType.uint16,
    "I16": DType.int16, "U32": DType.uint32, "I32": DType.int32, "U64": DType.uint64,
    "I64": DType.int64, "F16": DType.float16, "BF16": DType.bfloat16, "F32": DType.float32,
    "F64": DType.float64, "F8_E4M3": DType.float8_e4m3fn, "F8_E5M2": DType.float8_e5m2,
}
# The safetensors crate refuses headers above 100 MB; so do we, before reading one.
_MAX_HEADER = 100_000_000


@dataclass(frozen=True)
class _Entry:
    dtype: str
    shape: tuple[int, ...]
    offset: int  # absolute, in the file
    nbytes: int


class _SafetensorFile:
    """One validated safetensors file and its read-only mapping."""

    def __init__(self, path: os.PathLike[str] | str) -> None:
        self.path = os.fspath(path)
        self.entries = _read_header(self.path)
        _validate_with_package(self.path, self.entries)
        # One mapping of the whole file; every tensor is a view of it.
        self.map = np.memmap(self.path, dtype=np.uint8, mode="r")

    def array(self, name: str) -> np.ndarray:
        entry = self.entries[name]
        dtype = _DTYPES.get(entry.dtype)
        if dtype is None:
            raise ValueError(f"{self.path}: tensor {name!r} has dtype {entry.dtype!r}, which "
                             f"is not supported (supported: {', '.join(_DTYPES)})")
        return np.ndarray(entry.shape, dtype.to_numpy(), buffer=self.map, offset=entry.offset)


def _read_header(path: str) -> dict[str, _Entry]:
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{path}: not a safetensors file: {size} bytes, shorter than "
                             "its 8-byte header length")
        n = int.from_bytes(head, "little")
        if n > _MAX_HEADER:
            raise ValueError(f"{path}: not a safetensors file: header length {n} is over "
                             f"{_MAX_HEADER} bytes")
        if 8 + n > size:
            raise ValueError(f"{path}: truncated safetensors file: the header needs {n} "
                             f"bytes, {size - 8} follow its length")
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: invalid safetensors header: {e}") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: invalid safetensors header: not a JSON object")
    entries: dict[str, _Entry] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        entries[name] = _entry(path, name, info, base=8 + n)
    end = max((e.offset + e.nbytes for e in entries.values()), default=8 + n)
    if end > size:
        raise ValueError(f"{path}: truncated safetensors file: the header describes "
                         f"{end - 8 - n} bytes of tensor data, {size - 8 - n} follow it")
    return entries


def _entry(path: str, name: str, info: Any, base: int) -> _Entry:
    def bad(why: str) -> ValueError:
        return ValueError(f"{path}: invalid safetensors header: tensor {name!r}: {why}")

    if not isinstance(info, dict):
        raise bad("not a JSON object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str):
        raise bad(f"dtype {dtype!r}")
    if (not isinstance(shape, list)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                       for d in shape)):
        raise bad(f"shape {shape!r}")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]):
        raise bad(f"data_offsets {offsets!r}")
    nbytes = offsets[1] - offsets[0]
    if dtype in _DTYPES:
        want = math.prod(shape) * _DTYPES[dtype].size_in_bytes  # exact: no int64 wrap
        if nbytes != want:
            raise bad(f"{nbytes} bytes for shape {shape} of {dtype} ({want} bytes)")
    return _Entry(dtype, tuple(shape), base + offsets[0], nbytes)


def _validate_with_package(path: str, entries: Mapping[str, _Entry]) -> None:
    """The safetensors package's own checks (contiguous, non-overlapping tensors; dtypes and
    sizes), without reading any tensor."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="numpy") as f:
            keys = set(f.keys())
            for name, entry in entries.items():
                if name in keys and f.get_slice(name).get_shape() != list(entry.shape):
                    keys.discard(name)
    except SafetensorError as e:
        raise ValueError(f"{path}: invalid safetensors file: {e}") from None
    if keys != set(entries):
        raise ValueError(f"{path}: invalid safetensors file: the safetensors package reads "
                         "other tensors than its header lists")


class SafetensorWeights(_NamedWeights):
    """Implementation for loading weights from safetensors files.

    SafetensorWeights provides a secure and efficient way to load model weights from
    safetensors format files. Safetensors is designed by Hugging Face for safe serialization
    that prevents arbitrary code execution and supports memory-mapped loading for fast
    access. All files are validated when the object is created; each tensor is a read-only
    view of its memory-mapped file.

    Example:
        >>> weights = SafetensorWeights([path])  # doctest: +SKIP
        >>> w = weights.model.embeddings.weight.allocate(DType.float32)  # doctest: +SKIP

    Args:
        filepaths: The safetensors file(s); a sharded checkpoint gives all of its shards.

    Raises:
        FileNotFoundError: If a file does not exist.
        ValueError: If a file is not a valid safetensors file (truncated, a bad header) or
            two files hold a tensor of the same name.
    """

    def __init__(self, filepaths: Sequence[os.PathLike[str]], *, tensors: Set[str] | None = None,
                 tensors_to_file_idx: Mapping[str, int] | None = None, prefix: str = "",
                 allocated: dict[str, DLPackArray] | None = None,
                 _st_weight_map: dict[str, Any] | None = None,
                 _st_file_handles: dict[os.PathLike[str], Any] | None = None) -> None:
        if isinstance(filepaths, str | bytes | os.PathLike):
            filepaths = [filepaths]  # type: ignore[list-item]
        self._filepaths = list(filepaths)
        if _st_file_handles is None:
            _st_file_handles = {p: _SafetensorFile(p) for p in self._filepaths}
        if tensors_to_file_idx is None:
            tensors_to_file_idx = _index(self._filepaths, _st_file_handles)
        self._tensors_to_file_idx = tensors_to_file_idx
        # Names in file order (a keys view is a Set, as ``tensors`` is).
        if tensors is None:
            tensors = tensors_to_file_idx.keys()
        elif not isinstance(tensors, type({}.keys())):
            tensors = {n: None for n in tensors_to_file_idx if n in tensors}.keys()
        self._tensors = tensors
        self._prefix = prefix
        self._allocated = allocated if allocated is not None else {}
        self._st_weight_map = _st_weight_map if _st_weight_map is not None else {}
        self._st_file_handles = _st_file_handles

    def _names(self) -> Set[str]:
        return self._tensors

    @property
    def _source(self) -> str:
        paths = [os.fspath(p) for p in self._filepaths]
        return paths[0] if len(paths) == 1 else f"{paths[0]} (and {len(paths) - 1} more)"

    def _child(self, prefix: str) -> SafetensorWeights:
        return SafetensorWeights(
            self._filepaths, tensors=self._tensors,
            tensors_to_file_idx=self._tensors_to_file_idx, prefix=prefix,
            allocated=self._allocated, _st_weight_map=self._st_weight_map,
            _st_file_handles=self._st_file_handles)

    def _load(self, name: str) -> WeightData:
        array = self._st_weight_map.get(name)
        if array is None:
            path = self._filepaths[self._tensors_to_file_idx[name]]
            array = self._st_file_handles[path].array(name)
            self._st_weight_map[name] = array
        return WeightData(array, name, DType.from_numpy(array.dtype), Shape(array.shape))

    def allocate(self, dtype: DType | None = None, shape: Iterable[Any] | None = None,
                 quantization_encoding: QuantizationEncoding | None = None,
                 device: DeviceRef = DeviceRef.CPU()) -> Weight:
        """Creates a Weight that can be added to a graph.

        Args:
            dtype: The dtype the weight must have in the file; ``None`` takes it.
            shape: The shape the weight must have in the file; ``None`` takes it.
            quantization_encoding: The quantization encoding of the weight (a GPTQ
                checkpoint's packed ``uint8`` tensor, say).
            device: The device of the weight.

        Raises:
            KeyError: If no weight has this name (the message suggests the closest ones).
            ValueError: If ``dtype`` or ``shape`` disagrees with the file.
        """
        return super().allocate(dtype, shape, quantization_encoding, device)

    def allocate_as_bytes(self, dtype: DType | None = None) -> Weight:
        """Create a Weight that can be added to the graph. Has a uint8 representation,
        instead of the original data type. Last dimension of the scale gets scaled by number
        of bytes it takes to represent the original data type. For example, [512, 256]
        float32 weights become [512, 1024] uint8 weights. Scalar weights will be interpreted
        as weights with shape [1].

        Args:
            dtype: The dtype the weight must have in the file; ``None`` takes it.

        Raises:
            KeyError: If no weight has this name.
            ValueError: If ``dtype`` disagrees with the file.
        """
        data = self.data()
        self._check(data, dtype, None)
        as_bytes = data.view(DType.uint8)
        weight = Weight(data.name, DType.uint8, as_bytes.shape)
        weight.original_dtype_and_shape = (data.dtype, data.shape)
        self._allocated[data.name] = as_bytes.data
        return weight


def _index(paths: list[os.PathLike[str]], files: Mapping[Any, _SafetensorFile]) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, path in enumerate(paths):
        for name in files[path].entries:
            if name in index:
                raise ValueError(f"tensor {name!r} is in two files: "
                                 f"{os.fspath(paths[index[name]])} and {os.fspath(path)}")
            index[name] = i
    return index
