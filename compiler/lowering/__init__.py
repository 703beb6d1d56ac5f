"""MO -> linalg/tensor/arith/math lowering: pass ``mo-to-linalg``, one rule per op.

Each ``mo.graph`` function becomes a function of the same name on builtin tensors (symbolic
dims become ``?``, si*/ui* become signless) keeping ``mo.graph``. Runtime checks (gather bounds)
become one extra last result ``tensor<Kxi8>`` and the attribute ``mo.checks = [messages]``.
A buffer (``!mo.buffer``) becomes a ``memref``: buffer inputs are memref arguments that the
buffer ops read and write in program order (``lowering/buffers.py``).
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, func, tensor

from max.compiler.lowering import (  # noqa: F401  (imports register the rules)
    buffers,
    constant,
    conv,
    effects,
    elementwise,
    gather,
    indexing,
    matmul,
    normalization,
    quantization,
    reduction,
    resize,
    sequence,
    shape_ops,
)
from max.compiler.lowering.context import (
    FunctionLowering,
    LoweringContext,
    builtin_tensor_type,
    builtin_type,
)
from max.compiler.lowering.registry import all_rules, get_rule
from max.compiler.passes.registry import CompilationError, register_pass
from max.dialects.mo.types import MOTensorType, parse_tensor_type

__all__ = ["LoweringContext", "all_rules", "lower_to_linalg"]


def _mo_type(t: ir.Type, what: str, *, buffers: bool = False) -> MOTensorType:
    try:
        mt = parse_tensor_type(t)
    except ValueError as e:
        raise CompilationError(f"{what}: {e}") from e
    if mt.kind != "tensor" and not (buffers and mt.kind == "buffer"):
        raise CompilationError(f"{what}: {t} is not supported by the CPU lowering")
    return mt


@register_pass("mo-to-linalg", "lower mo.graph functions to linalg/tensor/arith on builtin tensors")
def lower_to_linalg(module: ir.Module) -> None:
    """Rewrites every ``mo.graph`` function of ``module`` in place."""
    with module.context, ir.Location.unknown():
        for op in list(module.body.operations):
            if op.operation.name == "func.func" and "mo.graph" in op.attributes:
                _lower_function(op.operation)


def _lower_function(old: ir.Operation) -> None:
    name = ir.StringAttr(old.attributes["sym_name"]).value
    ftype = ir.FunctionType(ir.TypeAttr(old.attributes["function_type"]).value)
    region = old.regions[0]
    blocks = list(region.blocks)
    if len(blocks) != 1:
        raise CompilationError(f"graph {name!r}: expected one block, found {len(blocks)}")
    in_mo = [_mo_type(t, f"graph {name!r} input {i}", buffers=True)
             for i, t in enumerate(ftype.inputs)]
    out_mo = [_mo_type(t, f"graph {name!r} result {i}") for i, t in enumerate(ftype.results)]
    in_types = [builtin_type(t) for t in in_mo]
    out_types = [builtin_tensor_type(t) for t in out_mo]

    with old.location, ir.InsertionPoint(old):
        new = func.FuncOp(name, (in_types, out_types))
    for attr_name in list(old.attributes):
        if attr_name not in ("sym_name", "function_type"):
            new.attributes[attr_name] = old.attributes[attr_name]
    entry = new.add_entry_block()
    state = FunctionLowering(name, list(entry.arguments), in_mo)
    values: dict[ir.Value, ir.Value] = dict(zip(blocks[0].arguments, entry.arguments))

    with ir.InsertionPoint(entry):
        for op in blocks[0].operations:
            op = op.operation
            if op.name == "func.return":
                with op.location:
                    _emit_return(new, state, [values[v] for v in op.operands], out_types)
                break
            rule = get_rule(op.name)
            if rule is None:
                raise CompilationError(f"{op.name} at {op.location}: no CPU lowering for this op")
            try:
                ctx = LoweringContext(
                    op=op,
                    operands=tuple(values[v] for v in op.operands),
                    operand_types=tuple(_mo_type(v.type, op.name, buffers=True)
                                        for v in op.operands),
                    result_types=tuple(_mo_type(r.type, op.name, buffers=True)
                                       for r in op.results),
                    fn=state,
                )
            except KeyError as e:
                raise CompilationError(f"{op.name} at {op.location}: unknown operand") from e
            _check_narrow_floats(ctx)
            with op.location:
                if _computes_nothing(op.name, ctx):
                    results = [ctx.empty(mt) for mt in ctx.result_types]
                else:
                    results = list(rule(ctx))
                if len(results) != len(op.results):
                    raise ctx.error(f"rule gave {len(results)} results, expected {len(op.results)}")
                for old_r, new_r, mt in zip(op.results, results, ctx.result_types):
                    values[old_r] = (new_r if mt.kind == "buffer"
                                     else _coerce(new_r, builtin_tensor_type(mt), ctx))
        else:
            raise CompilationError(f"graph {name!r} has no func.return")
    old.erase()


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
# out-of-range gather index raises in numpy whatever the result's size).
_CHECKED_OPS = frozenset({"mo.gather", "mo.slice", "mo.gather_nd", "mo.scatter",
                          "mo.scatter_nd", "mo.repeat_interleave", "mo.range", "mo.rebind"})


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


def _coerce(v: ir.Value, want: ir.RankedTensorType, ctx: LoweringContext) -> ir.Value:
    """Casts static <-> dynamic dims where a rule knew more (or less) than the MO type says."""
    if v.type == want:
        return v
    have = ir.RankedTensorType(v.type)
    if have.element_type != want.element_type or have.rank != want.rank:
        raise ctx.error(f"rule produced {have}, expected {want}")
    return tensor.cast(want, v)


def _emit_return(new: func.FuncOp, state: FunctionLowering, results: list[ir.Value],
                 out_types: list[ir.Type]) -> None:
    i8 = ir.IntegerType.get_signless(8)
    flags = []
    for flag, _ in state.checks:
        if isinstance(flag.type, ir.RankedTensorType):
            flag = tensor.extract(flag, [])
        if flag.type != i8:
            flag = arith.extui(i8, flag)
        flags.append(flag)
    if flags:
        checks_type = ir.RankedTensorType.get([len(flags)], i8)
        results = results + [tensor.from_elements(checks_type, flags)]
        out_types = out_types + [checks_type]
        new.attributes["mo.checks"] = ir.ArrayAttr.get(
            [ir.StringAttr.get(m) for _, m in state.checks])
    func.ReturnOp(results)
    new.attributes["function_type"] = ir.TypeAttr.get(
        ir.FunctionType.get([a.type for a in new.entry_block.arguments], out_types))
