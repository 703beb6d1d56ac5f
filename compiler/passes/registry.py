"""The named passes of our compiler, as ``max-opt`` and the pipelines find them.

A pass is a function ``fn(module: ir.Module, **options) -> None`` that rewrites the module in
place and raises ``CompilationError`` on input it cannot handle. Its options (``threads``, ...)
are declared with their types and written in pipelines as upstream passes write theirs:
``mo-schedule-tensors{threads=2}``. Passes register themselves at import
time with :func:`register_pass`; :func:`all_passes` imports the modules that define them.
Upstream MLIR passes are not registered here: a pipeline string reaches them through
:func:`pass_manager`.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlir.passmanager import PassManager

PassFn = Callable[..., None]


class CompilationError(Exception):
    """A module could not be compiled; the message names the op and the reason."""


@dataclass(frozen=True)
class PassInfo:
    name: str
    fn: PassFn
    description: str
    # Option name -> its type (int, bool or str); each is a keyword argument of ``fn``.
    options: Mapping[str, type] = field(default_factory=dict)

    def parse_options(self, text: str) -> dict[str, Any]:
        """``"threads=2 profile=true"`` -> ``{"threads": 2, "profile": True}``.

        Raises:
            ValueError: an unknown option or a value of the wrong type, named.
        """
        values: dict[str, Any] = {}
        for item in text.split():
            key, sep, value = item.partition("=")
            if not sep or key not in self.options:
                known = ", ".join(sorted(self.options)) or "none"
                raise ValueError(f"pass {self.name!r}: unknown option {item!r} (options: {known})")
            kind = self.options[key]
            try:
                if kind is bool:
                    if value not in ("true", "false", "1", "0"):
                        raise ValueError(value)
                    values[key] = value in ("true", "1")
                else:
                    values[key] = kind(value)
            except ValueError:
                raise ValueError(f"pass {self.name!r}: option {key}={value!r} is not "
                                 f"a {kind.__name__}") from None
        return values


_PASSES: dict[str, PassInfo] = {}

# Modules whose import registers passes; extend when adding a file of passes.
PASS_MODULES = (
    "max.compiler.passes.canonicalize",
    "max.compiler.passes.verify",
    "max.compiler.passes.externalize",
    "max.compiler.passes.external_weights",
    "max.compiler.lowering",
    "max.compiler.pipelines.cpu",
    "max.compiler.pipelines.stages",
    "max.compiler.targets.cpu",
    "max.compiler.gpu.stages",
    "max.compiler.targets.nvidia",
    "max.compiler.passes.profile_kernels",
    "max.compiler.pipelines.outline_kernels",
)


def register_pass(name: str, description: str,
                  options: Mapping[str, type] | None = None) -> Callable[[PassFn], PassFn]:
    """Decorator: registers ``fn`` under ``name`` (names are mlir-opt style, ``mo-fold``).

    ``options``: the keyword arguments ``fn`` takes from a pipeline, with their types.
    """

    def wrap(fn: PassFn) -> PassFn:
        if name in _PASSES and _PASSES[name].fn is not fn:
            raise ValueError(f"pass {name!r} registered twice")
        _PASSES[name] = PassInfo(name, fn, description, dict(options or {}))
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


_ELEMENT_RE = re.compile(r"([A-Za-z0-9_.-]+)(?:\{(.*)\})?", re.S)


def split_element(element: str) -> tuple[str, str | None]:
    """``"mo-x{threads=2}"`` -> ``("mo-x", "threads=2")``; ``"cse"`` -> ``("cse", None)``."""
    m = _ELEMENT_RE.fullmatch(element.strip())
    if m is None:
        return element.strip(), None
    return m.group(1), m.group(2)


#: ``MAX_VERIFY_EACH=1``: verify the module after every upstream pass, as mlir-opt does.
VERIFY_EACH_ENV = "MAX_VERIFY_EACH"


def verify_each() -> bool:
    """Whether pipelines verify the module after every pass (``$MAX_VERIFY_EACH``; max-opt
    and the test suite turn it on)."""
    return os.environ.get(VERIFY_EACH_ENV, "") not in ("", "0")


def pass_manager(pipeline: str) -> PassManager:
    """``builtin.module(PIPELINE)`` parsed in the current context.

    The verifier runs after a pass only where :func:`verify_each`: after every upstream pass of
    the CPU target it took about a tenth of an encoder block's compile to the LLVM dialect. A
    compile still verifies its input (MO), the module after each schedule stage
    (``Target.run``) and its result (the LLVM dialect, then LLVM's own verifier in ``opt``);
    what an upstream pass breaks in between shows under ``MAX_VERIFY_EACH=1``.
    """
    pm = PassManager.parse(f"builtin.module({pipeline})")
    pm.enable_verifier(verify_each())
    return pm


def get_pass(name: str) -> PassInfo:
    passes = all_passes()
    if name not in passes:
        raise KeyError(name)
    return passes[name]
