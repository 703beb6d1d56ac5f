"""Subset hoisting on the marked loops only gives what MLIR's pass gives on every loop."""

from __future__ import annotations

import pytest
from mlir import ir
from mo_helpers import (  # noqa: F401  (two_threads: a fixture)
    graph_text, make_context, one_op_module, two_threads,
)

from max.compiler.lowering import lower_to_linalg
from max.compiler.passes.ir_util import walk_ops
from max.compiler.passes.registry import pass_manager
from max.compiler.pipelines import cpu_schedule, subset_hoisting
from max.compiler.targets.cpu import CPU
from max.graph import ops

pytestmark = pytest.mark.usefixtures("two_threads")


def _attention(x, wq, wk):  # x [s, 64]: softmax(x wq (x wk)^T) x, then layer norm's rows
    scores = ops.matmul(ops.matmul(x, wq), ops.transpose(ops.matmul(x, wk), 0, 1))
    y = ops.matmul(ops.softmax(scores), x)
    return ops.gelu(y - ops.mean(y, axis=-1))


CASES = {
    # Static and symbolic M: the k loop's accumulator and the C block across k blocks.
    "matmul": one_op_module("matmul", [("f32", (300, 200)), ("f32", (200, 96))],
                            ("f32", (300, 96))),
    "matmul_dynamic_m": one_op_module("matmul", [("f32", ("m", 200)), ("f32", (200, 96))],
                                      ("f32", ("m", 96))),
    "bmm": one_op_module("matmul", [("f32", ("b", 37, 64)), ("f32", ("b", 64, 50))],
                         ("f32", ("b", 37, 50))),
    "attention": graph_text(_attention, [("s", 64), (64, 64), (64, 64)]),
}


def _before_hoisting(text: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The module as the schedule hands it to the hoisting."""
    seen: list[str] = []

    def capture(module: ir.Module) -> int:
        seen.append(str(module))
        return subset_hoisting.hoist_loop_invariant_subsets(module)

    monkeypatch.setattr(cpu_schedule, "hoist_loop_invariant_subsets", capture)
    with make_context():
        m = ir.Module.parse(text)
        lower_to_linalg(m)
        CPU.run(m, until="eliminate-empty-tensors")
    assert len(seen) == 1
    return seen[0]


def _loops(module: ir.Module) -> int:
    return sum(1 for op in walk_ops(module.operation)
               if op.name in ("scf.for", "scf.forall"))


@pytest.mark.parametrize("key", list(CASES))
def test_marked_loops_hoist_as_the_pass_does(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _before_hoisting(CASES[key], monkeypatch)
    with make_context():
        by_pass = ir.Module.parse(before)
        pass_manager("loop-invariant-subset-hoisting").run(by_pass.operation)
        ours = ir.Module.parse(before)
        loops = _loops(ours)
        marked = subset_hoisting.hoist_loop_invariant_subsets(ours)
        assert str(by_pass) != before  # the pass hoists something here: the check means something
        assert str(ours) == str(by_pass)
        assert subset_hoisting.MARK not in str(ours)
        assert 0 < marked <= loops


_NEST = """
func.func @f(%t: tensor<64x8xf32>, %n: index) -> tensor<64x8xf32> {{
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %pad = arith.constant 0.0 : f32
  %r = scf.for %i = %c0 to %n step %c1 iter_args(%a = %t) -> (tensor<64x8xf32>) {{
    %s = scf.for %j = %c0 to %c8 step %c1 iter_args(%b = %a) -> (tensor<64x8xf32>) {{
      %v = vector.transfer_read %b[{row}, %c0], %pad {{in_bounds = [true]}}
          : tensor<64x8xf32>, vector<8xf32>
      %w = arith.addf %v, %v : vector<8xf32>
      %u = vector.transfer_write %w, %b[{row}, %c0] {{in_bounds = [true]}}
          : vector<8xf32>, tensor<64x8xf32>
      scf.yield %u : tensor<64x8xf32>
    }}
    scf.yield %s : tensor<64x8xf32>
  }}
  return %r : tensor<64x8xf32>
}}
"""


@pytest.mark.parametrize("row,marked", [("%i", 1), ("%c0", 2)])
def test_an_extraction_is_followed_out_of_each_loop_it_can_leave(row: str, marked: int) -> None:
    # Row %i: the pair leaves the inner loop only (the outer one is not even tried). Row 0:
    # hoisted out of the inner loop, it reads the outer loop's iter_arg and leaves that too.
    text = _NEST.format(row=row)
    with make_context():
        m = ir.Module.parse(text)
        assert subset_hoisting.mark_loops(m) == marked
        by_pass = ir.Module.parse(text)
        pass_manager("loop-invariant-subset-hoisting").run(by_pass.operation)
        ours = ir.Module.parse(text)
        subset_hoisting.hoist_loop_invariant_subsets(ours)
        assert str(ours) == str(by_pass) != str(ir.Module.parse(text))
