"""``mo-verify``: the MO verifier as a named pass (``max-opt --mo-verify``).

The checks live in :mod:`max.dialects.mo.verify`, beside the op definitions whose type rules
they apply; the graph builders, ``Graph(path=)`` and the compile worker call them directly.
"""

from __future__ import annotations

from mlir import ir

from max.compiler.passes.registry import CompilationError, register_pass
from max.dialects.mo.verify import VerificationError, verify_module


@register_pass("mo-verify", "check every MO op's result type against its op definition's rule")
def mo_verify(module: ir.Module) -> None:
    """Raises CompilationError naming the op, the operand and the mismatch."""
    try:
        verify_module(module, strict=False)
    except VerificationError as e:
        raise CompilationError(str(e)) from None
