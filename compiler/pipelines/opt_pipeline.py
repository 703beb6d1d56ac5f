"""The ``opt`` pass pipeline: LLVM's own ``default<O{level}>``, less what costs our IR time
and gives it nothing.

Our modules reach LLVM vectorized, unrolled and with their loads already where they belong,
so some of the default pipeline only searches. ``loop-load-elim`` (forwarding a value stored
in one iteration to the load of the next) builds loop access analysis for every innermost
loop, and on the matmul kernels' unrolled vector loops that was 20-35 % of ``opt``: 0.34 ->
0.22 s of user time on the encoder block, whose object code came out byte for byte the same;
so did the assembly of 1987 of the 1997 modules the test suite compiles (graph ops, engine, nn,
pipelines, benchmarks, compiler tests). The other ten are small test graphs: sorts and
resizes whose block labels or shuffle constants come in another order, reductions with two
operands of an add swapped, two loops that start one step later, and an nn model whose code
is 5 % shorter (no loop versioned for a forwarded load).

The pipeline is LLVM's printed ``default<O{level}>`` (``opt -print-pipeline-passes``, for the
same target) with those passes taken out, so it follows the pinned LLVM and no list of passes
is copied here; where the printed pipeline lacks a dropped pass or cannot be printed, the
default pipeline runs as it is.
"""

from __future__ import annotations

import functools
import re
import subprocess

#: Passes taken out of ``default<O{level}>`` (see the module docstring for the measurement).
DROPPED: tuple[str, ...] = ("loop-load-elim",)


def without(pipeline: str, names: tuple[str, ...]) -> str:
    """``pipeline`` (opt's textual form) without the passes ``names``, each a whole element
    between ``(`` or ``,`` and ``,`` or ``)``."""
    for name in map(re.escape, names):
        pipeline = re.sub(rf"(?<=[(,]){name},", "", pipeline)
        pipeline = re.sub(rf",{name}(?=\))", "", pipeline)
    return pipeline


@functools.lru_cache(maxsize=None)
def opt_passes(opt: str, level: int, target: tuple[str, ...]) -> str:
    """The ``-passes=`` text for ``opt`` at ``-O{level}`` on ``target`` (``-mtriple``/
    ``-mcpu`` flags): the default pipeline without :data:`DROPPED`."""
    default = f"default<O{level}>"
    try:
        r = subprocess.run([opt, f"-O{level}", *target, "-print-pipeline-passes",
                            "-disable-output", "-"], input="", capture_output=True, text=True,
                           timeout=60)
    except (OSError, subprocess.SubprocessError):
        return default
    printed = r.stdout.strip()
    if r.returncode != 0 or not printed or "\n" in printed:
        return default
    pipeline = without(printed, DROPPED)
    if pipeline == printed:
        return default  # nothing to drop: the default text is shorter to run and to read
    check = subprocess.run([opt, f"-passes={pipeline}", *target, "-disable-output", "-"],
                           input="", capture_output=True, text=True, timeout=60)
    return pipeline if check.returncode == 0 else default


__all__ = ["DROPPED", "opt_passes", "without"]
