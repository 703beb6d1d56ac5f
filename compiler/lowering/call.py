"""Subgraphs as functions: a ``mo.call`` callee called more than once, cond branches, loop bodies.

MAX inlines every call; so does :mod:`lowering.flow` for a subgraph called once. A subgraph
called two or more times (a transformer's layer) becomes one private function instead, made
the way ``mo-entry-abi`` makes a graph's entry: ``@__mo_sub_NAME(inputs..., outs...)`` on
memrefs, whose body reads its inputs as ``to_tensor(restrict)``, calls the body lowered on
tensors (``@__mo_sub_NAME__impl``, inlined there by the entry ABI's inliner) and writes each
result into its out argument (``materialize_in_destination ... restrict writable``). Every
pass after it then sees a function shaped like the entry. Each call passes its operands'
buffers (``to_buffer``, read only) and freshly allocated result buffers (the model's scratch
allocator reuses them), marked ``no_inline`` so that the fusion pipeline's inliner keeps it,
and reads the results as ``to_tensor(restrict)``. So bufferization never analyses across a
call (a function taking tensor out arguments had a layer's two layer norms share one by
empty-tensor elimination, which one-shot bufferization then refused), and the schedule,
bufferization and vectorization see the body once, not once per call: the compile time of a
six-layer model is about that of one layer and the rest of the graph.

The body's runtime checks leave through one more out buffer, ``i8`` flags, which become
checks of the caller (same messages). The branches of a ``mo.cond`` and the body of a
``mo.while`` are functions the same way, called from the op's regions (the schedule works on
a function's top level: inlined into a region, a matmul stayed plain loops); a loop's
condition stays inline (a scalar). An argument a callee never reads (a cond passes every
capture to both branches) and whose dims bind no symbol is not passed.

Inlined instead (:func:`plan_calls` leaves them out): everything in a target that keeps one
function (the GPU pipelines), the calls (not the bodies) in a model compiled to profile its
kernels (the profile times the entry's kernels, each layer's own; a body in a region is
part of its op's kernel either way), subgraphs that take or return buffers (their loads
and stores are ordered with the caller's), and subgraphs whose results have a dim symbol
that no input binds (only the body could size the caller's destination).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from mlir import ir
from mlir.dialects import bufferization, func, memref, tensor

from max.compiler.lowering.body import lower_block
from max.compiler.lowering.builders import flags_tensor, index_constant
from max.compiler.lowering.context import (
    FunctionLowering,
    LoweringContext,
    builtin_tensor_type,
    builtin_type,
)
from max.compiler.pipelines.cpu import memref_type
from max.dialects.mo.types import MOTensorType, parse_tensor_type

PREFIX = "__mo_sub_"
IMPL_SUFFIX = "__impl"  # the body on tensors, inlined into the function on memrefs
CHECKS_ATTR = "mo.body_checks"  # the messages of the function's check flags, in order
SOURCE_ATTR = "mo.subgraph"  # on the function: the subgraph it was lowered from
# The body attributes of the control-flow ops whose bodies become functions.
_BODIES = {"mo.cond": ("then_fn", "else_fn"), "mo.while": ("body_fn",)}
_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# The callees of the module being lowered that become functions (plan_calls).
_OUTLINED: ContextVar[frozenset[str]] = ContextVar("outlined_calls", default=frozenset())


def _functions(module: ir.Module | ir.Operation) -> dict[str, ir.Operation]:
    """The module's functions by symbol name."""
    body = module.body if isinstance(module, ir.Module) else module.regions[0].blocks[0]
    return {ir.StringAttr(op.operation.attributes["sym_name"]).value: op.operation
            for op in body.operations if op.operation.name == "func.func"}


def _symbols(dims: Iterable[object]) -> set[str]:
    """The symbol names in ``dims`` (``"seq + 1"`` -> ``{"seq"}``)."""
    return {s for d in dims if isinstance(d, str) for s in _SYMBOL.findall(d)}


def _outlinable(fn: ir.Operation) -> bool:
    """Whether ``fn``'s signature allows a destination-passing function (tensors only, each
    result dim symbol bound by an input)."""
    ftype = ir.FunctionType(ir.TypeAttr(fn.attributes["function_type"]).value)
    try:
        ins = [parse_tensor_type(t) for t in ftype.inputs]
        outs = [parse_tensor_type(t) for t in ftype.results]
    except ValueError:
        return False
    if any(t.kind != "tensor" for t in ins + outs):
        return False
    bound = set().union(*(_symbols(t.dims) for t in ins)) if ins else set()
    return all(_symbols(t.dims) <= bound for t in outs)


def plan_calls(module: ir.Module, calls: bool = True, bodies: bool = True) -> frozenset[str]:
    """The subgraphs of ``module`` to lower as functions, where their signature allows:
    those called twice or more (from the graph, from other subgraphs, or inside cond/while
    bodies), and the branches of a cond and the body of a while loop (once each: their ops
    are scheduled in a function, where inside the op's region they would be plain loops; a
    loop's condition stays inline, a scalar). ``calls`` / ``bodies``: plan those kinds."""
    functions = _functions(module)
    sites: Counter[str] = Counter()
    body_names: set[str] = set()
    for fn in functions.values():
        for block in fn.regions[0].blocks:
            for op in block.operations:
                op = op.operation
                if op.name == "mo.call":
                    sites[ir.FlatSymbolRefAttr(op.attributes["callee"]).value] += 1
                elif op.name in _BODIES:
                    body_names.update(ir.FlatSymbolRefAttr(op.attributes[a]).value
                                      for a in _BODIES[op.name])
    wanted = ({name for name, n in sites.items() if n > 1} if calls else set()) | (
        body_names if bodies else set())
    return frozenset(name for name in wanted
                     if name in functions and _outlinable(functions[name]))


@contextmanager
def outlining(names: frozenset[str]) -> Iterator[None]:
    """Within the block, ``mo.call`` of these callees lowers to calls of one function."""
    token = _OUTLINED.set(names)
    try:
        yield
    finally:
        _OUTLINED.reset(token)


def outlined(callee: str) -> bool:
    """Whether calls of ``callee`` lower to a function call (else the body is inlined)."""
    return callee in _OUTLINED.get()


@dataclass(frozen=True)
class Call:
    """What one call passes and gets: lowered operands, their MO types, the result MO types."""

    operands: list[ir.Value]
    operand_types: list[MOTensorType]
    result_types: list[MOTensorType]
    arguments: list[int] | None = None  # the callee's arguments they are (None: all)


def lower_outlined_call(ctx: LoweringContext, callee: ir.Operation,
                        call: Call | None = None) -> list[ir.Value]:
    """A ``func.call`` of the callee's function (lowered on first use) on the operands'
    buffers and freshly allocated result buffers, read back as tensors; the body's check
    flags become checks of the caller. ``call``: the operands and MO types when they are not
    the op's own (a cond's branch, a loop's body)."""
    call = call or Call(list(ctx.operands), list(ctx.operand_types), list(ctx.result_types))
    call = _used(callee, call)
    name = ir.StringAttr(callee.attributes["sym_name"]).value
    functions = _functions(callee.parent)
    fn = next((f for f in functions.values() if SOURCE_ATTR in f.attributes
               and ir.StringAttr(f.attributes[SOURCE_ATTR]).value == name), None)
    if fn is None:
        symbol = PREFIX + name
        while symbol in functions or symbol + IMPL_SUFFIX in functions:
            symbol += "_"  # a user's function of that name
        fn = _lower_function(ctx, callee, symbol, call)
    symbol = ir.StringAttr(fn.attributes["sym_name"]).value
    messages = [ir.StringAttr(a).value for a in ir.ArrayAttr(fn.attributes[CHECKS_ATTR])] \
        if CHECKS_ATTR in fn.attributes else []
    types = [builtin_tensor_type(t) for t in call.result_types]
    sizes = [[d for d in ctx.dims(t) if isinstance(d, ir.Value)] for t in call.result_types]
    i8 = ir.IntegerType.get_signless(8)
    if messages:
        types.append(ir.RankedTensorType.get([len(messages)], i8))
        sizes.append([])
    # read_only: the function's inputs are to_tensor(restrict) of them, never written
    ins = [bufferization.to_buffer(memref_type(v.type), v, read_only=True)
           for v in call.operands]
    outs = [memref.alloc(memref_type(t), dims, [], alignment=64)
            for t, dims in zip(types, sizes)]
    op = func.CallOp([], ir.FlatSymbolRefAttr.get(symbol), ins + outs)
    op.attributes["no_inline"] = ir.UnitAttr.get()
    results = [bufferization.to_tensor(t, m, restrict=True, writable=True)
               for t, m in zip(types, outs, strict=True)]
    if messages:
        flags = results.pop()
        for i, message in enumerate(messages):
            ctx.add_check(tensor.extract(flags, [index_constant(i)]), message)
    return results


def _used(callee: ir.Operation, call: Call) -> Call:
    """``call`` without the operands the callee never reads and whose dims bind no symbol: a
    cond's branches take every capture of both (a weight passed to the branch that does not
    read it would count as a second reader, and lose its load-time layout)."""
    args = callee.regions[0].blocks[0].arguments
    keep = [i for i, (a, t) in enumerate(zip(args, call.operand_types, strict=True))
            if list(a.uses) or any(isinstance(d, str) for d in t.dims)]
    return Call([call.operands[i] for i in keep], [call.operand_types[i] for i in keep],
                call.result_types, keep)


def _lower_function(ctx: LoweringContext, callee: ir.Operation, symbol: str,
                    call: Call) -> ir.Operation:
    """The callee lowered into ``@symbol__impl(inputs...) -> (results..., [flags])`` on
    tensors, and ``@symbol(inputs..., outs..., [flags])`` on memrefs, which calls it (and
    inlines it with the entry ABI's inliner): both placed before the caller."""
    block = callee.regions[0].blocks[0]
    in_mo = list(call.operand_types)
    in_types = [builtin_type(t) for t in in_mo]
    out_types = [builtin_tensor_type(t) for t in call.result_types]
    caller = ctx.op.parent
    while caller.name != "func.func":
        caller = caller.parent
    with ir.InsertionPoint(caller), callee.location:
        impl = func.FuncOp(symbol + IMPL_SUFFIX, (in_types, out_types), visibility="private")
    entry = impl.add_entry_block()
    state = FunctionLowering(symbol, list(entry.arguments), in_mo)
    kept = [block.arguments[i] for i in call.arguments] if call.arguments is not None \
        else list(block.arguments)
    values = dict(zip(kept, entry.arguments, strict=True))
    with ir.InsertionPoint(entry):
        where = f"subgraph {ir.StringAttr(callee.attributes['sym_name']).value!r}"
        results = lower_block(block, values, state, where)
        if state.checks:
            results.append(flags_tensor(state.checks))
        func.ReturnOp(results)
    result_types = [v.type for v in results]
    impl.attributes["function_type"] = ir.TypeAttr.get(ir.FunctionType.get(in_types,
                                                                            result_types))
    with ir.InsertionPoint(caller), callee.location:
        fn = func.FuncOp(symbol, ([memref_type(t) for t in in_types + result_types], []),
                         visibility="private")
    fn.attributes[SOURCE_ATTR] = ir.StringAttr.get(
        ir.StringAttr(callee.attributes["sym_name"]).value)
    if state.checks:
        fn.attributes[CHECKS_ATTR] = ir.ArrayAttr.get([ir.StringAttr.get(m)
                                                      for _, m in state.checks])
    body = fn.add_entry_block()
    args = list(body.arguments)
    with ir.InsertionPoint(body), callee.location:
        # restrict: each call passes distinct buffers, its outputs freshly allocated
        ins = [bufferization.to_tensor(t, a, restrict=True) for t, a in zip(in_types, args)]
        impl_call = func.CallOp(result_types, ir.FlatSymbolRefAttr.get(symbol + IMPL_SUFFIX),
                                ins)
        for r, out in zip(impl_call.results, args[len(in_types):], strict=True):
            bufferization.materialize_in_destination(None, r, out, restrict=True,
                                                     writable=True)
        func.ReturnOp([])
    return fn.operation


__all__ = ["PREFIX", "lower_outlined_call", "outlined", "outlining", "plan_calls"]
