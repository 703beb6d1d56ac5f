"""mo.print -> C ``printf`` calls at run time; mo.transfer -> its operand.

The compiled ``.so`` links the C library, so printing is a call to ``printf`` (LLVM dialect,
declared once per module) from small private helpers: one per constant text (the label), one
per element kind (``%lld``, ``%llu``, ``%.9g``, ``%.17g``). Each print ends with
``fflush(NULL)``: the C library's stdout buffer is not Python's, and output must appear in
the order the program ran even when stdout is a pipe. The element loop is an ``scf.for`` over
the tensor collapsed to one dim; loops and calls have effects that no pass reorders.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, func, scf, tensor

from max.compiler.lowering.context import LoweringContext, kind_of
from max.compiler.lowering.float8 import decode, is_float8
from max.compiler.lowering.registry import lowering
from max.compiler.passes.ir_util import symbol_names

_DECLS = {
    "printf": "llvm.func @printf(!llvm.ptr, ...) -> i32",
    "fflush": "llvm.func @fflush(!llvm.ptr) -> i32",
}
# helper name -> (argument type, printf format)
_NUMBER = {
    "__mo_print_i64": ("i64", "%lld"),
    "__mo_print_u64": ("i64", "%llu"),
    "__mo_print_g9": ("f64", "%.9g"),
    "__mo_print_g17": ("f64", "%.17g"),
}


def _c_string(text: str) -> tuple[str, int]:
    """An MLIR string literal of ``text`` + NUL (every byte escaped) and its byte count."""
    data = text.encode() + b"\0"
    return "".join(f"\\{b:02X}" for b in data), len(data)


def _global(name: str, text: str) -> str:
    literal, n = _c_string(text)
    return (f'llvm.mlir.global private constant @{name}("{literal}") {{addr_space = 0 : i32}}'
            f" : !llvm.array<{n} x i8>")


def _printf_helper(name: str, fmt_name: str, arg_type: str | None, flush: bool) -> str:
    args = f"%v: {arg_type}" if arg_type else ""
    call_args = "%f, %v" if arg_type else "%f"
    call_types = f"!llvm.ptr, {arg_type}" if arg_type else "!llvm.ptr"
    body = [f"%f = llvm.mlir.addressof @{fmt_name} : !llvm.ptr",
            f"%r = llvm.call @printf({call_args}) vararg(!llvm.func<i32 (ptr, ...)>) : "
            f"({call_types}) -> i32"]
    if flush:
        body += ["%z = llvm.mlir.zero : !llvm.ptr",
                 "%s = llvm.call @fflush(%z) : (!llvm.ptr) -> i32"]
    return (f"func.func private @{name}({args}) {{\n  " + "\n  ".join(body)
            + "\n  return\n}")


class _Helpers:
    """Adds helper symbols to the module being lowered, each once."""

    def __init__(self, ctx: LoweringContext) -> None:
        self.anchor = ctx.op.parent  # the graph function: helpers go before it
        self.module = self.anchor.parent
        self.names = symbol_names(self.module.regions[0].blocks[0])

    def has(self, name: str) -> bool:
        return name in self.names

    def add(self, texts: dict[str, str]) -> None:
        """Parses the symbols together (a helper's text refers to its format and to printf:
        the parser verifies references) and moves the ones the module lacks into it."""
        parsed = ir.Module.parse("\n".join(texts.values()))
        for op in list(parsed.body.operations):
            name = ir.StringAttr(op.operation.attributes["sym_name"]).value
            if name not in self.names:
                op.operation.move_before(self.anchor.operation)
                self.names.add(name)

    def number(self, helper: str) -> str:
        arg_type, fmt = _NUMBER[helper]
        self.add({**_DECLS, "fmt": _global(helper + "_fmt", fmt),
                  helper: _printf_helper(helper, helper + "_fmt", arg_type, flush=False)})
        return helper

    def text(self, text: str, *, flush: bool = False) -> str:
        """A helper printing ``text`` (a fresh symbol per call site)."""
        k = 0
        while self.has(f"__mo_print_text{k}"):
            k += 1
        name = f"__mo_print_text{k}"
        self.add({**_DECLS, "fmt": _global(name + "_fmt", text.replace("%", "%%")),
                  name: _printf_helper(name, name + "_fmt", None, flush=flush)})
        return name


def _as_printable(v: ir.Value, mo_element: str) -> tuple[ir.Value, str]:
    """The scalar widened to what its printf helper takes, and that helper's name."""
    i64, f64 = ir.IntegerType.get_signless(64), ir.F64Type.get()
    kind = kind_of(mo_element)
    if kind == "float":
        if is_float8(mo_element):
            v = decode(v, mo_element)
        wide = mo_element == "f64"
        if not wide:
            v = arith.extf(f64, v)
        return v, "__mo_print_g17" if wide else "__mo_print_g9"
    width = ir.IntegerType(v.type).width
    if width < 64:
        v = arith.extsi(i64, v) if kind == "sint" else arith.extui(i64, v)
    return v, "__mo_print_u64" if kind == "uint" else "__mo_print_i64"


def _call(name: str, args: list[ir.Value]) -> None:
    func.CallOp([], ir.FlatSymbolRefAttr.get(name), args)


@lowering("mo.print")
def _print(ctx: LoweringContext) -> list[ir.Value]:
    (x,) = ctx.operands
    (mt,) = ctx.operand_types
    helpers = _Helpers(ctx)
    label = ir.StringAttr(ctx.attr("label")).value
    if ctx.int_attr("values") == 0:
        _call(helpers.text(label + "\n", flush=True), [])
        return []
    _call(helpers.text(label + "["), [])
    rank = len(mt.dims)
    if rank == 0:
        v, helper = _as_printable(tensor.extract(x, []), mt.element_type)
        _call(helpers.number(helper), [v])
    else:
        xt = ir.RankedTensorType(x.type)
        n = 1
        for d in xt.shape:
            n = ir.ShapedType.get_dynamic_size() if d < 0 or n < 0 else n * d
        flat_type = ir.RankedTensorType.get([n], xt.element_type)
        flat = tensor.collapse_shape(flat_type, x, [list(range(rank))]) if rank > 1 else x
        size = tensor.dim(flat, ctx.index(0))
        sep = helpers.text(", ")
        loop = scf.ForOp(ctx.index(0), size, ctx.index(1))
        with ir.InsertionPoint(loop.body):
            i = loop.induction_variable
            later = arith.cmpi(arith.CmpIPredicate.ne, i, ctx.index(0))
            branch = scf.IfOp(later)
            with ir.InsertionPoint(branch.then_block):
                _call(sep, [])
                scf.YieldOp([])
            v, helper = _as_printable(tensor.extract(flat, [i]), mt.element_type)
            _call(helpers.number(helper), [v])
            scf.YieldOp([])
    _call(helpers.text("]\n", flush=True), [])
    return []


@lowering("mo.transfer")
def _transfer(ctx: LoweringContext) -> list[ir.Value]:
    """The value itself: a graph runs on one target, whose kernels all see one memory (the
    host's on the CPU; on a GPU, the device's, the graph's host inputs and outputs crossing
    at the call). Tensors are values, so nothing can observe that no copy was made."""
    (x,) = ctx.operands
    return [x]


@lowering("mo.constant_external")
def _external(ctx: LoweringContext) -> list[ir.Value]:
    """Weights are graph arguments by the time graphs lower (``mo-external-weights``, which
    the compile worker runs first): one left here has no value to lower to."""
    name = ir.StringAttr(ctx.attr("name")).value
    raise ctx.error(f"external constant {name!r} is not bound: run mo-external-weights "
                    "before mo-to-linalg")
