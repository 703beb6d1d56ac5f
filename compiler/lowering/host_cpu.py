"""What the host CPU offers to the code generated for it (the CPU target compiles for
``-mcpu=native``): a lowering rule may use an instruction directly where the host has it."""

from __future__ import annotations

import platform
from pathlib import Path


def _cpu_flags() -> frozenset[str]:
    """The host's CPU feature flags (Linux ``/proc/cpuinfo``; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


#: ``vpermps`` on 512-bit vectors (AVX-512F on x86-64).
HAVE_PERMVAR = platform.machine() in ("x86_64", "AMD64") and "avx512f" in _cpu_flags()

__all__ = ["HAVE_PERMVAR"]
