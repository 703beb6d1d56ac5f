"""What this process has mapped now, read from /proc/self/maps (for the release tests)."""

from __future__ import annotations


def mapped_models() -> int:
    """Compiled models mapped in this process now (shared objects from the loader's private
    directory, ``max-rt-*``)."""
    paths = set()
    with open("/proc/self/maps") as f:
        for line in f:
            if "/max-rt-" in line:
                paths.add(line.split(None, 5)[5].strip())
    return len(paths)
