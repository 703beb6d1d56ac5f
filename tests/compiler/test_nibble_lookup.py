"""mo-nibble-lookup rewrites only conversions of 4-bit values it can prove: ``x & 15`` of
32-bit lanes and ``byte >> 4`` of a zero-extended byte; anything else keeps its sitofp."""

from __future__ import annotations

import pytest
from mlir import ir
from mo_helpers import make_context

from max.compiler.host_cpu import host
from max.compiler.pipelines.nibble_lookup import INTRINSIC, lookup_nibbles

TEXT = """
func.func @f(%b: vector<16xi8>, %w: vector<16xi32>, %l: vector<16xi64>)
    -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
  %c15 = arith.constant dense<15> : vector<16xi32>
  %c31 = arith.constant dense<31> : vector<16xi32>
  %c4 = arith.constant dense<4> : vector<16xi32>
  %c15l = arith.constant dense<15> : vector<16xi64>
  %x = arith.extui %b : vector<16xi8> to vector<16xi32>
  %lo = arith.andi %x, %c15 : vector<16xi32>
  %hi = arith.shrui %x, %c4 : vector<16xi32>
  %wide = arith.andi %w, %c31 : vector<16xi32>
  %notbyte = arith.shrui %w, %c4 : vector<16xi32>
  %long = arith.andi %l, %c15l : vector<16xi64>
  %0 = arith.sitofp %lo : vector<16xi32> to vector<16xf32>
  %1 = arith.sitofp %hi : vector<16xi32> to vector<16xf32>
  %2 = arith.sitofp %wide : vector<16xi32> to vector<16xf32>
  %3 = arith.sitofp %notbyte : vector<16xi32> to vector<16xf32>
  %4 = arith.sitofp %long : vector<16xi64> to vector<16xf32>
  return %0, %1, %2, %3, %4 : vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>
}
"""


@pytest.mark.skipif(not host().has_permvar, reason="the host has no AVX-512F: nothing is rewritten")
def test_only_provable_nibbles_become_lookups() -> None:
    with make_context():
        m = ir.Module.parse(TEXT)
        assert lookup_nibbles(m) == 2
        m.operation.verify()
        text = str(m)
    assert text.count(INTRINSIC) == 2
    assert text.count("arith.sitofp") == 3  # x & 31, a shifted word, 64-bit lanes
