"""Runs the NVIDIA target's barrier-free kernels on the CPU, to check their numbers without a
GPU.

The module is taken after ``mo-gpu-check-host`` (host code: launches and allocations only).
Each ``gpu.launch`` becomes two nested loops, over blocks and over threads, in that order:
a kernel whose threads never wait for each other (no ``gpu.barrier``, no ``gpu.shuffle``: the
elementwise and plain-loops kernels) computes the same thing run one thread after another.
``gpu.alloc`` becomes ``memref.alloc``; then the CPU target's LLVM lowering, a shared object,
and a call through memref descriptors. A test helper, not part of the compiler.
"""

from __future__ import annotations

import ctypes
import re
import tempfile
from pathlib import Path

import numpy as np
from mlir import ir

from max.compiler.lowering import lower_to_linalg
from max.compiler.pipelines import cpu
from max.compiler.targets import run_element
from max.compiler.targets.nvidia import NVIDIA, NvidiaDescription
from max.dialects.mo import make_context
from max.graph import Graph

_LAUNCH = re.compile(
    r"gpu\.launch blocks\((%\w+), (%\w+), (%\w+)\) in \((%\w+) = (%\w+), (%\w+) = (%\w+), "
    r"(%\w+) = (%\w+)\) threads\((%\w+), (%\w+), (%\w+)\) in \((%\w+) = (%\w+), "
    r"(%\w+) = (%\w+), (%\w+) = (%\w+)\) \{")


def _loops(m: re.Match) -> str:
    bx, by, bz, gx, gxv, gy, gyv, gz, gzv, tx, ty, tz, sx, sxv, sy, syv, sz, szv = m.groups()
    zero, one = "%emu_c0", "%emu_c1"
    alias = "".join(f"{name} = arith.addi {value}, {zero} : index\n"
                    for name, value in ((gx, gxv), (gy, gyv), (gz, gzv), (sx, sxv),
                                        (sy, syv), (sz, szv), (by, zero), (bz, zero),
                                        (ty, zero), (tz, zero)))
    return (f"scf.for {bx} = {zero} to {gxv} step {one} {{\n"
            f"scf.for {tx} = {zero} to {sxv} step {one} {{\n{alias}")


def emulated_text(graph: Graph) -> str:
    """The host module text of ``graph`` after the NVIDIA schedules, launches as loops."""
    with make_context():
        m = ir.Module.parse(str(graph._module))
        lower_to_linalg(m)
        NVIDIA.run(m, until="mo-gpu-check-host", **NvidiaDescription().options())
        text = str(m)
    assert "gpu.barrier" not in text and "gpu.shuffle" not in text, "not barrier-free"
    text, n = _LAUNCH.subn(_loops, text)
    assert n == text.count("gpu.terminator")
    text = text.replace("gpu.terminator", "}")
    text = re.sub(r"gpu\.alloc\s*\(\)", "memref.alloc()", text)
    text = re.sub(r"gpu\.dealloc\s+", "memref.dealloc ", text)
    body_start = re.search(r"func\.func @\w+\(.*\{\n", text)
    assert body_start is not None
    at = body_start.end()
    return (text[:at] + "%emu_c0 = arith.constant 0 : index\n"
            "%emu_c1 = arith.constant 1 : index\n" + text[at:])


class Emulated:
    """A graph's NVIDIA kernels compiled for the CPU (see the module docstring)."""

    def __init__(self, graph: Graph) -> None:
        text = emulated_text(graph)
        with make_context():
            module = ir.Module.parse(text)
            fn = cpu.graph_functions(module)[0]
            self.sig = cpu.entry_signature(fn)
            run_element(module, "mo-lower-to-llvm")
            llvm_ir = cpu.translate_to_llvm_ir(module)
        self._dir = tempfile.TemporaryDirectory(prefix="mo-gpu-emu-")
        so = Path(self._dir.name) / "model.so"
        cpu.build_shared_object(llvm_ir, so)
        self.lib = ctypes.CDLL(str(so))
        self.entry = getattr(self.lib, self.sig.symbol)
        self.entry.restype = None

    def __call__(self, inputs: list[np.ndarray], outputs: list[tuple[tuple[int, ...], str]]
                 ) -> list[np.ndarray]:
        from mo_helpers import memref_descriptor

        ins = [np.ascontiguousarray(a) for a in inputs]
        outs = [np.full(shape, 7, dtype) for shape, dtype in outputs]  # not zeros: all written
        descs = [memref_descriptor(a) for a in ins + outs]
        self.entry(*[ctypes.byref(d) for d in descs])
        return outs
