"""Helpers of the compile-only NVIDIA tests: graphs on the GPU, and ptxas from the pinned
``nvidia-cuda-nvcc-cu12`` wheel (never a ptxas on PATH or under /usr/local/cuda, which this
machine kind has in another version)."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from max.dtype import DType
from max.graph import DeviceRef, Graph, TensorType

PTXAS_WHEEL = "nvidia-cuda-nvcc-cu12"
PTXAS_VERSION = "12.9.86"


def gpu_graph(fn, specs: list[tuple[DType, tuple]], name: str = "g") -> Graph:
    """A graph of ``fn`` over inputs placed on the GPU (``(dtype, shape)`` each)."""
    return Graph(name, fn, input_types=[TensorType(d, s, DeviceRef.GPU()) for d, s in specs])


def ptxas_binary() -> Path | None:
    """The pinned wheel's ptxas, or None when that wheel (that version) is not installed."""
    try:
        dist = metadata.distribution(PTXAS_WHEEL)
    except metadata.PackageNotFoundError:
        return None
    if dist.version != PTXAS_VERSION:
        return None
    path = Path(str(dist.locate_file("nvidia/cuda_nvcc/bin/ptxas")))
    return path if path.is_file() else None


_FUNCTION = re.compile(r"Compiling entry function '([^']+)'")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_REGS = re.compile(r"Used (\d+) registers")


def parse_ptxas(text: str) -> list[tuple[str, int, int, int, int]]:
    """Per kernel: name, registers, spill store bytes, spill load bytes, stack frame bytes."""
    rows = []
    name = frame = None
    for line in text.splitlines():
        if m := _FUNCTION.search(line):
            name = m.group(1)
        elif m := _FRAME.search(line):
            frame = tuple(int(g) for g in m.groups())
        elif (m := _REGS.search(line)) and name is not None and frame is not None:
            rows.append((name, int(m.group(1)), frame[1], frame[2], frame[0]))
            name = frame = None
    return rows
