"""Control flow and subgraphs: ``cond``, ``while_loop``, ``call``.

Each builds one ``mo.cond``/``mo.while``/``mo.call`` whose bodies are subgraph functions of
the module (``max.graph._subgraph``): the branches and loop bodies are compiled into the
model (the lowering inlines them into ``scf.if``/``scf.while``), never run in Python. Values
of the enclosing graph that a body uses become explicit operands of the op; a buffer of the
enclosing graph is passed as itself, so that loads and stores in a body act on it, in program
order with the graph's other buffer ops (``buffer_store``, ``inplace_custom``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from mlir import ir

from max.dialects.mo.opdefs.flow import segments
from max.dtype import DType
from max.graph._subgraph import build_body, share_captures
from max.graph.graph import Graph
from max.graph.type import BufferType, TensorType
from max.graph.value import BufferValue, TensorValue, Value, as_tensor_value


def _types_text(types: Sequence[TensorType | BufferType]) -> str:
    """``[float32[n, 3], buffer bool[]]``: kind, dtype and shape of each type."""
    return "[" + ", ".join(f"{'buffer ' if isinstance(t, BufferType) else ''}{t.dtype.name}"
                           f"[{', '.join(str(d) for d in t.shape)}]" for t in types) + "]"


def _emit(graph: Graph, name: str, fixed: Sequence[ir.Value], args: Sequence[ir.Value],
          result_types: Sequence[TensorType], attrs: dict[str, Any]) -> list[TensorValue]:
    """Emits a control-flow op: ``fixed`` operands, then ``args`` split into runs of equal
    types (the variadic groups IRDL needs: it unifies the types within one group)."""
    arg_segments = segments([v.type for v in args], name)
    result_segments = segments(list(result_types), name, "results")
    with graph._context:
        attrs = dict(attrs)
        attrs["operandSegmentSizes"] = ir.DenseI32ArrayAttr.get([1] * len(fixed) + arg_segments)
        attrs["resultSegmentSizes"] = ir.DenseI32ArrayAttr.get(result_segments)
    return graph._add_op(name, [*fixed, *args], list(result_types), attrs)


def _symbol(graph: Graph, name: str) -> ir.Attribute:
    with graph._context:
        return ir.FlatSymbolRefAttr.get(name)


def cond(
    pred: Any,
    out_types: Iterable[TensorType] | None,
    then_fn: Callable[[], Any],
    else_fn: Callable[[], Any],
) -> list[TensorValue]:
    """Conditionally execute one of two branches based on a boolean predicate.

    Both branches must return the same number and types of values as specified in
    ``out_types``. The branches may use values of the enclosing graph, and load from and
    store to its buffers (the stores of the branch taken happen in program order).

    Args:
        pred: Boolean scalar tensor of type ``DType.bool`` determining branch execution.
        out_types: Expected output types for both branches. Use ``None`` for branches that
            don't return values.
        then_fn: Callable executed when ``pred`` is True. Must return values matching
            ``out_types`` if ``out_types`` is not ``None``.
        else_fn: Callable executed when ``pred`` is False. Must return values matching
            ``out_types`` if ``out_types`` is not ``None``.

    Returns:
        List of output values from executed branch. Returns empty list when ``out_types``
        is ``None``.

    Raises:
        ValueError: If branches return different numbers of results or result types don't
            match ``out_types``, or ``pred`` is not a bool scalar.
    """
    graph = Graph.current
    pred = as_tensor_value(pred, where="cond")
    if pred.dtype != DType.bool or pred.rank != 0:
        raise ValueError(f"cond: pred must be a bool scalar (rank 0), got {pred.type}")
    want = [] if out_types is None else list(out_types)
    for i, t in enumerate(want):
        if not isinstance(t, TensorType):
            raise TypeError(f"cond: out_types[{i}] must be a TensorType, got {type(t).__name__}")
    then = build_body(graph, "mo.cond", "then", [], then_fn)
    try:
        other = build_body(graph, "mo.cond", "else", [], else_fn, seed=then.frame.order)
    except BaseException:
        then.frame.func.operation.erase()
        raise
    for role, body in (("then_fn", then), ("else_fn", other)):
        if body.result_types != want:
            then.frame.func.operation.erase()
            other.frame.func.operation.erase()
            raise ValueError(f"cond: {role} returned {_types_text(body.result_types)}, "
                             f"out_types are {_types_text(want)}")
    captures = share_captures(then, other, graph)
    return _emit(graph, "mo.cond", [graph._local(pred._mlir_value)], captures, want,
                 {"then_fn": _symbol(graph, then.name), "else_fn": _symbol(graph, other.name)})


def while_loop(
    initial_values: Iterable[Value] | Value,
    predicate: Callable[..., TensorValue],
    body: Callable[..., Any],
) -> list[TensorValue]:
    """Execute a loop until the predicate evaluates to false.

    Both the predicate and body functions must take in as arguments the same number and
    types of values as specified in the init_args. The predication function must return
    only a boolean scalar tensor of type ``DType.bool``. The body function must return a
    list of values matching the types of init_args, (or may return a value directly if there
    is only one). Both may use values of the enclosing graph, and load from and store to its
    buffers (each iteration sees the previous one's stores).

    Args:
        initial_values: Initial values for loop arguments. Must be non-empty.
        predicate: Callable that takes loop arguments and returns a boolean scalar tensor of
            type ``DType.bool`` determining loop continuation.
        body: Callable that takes loop arguments and returns updated values matching the
            types of init_args.

    Returns:
        List of output values from the final loop iteration.

    Raises:
        ValueError: If init_args is empty, or the predicate or body return other types.
        NotImplementedError: If any init_arg is a ``BufferValue``.
    """
    graph = Graph.current
    if isinstance(initial_values, Value) or not isinstance(initial_values, Iterable):
        initial_values = [initial_values]
    values = list(initial_values)
    if not values:
        raise ValueError("while_loop: initial_values must be non-empty")
    if any(isinstance(v, BufferValue) for v in values):
        raise NotImplementedError("while_loop: BufferValue loop arguments are not supported "
                                  "(the predicate and body may use the buffer directly)")
    inits = [as_tensor_value(v, where="while_loop") for v in values]
    types = [v.type for v in inits]
    pred = build_body(graph, "mo.while", "pred", types, predicate)
    try:
        step = build_body(graph, "mo.while", "body", types, body, seed=pred.frame.order)
    except BaseException:
        pred.frame.func.operation.erase()
        raise
    problem = None
    if len(pred.result_types) != 1 or pred.result_types[0].dtype != DType.bool \
            or pred.result_types[0].rank != 0:
        problem = (f"predicate returned {_types_text(pred.result_types)}, expected one bool "
                   "scalar")
    elif step.result_types != types:
        problem = (f"body returned {_types_text(step.result_types)}, the loop carries "
                   f"{_types_text(types)}")
    if problem is not None:
        pred.frame.func.operation.erase()
        step.frame.func.operation.erase()
        raise ValueError(f"while_loop: {problem}")
    captures = share_captures(pred, step, graph)
    args = [v._mlir_value for v in inits] + captures
    return _emit(graph, "mo.while", [], [graph._local(a) for a in args], types,
                 {"pred_fn": _symbol(graph, pred.name), "body_fn": _symbol(graph, step.name),
                  "num_carried": len(inits)})


def call(graph: Graph, *args: Value, prefix: str = "") -> list[TensorValue]:
    """Call a graph with the provided arguments and return its results.

    The graph must be a subgraph of the current graph (:meth:`Graph.add_subgraph`) whose
    outputs are set. The subgraph's weights are bound to the caller's weights of the same
    names with ``prefix`` in front, so one subgraph serves every layer of a stack. A subgraph
    called more than once is compiled once, as a function (the CPU target); one called once
    is inlined into its caller.

    Args:
        graph: The graph to call.
        *args: Arguments to pass to the called graph (a ``BufferValue`` where the subgraph
            takes a ``BufferType``: the subgraph's buffer ops act on it).
        prefix: Prefix to add to the names of any weights in the subgraph: the call passes
            the caller's weight named ``prefix + name`` for each (a weight outside the
            ``weight_prefix`` of ``Module.build_subgraph`` keeps its own name).

    Returns:
        A list of Values representing the graph outputs.

    Raises:
        ValueError: If ``graph`` is not a finished subgraph of the current graph, or the
            arguments do not match its input types.
    """
    caller = Graph.current
    if not isinstance(graph, Graph):
        raise TypeError(f"call: graph must be a Graph, got {type(graph).__name__}")
    root = caller
    while root._parent is not None:
        root = root._parent
    if graph._parent is None or graph._module is not caller._module:
        raise ValueError(f"call: {graph.name!r} is not a subgraph of graph {root.name!r} "
                         "(create it with add_subgraph)")
    if graph is caller:
        raise ValueError(f"call: subgraph {graph.name!r} cannot call itself")
    if not graph._finished:
        raise ValueError(f"call: subgraph {graph.name!r} has no outputs yet (call output())")
    # A buffer input of the subgraph takes the caller's buffer itself (its stores land there).
    values = [a if isinstance(a, BufferValue) else as_tensor_value(a, where="call")
              for a in args]
    types = [v.type for v in values]
    if types != list(graph._input_types):
        raise ValueError(f"call: subgraph {graph.name!r} takes "
                         f"{_types_text(graph._input_types)}, got {_types_text(types)}")
    if not isinstance(prefix, str):
        raise TypeError(f"call: prefix must be a str, got {type(prefix).__name__}")
    weights = [caller._call_weight(prefix + name if per_call else name, w)
               for name, w, per_call in graph._placeholders]
    return _emit(caller, "mo.call", [],
                 [caller._local(v._mlir_value) for v in values + weights],
                 graph._output_types, {"callee": _symbol(caller, graph.name)})
