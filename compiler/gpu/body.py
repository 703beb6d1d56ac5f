"""Putting a ``linalg.generic``'s body into a kernel written as MLIR text.

A schedule writes its kernel as text (``KernelText``) in which each application of the op's
body is a placeholder call ``func.call @__mo_gpu_body(operands..., indices...)``. :func:`emit`
parses that text, clones the kernel in front of the op (its arguments become the op's operands),
and replaces each placeholder by a copy of the body: the body's block arguments become the
call's scalar operands, its ``linalg.index`` ops the call's index operands, and the call's
results the yielded values. The op is then erased.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlir import ir

from max.compiler.passes.registry import CompilationError

PLACEHOLDER = "__mo_gpu_body"


@dataclass
class KernelText:
    """MLIR text lines of a kernel under construction, with fresh SSA names."""

    lines: list[str] = field(default_factory=list)
    count: int = 0
    # Index constants, by value: written first (before the launch), so that any region of
    # the kernel may use them.
    constants: dict[int, str] = field(default_factory=dict)

    def fresh(self, hint: str = "v") -> str:
        self.count += 1
        return f"%{hint}{self.count}"

    def op(self, text: str, hint: str = "v") -> str:
        """Adds ``NAME = text`` and returns NAME."""
        name = self.fresh(hint)
        self.lines.append(f"{name} = {text}")
        return name

    def raw(self, text: str) -> None:
        self.lines.append(text)

    def const_index(self, value: int) -> str:
        if value not in self.constants:
            self.count += 1
            self.constants[value] = f"%c{self.count}"
        return self.constants[value]

    def body(self) -> str:
        """The text: the constants, then the lines, one per line (indented)."""
        consts = [f"{name} = arith.constant {value} : index"
                  for value, name in self.constants.items()]
        return "\n    ".join(consts + self.lines)


def body_block(generic: ir.Operation) -> ir.Block:
    return generic.regions[0].blocks[0]


def check_body(generic: ir.Operation) -> str | None:
    """Why the body cannot be copied into a kernel (None: it can)."""
    for op in body_block(generic).operations:
        if len(op.regions):
            return f"the body has a region op ({op.name})"
        # A load from a buffer of the function (a gather's table) reads device memory too:
        # once outlined, the buffer is a parameter of the kernel.
        if op.name in ("memref.load", "memref.dim"):
            continue
        if op.name.startswith(("func.", "memref.", "tensor.", "vector.", "llvm.")):
            return f"the body has {op.name}"
    return None


def emit(generic: ir.Operation, text: str) -> None:
    """Replaces ``generic`` by the kernel in ``text``.

    ``text`` is a module: a private declaration of ``@__mo_gpu_body`` and one function whose
    arguments are typed as ``generic``'s operands, whose body (without its return) is the
    kernel and its launch. The ops are cloned before ``generic`` in its function.
    """
    emit_group({PLACEHOLDER: generic}, text, list(generic.operands), generic)


def emit_group(bodies: dict[str, ir.Operation], text: str, values: list[ir.Value],
               before: ir.Operation) -> None:
    """Replaces the ops of ``bodies`` by the kernel in ``text``, cloned before ``before``.

    As :func:`emit`, for several ops: a call to ``@NAME`` is a copy of ``bodies[NAME]``'s
    body; the text function's arguments stand for ``values``.
    """
    try:
        tmp = ir.Module.parse(text)
    except ir.MLIRError as e:  # a bug in a schedule's text: name it, never a crash later
        raise CompilationError(f"GPU kernel text does not parse: {e}\n{text}") from e
    kernel_fn = tmp.body.operations[len(tmp.body.operations) - 1]
    entry = kernel_fn.regions[0].blocks[0]
    ip = ir.InsertionPoint(before)
    clones = []
    for op in entry.operations:
        if op.name == "func.return":
            continue
        clone = op.clone(ip)
        clones.append(clone)
        # A clone's region still uses the text's values defined before it (launch sizes, ...):
        # point every use (the text's own ones die with it) at the clone's results.
        for old, new in zip(op.results, clone.results):
            old.replace_all_uses_with(new)
    # The clones still use the text's arguments: point them at the op's operands.
    for arg, value in zip(entry.arguments, values):
        arg.replace_all_uses_with(value)
    calls: list[tuple[ir.Operation, ir.Operation]] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name == "func.call":
            callee = ir.FlatSymbolRefAttr(op.attributes["callee"]).value
            if callee in bodies:
                calls.append((bodies[callee], op))
        return ir.WalkResult.ADVANCE

    for clone in clones:
        clone.walk(visit)
    for generic, call in calls:
        _inline_body(generic, call)
    kernel_fn.erase()
    for generic in bodies.values():
        generic.erase()


def _inline_body(generic: ir.Operation, call: ir.Operation) -> None:
    block = body_block(generic)
    args = list(block.arguments)
    operands = list(call.operands)
    mapping: dict[ir.Value, ir.Value] = dict(zip(args, operands[:len(args)]))
    indices = operands[len(args):]
    ip = ir.InsertionPoint(call)
    for op in block.operations:
        if op.name == "linalg.yield":
            for result, value in zip(call.results, op.operands):
                result.replace_all_uses_with(mapping.get(value, value))
            break
        if op.name == "linalg.index":
            dim = ir.IntegerAttr(op.attributes["dim"]).value
            mapping[op.results[0]] = indices[dim]
            continue
        clone = op.clone(ip)
        for i, operand in enumerate(clone.operands):
            if operand in mapping:
                clone.operands[i] = mapping[operand]
        for old, new in zip(op.results, clone.results):
            mapping[old] = new
    call.erase()


__all__ = ["PLACEHOLDER", "KernelText", "body_block", "check_body", "emit", "emit_group"]
