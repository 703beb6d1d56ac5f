"""``GpuModel``: a graph compiled for an accelerator (the ``nvidia`` or ``amd`` target).

The binary is a host shared object whose entry takes memref descriptors of device memory and
calls MLIR's GPU runtime ABI (``mgpu*``), which ``max.runtime.gpu``'s shim implements over
the vendor driver; its global constructor loads the kernels' module (PTX JIT or HSACO) when
the library is opened, on the model's device. A call queues every kernel on the device's
default stream (the shim hands it to the host code) and returns without waiting; outputs are
new :class:`~max.driver.Tensor`\\ s in device memory, ordered on that stream, except those the
graph moves to the host (``transfer_to(y, DeviceRef.CPU())``), copied there when the kernels
are done. Every kernel of the graph runs on the device: ``transfer_to`` inside it is the value
itself, its host inputs and outputs cross at the call.

Inputs may be tensors on the model's device (used in place), host tensors, numpy arrays or
DLPack arrays (copied in). Weights and the graph's large constants are copied to the device
once, at load.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from max.driver import CPU, Accelerator, Tensor, _gpu
from max.dtype import DType
from max.engine.model import Model, _constant_arrays, _spec, _weight_arrays
from max.runtime import ArtifactRecord
from max.runtime.gpu import check
from max.runtime.executable import raise_failed_checks
from max.runtime.memref import descriptor_class
from max.runtime.shapes import ShapeBinder


def gpu_target(device: Accelerator) -> tuple[str, dict[str, Any]]:
    """The compile target and options for ``device``: ``("nvidia", {"arch": "sm_90"})``.

    An NVIDIA GPU between the tuned archs gets PTX for the newest one not above it (the
    driver JITs PTX forward: sm_80 PTX runs on an sm_86).
    """
    arch = device.architecture_name
    if device.api == "cuda":
        return "nvidia", {"arch": nvidia_arch(arch, str(device))}
    return "amd", {"arch": arch}


def nvidia_arch(arch: str, device: str = "the GPU") -> str:
    """The nvidia target's arch for a GPU of compute capability ``arch`` (``sm_86``): itself
    where the target is tuned for it, else the newest tuned plain arch below it (``sm_80``).

    Raises:
        ValueError: If no tuned arch is at or below ``arch``.
    """
    from max.compiler.targets.nvidia import SM_COUNT

    if arch in SM_COUNT:
        return arch
    found = re.fullmatch(r"sm_(\d+)a?", arch)
    tuned = {int(m.group(1)): a for a in SM_COUNT if (m := re.fullmatch(r"sm_(\d+)", a))}
    older = [n for n in tuned if found and n <= int(found.group(1))]
    if not older:
        raise ValueError(f"{device}: unsupported NVIDIA arch {arch!r} (the nvidia target "
                         f"compiles for {', '.join(SM_COUNT)})")
    return tuned[max(older)]


class GpuModel(Model):
    """A loaded model whose kernels run on an :class:`~max.driver.Accelerator`."""

    def __init__(self, function: Any, record: ArtifactRecord, device: Accelerator,
                 fixed: list[Tensor]) -> None:
        # Model's fields that its metadata, name and __call__ read (no CPU executable).
        self._record = record
        self._device = device
        self._artifact = None
        self._kernel_run = None
        self._input_specs = [_spec(t, f"input{i}") for i, t in enumerate(record.inputs)]
        self._output_specs = [_spec(t, f"output{i}") for i, t in enumerate(record.outputs)]
        self._n_in = len(self._input_specs)
        self._buffers = frozenset(i for i, t in enumerate(record.inputs)
                                  if t.type.kind == "buffer")
        self._out_dtypes = [s.dtype for s in self._output_specs]
        self._function = function
        self._fixed = fixed  # weights and constants, in device memory
        self._shapes = ShapeBinder(record.name, [t.dims for t in record.inputs],
                                   [t.dims for t in record.outputs],
                                   [t.name for t in record.inputs])
        # Static outputs with nothing to bind: their shapes computed once, not at every call.
        self._static_outputs = ([t.static_shape for t in self._shapes.outputs]
                                if self._shapes.all_static and all(
                                    t.static_shape is not None for t in self._shapes.outputs)
                                else None)
        self._checks = list(record.checks)
        self._runtime = _gpu.runtime()
        # Every kernel runs on ``device``; the graph's tensors typed on the host cross at the
        # call: such inputs are copied in (as any host input), such outputs copied out.
        self._host_outputs = [t.device.startswith("cpu") for t in record.outputs]
        self._host = CPU()

    @classmethod
    def load(cls, function: Any, record: ArtifactRecord, device: Accelerator,
             constants: bytes, weights_registry: Mapping[str, Any] | None) -> GpuModel:
        """The model of a loaded binary: weights and constants are copied to ``device``.

        Raises:
            GpuError: If loading the kernels (the constructor run at dlopen) failed.
            NotImplementedError: For what the GPU runtime does not run yet: outputs sized by
                the data.
        """
        runtime = _gpu.runtime()
        check(runtime.lib, 0, f"loading the kernels of model {record.name!r}")
        if record.returned_outputs:
            raise NotImplementedError(f"model {record.name!r}: outputs sized by the data "
                                      "on a GPU")
        hosts = _weight_arrays(record, weights_registry or {}) + _constant_arrays(
            record, constants)
        fixed = [Tensor.from_numpy(np.ascontiguousarray(a)).copy(device) for a in hosts]
        return cls(function, record, device, fixed)

    def execute(self, *args: Any) -> list[Tensor]:
        """Executes the model on ``args``, one per input, and returns its outputs (tensors in
        the model's device memory, queued on its default stream).

        Raises:
            ValueError: Wrong number of inputs, shape, or a tensor on another accelerator, or
                a failed runtime check (IndexError for an index out of range); a graph with
                runtime checks waits for its kernels to read their flags.
            TypeError: An input of the wrong dtype.
            GpuError: A driver call of the model failed (the message names it).
        """
        if len(args) != self._n_in:
            raise ValueError(f"model {self.name!r} expects {self._n_in} inputs, got {len(args)}")
        device = self._device
        inputs = [self._input(i, a) for i, a in enumerate(args)]
        shapes = self._static_outputs
        if shapes is None:
            bindings = self._shapes.bind([tuple(t.shape) for t in inputs])
            shapes = [self._shapes.output_shape(j, bindings) for j in range(len(self._output_specs))]
        outputs = [Tensor(spec.dtype, shape, device)
                   for spec, shape in zip(self._output_specs, shapes)]
        args_ = [*inputs, *self._fixed, *outputs]
        if self._checks:  # one flag a check, written by a kernel (compiler/gpu/from_elements.py)
            flags = Tensor(DType.int8, (len(self._checks),), device)
            args_.append(flags)
        descriptors = [_descriptor(t) for t in args_]
        pointers = [ctypes.addressof(d) for d in descriptors]
        stream = device.default_stream
        # Inputs bound to other streams: the kernels start after their work, and their
        # streams (which free or overwrite them later) wait for the kernels.
        others = {id(t.stream): t.stream for t in inputs if t.stream is not stream}
        for other in others.values():
            stream.wait_for(other)
        runtime = self._runtime
        runtime.use(device.id, stream.handle)
        try:
            self._function.fn(*pointers)
        finally:
            runtime.lib.max_gpu_use(device.id, None)
        check(runtime.lib, 0, f"running model {self.name!r} on {device}")
        for other in others.values():
            other.wait_for(stream)
        if self._checks:  # the copy to the host waits for the kernels: a call that checks
            failed = np.flatnonzero(flags.copy(self._host).to_numpy())  # is synchronous
            if failed.size:
                raise_failed_checks(self._checks, failed)
        # An output the graph moved to the host (``transfer_to(x, DeviceRef.CPU())``) is
        # copied there; the copy waits for the kernels.
        return [out.copy(self._host) if on_host else out
                for out, on_host in zip(outputs, self._host_outputs)]

    def _input(self, i: int, value: Any) -> Tensor:
        spec = self._input_specs[i]
        if isinstance(value, Tensor) and value.device == self._device:
            tensor = value
        else:
            if isinstance(value, Tensor):
                host = value
            elif isinstance(value, np.ndarray):
                host = Tensor.from_numpy(value)
            elif np.isscalar(value) and not self._shapes.inputs[i].rank:
                host = Tensor.from_numpy(np.asarray(value, spec.dtype.to_numpy()))
            else:
                host = Tensor.from_dlpack(value)
            if not host.is_host and host.device != self._device:
                raise ValueError(f"input {spec.name!r} is on {host.device}, the model on "
                                 f"{self._device}")
            tensor = host if not host.is_host else host.contiguous().copy(self._device)
        if tensor.dtype != spec.dtype:
            raise TypeError(f"input {spec.name!r}: expected dtype {spec.dtype.name}, got "
                            f"{tensor.dtype.name}")
        self._shapes.check_input(i, tuple(tensor.shape))
        return tensor

    def __repr__(self) -> str:
        return f"Model(name={self.name!r}, device={self._device})"


def _descriptor(tensor: Tensor) -> ctypes.Structure:
    """The memref descriptor of a contiguous tensor in device memory."""
    shape = tensor.shape
    desc = descriptor_class(len(shape))()
    ptr = tensor._data_ptr()
    desc.allocated = ptr
    desc.aligned = ptr
    desc.offset = 0
    if shape:
        acc = 1
        for k in range(len(shape) - 1, -1, -1):
            desc.sizes[k] = shape[k]
            desc.strides[k] = acc
            acc *= shape[k]
    return desc


__all__ = ["GpuModel", "gpu_target", "nvidia_arch"]

