"""A transform script applied to a few ops in a module of their own, then put back.

``transform.structured.fuse_into_containing_op`` builds a diagnostic for every producer it
fuses, printing the producer and the loop; printing an op numbers and verifies the whole module
around it. So each fusion cost time in proportion to the graph's size, and a schedule of many
fusions (one row group per layer norm and softmax) grew with the square of the graph: a 2-layer
MiniLM spent 5.1 of its 5.6 s of schedule there, a 6-layer one most of a minute.

:func:`apply_outlined` moves the ops a script works on into a function of their own (the values
they read from outside become its arguments, their results used outside its results), runs
the script on that small module, and clones what comes out back in place of the originals.
The same ops in another layer print the same once their schedule marks are numbered from 0
(:func:`renumber_marks`): the callers transform such a module once and take its result again.
"""

from __future__ import annotations

from collections.abc import Callable

from mlir import ir
from mlir.dialects import func

from max.compiler.passes.ir_util import as_op, is_within
from max.compiler.pipelines.thread_gate import NT2_ATTR, NT_ATTR

_CLONED = ("tensor.empty", "arith.constant")  # cheap, pure: copied into the outlined function
# The integer marks a schedule script matches ops by: the op's schedule id, and the run-time
# thread counts of the op with that id (thread_gate).
MARKS = ("mo.sid", NT_ATTR, NT2_ATTR)


def _within(v: ir.Value, roots: list[ir.Operation]) -> bool:
    """Whether ``v`` is defined by one of ``roots`` or inside one of them."""
    owner = v.owner
    op = owner.owner if isinstance(owner, ir.Block) else as_op(owner)
    while op is not None:
        if any(op == r for r in roots):
            return True
        op = op.parent
    return False


def _operands_deep(op: ir.Operation) -> list[ir.Value]:
    found: list[ir.Value] = []

    def visit(o: ir.Operation) -> ir.WalkResult:
        found.extend(o.operands)
        return ir.WalkResult.ADVANCE

    op.walk(visit)
    return found


def _remap(op: ir.Operation, mapping: dict[ir.Value, ir.Value]) -> None:
    """Sets every operand of ``op`` (nested ones too) found in ``mapping`` to its image."""
    def visit(o: ir.Operation) -> ir.WalkResult:
        for i, v in enumerate(o.operands):
            new = mapping.get(v)
            if new is not None:
                o.operands[i] = new
        return ir.WalkResult.ADVANCE

    op.walk(visit)


def marks_in(ops: list[ir.Operation]) -> list[int]:
    """The values of the :data:`MARKS` on ``ops`` and the ops nested in them, sorted."""
    found: set[int] = set()

    def visit(o: ir.Operation) -> ir.WalkResult:
        for name in MARKS:
            if name in o.attributes:
                found.add(ir.IntegerAttr(o.attributes[name]).value)
        return ir.WalkResult.ADVANCE

    for op in ops:
        op.walk(visit)
    return sorted(found)


def renumber_marks(op: ir.Operation, numbers: dict[int, int]) -> None:
    """Sets each of the :data:`MARKS` on ``op`` or nested in it that ``numbers`` maps to its
    image."""
    i64 = ir.IntegerType.get_signless(64, op.context)

    def visit(o: ir.Operation) -> ir.WalkResult:
        for name in MARKS:
            if name in o.attributes:
                image = numbers.get(ir.IntegerAttr(o.attributes[name]).value)
                if image is not None:
                    o.attributes[name] = ir.IntegerAttr.get(i64, image)
        return ir.WalkResult.ADVANCE

    op.walk(visit)


def apply_outlined(ops: list[ir.Operation], apply: Callable[[ir.Module], ir.Module | None],
                   fix: Callable[[ir.Operation], None] | None = None) -> bool:
    """Runs ``apply`` (a transform script application) on ``ops`` outlined into a module of
    their own, and replaces them by the result. ``ops``: in program order, all in one block;
    the last is the only one whose results may be used outside them. Returns False (nothing
    changed) where they do not fit that shape.

    ``apply`` changes the module it is given and returns None, or returns another module to
    take the result from: an earlier result for a module that printed the same (a layer's
    row group transformed once for every layer, see row_fusion). ``fix`` is called on each
    op put back."""
    last = ops[-1]
    if any(op.block != last.block for op in ops):
        return False
    for op in ops[:-1]:
        for r in op.results:
            if any(not any(is_within(as_op(u.owner), o) for o in ops) for u in r.uses):
                return False
    # Empty tensors and constants are cloned along, not passed in: a fusion may fold them
    # (a fused producer's full-size tensor.empty becomes a row-sized one).
    extra: list[ir.Operation] = []
    for op in ops:
        for v in _operands_deep(op):
            d = as_op(v.owner)
            if (d is not None and d.name in _CLONED and not _within(v, ops)
                    and not any(d == e for e in extra)):
                extra.append(d)
    extra.sort(key=lambda d: 0 if d.name == "arith.constant" else 1)  # sizes before empties
    cloned = extra + ops
    inputs: dict[ir.Value, None] = {}  # ordered
    for op in cloned:
        for v in _operands_deep(op):
            if v not in inputs and not _within(v, cloned):
                inputs[v] = None
    ctx = last.context
    with ctx, last.location:
        small = ir.Module.create()
        with ir.InsertionPoint(small.body):
            fn = func.FuncOp("outlined", ([v.type for v in inputs],
                                          [r.type for r in last.results]))
        entry = fn.add_entry_block()
        mapping = dict(zip(inputs, entry.arguments, strict=True))
        with ir.InsertionPoint(entry):
            clones = []
            for op in cloned:
                c = op.clone()
                clones.append(c)
                mapping.update(zip(op.results, c.results, strict=True))
            for c in clones:
                _remap(c.operation, mapping)
            func.ReturnOp(list(clones[-1].results))
        result = apply(small) or small
        block = result.body.operations[0].regions[0].blocks[0]  # the function "outlined"
        body = [o.operation for o in block.operations]
        back = dict(zip(block.arguments, inputs, strict=True))
        with ir.InsertionPoint(last):
            for o in body[:-1]:
                c = o.clone()
                back.update(zip(o.results, c.results, strict=True))
                _remap(c.operation, back)
                if fix is not None:
                    fix(c.operation)
        returned = [back[v] for v in body[-1].operands]
    for r, image in zip(last.results, returned, strict=True):
        r.replace_all_uses_with(image)
    for op in reversed(ops):
        op.erase()
    return True


__all__ = ["MARKS", "apply_outlined", "marks_in", "renumber_marks"]
