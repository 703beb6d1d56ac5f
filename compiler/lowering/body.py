"""Lowering one block of MO ops in order: the body of a graph, or of a subgraph inlined into
``scf.if``/``scf.while`` regions (``lowering/flow.py``)."""

from __future__ import annotations

from mlir import ir
from mlir.dialects import tensor

from max.compiler.lowering.context import FunctionLowering, LoweringContext, builtin_tensor_type
from max.compiler.lowering.registry import get_rule
from max.compiler.passes.registry import CompilationError
from max.dialects.mo.types import MOTensorType, parse_tensor_type


def lower_block(block: ir.Block, values: dict[ir.Value, ir.Value], state: FunctionLowering,
                where: str) -> list[ir.Value]:
    """Lowers the ops of ``block`` at the current insertion point; ``values`` maps MO values
    (the block's arguments first) to their lowered values and grows as ops are lowered.
    Returns the lowered operands of the block's ``func.return``."""
    for op in block.operations:
        op = op.operation
        if op.name == "func.return":
            return [values[v] for v in op.operands]
        rule = get_rule(op.name)
        if rule is None:
            raise CompilationError(f"{op.name} at {op.location}: no CPU lowering for this op")
        try:
            ctx = LoweringContext(
                op=op,
                operands=tuple(values[v] for v in op.operands),
                operand_types=tuple(mo_type(v.type, op.name, buffers=True) for v in op.operands),
                result_types=tuple(mo_type(r.type, op.name, buffers=True) for r in op.results),
                fn=state,
                lowered=values,
            )
        except KeyError as e:
            raise CompilationError(f"{op.name} at {op.location}: unknown operand") from e
        _check_narrow_floats(ctx)
        # Every op a rule builds is located at its MO op's name: fusion merges them into fused
        # locations, and the fallback records and the kernel profile name kernels by them.
        with ir.Location.name(op.name, childLoc=op.location):
            if _computes_nothing(op.name, ctx):
                results = [ctx.empty(mt) for mt in ctx.result_types]
            else:
                results = list(rule(ctx))
            if len(results) != len(op.results):
                raise ctx.error(f"rule gave {len(results)} results, expected {len(op.results)}")
            for old_r, new_r, mt in zip(op.results, results, ctx.result_types):
                values[old_r] = (new_r if mt.kind == "buffer"
                                 else coerce(new_r, builtin_tensor_type(mt), ctx))
    raise CompilationError(f"{where} has no func.return")


def mo_type(t: ir.Type, what: str, *, buffers: bool = False) -> MOTensorType:
    """The MO tensor (or, if allowed, buffer) type of ``t``; anything else is a
    CompilationError."""
    try:
        mt = parse_tensor_type(t)
    except ValueError as e:
        raise CompilationError(f"{what}: {e}") from e
    if mt.kind != "tensor" and not (buffers and mt.kind == "buffer"):
        raise CompilationError(f"{what}: {t} is not supported by the CPU lowering")
    return mt


# Ops that only move elements: they work on float4 as on any byte. Arithmetic and casts would
# leave f4 ops that LLVM cannot translate (the worker crashed with SIGSEGV). (float8 is
# computed in f32: lowering/float8.py.)
_MOVES_ONLY = frozenset({"mo.constant", "mo.reshape", "mo.transpose", "mo.broadcast_to",
                         "mo.concat", "mo.slice", "mo.gather"})


def _check_narrow_floats(ctx: LoweringContext) -> None:
    """A CompilationError for computing on float4 elements, which the CPU lacks."""
    if ctx.name in _MOVES_ONLY:
        return
    for t in ctx.operand_types + ctx.result_types:
        if t.element_type.startswith("f4"):
            raise ctx.error(f"computing on {t.element_type} is not supported on the CPU (only "
                            f"moving elements: reshape, transpose, slice, concat, gather)")


# Ops whose rules add run-time checks: they must run even where the result is empty (an
# out-of-range gather index raises in numpy whatever the result's size). A custom kernel also
# may write buffers.
_CHECKED_OPS = frozenset({"mo.gather", "mo.slice", "mo.gather_nd", "mo.scatter",
                          "mo.scatter_nd", "mo.repeat_interleave", "mo.range", "mo.rebind",
                          "mo.nonzero",
                          "mo.custom"})


def _computes_nothing(name: str, ctx: LoweringContext) -> bool:
    """Whether every result of the op has a static size-0 dim: then it is ``tensor.empty``.

    Not only cheaper: linalg ops with a static 0 loop beside dynamic ones abort MLIR's tiling
    (computeAllSliceParameters), and a collapse of ``?x0`` folds to a static 0 that
    ``memref.collapse_shape`` rejects (matmul's row collapse).
    """
    # Buffer ops have effects (a store has no result; a created buffer is memory).
    return (name not in _CHECKED_OPS and not name.startswith("mo.buffer_")
            and bool(ctx.result_types)
            and all(0 in mt.dims for mt in ctx.result_types))


def coerce(v: ir.Value, want: ir.RankedTensorType, ctx: LoweringContext) -> ir.Value:
    """Casts static <-> dynamic dims where a rule knew more (or less) than the MO type says."""
    if v.type == want:
        return v
    have = ir.RankedTensorType(v.type)
    if have.element_type != want.element_type or have.rank != want.rank:
        raise ctx.error(f"rule produced {have}, expected {want}")
    return tensor.cast(want, v)
