"""Per-kernel times of models compiled under ``MAX_PROFILE_KERNELS`` (README, "Profiling").

A profiled binary sums, for the whole call and for each kernel, the time and the calls in an
exported ``i64`` array, and keeps the last run's start and duration
(``compiler/passes/profile_kernels.py``). :class:`KernelStats` reads it (nothing happens in
Python per call); :class:`ProfiledRun` runs a call for the trace (``max.profiler`` on) and
returns its kernels' spans. :func:`report` formats every profiled model's table.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from max.runtime.artifact import ArtifactRecord, profile_symbol
from max.runtime.loader import CpuFunction, global_address

PROFILE_ENV = "MAX_PROFILE_KERNELS"
SLOTS = 4  # per timer: total ns, calls, last start ns, last ns (the compiler's layout)


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
    """The kernel times of one loaded profiled binary, read from its counters.

    The counters live in the binary (timer 0: the whole call; timer ``k + 1``: kernel ``k``)
    and grow from its load: a call costs nothing here. The stats keep the binary mapped, so
    that its table can still be read at exit after its models are gone. Models loaded from
    the same bytes share one mapping, so one set of counters (and one table).
    Concurrent calls may lose an update (the counters are plain adds).

    Args:
        function: the loaded entry point (a shared object built with ``profile_kernels``).
        record: its artifact record, whose ``kernels`` name the counters.
    """

    def __init__(self, function: CpuFunction, record: ArtifactRecord) -> None:
        if record.kernels is None:
            raise ValueError(f"model {record.name!r} was not compiled with kernel profiling")
        self.name = record.name
        self.kernels = record.kernels
        n = len(self.kernels) + 1
        self.address = global_address(function, profile_symbol(record.name))
        array = (ctypes.c_int64 * (SLOTS * n)).from_address(self.address)
        self.counters = np.ctypeslib.as_array(array).reshape(n, SLOTS)
        self._function = function  # the mapping the counters live in

    @property
    def model_calls(self) -> int:
        """Calls of the compiled code."""
        return int(self.counters[0, 1])

    @property
    def wall_ns(self) -> int:
        """Time in the compiled code (ns), all calls."""
        return int(self.counters[0, 0])

    @property
    def total_ns(self) -> np.ndarray:
        """Per kernel: its time over all calls (ns)."""
        return self.counters[1:, 0].copy()

    @property
    def calls(self) -> np.ndarray:
        """Per kernel: how often it ran (once per call)."""
        return self.counters[1:, 1].copy()

    def rows(self) -> list[KernelRow]:
        """The kernels by total time, longest first, then what the calls spent outside them.

        ``percent`` is of the time in compiled code; the last row (``(outside kernels)``,
        index -1) is what no kernel accounts for: allocations, views, frees.
        """
        counters = self.counters.copy()  # one consistent reading
        wall = max(int(counters[0, 0]), 1)
        rows = []
        for i, k in enumerate(self.kernels):
            total, calls = int(counters[i + 1, 0]), int(counters[i + 1, 1])
            rows.append(KernelRow(i, k.label, not k.plain, k.vector, k.op, calls, total / 1e6,
                                  total / max(calls, 1) / 1e3, 100.0 * total / wall))
        rows.sort(key=lambda r: -r.total_ms)
        calls = int(counters[0, 1])
        rest = max(int(counters[0, 0]) - int(counters[1:, 0].sum()), 0)
        rows.append(KernelRow(-1, "(outside kernels)", True, False, "", calls, rest / 1e6,
                              rest / max(calls, 1) / 1e3, 100.0 * rest / wall))
        return rows

    def table(self) -> str:
        """The kernel table as text."""
        rows = self.rows()
        width = max([len(r.label) for r in rows] + [6])
        head = (f"model {self.name!r}: {rows[-1].calls} calls, "
                f"{sum(r.total_ms for r in rows):.3f} ms in compiled code, "
                f"{sum(1 for k in self.kernels if k.plain)} of {len(self.kernels)} kernels "
                "plain")
        lines = [head, f"{'#':>3}  {'kernel':<{width}}  {'how':<7} {'op':<14} {'calls':>7} "
                       f"{'total ms':>10} {'mean us':>10} {'%':>6}"]
        for r in rows:
            # PLAIN: left to scalar loops by the schedule; scalar: loops the lowering wrote.
            how = ("" if r.index < 0 else "PLAIN" if not r.scheduled
                   else "vector" if r.vector else "scalar")
            index = "" if r.index < 0 else str(r.index)
            lines.append(f"{index:>3}  {r.label:<{width}}  {how:<7} {r.op:<14} {r.calls:>7} "
                         f"{r.total_ms:>10.3f} {r.mean_us:>10.1f} {r.percent:>6.1f}")
        return "\n".join(lines)


_all_lock = threading.Lock()
_all_stats: dict[int, KernelStats] = {}  # by counters' address: one per mapped binary
_call_locks: dict[int, threading.Lock] = {}


def kernel_stats(function: CpuFunction, record: ArtifactRecord) -> KernelStats:
    """The stats of a profiled binary (shared by the models loaded from the same bytes)."""
    address = global_address(function, profile_symbol(record.name))
    with _all_lock:
        stats = _all_stats.get(address)
        if stats is None or stats.kernels != record.kernels:
            stats = _all_stats[address] = KernelStats(function, record)
        return stats


def all_stats() -> list[KernelStats]:
    """The stats of every binary profiled in this process (models already freed included)."""
    with _all_lock:
        return list(_all_stats.values())


def report() -> str:
    """The kernel table of every profiled model that ran, or ``""``."""
    return "\n\n".join(s.table() for s in all_stats() if s.model_calls)


class ProfiledRun:
    """Runs a profiled model for a trace: the call, then its kernels' start and duration.

    Args:
        stats: the binary's stats (:func:`kernel_stats`).
        run: the model's run function (``CpuExecutable.run``).
    """

    def __init__(self, stats: KernelStats,
                 run: Callable[[Sequence[np.ndarray]], list[np.ndarray]]) -> None:
        self.stats = stats
        self._run = run
        with _all_lock:  # one binary, one set of "last run" slots: one traced call at a time
            self._lock = _call_locks.setdefault(stats.address, threading.Lock())

    def traced_call(self, arrays: Sequence[np.ndarray]
                    ) -> tuple[list[np.ndarray], list[tuple[str, int, int, dict[str, Any]]]]:
        """Runs once; returns the outputs and the call's kernels as ``(label, start_ns,
        duration_ns, args)`` (``time.monotonic_ns`` clock).

        A call that raises raises here too (its kernels are not returned).
        """
        with self._lock:
            outs = self._run(arrays)
            last = self.stats.counters[1:, 2:].tolist()
        events = []
        for i, (start, duration) in enumerate(last):
            k = self.stats.kernels[i]
            events.append((k.label, start, duration, {"kernel": i, "scheduled": not k.plain,
                                                     "vector": k.vector, "op": k.op}))
        return outs, events


__all__ = ["PROFILE_ENV", "KernelRow", "KernelStats", "ProfileSetting", "ProfiledRun",
           "all_stats", "kernel_stats", "profile_setting", "report"]
