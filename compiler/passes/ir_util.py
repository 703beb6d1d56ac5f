"""Small helpers the MO passes share: walking blocks, purity, replacing an op."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from mlir import ir

# Ops on these types order side effects; an op touching them is never pure.
_EFFECT_TYPE_PREFIXES = ("!mo.buffer<", "!mo.chain")


def blocks(op: ir.Operation) -> Iterator[ir.Block]:
    """Every block nested in ``op``, outer blocks first."""
    for region in op.regions:
        for block in region.blocks:
            yield block
            for inner in block.operations:
                yield from blocks(inner.operation)


def is_pure_mo_op(op: ir.Operation) -> bool:
    """An MO op without regions that neither reads nor writes buffers or chains, and has a
    result (an op without one exists for its effect: mo.print, a buffer store)."""
    if not op.name.startswith("mo.") or len(op.regions) != 0 or len(op.results) == 0:
        return False
    values = list(op.operands) + list(op.results)
    return not any(str(v.type).startswith(_EFFECT_TYPE_PREFIXES) for v in values)


def has_uses(value: ir.Value) -> bool:
    return next(iter(value.uses), None) is not None


def defining_op(value: ir.Value) -> ir.Operation | None:
    """The op that produces ``value``; None for a block argument."""
    owner = value.owner
    return None if isinstance(owner, ir.Block) else owner.operation


def replace_op(op: ir.Operation, values: Sequence[ir.Value]) -> None:
    """Replaces every use of ``op``'s results by ``values`` and erases ``op``."""
    for result, value in zip(op.results, values, strict=True):
        result.replace_all_uses_with(value)
    op.erase()
