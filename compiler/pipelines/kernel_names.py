"""Which MO ops a lowered op came from, read from its locations.

The lowering locates every op it builds at its MO op's name (``loc("mo.add"(...))``, see
``lowering/body.py``). Fusion keeps the consumer's location on the fused op and each body op's own,
so the MO ops of a kernel are the names found on the op and on everything nested in it.
"""

from __future__ import annotations

from mlir import ir


def location_names(loc: ir.Location) -> list[str]:
    """The ``mo.*`` names in a location (fused locations: each part's)."""
    if loc.is_a_name():
        name = loc.name_str
        return [name] if name.startswith("mo.") else location_names(loc.child_loc)
    if loc.is_a_fused():
        return [n for part in loc.locations for n in location_names(part)]
    if loc.is_a_callsite():
        return location_names(loc.callee)
    return []


def mo_op_names(op: ir.Operation) -> list[str]:
    """The MO op names of ``op`` and of the ops nested in it, each once, producers first."""
    seen: dict[str, None] = {}

    def visit(inner: ir.Operation) -> ir.WalkResult:
        for name in location_names(inner.location):
            seen.setdefault(name, None)
        return ir.WalkResult.ADVANCE

    op.walk(visit, ir.WalkOrder.POST_ORDER)  # a fused op: its body (producers) first
    return list(seen)


def is_plain_op(name: str) -> bool:
    """Whether an op of this name, still present after the schedule (at the memref level),
    becomes plain scalar loops: every linalg op but the parts of another's body."""
    return name.startswith("linalg.") and name not in ("linalg.yield", "linalg.index")


def kernel_label(op: ir.Operation) -> str:
    """A short name for the kernel ``op`` computes: its MO ops joined by ``+`` (max. 6)."""
    names = mo_op_names(op)
    if not names:
        return op.name
    short = [n.removeprefix("mo.") for n in names]
    return "+".join(short[:6]) + ("+..." if len(short) > 6 else "")


__all__ = ["is_plain_op", "kernel_label", "location_names", "mo_op_names"]
