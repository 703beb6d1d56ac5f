"""Building the bodies of control-flow ops: subgraph functions that capture outer values.

A branch or loop body is a further ``func.func`` of the graph's module (no ``mo.graph``
attribute; IRDL ops hold no regions). While its callable runs, the graph's ops go into that
function (a :class:`Frame`); a value of an enclosing function that an op uses becomes a new
trailing argument of the body (a capture), and the control-flow op passes the outer value as an
operand. Nested bodies capture through each level: the outer op localizes its own operands.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlir import ir
from mlir.dialects import func

from max.graph.type import TensorType
from max.graph.value import TensorValue, Value, as_tensor_value

if TYPE_CHECKING:
    from max.graph.graph import Graph


@dataclass
class Frame:
    """One subgraph function being built and the outer values it has captured, in order."""

    func: func.FuncOp
    block: ir.Block
    arg_types: list[ir.Type]
    captured: dict[ir.Value, ir.Value] = field(default_factory=dict)  # outer -> argument
    order: list[ir.Value] = field(default_factory=list)  # outer values, argument order
    parent: Frame | None = None  # the enclosing body (None: the graph itself)

    def capture(self, outer: ir.Value) -> ir.Value:
        """The argument standing for ``outer``, added at the end on first use."""
        arg = self.captured.get(outer)
        if arg is None:
            arg = self.block.add_argument(outer.type, ir.Location.unknown(outer.type.context))
            self.captured[outer] = arg
            self.order.append(outer)
            self.arg_types.append(outer.type)
        return arg

    def set_type(self, results: Sequence[ir.Type]) -> None:
        """Rewrites the function type after captures were added."""
        self.func.attributes["function_type"] = ir.TypeAttr.get(
            ir.FunctionType.get(list(self.arg_types), list(results)))


def defined_in(value: ir.Value, fn: ir.Operation) -> bool:
    """Whether ``value`` is an argument or op result of function ``fn`` (not of an outer one)."""
    owner = value.owner
    parent = owner.owner if isinstance(owner, ir.Block) else owner.operation.parent
    return parent is not None and parent == fn


def unique_symbol(module: ir.Module, base: str) -> str:
    """``base``, or ``base_N``: a symbol name no function of ``module`` has."""
    taken = {ir.StringAttr(op.attributes["sym_name"]).value for op in module.body.operations
             if "sym_name" in op.attributes}
    name, n = base, 0
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    return name


@dataclass
class Body:
    """A built body: its function, frame, symbol name and result types."""

    frame: Frame
    name: str
    result_types: list[TensorType]


def build_body(graph: Graph, op: str, role: str, arg_types: Sequence[TensorType],
               fn: Callable[..., Any], seed: Iterable[ir.Value] = ()) -> Body:
    """Runs ``fn`` on fresh arguments of ``arg_types`` with the graph's ops going into a new
    subgraph function; ``seed`` outer values are captured first (so that two bodies of one op
    take the same arguments). A callable that raises leaves no function behind."""
    with graph._context, ir.Location.unknown():
        name = unique_symbol(graph._module, f"{graph.name}_{op.removeprefix('mo.')}_{role}")
        with ir.InsertionPoint(graph._module.body):
            fop = func.FuncOp(name, ir.FunctionType.get([t.to_mlir() for t in arg_types], []))
        fop.attributes["sym_visibility"] = ir.StringAttr.get("private")
        block = fop.add_entry_block()
        frame = Frame(fop, block, [a.type for a in block.arguments])
        for v in seed:
            frame.capture(v)
    args = [TensorValue._from(a, t, graph) for a, t in zip(block.arguments, arg_types)]
    try:
        with graph._enter_frame(frame):
            out = fn(*args)
            if out is None:
                out = ()
            elif isinstance(out, Value) or not isinstance(out, Iterable):
                out = (out,)
            values = [as_tensor_value(o, where=f"{op} {role}") for o in out]
            with graph._context, ir.Location.unknown(), ir.InsertionPoint(block):
                func.ReturnOp([graph._local(v._mlir_value) for v in values])
    except BaseException:
        fop.operation.erase()
        raise
    result_types = [v.type for v in values]
    with graph._context:
        frame.set_type([t.to_mlir() for t in result_types])
    return Body(frame, name, result_types)


def share_captures(first: Body, second: Body, graph: Graph) -> list[ir.Value]:
    """Gives ``first`` the captures ``second`` added after the shared seed; both bodies then
    take the same arguments. Returns the outer values, in argument order."""
    with graph._context:
        for v in second.frame.order[len(first.frame.order):]:
            first.frame.capture(v)
        first.frame.set_type([t.to_mlir() for t in first.result_types])
    assert first.frame.order == second.frame.order
    return list(second.frame.order)
