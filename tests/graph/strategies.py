"""Hypothesis strategies for dims, shapes, dtypes, devices and tensor types.

Import from test files as ``from strategies import ...`` (pytest puts this folder on the path).
An *expression* is a small tree: an int, a symbol name, ``("neg", e)`` or ``(op, a, b)`` with
op one of ``+ - * //``; :func:`build_dim` makes it a Dim through the Dim operators and
:func:`evaluate_expr` computes it with plain Python ints, for comparing the two.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from hypothesis import assume
from hypothesis import strategies as st

from max.dtype import DType
from max.graph.dim import Dim, StaticDim
from max.graph.shape import Shape
from max.graph.type import DeviceRef, TensorType

SYMBOLS = ("a", "b", "batch", "seq_len")

OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "//": operator.floordiv,
}

symbol_names = st.sampled_from(SYMBOLS)
small_ints = st.integers(min_value=-12, max_value=12)
static_dims = st.integers(min_value=0, max_value=2**20).map(Dim)
symbolic_dims = symbol_names.map(Dim)


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.tuples(st.just("neg"), children),
        st.tuples(st.sampled_from(sorted(OPS)), children, children),
    )


# Expression trees; floor division appears, so some trees divide by zero for some bindings.
exprs = st.recursive(st.one_of(small_ints, symbol_names), _extend, max_leaves=8)
# Without floor division: polynomials, for the ring identities.
poly_exprs = st.recursive(
    st.one_of(small_ints, symbol_names),
    lambda c: st.tuples(st.sampled_from(["+", "-", "*"]), c, c),
    max_leaves=6,
)
bindings = st.fixed_dictionaries({name: small_ints for name in SYMBOLS})


def build_dim(expr: Any) -> Dim:
    """The Dim of an expression tree, built with the Dim operators."""
    if isinstance(expr, int | str):
        return Dim(expr)
    if expr[0] == "neg":
        return -build_dim(expr[1])
    return OPS[expr[0]](build_dim(expr[1]), build_dim(expr[2]))


def evaluate_expr(expr: Any, env: Mapping[str, int]) -> int:
    """The value of an expression tree with plain ints (may raise ZeroDivisionError)."""
    if isinstance(expr, int):
        return expr
    if isinstance(expr, str):
        return env[expr]
    if expr[0] == "neg":
        return -evaluate_expr(expr[1], env)
    return OPS[expr[0]](evaluate_expr(expr[1], env), evaluate_expr(expr[2], env))


@st.composite
def dims(draw: st.DrawFn) -> Dim:
    """Any dim: static, symbolic or algebraic (never raising to build)."""
    kind = draw(st.sampled_from(["static", "symbolic", "algebraic"]))
    if kind == "static":
        return draw(static_dims)
    if kind == "symbolic":
        return draw(symbolic_dims)
    expr = draw(exprs)
    try:
        return build_dim(expr)
    except (ZeroDivisionError, ValueError):
        return draw(symbolic_dims)


shapes = st.lists(st.one_of(static_dims, symbolic_dims, dims()), max_size=5).map(Shape)
static_shapes = st.lists(st.integers(min_value=0, max_value=64), max_size=5).map(Shape)
dtypes = st.sampled_from(list(DType))
devices = st.one_of(
    st.integers(min_value=0, max_value=3).map(DeviceRef.CPU),
    st.integers(min_value=0, max_value=7).map(DeviceRef.GPU),
)


@st.composite
def tensor_types(draw: st.DrawFn, shape: st.SearchStrategy[Shape] = shapes) -> TensorType:
    """A TensorType of any dtype, a shape with non-negative static dims, any device."""
    dims_ = [d for d in draw(shape) if not (isinstance(d, StaticDim) and d.dim < 0)]
    dtype = draw(dtypes)
    nbytes = dtype.size_in_bytes
    for d in dims_:
        if isinstance(d, StaticDim):
            nbytes *= d.dim or 1  # TensorType's rule: zeros aside (they hold no bytes)
    assume(nbytes <= 2**63 - 1)  # TensorType refuses bigger static shapes, as numpy does
    return TensorType(dtype, dims_, draw(devices))
