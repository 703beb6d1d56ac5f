"""Elementwise ops from one table: each unary op keeps its operand's shape, each binary op
broadcasts its operands' shapes and promotes their dtypes (see ``max.graph.ops``)."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from max.dialects.mo.opdefs import elementwise as opdef_rules
from max.dtype import DType
from max.graph.value import TensorValue

from max.graph.ops._promotion import as_strong, broadcast_shapes, emit, promote


# -- dtype rules ---------------------------------------------------------------------------------
# A rule checks the operand dtype (after promotion) and returns the result dtype; they are the
# MO op definitions' own rules, so builder and verifier cannot drift apart.
_any = opdef_rules.any_dtype
_numeric = opdef_rules.numeric
_floating = opdef_rules.floating
_boolean = opdef_rules.boolean
_float_to_bool = opdef_rules.float_to_bool
_to_bool = opdef_rules.to_bool
_bool_to_bool = opdef_rules.boolean


Rule = Callable[[str, DType], DType]


@dataclass(frozen=True)
class ElementwiseOp:
    """One row of the op table: public name, MO op, arity and dtype rule."""

    name: str
    mo_op: str
    arity: int
    rule: Rule


def _unary(name: str, rule: Rule, doc: str) -> Callable[[Any], TensorValue]:
    mo_op = f"mo.{name}"

    def op(x: Any) -> TensorValue:
        x = as_strong(name, x)
        dtype = rule(name, x.dtype)
        return emit(mo_op, [x], dtype, x.shape, x.device)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = _UNARY_DOC.format(doc=doc)
    UNARY_OPS[name] = ElementwiseOp(name, mo_op, 1, rule)
    return op


def _binary(name: str, rule: Rule, doc: str, mo_name: str | None = None) -> Callable[[Any, Any], TensorValue]:
    mo_op = f"mo.{mo_name or name}"

    def op(lhs: Any, rhs: Any) -> TensorValue:
        lhs, rhs = promote(name, [lhs, rhs], ["lhs", "rhs"])
        dtype = rule(name, lhs.dtype)
        shape = broadcast_shapes(name, [lhs.shape, rhs.shape])
        return emit(mo_op, [lhs, rhs], dtype, shape, lhs.device)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = _BINARY_DOC.format(doc=doc)
    BINARY_OPS[name] = ElementwiseOp(name, mo_op, 2, rule)
    return op


_UNARY_DOC = """{doc}

    Args:
        x: The symbolic tensor to use as the input.

    Returns:
        A new symbolic tensor value with the shape of the input.

    Raises:
        TypeError: If ``x`` is not a graph value.
        ValueError: If the input dtype is not supported by the op.
    """

_BINARY_DOC = """{doc}

    If ``lhs`` and ``rhs`` have different dtypes, they are promoted by the dtype promotion
    rules; if they have different shapes, they are broadcast.

    Args:
        lhs: The symbol to use as left side of the operation.
        rhs: The symbol to use as right side of the operation.

    Returns:
        A symbolic tensor value with the shape of the broadcast of the two input shapes.

    Raises:
        ValueError: If the shapes do not broadcast or the dtypes do not promote.
        TypeError: If neither operand is a graph value.
    """

UNARY_OPS: dict[str, ElementwiseOp] = {}
BINARY_OPS: dict[str, ElementwiseOp] = {}

# -- unary ops -----------------------------------------------------------------------------------
abs = _unary("abs", _numeric, "Computes the elementwise absolute value of a symbolic tensor.")
acos = _unary("acos", _floating, "Computes the arccosine (inverse cosine) of the input tensor. "
              "Returns values in the range [0, π] for inputs in [-1, 1]; values outside this "
              "domain are clamped to the valid range.")
cos = _unary("cos", _floating, "Computes the elementwise cosine of a symbolic tensor.")
erf = _unary("erf", _floating, "Computes the elementwise error function of a symbolic tensor.")
exp = _unary("exp", _floating, "Computes the elementwise exp function of a symbolic tensor.")
floor = _unary("floor", _floating, "Computes the elementwise floor of a symbolic tensor.")
is_inf = _unary("is_inf", _float_to_bool, "Returns a bool tensor, true where the input is ±inf.")
is_nan = _unary("is_nan", _float_to_bool, "Returns a bool tensor, true where the input is NaN.")
log = _unary("log", _floating, "Computes the elementwise natural logarithm of a symbolic tensor.")
log1p = _unary("log1p", _floating, "Computes the elementwise ``log(1 + x)`` of a symbolic tensor.")
logical_not = _unary("logical_not", _bool_to_bool, "Computes the elementwise logical not of a bool tensor.")
negate = _unary("negate", _numeric, "Computes the elementwise negation of a symbolic tensor.")
relu = _unary("relu", _numeric, "Computes the elementwise relu (``max(x, 0)``) of a symbolic tensor.")
round = _unary("round", _floating, "Rounds each element to the nearest integer, halves to even.")
rsqrt = _unary("rsqrt", _floating, "Computes the elementwise inverse square root of a symbolic tensor.")
sigmoid = _unary("sigmoid", _floating, "Computes the elementwise sigmoid of a symbolic tensor.")
silu = _unary("silu", _floating, "Computes the elementwise silu, ``silu(x) = x * sigmoid(x)``.")
sin = _unary("sin", _floating, "Computes the elementwise sine of a symbolic tensor.")
sqrt = _unary("sqrt", _floating, "Computes the elementwise square root of a symbolic tensor.")
tanh = _unary("tanh", _floating, "Computes the elementwise tanh of a symbolic tensor.")
trunc = _unary("trunc", _floating, "Rounds each element toward zero.")

_GELU_APPROXIMATIONS = ("none", "tanh", "quick")


def gelu(x: Any, approximate: str = "none") -> TensorValue:
    """Computes the elementwise gelu of a symbolic tensor.

    For ``approximate == "none"``, the exact gelu function is computed. For
    ``approximate == "tanh"``, the approximation
    ``gelu(x) = 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x**3)))`` is used.
    For ``approximate == "quick"``, the approximation ``gelu(x) = sigmoid(1.702 * x) * x`` is
    used.

    Args:
        x: The symbolic tensor to use as the input to the gelu computation.
        approximate: ``"none"``, ``"tanh"`` or ``"quick"``.

    Returns:
        A new symbolic tensor value representing the output of the gelu computation.

    Raises:
        ValueError: If the approximation method is invalid or the dtype is not floating-point.
    """
    x = as_strong("gelu", x)
    if approximate not in _GELU_APPROXIMATIONS:
        raise ValueError(
            f"gelu: invalid approximate={approximate!r}, expected one of {_GELU_APPROXIMATIONS}"
        )
    dtype = _floating("gelu", x.dtype)
    return emit("mo.gelu", [x], dtype, x.shape, x.device, {"approximate": approximate})


UNARY_OPS["gelu"] = ElementwiseOp("gelu", "mo.gelu", 1, _floating)

# -- binary ops ----------------------------------------------------------------------------------
add = _binary("add", _any, "Adds two symbolic tensors.")
equal = _binary("equal", _to_bool, "Computes the elementwise ``lhs == rhs`` (a bool tensor).")
greater = _binary("greater", _to_bool, "Computes the elementwise ``lhs > rhs`` (a bool tensor).")
greater_equal = _binary("greater_equal", _to_bool, "Computes the elementwise ``lhs >= rhs``.")
logical_and = _binary("logical_and", _bool_to_bool, "Computes the elementwise logical and.")
logical_or = _binary("logical_or", _bool_to_bool, "Computes the elementwise logical or.")
logical_xor = _binary("logical_xor", _bool_to_bool, "Computes the elementwise logical xor.")
mod = _binary("mod", _numeric, "Computes the elementwise modulus (Python's sign rules).")
mul = _binary("mul", _any, "Computes the elementwise multiplication of two symbolic tensors.")
not_equal = _binary("not_equal", _to_bool, "Computes the elementwise ``lhs != rhs``.")
pow = _binary("pow", _numeric, "Computes the elementwise exponentiation of two symbolic tensors.")
sub = _binary("sub", _numeric, "Computes the elementwise subtraction of two symbolic tensors.")
_max = _binary("max", _any, "Computes the elementwise maximum of two symbolic tensors.")
_min = _binary("min", _any, "Computes the elementwise minimum of two symbolic tensors.")


def div(lhs: Any, rhs: Any) -> TensorValue:
    """Divides two symbolic tensors using true division (Python operator ``/``).

    For integer operands, this performs true division by promoting to float (``float64``),
    matching Python's ``/`` operator behavior. For floating-point operands, this performs
    standard floating-point division.

    Args:
        lhs: The symbol to use as left side of the division.
        rhs: The symbol to use as right side of the division.

    Returns:
        A symbolic tensor value representing the output of the division: floating-point
        dtype for integer operands, the promoted dtype otherwise, and the shape of the
        broadcast of the two input shapes.

    Raises:
        ValueError: If the shapes do not broadcast or the dtypes do not promote.
    """
    from max.graph.ops.cast import cast

    lhs, rhs = promote("div", [lhs, rhs], ["lhs", "rhs"])
    _numeric("div", lhs.dtype)
    if not lhs.dtype.is_float():
        lhs, rhs = cast(lhs, DType.float64), cast(rhs, DType.float64)
    shape = broadcast_shapes("div", [lhs.shape, rhs.shape])
    return emit("mo.div", [lhs, rhs], lhs.dtype, shape, lhs.device)


BINARY_OPS["div"] = ElementwiseOp("div", "mo.div", 2, _numeric)


def floor_div(lhs: Any, rhs: Any) -> TensorValue:
    """Divides two symbolic tensors and rounds down (Python operator ``//``).

    Integer operands use ``mo.div``, which floors for integers; floating-point operands are
    divided, then floored.

    Args:
        lhs: The symbol to use as left side of the division.
        rhs: The symbol to use as right side of the division.

    Returns:
        A symbolic tensor of the promoted dtype and the broadcast shape.
    """
    lhs, rhs = promote("floor_div", [lhs, rhs], ["lhs", "rhs"])
    dtype = _numeric("floor_div", lhs.dtype)
    shape = broadcast_shapes("floor_div", [lhs.shape, rhs.shape])
    quotient = emit("mo.div", [lhs, rhs], dtype, shape, lhs.device)
    if dtype.is_float():
        return emit("mo.floor", [quotient], dtype, shape, lhs.device)
    return quotient


__all__ = builtins.sorted(
    [*UNARY_OPS, *(n for n in BINARY_OPS if n not in ("max", "min")), "floor_div"]
)
