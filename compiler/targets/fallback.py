"""A target's run with the plain-loops fallback, shared by every target's ``lower``.

The schedule stages run on a copy's worth of risk: when one raises, the module is restored
from a snapshot taken before the run, ``"whole module: REASON"`` is recorded, and the target
runs again without its schedule stages (plain loops, always correct). ``MAX_SCHEDULE_DEBUG=1``
raises instead, and so does an error the caller calls fatal (one the plain pipeline would
meet just the same: a missing tool, a host function that touches device memory).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mlir import ir

from max.compiler.pipelines import stages as _stages
from max.compiler.targets import Target

log = logging.getLogger("max.compiler")


def lower_with_fallback(target: Target, module: ir.Module, options: dict[str, Any], *,
                        schedule: bool = True,
                        fatal: Callable[[Exception], bool] = lambda e: False) -> list[str]:
    """Runs ``target`` on ``module`` in place; returns the fallback records (each kernel left
    to plain loops, after ``"whole module: REASON"`` when the schedule failed)."""
    if not schedule:
        target.run(module, schedule=False, **options)
        return take_fallbacks(module)
    snapshot = module.operation.clone()
    try:
        target.run(module, **options)
        return take_fallbacks(module)
    except Exception as e:  # noqa: BLE001 - any schedule failure falls back to plain loops
        if _stages.schedule_debug() or fatal(e):
            raise
        reason = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        log.warning("the %s schedule failed (%s); the whole module runs as plain loops",
                    target.name, reason)
        restore(module, snapshot)
        _stages.set_fallbacks(module, [f"whole module: {reason}"])
        target.run(module, schedule=False, **options)
        return take_fallbacks(module)
    finally:
        snapshot.erase()


def take_fallbacks(module: ir.Module) -> list[str]:
    """The records ``mo-record-fallbacks`` left on the module, taken off it (and logged)."""
    records = _stages.fallbacks(module)
    if _stages.FALLBACKS_ATTR in module.operation.attributes:
        del module.operation.attributes[_stages.FALLBACKS_ATTR]
    if records:
        log.info("kernels left to plain loops: %s", "; ".join(records))
    return records


def restore(module: ir.Module, snapshot: ir.Operation) -> None:
    """Puts ``snapshot``'s body and attributes back into ``module``."""
    body = module.body
    for op in list(body.operations):
        op.operation.erase()
    with module.context, ir.InsertionPoint(body):
        for op in snapshot.regions[0].blocks[0].operations:
            op.operation.clone()
    # The module's own attributes too (a failed run may have set some, e.g. mo.fallbacks).
    # (Iterating an attribute map gives names here, NamedAttributes in older bindings.)
    attrs = module.operation.attributes
    for name in [getattr(a, "name", a) for a in list(attrs)]:
        del attrs[name]
    saved = snapshot.attributes
    for name in [getattr(a, "name", a) for a in list(saved)]:
        attrs[name] = saved[name]


__all__ = ["lower_with_fallback", "restore", "take_fallbacks"]
