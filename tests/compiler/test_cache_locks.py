"""Lock files: a failed compile's lock is swept once stale, never one somebody holds, and a
waiter whose lock file was swept locks the file the path names now."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

from max.compiler import cache


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def _wait_until_open(path: Path, count: int, timeout: float = 10.0) -> None:
    """Returns once ``count`` descriptors of this process have ``path`` open."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                n += os.readlink(f"/proc/self/fd/{fd}") == str(path)
            except OSError:
                pass
        if n >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"{path} is not open {count} times")


def test_stale_free_lock_files_are_swept(tmp_path: Path) -> None:
    root = tmp_path / "c"
    with cache.key_lock("a" * 64, root):
        pass
    old = cache._lock_path(root, "a" * 64)
    young = cache._lock_path(root, "b" * 64)
    young.touch()
    _age(old, cache._STALE_SECONDS + 10)
    cache.new_staging_dir("c" * 64, root)
    assert not old.exists() and young.exists()


def test_a_held_lock_is_never_swept(tmp_path: Path) -> None:
    root = tmp_path / "c"
    with cache.key_lock("a" * 64, root):
        path = cache._lock_path(root, "a" * 64)
        _age(path, cache._STALE_SECONDS + 10)
        cache.new_staging_dir("c" * 64, root)
        assert path.exists()


def test_a_waiter_relocks_when_its_file_was_swept(tmp_path: Path) -> None:
    root = tmp_path / "c"
    key = "d" * 64
    path = cache._lock_path(root, key)
    acquired: list[int] = []
    with cache.key_lock(key, root):
        def wait() -> None:
            with cache.key_lock(key, root):
                # The inode the path names, if the lock we hold is on it (a fresh open of the
                # path cannot lock it then); -1 if we hold a lock on a file no longer there.
                fd = os.open(path, os.O_RDWR)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    acquired.append(-1)
                except BlockingIOError:
                    acquired.append(os.fstat(fd).st_ino)
                finally:
                    os.close(fd)

        waiter = threading.Thread(target=wait)
        waiter.start()
        _wait_until_open(path, 2)  # ours and the waiter's: it now blocks on the old file
        old_inode = os.stat(path).st_ino
        os.unlink(path)  # what the sweep does to a free lock file
        other = open(path, "w")  # noqa: SIM115  (a newcomer creates the file anew)
        other.close()
        new_inode = os.stat(path).st_ino
    waiter.join(10)
    assert acquired == [new_inode] and new_inode != old_inode
