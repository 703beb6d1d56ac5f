"""Per-kernel times of models compiled under ``MAX_PROFILE_KERNELS`` (README, "Profiling").

A profiled binary counts, for each kernel, its time, its calls and its first start in an
exported ``i64`` array (``compiler/passes/profile_kernels.py``). :class:`ProfiledRun` wraps a
model's call: it reads the array after each call, zeroes it and adds it to the model's
:class:`KernelStats`. Calls of one model are serialised while it is profiled (the counters
are one array per binary). :func:`report` formats every profiled model's table.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from max.runtime.artifact import ArtifactRecord, KernelRecord, profile_symbol
from max.runtime.loader import CpuFunction, global_address

PROFILE_ENV = "MAX_PROFILE_KERNELS"
SLOTS = 3  # per kernel: total ns, calls, first start ns (the compiler's layout)


@dataclass(frozen=True)
class ProfileSetting:
    """``$MAX_PROFILE_KERNELS`` read: profile kernels; ``trace_path``: also write a Chrome
    trace there at exit."""

    trace_path: Path | None = None


def profile_setting() -> ProfileSetting | None:
    """``$MAX_PROFILE_KERNELS``: unset, empty or ``0`` = off (None); ``1`` = a kernel table
    on stderr at exit; ``PATH.json`` = that table and a Chrome trace written to ``PATH.json``.

    Raises:
        ValueError: for any other value, or a trace path whose directory does not exist.
    """
    text = os.environ.get(PROFILE_ENV, "")
    value = text.strip()
    if value in ("", "0"):
        return None
    if value == "1":
        return ProfileSetting()
    if value.endswith(".json"):
        path = Path(value).expanduser().absolute()  # where the process started, not at exit
        if not path.parent.is_dir():
            raise ValueError(f"{PROFILE_ENV}={text!r}: directory {path.parent} does not exist")
        if path.is_dir():
            raise ValueError(f"{PROFILE_ENV}={text!r} is a directory, not a trace file")
        return ProfileSetting(path)
    raise ValueError(f"{PROFILE_ENV} must be 0, 1 or the path of a Chrome trace file ending "
                     f"in .json, got {text!r}")


@dataclass(frozen=True)
class KernelRow:
    """One line of a kernel table."""

    index: int
    label: str
    scheduled: bool
    vector: bool
    op: str
    calls: int
    total_ms: float
    mean_us: float
    percent: float


class KernelStats:
    """The accumulated kernel times of one loaded model."""

    def __init__(self, name: str, kernels: Sequence[KernelRecord]) -> None:
        self.name = name
        self.kernels = tuple(kernels)
        self.total_ns = np.zeros(len(self.kernels), np.int64)
        self.calls = np.zeros(len(self.kernels), np.int64)
        self.model_calls = 0
        self.wall_ns = 0  # the compiled calls, from outside (ctypes included)

    def add(self, counters: np.ndarray, wall_ns: int) -> None:
        """Adds one call's counters (``[kernels, 3]``)."""
        self.total_ns += counters[:, 0]
        self.calls += counters[:, 1]
        self.model_calls += 1
        self.wall_ns += wall_ns

    def rows(self) -> list[KernelRow]:
        """The kernels by total time, longest first, then what the calls spent outside them.

        ``percent`` is of the calls' wall time; the last row (``(outside kernels)``, index
        -1) is the wall time no kernel accounts for: allocations, the call itself.
        """
        wall = max(self.wall_ns, 1)
        rows = [KernelRow(i, k.label, not k.plain, k.vector, k.op, int(self.calls[i]),
                          self.total_ns[i] / 1e6,
                          self.total_ns[i] / max(int(self.calls[i]), 1) / 1e3,
                          100.0 * self.total_ns[i] / wall)
                for i, k in enumerate(self.kernels)]
        rows.sort(key=lambda r: -r.total_ms)
        rest = max(self.wall_ns - int(self.total_ns.sum()), 0)
        rows.append(KernelRow(-1, "(outside kernels)", True, False, "", self.model_calls,
                              rest / 1e6,
                              rest / max(self.model_calls, 1) / 1e3, 100.0 * rest / wall))
        return rows

    def table(self) -> str:
        """The kernel table as text."""
        rows = self.rows()
        width = max([len(r.label) for r in rows] + [6])
        head = (f"model {self.name!r}: {self.model_calls} calls, "
                f"{self.wall_ns / 1e6:.3f} ms in compiled code, "
                f"{sum(1 for k in self.kernels if k.plain)} of {len(self.kernels)} kernels "
                "plain")
        lines = [head, f"{'#':>3}  {'kernel':<{width}}  {'how':<9} {'op':<14} {'calls':>7} "
                       f"{'total ms':>10} {'mean us':>10} {'%':>6}"]
        for r in rows:
            # PLAIN: left to scalar loops by the schedule; scalar: loops the lowering wrote.
            how = ("" if r.index < 0 else "PLAIN" if not r.scheduled
                   else "vector" if r.vector else "scalar")
            index = "" if r.index < 0 else str(r.index)
            lines.append(f"{index:>3}  {r.label:<{width}}  {how:<9} {r.op:<14} {r.calls:>7} "
                         f"{r.total_ms:>10.3f} {r.mean_us:>10.1f} {r.percent:>6.1f}")
        return "\n".join(lines)


_all_stats: list[KernelStats] = []
_all_lock = threading.Lock()
_array_locks: dict[int, threading.Lock] = {}


def all_stats() -> list[KernelStats]:
    """The stats of every model profiled in this process (models already freed included)."""
    with _all_lock:
        return list(_all_stats)


def report() -> str:
    """The kernel table of every profiled model that ran, or ``""``."""
    return "\n\n".join(s.table() for s in all_stats() if s.model_calls)


class ProfiledRun:
    """A model's run function that reads its kernel counters after each call.

    Args:
        function: the loaded entry point (a shared object built with ``profile_kernels``).
        record: its artifact record, whose ``kernels`` name the counters.
        run: the function to wrap (``CpuExecutable.run``).
    """

    def __init__(self, function: CpuFunction, record: ArtifactRecord,
                 run: Callable[[Sequence[np.ndarray]], list[np.ndarray]]) -> None:
        if record.kernels is None:
            raise ValueError(f"model {record.name!r} was not compiled with kernel profiling")
        n = len(record.kernels)
        address = global_address(function, profile_symbol(record.name))
        array = (ctypes.c_int64 * max(SLOTS * n, 1)).from_address(address)
        self._view = np.ctypeslib.as_array(array)[: SLOTS * n].reshape(n, SLOTS)
        self._function = function  # the mapping the view points into
        self._run = run
        # Models loaded from the same bytes share one mapping, so one array: one lock each.
        with _all_lock:
            self._lock = _array_locks.setdefault(address, threading.Lock())
        self._local = threading.local()
        self.stats = KernelStats(record.name, record.kernels)
        with _all_lock:
            _all_stats.append(self.stats)

    def __call__(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        view = self._view
        with self._lock:
            view[...] = 0  # from the last call or another model of the same binary
            start = time.monotonic_ns()
            try:
                return self._run(arrays)
            finally:
                wall = time.monotonic_ns() - start
                counters = view.copy()
                self.stats.add(counters, wall)
                self._local.last = (start, wall, counters)

    def last_call(self) -> tuple[int, int, np.ndarray] | None:
        """This thread's last call: its start (``time.monotonic_ns``), wall ns and counters
        (per kernel: total ns, calls, first start ns)."""
        return getattr(self._local, "last", None)

    def kernel_events(self) -> list[tuple[str, int, int, dict[str, Any]]]:
        """This thread's last call as ``(label, start_ns, duration_ns, args)`` per kernel."""
        last = self.last_call()
        if last is None:
            return []
        events = []
        for i, (total, calls, first) in enumerate(last[2].tolist()):
            if calls:
                k = self.stats.kernels[i]
                events.append((k.label, first, total, {"kernel": i, "scheduled": not k.plain,
                                                       "vector": k.vector, "op": k.op,
                                                       "calls": calls}))
        return events


__all__ = ["PROFILE_ENV", "KernelRow", "KernelStats", "ProfileSetting", "ProfiledRun",
           "all_stats", "profile_setting", "report"]
