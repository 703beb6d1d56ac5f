"""mo-split-masked-transfers (compiler/pipelines/masked_chunks.py): on AVX2 a masked transfer
of several registers becomes one transfer per register, skipped past the mask's count, plain
inside it, masked only where the count cuts it. The IR for an AVX2 description (whatever the
host), and numbers against numpy with the split forced on, so that an AVX-512 host runs the
AVX2 code path too (the machine code is AVX-512 there, the structure the same)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from mlir import ir
from mo_helpers import Compiled, check, make_context, mo_type, one_op_module

from max.compiler.host_cpu import AVX2, AVX512
from max.compiler.pipelines import masked_chunks

pytestmark = pytest.mark.usefixtures("schedule_debug")

TEXT = """
func.func @f(%m: memref<?xf32>, %n: index, %o: memref<4x?xf32>, %r: index,
             %s: memref<?xf16>) -> (vector<64xf32>, vector<32xf16>) {
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %pad = arith.constant 0.0 : f32
  %hpad = arith.constant 0.0 : f16
  %mask = vector.create_mask %n : vector<64xi1>
  %v = vector.transfer_read %m[%c0], %pad, %mask {in_bounds = [true]}
      : memref<?xf32>, vector<64xf32>
  %rows = vector.create_mask %r, %n : vector<4x16xi1>
  %row = vector.extract %rows[2] : vector<16xi1> from vector<4x16xi1>
  %w = vector.extract_strided_slice %v {offsets = [0], sizes = [16], strides = [1]}
      : vector<64xf32> to vector<16xf32>
  vector.transfer_write %w, %o[%c2, %c0], %row {in_bounds = [true]}
      : vector<16xf32>, memref<4x?xf32>
  %hmask = vector.create_mask %n : vector<32xi1>
  %h = vector.transfer_read %s[%c0], %hpad, %hmask {in_bounds = [true]}
      : memref<?xf16>, vector<32xf16>
  return %v, %h : vector<64xf32>, vector<32xf16>
}
"""


def _transfers(text: str) -> list[str]:
    return re.findall(r"vector\.transfer_(?:read|write) [^\n]*", text)


def _masked(transfer: str) -> bool:
    """Whether a printed transfer has a mask operand (after the indices: padding and mask for
    a read, the mask for a write)."""
    operands = transfer.split("]", 1)[1].split("{", 1)[0].count(",")
    return operands == (2 if "transfer_read" in transfer else 1)


def test_avx2_splits_into_registers() -> None:
    with make_context():
        m = ir.Module.parse(TEXT)
        assert masked_chunks.split_masked_transfers(m, AVX2) == 2  # not the f16 read
        assert m.operation.verify()
        text = str(m)
    transfers = _transfers(text)
    f32 = [t for t in transfers if "f16" not in t]
    # 8 registers of the 64-lane read, each plain or masked; 2 plain ones of the row write.
    assert len(f32) == 2 * 8 + 2
    assert all(t.endswith("vector<8xf32>") or "vector<8xf32>, memref" in t for t in f32)
    reads = [t for t in f32 if "transfer_read" in t]
    writes = [t for t in f32 if "transfer_write" in t]
    assert sum(map(_masked, reads)) == 8
    # Where a register of the row write is cut, its lanes are stored one by one (up to 7).
    assert not any(map(_masked, writes)) and len(writes) == 2
    assert text.count("memref.store") == 2 * 7
    # The f16 read stays whole (AVX2 has no 16-bit masked moves: LLVM scalarizes it).
    assert sum("vector<32xf16>" in t for t in transfers) == 1


def test_avx512_is_left_alone() -> None:
    with make_context():
        m = ir.Module.parse(TEXT)
        before = str(m)
        assert masked_chunks.split_masked_transfers(m, AVX512) == 0
        assert str(m) == before


@pytest.fixture
def forced_avx2(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The split as on an AVX2 host, whatever this one is; counts the transfers it split."""
    split = masked_chunks.split_masked_transfers
    counts: list[int] = []

    def on_avx2(module: ir.Module, cpu=None) -> int:
        counts.append(split(module, AVX2))
        return counts[-1]

    monkeypatch.setattr(masked_chunks, "applies", lambda cpu=None: True)
    monkeypatch.setattr(masked_chunks, "split_masked_transfers", on_avx2)
    return counts


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x.astype(np.float64) - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 12, 63, 64, 65, 70, 130])
def test_softmax_rows_of_any_length(forced_avx2: list[int], n: int) -> None:
    dims = ("rows", "n")
    text = one_op_module("softmax", [("f32", dims)], ("f32", dims), "axis = 1 : i64")
    x = (np.random.default_rng(n).standard_normal((5, n)) * 4).astype(np.float32)
    (got,), _ = Compiled(text)([x], [((5, n), "float32")])
    check(got, _softmax(x).astype(np.float32), rtol=2e-5, atol=1e-6)
    assert sum(forced_avx2) > 0


@pytest.mark.parametrize("n", [3, 12, 17, 64, 77])
def test_short_batched_matmul_and_transpose(forced_avx2: list[int], n: int) -> None:
    """Attention's ``q @ k^T`` at a short symbolic length: padded register tiles, copies in and
    out of them, and the transposed operand's remainder tiles."""
    q, k = mo_type("f32", ("b", "s", 32)), mo_type("f32", ("b", "s", 32))
    kt, out = mo_type("f32", ("b", 32, "s")), mo_type("f32", ("b", "s", "s"))
    text = (f"func.func @g(%q: {q}, %k: {k}) -> {out} attributes {{mo.graph}} {{\n"
            f'  %t = "mo.transpose"(%k) {{permutation = array<i64: 0, 2, 1>}} : ({k}) -> {kt}\n'
            f'  %0 = "mo.matmul"(%q, %t) : ({q}, {kt}) -> {out}\n'
            f"  func.return %0 : {out}\n}}\n")
    rng = np.random.default_rng(n)
    a, b = (rng.standard_normal((6, n, 32)).astype(np.float32) for _ in range(2))
    (got,), _ = Compiled(text)([a, b], [((6, n, n), "float32")])
    check(got, (a.astype(np.float64) @ b.astype(np.float64).transpose(0, 2, 1)).astype(
        np.float32), rtol=1e-4, atol=1e-4)
    assert sum(forced_avx2) > 0
