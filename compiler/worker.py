"""Out-of-process compilation: ``python -m max.compiler.worker``.

The MLIR bindings are an assertion-enabled build: some bad inputs abort the process. So the
parent never compiles itself; it keeps one worker process per parent and sends it requests.

Protocol (over the child's stdin/stdout; stray prints are redirected to stderr): each message is
an 8-byte little-endian length followed by a pickled dict. A request is
``{"op": "compile", "graph": bytes, "target": str, "options": dict, "out_dir": str,
"debug": str | None, "extensions": [(label, text), ...]}`` (the custom kernels' ``.mlir``
sources, parsed here: ``max.compiler.kernels``). The worker answers ``{"event": "parsed", "name": NAME}`` once the graph
parsed, then ``{"event": "done", "ok": True, "meta": META}`` or
``{"event": "done", "ok": False, "kind": "parse" | "compile" | "internal", "message": str}``.
EOF at stdin ends the worker.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import os
import pickle
import struct
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from max.runtime.artifact import (
    CONSTANT_ALIGNMENT,
    CONSTANTS_FILE,
    META_FILE,
    META_HASH_FILE,
    ArtifactRecord,
    ConstantRecord,
    KernelRecord,
    MOType,
    TensorRecord,
    encode,
)

_HEADER = struct.Struct("<Q")


def write_message(stream: BinaryIO, message: dict[str, Any]) -> None:
    """Writes one framed message and flushes."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_message(stream: BinaryIO) -> dict[str, Any] | None:
    """Reads one framed message; None at a clean or truncated end of stream."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


class ParseError(Exception):
    """The graph could not be read (not MLIR, truncated, or no ``mo.graph`` function)."""


class InvalidGraphError(Exception):
    """The graph breaks an MO op's type rule (``max.dialects.mo.verify``)."""


def _names(func_op: Any, key: str, count: int) -> list[str | None]:
    """Argument/result names from ``arg_attrs``/``res_attrs`` (``{mo.name = "x"}``), if any."""
    from mlir import ir

    names: list[str | None] = [None] * count
    if key not in func_op.attributes:
        return names
    for i, d in enumerate(ir.ArrayAttr(func_op.attributes[key])):
        d = ir.DictAttr(d)
        for attr in ("mo.name", "name"):
            if attr in d:
                names[i] = ir.StringAttr(d[attr]).value
                break
    return names


def _signature(types: Any, names: list[str | None]) -> tuple[TensorRecord, ...]:
    return tuple(TensorRecord(MOType.parse(str(t)), name) for t, name in zip(types, names))


def graph_types(module: Any) -> tuple[list[str], list[str]]:
    """The type texts of the graph function's arguments and results (MLIR's spelling).

    Raises:
        ParseError: if the module does not hold exactly one ``mo.graph`` function.
    """
    from mlir import ir

    fn = _graph_function(module)
    ftype = ir.FunctionType(ir.TypeAttr(fn.attributes["function_type"]).value)
    return [str(t) for t in ftype.inputs], [str(t) for t in ftype.results]


def _graph_function(module: Any) -> Any:
    graphs = [op for op in module.body.operations
              if op.operation.name == "func.func" and "mo.graph" in op.operation.attributes]
    if len(graphs) != 1:
        raise ParseError(f"expected one function with the mo.graph attribute, found {len(graphs)}")
    return graphs[0].operation


def _pack_constants(values: list[Any]) -> tuple[list[ConstantRecord], bytes]:
    """The externalized constants as one blob, with where each one lies in it."""
    from max.dialects.mo.types import ELEMENT_TYPES

    by_numpy = {v: k for k, v in ELEMENT_TYPES.items()}
    entries, chunks, offset = [], [], 0
    for array in values:
        pad = -offset % CONSTANT_ALIGNMENT  # each on a cache line: aligned vector loads
        chunks.append(b"\0" * pad)
        offset += pad
        data = array.tobytes()
        entries.append(ConstantRecord(offset, len(data), tuple(int(d) for d in array.shape),
                                      array.dtype.name, by_numpy[array.dtype.name],
                                      hashlib.sha256(data).hexdigest()))
        chunks.append(data)
        offset += len(data)
    return entries, b"".join(chunks)


def compile_to_dir(graph: bytes, target: str, options: dict[str, Any], out_dir: Path,
                   *, on_parsed: Callable[[str], None] | None = None,
                   debug: str | None = None,
                   extensions: Sequence[tuple[str, str]] = ()) -> ArtifactRecord:
    """Compiles MO bytecode or text into ``out_dir`` (binary, constants, ``meta.json`` and
    ``meta.sha256``); returns the record. ``extensions`` are the ``(label, text)`` of the
    custom kernels' ``.mlir`` files that ``mo.custom`` ops call.

    Raises:
        ParseError: if the graph cannot be read.
        InvalidGraphError: if the MO verifier rejects it.
        CompilationError: if a pass rejects the graph.
    """
    from mlir import ir

    from max.compiler import cache
    from max.compiler.passes.registry import CompilationError, get_pass
    from max.dialects.mo import make_context

    if target not in ("cpu", *GPU_TARGETS):
        raise CompilationError(f"unsupported target {target!r} (targets: cpu, "
                               f"{', '.join(GPU_TARGETS)})")
    context = make_context()
    with context, ir.Location.unknown():
        try:
            module = ir.Module.parse(graph)
        except ir.MLIRError as e:
            raise ParseError(str(e)) from None
        fn = _graph_function(module)
        name = ir.StringAttr(fn.attributes["sym_name"]).value
        if on_parsed is not None:
            on_parsed(name)
        from max.dialects.mo.verify import VerificationError, verify_module

        try:  # untrusted until checked: no code is generated from a module that fails
            verify_module(module)
        except VerificationError as e:
            raise InvalidGraphError(str(e)) from None
        if debug == "abort":  # tests: simulate MLIR aborting on a bad graph
            os.abort()
        from max.compiler.kernels import KernelLibrary, use_library

        # Parsed whether or not an op calls them: a broken file is an error either way.
        library = KernelLibrary(extensions) if extensions else None
        try:
            canonicalize = get_pass("mo-canonicalize").fn
        except KeyError:
            canonicalize = None
        if canonicalize is not None and not options.get("no_canonicalize"):
            canonicalize(module)
            fn = _graph_function(module)
        ftype = ir.FunctionType(ir.TypeAttr(fn.attributes["function_type"]).value)
        inputs = _signature(ftype.inputs, _names(fn, "arg_attrs", len(ftype.inputs)))
        outputs = _signature(ftype.results, _names(fn, "res_attrs", len(ftype.results)))

        from max.compiler.passes.external_weights import bind_external_weights
        from max.compiler.passes.externalize import externalize_constants

        # Entry order: inputs, named weights (given at load), externalized constants.
        bound = bind_external_weights(module)
        weights = _signature([t for _, t in bound], [n for n, _ in bound])
        constants = externalize_constants(module)
        from max.compiler.pipelines import arg_layouts, matmul_pack

        arg_layouts.mark_load_time_args(_graph_function(module), len(weights), len(constants))
        with use_library(library):
            # GPU pipelines keep one function; the kernel profile times the entry's kernels,
            # so there a repeated subgraph's calls are inlined too (lowering/call.py).
            cpu_target = target not in GPU_TARGETS
            get_pass("mo-to-linalg").fn(
                module, outline_calls=cpu_target and not options.get("profile_kernels"),
                outline_bodies=cpu_target)
        fn = _graph_function(module)
        checks: list[str] = []
        if "mo.checks" in fn.attributes:
            checks = [ir.StringAttr(a).value for a in ir.ArrayAttr(fn.attributes["mo.checks"])]

        from max.compiler.pipelines import cpu

        gpu = target in GPU_TARGETS
        use_so = cpu.have_system_linker() and (gpu or not options.get("force_jit"))
        if gpu and not use_so:
            raise CompilationError(f"the {target} target needs a system C compiler to link "
                                   "the model's host code")
        # Kernel timers only in a .so, whose counters the runtime finds with dlsym.
        profile = bool(options.get("profile_kernels")) and use_so
        # Threads only in a .so, linked against libiomp5; the JIT fallback loads no OpenMP.
        if gpu:  # kernels in a gpu.binary, host code calling the GPU runtime (runtime/gpu.py)
            profile = False
            fallbacks = _lower_gpu(module, target, options)
        else:
            fallbacks = cpu.lower_to_llvm(module, threads=options.get("threads") if use_so
                                          else 1, profile=profile)
        # Weights and constants the schedule reads in another order (arg_layouts): the
        # constants are stored that way here, the weights by the engine at load time.
        weight_layouts, _ = arg_layouts.split(module, len(weights), len(constants))
        kernels = None
        if profile:
            from max.compiler.passes.profile_kernels import kernel_table

            kernels = tuple(KernelRecord(*row) for row in kernel_table(module) or ())
        # opt and llc run in processes of their own (build_shared_object waits on them): the
        # constants are packed, hashed and written meanwhile (the encoder block's 7 MB: about
        # 40 ms of a cold compile). The pool's exit waits for the build, whatever happens here.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            build = None
            if use_so:
                kind, binary_name = "so", "model.so"
                llvm_ir = cpu.translate_to_llvm_ir(module)
                build = pool.submit(cpu.build_shared_object, llvm_ir, out_dir / binary_name,
                                    opt_level=int(options.get("opt_level",
                                                              cpu.DEFAULT_OPT_LEVEL)))
            else:
                kind, binary_name = "jit", "model.llvm.mlirbc"
                buf = io.BytesIO()
                module.operation.write_bytecode(buf)
                (out_dir / binary_name).write_bytes(buf.getvalue())
            constants = matmul_pack.pack_constants(module, constants)
            constant_records, blob = _pack_constants(constants)
            (out_dir / CONSTANTS_FILE).write_bytes(blob)
            if build is not None:
                build.result()
    binary = (out_dir / binary_name).read_bytes()
    record = ArtifactRecord(
        name=name, kind=kind, sha256=hashlib.sha256(binary).hexdigest(), inputs=inputs,
        outputs=outputs, weights=weights, weight_layouts=tuple(weight_layouts),
        checks=tuple(checks),
        constants=tuple(constant_records),
        constants_sha256=hashlib.sha256(blob).hexdigest(), target=target, options=options,
        compiler_version=cache.compiler_version(), kernels=kernels, fallbacks=tuple(fallbacks))
    assert record.binary == binary_name
    meta, meta_hash = encode(record)
    (out_dir / META_FILE).write_bytes(meta)
    (out_dir / META_HASH_FILE).write_bytes(meta_hash)
    return record


#: The GPU targets and the option naming the device architecture each is compiled for.
GPU_TARGETS = ("nvidia", "amd")


def _lower_gpu(module: Any, target: str, options: dict[str, Any]) -> list[str]:
    """Runs a GPU target on a lowered (linalg) module: ``options["arch"]`` picks the device
    (``sm_90``, ``gfx942``; the target's default when absent)."""
    arch = options.get("arch")
    if target == "nvidia":
        from max.compiler.targets import nvidia

        description = nvidia.NvidiaDescription(**({"arch": arch} if arch else {}))
        return nvidia.lower(module, description)
    from max.compiler.targets import amd

    return amd.lower(module, amd.AmdDescription(**({"arch": arch} if arch else {})))


def signature(graph: bytes) -> tuple[list[str], list[str]]:
    """The argument and result type texts of the graph in MO bytecode or text.

    Raises:
        ParseError: if the graph cannot be read.
    """
    from mlir import ir

    from max.dialects.mo import make_context

    with make_context(), ir.Location.unknown():
        try:
            module = ir.Module.parse(graph)
        except ir.MLIRError as e:
            raise ParseError(str(e)) from None
        return graph_types(module)


def _handle(request: dict[str, Any], out: BinaryIO) -> None:
    from max.compiler.passes.registry import CompilationError

    def parsed(name: str) -> None:
        write_message(out, {"event": "parsed", "name": name})

    try:
        if request.get("op") == "signature":
            inputs, outputs = signature(request["graph"])
            write_message(out, {"event": "done", "ok": True, "inputs": inputs,
                                "outputs": outputs})
            return
        record = compile_to_dir(request["graph"], request["target"],
                                request.get("options") or {}, Path(request["out_dir"]),
                                on_parsed=parsed, debug=request.get("debug"),
                                extensions=request.get("extensions") or ())
    except ParseError as e:
        reply = {"event": "done", "ok": False, "kind": "parse", "message": str(e)}
    except InvalidGraphError as e:
        reply = {"event": "done", "ok": False, "kind": "invalid", "message": str(e)}
    except CompilationError as e:
        reply = {"event": "done", "ok": False, "kind": "compile", "message": str(e)}
    except Exception as e:  # noqa: BLE001 (reported to the parent, which raises)
        tb = traceback.format_exc(limit=8)
        reply = {"event": "done", "ok": False, "kind": "internal",
                 "message": f"{type(e).__name__}: {e}\n{tb}"}
    else:
        reply = {"event": "done", "ok": True, "meta": record.to_json()}
    write_message(out, reply)


def main() -> int:
    """Serves compile requests on stdin/stdout until EOF."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed by the compiler goes to stderr, not into the protocol
    sys.stdout = sys.stderr
    stdin = sys.stdin.buffer
    # Import the compiler once, up front: this is what the persistent worker saves per compile.
    import max.compiler.passes.registry as registry

    try:
        registry.all_passes()
    except Exception:  # noqa: BLE001 (the same error is reported by the first request)
        pass
    while True:
        request = read_message(stdin)
        if request is None:
            return 0
        if request.get("op") == "ping":
            write_message(out, {"event": "pong", "pid": os.getpid()})
            continue
        _handle(request, out)


if __name__ == "__main__":
    sys.exit(main())
