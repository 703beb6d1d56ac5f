"""The engine's side of profiling: ``Model.execute`` spans and the kernel report at exit.

``MAX_PROFILE_KERNELS`` (``max.runtime.kernel_profile.profile_setting``) is read by the
compiler driver (the option ``profile_kernels``, so part of the cache key) and here: a
profiled model's calls go through a :class:`~max.runtime.kernel_profile.ProfiledRun`, the
kernel tables are printed on stderr at exit, and a trace path turns ``max.profiler`` on and
receives the Chrome trace at exit.
"""

from __future__ import annotations

import atexit
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from max import profiler
from max.profiler._trace import env_enabled, record
from max.runtime import ArtifactRecord, CpuFunction
from max.runtime.kernel_profile import ProfiledRun, kernel_stats, profile_setting, report

_lock = threading.Lock()
_registered: set[Path | None] = set()


def setup() -> None:
    """Checks the profiling switches and arranges the report (and trace) at exit.

    Raises:
        ValueError: if ``MAX_PROFILE_KERNELS`` or ``MODULAR_ENABLE_PROFILING`` is malformed.
    """
    env_enabled()  # raises for a malformed value (max.profiler only warned at import)
    setting = profile_setting()
    if setting is None:
        return
    with _lock:
        if setting.trace_path in _registered:
            return
        _registered.add(setting.trace_path)
    if setting.trace_path is not None:
        profiler.enable_profiling()
    atexit.register(_at_exit, setting.trace_path)


def _at_exit(trace_path: Path | None) -> None:
    text = report()
    if text:
        print(f"\n{text}", file=sys.stderr)
    if trace_path is not None:
        try:
            profiler.write_chrome_trace(trace_path)
        except OSError as e:
            print(f"MAX_PROFILE_KERNELS: could not write {trace_path}: {e}", file=sys.stderr)
        else:
            print(f"MAX_PROFILE_KERNELS: Chrome trace written to {trace_path}",
                  file=sys.stderr)


def kernel_run(function: CpuFunction, record: ArtifactRecord, run: Any) -> ProfiledRun | None:
    """What runs a model whose binary times its kernels for a trace, else None."""
    if record.kernels is None:
        if record.options.get("profile_kernels"):
            warnings.warn(f"model {record.name!r}: kernel profiling needs a shared object "
                          f"(a system C compiler); this {record.kind!r} build is not timed",
                          RuntimeWarning, stacklevel=3)
        return None
    setup()
    return ProfiledRun(kernel_stats(function, record), run)


def traced_run(model: Any, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``model._run(arrays)`` recorded as a span, with its kernels (if timed) inside."""
    kernels = model._kernel_run
    events: list[tuple[str, int, int, dict[str, Any]]] = []
    start = time.monotonic_ns()
    try:
        if kernels is None:
            return model._run(arrays)
        outs, events = kernels.traced_call(arrays)
        return outs
    finally:
        end = time.monotonic_ns()
        record("X", f"{model.name}.execute", start, end - start, category="model")
        for label, first, total, args in events:
            record("X", label, first, total, category="kernel", args=args)
