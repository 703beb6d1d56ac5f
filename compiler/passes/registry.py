"""The named passes of our compiler, as ``max-opt`` and the pipelines find them.

A pass is a function ``fn(module: ir.Module) -> None`` that rewrites the module in place and
raises ``CompilationError`` on input it cannot handle. Passes register themselves at import
time with :func:`register_pass`; :func:`all_passes` imports the modules that define them.
Upstream MLIR passes are not registered here: a pipeline string reaches them through
``mlir.passmanager.PassManager.parse``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from mlir import ir

PassFn = Callable[[ir.Module], None]


class CompilationError(Exception):
    """A module could not be compiled; the message names the op and the reason."""


@dataclass(frozen=True)
class PassInfo:
    name: str
    fn: PassFn
    description: str


_PASSES: dict[str, PassInfo] = {}

# Modules whose import registers passes; extend when adding a file of passes.
PASS_MODULES = (
    "max.compiler.passes.canonicalize",
    "max.compiler.passes.verify",
    "max.compiler.passes.externalize",
    "max.compiler.passes.external_weights",
    "max.compiler.lowering",
    "max.compiler.pipelines.cpu",
    "max.compiler.passes.profile_kernels",
)


def register_pass(name: str, description: str) -> Callable[[PassFn], PassFn]:
    """Decorator: registers ``fn`` under ``name`` (names are mlir-opt style, ``mo-fold``)."""

    def wrap(fn: PassFn) -> PassFn:
        if name in _PASSES and _PASSES[name].fn is not fn:
            raise ValueError(f"pass {name!r} registered twice")
        _PASSES[name] = PassInfo(name, fn, description)
        return fn

    return wrap


def all_passes() -> dict[str, PassInfo]:
    """Every registered pass, by name (imports the modules that define them)."""
    for module in PASS_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:  # a real import error inside an existing pass module
                raise
    return dict(sorted(_PASSES.items()))


def get_pass(name: str) -> PassInfo:
    passes = all_passes()
    if name not in passes:
        raise KeyError(name)
    return passes[name]
