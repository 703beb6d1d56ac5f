"""``GGUFWeights``: tensors of a GGUF file, memory-mapped by ``gguf.GGUFReader``.

GGUF lists a tensor's dims innermost first (``ne``); numpy's shape is that list reversed.
Quantized tensors stay quantized: their data is the file's ``uint8`` blocks, whole blocks on
the last axis, as :class:`~max.graph.quantization.QuantizationEncoding` describes them.
"""

from __future__ import annotations

import functools
import mmap
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


# GGUF value types (gguf.GGUFValueType) of fixed size, by their code; 8 is a string (u64
# length + bytes), 9 an array (u32 item type, u64 count, items).
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9


class _HeaderScan:
    """Walks a GGUF header checking every count and length against the bytes left.

    ``gguf.GGUFReader`` trusts them: one corrupt array count makes it loop for billions of
    items in Python. A count that cannot fit in the file is an error here before the reader
    sees the file; what can fit costs at most a step per byte.
    """

    def __init__(self, path: str, buf: mmap.mmap) -> None:
        self.path = path
        self.buf = buf  # mapped: only the header's pages are read
        self.pos = 0

    def fail(self, why: str) -> ValueError:
        return ValueError(f"{self.path}: invalid or truncated GGUF file: {why} (at byte "
                          f"{self.pos} of {len(self.buf)})")

    def skip(self, n: int) -> None:
        if n > len(self.buf) - self.pos:
            raise self.fail(f"{n} bytes needed, {len(self.buf) - self.pos} left")
        self.pos += n

    def take(self, n: int) -> bytes:
        self.skip(n)
        return self.buf[self.pos - n:self.pos]

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "little")

    def count(self, min_item: int, what: str) -> int:
        return self.check_fits(self.uint(8), min_item, what)

    def value(self, kind: int, depth: int = 0) -> None:
        if kind in _SCALAR_SIZES:
            self.skip(_SCALAR_SIZES[kind])
        elif kind == _STRING:
            self.skip(self.count(1, "string length"))
        elif kind == _ARRAY:
            if depth >= 4:
                raise self.fail("arrays nested more than 4 deep")
            item = self.uint(4)
            n = self.count(_SCALAR_SIZES.get(item, 8), "array count")
            if item in _SCALAR_SIZES:
                self.skip(n * _SCALAR_SIZES[item])
            else:
                for _ in range(n):
                    self.value(item, depth + 1)
        else:
            raise self.fail(f"unknown value type {kind}")

    def run(self) -> None:
        if bytes(self.take(4)) != b"GGUF":
            raise self.fail("not a GGUF file (no GGUF magic)")
        version = self.uint(4)
        if version & 0xFFFF == 0:
            # Its tensors' bytes are big-endian too: arrays of them are not what the engine
            # and the quantized kernels read.
            raise self.fail("a big-endian GGUF file is not supported")
        if version not in (2, 3):
            raise self.fail(f"GGUF version {version} is not supported")
        n_tensors, n_kv = self.uint(8), self.uint(8)
        for _ in range(self.check_fits(n_kv, 13, "key-value count")):
            self.skip(self.count(1, "key length"))
            self.value(self.uint(4))
        for _ in range(self.check_fits(n_tensors, 24, "tensor count")):
            self.skip(self.count(1, "tensor name length"))
            n_dims = self.uint(4)
            if n_dims > 8:
                raise self.fail(f"a tensor of {n_dims} dims")
            self.skip(8 * n_dims + 12)

    def check_fits(self, n: int, min_size: int, what: str) -> int:
        if n * min_size > len(self.buf) - self.pos:
            raise self.fail(f"{what} {n} cannot fit in the file")
        return n


def open_gguf(path: os.PathLike[str] | str) -> Any:
    """A ``gguf.GGUFReader`` of ``path``, after checking the header's counts against the file
    size (:class:`_HeaderScan`) and every tensor's extent.

    Parsing a GGUF header takes seconds for a large vocabulary (SmolLM2: about 2 s), and a
    model's registry lookup, tokenizer and weights all read the same file, so a file is parsed
    once per process while it is unchanged (same path, inode, size and modification time):
    the reader is read-only and shared.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it is not a valid GGUF file or is truncated.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"GGUF file not found: {path}")
    st = os.stat(path)
    return _open_checked(path, st.st_ino, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _open_checked(path: str, _inode: int, _size: int, _mtime_ns: int) -> Any:
    # (inode, size, mtime) are only the cache key: a changed file is parsed again.
    gguf = _gguf()
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise ValueError(f"{path}: invalid or truncated GGUF file: the file is empty")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            _HeaderScan(path, buf).run()
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


_MISSING = object()


def gguf_field(reader: Any, key: str, kind: type, source: str = "GGUF file",
               default: Any = _MISSING) -> Any:
    """The scalar or string metadata ``key`` of a ``gguf.GGUFReader``, checked to be ``kind``
    (``int`` accepts any integer field, ``float`` any number).

    Raises:
        ValueError: If the key is missing (and no default is given) or has another type.
    """
    field = reader.fields.get(key)
    if field is None:
        if default is _MISSING:
            raise ValueError(f"{source}: GGUF metadata {key!r} is missing")
        return default
    try:
        value = field.contents()
    except Exception as e:  # the gguf package's own decoding of a malformed field
        raise ValueError(f"{source}: GGUF metadata {key!r} cannot be read: {e}") from None
    ok = (isinstance(value, str) if kind is str
          else isinstance(value, int) and not isinstance(value, bool) if kind is int
          else isinstance(value, int | float) and not isinstance(value, bool) if kind is float
          else isinstance(value, kind))
    if not ok:
        raise ValueError(f"{source}: GGUF metadata {key!r} must be {kind.__name__}, got "
                         f"{value!r}"[:300])
    return value


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
        self._reader = source if isinstance(source, gguf.GGUFReader) else open_gguf(source)
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
