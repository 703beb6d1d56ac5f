"""Creating MLIR Contexts with the MO dialect loaded."""

from __future__ import annotations

from functools import cache
from importlib import resources

from mlir import ir
from mlir._mlir_libs import _mlir
from mlir.dialects import irdl

# The bindings look for a Python module per dialect (`<prefix>.mo`) whenever they wrap an MO
# value or type, and retry the failed import every time: ~60 us per op built. Pointing them at
# this package makes the lookup succeed once.
if "max.dialects" not in _mlir.globals.dialect_search_modules:
    _mlir.globals.append_dialect_search_prefix("max.dialects")


@cache
def spec_text() -> str:
    """The IRDL source of the MO dialect."""
    return resources.files("max.dialects.mo").joinpath("mo.irdl.mlir").read_text()


def load(context: ir.Context) -> None:
    """Loads the MO dialect into ``context``; a no-op where it is loaded already."""
    if context.is_registered_operation("mo.constant"):
        return
    with context, ir.Location.unknown():
        irdl.load_dialects(ir.Module.parse(spec_text()))


def make_context() -> ir.Context:
    """A fresh Context with the upstream dialects and MO loaded."""
    context = ir.Context()
    load(context)
    return context
