"""The in-parent compile API: ``compile_graph(graph) -> Artifact``, cached, out of process.

A cache hit reads the entry, checks its record against the graph's argument and result types
(read from the module in memory; for bytes, the worker parses them, as bytes may be anything),
and rebuilds an entry that disagrees. A miss sends the graph to
the worker process (``python -m max.compiler.worker``), one per parent process, started on
first use and kept alive between compiles (Python and MLIR start-up costs ~0.3-0.5 s); it is
restarted when it has died. Whatever the worker does, the caller sees a Python exception:
``CompilationError`` for a graph the compiler rejects, ``RuntimeError`` for an unreadable
graph or a crashed compiler.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from max.compiler import cache
from max.compiler.cache import Artifact
from max.compiler.worker import ParseError, graph_types, read_message, write_message
from max.runtime.artifact import ArtifactError

#: The argument and result type texts of a graph function.
Types = tuple[list[str], list[str]]

#: Counts of what compile_graph did in this process ("compiles", "cache_hits", "worker_starts").
stats: Counter[str] = Counter()

#: Set to make the worker abort after parsing the graph (tests of the crash handling).
DEBUG_ABORT_ENV = "MAX_DEBUG_COMPILER_ABORT"
_STDERR_TAIL = 4000


class _Worker:
    """One persistent compiler process and the file holding its stderr."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None
        self._owner = os.getpid()
        self._lock = threading.Lock()

    def _alive(self) -> bool:
        return (self._proc is not None and self._owner == os.getpid()
                and self._proc.poll() is None)

    def _start(self) -> None:
        self._discard()
        self._owner = os.getpid()
        # O_APPEND: the worker's writes land at the end even after we truncate the file.
        self._stderr = tempfile.TemporaryFile(mode="a+b", prefix="max-compiler-stderr-")
        env = dict(os.environ)
        env.setdefault("PYTHONFAULTHANDLER", "1")  # a Python traceback on fatal signals
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "max.compiler.worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env,
            close_fds=True)
        stats["worker_starts"] += 1

    def _discard(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and self._owner == os.getpid():
            for stream in (proc.stdin, proc.stdout):
                try:
                    stream.close()  # type: ignore[union-attr]
                except OSError:
                    pass
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _stderr_tail(self) -> str:
        f = self._stderr
        if f is None:
            return ""
        f.flush()
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - _STDERR_TAIL))
        return f.read().decode(errors="replace").strip()

    def compile(self, request: dict[str, Any], label: str,
                timeout: float | None) -> tuple[str, dict[str, Any]]:
        """Sends one request; returns (graph name, reply). Raises RuntimeError on a crash."""
        with self._lock:
            for attempt in range(2):
                if not self._alive():
                    self._start()
                assert self._proc is not None and self._stderr is not None
                self._stderr.truncate(0)
                try:
                    write_message(self._proc.stdin, request)  # type: ignore[arg-type]
                    break
                except (BrokenPipeError, OSError):
                    self._discard()  # died while idle: start a fresh one and retry once
                    if attempt:
                        raise RuntimeError("could not start the compiler worker") from None
            proc = self._proc
            timer = None
            timed_out = threading.Event()
            if timeout:
                def _kill() -> None:
                    timed_out.set()
                    proc.kill()
                timer = threading.Timer(timeout, _kill)
                timer.daemon = True
                timer.start()
            name = label
            try:
                while True:
                    reply = read_message(proc.stdout)  # type: ignore[arg-type]
                    if reply is None:
                        raise self._crashed(name, timed_out.is_set(), timeout)
                    if reply.get("event") == "parsed":
                        name = reply["name"]
                        continue
                    return name, reply
            finally:
                if timer is not None:
                    timer.cancel()

    def _crashed(self, name: str, timed_out: bool, timeout: float | None) -> RuntimeError:
        proc = self._proc
        assert proc is not None
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        tail = self._stderr_tail()
        self._discard()
        if timed_out:
            what = f"compiler timed out after {timeout} s"
        elif rc < 0:
            what = f"compiler crashed (signal {-rc})"
        else:
            what = f"compiler exited unexpectedly (status {rc})"
        return RuntimeError(f"{what} while compiling graph {name!r}: {tail or '(no output)'}")

    def close(self) -> None:
        with self._lock:
            self._discard()


_worker = _Worker()
atexit.register(_worker.close)


def shutdown_worker() -> None:
    """Stops the compiler worker of this process (it is restarted on the next compile)."""
    _worker.close()


class _Graph:
    """What compile_graph needs of its argument: a digest for the cache key, the bytes to
    compile (written only on a miss where the graph is a module in memory), a label for
    messages and the graph's types where the module is in memory (None for bytes: only the
    worker may parse those)."""

    def __init__(self, graph: Any) -> None:
        self.types: Types | None = None
        # The graph's large constants by the hex sha256 of their bytes (module_digest's).
        self.constants: dict[str, memoryview] = {}
        self._module: Any = None
        self._data: bytes | None = None
        if isinstance(graph, bytes | bytearray | memoryview):
            self._data, self.label = bytes(graph), "<bytes>"
            self.digest = hashlib.sha256(self._data).digest()
            return
        if isinstance(graph, str):
            self._data, self.label = graph.encode(), "<text>"
            self.digest = hashlib.sha256(self._data).digest()
            return
        module = getattr(graph, "_module", graph)  # a max.graph.Graph, or an ir.Module
        operation = getattr(module, "operation", None)
        if operation is None or not hasattr(operation, "write_bytecode"):
            raise TypeError(f"cannot compile a {type(graph).__name__}: expected a Graph, an "
                            f"mlir.ir.Module, or MLIR bytecode/text")
        self._module = module
        self.label = getattr(graph, "name", None) or _graph_name(module) or "<module>"
        try:
            self.types = graph_types(module)
        except ParseError:
            self.types = None  # not one graph function: the compiler says so
        # A Graph keeps its own MLIR context, so digests of its attributes may live beside it.
        memo = None
        if module is not graph and getattr(graph, "_context", None) is module.context:
            memo = graph.__dict__.setdefault("_attribute_digests", {})
        from max.compiler.graph_key import module_digest

        digest = module_digest(module, memo, self.constants)
        if digest is None:  # an attribute the text digest cannot cover: hash the bytecode
            digest = hashlib.sha256(self.data).digest()
        self.digest = digest

    @property
    def data(self) -> bytes:
        """The graph's MLIR bytecode (or the bytes given)."""
        if self._data is None:
            import io

            buf = io.BytesIO()
            self._module.operation.write_bytecode(buf)
            self._data = buf.getvalue()
        return self._data


def _graph_name(module: Any) -> str | None:
    try:
        from mlir import ir  # loaded already: module is an ir.Module

        for op in module.body.operations:
            attrs = op.operation.attributes
            if op.operation.name == "func.func" and "mo.graph" in attrs:
                return ir.StringAttr(attrs["sym_name"]).value
    except Exception:  # noqa: BLE001 (only a label)
        return None
    return None


def _types_of(data: bytes, label: str, timeout: float | None) -> Types:
    """The graph's types, parsed by the worker (bytes from a file may abort the parser)."""
    name, reply = _worker.compile({"op": "signature", "graph": data}, label, timeout)
    if not reply.get("ok"):
        raise _error(reply, name)
    return list(reply["inputs"]), list(reply["outputs"])


def _agrees(found: Artifact, types: Types) -> bool:
    """Whether the entry's record describes the graph being loaded."""
    try:
        found.record.check_types(*types)
    except ArtifactError:
        return False
    return True


def compile_graph(graph: Any, target: str = "cpu", options: dict[str, Any] | None = None,
                  *, label: str | None = None, timeout: float | None = None,
                  extensions: Sequence[tuple[str, str]] | None = None) -> Artifact:
    """Compiles an MO graph for ``target``, or finds it in the cache.

    Args:
        graph: a ``max.graph.Graph``, an ``mlir.ir.Module`` holding one ``mo.graph``
            function, or its MLIR bytecode/text as ``bytes``/``str``.
        target: ``"cpu"``, or a GPU target (``"nvidia"``, ``"amd"``: a host shared object
            calling the GPU runtime, ``options["arch"]`` the device's ``sm_90``/``gfx942``).
        options: compiler options (part of the cache key): ``opt_level`` (int), ``force_jit``
            (bool: the ExecutionEngine fallback even where a linker exists),
            ``profile_kernels`` (bool: time each kernel; set by ``$MAX_PROFILE_KERNELS``).
        label: what to call the graph in messages until its name is known (a file path).
        timeout: seconds after which the compiler is killed (``$MAX_COMPILE_TIMEOUT``).
        extensions: ``(label, text)`` of each custom kernel ``.mlir`` file the graph's
            ``mo.custom`` ops may call; parsed by the worker only. The texts' hash is an option
            (``custom_extensions``), so part of the cache key and of the record.

    Returns:
        The validated cache entry, whose record has the graph's argument and result types
        (an entry that does not is rebuilt). After an insert, least recently used entries
        are evicted down to ``$MAX_CACHE_SIZE``.

    Raises:
        CompilationError: the compiler rejected the graph.
        ValueError: the MO verifier rejected the graph (an op's types break its rule).
        RuntimeError: the graph could not be read, or the compiler crashed.
        ValueError: ``$MAX_CPU_THREADS``, ``$MAX_CACHE_SIZE`` or ``$MAX_PROFILE_KERNELS`` is
            malformed.
    """
    options = dict(options or {})
    from max.runtime.kernel_profile import profile_setting

    if profile_setting() is not None:  # MAX_PROFILE_KERNELS: time each kernel
        options["profile_kernels"] = True
    extensions = [(str(k), str(t)) for k, t in extensions or ()]
    if extensions:
        options["custom_extensions"] = hashlib.sha256(
            json.dumps([t for _, t in extensions]).encode()).hexdigest()
    source = _Graph(graph)
    types = source.types
    label = label or source.label
    key = cache.cache_key_of_digest(source.digest, target, options)
    limit = cache.max_cache_size()  # a bad $MAX_CACHE_SIZE fails before any work
    if timeout is None and os.environ.get("MAX_COMPILE_TIMEOUT"):
        timeout = float(os.environ["MAX_COMPILE_TIMEOUT"])
    root = cache.cache_dir()

    def hit(found: Artifact | None) -> Artifact | None:
        nonlocal types
        if found is None:
            return None
        if types is None:
            types = _types_of(source.data, label, timeout)
        if not _agrees(found, types):
            cache.discard(found.path)  # describes another graph: rebuild, never run it
            return None
        stats["cache_hits"] += 1
        cache.touch(found)
        return found

    found = hit(cache.lookup(key, root, source.constants))
    if found is not None:
        return found
    with cache.key_lock(key, root):
        # Another thread or process may have built it meanwhile.
        found = hit(cache.lookup(key, root, source.constants))
        if found is not None:
            return found
        staging = cache.new_staging_dir(key, root)
        try:
            request = {"op": "compile", "graph": source.data, "target": target, "options": options,
                       "out_dir": str(staging),
                       "debug": os.environ.get(DEBUG_ABORT_ENV) and "abort",
                       "extensions": extensions}
            name, reply = _worker.compile(request, label, timeout)
            if not reply.get("ok"):
                raise _error(reply, name)
            stats["compiles"] += 1
            built = cache.publish(key, staging, root)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    if types is not None and not _agrees(built, types):
        cache.discard(built.path)
        raise RuntimeError(f"internal compiler error: the compiled graph {name!r} does not have "
                           f"the graph's argument/result types")
    cache.evict(root, limit, keep=key)
    return built


def _error(reply: dict[str, Any], name: str) -> Exception:
    kind, message = reply.get("kind"), reply.get("message", "")
    if kind == "parse":
        return RuntimeError(f"could not read graph {name!r}: {message}")
    if kind == "invalid":  # the MO verifier's message names the graph, op and mismatch
        return ValueError(message)
    if kind == "compile":
        from max.compiler.passes.registry import CompilationError

        return CompilationError(message)
    return RuntimeError(f"internal compiler error while compiling graph {name!r}: {message}")


def artifact_dir(key: str) -> Path:
    """Where the cache entry of ``key`` lives."""
    return cache.cache_dir() / key
