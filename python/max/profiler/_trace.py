"""The in-process trace behind ``max.profiler``: a list of timed events, read as Chrome JSON.

Every timestamp is ``time.monotonic_ns()`` (``CLOCK_MONOTONIC``), the clock the compiled
models' kernel timers read too (``compiler/passes/profile_kernels.py``), so kernel events line
up with the Python spans around them. Events are stored as tuples and turned into Chrome
trace dicts only when read, so that recording one costs a tuple and a list append.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ENABLE_ENV = "MODULAR_ENABLE_PROFILING"
# A bound on the events kept (about 200 bytes each): a long run cannot fill the memory.
MAX_EVENTS = 1_000_000


class _State:
    """Whether spans are recorded; one attribute read is all a disabled span costs."""

    __slots__ = ("enabled",)

    def __init__(self) -> None:
        self.enabled = False


STATE = _State()
_EPOCH_NS = time.monotonic_ns()
_lock = threading.Lock()  # for readers and reset; appends rely on list.append being atomic
# getpid and gettid are system calls (~0.3 us here): cached, the pid refreshed after a fork.
_pid = os.getpid()
_local = threading.local()


def _refresh_pid() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_refresh_pid)
# (phase, name, start_ns, duration_ns, pid, tid, category, args)
_events: list[tuple[str, str, int, int, int, int, str, Mapping[str, Any] | None]] = []
_dropped = 0


def env_enabled() -> bool:
    """``$MODULAR_ENABLE_PROFILING`` read as a switch (unset, ``0``, ``false``, ``off``: off).

    Raises:
        ValueError: for any other value than those and ``1``/``true``/``on``.
    """
    text = os.environ.get(ENABLE_ENV, "").strip().lower()
    if text in ("", "0", "false", "off", "no"):
        return False
    if text in ("1", "true", "on", "yes"):
        return True
    raise ValueError(f"{ENABLE_ENV} must be 1 or 0 (or true/false), got "
                     f"{os.environ[ENABLE_ENV]!r}")


def record(phase: str, name: str, start_ns: int, duration_ns: int = 0, *,
           category: str = "span", args: Mapping[str, Any] | None = None,
           tid: int | None = None) -> None:
    """Appends one event: ``"X"`` (complete: start and duration) or ``"i"`` (instant)."""
    global _dropped
    if tid is None:
        try:
            tid = _local.tid
        except AttributeError:
            tid = _local.tid = threading.get_native_id()
    if len(_events) >= MAX_EVENTS:  # racy by a few events at most: a bound, not an exact one
        _dropped += 1
        return
    _events.append((phase, name, start_ns, duration_ns, _pid, tid, category, args))


def reset() -> None:
    """Forgets every recorded event."""
    global _dropped
    with _lock:
        _events.clear()
        _dropped = 0


def _us(ns: int) -> float:
    return round(ns / 1000.0, 3)


def trace_events() -> list[dict[str, Any]]:
    """The recorded events as Chrome trace events (``ts``/``dur`` in microseconds)."""
    with _lock:
        events = list(_events)
    out: list[dict[str, Any]] = []
    threads: set[tuple[int, int]] = set()
    for phase, name, start, duration, pid, tid, category, args in events:
        event: dict[str, Any] = {"name": name, "cat": category, "ph": phase,
                                 "ts": _us(start - _EPOCH_NS), "pid": pid, "tid": tid}
        if phase == "X":
            event["dur"] = _us(max(duration, 0))
        else:
            event["s"] = "t"  # an instant event on its thread's track
        if args:
            event["args"] = dict(args)
        out.append(event)
        threads.add((pid, tid))
    names = {t.native_id: t.name for t in threading.enumerate()}
    for pid, tid in sorted(threads):
        out.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                    "args": {"name": names.get(tid, f"thread {tid}")}})
    return out


def chrome_trace() -> dict[str, Any]:
    """The whole trace as a Chrome / Perfetto JSON object (``{"traceEvents": [...]}``)."""
    trace: dict[str, Any] = {"traceEvents": trace_events(), "displayTimeUnit": "ms"}
    if _dropped:
        trace["otherData"] = {"dropped_events": _dropped, "max_events": MAX_EVENTS}
    return trace


def write_chrome_trace(path: str | os.PathLike[str]) -> Path:
    """Writes :func:`chrome_trace` to ``path`` (open it in ``chrome://tracing`` or Perfetto).

    The file is written beside its final name and renamed, so a reader never sees half of it.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(chrome_trace()))
    os.replace(tmp, path)
    return path


def summary() -> str:
    """The recorded spans per name: count, total ms and mean us, by total time (a text table).

    Nested spans are each counted in full, so totals of nested names add up to more than the
    wall time.
    """
    with _lock:
        events = [e for e in _events if e[0] == "X"]
    stats: dict[tuple[str, str], list[int]] = {}
    for _, name, _, duration, _, _, category, _ in events:
        s = stats.setdefault((category, name), [0, 0])
        s[0] += 1
        s[1] += duration
    rows = sorted(stats.items(), key=lambda kv: -kv[1][1])
    width = max([len(name) for (_, name) in stats] + [4])
    lines = [f"{'span':<{width}}  {'kind':<6} {'count':>7} {'total ms':>10} {'mean us':>10}"]
    for (category, name), (count, total) in rows:
        lines.append(f"{name:<{width}}  {category:<6} {count:>7} {total / 1e6:>10.3f} "
                     f"{total / count / 1e3:>10.1f}")
    return "\n".join(lines)
