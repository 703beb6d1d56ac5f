"""What a lowering rule sees: the op, its MO types, an insertion point and shared helpers."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, field

from mlir import ir
from mlir.dialects import arith, memref, tensor

from max.compiler.lowering.builders import index_constant
from max.compiler.passes.registry import CompilationError
from max.dialects.mo.types import Dim, MOTensorType

DYNAMIC = ir.ShapedType.get_dynamic_size()
# The largest size (in elements along one dim) that an op may compute from the data: a range
# from 0 to 2**60 must be an error, not a malloc that fails or exhausts memory.
MAX_DATA_SIZE = 2**31

# MO element spellings that are not builtin-signless: the sign lives in the MO type only.
_SIGNLESS = {f"{p}{w}": f"i{w}" for p in ("si", "ui") for w in (8, 16, 32, 64)}


def element_type(mo_element: str) -> ir.Type:
    """The builtin (signless) storage element type of an MO element spelling.

    bool is stored as i8 (0 or 1, numpy's layout): memrefs of i1 cannot be lowered to LLVM
    (MemRefToLLVM asserts on sub-byte stores). Scalar code works on i1 (see ``to_i1``).
    """
    if mo_element == "i1":
        return ir.IntegerType.get_signless(8)
    return ir.Type.parse(_SIGNLESS.get(mo_element, mo_element))


def to_i1(v: ir.Value) -> ir.Value:
    """A stored bool (i8 0/1) as an i1 scalar."""
    return arith.trunci(ir.IntegerType.get_signless(1), v)


def from_i1(v: ir.Value) -> ir.Value:
    """An i1 scalar as a stored bool (i8 0/1)."""
    return arith.extui(ir.IntegerType.get_signless(8), v)


def kind_of(mo_element: str) -> str:
    """One of "float", "sint", "uint", "bool": how arithmetic on the element behaves."""
    if mo_element == "i1":
        return "bool"
    if mo_element.startswith("si"):
        return "sint"
    if mo_element.startswith("ui"):
        return "uint"
    if mo_element.startswith(("f", "bf")):
        return "float"
    raise CompilationError(f"unsupported element type {mo_element}")


def builtin_tensor_type(t: MOTensorType) -> ir.RankedTensorType:
    """``!mo.tensor<f32, ["batch", 3]>`` -> ``tensor<?x3xf32>`` (bool -> i8 storage)."""
    shape = [d if isinstance(d, int) else DYNAMIC for d in t.dims]
    return ir.RankedTensorType.get(shape, element_type(t.element_type))


def builtin_memref_type(t: MOTensorType) -> ir.MemRefType:
    """``!mo.buffer<f32, ["batch", 3]>`` -> ``memref<?x3xf32>`` (identity layout)."""
    return ir.MemRefType.get(list(builtin_tensor_type(t).shape), element_type(t.element_type))


def builtin_type(t: MOTensorType) -> ir.Type:
    """The builtin type of an MO value: a memref for a buffer, else a tensor."""
    return builtin_memref_type(t) if t.kind == "buffer" else builtin_tensor_type(t)


class FunctionLowering:
    """Per-graph state: symbol bindings, cached dim values and the runtime checks."""

    def __init__(self, func_name: str, args: list[ir.Value], arg_types: list[MOTensorType]):
        self.func_name = func_name
        self.ip: ir.InsertionPoint | None = None
        self._bindings: dict[str, tuple[ir.Value, int]] = {}
        for value, t in zip(args, arg_types):
            for axis, d in enumerate(t.dims):
                if isinstance(d, str):
                    self._bindings.setdefault(_normalize(d), (value, axis))
        self._dims: dict[Dim, ir.Value] = {}
        # Symbols whose value an op computed (mo.nonzero's count): bound to that index value.
        self._defined: set[str] = set()
        self.checks: list[tuple[ir.Value, str]] = []

    def is_new_symbol(self, d: Dim) -> bool:
        """Whether ``d`` is a symbol that nothing has bound yet: an op like ``mo.nonzero``
        whose result has it binds it (:meth:`define`) instead of checking it."""
        return (isinstance(d, str) and d.isidentifier() and d not in self._bindings
                and d not in self._defined)

    def define(self, symbol: str, value: ir.Value) -> None:
        """Binds ``symbol`` to ``value`` (an index computed at run time, >= 0). It must be
        emitted in the graph's own block: every later use is dominated by it."""
        if not self.is_new_symbol(symbol):
            raise CompilationError(f"dim symbol {symbol!r} is bound twice in graph "
                                   f"{self.func_name!r}")
        self._defined.add(symbol)
        self._dims[symbol] = value

    def index(self, v: int) -> ir.Value:
        """An index constant."""
        return index_constant(v)

    def dim_value(self, d: Dim) -> ir.Value:
        """The runtime value (index) of a dim: static, bound symbol or algebraic expression."""
        key = d if isinstance(d, int) else _normalize(d)
        if key not in self._dims:
            self._dims[key] = self._emit_dim(key)
        return self._dims[key]

    def define_size(self, symbol: str, value: ir.Value, op: str) -> None:
        """Binds ``symbol`` to a size computed from the data (an index), as :meth:`define`,
        clamped below at 0 and checked against :data:`MAX_DATA_SIZE`: past it the check fails
        and the symbol is 0, so that no absurd size is ever allocated."""
        too_big = arith.cmpi(arith.CmpIPredicate.sgt, value, self.index(MAX_DATA_SIZE))
        self.add_check(too_big, f"{op}: the size {symbol} that the data gives exceeds "
                                f"{MAX_DATA_SIZE} (2**31) elements")
        zero = self.index(0)
        self.define(symbol, arith.select(too_big, zero, arith.maxsi(value, zero)))

    def _emit_dim(self, d: Dim) -> ir.Value:
        if isinstance(d, int):
            return self.index(d)
        if d in self._bindings:
            value, axis = self._bindings[d]
            if isinstance(value.type, ir.MemRefType):  # a buffer input
                return memref.dim(value, self.index(axis))
            return tensor.dim(value, self.index(axis))
        try:
            tree = ast.parse(d, mode="eval").body
        except SyntaxError as e:
            raise CompilationError(f"bad dim expression {d!r}") from e
        return self._emit_expr(tree, d)

    def _emit_expr(self, node: ast.expr, text: str) -> ir.Value:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return self.dim_value(int(node.value))
        if isinstance(node, ast.Name):
            if node.id not in self._bindings and node.id not in self._defined:
                raise CompilationError(
                    f"dim symbol {node.id!r} (in {text!r}) is not bound by any input of "
                    f"graph {self.func_name!r}")
            return self.dim_value(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return arith.subi(self.index(0), self._emit_expr(node.operand, text))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd):
            return self._emit_expr(node.operand, text)
        if isinstance(node, ast.BinOp):
            sub = ast.unparse(node)
            if _normalize(sub) in self._bindings:
                return self.dim_value(sub)
            lhs, rhs = self._emit_expr(node.left, text), self._emit_expr(node.right, text)
            ops = {ast.Add: arith.addi, ast.Sub: arith.subi, ast.Mult: arith.muli,
                   ast.FloorDiv: arith.floordivsi}
            fn = ops.get(type(node.op))
            if fn is not None:
                return fn(lhs, rhs)
        raise CompilationError(f"unsupported dim expression {text!r}")

    def add_check(self, flag: ir.Value, message: str) -> None:
        """Records a runtime check: ``flag`` (i1/i8 scalar, or a rank-0 i8 tensor) is 1 on failure."""
        self.checks.append((flag, message))


def _normalize(d: str) -> str:
    """Canonical spelling of a dim expression, so that "a*2" and "a * 2" share a binding."""
    try:
        return ast.unparse(ast.parse(d, mode="eval"))
    except SyntaxError:
        return d


@dataclass(frozen=True)
class LoweringContext:
    """Everything one rule needs; rules emit at the current insertion point."""

    op: ir.Operation
    operands: tuple[ir.Value, ...]
    operand_types: tuple[MOTensorType, ...]
    result_types: tuple[MOTensorType, ...]
    fn: FunctionLowering = field(repr=False)
    # The lowered values of the MO values defined so far in this block (for rules that look
    # through their producers, as concat does through a chain of concats).
    lowered: Mapping[ir.Value, ir.Value] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        """The op name, e.g. "mo.add"."""
        return self.op.name

    def error(self, reason: str) -> CompilationError:
        """A CompilationError naming this op."""
        return CompilationError(f"{self.op.name} at {self.op.location}: {reason}")

    def attr(self, name: str) -> ir.Attribute:
        """An attribute of the op; a missing one is a CompilationError."""
        if name not in self.op.attributes:
            raise self.error(f"missing attribute {name!r}")
        return self.op.attributes[name]

    def int_attr(self, name: str) -> int:
        """An integer attribute's value."""
        return ir.IntegerAttr(self.attr(name)).value

    def dense_ints(self, name: str) -> list[int]:
        """A DenseI64ArrayAttr (or DenseI32ArrayAttr) attribute's values."""
        a = self.attr(name)
        for cls in (ir.DenseI64ArrayAttr, ir.DenseI32ArrayAttr):
            if isinstance(a, cls):
                return list(cls(a))
        raise self.error(f"attribute {name!r} is not a dense int array")

    def axis(self, rank: int, name: str = "axis") -> int:
        """A non-negative axis attribute checked against ``rank``."""
        a = self.int_attr(name)
        if not 0 <= a < rank:
            raise self.error(f"{name} {a} out of range for rank {rank}")
        return a

    def index(self, v: int) -> ir.Value:
        """An index constant."""
        return self.fn.index(v)

    def dim_value(self, d: Dim) -> ir.Value:
        """The runtime index value of a dim."""
        return self.fn.dim_value(d)

    def dims(self, t: MOTensorType) -> list[int | ir.Value]:
        """Mixed static/dynamic sizes of a type, as tensor.empty wants them."""
        return [d if isinstance(d, int) else self.dim_value(d) for d in t.dims]

    def empty(self, t: MOTensorType, element: str | None = None) -> ir.Value:
        """A tensor.empty of the type's shape (and its element type, or ``element``)."""
        return tensor.empty(self.dims(t), element_type(element or t.element_type))

    def tensor_type(self, t: MOTensorType) -> ir.RankedTensorType:
        """The builtin tensor type of an MO type."""
        return builtin_tensor_type(t)

    def add_check(self, flag: ir.Value, message: str) -> None:
        """Records a runtime check that this op failed when ``flag`` is 1."""
        self.fn.add_check(flag, message)
