"""``rebind`` (``mo.rebind``: a run-time check of a new shape) and ``shape_to_tensor``
(``mo.shape_to_tensor``, a ``mo.constant`` where every dim is static)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np

from max.dtype import DType
from max.graph.dim import Dim, SymbolicDim
from max.graph.graph import Graph
from max.graph.type import DeviceRef
from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import as_strong, emit


def _bound_symbols() -> set[str]:
    """The symbols whose values the compiled code knows here: the graph inputs' dims, and in
    the graph's own body (not a control-flow body or subgraph) the symbols its ops bound
    from data (:func:`bind_data_symbol`)."""
    graph = Graph.current
    bound = {d.name for t in graph.inputs for d in t.shape if isinstance(d, SymbolicDim)}
    if graph._frame is None and graph._parent is None:
        bound |= graph._data_symbols
    return bound


def require_bound(op: str, dims: Iterable[Dim], what: str) -> None:
    """ValueError unless every symbol of ``dims`` has a value when the graph runs: it is a
    dim of a graph input, or an op of the graph bound it from data (``nonzero``'s count).
    """
    bound = _bound_symbols()
    for d in dims:
        for p in d.parameters:
            if p.name not in bound:
                raise ValueError(
                    f"{op}: {what} uses the symbol {p.name!r}, which no graph input has as a "
                    "dim and no earlier op binds (declare the symbol on an input, or use "
                    "static dims)"
                )


def bind_data_symbol(op: str, dim: Dim, what: str) -> bool:
    """For an op whose size only the data determines (``nonzero``, ``range`` and
    ``repeat_interleave`` with tensor arguments): whether ``dim`` is a new symbol, which the
    op then binds when the graph runs. A bound symbol or a static dim is checked at run time
    instead; an expression must use bound symbols only.

    Raises:
        ValueError: for a new symbol inside a control-flow body or subgraph (its value would
            exist only inside that region), or an expression over unbound symbols.
    """
    if not isinstance(dim, SymbolicDim):
        require_bound(op, [dim], what)
        return False
    graph = Graph.current
    if dim.name in _bound_symbols():
        return False
    if graph._frame is not None or graph._parent is not None:
        raise ValueError(
            f"{op}: {what} is the new symbol {dim.name!r}, whose value only the data "
            "determines: that is supported in a graph's own body, not inside a control-flow "
            "body or subgraph (compute it outside and pass the tensor in)")
    graph._data_symbols.add(dim.name)
    return True


def _dims_of(op: str, shape: Any, name: str) -> list[Dim]:
    if isinstance(shape, TensorValue) or isinstance(shape, str | int) or not isinstance(
            shape, Iterable):
        raise TypeError(f"{op}: {name} must be a sequence of dims, got {shape!r}")
    dims = [_dims.as_dim(d, where=f"{op}: {name}[{i}]") for i, d in enumerate(shape)]
    for i, d in enumerate(dims):
        value = _dims.static_value(d)
        if value is not None and value < 0:
            raise ValueError(f"{op}: {name}[{i}] = {value} is negative")
    return dims


def rebind(x: Any, shape: Iterable[Any], message: str = "", layout: Any = None) -> TensorValue:
    """Rebinds a symbolic tensor to a specified set of dimensions.

    This does not mutate the symbolic tensor passed in, but instead adds a runtime assert
    that the input symbolic shape is equivalent to ``out_dims`` shape. For example, if the
    input tensor shape has dynamic/unknown sizes, this will assert a fixed sizes that may be
    required for a subsequent operation.

    A mismatch at run time makes ``Model.execute`` raise ``ValueError`` with ``message``.
    The symbols of ``shape`` must be dims of graph inputs (their values are known when the
    model runs); a symbol that nothing binds is a ``ValueError`` here.

    Args:
        x: The input symbolic tensor to rebind.
        shape: The symbolic shape to assert for ``x``, as a list of ``Dim`` values.
        message: The message printed if the rebind fails at runtime.
        layout: A layout of the weights used by some operations like conv (accepted for
            MAX compatibility; tensors here carry no layout, so it must be ``None``).

    Returns:
        A symbolic tensor with the same elements and shape as the given tensor, but with the
        symbolic shape asserted to ``out_dims``.

    Raises:
        ValueError: If the rank differs, two static dims differ, or a symbol is unbound.
        TypeError: If ``shape`` is not a sequence of dims or ``message`` not a string.
    """
    x = as_strong("rebind", x)
    if not isinstance(message, str):
        raise TypeError(f"rebind: message must be a str, got {message!r}")
    if layout is not None:
        raise ValueError(f"rebind: layout={layout!r} is not supported (tensors carry no layout)")
    dims = _dims_of("rebind", shape, "shape")
    if len(dims) != x.rank:
        raise ValueError(f"rebind: shape {_dims.shape_text(dims)} has rank {len(dims)}, the "
                         f"tensor {_dims.shape_text(x.shape)} has rank {x.rank}")
    for i, (a, b) in enumerate(zip(x.shape, dims)):
        if _dims.static_value(a) is not None and _dims.static_value(b) is not None and a != b:
            raise ValueError(f"rebind: dim {i} of {_dims.shape_text(x.shape)} is "
                             f"{_dims.dim_text(a)}, it cannot be rebound to {_dims.dim_text(b)}")
    if list(dims) == list(x.shape):
        return x
    require_bound("rebind", dims, "shape")
    return emit("mo.rebind", [x], x.dtype, dims, x.device, {"message": message})


def shape_to_tensor(shape: Iterable[Any]) -> TensorValue:
    """Converts a shape to a tensor.

    This is useful for using a shape attribute in an op that expects a tensor value.

    Example:
        >>> import numpy as np
        >>> from max.dtype import DType
        >>> from max.graph import DeviceRef, Graph, ops
        >>> with Graph("s") as g:
        ...     x = ops.constant(np.zeros((1,)), DType.int64, device=DeviceRef.CPU())
        ...     result = ops.stack([x, ops.shape_to_tensor(x.shape)])
        >>> result.type
        TensorType(dtype=DType.int64, shape=[Dim(2), Dim(1)], device=cpu:0)

    Args:
        shape: the shape attribute of a tensor value.

    Returns:
        The TensorValue containing the same value as shape: a rank-1 ``int64`` tensor on the
        CPU. Symbolic dims (which must be dims of graph inputs) are evaluated at run time.

    Raises:
        ValueError: If a dim is negative or uses a symbol no graph input binds.
        TypeError: If ``shape`` is not a sequence of dims.
    """
    dims = _dims_of("shape_to_tensor", shape, "shape")
    values = [_dims.static_value(d) for d in dims]
    if all(v is not None for v in values):
        from max.graph.ops.constant import constant

        return constant(np.array(values, np.int64), DType.int64, DeviceRef.CPU())
    require_bound("shape_to_tensor", dims, "shape")
    text = json.dumps([v if v is not None else str(d) for v, d in zip(values, dims)])
    return emit("mo.shape_to_tensor", [], DType.int64, [Dim(len(dims))], DeviceRef.CPU(),
                {"dims": text})
