"""``mo.custom``: a call of a user kernel, a ``func.func`` from a ``.mlir`` file given at load.

The op names the kernel (``symbol``) and carries its parameters (``parameters``, a JSON object
of names to bool, int or float). Its operands are tensors and buffers (a kernel may update a
buffer in place: ``ops.inplace_custom``), its results tensors; both are split into the
variadic groups of :mod:`~max.dialects.mo.opdefs.flow` (runs of equal types). Only the kernel
knows its signature, and the kernel is not part of the module: the MO verifier checks the
operand kinds, the result types and the parameters here, the compiler checks the kernel's
signature against the op when it links the kernel in (``compiler/lowering/custom.py``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from max.dialects.mo.opdefs.base import STR, AttrDef, OpDef, TypeLike, TypeRuleError
from max.dialects.mo.opdefs.flow import ARGS

#: A parameter's value as the op holds it.
Parameter = bool | int | float


def parameters_text(op: str, parameters: Mapping[str, Any] | None) -> str:
    """The ``parameters`` attribute: a JSON object with sorted keys.

    Raises:
        TypeError: a name that is not a string, or a value that is not a bool, int or float
            (``str`` and ``DType`` parameters select Mojo code and have no MLIR meaning).
    """
    out: dict[str, Parameter] = {}
    for name, value in (parameters or {}).items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"{op}: parameter names must be non-empty strings, got {name!r}")
        if isinstance(value, np.bool_ | np.integer | np.floating):
            value = value.item()  # a numpy scalar: its Python value
        if not isinstance(value, bool | int | float):
            raise TypeError(f"{op}: parameter {name!r} is a {type(value).__name__}; MLIR "
                            f"kernels take bool, int and float parameters only")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{op}: parameter {name!r} is {value}; it must be finite")
        out[name] = value
    return json.dumps(out, sort_keys=True)


def parse_parameters(op: str, text: str) -> dict[str, Parameter]:
    """The parameters an op's attribute holds, checked as :func:`parameters_text` writes them.

    Raises:
        TypeRuleError: not a JSON object of names to finite bools, ints and floats.
    """
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except ValueError as e:
        raise TypeRuleError(f"{op}: attribute parameters is not JSON: {e}") from None
    if not isinstance(value, dict):
        raise TypeRuleError(f"{op}: attribute parameters must be a JSON object, got {text!r}")
    for name, v in value.items():
        if not name or type(v) not in (bool, int, float):
            raise TypeRuleError(f"{op}: parameter {name!r} = {v!r} is not a bool, int or "
                                "float")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number")


def check_symbol(op: str, symbol: str) -> None:
    """The kernel name: non-empty, no whitespace or quotes (it is a function's name)."""
    if not symbol or any(c.isspace() or c in "\"\\" for c in symbol):
        raise TypeRuleError(f"{op}: kernel name {symbol!r} is not a function name")


def _module_checked(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any],
                    result: TypeLike | None) -> None:
    """The result types are the op's own (out_types); the verifier checks the attributes."""
    raise TypeRuleError(f"{op}: checked by the module verifier and against the kernel when "
                        "it is compiled")


def defs() -> list[OpDef]:
    return [
        OpDef("mo.custom", ARGS, (AttrDef("symbol", STR), AttrDef("parameters", STR)),
              check=_module_checked),
    ]
