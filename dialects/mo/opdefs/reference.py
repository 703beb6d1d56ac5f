"""The numpy reference of each MO op: op name -> how to evaluate it on arrays.

The constant folder (``max.compiler.passes.fold``) evaluates ops with these, and each
:class:`~max.dialects.mo.opdefs.base.OpDef` names its entry. A reference takes a
:class:`FoldContext` (the op's decoded attributes and result shape/dtype) and the
operand arrays, already in their MO dtypes except that f16/bf16 arrive as float32 (exact), and
returns the result; the caller rounds it to the result dtype once. A folder raises
:class:`NotFoldable` (or any numpy error) where folding would change what the compiled code
does: integer division by zero, out-of-range gather indices, float -> int casts of values that do
not fit. Integer ``div``/``mod`` follow Python's floor semantics, as the MO spec says.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from max.dialects.mo.opdefs.quant_blocks import dequantize_array


class NotFoldable(Exception):
    """This op, on these values, is left to the compiled code."""


@dataclass(frozen=True)
class FoldContext:
    attributes: Mapping[str, Any]  # decoded by the op's AttrDefs (max.dialects.mo.verify)
    shape: tuple[int, ...]
    dtype: np.dtype

    def int(self, name: str) -> int:
        return int(self.attributes[name])

    def ints(self, name: str) -> list[int]:
        return [int(v) for v in self.attributes[name]]

    def float(self, name: str) -> float:
        return float(self.attributes[name])

    def str(self, name: str) -> str:
        return str(self.attributes[name])


FoldFn = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Folder:
    fn: FoldFn  # (FoldContext, *operands) -> result
    elementwise: bool = False  # splat operands give a splat result, computed on one element


def _float_only(*xs: np.ndarray) -> None:
    if not all(x.dtype.kind == "f" for x in xs):
        raise NotFoldable("float op on non-float operands")


def _ints_only(*xs: np.ndarray) -> bool:
    return all(x.dtype.kind in "iu" for x in xs)


def _unary(f: Callable[[np.ndarray], np.ndarray], *, floats: bool = False) -> Folder:
    def fold(ctx: FoldContext, x: np.ndarray) -> np.ndarray:
        if floats:
            _float_only(x)
        return f(x)

    return Folder(fold, elementwise=True)


def _binary(f: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Folder:
    return Folder(lambda ctx, a, b: f(a, b), elementwise=True)


def _erf(x: np.ndarray) -> np.ndarray:
    return np.frompyfunc(math.erf, 1, 1)(x.astype(np.float64)).astype(np.float64)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _gelu(ctx: FoldContext, x: np.ndarray) -> np.ndarray:
    _float_only(x)
    mode = ctx.str("approximate")
    x64 = x.astype(np.float64)
    if mode == "none":  # erfc: 1 + erf(x) cancels for negative x
        return 0.5 * x64 * np.frompyfunc(math.erfc, 1, 1)(-x64 / math.sqrt(2)).astype(np.float64)
    if mode == "tanh":
        return 0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64**3)))
    if mode == "quick":
        return x64 * _sigmoid(1.702 * x64)
    raise NotFoldable(f"gelu approximate={mode!r}")


def _check_int_divisor(a: np.ndarray, b: np.ndarray) -> None:
    if np.any(b == 0):
        raise NotFoldable("integer division by zero")
    if a.dtype.kind == "i" and np.any((a == np.iinfo(a.dtype).min) & (b == -1)):
        raise NotFoldable("integer division overflow")


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if _ints_only(a, b):
        _check_int_divisor(a, b)
        return np.floor_divide(a, b)  # Python floor semantics
    _float_only(a, b)
    return np.true_divide(a, b)


def _mod(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if _ints_only(a, b):
        _check_int_divisor(a, b)
    else:
        _float_only(a, b)
    return np.mod(a, b)  # the sign of the divisor, as Python's %


def _pow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if _ints_only(a, b) and np.any(b < 0):
        raise NotFoldable("integer power with a negative exponent")
    if a.dtype == np.bool_:
        raise NotFoldable("pow on bool")
    return np.power(a, b)


def _arith(f: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Folder:
    def fold(ctx: FoldContext, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.dtype == np.bool_:
            raise NotFoldable("arithmetic on bool")
        return f(a, b)

    return Folder(fold, elementwise=True)


def _cast(ctx: FoldContext, x: np.ndarray) -> np.ndarray:
    to = ctx.dtype
    if to == np.bool_:
        return x != 0
    if x.dtype.kind == "f" and to.kind in "iu":
        info = np.iinfo(to)
        if not np.all(np.isfinite(x)) or np.any(np.trunc(x) < info.min) or np.any(
            np.trunc(x) > info.max
        ):
            raise NotFoldable("float -> int cast of a value that does not fit")
        return np.trunc(x).astype(to)
    return x.astype(to)


def _relu(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.bool_:
        raise NotFoldable("relu on bool")
    return np.maximum(x, np.zeros((), x.dtype))


def _gather(ctx: FoldContext, x: np.ndarray, indices: np.ndarray) -> np.ndarray:
    axis = ctx.int("axis")
    n = x.shape[axis]
    if indices.dtype.kind not in "iu":
        raise NotFoldable("non-integer gather indices")
    if indices.size and (np.any(indices < -n) or np.any(indices >= n)):
        raise NotFoldable("gather index out of range: the compiled code reports it")
    return np.take(x, indices.astype(np.int64), axis=axis)


def _reduce(f: Callable[..., np.ndarray], *, accumulate: bool = False, index: bool = False,
            floats: bool = False) -> Folder:
    """``accumulate``: sums in the operand's dtype (numpy would widen ints); ``index``: arg ops."""

    def fold(ctx: FoldContext, x: np.ndarray) -> np.ndarray:
        if floats:
            _float_only(x)
        if not index and x.dtype == np.bool_:
            raise NotFoldable("reduction of bool")
        extra = {"dtype": x.dtype} if accumulate else {}
        return f(x, axis=ctx.int("axis"), keepdims=True, **extra)

    return Folder(fold)


def _softmax(ctx: FoldContext, x: np.ndarray, *, log: bool) -> np.ndarray:
    _float_only(x)
    axis = ctx.int("axis")
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    s = np.sum(e, axis=axis, keepdims=True)
    return shifted - np.log(s) if log else e / s


def _layer_norm(ctx: FoldContext, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    _float_only(x, gamma, beta)
    axes = tuple(range(x.ndim - gamma.ndim, x.ndim))
    mean = np.mean(x, axis=axes, keepdims=True)
    var = np.mean((x - mean) ** 2, axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + ctx.float("epsilon")) * gamma + beta


def _matmul(ctx: FoldContext, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype == np.bool_:
        raise NotFoldable("matmul of bool")
    return np.matmul(a, b)


def _slice(ctx: FoldContext, x: np.ndarray) -> np.ndarray:
    starts, stops, steps = ctx.ints("starts"), ctx.ints("stops"), ctx.ints("steps")
    if 0 in steps:
        raise NotFoldable("slice step 0")
    return x[tuple(slice(a, b, c) for a, b, c in zip(starts, stops, steps, strict=True))]


def _logical(f: Callable[..., np.ndarray], arity: int) -> Folder:
    def fold(ctx: FoldContext, *xs: np.ndarray) -> np.ndarray:
        if not all(x.dtype == np.bool_ for x in xs) or len(xs) != arity:
            raise NotFoldable("logical op on non-bool operands")
        return f(*xs)

    return Folder(fold, elementwise=True)


def _where(ctx: FoldContext, c: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.where(c.astype(np.bool_), x, y)


# -- indexing (opdefs/indexing.py): negative indices wrap once; scatters: the last duplicate in
# row-major order wins


def _argsort(ctx: FoldContext, x: np.ndarray) -> np.ndarray:
    axis, descending = ctx.int("axis"), bool(ctx.int("descending"))
    keep = ctx.shape[axis]
    if x.dtype.kind not in "biuf":
        raise NotFoldable(f"argsort of {x.dtype}")
    if x.dtype == np.bool_:
        x = x.astype(np.int8)
    if descending:
        # A stable descending order: sort the reversed axis ascending, then map positions back;
        # NaN stays greatest (first), as numpy puts it last in ascending order.
        n = x.shape[axis]
        rev = np.flip(x, axis)
        order = (n - 1) - np.flip(np.argsort(rev, axis=axis, kind="stable"), axis)
    else:
        order = np.argsort(x, axis=axis, kind="stable")
    return np.take(order, np.arange(keep), axis=axis).astype(np.int64)


def _wrapped(indices: np.ndarray, sizes: Sequence[int], what: str) -> np.ndarray:
    """Indices (last axis = one per size) wrapped once; out of range is left to compiled code."""
    if indices.dtype.kind not in "iu":
        raise NotFoldable("non-integer indices")
    idx = indices.astype(np.int64)
    n = np.asarray(sizes, np.int64)
    if idx.size and (np.any(idx < -n) or np.any(idx >= n)):
        raise NotFoldable(f"{what} index out of range: the compiled code reports it")
    return np.where(idx < 0, idx + n, idx)


def _gather_nd(ctx: FoldContext, x: np.ndarray, indices: np.ndarray) -> np.ndarray:
    b = ctx.int("batch_dims")
    k = indices.shape[-1]
    idx = _wrapped(indices, x.shape[b:b + k], "gather_nd")
    out = np.empty(ctx.shape, x.dtype)
    for batch in np.ndindex(*x.shape[:b]):
        sub = idx[batch]
        out[batch] = x[batch][tuple(np.moveaxis(sub, -1, 0))]
    return out


def _scatter(ctx: FoldContext, x: np.ndarray, updates: np.ndarray,
             indices: np.ndarray) -> np.ndarray:
    axis = ctx.int("axis")
    idx = _wrapped(indices[..., None], [x.shape[axis]], "scatter")[..., 0]
    out = x.copy()
    for pos in np.ndindex(*indices.shape):  # row-major: the last duplicate wins
        dst = list(pos)
        dst[axis] = idx[pos]
        out[tuple(dst)] = updates[pos]
    return out


def _scatter_nd(ctx: FoldContext, x: np.ndarray, updates: np.ndarray,
                indices: np.ndarray) -> np.ndarray:
    k = indices.shape[-1]
    idx = _wrapped(indices, x.shape[:k], "scatter_nd")
    out = x.copy()
    for pos in np.ndindex(*indices.shape[:-1]):  # row-major: the last duplicate wins
        out[tuple(idx[pos])] = updates[pos]
    return out


def _repeat_interleave(ctx: FoldContext, x: np.ndarray, repeats: np.ndarray) -> np.ndarray:
    axis = ctx.int("axis")
    if repeats.dtype.kind not in "iu":
        raise NotFoldable("non-integer repeats")
    counts = np.broadcast_to(repeats.astype(np.int64), (x.shape[axis],))
    if np.any(counts < 0) or int(counts.sum()) != ctx.shape[axis]:
        raise NotFoldable("repeats negative or not summing to the result: reported at run time")
    return np.repeat(x, counts, axis=axis)

def _nonzero(ctx: FoldContext, x: np.ndarray) -> np.ndarray:
    return np.argwhere(x).astype(np.int64)  # row-major, as the compiled loop writes them


def _dequantize(ctx: FoldContext, x: np.ndarray) -> np.ndarray:
    return dequantize_array(ctx.str("encoding"), x)


def _qmatmul(ctx: FoldContext, lhs: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    return np.matmul(lhs, dequantize_array(ctx.str("encoding"), rhs).T)


# MO op name -> how to evaluate it on constants. `mo.round` is absent: its tie-breaking rule is
# not written down in the MO spec, so folding could disagree with the lowering.
REFERENCES: dict[str, Folder] = {
    # elementwise unary
    "mo.abs": _unary(np.abs),
    "mo.acos": _unary(lambda x: np.arccos(np.clip(x, -1, 1)), floats=True),  # clamps
    "mo.negate": _unary(np.negative),
    "mo.exp": _unary(np.exp, floats=True),
    "mo.log": _unary(np.log, floats=True),
    "mo.log1p": _unary(np.log1p, floats=True),
    "mo.sqrt": _unary(np.sqrt, floats=True),
    "mo.rsqrt": _unary(lambda x: 1 / np.sqrt(x), floats=True),
    "mo.tanh": _unary(np.tanh, floats=True),
    "mo.sigmoid": _unary(_sigmoid, floats=True),
    "mo.silu": _unary(lambda x: x * _sigmoid(x), floats=True),
    "mo.sin": _unary(np.sin, floats=True),
    "mo.cos": _unary(np.cos, floats=True),
    "mo.erf": _unary(_erf, floats=True),
    "mo.floor": _unary(np.floor, floats=True),
    "mo.trunc": _unary(np.trunc, floats=True),
    "mo.relu": _unary(_relu),
    "mo.is_nan": _unary(np.isnan, floats=True),
    "mo.is_inf": _unary(np.isinf, floats=True),
    "mo.logical_not": _logical(np.logical_not, 1),
    "mo.gelu": Folder(_gelu, elementwise=True),
    "mo.cast": Folder(_cast, elementwise=True),
    # elementwise binary
    "mo.add": _arith(np.add),
    "mo.sub": _arith(np.subtract),
    "mo.mul": _arith(np.multiply),
    "mo.div": _arith(_div),
    "mo.mod": _arith(_mod),
    "mo.pow": _binary(_pow),
    "mo.max": _binary(np.maximum),
    "mo.min": _binary(np.minimum),
    "mo.equal": _binary(np.equal),
    "mo.not_equal": _binary(np.not_equal),
    "mo.greater": _binary(np.greater),
    "mo.greater_equal": _binary(np.greater_equal),
    "mo.logical_and": _logical(np.logical_and, 2),
    "mo.logical_or": _logical(np.logical_or, 2),
    "mo.logical_xor": _logical(np.logical_xor, 2),
    "mo.where": Folder(_where, elementwise=True),
    # shapes and data movement
    "mo.reshape": Folder(lambda ctx, x: x.reshape(ctx.shape)),
    "mo.transpose": Folder(lambda ctx, x: np.transpose(x, ctx.ints("permutation"))),
    "mo.broadcast_to": Folder(lambda ctx, x: np.broadcast_to(x, ctx.shape)),
    "mo.concat": Folder(lambda ctx, *xs: np.concatenate(xs, axis=ctx.int("axis"))),
    "mo.slice": Folder(_slice),
    "mo.gather": Folder(_gather),
    "mo.dequantize": Folder(_dequantize),
    "mo.qmatmul": Folder(_qmatmul),
    "mo.matmul": Folder(_matmul),
    # reductions (the axis stays, with size 1) and normalizations
    "mo.reduce_sum": _reduce(np.sum, accumulate=True),
    "mo.reduce_max": _reduce(np.max),
    "mo.reduce_min": _reduce(np.min),
    "mo.reduce_mean": _reduce(np.mean, accumulate=True, floats=True),  # int mean: unspecified
    "mo.argmax": _reduce(np.argmax, index=True),
    "mo.argmin": _reduce(np.argmin, index=True),
    "mo.softmax": Folder(lambda ctx, x: _softmax(ctx, x, log=False)),
    "mo.logsoftmax": Folder(lambda ctx, x: _softmax(ctx, x, log=True)),
    "mo.layer_norm": Folder(_layer_norm),
    # indexing
    "mo.argsort": Folder(_argsort),
    "mo.gather_nd": Folder(_gather_nd),
    "mo.scatter": Folder(_scatter),
    "mo.scatter_nd": Folder(_scatter_nd),
    "mo.repeat_interleave": Folder(_repeat_interleave),
    "mo.nonzero": Folder(_nonzero),
}

# Shape ops whose result is a splat when the operand is one: no need to materialize.
SPLAT_PRESERVING = frozenset({"mo.reshape", "mo.transpose", "mo.broadcast_to"})

# Ops whose integer result may come from a wider integer computation (argmax's int64).
INT_RESULT_CONVERTS = frozenset({"mo.argmax", "mo.argmin"})
