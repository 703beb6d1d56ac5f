"""``mo-verify``: re-checks every MO op of a module against its definition's type rule.

MO that comes from outside the graph builders (a ``.mlir``/``.mlirbc`` file, ``max-opt`` input)
is untrusted: IRDL checks operand kinds only, so a file can declare ``mo.add`` of ``["n"]`` and
``["m"]`` or a reshape of ``["n"]`` to ``[1000, 1000]``, and the compiled code would read and
write out of bounds. :func:`verify_module` rejects such a module with a
:class:`VerificationError` (a ``ValueError``) naming the graph, the op, the operand and the
mismatch, before any code is generated from it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from mlir import ir

from max.dialects.mo.dim import Dim, SymbolicDim, _parse_dim
from max.dialects.mo.opdefs import (
    ELEMENTS,
    FLOAT,
    INT,
    INTS,
    OPS,
    STR,
    SYMBOL,
    OpDef,
    TensorSig,
)
from max.dialects.mo.opdefs.custom import check_symbol, parse_parameters
from max.dialects.mo.opdefs.flow import CALLEES
from max.dialects.mo.types import ELEMENT_TYPES, parse_tensor_type
from max.dialects.mo.verify_flow import FunctionInfo, check_acyclic, check_flow_op, function_table
from max.dtype import DType

_DEVICE_RE = re.compile(r"^(cpu|gpu):(0|[1-9][0-9]{0,3})$")


class VerificationError(ValueError):
    """An MO module breaks an op's type rule or the MO type grammar."""


def verify_module(module: ir.Module, *, strict: bool = True) -> None:
    """Checks every MO function of ``module``; raises :class:`VerificationError` on the first
    problem.

    Args:
        strict: the module must be MO only (what the compiler accepts): func.func graphs, no
            other top-level ops. ``max-opt`` passes False to check the MO functions of a module
            that may also hold partly lowered code.
    """
    with module.context:
        functions = function_table(module)
        # Subgraphs are inlined into the graph, whose inputs bind the symbols they use too.
        graph_bound = {d.name for info in functions.values() if info.is_graph
                       for t in info.inputs for d in _input_dims(t) if isinstance(d, SymbolicDim)}
        calls: dict[str, set[str]] = {}
        for op in module.body.operations:
            op = op.operation
            if op.name == "func.func" and (strict or _is_mo_function(op)):
                name = ir.StringAttr(op.attributes["sym_name"]).value
                calls[name] = _verify_function(op, functions, graph_bound)
            elif strict:
                raise VerificationError(f"unexpected top-level op {op.name}: an MO module holds "
                                        "func.func graphs and their subgraph functions only")
        try:
            check_acyclic(calls)
        except ValueError as e:
            raise VerificationError(str(e)) from None


def _is_mo_function(fn: ir.Operation) -> bool:
    if "!mo." in str(ir.TypeAttr(fn.attributes["function_type"]).value):
        return True
    return any(op.operation.name.startswith("mo.")
               for block in fn.regions[0].blocks for op in block.operations)


def decode_attributes(defn: OpDef, op: ir.Operation) -> dict[str, Any]:
    """The op's attributes as Python values, each checked against its declared kind."""
    out: dict[str, Any] = {}
    for a in defn.attributes:
        if a.name not in op.attributes:
            raise VerificationError(f"{defn.name}: missing attribute {a.name!r}")
        attr = op.attributes[a.name]
        value = _decode(a.kind, attr)
        if value is None:
            raise VerificationError(f"{defn.name}: attribute {a.name} = {attr} is not of kind "
                                    f"{a.kind}")
        out[a.name] = value
    return out


def _decode(kind: str, attr: ir.Attribute) -> Any:
    if kind == INT and isinstance(attr, ir.IntegerAttr) and not isinstance(attr, ir.BoolAttr):
        return ir.IntegerAttr(attr).value
    if kind == INTS and isinstance(attr, ir.DenseI64ArrayAttr):
        return list(ir.DenseI64ArrayAttr(attr))
    if kind == FLOAT and isinstance(attr, ir.FloatAttr):
        return ir.FloatAttr(attr).value
    if kind == STR and isinstance(attr, ir.StringAttr):
        return ir.StringAttr(attr).value
    if kind == SYMBOL and isinstance(attr, ir.FlatSymbolRefAttr):
        return ir.FlatSymbolRefAttr(attr).value
    if kind == ELEMENTS and isinstance(attr, ir.DenseElementsAttr | ir.DenseResourceElementsAttr):
        return attr
    return None


def tensor_sig(t: ir.Type, what: str, *, buffers: bool = False) -> TensorSig:
    """The checked :class:`TensorSig` of an ``!mo.tensor`` (or, if allowed, ``!mo.buffer``)."""
    try:
        mt = parse_tensor_type(t)
    except ValueError as e:
        raise VerificationError(f"{what}: {e}") from None
    if mt.kind != "tensor" and not buffers:
        raise VerificationError(f"{what}: {t} is not an !mo.tensor")
    if mt.element_type not in ELEMENT_TYPES:
        raise VerificationError(f"{what}: unknown element type {mt.element_type!r} in {t}")
    if not _DEVICE_RE.match(mt.device):
        raise VerificationError(f"{what}: bad device {mt.device!r} in {t} (expected 'cpu:N' or "
                                "'gpu:N')")
    dims = []
    for d in mt.dims:
        try:
            dim = _parse_dim(d)
        except (ValueError, TypeError) as e:
            raise VerificationError(f"{what}: bad dim {d!r} in {t}: {e}") from None
        if isinstance(d, int) and d < 0:
            raise VerificationError(f"{what}: negative dim {d} in {t}")
        dims.append(dim)
    return TensorSig(DType[ELEMENT_TYPES[mt.element_type]], tuple(dims), mt.device, mt.kind)


def _symbols(dims: tuple[Dim, ...]) -> Iterator[str]:
    for d in dims:
        for p in d.parameters:
            yield p.name


def _input_dims(t: ir.Type) -> tuple[Dim, ...]:
    """The dims of a graph input type, or none where it is malformed (reported later)."""
    try:
        return tensor_sig(t, "input", buffers=True).shape
    except VerificationError:
        return ()


def _verify_function(fn: ir.Operation, functions: dict[str, FunctionInfo],
                     graph_bound: set[str]) -> set[str]:
    """Checks one graph or subgraph function; returns the subgraphs its ops call."""
    name = ir.StringAttr(fn.attributes["sym_name"]).value
    where = f"graph {name!r}" if "mo.graph" in fn.attributes else f"subgraph {name!r}"
    calls: set[str] = set()
    blocks = list(fn.regions[0].blocks)
    if len(blocks) != 1:
        raise VerificationError(f"{where}: expected one block, found {len(blocks)}")
    args = [tensor_sig(a.type, f"{where} input {i}", buffers=True)
            for i, a in enumerate(blocks[0].arguments)]
    # The compiled code learns symbol values from the inputs' dims only (a subgraph's inputs
    # are values of its caller, whose types the caller's checks bind).
    bound = {d.name for t in args for d in t.shape if isinstance(d, SymbolicDim)}
    if "mo.graph" not in fn.attributes:
        bound |= graph_bound
    ftype = ir.FunctionType(ir.TypeAttr(fn.attributes["function_type"]).value)
    results = [tensor_sig(t, f"{where} result {i}") for i, t in enumerate(ftype.results)]
    for index, op in enumerate(blocks[0].operations):
        op = op.operation
        if op.name == "func.return":
            continue
        at = f"{where}, op {index} ({op.name}{_location(op)})"
        defn = OPS.get(op.name)
        if defn is None:
            raise VerificationError(f"{at}: not an MO op")
        if op.name in CALLEES:
            try:
                decode_attributes(defn, op)
                calls.update(check_flow_op(op, functions))
            except ValueError as e:
                raise VerificationError(f"{at}: {e}") from None
            for k, r in enumerate(op.results):
                _check_bound(tensor_sig(r.type, f"{at} result {k}"), bound, f"{at} result {k}")
            continue
        if op.name == "mo.custom":
            _verify_custom(op, defn, at, bound)
            continue
        if len(op.results) != defn.results:
            raise VerificationError(f"{at}: expected {defn.results} result(s), got "
                                    f"{len(op.results)}")
        operands = []
        for k, v in enumerate(op.operands):
            what = defn.operands[k] if k < len(defn.operands) else str(k)
            # Each operand has the kind its definition declares: a buffer where a tensor is
            # expected would be read as an immutable value, a tensor where a buffer is expected
            # would be written in place.
            want = "buffer" if what in defn.buffers else "tensor"
            sig = tensor_sig(v.type, f"{at} operand {what}", buffers=True)
            if sig.kind != want:
                raise VerificationError(f"{at} operand {what}: {v.type} is not an !mo.{want}")
            operands.append(sig)
        result = None
        if defn.results:
            result = tensor_sig(op.results[0].type, f"{at} result", buffers=True)
            if result.kind != defn.result_kind:
                raise VerificationError(f"{at} result: {op.results[0].type} is not an "
                                        f"!mo.{defn.result_kind}")
        try:
            attrs = decode_attributes(defn, op)
            defn.verify(operands, attrs, result)
        except ValueError as e:
            raise VerificationError(f"{at}: {e}") from None
        if result is not None:
            if defn.defines_dim is not None:
                _define(result, defn.defines_dim(attrs), bound, "mo.graph" in fn.attributes, at)
            _check_bound(result, bound, f"{at} result")
    # Checked last: a result's symbol may be one an op of the graph binds.
    for i, result in enumerate(results):
        _check_bound(result, bound, f"{where} result {i}")
    return calls


def _define(result: TensorSig, axis: int, bound: set[str], in_graph: bool, at: str) -> None:
    """Binds the symbol an op like ``mo.nonzero`` defines (its result size on ``axis``).

    Only in a graph's own block: a symbol defined in a control-flow body would have no value
    outside the region it was computed in.
    """
    d = result.shape[axis]
    if not isinstance(d, SymbolicDim) or d.name in bound:
        return  # static, bound (checked at run time) or an expression (checked by _check_bound)
    if not in_graph:
        raise VerificationError(f"{at}: result dim {axis} ({d.name}) is a new symbol, whose "
                                "value only the data determines: not supported in a subgraph")
    bound.add(d.name)


def _verify_custom(op: ir.Operation, defn: OpDef, at: str, bound: set[str]) -> None:
    """A kernel call: well-formed tensor or buffer operands, tensor results whose symbols the
    inputs bind, a kernel name and parameters (the kernel's signature is checked when the
    compiler links it in: the kernel is not part of the module)."""
    for k, v in enumerate(op.operands):
        tensor_sig(v.type, f"{at} operand {k}", buffers=True)
    for k, r in enumerate(op.results):
        _check_bound(tensor_sig(r.type, f"{at} result {k}"), bound, f"{at} result {k}")
    try:
        attrs = decode_attributes(defn, op)
        check_symbol(op.name, attrs["symbol"])
        parse_parameters(op.name, attrs["parameters"])
    except ValueError as e:
        raise VerificationError(f"{at}: {e}") from None


def _check_bound(t: TensorSig, bound: set[str], what: str) -> None:
    for s in _symbols(t.shape):
        if s not in bound:
            raise VerificationError(f"{what}: dim symbol {s!r} is not bound by any input's dims")


def _location(op: ir.Operation) -> str:
    loc = str(op.location)
    return "" if loc == "loc(unknown)" else f" at {loc}"
