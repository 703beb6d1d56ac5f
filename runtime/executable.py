"""Calling a compiled CPU graph: shape binding, output allocation, prepared call frames.

Everything that does not change between calls is prepared once: the descriptor Structures,
the tuple of pointers passed to the entry, the static sizes and strides, the checks buffer.
Each call only writes data pointers (and the sizes/strides of dynamic arguments). Call frames
are per thread, so concurrent calls on one executable never share mutable descriptors.

The shape checks of dynamic inputs are done once per signature and input shapes: their
result (each descriptor's sizes and strides as bytes, the outputs' shapes) is shared by every
executable of that signature (a decoder's layers, each loaded with its own weights) and copied
into the descriptors with one ``memmove`` each; a call with the frame's last shapes writes
only the addresses. Interpreter work between two compiled calls costs several times its
usual time after a call that streamed megabytes of weights through the caches: SmolLM2's
decode step spent ~29 us between two blocks before, ~21 us after (30 blocks a step).
"""

from __future__ import annotations

import ctypes
import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from max.runtime import fast_call as _fast
from max.runtime.artifact import data_dependent_outputs, entry_num_args
from max.runtime.loader import CpuFunction
from max.runtime.memref import adopt_allocation, data_pointer, descriptor_class, set_shape
from max.runtime.pool import MIN_POOLED_BYTES, pooled_empty
from max.runtime.shapes import ShapeBinder, format_dims


@dataclass(frozen=True)
class TensorSig:
    """An argument of a compiled graph: numpy dtype, dims (int, symbol or expression), name."""

    dtype: np.dtype
    dims: tuple[int | str, ...]
    name: str | None = None


# (sizes and strides of each dynamic input, of each dynamic output, (shape, pooled) of each
# output) for one signature and input shapes: see CpuExecutable._bind_inputs.
_Layout = tuple[list["bytes | None"], list["bytes | None"], list[tuple[tuple[int, ...], bool]]]
_LAYOUTS: dict[tuple[int, tuple[tuple[int, ...], ...]], _Layout] = {}
_SIGNATURES: dict[object, int] = {}
_MAX_LAYOUTS = 4096  # then cleared: a model fed ever new shapes does not grow it forever


def _dims_bytes(shape: tuple[int, ...]) -> bytes:
    """A descriptor's sizes then row-major strides (int64, native order) for ``shape``."""
    strides = [1] * len(shape)
    acc = 1
    for k in range(len(shape) - 1, -1, -1):
        strides[k] = acc
        acc *= shape[k]
    return np.array(list(shape) + strides, np.int64).tobytes()


def _dims_address(desc: ctypes.Structure) -> int:
    """The address of a descriptor's sizes (its strides follow), 0 for rank 0 (none)."""
    field = getattr(type(desc), "sizes", None)
    return 0 if field is None else ctypes.addressof(desc) + field.offset


class _InputPlan:
    __slots__ = ("sig", "dtype", "rank", "static_shape")

    def __init__(self, sig: TensorSig) -> None:
        self.sig = sig
        self.dtype = np.dtype(sig.dtype)
        self.rank = len(sig.dims)
        self.static_shape = tuple(sig.dims) if all(type(d) is int for d in sig.dims) else None


class _OutputPlan:
    """An output the caller allocates (output ``index`` of the graph), its shape computed
    from the input symbols."""

    __slots__ = ("sig", "index", "dtype", "static_shape", "pooled")

    def __init__(self, sig: TensorSig, index: int) -> None:
        self.sig = sig
        self.index = index
        self.dtype = np.dtype(sig.dtype)
        self.static_shape = tuple(sig.dims) if all(type(d) is int for d in sig.dims) else None
        # Whether a static output is large enough for the pool (dynamic ones: per call).
        self.pooled = (self.static_shape is not None and self.dtype.itemsize
                       * math.prod(self.static_shape) >= MIN_POOLED_BYTES)


class _Frame:
    """One thread's descriptors and argument pointers."""

    __slots__ = ("in_descs", "out_descs",
                 "args", "checks", "checks_bytes", "no_checks", "returned", "_keep",
                 "last_shapes", "last_outs", "in_dims", "out_dims")

    def __init__(self, inputs: list[_InputPlan], outputs: list[_OutputPlan], num_checks: int,
                 returned_ranks: Sequence[int] = (), fixed: Sequence[np.ndarray] = ()):
        self.in_descs = [descriptor_class(p.rank)() for p in inputs]
        # The fixed inputs (weights, constants: static shapes, checked once) are the last
        # ones; their descriptors are complete from the start.
        for desc, arr in zip(self.in_descs[len(inputs) - len(fixed):], fixed):
            desc.allocated = desc.aligned = data_pointer(arr)
        self.out_descs = [descriptor_class(len(p.sig.dims))() for p in outputs]
        for desc, plan in zip(self.in_descs, inputs):
            if plan.static_shape is not None and plan.rank:
                set_shape(desc, plan.static_shape)
        for desc, plan in zip(self.out_descs, outputs):
            if plan.static_shape is not None and plan.static_shape:
                set_shape(desc, plan.static_shape)
        # Where each descriptor's sizes (then strides) start: after allocated, aligned, offset.
        self.in_dims = [_dims_address(d) for d in self.in_descs]
        self.out_dims = [_dims_address(d) for d in self.out_descs]
        descs = self.in_descs + self.out_descs
        self.checks = None
        # The last call's input shapes, all checked, and its outputs' (shape, pooled): a call
        # with the same shapes reuses the descriptors' sizes and strides as they are.
        self.last_shapes: tuple[tuple[int, ...], ...] | None = None
        self.last_outs: list[tuple[tuple[int, ...], bool]] = []
        self.checks_bytes: memoryview | None = None
        self.no_checks = b""
        if num_checks:
            self.checks = np.zeros(num_checks, np.int8)
            # A byte comparison is ~15x faster than checks.any() (per call, per graph).
            self.checks_bytes = memoryview(self.checks).cast("B")
            self.no_checks = bytes(num_checks)
            cdesc = descriptor_class(1)()
            set_shape(cdesc, (num_checks,))
            cdesc.allocated = cdesc.aligned = self.checks.ctypes.data
            descs.append(cdesc)
        # Outputs the compiled code allocates come back through one pointer, first, to a
        # struct of their descriptors (the C interface of a function with results).
        self.returned = None
        if returned_ranks:
            fields = [(f"r{k}", descriptor_class(r)) for k, r in enumerate(returned_ranks)]
            self.returned = type("Returned", (ctypes.Structure,), {"_fields_": fields})()
            descs.insert(0, self.returned)
        self._keep = descs
        self.args = tuple(ctypes.c_void_p(ctypes.addressof(d)) for d in descs)
        # Only the inputs given at each call are written by run().
        n = len(inputs) - len(fixed)
        self.in_descs, self.in_dims = self.in_descs[:n], self.in_dims[:n]


class CpuExecutable:
    """A compiled graph, callable with numpy arrays.

    Args:
        function: the loaded entry point.
        inputs: the graph's inputs.
        outputs: the graph's outputs.
        checks: the messages of the runtime checks (one byte each in the checks buffer).
        name: the graph's name, for messages.
        fixed: arrays of the last inputs, the same at every call (weights, constants), of
            static shapes: checked and bound here, once; :meth:`run` then takes only the
            inputs before them. They must stay alive and unmoved (this object keeps them).

    Outputs of at least :data:`~max.runtime.pool.MIN_POOLED_BYTES` come from the process's
    output pool (:mod:`max.runtime.pool`): their pages are reused once the arrays are gone.
    """

    def __init__(self, function: CpuFunction, inputs: Sequence[TensorSig],
                 outputs: Sequence[TensorSig], checks: Sequence[str] = (), name: str = "graph",
                 fixed: Sequence[np.ndarray] = ()):
        self.name = name
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.checks = list(checks)
        # Outputs sized by the data are allocated by the compiled code and returned.
        self._returned = data_dependent_outputs([s.dims for s in self.inputs],
                                                [s.dims for s in self.outputs])
        expected = entry_num_args(len(self.inputs), len(self.outputs), len(self.checks),
                                  len(self._returned))
        if function.num_args != expected:
            raise ValueError(f"entry of {name!r} takes {function.num_args} arguments, "
                             f"expected {expected}")
        self._function = function
        self._fn = function.fn
        self._free = getattr(function, "free", None)
        self._plans = [_InputPlan(s) for s in self.inputs]
        self._fixed = list(fixed)
        self._in = self._plans[: len(self._plans) - len(self._fixed)]
        if self._fixed:
            self._check_fixed(self._plans[len(self._in):], self._fixed)
        self._out = [_OutputPlan(s, j) for j, s in enumerate(self.outputs)
                     if j not in self._returned]
        self._returned_sigs = [self.outputs[j] for j in self._returned]
        # Only the inputs a call passes: the fixed ones were checked above.
        self._shapes = ShapeBinder(name, [p.sig.dims for p in self._in],
                                   [s.dims for s in self.outputs],
                                   [p.sig.name for p in self._in])
        # What the shape checks depend on: executables with equal keys share their results.
        sig = (tuple((np.dtype(s.dtype).str, tuple(s.dims)) for s in self.inputs),
               tuple((np.dtype(s.dtype).str, tuple(s.dims)) for s in self.outputs),
               len(self._fixed), tuple(self._returned))
        self._sig_key = _SIGNATURES.setdefault(sig, len(_SIGNATURES))  # an int: hashed fast
        self._local = threading.local()
        self._fast_spec: tuple[type | None, Any] | None = None

    def enable_fast_calls(self, unwrap: type | None = None, wrap: Any = None) -> bool:
        """Gives each thread's frame a generated call for calls like its last one
        (:mod:`max.runtime.fast_call`: ``unwrap`` and ``wrap`` as there), found by
        :meth:`fast_call`. Not where the compiled code allocates outputs; returns whether
        enabled."""
        if self._returned:
            return False
        self._fast_spec = (unwrap, wrap)
        return True

    def fast_call(self) -> _fast.FastCall | None:
        """This thread's generated call, once a call made its frame (None before, or where
        not enabled). It returns None for a call it does not cover: then call :meth:`run`."""
        try:
            return self._local.fast
        except AttributeError:
            return None

    def _frame(self) -> _Frame:
        frame = _Frame(self._plans, self._out, len(self.checks),
                       [len(sig.dims) for sig in self._returned_sigs], self._fixed)
        self._local.frame = frame
        if self._fast_spec is not None:
            # Beside the frame, not in it, and nothing of self inside: no reference cycle
            # (a model that is gone unmaps its code at once).
            unwrap, wrap = self._fast_spec
            messages = self.checks
            self._local.fast = _fast.build(
                frame, [p.dtype for p in self._in],
                [(p.dtype, p.static_shape, p.pooled) for p in self._out],
                self._fn, lambda checks: _raise_check(messages, checks), unwrap, wrap)
        return frame

    def run(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Runs the graph on C-contiguous arrays (the inputs before the fixed ones) and
        returns its outputs, in memory no other live array uses.

        Raises:
            ValueError: wrong number of inputs, wrong rank or shape, a symbol bound to two
                sizes, or a failed runtime check (``IndexError`` for out-of-bounds indices).
            TypeError: an input of the wrong dtype.
        """
        if len(arrays) != len(self._in):
            raise ValueError(f"model {self.name!r} expects {len(self._in)} inputs, "
                             f"got {len(arrays)}")
        try:
            frame = self._local.frame
        except AttributeError:
            frame = self._frame()
        self._bind_inputs(arrays, frame)
        outs = self._outputs(frame.last_outs, frame)
        self._fn(*frame.args)
        if frame.returned is not None:
            # Taken over before any check raises: each array frees its memory when dropped.
            for k, (j, sig) in enumerate(zip(self._returned, self._returned_sigs)):
                outs.insert(j, adopt_allocation(getattr(frame.returned, f"r{k}"), sig.dtype,
                                                self._free))
        if frame.checks_bytes is not None and frame.checks_bytes != frame.no_checks:
            self._raise_check(frame.checks)
        return outs

    def _bind_inputs(self, arrays: Sequence[np.ndarray], frame: _Frame) -> None:
        """Checks the inputs' dtypes and shapes and writes their descriptors and the
        outputs' sizes and strides (``frame.last_outs``: each output's shape and whether
        it comes from the pool)."""
        shapes = tuple([arr.shape for arr in arrays])
        if shapes != frame.last_shapes:
            # Shapes whose checks passed before, in any executable of the same signature
            # (the layers of a decoder), are not checked again: their sizes and strides
            # are copied into the descriptors as they were computed then.
            key = (self._sig_key, shapes)
            layout = _LAYOUTS.get(key)
            if layout is None:
                layout = self._layout(shapes)
                if len(_LAYOUTS) >= _MAX_LAYOUTS:
                    _LAYOUTS.clear()
                _LAYOUTS[key] = layout
            ins, outs, frame.last_outs = layout
            memmove = ctypes.memmove
            for address, dims in zip(frame.in_dims, ins):
                if dims is not None:
                    memmove(address, dims, len(dims))
            for address, dims in zip(frame.out_dims, outs):
                if dims is not None:
                    memmove(address, dims, len(dims))
            frame.last_shapes = shapes
        for arr, plan, desc in zip(arrays, self._in, frame.in_descs):
            dtype = arr.dtype
            if dtype is not plan.dtype and dtype != plan.dtype:
                i = self._in.index(plan)
                raise TypeError(f"input {i}{self._label(plan)}: expected dtype "
                                f"{plan.dtype}, got {arr.dtype}")
            p = data_pointer(arr)
            desc.allocated = p
            desc.aligned = p

    def _layout(self, shapes: tuple[tuple[int, ...], ...]) -> _Layout:
        """Checks the inputs' shapes (ranks, static dims, symbols bound once, dims given by
        expressions) and computes the outputs' shapes; raises as :meth:`run`."""
        bindings = self._shapes.bind(shapes)
        # Static descriptors are written once, with the frame (None here).
        ins = [None if plan.static_shape is not None else _dims_bytes(shape)
               for plan, shape in zip(self._in, shapes)]
        outs: list[bytes | None] = []
        layouts = []
        for plan in self._out:
            shape = plan.static_shape
            if shape is None:
                shape = self._shapes.output_shape(plan.index, bindings)
                outs.append(_dims_bytes(shape))
            else:
                outs.append(None)
            layouts.append((shape, plan.pooled or (
                shape is not plan.static_shape
                and plan.dtype.itemsize * math.prod(shape) >= MIN_POOLED_BYTES)))
        return ins, outs, layouts

    def _outputs(self, layouts: list[tuple[tuple[int, ...], bool]], frame: _Frame
                 ) -> list[np.ndarray]:
        """New arrays for the outputs the caller allocates, their addresses in the
        descriptors (whose sizes and strides are already written)."""
        outs = []
        for plan, desc, (shape, pooled) in zip(self._out, frame.out_descs, layouts):
            if pooled:
                out, p = pooled_empty(shape, plan.dtype, plan.dtype.itemsize * math.prod(shape))
            else:
                out = np.empty(shape, plan.dtype)
                p = data_pointer(out)
            desc.allocated = p
            desc.aligned = p
            outs.append(out)
        return outs

    def _check_fixed(self, plans: list[_InputPlan], arrays: list[np.ndarray]) -> None:
        for k, (plan, arr) in enumerate(zip(plans, arrays)):
            i = len(self.inputs) - len(arrays) + k
            if plan.static_shape is None:
                raise ValueError(f"input {i}{self._label(plan)} of {self.name!r}: a fixed input "
                                 f"must have a static shape, not {format_dims(plan.sig.dims)}")
            if arr.dtype != plan.dtype:
                raise TypeError(f"input {i}{self._label(plan)}: expected dtype {plan.dtype}, "
                                f"got {arr.dtype}")
            if arr.shape != plan.static_shape:
                raise ValueError(f"input {i}{self._label(plan)} of {self.name!r}: expected "
                                 f"shape {format_dims(plan.static_shape)}, got "
                                 f"{list(arr.shape)}")
            if not (arr.flags.c_contiguous and arr.flags.aligned):
                raise ValueError(f"input {i}{self._label(plan)}: a fixed input must be "
                                 "C-contiguous and aligned")

    @staticmethod
    def _label(plan: _InputPlan) -> str:
        return f" ({plan.sig.name!r})" if plan.sig.name else ""

    def _raise_check(self, checks: np.ndarray) -> None:
        _raise_check(self.checks, checks)


def _raise_check(messages: Sequence[str], checks: np.ndarray) -> None:
    """Raises the failed checks of a call (and clears them for the next one)."""
    failed = np.flatnonzero(checks)
    checks[:] = 0
    raise_failed_checks(messages, failed)


def raise_failed_checks(messages: Sequence[str], failed: Iterable[int]) -> None:
    """Raises the error of the failed runtime checks (indices into ``messages``):
    IndexError for an index out of range, else ValueError (the CPU and GPU models alike)."""
    message = "; ".join(messages[k] for k in failed)
    low = message.lower()
    if "index" in low or "bound" in low:
        raise IndexError(message)
    raise ValueError(message)
