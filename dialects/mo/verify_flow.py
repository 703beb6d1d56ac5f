"""The verifier's view of control flow: ``mo.cond``, ``mo.while`` and ``mo.call`` against the
subgraph functions they name.

A control-flow op's result types are its callees' (which only the module knows), so the type
rules of ``opdefs`` cannot check them: here each callee must be a subgraph function of the
module (a ``func.func`` without ``mo.graph``) whose signature the op's operands and results
match exactly (a ``!mo.buffer`` argument, which the body reads or writes in place, only where
the callee takes that buffer type; a loop carries tensors only), and the subgraphs must not
call one another in a cycle (the lowering would inline or lower them without end). Problems
are ``ValueError``\\ s; ``verify.py`` names the graph and the op.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mlir import ir

from max.dialects.mo.opdefs.flow import CALLEES
from max.dialects.mo.types import parse_tensor_type


@dataclass(frozen=True)
class FunctionInfo:
    """What the verifier needs of one function: its signature and whether it is a graph."""

    inputs: tuple[ir.Type, ...]
    results: tuple[ir.Type, ...]
    is_graph: bool


def function_table(module: ir.Module) -> dict[str, FunctionInfo]:
    """Each ``func.func`` of ``module`` by symbol name."""
    out = {}
    for op in module.body.operations:
        op = op.operation
        if op.name != "func.func":
            continue
        ftype = ir.FunctionType(ir.TypeAttr(op.attributes["function_type"]).value)
        out[ir.StringAttr(op.attributes["sym_name"]).value] = FunctionInfo(
            tuple(ftype.inputs), tuple(ftype.results), "mo.graph" in op.attributes)
    return out


def _types(ts: Sequence[ir.Type]) -> str:
    return "(" + ", ".join(str(t) for t in ts) + ")"


def _callee(op: ir.Operation, attr: str, functions: Mapping[str, FunctionInfo]) -> FunctionInfo:
    if attr not in op.attributes or not isinstance(op.attributes[attr], ir.FlatSymbolRefAttr):
        raise ValueError(f"attribute {attr} must be a symbol reference (@name)")
    name = ir.FlatSymbolRefAttr(op.attributes[attr]).value
    info = functions.get(name)
    if info is None:
        raise ValueError(f"{attr} @{name}: no such function in the module")
    if info.is_graph:
        raise ValueError(f"{attr} @{name} is a graph (mo.graph), not a subgraph function")
    return info


def _expect(what: str, have: Sequence[ir.Type], want: Sequence[ir.Type]) -> None:
    if list(have) != list(want):
        raise ValueError(f"{what} {_types(have)} should be {_types(want)}")


def check_flow_op(op: ir.Operation, functions: Mapping[str, FunctionInfo]) -> list[str]:
    """Checks a control-flow op against its callees; returns the callee names. A buffer
    argument must be a buffer of the callee's exact type (a body stores into it)."""
    operands = [v.type for v in op.operands]
    results = [r.type for r in op.results]
    callees = {a: _callee(op, a, functions) for a in CALLEES[op.name]}
    if op.name == "mo.cond":
        if not operands:
            raise ValueError("missing operand pred")
        pred = parse_tensor_type(operands[0])
        if pred.element_type != "i1" or pred.dims:
            raise ValueError(f"pred {operands[0]} must be a bool scalar (rank 0)")
        for a, info in callees.items():
            _expect(f"{a} takes", info.inputs, operands[1:])
            _expect(f"{a} returns", info.results, results)
    elif op.name == "mo.while":
        if not isinstance(op.attributes["num_carried"], ir.IntegerAttr):
            raise ValueError("attribute num_carried must be an integer")
        k = ir.IntegerAttr(op.attributes["num_carried"]).value
        if not 0 <= k <= len(operands):
            raise ValueError(f"num_carried {k} out of range for {len(operands)} operands")
        for i, t in enumerate(operands[:k]):
            if parse_tensor_type(t).kind != "tensor":
                raise ValueError(f"carried operand {i} {t} is not a tensor (a buffer is passed "
                                 "as a loop invariant)")
        _expect("results", results, operands[:k])
        for a, info in callees.items():
            _expect(f"{a} takes", info.inputs, operands)
        pred_out = callees["pred_fn"].results
        if len(pred_out) != 1 or parse_tensor_type(pred_out[0]).element_type != "i1" \
                or parse_tensor_type(pred_out[0]).dims:
            raise ValueError(f"pred_fn returns {_types(pred_out)}, should be one bool scalar")
        _expect("body_fn returns", callees["body_fn"].results, operands[:k])
    else:
        _expect("callee takes", callees["callee"].inputs, operands)
        _expect("callee returns", callees["callee"].results, results)
    return [ir.FlatSymbolRefAttr(op.attributes[a]).value for a in callees]


def check_acyclic(calls: Mapping[str, set[str]]) -> None:
    """A ``ValueError`` if subgraph functions call one another in a cycle (no recursion: the
    lowering inlines every body)."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            raise ValueError("recursive subgraph calls: " + " -> ".join([*path, name]))
        if name in done:
            return
        for callee in sorted(calls.get(name, ())):
            visit(callee, [*path, name])
        done.add(name)

    for name in sorted(calls):
        visit(name, [])
