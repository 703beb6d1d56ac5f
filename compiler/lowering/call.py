"""``mo.call`` of a subgraph that the module calls more than once: one function, lowered once.

MAX inlines every call; so does :mod:`lowering.flow` for a subgraph called once. A subgraph
called two or more times (a transformer's layer) becomes one private function instead,
in destination-passing style, ``@__mo_sub_NAME(inputs..., outs...) -> (outs...)``, each
result written into its out argument (``bufferization.materialize_in_destination``); each
call passes empty tensors of the results' shapes. One-shot bufferization then gives every
call the caller's buffers, and ``drop-equivalent-buffer-results`` leaves the function
returning nothing (no allocation crosses the call, so deallocation needs no aliasing checks).
The schedule, bufferization and vectorization see the body once, not once per call: the
compile time of a six-layer model is about that of one layer and the rest of the graph.

The body's runtime checks leave through one more out argument, an ``i8`` tensor of their
flags, which become checks of the caller (same messages).

Inlined instead (:func:`plan_calls` leaves them out): calls in a target that keeps one
function (the GPU pipelines) or in a model compiled to profile its kernels (the profile times
the entry's kernels, each layer's own), subgraphs that take or return buffers (their loads
and stores are ordered with the caller's), and subgraphs whose results have a dim symbol
that no input binds (only the body could size the caller's destination).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from mlir import ir
from mlir.dialects import bufferization, func, tensor

from max.compiler.lowering.body import lower_block
from max.compiler.lowering.builders import index_constant
from max.compiler.lowering.context import (
    FunctionLowering,
    LoweringContext,
    builtin_tensor_type,
    builtin_type,
)
from max.dialects.mo.types import parse_tensor_type

PREFIX = "__mo_sub_"
CHECKS_ATTR = "mo.body_checks"  # the messages of the function's check flags, in order
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


def plan_calls(module: ir.Module) -> frozenset[str]:
    """The subgraphs of ``module`` to lower as functions: called twice or more, outlinable."""
    counts: Counter[str] = Counter()
    for fn in _functions(module).values():
        for block in fn.regions[0].blocks:
            for op in block.operations:
                if op.operation.name == "mo.call":
                    counts[ir.FlatSymbolRefAttr(op.operation.attributes["callee"]).value] += 1
    functions = _functions(module)
    return frozenset(name for name, n in counts.items()
                     if n > 1 and name in functions and _outlinable(functions[name]))


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


def lower_outlined_call(ctx: LoweringContext, callee: ir.Operation) -> list[ir.Value]:
    """A ``func.call`` of the callee's function (lowered on first use); the results' empty
    destinations passed, the body's check flags made checks of the caller."""
    name = ir.StringAttr(callee.attributes["sym_name"]).value
    module = callee.parent
    symbol = PREFIX + name
    fn = _functions(module).get(symbol)
    if fn is None:
        fn = _lower_function(ctx, callee, symbol)
    messages = [ir.StringAttr(a).value for a in ir.ArrayAttr(fn.attributes[CHECKS_ATTR])] \
        if CHECKS_ATTR in fn.attributes else []
    types = [builtin_tensor_type(t) for t in ctx.result_types]
    dests = [ctx.empty(t) for t in ctx.result_types]
    i8 = ir.IntegerType.get_signless(8)
    if messages:
        types.append(ir.RankedTensorType.get([len(messages)], i8))
        dests.append(tensor.empty([len(messages)], i8))
    call = func.CallOp(types, ir.FlatSymbolRefAttr.get(symbol), list(ctx.operands) + dests)
    call.attributes["no_inline"] = ir.UnitAttr.get()
    results = list(call.results)
    if messages:
        flags = results.pop()
        for i, message in enumerate(messages):
            ctx.add_check(tensor.extract(flags, [index_constant(i)]), message)
    return results


def _lower_function(ctx: LoweringContext, callee: ir.Operation, symbol: str) -> ir.Operation:
    """The callee lowered into ``@symbol(inputs..., outs...)``, placed before the caller."""
    block = callee.regions[0].blocks[0]
    in_mo = list(ctx.operand_types)
    in_types = [builtin_type(t) for t in in_mo]
    out_types = [builtin_tensor_type(t) for t in ctx.result_types]
    caller = ctx.op.parent
    while caller.name != "func.func":
        caller = caller.parent
    with ir.InsertionPoint(caller), callee.location:
        fn = func.FuncOp(symbol, (in_types + out_types, out_types), visibility="private")
    entry = fn.add_entry_block()
    args = list(entry.arguments)
    state = FunctionLowering(symbol, args[:len(in_types)], in_mo)
    values = dict(zip(block.arguments, args[:len(in_types)], strict=True))
    with ir.InsertionPoint(entry):
        where = f"subgraph {ir.StringAttr(callee.attributes['sym_name']).value!r}"
        results = lower_block(block, values, state, where)
        outs = args[len(in_types):]
        written = [bufferization.materialize_in_destination(t, r, o)
                   for t, r, o in zip(out_types, results, outs, strict=True)]
        if state.checks:
            written.append(_checks_out(fn, state))
        func.ReturnOp(written)
    fn.attributes["function_type"] = ir.TypeAttr.get(ir.FunctionType.get(
        [a.type for a in entry.arguments], [v.type for v in written]))
    return fn.operation


def _checks_out(fn: func.FuncOp, state: FunctionLowering) -> ir.Value:
    """The body's check flags written into one more out argument (``tensor<Nxi8>``)."""
    from max.compiler.lowering.flow import _i8_flag

    i8 = ir.IntegerType.get_signless(8)
    flags = [_i8_flag(flag) for flag, _ in state.checks]
    t = ir.RankedTensorType.get([len(flags)], i8)
    out = fn.entry_block.add_argument(t, ir.Location.unknown())
    fn.attributes[CHECKS_ATTR] = ir.ArrayAttr.get([ir.StringAttr.get(m) for _, m in state.checks])
    return bufferization.materialize_in_destination(t, tensor.from_elements(t, flags), out)


__all__ = ["PREFIX", "lower_outlined_call", "outlined", "outlining", "plan_calls"]
