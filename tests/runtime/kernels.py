"""Hand-written memref kernels in the CPU entry ABI, built into a .so or JIT bytecode.

They test the runtime on its own, without the MO lowering: a concat (an algebraic output dim
``n + m``) and a copy whose bounds check fails for an index outside [0, 4).
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

CONCAT = """
func.func @cat(%a: memref<?x3xf32>, %b: memref<?x3xf32>, %o: memref<?x3xf32>)
    attributes {llvm.emit_c_interface} {
  %c0 = arith.constant 0 : index
  %n = memref.dim %a, %c0 : memref<?x3xf32>
  %m = memref.dim %b, %c0 : memref<?x3xf32>
  %sa = memref.subview %o[0, 0] [%n, 3] [1, 1]
      : memref<?x3xf32> to memref<?x3xf32, strided<[3, 1]>>
  linalg.copy ins(%a : memref<?x3xf32>) outs(%sa : memref<?x3xf32, strided<[3, 1]>>)
  %sb = memref.subview %o[%n, 0] [%m, 3] [1, 1]
      : memref<?x3xf32> to memref<?x3xf32, strided<[3, 1], offset: ?>>
  linalg.copy ins(%b : memref<?x3xf32>) outs(%sb : memref<?x3xf32, strided<[3, 1], offset: ?>>)
  return
}
"""

# o[i] = x[i] * 2 where 0 <= x[i] < 4; any other x[i] sets the check byte (and o[i] = 0).
CHECKED = """
func.func @checked(%x: memref<?xi64>, %o: memref<?xi64>, %c: memref<1xi8>)
    attributes {llvm.emit_c_interface} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0 : i64
  %four = arith.constant 4 : i64
  %two = arith.constant 2 : i64
  %one8 = arith.constant 1 : i8
  %n = memref.dim %x, %c0 : memref<?xi64>
  scf.for %i = %c0 to %n step %c1 {
    %v = memref.load %x[%i] : memref<?xi64>
    %lo = arith.cmpi slt, %v, %zero : i64
    %hi = arith.cmpi sge, %v, %four : i64
    %bad = arith.ori %lo, %hi : i1
    scf.if %bad {
      memref.store %one8, %c[%c0] : memref<1xi8>
      memref.store %zero, %o[%i] : memref<?xi64>
    } else {
      %d = arith.muli %v, %two : i64
      memref.store %d, %o[%i] : memref<?xi64>
    }
  }
  return
}
"""

PIPELINE = (
    "builtin.module(func.func(convert-linalg-to-loops),lower-affine,convert-scf-to-cf,"
    "expand-strided-metadata,lower-affine,finalize-memref-to-llvm,convert-arith-to-llvm,"
    "convert-index-to-llvm,convert-func-to-llvm,convert-cf-to-llvm,reconcile-unrealized-casts)"
)


def _lower(source: str):
    from mlir import ir
    from mlir.passmanager import PassManager

    module = ir.Module.parse(source)
    PassManager.parse(PIPELINE).run(module.operation)
    return module


def build_so(source: str) -> bytes:
    """The bytes of a shared object compiled from ``source`` (memref + llvm.emit_c_interface)."""
    from mlir import ir

    from max.compiler.pipelines import cpu

    with ir.Context():
        llvm_ir = cpu.translate_to_llvm_ir(_lower(source))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "k.so"
        cpu.build_shared_object(llvm_ir, out, opt_level=2)
        return out.read_bytes()


def build_jit_bytecode(source: str) -> bytes:
    """LLVM-dialect MLIR bytecode of ``source``, for ``load_jit``."""
    from mlir import ir

    with ir.Context():
        buf = io.BytesIO()
        _lower(source).operation.write_bytecode(buf)
        return buf.getvalue()
