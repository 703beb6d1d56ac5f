"""Small helpers the passes share: walking blocks and ops, nesting, purity, replacing an op."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from mlir import ir

from max.dialects.mo.opdefs import OPS
from max.dialects.mo.types import parse_tensor_type

# Ops on these types order side effects; an op touching them is never pure.
_EFFECT_TYPE_PREFIXES = ("!mo.buffer<", "!mo.chain")


def blocks(op: ir.Operation) -> Iterator[ir.Block]:
    """Every block nested in ``op``, outer blocks first."""
    for region in op.regions:
        for block in region.blocks:
            yield block
            for inner in block.operations:
                yield from blocks(inner.operation)


def walk_ops(op: ir.Operation) -> Iterator[ir.Operation]:
    """Every op nested in ``op`` (not ``op`` itself), each before the ops inside it.

    MLIR's walk collects them all before the first is given (a walk in Python, through the
    regions' and blocks' wrappers, took six times as long): ops inserted meanwhile are not
    visited, and an op erased before its turn must not be touched when it comes.
    """
    found: list[ir.Operation] = []

    def visit(inner: ir.Operation) -> ir.WalkResult:
        found.append(inner)
        return ir.WalkResult.ADVANCE

    op.walk(visit, ir.WalkOrder.PRE_ORDER)
    return iter(found[1:])  # the first is op itself


def unmark(module: ir.Module, attribute: str) -> None:
    """Removes ``attribute`` from every op (a walk in MLIR, not through Python wrappers)."""
    def visit(op: ir.Operation) -> ir.WalkResult:
        if attribute in op.attributes:
            del op.attributes[attribute]
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)


def is_within(op: ir.Operation | None, root: ir.Operation) -> bool:
    """Whether ``op`` is ``root`` or nested in it (``None``: no)."""
    while op is not None:
        if op == root:
            return True
        op = op.parent
    return False


def defined_within(value: ir.Value, root: ir.Operation) -> bool:
    """Whether ``value`` is defined in ``root``'s regions (an op result or a block argument
    there) or is a result of ``root``."""
    owner = value.owner
    return is_within(owner.owner if isinstance(owner, ir.Block) else as_op(owner), root)


# Control-flow ops and the attributes naming their bodies (max.dialects.mo.opdefs.flow).
_BODIES = {"mo.cond": ("then_fn", "else_fn"), "mo.while": ("pred_fn", "body_fn"),
           "mo.call": ("callee",)}


def is_pure_mo_op(op: ir.Operation) -> bool:
    """An MO op without regions that neither reads nor writes buffers or chains, and has a
    result (an op without one exists for its effect: mo.print, a buffer store). A
    control-flow op is pure only if its bodies are (a buffer a body touches is an operand
    of the op, but a body may also print)."""
    if not op.name.startswith("mo.") or len(op.regions) != 0 or len(op.results) == 0:
        return False
    values = list(op.operands) + list(op.results)
    if any(str(v.type).startswith(_EFFECT_TYPE_PREFIXES) for v in values):
        return False
    if op.name in _SIZE_DEFINERS and _may_bind_symbol(op):
        return False
    return op.name not in _BODIES or not _bodies_have_effects(op)


# Ops that may bind a symbol from data (mo.nonzero's count): removing one whose result is
# unused would leave the symbol unbound where later types use it.
_SIZE_DEFINERS = frozenset(name for name, d in OPS.items() if d.defines_dim is not None)


def _may_bind_symbol(op: ir.Operation) -> bool:
    try:
        dims = parse_tensor_type(op.results[0].type).dims
    except ValueError:
        return False  # not for this helper to report (the verifier does)
    return any(isinstance(d, str) and d.isidentifier() for d in dims)


def _bodies_have_effects(op: ir.Operation) -> bool:
    """Whether an op of a body ``op`` names is not pure (the verifier refuses recursion)."""
    module = op.parent
    while module is not None and module.name != "builtin.module":
        module = module.parent
    if module is None:
        return True
    names = {ir.FlatSymbolRefAttr(op.attributes[a]).value for a in _BODIES[op.name]
             if a in op.attributes}
    for fn in module.regions[0].blocks[0].operations:
        fn = fn.operation
        if fn.name != "func.func" or ir.StringAttr(fn.attributes["sym_name"]).value not in names:
            continue
        for block in fn.regions[0].blocks:
            for inner in block.operations:
                inner = inner.operation
                if inner.name != "func.return" and not is_pure_mo_op(inner):
                    return True
    return False


def has_uses(value: ir.Value) -> bool:
    return next(iter(value.uses), None) is not None


def as_op(owner: object) -> ir.Operation | None:
    """The Operation of an op or OpView (a value's or a use's ``owner``); None for a Block
    (the owner of a block argument) or None."""
    if isinstance(owner, ir.Operation):
        return owner
    return getattr(owner, "operation", None) if isinstance(owner, ir.OpView) else None


def defining_op(value: ir.Value) -> ir.Operation | None:
    """The op that produces ``value``; None for a block argument."""
    owner = value.owner
    return None if isinstance(owner, ir.Block) else owner.operation


def replace_op(op: ir.Operation, values: Sequence[ir.Value]) -> None:
    """Replaces every use of ``op``'s results by ``values`` and erases ``op``."""
    for result, value in zip(op.results, values, strict=True):
        result.replace_all_uses_with(value)
    op.erase()


def view_root(value: ir.Value) -> ir.Value:
    """The memref a chain of views (``memref.*`` ops of one source) starts from: a function
    argument, an allocation, or whatever else made it."""
    while True:
        op = as_op(value.owner)
        if op is None or not op.name.startswith("memref.") or op.name in (
                "memref.alloc", "memref.alloca") or not op.operands:
            return value
        value = op.operands[0]


def static_subview_offset(view: ir.Operation) -> int | None:
    """The element offset of a ``memref.subview`` of a static row-major memref, where its
    offsets and sizes are static and its strides 1; else None."""
    dyn = ir.ShapedType.get_dynamic_size()
    offsets = list(ir.DenseI64ArrayAttr(view.attributes["static_offsets"]))
    sizes = list(ir.DenseI64ArrayAttr(view.attributes["static_sizes"]))
    strides = list(ir.DenseI64ArrayAttr(view.attributes["static_strides"]))
    shape = ir.MemRefType(view.operands[0].type).shape
    if dyn in offsets + sizes + shape or any(s != 1 for s in strides):
        return None
    row_major = [math.prod(shape[i + 1:]) for i in range(len(shape))]
    return sum(o * s for o, s in zip(offsets, row_major))


def append_to_block(block: ir.Block, op: ir.Operation) -> None:
    """Moves ``op`` to the end of ``block`` (a block being filled: no terminator yet)."""
    ops = list(block.operations)
    if ops:
        op.move_after(ops[-1].operation)
    else:
        # An empty block: move in front of a placeholder, then drop it.
        from mlir.dialects import arith

        with ir.InsertionPoint(block), op.location:
            marker = arith.ConstantOp(ir.IndexType.get(), 0)
        op.move_before(marker.operation)
        marker.operation.erase()


def symbol_names(block: ir.Block) -> set[str]:
    """The ``sym_name`` of each op directly in ``block`` (a module's body): what a pass that
    adds helper symbols must not define again. (Not ``ir.SymbolTable``: while a graph is
    lowered its old and new functions share a name.)"""
    return {ir.StringAttr(op.operation.attributes["sym_name"]).value
            for op in block.operations if "sym_name" in op.operation.attributes}
