"""Targets: each one's pipeline as data, an ordered list of stages.

A stage is one of our registered passes (``compiler/passes/registry.py``) or an upstream MLIR
pipeline text; :meth:`Target.pipeline` gives the list as pipeline elements that ``max-opt``
accepts one by one, and :meth:`Target.run` runs it. A target module (``cpu.py``; the GPU
targets are others of the same shape: ``nvidia.py``, ``amd.py``) only lists stages: no
stage order is written anywhere else, in the compiler or in the tests. ``targets[name]``
finds one by name.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mlir import ir

from max.compiler.passes.registry import CompilationError, all_passes, pass_manager, \
    split_element


@dataclass(frozen=True)
class Stage:
    """One step of a target's pipeline.

    Attributes:
        element: a registered pass, or an upstream pipeline text.
        options: the run's options this (registered) pass takes, written after its name as
            ``mo-schedule-tensors{threads=2}``.
        schedule: part of the schedule; the plain-loops pipeline leaves it out.
        when: the name of a boolean option that must be set for the stage to run.
    """

    element: str
    options: tuple[str, ...] = ()
    schedule: bool = False
    when: str | None = None

    def text(self, options: dict[str, Any]) -> str:
        if not self.options:
            return self.element
        values = " ".join(f"{k}={_option_text(options[k])}" for k in self.options)
        return f"{self.element}{{{values}}}"


def _option_text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class Target:
    """A named pipeline: ``defaults`` are the options a run does not give."""

    name: str
    stages: tuple[Stage, ...]
    defaults: tuple[tuple[str, Any], ...] = ()

    def _options(self, options: dict[str, Any]) -> dict[str, Any]:
        merged = dict(self.defaults)
        unknown = set(options) - set(merged)
        if unknown:
            raise ValueError(f"target {self.name!r}: unknown options {sorted(unknown)} "
                             f"(options: {sorted(merged)})")
        merged.update({k: v for k, v in options.items() if v is not None})
        return merged

    def pipeline(self, *, schedule: bool = True, **options: Any) -> list[str]:
        """The pipeline elements of one run, in order."""
        return [text for _, text in self._steps(schedule, options)]

    def _steps(self, schedule: bool, options: dict[str, Any]) -> list[tuple[Stage, str]]:
        opts = self._options(options)
        return [(s, s.text(opts)) for s in self.stages
                if (schedule or not s.schedule) and (s.when is None or opts.get(s.when))]

    def run(self, module: ir.Module, *, schedule: bool = True, after: str | None = None,
            until: str | None = None, **options: Any) -> None:
        """Runs the pipeline on ``module`` in place.

        ``after`` / ``until``: start after / stop after the first stage whose element starts
        with this text (tests and ``max-opt`` users look at the module between two stages).
        The module is verified after each schedule stage: the pass manager does not verify
        between passes (:func:`pass_manager`), and a schedule that leaves invalid IR must
        raise here, where the plain-loops fallback catches it, not crash a later pass.
        """
        steps = self._steps(schedule, options)
        elements = [text for _, text in steps]
        first = 0 if after is None else self._index(elements, after) + 1
        last = len(elements) if until is None else self._index(elements, until) + 1
        for stage, element in steps[first:last]:
            run_element(module, element)
            if stage.schedule:
                _verify(module, element)

    def _index(self, elements: list[str], name: str) -> int:
        for i, e in enumerate(elements):
            if e.startswith(name):
                return i
        raise ValueError(f"target {self.name!r} has no stage {name!r}: {elements}")


def run_element(module: ir.Module, element: str) -> None:
    """Runs one pipeline element: a registered pass (with its options), else upstream passes."""
    name, option_text = split_element(element)
    ours = all_passes()
    if name in ours:
        info = ours[name]
        options = info.parse_options(option_text or "")
        info.fn(module, **options)
        return
    try:
        with module.context:
            pass_manager(element).run(module.operation)
    except Exception as e:  # MLIRError carries the diagnostics naming the failing op
        raise CompilationError(f"pipeline stage {element.split(',')[0]!r}... failed: {e}") \
            from e


def _verify(module: ir.Module, element: str) -> None:
    try:
        module.operation.verify()
    except ir.MLIRError as e:
        first = e.error_diagnostics[0].message if e.error_diagnostics else str(e)
        raise CompilationError(f"stage {split_element(element)[0]!r} left a module that does "
                               f"not verify: {first}") from e


# Target name -> (module, attribute): imported on first use (a target module imports this one).
TARGET_MODULES: dict[str, tuple[str, str]] = {
    "cpu": ("max.compiler.targets.cpu", "CPU"),
    "nvidia": ("max.compiler.targets.nvidia", "NVIDIA"),
    "amd": ("max.compiler.targets.amd", "AMD"),
}


class _Targets(Mapping[str, Target]):
    """Every target by name: ``targets["nvidia"]``."""

    def __getitem__(self, name: str) -> Target:
        if name not in TARGET_MODULES:
            raise KeyError(f"unknown target {name!r} (targets: {', '.join(TARGET_MODULES)})")
        module, attribute = TARGET_MODULES[name]
        target = getattr(importlib.import_module(module), attribute)
        assert isinstance(target, Target)
        return target

    def __iter__(self) -> Iterator[str]:
        return iter(TARGET_MODULES)

    def __len__(self) -> int:
        return len(TARGET_MODULES)


targets: Mapping[str, Target] = _Targets()

__all__ = ["Stage", "Target", "run_element", "targets"]
