"""Loading compiled CPU code: a shared object through ctypes, or MLIR's JIT as the fallback.

Loading a shared object never imports ``mlir``. The bytes given are exactly the bytes loaded:
they are written to a private file with a name unique in this process (so that ``dlopen`` never
returns an earlier library of the same path) and unlinked right after ``dlopen``. A cache entry
replaced or damaged on disk later cannot affect code already loaded.
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from typing import Any

_counter = itertools.count()
_lock = threading.Lock()
_private_dir: str | None = None


def _private_path(stem: str) -> str:
    global _private_dir
    with _lock:
        if _private_dir is None:
            _private_dir = tempfile.mkdtemp(prefix=f"max-rt-{os.getpid()}-")
            atexit.register(shutil.rmtree, _private_dir, True)
        return os.path.join(_private_dir, f"{stem}-{next(_counter)}.so")


class CpuFunction:
    """A loaded entry point ``void f(void* desc0, ..., void* descN)`` and what keeps it alive.

    Attributes:
        fn: the ctypes function; call it with one ``c_void_p`` per argument. It releases the
            GIL while it runs.
        num_args: the number of descriptor pointers it takes.
    """

    def __init__(self, fn: Any, num_args: int, keepalive: Any) -> None:
        self.fn = fn
        self.num_args = num_args
        self._keepalive = keepalive  # the CDLL or ExecutionEngine: unmapping it kills `fn`


def load_shared_object(data: bytes, *, symbol: str, num_args: int, stem: str = "model") -> CpuFunction:
    """Loads a shared object from its bytes and finds ``symbol`` in it.

    Args:
        data: the contents of the ``.so`` (already checked against its hash by the caller).
        symbol: the exported entry symbol (``_mlir_ciface_NAME``).
        num_args: the number of memref descriptor pointers the entry takes.
        stem: a prefix for the private file name (for debugging).

    Raises:
        RuntimeError: if the library cannot be loaded or lacks ``symbol``.
    """
    path = _private_path(stem)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o700)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            lib = ctypes.CDLL(path, mode=os.RTLD_LOCAL | os.RTLD_NOW)
        except OSError as e:
            raise RuntimeError(f"could not load compiled model: {e}") from None
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    try:
        fn = getattr(lib, symbol)
    except AttributeError:
        raise RuntimeError(f"compiled model has no entry symbol {symbol!r}") from None
    fn.restype = None
    fn.argtypes = [ctypes.c_void_p] * num_args
    return CpuFunction(fn, num_args, lib)


def load_jit(bytecode: bytes, *, symbol: str, num_args: int, opt_level: int = 3,
             shared_libs: Sequence[str] = ()) -> CpuFunction:
    """JIT-compiles an LLVM-dialect module (MLIR bytecode) and finds ``symbol`` in it.

    The fallback where no system linker exists; this imports ``mlir``.

    Raises:
        RuntimeError: if the module cannot be parsed or lacks ``symbol``.
    """
    from mlir import ir
    from mlir.execution_engine import ExecutionEngine

    if not symbol.startswith("_mlir_"):
        raise RuntimeError(f"JIT entry symbol must start with '_mlir_': {symbol!r}")
    with ir.Context():
        try:
            module = ir.Module.parse(bytecode)
        except ir.MLIRError as e:
            raise RuntimeError(f"could not parse compiled model: {e}") from None
        engine = ExecutionEngine(module, opt_level=opt_level, shared_libs=list(shared_libs))
    # raw_lookup(name) finds "_mlir_" + name: the C interface function itself.
    address = engine.raw_lookup(symbol[len("_mlir_"):])
    if not address:
        raise RuntimeError(f"compiled model has no entry symbol {symbol!r}")
    proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * num_args))
    return CpuFunction(proto(address), num_args, engine)
