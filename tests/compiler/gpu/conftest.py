"""Fixtures of the compile-only NVIDIA tests (helpers: ``gpu_helpers.py``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from gpu_helpers import PTXAS_VERSION, PTXAS_WHEEL, parse_ptxas, ptxas_binary


@pytest.fixture
def ptxas(tmp_path: Path):
    """``ptxas(ptx, arch) -> [(kernel, registers, spill_stores, spill_loads, stack), ...]``:
    assembles with ``-O3 -v`` (fails the test on any ptxas error)."""
    binary = ptxas_binary()
    if binary is None:
        pytest.skip(f"{PTXAS_WHEEL}=={PTXAS_VERSION} is not installed (pip install it: the "
                    "test extra pins it)")

    def run(ptx: str, arch: str = "sm_90") -> list[tuple[str, int, int, int, int]]:
        src = tmp_path / "k.ptx"
        src.write_text(ptx)
        proc = subprocess.run([str(binary), f"-arch={arch}", "-O3", "-v", str(src), "-o",
                               str(tmp_path / "k.cubin")], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        return parse_ptxas(proc.stderr + proc.stdout)

    return run
