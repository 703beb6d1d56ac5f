"""The sampling process behind BackgroundRecorder (runs in a child Python process).

Protocol, over two pipes: the child writes one ready byte to its result pipe once it has
opened the vendor libraries (and taken a first sample), samples until its stdin reaches EOF
(the parent closes it to stop, or dies), takes a last sample, then writes the pickled list of
samples to the result pipe and exits. It records nothing where no GPU is found.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import sys
import time
from typing import BinaryIO

from ._context import GPUDiagContext
from ._stats import GPUStats

READY = b"R"


def main(result_fd: int, interval: float) -> None:
    """Record samples every `interval` seconds and write them, pickled, to `result_fd`."""
    # Ctrl-C reaches the whole process group; the parent decides when sampling stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with os.fdopen(result_fd, "wb") as out:
        samples = _record(out, interval)
        pickle.dump(samples, out, protocol=pickle.HIGHEST_PROTOCOL)


def _record(out: BinaryIO, interval: float) -> list[dict[str, GPUStats]]:
    with GPUDiagContext() as ctx:
        if not ctx._has_gpus:
            _signal_ready(out)
            return []
        samples = [ctx.get_stats()]
        _signal_ready(out)
        next_time = time.monotonic() + interval
        while not _stop_requested(max(0.0, next_time - time.monotonic())):
            samples.append(ctx.get_stats())
            # A fixed rate, not a fixed delay: slow queries do not stretch the interval.
            next_time = max(next_time + interval, time.monotonic())
        samples.append(ctx.get_stats())
    return samples


def _signal_ready(out: BinaryIO) -> None:
    out.write(READY)
    out.flush()


def _stop_requested(timeout: float) -> bool:
    """Whether stdin became readable (EOF: the parent asked to stop) within `timeout`."""
    readable, _, _ = select.select([sys.stdin.fileno()], [], [], timeout)
    return bool(readable)
