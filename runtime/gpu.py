"""The GPU runtime: the ``mgpu.c`` shim, built once and loaded process-wide, and its calls.

The shim implements MLIR's GPU runtime ABI (``mgpuModuleLoadJIT``, ``mgpuLaunchKernel``,
``mgpuMemAlloc``, ...) that a compiled model's host code calls, plus the device memory,
copies and streams of ``max.driver``, over the vendor's driver library (CUDA driver or HIP)
opened with ``dlopen``. It is compiled with the system C compiler into the cache
(``$MAX_CACHE_DIR``/``~/.cache/max-mlir``, ``gpu-runtime/``) the first time a GPU is used,
and loaded ``RTLD_GLOBAL`` so that models' ``mgpu*`` symbols bind to it.

Every vendor failure becomes a :class:`GpuError` naming the failed call and the vendor's
error name and text (for a PTX JIT failure, the JIT's log too); nothing aborts the process.
Imports neither ``max.driver`` nor ``max.compiler``.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

API_CODES = {"cuda": 1, "hip": 2}
SOURCE = Path(__file__).with_name("mgpu.c")

_lock = threading.Lock()
_shim: ctypes.CDLL | None = None
_opened: tuple[str, str] | None = None  # (library path, api) the shim has open


class GpuError(RuntimeError):
    """A GPU driver call failed; the message names the call and the vendor's error."""


def _cache_root() -> Path:
    env = os.environ.get("MAX_CACHE_DIR")
    return (Path(env) if env else Path.home() / ".cache" / "max-mlir") / "gpu-runtime"


def _compiler() -> str:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return str(shutil.which(cc))
    raise GpuError("the GPU runtime needs a C compiler (cc, gcc or clang) to build its shim")


def build_shim(out_dir: Path | None = None) -> Path:
    """Compiles ``mgpu.c`` into a shared object (once per source text); returns its path."""
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    folder = out_dir or _cache_root()
    path = folder / f"libmax_mgpu-{digest}.so"
    if path.exists():
        return path
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.mkdtemp(prefix="max-gpu-runtime-"))
        path = folder / path.name
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    cmd = [_compiler(), "-std=gnu11", "-O2", "-shared", "-fPIC", "-o", str(tmp), str(SOURCE),
           "-ldl"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise GpuError(f"building the GPU runtime shim failed: {proc.stderr[-2000:]}")
    os.replace(tmp, path)  # atomic: another process never loads half a library
    return path


def _declare(lib: ctypes.CDLL) -> None:
    vp, sz, i = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
    signatures: dict[str, list[type]] = {
        "max_gpu_open": [ctypes.c_char_p, i],
        "max_gpu_device_count": [ctypes.POINTER(i)],
        "max_gpu_use": [i, vp],
        "max_gpu_stream_create": [ctypes.POINTER(vp)],
        "max_gpu_stream_destroy": [vp],
        "max_gpu_stream_sync": [vp],
        "max_gpu_stream_wait": [vp, vp],
        "max_gpu_alloc": [ctypes.POINTER(vp), sz, vp],
        "max_gpu_free": [vp, vp],
        "max_gpu_copy": [vp, vp, sz, vp],
        "max_gpu_memset": [vp, i, sz, vp],
        "max_gpu_host_alloc": [ctypes.POINTER(vp), sz],
        "max_gpu_host_free": [vp],
        "max_gpu_mem_info": [ctypes.POINTER(sz), ctypes.POINTER(sz)],
    }
    for name, args in signatures.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = i
    lib.max_gpu_error.restype = ctypes.c_char_p
    lib.max_gpu_error.argtypes = []
    lib.max_gpu_clear_error.restype = None
    lib.max_gpu_api.restype = i


def shim(library: str, api: str) -> ctypes.CDLL:
    """The loaded shim, with ``library`` (the vendor's driver, of ``api``) open.

    Raises:
        GpuError: if the shim cannot be built, or the library cannot be opened or initialized.
    """
    global _shim, _opened
    with _lock:
        if _shim is None:
            lib = ctypes.CDLL(str(build_shim()), mode=os.RTLD_GLOBAL | os.RTLD_NOW)
            _declare(lib)
            _shim = lib
        if _opened != (library, api):
            _shim.max_gpu_clear_error()
            status = _shim.max_gpu_open(library.encode(), API_CODES[api])
            if status:
                _opened = None
                raise GpuError(f"cannot open the GPU driver {library}: {take_error(_shim)}")
            _opened = (library, api)
        return _shim


def take_error(lib: ctypes.CDLL) -> str:
    """The recorded error of this thread (cleared), or ``""``."""
    text = lib.max_gpu_error()
    lib.max_gpu_clear_error()
    return text.decode(errors="replace") if text else ""


def check(lib: ctypes.CDLL, status: int = 0, what: str = "") -> None:
    """Raises the thread's recorded error (cleared), if any, or one for a nonzero status."""
    text = lib.max_gpu_error()
    if text or status:
        lib.max_gpu_clear_error()
        message = text.decode(errors="replace") if text else f"status {status}"
        raise GpuError(f"{what}: {message}" if what else message)


class Runtime:
    """The shim's calls on one vendor library, each raising :class:`GpuError` on failure."""

    def __init__(self, library: str, api: str) -> None:
        self.library = library
        self.api = api
        self.lib = shim(library, api)

    def use(self, ordinal: int, stream: int | None = None) -> None:
        """Makes GPU ``ordinal`` current on this thread; ``stream``: the run stream that the
        model's ``mgpuStreamCreate`` returns."""
        check(self.lib, self.lib.max_gpu_use(ordinal, stream), "selecting the GPU")

    def device_count(self) -> int:
        count = ctypes.c_int(0)
        check(self.lib, self.lib.max_gpu_device_count(ctypes.byref(count)), "counting GPUs")
        return count.value

    def stream_create(self, ordinal: int) -> int:
        self.use(ordinal)
        handle = ctypes.c_void_p()
        check(self.lib, self.lib.max_gpu_stream_create(ctypes.byref(handle)), "stream create")
        return int(handle.value or 0)

    def stream_destroy(self, ordinal: int, stream: int) -> None:
        self.use(ordinal)
        check(self.lib, self.lib.max_gpu_stream_destroy(stream), "stream destroy")

    def synchronize(self, ordinal: int, stream: int) -> None:
        self.use(ordinal)
        check(self.lib, self.lib.max_gpu_stream_sync(stream), "synchronize")

    def wait(self, ordinal: int, waiter: int, waited: int) -> None:
        self.use(ordinal)
        check(self.lib, self.lib.max_gpu_stream_wait(waiter, waited), "stream wait")

    def alloc(self, ordinal: int, size: int, stream: int | None) -> int:
        self.use(ordinal)
        ptr = ctypes.c_void_p()
        status = self.lib.max_gpu_alloc(ctypes.byref(ptr), size, stream)
        check(self.lib, status, f"allocating {size} bytes on gpu:{ordinal}")
        return int(ptr.value or 0)

    def free(self, ordinal: int, ptr: int, stream: int | None) -> None:
        self.use(ordinal)
        check(self.lib, self.lib.max_gpu_free(ptr, stream), "free")

    def copy(self, ordinal: int, dst: int, src: int, size: int, stream: int | None) -> None:
        """Copies ``size`` bytes in any direction, queued on ``stream`` of GPU ``ordinal``."""
        self.use(ordinal)
        check(self.lib, self.lib.max_gpu_copy(dst, src, size, stream), "copy")

    def memset(self, ordinal: int, dst: int, value: int, size: int, stream: int | None) -> None:
        self.use(ordinal)
        check(self.lib, self.lib.max_gpu_memset(dst, value, size, stream), "memset")

    def host_alloc(self, ordinal: int, size: int) -> int:
        """Page-locked host memory (fast, asynchronous copies)."""
        self.use(ordinal)
        ptr = ctypes.c_void_p()
        status = self.lib.max_gpu_host_alloc(ctypes.byref(ptr), size)
        check(self.lib, status, f"allocating {size} bytes of pinned host memory")
        return int(ptr.value or 0)

    def host_free(self, ordinal: int, ptr: int) -> None:
        self.use(ordinal)
        check(self.lib, self.lib.max_gpu_host_free(ptr), "freeing pinned host memory")

    def mem_info(self, ordinal: int) -> tuple[int, int]:
        """(free, total) bytes of GPU ``ordinal``; (0, 0) where the driver cannot tell."""
        self.use(ordinal)
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        check(self.lib, self.lib.max_gpu_mem_info(ctypes.byref(free), ctypes.byref(total)))
        return free.value, total.value


__all__ = ["API_CODES", "GpuError", "Runtime", "build_shim", "check", "shim", "take_error"]
