"""The CPU the CPU target generates code for: the host (``-mcpu=native``), as the schedules
need to know it.

The register tiles of the matmul, batch matmul and convolution kernels hold their accumulators
in vector registers across the k loop; how many fit depends on the vector unit. An 8 x 32 f32
tile is 16 zmm accumulators with AVX-512 (32 registers), but 32 ymm registers with AVX2 (16
registers in all): it spills on every k step. Measured on a 2-vCPU AMD EPYC (Zen 3, AVX2),
matmul 1024^3 on one thread: 8 x 32 33 GF/s, 6 x 16 57 GF/s.

The description also goes into the compile cache's key: an artifact built here uses the host's
instructions (``-mcpu=native``), so one built on another CPU (a cache directory that moved
with a home directory or an image) must not be loaded.
"""

from __future__ import annotations

import hashlib
import platform
from dataclasses import dataclass
from functools import cache
from pathlib import Path


@dataclass(frozen=True)
class CpuDescription:
    """What a schedule may assume of the CPU it generates code for.

    Attributes:
        name: the CPU's model name, as the OS reports it (informational).
        vector_bits: the width of the f32 FMA vectors: 512 (AVX-512F), 256 (AVX2 with FMA),
            128 (SSE, NEON).
        vector_registers: how many such registers the code can name (32 with AVX-512 and on
            AArch64, else 16).
        features: the OS's CPU feature flags (``/proc/cpuinfo``).
        l1d_bytes: the level-1 data cache of one core (48 KiB on recent Xeons, 32 KiB on Zen).
    """

    name: str
    vector_bits: int
    vector_registers: int
    features: frozenset[str] = frozenset()
    l1d_bytes: int = 32 << 10

    @property
    def f32_lanes(self) -> int:
        """f32 lanes of one vector register."""
        return self.vector_bits // 32

    @property
    def has_permvar(self) -> bool:
        """``vpermps`` on 512-bit vectors (AVX-512F on x86-64): a 16-entry table lookup."""
        return "avx512f" in self.features

    @property
    def has_scalef(self) -> bool:
        """``vscalefps`` (AVX-512F on x86-64): ``x * 2^n`` in one instruction, overflow,
        underflow and denormal results rounded once; LLVM lowers a vector ``ldexp`` to it
        (elsewhere ``ldexp`` is a libm call per lane)."""
        return "avx512f" in self.features

    def fingerprint(self) -> str:
        """A short string that differs between CPUs whose generated code may differ."""
        h = hashlib.sha256(self.name.encode())
        h.update(" ".join(sorted(self.features)).encode())
        h.update(str(self.l1d_bytes).encode())
        return f"{self.vector_bits}x{self.vector_registers}-{h.hexdigest()[:12]}"


#: AVX-512 (Xeon since Skylake-SP, Zen 4): the description the schedules were first tuned on.
AVX512 = CpuDescription("avx512", 512, 32, frozenset({"avx512f", "avx2", "fma"}), 48 << 10)
#: AVX2 with FMA (Haswell and later, Zen 1-3).
AVX2 = CpuDescription("avx2", 256, 16, frozenset({"avx2", "fma"}))


def _cpuinfo() -> tuple[str, frozenset[str]]:
    """(model name, feature flags) from Linux's ``/proc/cpuinfo``; empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor(), frozenset()
    name, flags = "", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not name:
            name = value.strip()
        elif key in ("flags", "Features") and not flags:  # x86 / AArch64
            flags = frozenset(value.split())
        if name and flags:
            break
    return name or platform.processor(), flags


def _l1d_bytes() -> int:
    """The level-1 data cache of cpu0 (Linux sysfs), else 32 KiB."""
    root = Path("/sys/devices/system/cpu/cpu0/cache")
    try:
        for index in sorted(root.glob("index*")):
            if (index / "level").read_text().strip() == "1" and \
                    (index / "type").read_text().strip() in ("Data", "Unified"):
                size = (index / "size").read_text().strip().upper()
                scale = {"K": 1 << 10, "M": 1 << 20}.get(size[-1:], 1)
                return int(size.rstrip("KM")) * scale
    except (OSError, ValueError):
        pass
    return 32 << 10


def describe(name: str, features: frozenset[str], machine: str,
             l1d_bytes: int = 32 << 10) -> CpuDescription:
    """The description of a CPU with these feature flags on this ``platform.machine()``."""
    if machine in ("x86_64", "AMD64"):
        if "avx512f" in features:
            bits, registers = 512, 32
        elif "avx2" in features and "fma" in features:
            bits, registers = 256, 16
        else:
            bits, registers = 128, 16
    else:  # AArch64 NEON: 32 registers of 128 bits; others: assume SSE-like
        bits, registers = 128, 32 if machine in ("aarch64", "arm64") else 16
    return CpuDescription(name, bits, registers, features, l1d_bytes)


@cache
def host() -> CpuDescription:
    """The host CPU's description (read once per process)."""
    name, features = _cpuinfo()
    return describe(name, features, platform.machine(), _l1d_bytes())


__all__ = ["AVX2", "AVX512", "CpuDescription", "describe", "host"]
