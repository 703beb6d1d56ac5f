"""Custom kernels: the user's ``.mlir`` files that ``mo.custom`` ops call.

The files come with the compile request (``InferenceSession(custom_extensions=...)``) and are
parsed here, in the compile worker: they are outside input, and a bad file may abort MLIR. A
kernel is a public ``func.func`` of one of the files (names unique across the files); its
private functions are helpers that the file's own kernels may ``func.call``. Bodies use the
upstream dialects the CPU pipeline lowers (:data:`DIALECTS`), in one block.

:class:`KernelLibrary` holds the parsed files; :func:`use_library` makes one current while
``mo-to-linalg`` runs, and ``lowering/custom.py`` links each kernel an op calls (and the helpers
it calls) into the module being compiled, as private functions under fresh names (no clash
with the graph's own symbols), which the CPU pipeline inlines.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from mlir import ir

from max.compiler.passes.registry import CompilationError

#: The dialects a kernel body may use: what the CPU pipeline bufferizes and lowers.
DIALECTS = frozenset({"affine", "arith", "bufferization", "func", "index", "linalg", "math",
                      "memref", "scf", "tensor", "ub", "vector"})
# Ops of those dialects that name symbols other than through func.call (renaming would miss
# them), or call through pointers.
_REFUSED_OPS = frozenset({"func.constant", "func.call_indirect", "memref.get_global"})
# Marks a linked copy with where it came from: "SOURCE_INDEX/NAME".
LINKED_ATTR = "mo.custom_kernel"
_PREFIX = "__mo_custom_"


@dataclass
class _Source:
    index: int
    label: str
    module: ir.Module
    functions: dict[str, ir.Operation] = field(default_factory=dict)


def _name(fn: ir.Operation) -> str:
    return ir.StringAttr(fn.attributes["sym_name"]).value


def _is_private(fn: ir.Operation) -> bool:
    return ("sym_visibility" in fn.attributes
            and ir.StringAttr(fn.attributes["sym_visibility"]).value == "private")


@dataclass(frozen=True)
class Kernel:
    """One kernel: its function (in its parsed file) and the file's label."""

    name: str
    label: str
    fn: ir.Operation

    @property
    def where(self) -> str:
        """``custom kernel @NAME (FILE)``, for messages."""
        return f"custom kernel @{self.name} ({self.label})"


class KernelLibrary:
    """The kernels of a list of ``(label, text)`` sources, parsed in the current Context.

    Raises:
        CompilationError: a file does not parse, holds anything but ``func.func`` at its top
            level, or two files define the same kernel.
    """

    def __init__(self, sources: Sequence[tuple[str, str]]) -> None:
        self._sources: list[_Source] = []
        self._kernels: dict[str, tuple[_Source, ir.Operation]] = {}
        for index, (label, text) in enumerate(sources):
            try:
                module = ir.Module.parse(text)
            except ir.MLIRError as e:
                message = str(e).replace('"-":', f"{label}:")
                raise CompilationError(f"custom extension {label}: could not parse it: "
                                       f"{message}") from None
            source = _Source(index, label, module)
            self._sources.append(source)
            for op in module.body.operations:
                op = op.operation
                if op.name != "func.func":
                    raise CompilationError(f"custom extension {label}: top-level {op.name}: a "
                                           "kernel file holds func.func functions only")
                name = _name(op)
                source.functions[name] = op
                if _is_private(op):
                    continue
                if name in self._kernels:
                    raise CompilationError(f"custom kernel @{name} is defined in both "
                                           f"{self._kernels[name][0].label} and {label}")
                self._kernels[name] = (source, op)

    def names(self) -> list[str]:
        """The kernels' names, sorted."""
        return sorted(self._kernels)

    def kernel(self, name: str) -> Kernel:
        """The kernel ``name``; a CompilationError listing the kernels if there is none."""
        if name not in self._kernels:
            labels = ", ".join(s.label for s in self._sources) or "none given"
            known = ", ".join(f"@{n}" for n in self.names()) or "none"
            raise CompilationError(f"custom kernel @{name} not found in the custom extensions "
                                   f"({labels}; kernels: {known})")
        source, fn = self._kernels[name]
        return Kernel(name, source.label, fn)

    def link(self, module: ir.Operation, name: str) -> str:
        """Copies kernel ``name`` and the helpers it calls into ``module`` (a
        ``builtin.module``) as private functions, once per module; returns the kernel's
        symbol there."""
        source, _ = self._kernels[name]
        body = module.regions[0].blocks[0]
        linked: dict[str, str] = {}  # "INDEX/NAME" -> symbol in module
        taken: set[str] = set()
        for op in body.operations:
            op = op.operation
            if "sym_name" in op.attributes:
                taken.add(_name(op))
            if LINKED_ATTR in op.attributes:
                linked[ir.StringAttr(op.attributes[LINKED_ATTR]).value] = _name(op)
        new: list[ir.Operation] = []
        renames: dict[str, str] = {}
        todo = [name]
        while todo:
            fname = todo.pop()
            key = f"{source.index}/{fname}"
            if fname in renames:
                continue
            if key in linked:
                renames[fname] = linked[key]
                continue
            fn = source.functions[fname]
            callees = _check_body(source, name, fname)
            symbol = _fresh(_PREFIX + fname, taken)
            taken.add(symbol)
            renames[fname] = symbol
            clone = fn.clone(ip=ir.InsertionPoint(body))
            clone.attributes["sym_name"] = ir.StringAttr.get(symbol)
            clone.attributes["sym_visibility"] = ir.StringAttr.get("private")
            clone.attributes[LINKED_ATTR] = ir.StringAttr.get(key)
            new.append(clone)
            for callee in callees:
                if callee not in source.functions:
                    raise CompilationError(f"custom kernel @{name} ({source.label}): @{fname} "
                                           f"calls @{callee}, which the file does not define")
                todo.append(callee)
        for clone in new:
            _rename_calls(clone, renames)
        return renames[name]


def _fresh(base: str, taken: set[str]) -> str:
    symbol, k = base, 0
    while symbol in taken:
        k += 1
        symbol = f"{base}_{k}"
    return symbol


def _check_body(source: _Source, kernel: str, fname: str) -> list[str]:
    """Checks what the pipeline needs of a kernel or helper; returns the functions it calls."""
    where = f"custom kernel @{kernel} ({source.label})"
    if fname != kernel:
        where += f": helper @{fname}"
    target = source.functions[fname]
    blocks = list(target.regions[0].blocks)
    if not blocks:
        raise CompilationError(f"{where} is external (a declaration without a body): kernels "
                               "and the functions they call must be defined in the file")
    if len(blocks) != 1:
        raise CompilationError(f"{where} has {len(blocks)} blocks; a kernel body is one block "
                               "(use scf for control flow)")
    callees: list[str] = []
    problem: list[str] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        dialect = op.name.split(".", 1)[0]
        if dialect not in DIALECTS or op.name in _REFUSED_OPS:
            problem.append(op.name)
            return ir.WalkResult.INTERRUPT
        if op.name == "func.call":
            callees.append(ir.FlatSymbolRefAttr(op.attributes["callee"]).value)
        return ir.WalkResult.ADVANCE

    for op in blocks[0].operations:
        op.operation.walk(visit)
        if problem:
            allowed = ", ".join(sorted(DIALECTS))
            raise CompilationError(f"{where} uses {problem[0]} at {op.operation.location}: "
                                   f"kernels may use the dialects {allowed} (no "
                                   f"{', '.join(sorted(_REFUSED_OPS))})")
    return callees


def _rename_calls(fn: ir.Operation, renames: dict[str, str]) -> None:
    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name == "func.call":
            callee = ir.FlatSymbolRefAttr(op.attributes["callee"]).value
            op.attributes["callee"] = ir.FlatSymbolRefAttr.get(renames[callee])
        return ir.WalkResult.ADVANCE

    fn.walk(visit)


_current: ContextVar[KernelLibrary | None] = ContextVar("max_custom_kernels", default=None)


@contextmanager
def use_library(library: KernelLibrary | None) -> Iterator[None]:
    """Makes ``library`` the kernels that ``mo.custom`` ops call while the block runs."""
    token = _current.set(library)
    try:
        yield
    finally:
        _current.reset(token)


def current_library() -> KernelLibrary | None:
    """The kernels set by :func:`use_library`, or None."""
    return _current.get()
