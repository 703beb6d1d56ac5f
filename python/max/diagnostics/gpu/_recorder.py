"""BackgroundRecorder: GPU statistics sampled in a separate process while a workload runs."""

from __future__ import annotations

import json
import os
import pickle
import select
import subprocess
import sys
import time
import warnings
from types import TracebackType
from typing import Self

from ._stats import GPUStats
from ._worker import READY

# The child is started with `python -c`, not multiprocessing's spawn: spawn re-imports the
# caller's main script, which reruns a script that has no `if __name__ == "__main__"` guard.
_BOOTSTRAP = (
    "import sys, json; sys.path[:] = json.loads(sys.argv[1]); "
    "from max.diagnostics.gpu._worker import main; main(int(sys.argv[2]), float(sys.argv[3]))"
)
# How long to wait for the sampling process to start, and to hand its samples back.
_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 60.0


class BackgroundRecorder:
    """Asynchronous GPU metrics collection and data export capabilities.

    The ``BackgroundRecorder`` enables continuous monitoring of GPU performance metrics
    without blocking the main application thread. It automatically samples GPU statistics at
    one-second intervals in a separate process, making it ideal for profiling long-running
    inference sessions or training workloads. When used as a context manager, the recorder
    starts background collection upon entry and stops collection upon exit. The collected
    statistics are then available through the :attr:`stats` property as a time-series of GPU
    measurements.

    Entering the context returns once the first sample is taken, and exiting takes one last
    sample, so a recording holds at least two samples where a GPU is present. Where no GPU
    (or no vendor library) is present, nothing is recorded and :attr:`stats` is empty.

    Args:
        interval: Seconds between samples (an extension of this implementation; the
            default is MAX's one second).

    Example:
        >>> from max.diagnostics.gpu import BackgroundRecorder
        >>> with BackgroundRecorder() as recorder:
        ...     pass  # run your GPU workload here
        >>> for i, snapshot in enumerate(recorder.stats):
        ...     print(f"Sample {i}: {len(snapshot)} GPUs detected")  # doctest: +SKIP
    """

    def __init__(self, *, interval: float = 1.0) -> None:
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not (
            0 < interval < float("inf")
        ):
            raise ValueError(
                f"BackgroundRecorder interval must be a positive number of seconds, "
                f"got {interval!r}"
            )
        self._interval = float(interval)
        self._process: subprocess.Popen[bytes] | None = None
        self._results_fd: int | None = None
        self._stats: list[dict[str, GPUStats]] | None = None
        self._ready = False

    def __enter__(self) -> Self:
        if self._process is not None:
            raise RuntimeError("BackgroundRecorder is already recording; it cannot be nested")
        self._stats = None
        self._ready = False
        read_fd, write_fd = os.pipe()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _BOOTSTRAP, json.dumps(sys.path), str(write_fd),
                 repr(self._interval)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                pass_fds=(write_fd,),
            )
        except OSError:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self._results_fd = read_fd
        # Wait for the first sample, so that even a short workload is observed.
        try:
            first = _read(read_fd, time.monotonic() + _START_TIMEOUT_S, limit=len(READY))
        except BaseException:  # e.g. Ctrl-C while waiting: stop the child, then re-raise
            self.__exit__(None, None, None)
            raise
        self._ready = first == READY
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        process, read_fd = self._process, self._results_fd
        if process is None or read_fd is None:
            return
        self._process = self._results_fd = None
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        try:
            assert process.stdin is not None
            try:
                process.stdin.close()  # EOF on the child's stdin asks it to stop
            except BrokenPipeError:
                pass
            data = _read(read_fd, deadline)
            if not self._ready:
                data = data.removeprefix(READY)
        finally:
            os.close(read_fd)
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._stats = _decode(data, process.returncode)

    @property
    def stats(self) -> list[dict[str, GPUStats]]:
        """Time-series of GPU statistics collected during background recording.

        Returns:
            A list of dictionaries, where each dictionary represents GPU statistics at a
            specific point in time. Each dictionary maps GPU identifiers to their
            corresponding :class:`GPUStats` objects.

        Raises:
            RuntimeError: If accessed before the recorder context has exited.
        """
        if self._stats is None:
            raise RuntimeError(
                "BackgroundRecorder.stats is available only after the recorder's "
                "`with` block has exited"
            )
        return self._stats


def _read(fd: int, deadline: float, limit: int | None = None) -> bytes:
    """Bytes from `fd` until EOF, `limit` bytes, or `deadline` (time.monotonic())."""
    chunks: list[bytes] = []
    size = 0
    while limit is None or size < limit:
        timeout = deadline - time.monotonic()
        if timeout <= 0 or not select.select([fd], [], [], timeout)[0]:
            break
        chunk = os.read(fd, 65536 if limit is None else limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _decode(data: bytes, returncode: int | None) -> list[dict[str, GPUStats]]:
    """The samples in the child's reply (a pickled list), or ``[]`` with a warning."""
    if returncode == 0 and data:
        try:
            samples = pickle.loads(data)
        except (pickle.UnpicklingError, EOFError, ValueError) as error:
            reason = f"its reply could not be read ({error})"
        else:
            if isinstance(samples, list):
                return samples
            reason = f"it replied with {type(samples).__name__}, not a list"
    else:
        reason = f"it exited with code {returncode}"
    warnings.warn(
        f"BackgroundRecorder recorded no GPU statistics: the sampling process failed "
        f"({reason})",
        RuntimeWarning,
        stacklevel=3,
    )
    return []
