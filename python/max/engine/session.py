"""``InferenceSession``: compiles graphs (out of process, cached) and loads them as Models."""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
import pathlib
import re
from collections.abc import Iterable, Mapping
from typing import Any, Union

from max.driver import CPU, Accelerator, Device
from max.engine.model import Model

CustomExtensionsType = Union[list[Union[str, pathlib.Path, Any]], str, pathlib.Path, Any]

_BYTECODE_MAGIC = b"ML\xefR"


class GPUProfilingMode(str, enum.Enum):
    """The supported modes for GPU profiling."""

    OFF = "off"
    ON = "on"
    DETAILED = "detailed"


class LogLevel(str, enum.Enum):
    """The LogLevel specifies the log level used by the Mojo Ops."""

    NOTSET = "notset"
    TRACE = "trace"
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class InferenceSession:
    """Manages an inference session in which you can load and run models.

    You need an instance of this to load a model as a :class:`Model` object. For example:

    .. code-block:: python

        session = engine.InferenceSession(devices=[CPU()])
        model = session.load(graph)

    Args:
        devices: A list of devices on which to run inference. Default is the host CPU only.
        num_threads: Number of threads to use for the inference session. This defaults to the
            CPUs this process may run on (or ``$MAX_CPU_THREADS``).
        custom_extensions: The extensions to load for the model: paths to ``.mlir`` files
            of custom kernels, or folders of them (each ``*.mlir`` file in it), which
            :func:`~max.graph.ops.custom` ops call (README, "Custom kernels"). Mojo packages are
            not supported (``NotImplementedError``).
    """

    def __init__(self, devices: Iterable[Device] | None = None, num_threads: int | None = None,
                 *, custom_extensions: CustomExtensionsType | None = None) -> None:
        self._devices = list(devices) if devices is not None else [CPU()]
        if not self._devices:
            raise ValueError("InferenceSession needs at least one device")
        from max.compiler.cache import threads_from_env

        if num_threads is not None and (not isinstance(num_threads, int)
                                        or isinstance(num_threads, bool) or num_threads < 1):
            raise ValueError(f"num_threads must be a positive integer, got {num_threads!r}")
        # Checked here, not only where a compile reads it: a typo fails at once, clearly.
        env_threads = threads_from_env()
        from max.engine import _profiling

        _profiling.setup()  # MAX_PROFILE_KERNELS, MODULAR_ENABLE_PROFILING
        from max.runtime.pool import SCRATCH_BYTES_ENV, pool_limit_from_env

        pool_limit_from_env()  # likewise a malformed $MAX_OUTPUT_POOL_BYTES
        pool_limit_from_env(SCRATCH_BYTES_ENV)  # and $MAX_SCRATCH_POOL_BYTES
        self._num_threads = num_threads or env_threads or os.cpu_count() or 1
        from max.compiler.extensions import find_extensions

        self._extensions = find_extensions(custom_extensions, "InferenceSession")
        self._gpu_profiling = GPUProfilingMode.OFF
        self._log_level = LogLevel.NOTSET
        self._options: dict[str, Any] = {}
        if num_threads is not None:  # compiled in: the models of this session use this many
            self._options["threads"] = num_threads

    @property
    def devices(self) -> list[Device]:
        """A list of available devices."""
        return list(self._devices)

    def load(self, model: str | pathlib.Path | Any, *,
             custom_extensions: CustomExtensionsType | None = None,
             custom_ops_path: str | None = None,
             weights_registry: Mapping[str, Any] | None = None) -> Model:
        """Loads a trained model and compiles it for inference.

        Args:
            model: A :class:`~max.graph.Graph`, an ``mlir.ir.Module`` holding one graph, or
                a path to a saved graph (``.mlirbc`` bytecode or ``.mlir`` text).
            custom_extensions: Further ``.mlir`` kernel files or folders for this model, beside
                the session's. The files are read at each load (their text is part of the
                cache key).
            custom_ops_path: Deprecated, use ``custom_extensions`` instead.
            weights_registry: A mapping from names of model weights' names to their values
                (numpy arrays, :class:`~max.driver.Tensor`\\ s or DLPack arrays): the values
                of the graph's ``ops.constant_external`` weights. The arrays are used in
                place (not copied unless non-contiguous) and must outlive the model.

        Returns:
            The loaded model, compiled and ready to execute.

        Raises:
            RuntimeError: If the path provided is invalid, the file is not a graph, or the
                compiler crashed.
            CompilationError: If the compiler rejects the graph, or a custom kernel: a file
                that does not parse, a kernel that is missing or whose signature does not
                match its op (the message names the kernel, argument and types).
            ValueError: If ``$MAX_CPU_THREADS`` or ``$MAX_CACHE_SIZE`` is malformed, a weight
                is missing from ``weights_registry`` or has another shape, or a custom
                extension is missing or unreadable.
            TypeError: If a weight has another dtype.
        """
        from max.compiler.driver import compile_graph
        from max.compiler.extensions import find_extensions, read_extensions
        from max.runtime import load_jit, load_shared_object

        where = "InferenceSession.load"
        paths = [*self._extensions, *find_extensions(custom_extensions, where)]
        if custom_ops_path is not None:
            paths += find_extensions([custom_ops_path], where)
        graph: Any = model
        label = None
        if isinstance(model, str | pathlib.Path | os.PathLike):
            path = pathlib.Path(model)
            label = str(path)
            try:
                graph = path.read_bytes()
            except FileNotFoundError:
                raise RuntimeError(f"model file not found: {path}") from None
            except OSError as e:
                raise RuntimeError(f"cannot read model file {path}: {e}") from None
            if path.suffix == ".mlirbc" and not graph.startswith(_BYTECODE_MAGIC):
                raise RuntimeError(f"{path} is not MLIR bytecode (bad magic number)")
        elif hasattr(model, "_module"):
            if hasattr(model, "_require_output"):
                model._require_output("load")
            graph = model  # the Graph itself: the compiler keeps digests beside its context
            paths += find_extensions(getattr(model, "kernel_libraries_paths", None), "Graph")
        elif hasattr(model, "operation") and hasattr(model, "body"):  # an mlir.ir.Module
            graph = model
        else:
            raise TypeError(f"InferenceSession.load: expected a Graph or a path, got "
                            f"{type(model).__name__}")
        extensions = read_extensions(paths)
        accelerator = self._accelerator_of(graph)
        target, options = "cpu", dict(self._options)
        if accelerator is not None:
            from max.engine._gpu_model import gpu_target

            target, gpu_options = gpu_target(accelerator)
            options = {**{k: v for k, v in options.items() if k != "threads"}, **gpu_options}
        artifact = compile_graph(graph, target, options or None, label=label,
                                 extensions=extensions)
        record = artifact.record  # validated by the cache, types checked against the graph
        _report_fallbacks(record.name, record.fallbacks)
        if accelerator is not None:
            return _load_gpu(artifact, record, accelerator, weights_registry)
        if record.kind == "so":
            stem = re.sub(r"[^A-Za-z0-9_]", "_", record.name)[:40] or "model"
            function = load_shared_object(artifact.binary, symbol=record.entry,
                                          num_args=record.num_args, stem=stem,
                                          sha256=record.sha256)
        else:
            function = load_jit(artifact.binary, symbol=record.entry, num_args=record.num_args)
        # Compiled code runs on the host: outputs live in host memory.
        host = next((d for d in self._devices if getattr(d, "label", "") == "cpu"), None)
        # The model keeps the entry's constants (its inputs) but not a second copy of the code.
        kept = dataclasses.replace(artifact, binary=b"")
        return Model._from_record(function, record, host or CPU(), kept,
                                  weights_registry=weights_registry)

    def _accelerator_of(self, graph: Any) -> Accelerator | None:
        """The session's accelerator a graph is placed on (its tensors' ``gpu:N`` device),
        or None: the graph runs on the host. A graph read from bytes runs on the host."""
        accelerators = {d.id: d for d in self._devices if isinstance(d, Accelerator)}
        if not accelerators or isinstance(graph, bytes | str):
            return None  # a session of the CPU only runs every graph there (as before)
        from max.compiler.worker import ParseError, graph_types

        module = getattr(graph, "_module", graph)
        try:
            inputs, outputs = graph_types(module)
        except ParseError:
            return None
        # A graph whose inputs and outputs all live on the host may still move its work to
        # a GPU inside (``transfer_to``): its ops' types say where.
        placed = {int(m) for t in inputs + outputs + _result_types(module)
                  for m in _GPU_DEVICE.findall(t)}
        if not placed:
            return None
        if len(placed) > 1:
            raise NotImplementedError(f"graph places tensors on several GPUs {sorted(placed)}")
        ordinal = placed.pop()
        if ordinal not in accelerators:
            raise ValueError(f"graph places tensors on gpu:{ordinal}, which is not among the "
                             f"session's devices {self._devices}")
        return accelerators[ordinal]

    def gpu_profiling(self, mode: GPUProfilingMode) -> None:
        """Enables end to end gpu profiling configuration."""
        self._gpu_profiling = GPUProfilingMode(mode)

    def set_mojo_assert_level(self, level: Any) -> None:
        """Sets which mojo asserts are kept in the compiled model (no effect here)."""
        self._assert_level = level

    def set_mojo_log_level(self, level: str | LogLevel) -> None:
        """Sets the verbosity of mojo logging in the compiled model (no effect here)."""
        self._log_level = LogLevel(level)

    def set_split_k_reduction_precision(self, precision: Any) -> None:
        """Sets the accumulation precision for split k reductions in large matmuls (no effect)."""
        self._split_k_precision = precision

    def use_old_top_k_kernel(self, mode: str) -> None:
        """Enables the old top-k kernel (no effect here)."""
        self._old_top_k = str(mode).lower() not in ("false", "off", "no", "0")

    def __repr__(self) -> str:
        return f"InferenceSession(devices={self._devices!r}, num_threads={self._num_threads})"


_log = logging.getLogger("max.engine")
_GPU_DEVICE = re.compile(r'"gpu:(\d+)"')


def _result_types(module: Any) -> list[str]:
    """The type texts of every result in the graph's body (types only: a constant's data is
    never printed)."""
    from mlir import ir

    types: set[str] = set()

    def visit(op: Any) -> Any:
        for r in op.results:
            types.add(str(r.type))
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    return sorted(types)


def _load_gpu(artifact: Any, record: Any, device: Accelerator,
              weights_registry: Mapping[str, Any] | None) -> Model:
    """Opens a GPU model's host library on ``device`` (its constructor loads the kernels)."""
    from max.driver import _gpu
    from max.engine._gpu_model import GpuModel
    from max.runtime import load_shared_object

    if record.kind != "so":
        raise RuntimeError(f"model {record.name!r}: a GPU model must be a shared object, got "
                           f"{record.kind!r}")
    runtime = _gpu.runtime()
    runtime.use(device.id)  # the kernels' module is loaded on this device, at dlopen
    stem = re.sub(r"[^A-Za-z0-9_]", "_", record.name)[:40] or "model"
    # One mapping per device: a module loaded on one GPU cannot launch on another.
    function = load_shared_object(artifact.binary, symbol=record.entry, num_args=record.num_args,
                                  stem=stem, sha256=f"{record.sha256}:gpu{device.id}:"
                                  f"{runtime.library}")
    return GpuModel.load(function, record, device, artifact.constants, weights_registry)


def _report_fallbacks(name: str, fallbacks: tuple[str, ...]) -> None:
    """Kernels left to plain loops are never silent: logged on every load (the compile may have
    been another process's, long ago), a warning when the whole schedule failed."""
    if not fallbacks:
        return
    whole = fallbacks[0].startswith("whole module:")
    _log.log(logging.WARNING if whole else logging.INFO,
             "graph %r: %d kernel(s) left to plain loops (not tiled or vectorized): %s",
             name, len(fallbacks), "; ".join(fallbacks))
