"""Loading compiled CPU code: a shared object through ctypes, or MLIR's JIT as the fallback.

Loading a shared object never imports ``mlir``. The bytes given are exactly the bytes loaded:
they are written to a private file with a name unique in this process (so that ``dlopen`` never
returns an earlier library of the same path) and unlinked right after ``dlopen``. A cache entry
replaced or damaged on disk later cannot affect code already loaded.

One mapping per binary: loads of the same bytes (keyed by their sha256) share one library,
and the library is ``dlclose``'d when the last :class:`CpuFunction` using it (and every ctypes
function pointer taken from it) is gone. Nothing else holds the ``CDLL``: the registry keeps
only a weak reference, so code is unmapped exactly when nothing can call it any more.
"""

from __future__ import annotations

import _ctypes
import atexit
import ctypes
import hashlib
import itertools
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Sequence
from typing import Any

_counter = itertools.count()
# Reentrant: a finalizer (below) may run during a garbage collection triggered inside a
# section that holds the lock, on the same thread.
_lock = threading.RLock()
_private_dir: str | None = None
# sha256 of the binary -> (weak reference to its CDLL, token of that mapping).
_libraries: dict[str, tuple[weakref.ref, object]] = {}
# OpenMP runtimes keep a pool of worker threads running their code: unloading one with the
# last model that needed it would pull that code from under those threads. These sonames are
# pinned (RTLD_NODELETE) once a model has loaded them.
_PINNED_DEPENDENCIES = ("libiomp5.so", "libomp.so", "libgomp.so.1")
_pinned: set[str] = set()


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
        free: the function that frees memory the code allocated and returned (the model's
            own ``max_scratch_free`` where it links the scratch allocator; None: libc's
            ``free``); it keeps the code mapped while it lives.
    """

    def __init__(self, fn: Any, num_args: int, keepalive: Any, free: Any = None) -> None:
        self.fn = fn
        self.num_args = num_args
        self._keepalive = keepalive  # the CDLL or ExecutionEngine: unmapping it kills `fn`
        self.free = free  # None: libc's (memref.adopt_allocation's default)


_FREE_PROTO = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def loaded_artifact_count() -> int:
    """How many compiled shared objects this process has mapped now (one per distinct binary)."""
    with _lock:
        return sum(1 for ref, _ in _libraries.values() if ref() is not None)


def _unload(sha: str, token: object, handle: int) -> None:
    """Finalizer of a library's CDLL: forget it and unmap it (nothing can reach it any more)."""
    with _lock:
        if _libraries.get(sha, (None, None))[1] is token:
            del _libraries[sha]
    try:
        _ctypes.dlclose(handle)
    except OSError:  # a finalizer must not raise; the mapping then just stays
        pass


def _pin_dependencies() -> None:
    # RTLD_NOLOAD: only a library that is already loaded (by the model just opened) is found.
    for soname in _PINNED_DEPENDENCIES:
        if soname in _pinned:
            continue
        try:
            ctypes.CDLL(soname, mode=os.RTLD_NOLOAD | os.RTLD_NODELETE | os.RTLD_LAZY)
        except OSError:
            continue
        _pinned.add(soname)


def _open_library(data: bytes, sha: str, stem: str) -> ctypes.CDLL:
    with _lock:
        ref = _libraries.get(sha)
        lib = ref[0]() if ref is not None else None
        if lib is not None:
            return lib
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
        _pin_dependencies()
        token = object()
        _libraries[sha] = (weakref.ref(lib), token)
        # Not at exit: a daemon thread may still be inside the code while Python shuts down.
        weakref.finalize(lib, _unload, sha, token, lib._handle).atexit = False
        return lib


def load_shared_object(data: bytes, *, symbol: str, num_args: int,
                       stem: str = "model", sha256: str | None = None) -> CpuFunction:
    """Loads a shared object from its bytes (or shares the mapping of the same bytes).

    Args:
        data: the contents of the ``.so`` (already checked against its hash by the caller).
        symbol: the exported entry symbol (``_mlir_ciface_NAME``).
        num_args: the number of memref descriptor pointers the entry takes.
        stem: a prefix for the private file name (for debugging).
        sha256: the hex sha256 of ``data`` where the caller has it (the cache checked the
            binary against its record's): the key of the shared mapping, not computed again.

    Raises:
        RuntimeError: if the library cannot be loaded or lacks ``symbol``.
    """
    lib = _open_library(data, sha256 or hashlib.sha256(data).hexdigest(), stem)
    try:
        address = _ctypes.dlsym(lib._handle, symbol)
    except OSError:
        raise RuntimeError(f"compiled model has no entry symbol {symbol!r}") from None
    # A prototype on the raw address, not lib[symbol]: ctypes ties a function taken from a
    # CDLL to it through a reference cycle, which would keep the library mapped until a gc
    # run. This function holds the library itself, and nothing points back.
    fn = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * num_args))(address)
    fn._library = lib
    free = None
    try:  # the scratch allocator (compiler/pipelines/scratch.py), where linked in
        free = _FREE_PROTO(_ctypes.dlsym(lib._handle, "max_scratch_free"))
        free._library = lib
    except OSError:
        pass
    return CpuFunction(fn, num_args, lib, free)


def global_address(function: CpuFunction, symbol: str) -> int:
    """The address of the exported data ``symbol`` in the shared object of ``function``.

    The caller keeps ``function`` while it uses the address (its mapping lives as long).

    Raises:
        RuntimeError: if ``function`` was not loaded from a shared object or lacks ``symbol``.
    """
    lib = function._keepalive
    if not isinstance(lib, ctypes.CDLL):
        raise RuntimeError(f"{symbol!r}: only a shared object's symbols can be looked up")
    try:
        return _ctypes.dlsym(lib._handle, symbol)
    except OSError:
        raise RuntimeError(f"compiled model has no symbol {symbol!r}") from None


def load_jit(bytecode: bytes, *, symbol: str, num_args: int, opt_level: int = 3,
             shared_libs: Sequence[str] = ()) -> CpuFunction:
    """JIT-compiles an LLVM-dialect module (MLIR bytecode) and finds ``symbol`` in it.

    The fallback where no system linker exists; this imports ``mlir``. Each call compiles a
    new copy, freed with the returned function's ExecutionEngine.

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
