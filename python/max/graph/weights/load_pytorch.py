"""``PytorchWeights``: tensors of a PyTorch checkpoint, read only by
``torch.load(weights_only=True, mmap=True)``.

A pickle can run any code while it is read; ``weights_only=True`` limits it to tensors and
plain containers, and a file that holds anything else is refused before any of it runs.
``mmap=True`` maps the tensors' storages from the file instead of reading them, so only the
zip format ``torch.save`` writes (since PyTorch 1.6) is taken; raw pickles are refused
unread. ``torch`` is imported only when a checkpoint is opened.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from max.driver import DLPackArray
from max.dtype import DType
from max.graph.quantization import QuantizationEncoding
from max.graph.shape import Shape
from max.graph.type import DeviceRef
from max.graph.weight import Weight
from max.graph.weights.weights import WeightData, _lazy_import, _NamedWeights

_torch = _lazy_import("torch", "PytorchWeights", "torch==2.13.0")


def _load_state_dict(path: str) -> dict[str, Any]:
    torch = _torch()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"PyTorch checkpoint not found: {path}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a PyTorch zip checkpoint (truncated, or a legacy or raw "
                         "pickle file, which is refused: save it with torch.save)")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if "Unsupported" in ln]
        why = lines[0] if lines else str(e).splitlines()[0]
        raise ValueError(f"{path}: refused to load the PyTorch checkpoint: it holds objects "
                         "other than tensors and plain containers, which could run code when "
                         f"unpickled (torch.load(weights_only=True): {why})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{path}: invalid or truncated PyTorch checkpoint: "
                         f"{str(e).splitlines()[0]}") from None
    if not isinstance(loaded, Mapping):
        raise ValueError(f"{path}: a PyTorch checkpoint of weights is a dict of tensors, got "
                         f"{type(loaded).__name__}")
    tensors: dict[str, Any] = {}
    _flatten(loaded, "", tensors, torch.Tensor)
    return tensors


def _flatten(tree: Mapping[Any, Any], prefix: str, out: dict[str, Any], tensor: type) -> None:
    # Nested dicts ({"model": state_dict, ...}) name their tensors with dots; other values
    # (an epoch counter, a config) are not weights.
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, tensor):
            out[name] = value
        elif isinstance(value, Mapping):
            _flatten(value, name + ".", out, tensor)


def _to_numpy(name: str, value: Any) -> tuple[np.ndarray, DType]:
    """A numpy view of a CPU tensor's (mapped) memory."""
    torch = _torch()
    try:
        dtype = DType.from_torch(value.dtype)
    except ValueError:
        raise ValueError(f"weight {name!r} has torch dtype {value.dtype}, which is not "
                         "supported") from None
    if value.dtype in (torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2,
                       torch.float8_e4m3fnuz, torch.float8_e5m2fnuz):
        # numpy has no such dtype: view the bits as unsigned ints, then as ml_dtypes.
        bits = torch.uint16 if value.element_size() == 2 else torch.uint8
        return value.view(bits).numpy().view(dtype.to_numpy()), dtype
    return value.numpy(), dtype


class PytorchWeights(_NamedWeights):
    """Implementation for loading weights from PyTorch checkpoint files.

    ``PytorchWeights`` provides an interface to load model weights from PyTorch checkpoint
    files (.bin or .pt format). These files contain serialized PyTorch tensors using Python's
    pickle protocol, making them widely compatible with the PyTorch ecosystem. They are read
    with ``torch.load(weights_only=True, mmap=True)`` only: a checkpoint holding other
    objects is refused.

    Args:
        filepath: The checkpoint (the zip format of ``torch.save``).
        tensor_infos: The checkpoint's tensors by name (read from the file when None).
        prefix: Weight name or prefix.
        allocated: Dictionary of allocated values.

    Raises:
        ImportError: If ``torch`` is not installed.
        FileNotFoundError: If the file does not exist.
        ValueError: If the file is truncated, not a zip checkpoint, or holds objects other
            than tensors and plain containers.
    """

    def __init__(self, filepath: os.PathLike[str], tensor_infos: dict[str, Any] | None = None,
                 prefix: str = "", allocated: dict[str, DLPackArray] | None = None) -> None:
        self._filepath = os.fspath(filepath)
        self._tensor_infos = (tensor_infos if tensor_infos is not None
                              else _load_state_dict(self._filepath))
        self._prefix = prefix
        self._allocated = allocated if allocated is not None else {}

    def _names(self) -> dict[str, Any]:
        return self._tensor_infos

    @property
    def _source(self) -> str:
        return self._filepath

    def _child(self, prefix: str) -> PytorchWeights:
        return PytorchWeights(self._filepath, self._tensor_infos, prefix, self._allocated)

    def _load(self, name: str) -> WeightData:
        array, dtype = _to_numpy(name, self._tensor_infos[name])
        return WeightData(array, name, dtype, Shape(array.shape))

    def allocate(self, dtype: DType | None = None, shape: Iterable[Any] | None = None,
                 quantization_encoding: QuantizationEncoding | None = None,
                 device: DeviceRef = DeviceRef.CPU()) -> Weight:
        """Creates and optionally validates a new Weight.

        Args:
            dtype: The dtype the weight must have in the checkpoint; ``None`` takes it.
            shape: The shape the weight must have in the checkpoint; ``None`` takes it.
            quantization_encoding: The quantization encoding of the weight.
            device: The device of the weight.

        Raises:
            KeyError: If no weight has this name (the message suggests the closest ones).
            ValueError: If ``dtype`` or ``shape`` disagrees with the checkpoint.
        """
        return super().allocate(dtype, shape, quantization_encoding, device)
