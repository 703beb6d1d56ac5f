"""``Model``: a compiled graph, executable with numpy arrays, Tensors, DLPack arrays, scalars."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from max.driver import CPU, Device, Tensor
from max.driver import _dlpack
from max.dtype import DType
from max.engine import _profiling
from max.profiler._trace import STATE as _TRACE
from max.runtime import ArtifactRecord, CpuExecutable, TensorRecord, TensorSig
from max.runtime import hugepages
from max.runtime.layouts import apply_layout


class TensorSpec:
    """Defines the properties of a tensor, including its name, shape and data type.

    For usage examples, see :attr:`Model.input_metadata`.

    Args:
        shape: The shape of the tensor; ``None`` for a dimension whose size is unknown until
            execution (a symbolic dimension such as the batch size).
        dtype: The tensor data type.
        name: The tensor name.
    """

    __slots__ = ("_shape", "_dtype", "_name", "_dims")

    def __init__(self, shape: Sequence[int | None] | None, dtype: DType, name: str,
                 *, dims: Sequence[int | str] | None = None) -> None:
        self._shape = None if shape is None else list(shape)
        self._dtype = dtype
        self._name = name
        self._dims = list(dims) if dims is not None else self._shape

    @property
    def shape(self) -> list[int | None] | None:
        """The shape of the tensor as a list of integers.

        If a dimension size is unknown/dynamic (such as the batch size), its value is ``None``.
        """
        return None if self._shape is None else list(self._shape)

    @property
    def dims(self) -> list[int | str | None] | None:
        """The dims as the graph declares them: ints, symbol names or dim expressions."""
        return None if self._dims is None else list(self._dims)

    @property
    def dtype(self) -> DType:
        """A tensor data type."""
        return self._dtype

    @property
    def name(self) -> str:
        """A tensor name."""
        return self._name

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, TensorSpec) and self._shape == other._shape
                and self._dtype == other._dtype and self._name == other._name)

    def __hash__(self) -> int:
        return hash((tuple(self._shape or ()), self._dtype, self._name))

    def __repr__(self) -> str:
        return f"TensorSpec(shape={self._shape}, dtype={self._dtype}, name={self._name!r})"

    def __str__(self) -> str:
        dims = "x".join("?" if d is None else str(d) for d in (self._shape or []))
        return f"{self._name}: {dims}x{self._dtype.name}" if dims else (
            f"{self._name}: {self._dtype.name}")


class MojoValue:
    """This is work in progress and you should ignore it for now."""


def _spec(tensor: TensorRecord, default_name: str) -> TensorSpec:
    dims = list(tensor.dims)
    return TensorSpec([d if type(d) is int else None for d in dims], DType[tensor.dtype],
                      tensor.name or default_name, dims=dims)


# execute()'s fast path takes these input types (no conversion).
_PLAIN_INPUTS = frozenset((np.ndarray, Tensor))


class Model:
    """A loaded model that you can execute.

    Do not instantiate this class directly. Instead, create it with
    :class:`~max.engine.InferenceSession`.

    Inputs may be numpy arrays, :class:`~max.driver.Tensor`\\ s, any DLPack array (a PyTorch
    tensor), or Python scalars for rank-0 inputs. Non-contiguous inputs are copied to a
    contiguous array first (zero-copy otherwise). Outputs are new
    :class:`~max.driver.Tensor`\\ s that no later call writes: large ones (1 MiB and up) reuse
    the memory of earlier outputs that are gone (garbage collected), which saves the page
    faults of fresh memory (``max.runtime.pool``, ``$MAX_OUTPUT_POOL_BYTES``).

    An input of :class:`~max.graph.BufferType` is updated in place: pass a contiguous,
    writeable numpy array or :class:`~max.driver.Tensor` (or DLPack array) of exactly the
    buffer's dtype, sharing no memory with the other inputs; it is never copied.

    Example:
        >>> outputs = model.execute(np.ones((2, 3), np.float32))  # doctest: +SKIP
        >>> outputs[0].to_numpy()  # doctest: +SKIP
    """

    def __init__(self, executable: CpuExecutable, record: ArtifactRecord, device: Device,
                 artifact: Any = None) -> None:
        self._exe = executable
        self._run = executable.run
        self._kernel_run: Any = None  # where the binary times its kernels: for the trace
        self._record = record
        self._device = device
        self._artifact = artifact
        self._input_specs = [_spec(t, f"input{i}") for i, t in enumerate(record.inputs)]
        self._output_specs = [_spec(t, f"output{i}") for i, t in enumerate(record.outputs)]
        self._n_in = len(self._input_specs)
        # Buffer inputs are the caller's memory, written by the compiled code.
        self._buffers = frozenset(i for i, t in enumerate(record.inputs)
                                  if t.type.kind == "buffer")
        self._in_sigs = executable.inputs[: self._n_in]
        self._out_dtypes = [s.dtype for s in self._output_specs]
        self._wrap = Tensor._wrap
        if not self._buffers:  # buffers are checked by execute (writeable, not aliased)
            executable.enable_fast_calls(Tensor, (Tensor._wrap, self._out_dtypes, device))

    @classmethod
    def _from_record(cls, function: Any, record: ArtifactRecord, device: Device | None = None,
                     artifact: Any = None,
                     weights_registry: Mapping[str, Any] | None = None) -> Model:
        # Output shapes come from these dims: the record's MO types, which the cache checked
        # against the graph being loaded.
        sigs = [TensorSig(DType[t.dtype].to_numpy(), t.dims, t.name) for t in record.inputs]
        sigs += [TensorSig(DType[w.dtype].to_numpy(), w.dims, w.name) for w in record.weights]
        sigs += [TensorSig(DType[c.dtype].to_numpy(), c.dims) for c in record.constants]
        outs = [TensorSig(DType[t.dtype].to_numpy(), t.dims, t.name) for t in record.outputs]
        # Named weights (given at load) and the large constants, which live beside the
        # binary, follow the user's inputs: bound once, not passed at each call.
        fixed = _weight_arrays(record, weights_registry or {}) + _constant_arrays(
            record, getattr(artifact, "constants", b""))
        exe = CpuExecutable(function, sigs, outs, record.checks, record.name, fixed=fixed)
        model = cls(exe, record, device or CPU(), artifact)
        model._kernel_run = _profiling.kernel_run(function, record, exe.run)
        return model

    @property
    def name(self) -> str:
        """The graph's name."""
        return self._record.name

    @property
    def input_metadata(self) -> list[TensorSpec]:
        """Metadata about the model's input tensors, as a list of :class:`TensorSpec` objects.

        For example, you can print the input tensor names, shapes, and dtypes::

            for tensor in model.input_metadata:
                print(f'name: {tensor.name}, shape: {tensor.shape}, dtype: {tensor.dtype}')
        """
        return list(self._input_specs)

    @property
    def output_metadata(self) -> list[TensorSpec]:
        """Metadata about the model's output tensors, as a list of :class:`TensorSpec` objects.

        For example, you can print the output tensor names, shapes, and dtypes::

            for tensor in model.output_metadata:
                print(f'name: {tensor.name}, shape: {tensor.shape}, dtype: {tensor.dtype}')
        """
        return list(self._output_specs)

    def execute(self, *args: Any) -> list[Tensor]:
        """Executes the model on ``args``, one per input, and returns its outputs.

        Args:
            args: numpy arrays, :class:`~max.driver.Tensor`\\ s, DLPack arrays, or Python
                scalars (for rank-0 inputs).

        Returns:
            A list of :class:`~max.driver.Tensor`, one per output.

        Raises:
            ValueError: wrong number of inputs, a wrong rank or static dim, a symbolic dim
                bound to two different sizes, or a failed runtime check.
            IndexError: a failed bounds check (an index out of range).
            TypeError: an input of the wrong dtype or of an unsupported type.
        """
        if len(args) != self._n_in:
            raise ValueError(f"model {self.name!r} expects {self._n_in} inputs, got {len(args)}")
        if not _TRACE.enabled:
            # A call like this thread's last one (max.runtime.fast_call), else None.
            fast = self._exe.fast_call()
            if fast is not None:
                outs = fast(*args)
                if outs is not None:
                    return outs
        wrap = self._wrap
        device = self._device
        if not self._buffers and not _TRACE.enabled:
            # The fast path: numpy arrays and Tensors, C-contiguous and aligned. Anything
            # else takes the general loop below (conversion, copies); run() checks dtypes
            # and shapes either way.
            plain = _PLAIN_INPUTS
            arrays = []
            for a in args:
                t = type(a)
                if t not in plain:
                    break
                arr = a if t is np.ndarray else a._array
                flags = arr.flags
                if not (flags.c_contiguous and flags.aligned):
                    break
                arrays.append(arr)
            else:
                return [wrap(o, dt, device) for o, dt in zip(self._run(arrays), self._out_dtypes)]
        arrays = []
        for i, a in enumerate(args):
            t = type(a)
            if t is np.ndarray:
                arr = a
            elif t is Tensor:
                arr = a._array
            else:
                arr = self._convert(i, a)
            flags = arr.flags
            if i in self._buffers:
                self._check_buffer(i, a, arr)
            elif not (flags.c_contiguous and flags.aligned):
                arr = np.array(arr, order="C", copy=True)
            arrays.append(arr)
        if self._buffers:
            self._check_aliasing(arrays)
        # max.profiler on: the call is a span, with the kernels of a profiled build inside.
        outs = _profiling.traced_run(self, arrays) if _TRACE.enabled else self._run(arrays)
        return [wrap(o, dt, device) for o, dt in zip(outs, self._out_dtypes)]

    def __call__(self, *args: Any, **kwargs: Any) -> list[Tensor]:
        """Call self as a function: :meth:`execute`, with inputs also by name as keywords."""
        if kwargs:
            args = self._bind_keywords(args, kwargs)
        return self.execute(*args)

    def _bind_keywords(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        names = [s.name for s in self._input_specs]
        values: list[Any] = list(args) + [_MISSING] * (len(names) - len(args))
        for key, value in kwargs.items():
            if key not in names:
                raise TypeError(f"model {self.name!r} has no input named {key!r} "
                                f"(inputs: {', '.join(names)})")
            k = names.index(key)
            if k < len(args):
                raise TypeError(f"input {key!r} given both by position and by name")
            values[k] = value
        missing = [names[k] for k, v in enumerate(values) if v is _MISSING]
        if missing:
            raise ValueError(f"model {self.name!r}: missing inputs {', '.join(missing)}")
        return tuple(values)

    def _check_buffer(self, i: int, given: Any, arr: np.ndarray) -> None:
        """A buffer input must be the caller's own memory, usable as is: a copy would take
        the updates away from the caller."""
        where = f"input {i} ({self._input_specs[i].name}, a buffer)"
        if isinstance(given, bool | int | float | np.generic):
            raise TypeError(f"{where}: a scalar cannot be updated in place; pass an array")
        flags = arr.flags
        if not (flags.c_contiguous and flags.aligned):
            raise ValueError(f"{where}: the array is not contiguous; pass a C-contiguous "
                             "array (np.ascontiguousarray makes a copy, which is then updated)")
        if not flags.writeable:
            raise ValueError(f"{where}: the array is read-only; pass a writeable array")

    def _check_aliasing(self, arrays: list[np.ndarray]) -> None:
        """The compiled code may read a tensor input after it wrote a buffer (and the ABI
        promises distinct memory): a buffer sharing memory with another input is refused."""
        for i in sorted(self._buffers):
            for j, other in enumerate(arrays):
                if j != i and arrays[i].size and other.size and np.may_share_memory(
                        arrays[i], other):
                    raise ValueError(f"input {i} ({self._input_specs[i].name}, a buffer) shares "
                                     f"memory with input {j}; pass a separate array")

    def _convert(self, i: int, a: Any) -> np.ndarray:
        sig = self._in_sigs[i]
        if isinstance(a, Tensor):
            return a._array
        if isinstance(a, np.ndarray):
            return a
        if isinstance(a, bool | int | float) and not isinstance(a, np.generic):
            if sig.dims:
                raise TypeError(f"input {i}: a Python {type(a).__name__} can only be passed for "
                                f"a rank-0 input, but input {i} has shape "
                                f"[{', '.join(str(d) for d in sig.dims)}]")
            kind = sig.dtype.kind
            if (isinstance(a, float) and kind != "f" and sig.dtype.name not in _FLOAT_LIKE) or (
                    not isinstance(a, bool) and kind == "b"):
                raise TypeError(f"input {i}: expected dtype {sig.dtype}, got Python "
                                f"{type(a).__name__} {a!r}")
            try:
                return np.asarray(a, dtype=sig.dtype)
            except OverflowError as e:
                raise ValueError(f"input {i}: {a!r} does not fit dtype {sig.dtype}: {e}") from None
        if isinstance(a, np.generic):
            return np.asarray(a)
        if type(a).__name__ == "Tensor" and type(a).__module__.startswith("torch"):
            try:
                return a.numpy()  # zero-copy and ~4x faster than DLPack for CPU tensors
            except (RuntimeError, TypeError):
                pass  # grad, conjugate, bfloat16, non-CPU...: DLPack says why, or copes
        if hasattr(a, "__dlpack__"):
            try:
                return _dlpack.import_array(a)
            except Exception as e:  # noqa: BLE001 (re-raised with the input's index)
                raise TypeError(f"input {i}: could not import {type(a).__name__} through "
                                f"DLPack: {e}") from None
        raise TypeError(f"input {i}: unsupported input type {type(a).__module__}."
                        f"{type(a).__qualname__}; expected a numpy array, a max.driver.Tensor, "
                        f"a DLPack array or a Python scalar")

    def __repr__(self) -> str:
        ins = ", ".join(str(s) for s in self._input_specs)
        return f"Model({self.name!r}, inputs=[{ins}])"


def _weight_arrays(record: ArtifactRecord, registry: Mapping[str, Any]) -> list[np.ndarray]:
    """The arrays of the graph's named weights, from ``weights_registry``, each checked
    against its declared type (the compiled code trusts the dims). A weight the compiled code
    reads in another layout (``record.weight_layouts``: a transposed or panel matmul operand)
    is rearranged into a copy here, once (shared by the models loaded with the same read-only
    array); a non-contiguous array is copied once; the others
    are used in place, zero-copy, and must outlive the model (as in MAX)."""
    out = []
    for w, layout in zip(record.weights, record.weight_layouts, strict=True):
        if w.name not in registry:
            raise ValueError(f"model {record.name!r}: weight {w.name!r} is missing from "
                             "weights_registry")
        value = registry[w.name]
        if isinstance(value, Tensor):
            array = value._array
        elif isinstance(value, np.ndarray):
            array = value
        else:
            array = _dlpack.import_array(value)
        want = DType[w.dtype].to_numpy()
        if array.dtype != want:
            raise TypeError(f"weight {w.name!r}: expected dtype {w.dtype}, got {array.dtype}")
        if tuple(array.shape) != tuple(w.dims):
            raise ValueError(f"weight {w.name!r}: expected shape {list(w.dims)}, got "
                             f"{list(array.shape)}")
        if layout:  # a copy: in huge pages, which a decode step streams through
            array = _laid_out(array, layout)
        elif not (array.flags.c_contiguous and array.flags.aligned):
            array = np.ascontiguousarray(array)
        out.append(array)
    return out


# Rearranged copies of read-only weights, shared by every model loaded with the same array
# (a decoder's prefill and decode graphs load the same weights): (id(source), layout) ->
# (the source, weakly; the copy, weakly: it lives while a model uses it).
_LAID_OUT: dict[tuple[int, str], tuple[weakref.ref, weakref.ref]] = {}
_LAID_OUT_LOCK = threading.Lock()


def _laid_out(array: np.ndarray, layout: str) -> np.ndarray:
    """``array`` in ``layout``, in huge pages. A read-only array is taken as immutable: its
    copy is made once and shared while any model holds it; a writable one (its owner may
    change it between loads) gets a copy of its own at each load."""
    def fresh() -> np.ndarray:
        return apply_layout(array, layout, out=hugepages.empty(array.shape, array.dtype))

    if array.flags.writeable:
        return fresh()
    key = (id(array), layout)
    with _LAID_OUT_LOCK:
        hit = _LAID_OUT.get(key)
        copy = hit[1]() if hit is not None and hit[0]() is array else None
        if copy is not None:
            return copy
        copy = fresh()
        try:
            # Dropped with the source (before its id can be reused) or when no model uses it.
            source = weakref.ref(array, lambda _, key=key: _LAID_OUT.pop(key, None))
            _LAID_OUT[key] = (source, weakref.ref(copy))
        except TypeError:  # an array type without weak references: not shared
            pass
        return copy


def _constant_arrays(record: ArtifactRecord, blob: bytes) -> list[np.ndarray]:
    """Read-only numpy views of the externalized constants (the compiled code only reads them).

    The record guarantees each constant's bytes match its dtype and dims and the packed
    layout; the cache checked that ``blob`` (sha256-verified) has exactly that length.
    """
    return [np.frombuffer(blob, DType[c.dtype].to_numpy(), int(np.prod(c.dims)),
                          c.offset).reshape(c.dims)
            for c in record.constants]


_MISSING = object()
_FLOAT_LIKE = ("bfloat16", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz",
               "float4_e2m1fn")
