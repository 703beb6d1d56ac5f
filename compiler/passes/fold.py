"""``mo-fold``: constant folding and algebraic identities on MO ops.

Constant folding evaluates an MO op whose operands are all ``mo.constant`` and whose result type
is static, with the numpy reference of its op definition (``max.dialects.mo.opdefs``), and
replaces it by a
``mo.constant`` of the same result type. Nothing is folded that would make a constant of more
than :data:`MAX_FOLD_ELEMENTS` elements and more than its largest operand (splats excepted:
they stay one element), or read more than :data:`MAX_INPUT_ELEMENTS`, nor where
evaluation fails or :class:`~max.dialects.mo.opdefs.reference.NotFoldable` is raised; then the op is left as it is.

The algebraic identities are the list :data:`IDENTITIES` of (op name, rewrite) pairs: a rewrite
returns the value that replaces the op's result, or None where it does not apply.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from mlir import ir

from max.compiler.passes.constants import (
    create_constant,
    mo_type,
    numpy_dtype,
    read_constant,
)
from max.dialects.mo.opdefs import OPS
from max.dialects.mo.opdefs.reference import INT_RESULT_CONVERTS, SPLAT_PRESERVING, FoldContext
from max.dialects.mo.verify import VerificationError, decode_attributes
from max.compiler.passes.ir_util import blocks, defining_op, is_pure_mo_op, replace_op

# The largest constant folding may create (elements) beyond the size of its largest operand;
# bigger results stay computed.
MAX_FOLD_ELEMENTS = 1 << 20
# The most operand elements (not counting splats) folding will read for one op.
MAX_INPUT_ELEMENTS = 1 << 24

_LOW_PRECISION = (np.dtype(np.float16), numpy_dtype("bf16"))


def _constant_producers(op: ir.Operation) -> list[ir.Operation] | None:
    """The ``mo.constant`` ops defining each operand, or None if one is something else."""
    producers = [defining_op(v) for v in op.operands]
    if any(p is None or p.name != "mo.constant" for p in producers):
        return None
    return producers  # type: ignore[return-value]


def _is_splat_constant(op: ir.Operation) -> bool:
    attr = op.attributes["value"] if "value" in op.attributes else None
    return isinstance(attr, ir.DenseElementsAttr) and ir.DenseElementsAttr(attr).is_splat


def _static_size(value: ir.Value) -> int | None:
    t = mo_type(value)
    return int(np.prod(t.dims)) if t is not None and t.is_static else None


def _result_dtype(out: np.ndarray, expected: np.dtype, op_name: str) -> np.ndarray | None:
    """``out`` in the result dtype, or None where that would not be the op's semantics."""
    if out.dtype == expected:
        return out
    if out.dtype.kind == "f" and (expected.kind == "f" or expected in _LOW_PRECISION):
        return out.astype(expected)  # computed wider (f16/bf16 in f32), rounded once
    if op_name in INT_RESULT_CONVERTS and out.dtype.kind in "iu" and expected.kind in "iu":
        return out.astype(expected)
    if op_name == "mo.cast":
        return out.astype(expected)
    return None


def evaluate(op: ir.Operation) -> np.ndarray | None:
    """The value of ``op``'s result when its operands are constants, or None."""
    defn = OPS.get(op.name)
    folder = defn.reference if defn is not None else None
    if folder is None or len(op.results) != 1:
        return None
    t = mo_type(op.results[0])
    dtype = numpy_dtype(t.element_type) if t is not None else None
    if t is None or dtype is None or not t.is_static:
        return None
    shape = tuple(int(d) for d in t.dims)
    producers = _constant_producers(op)
    if producers is None:
        return None
    try:
        ctx = FoldContext(decode_attributes(defn, op), shape, dtype)
    except VerificationError:
        return None
    splat = bool(producers) and all(_is_splat_constant(p) for p in producers)
    splat = splat and (folder.elementwise or op.name in SPLAT_PRESERVING)
    if not splat:  # decide on sizes before reading anything big
        sizes = [_static_size(p.results[0]) for p in producers]
        if any(n is None for n in sizes):
            return None
        # A result no larger than an operand it replaces (a cast, a transpose, a weight
        # scaled by a scalar) folds at any size: left computed, it would rewrite the whole
        # constant at every call (a [768, 3072] f32 weight cast to bf16: 9.4 MB read and
        # written per call).
        largest = max((n for n, p in zip(sizes, producers) if not _is_splat_constant(p)),
                      default=0)
        if int(np.prod(shape)) > max(MAX_FOLD_ELEMENTS, largest):
            return None
        if sum(sizes) > MAX_INPUT_ELEMENTS:  # type: ignore[arg-type]
            return None
    operands = [read_constant(p) for p in producers]
    if any(x is None for x in operands):
        return None
    if splat:  # compute on one element, broadcast the answer (as cheap for any size)
        operands = [x.reshape(-1)[:1].reshape(()) for x in operands]
    operands = [x.astype(np.float32) if x.dtype in _LOW_PRECISION else x for x in operands]
    try:
        with np.errstate(all="ignore"):
            if splat and op.name in SPLAT_PRESERVING:
                out = operands[0]  # moving copies of one value around
            else:
                out = np.asarray(folder.fn(ctx, *operands))
    except Exception:  # NotFoldable, or numpy refusing the values: leave the op
        return None
    if splat:
        if out.size != 1:
            return None
        out = np.broadcast_to(out.reshape(()), shape)
    if out.shape != shape:
        return None
    return _result_dtype(out, dtype, op.name)


# ---- algebraic identities -------------------------------------------------------------------

Rewrite = Callable[[ir.Operation], "ir.Value | None"]


def _splat_equals(value: ir.Value, number: float) -> bool:
    op = defining_op(value)
    if op is None or op.name != "mo.constant" or "value" not in op.attributes:
        return False
    attr = op.attributes["value"]
    if not isinstance(attr, ir.DenseElementsAttr) or not ir.DenseElementsAttr(attr).is_splat:
        return False  # only splats: a full read of a big constant is not worth it
    array = read_constant(op)
    return array is not None and array.size > 0 and bool(array.reshape(-1)[0] == number)


def _keep_operand(keep: int, other_is: float) -> Rewrite:
    """Replaces ``op(a, b)`` by operand ``keep`` when the other is the splat ``other_is``
    and the op's result type equals the kept operand's type (no broadcasting happens)."""

    def rewrite(op: ir.Operation) -> ir.Value | None:
        kept, other = op.operands[keep], op.operands[1 - keep]
        if kept.type == op.results[0].type and _splat_equals(other, other_is):
            return kept
        return None

    return rewrite


def _same_type_operand(op: ir.Operation) -> ir.Value | None:
    x = op.operands[0]
    return x if x.type == op.results[0].type else None


def _reshape_of_reshape(op: ir.Operation) -> ir.Value | None:
    inner = defining_op(op.operands[0])
    if inner is None or inner.name != "mo.reshape":
        return None
    x = inner.operands[0]
    if x.type == op.results[0].type:
        return x
    return _create(op, "mo.reshape", x, {})


def _permutation(op: ir.Operation) -> list[int]:
    return list(ir.DenseI64ArrayAttr(op.attributes["permutation"]))


def _identity_transpose(op: ir.Operation) -> ir.Value | None:
    """x for the identity permutation, or one that only moves size-1 dims (or of an empty x)
    with the result type equal to x's. An equal type alone is not enough: the transpose of a
    square matrix has its operand's type."""
    x = op.operands[0]
    perm = _permutation(op)
    if perm == list(range(len(perm))):
        return x
    t = mo_type(x)
    if t is None or x.type != op.results[0].type:
        return None
    if 0 in t.dims:
        return x  # no elements to move
    moved = [p for p in perm if t.dims[p] != 1]  # symbolic dims may be > 1
    return x if moved == sorted(moved) else None


def _transpose_of_transpose(op: ir.Operation) -> ir.Value | None:
    inner = defining_op(op.operands[0])
    if inner is None or inner.name != "mo.transpose":
        return None
    outer_perm, inner_perm = _permutation(op), _permutation(inner)
    composed = [inner_perm[p] for p in outer_perm]  # result dim i = x dim inner[outer[i]]
    x = inner.operands[0]
    if composed == list(range(len(composed))) and x.type == op.results[0].type:
        return x
    return _create(op, "mo.transpose", x, {"permutation": ir.DenseI64ArrayAttr.get(composed)})


def _create(op: ir.Operation, name: str, x: ir.Value, attributes: dict) -> ir.Value:
    new = ir.Operation.create(
        name,
        results=[op.results[0].type],
        operands=[x],
        attributes=attributes,
        loc=op.location,
        ip=ir.InsertionPoint(op),
    )
    return new.results[0]


# (op, rewrite) pairs, tried in order; the comment says what each one does.
IDENTITIES: list[tuple[str, Rewrite]] = [
    # x + 0 -> x (for floats the sign of a zero x is not kept, as in other graph compilers)
    ("mo.add", _keep_operand(0, 0)),
    # 0 + x -> x
    ("mo.add", _keep_operand(1, 0)),
    # x - 0 -> x
    ("mo.sub", _keep_operand(0, 0)),
    # x * 1 -> x
    ("mo.mul", _keep_operand(0, 1)),
    # 1 * x -> x
    ("mo.mul", _keep_operand(1, 1)),
    # x / 1 -> x
    ("mo.div", _keep_operand(0, 1)),
    # cast to the operand's own type -> x
    ("mo.cast", _same_type_operand),
    # broadcast_to the operand's own shape -> x
    ("mo.broadcast_to", _same_type_operand),
    # reshape to the operand's own shape -> x
    ("mo.reshape", _same_type_operand),
    # reshape(reshape(x)) -> reshape(x)
    ("mo.reshape", _reshape_of_reshape),
    # transpose by the identity permutation -> x
    ("mo.transpose", _identity_transpose),
    # transpose(transpose(x, p), q) -> transpose(x, p[q]), or x when that is the identity
    ("mo.transpose", _transpose_of_transpose),
]

_IDENTITIES_BY_OP: dict[str, list[Rewrite]] = {}
for _name, _rewrite in IDENTITIES:
    _IDENTITIES_BY_OP.setdefault(_name, []).append(_rewrite)


def _apply_identities(op: ir.Operation) -> ir.Value | None:
    for rewrite in _IDENTITIES_BY_OP.get(op.name, ()):
        value = rewrite(op)
        if value is not None:
            return value
    return None


def fold_once(module: ir.Module) -> bool:
    """One sweep of folding and identities over every block; True if anything changed."""
    changed = False
    with module.context, ir.Location.unknown():
        for block in list(blocks(module.operation)):
            for op in [o.operation for o in block.operations]:
                if not is_pure_mo_op(op) or op.name == "mo.constant":
                    continue
                value = evaluate(op)
                if value is not None:
                    const = create_constant(
                        value, op.results[0].type, loc=op.location, ip=ir.InsertionPoint(op)
                    )
                    replace_op(op, [const.results[0]])
                    changed = True
                    continue
                replacement = _apply_identities(op)
                if replacement is not None:
                    replace_op(op, [replacement])
                    changed = True
    return changed
