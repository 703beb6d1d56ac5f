"""``mo.custom`` -> ``func.call`` of the user's kernel, linked into the module.

The kernel's signature is checked against the op here, where both are known: one argument per
operand, in order (a tensor operand is a ``tensor`` argument, a buffer operand an
identity-layout ``memref`` argument; element types as the lowering stores them, signless ints
and bool as ``i8``; each kernel dim equal to the operand's static dim or ``?``), then one scalar
argument per parameter, marked ``{max.parameter = "NAME"}``, in any order, and one ``tensor``
result per op result. Parameters become constants of the argument's type (bool -> ``i1``,
int -> ``iN``/``index``, int or float -> a float type), range-checked.

A kernel result whose dims the types cannot prove equal to the op's declared ones (a ``?`` in
the kernel, or a static kernel dim for a symbolic declared one) is compared at run time: a
mismatch sets a runtime check (``ValueError`` from ``execute``) and the op yields zeros of the
declared shape instead, so that later ops never index past the kernel's tensor.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, func, memref, scf, tensor

from max.compiler.kernels import Kernel, current_library
from max.compiler.lowering.builders import fill
from max.compiler.lowering.context import (
    DYNAMIC,
    LoweringContext,
    builtin_tensor_type,
    builtin_type,
    element_type,
)
from max.compiler.lowering.elementwise import I
from max.compiler.lowering.registry import lowering
from max.compiler.passes.registry import CompilationError
from max.dialects.mo.opdefs.custom import Parameter, parse_parameters
from max.dialects.mo.types import MOTensorType

PARAMETER_ATTR = "max.parameter"
# The largest finite value of each float type a parameter may take.
_FLOAT_MAX = {"f16": 65504.0, "bf16": 3.3895313892515355e38, "f32": 3.4028234663852886e38,
              "f64": 1.7976931348623157e308}


def _mo_text(t: MOTensorType) -> str:
    return f"!mo.{t.kind}<{t.element_type}, [{', '.join(str(d) for d in t.dims)}]>"


def _accepts(have: ir.ShapedType, want: ir.ShapedType) -> bool:
    """Whether the kernel's ``want`` takes the op's ``have`` (its dims or ``?``)."""
    return (have.element_type == want.element_type and have.rank == want.rank
            and all(w == DYNAMIC or w == h for h, w in zip(have.shape, want.shape)))


def _identity_memref(t: ir.Type) -> bool:
    if not isinstance(t, ir.MemRefType):
        return False
    m = ir.MemRefType(t)
    return m == ir.MemRefType.get(list(m.shape), m.element_type)  # no layout, no memory space


def _parameters(kernel: Kernel, n_values: int) -> dict[str, int]:
    """The kernel's parameter arguments by name (argument index); checks they follow the
    values and only them."""
    ftype = ir.FunctionType(ir.TypeAttr(kernel.fn.attributes["function_type"]).value)
    attrs = (list(ir.ArrayAttr(kernel.fn.attributes["arg_attrs"]))
             if "arg_attrs" in kernel.fn.attributes else [])
    names: list[str | None] = [None] * len(ftype.inputs)
    for i, d in enumerate(attrs):
        d = ir.DictAttr(d)
        if PARAMETER_ATTR in d:
            if not isinstance(d[PARAMETER_ATTR], ir.StringAttr):
                raise CompilationError(f"{kernel.where}: argument {i}: {PARAMETER_ATTR} must "
                                       f"be a string, got {d[PARAMETER_ATTR]}")
            names[i] = ir.StringAttr(d[PARAMETER_ATTR]).value
    out: dict[str, int] = {}
    for i, (name, t) in enumerate(zip(names, ftype.inputs)):
        if i < n_values and name is not None:
            raise CompilationError(f"{kernel.where}: argument {i} is parameter {name!r}, but "
                                   f"the op passes {n_values} values, which come first")
        if i >= n_values and name is None:
            raise CompilationError(
                f"{kernel.where}: argument {i} ({t}) has no {{{PARAMETER_ATTR} = \"...\"}} "
                f"attribute; the op passes {n_values} values and the arguments after them "
                f"must be parameters")
        if name is not None:
            if name in out:
                raise CompilationError(f"{kernel.where}: parameter {name!r} is taken twice")
            out[name] = i
    return out


def _constant(kernel: Kernel, name: str, value: Parameter, t: ir.Type) -> ir.Value:
    """The parameter ``value`` as a constant of the kernel argument's type ``t``."""
    what = f"{kernel.where}: parameter {name!r} = {value!r}"
    if isinstance(t, ir.IntegerType) and ir.IntegerType(t).width == 1:
        if not isinstance(value, bool):
            raise CompilationError(f"{what} is not a bool, for an i1 argument")
        return arith.constant(t, ir.IntegerAttr.get(t, int(value)))
    if isinstance(t, ir.IntegerType | ir.IndexType):
        if isinstance(value, bool) or not isinstance(value, int):
            raise CompilationError(f"{what} is not an int, for a {t} argument")
        # Signless: any value whose two's complement bits fit (index: 64 bits).
        width = 64 if isinstance(t, ir.IndexType) else ir.IntegerType(t).width
        if not -(1 << (width - 1)) <= value < (1 << width):
            raise CompilationError(f"{what} does not fit a {t} argument")
        if value >= 1 << (width - 1):
            value -= 1 << width
        return arith.constant(t, ir.IntegerAttr.get(t, value))
    spelled = str(t)
    if spelled in _FLOAT_MAX:
        if isinstance(value, bool):
            raise CompilationError(f"{what} is a bool, for a {t} argument")
        if abs(float(value)) > _FLOAT_MAX[spelled]:
            raise CompilationError(f"{what} is out of the range of a {t} argument")
        return arith.constant(t, ir.FloatAttr.get(t, float(value)))
    raise CompilationError(f"{kernel.where}: parameter {name!r} has type {t}; a parameter is "
                           f"i1, an integer, index, f16, bf16, f32 or f64")


def _operands(ctx: LoweringContext, kernel: Kernel, inputs: list[ir.Type]) -> list[ir.Value]:
    out = []
    for i, (v, mt) in enumerate(zip(ctx.operands, ctx.operand_types)):
        have, want = builtin_type(mt), inputs[i]
        kind = "memref" if mt.kind == "buffer" else "tensor"
        ok = ((isinstance(want, ir.MemRefType) and _identity_memref(want)) if kind == "memref"
              else isinstance(want, ir.RankedTensorType))
        if not ok or not _accepts(ir.ShapedType(have), ir.ShapedType(want)):
            layout = " with the identity layout" if kind == "memref" else ""
            raise CompilationError(
                f"{kernel.where}: argument {i} is {want}, but the op passes {_mo_text(mt)}, "
                f"which the kernel must take as a {have} ({kind}{layout}; '?' for any dim)")
        if want != have:
            v = memref.cast(want, v) if kind == "memref" else tensor.cast(want, v)
        out.append(v)
    return out


def _check_results(ctx: LoweringContext, kernel: Kernel, results: list[ir.Type]) -> None:
    if len(results) != len(ctx.result_types):
        raise CompilationError(f"{kernel.where} returns {len(results)} values, the op's "
                               f"out_types have {len(ctx.result_types)}")
    for i, (t, mt) in enumerate(zip(results, ctx.result_types)):
        declared = builtin_tensor_type(mt)
        bad = not isinstance(t, ir.RankedTensorType)
        if not bad:
            rt = ir.RankedTensorType(t)
            bad = (rt.element_type != declared.element_type or rt.rank != declared.rank
                   or any(k != DYNAMIC and isinstance(d, int) and k != d
                          for k, d in zip(rt.shape, mt.dims)))
        if bad:
            raise CompilationError(
                f"{kernel.where}: result {i} is {t}, but out_types[{i}] is {_mo_text(mt)}, "
                f"which the kernel must return as a {declared} ('?' for any dim)")


def _declared(ctx: LoweringContext, kernel: Kernel, i: int, r: ir.Value,
              mt: MOTensorType) -> ir.Value:
    """Result ``r`` with the declared type, checked at run time where types cannot tell."""
    want = builtin_tensor_type(mt)
    have = ir.RankedTensorType(r.type)
    failed = None
    for axis, (k, d) in enumerate(zip(have.shape, mt.dims)):
        if k != DYNAMIC and isinstance(d, int):
            continue  # equal: _check_results
        actual = ctx.index(k) if k != DYNAMIC else tensor.dim(r, ctx.index(axis))
        ne = arith.cmpi(I.ne, actual, ctx.dim_value(d))
        failed = ne if failed is None else arith.ori(failed, ne)
    if failed is None:
        return r if r.type == want else tensor.cast(want, r)
    shape = ", ".join(str(d) for d in mt.dims)
    ctx.add_check(failed, f"custom: kernel @{kernel.name} returned result {i} with a shape "
                          f"other than its declared out_types[{i}] [{shape}]")
    branch = scf.IfOp(failed, [want], has_else=True)
    with ir.InsertionPoint(branch.then_block):
        et = element_type(mt.element_type)
        zero = (ir.FloatAttr.get(et, 0.0) if not isinstance(et, ir.IntegerType)
                else ir.IntegerAttr.get(et, 0))
        scf.YieldOp([fill(arith.constant(et, zero), ctx.empty(mt))])
    with ir.InsertionPoint(branch.else_block):
        scf.YieldOp([r if r.type == want else tensor.cast(want, r)])
    return branch.results[0]


def _module_of(op: ir.Operation) -> ir.Operation:
    parent = op.parent
    while parent is not None and parent.name != "builtin.module":
        parent = parent.parent
    if parent is None:
        raise CompilationError(f"{op.name}: not inside a module")
    return parent


@lowering("mo.custom")
def lower_custom(ctx: LoweringContext) -> list[ir.Value]:
    name = ir.StringAttr(ctx.attr("symbol")).value
    library = current_library()
    if library is None:
        raise ctx.error(f"custom kernel @{name}: no custom extensions were given (pass the "
                        ".mlir files with InferenceSession(custom_extensions=...), or "
                        "max-opt --custom-extensions)")
    kernel = library.kernel(name)
    given = parse_parameters(ctx.name, ir.StringAttr(ctx.attr("parameters")).value)
    ftype = ir.FunctionType(ir.TypeAttr(kernel.fn.attributes["function_type"]).value)
    inputs, results = list(ftype.inputs), list(ftype.results)
    n = len(ctx.operands)
    if len(inputs) < n:
        raise CompilationError(f"{kernel.where} takes {len(inputs)} arguments, the op passes "
                               f"{n} values")
    args = _operands(ctx, kernel, inputs)
    taken = _parameters(kernel, n)
    extra, missing = sorted(set(given) - set(taken)), sorted(set(taken) - set(given))
    if extra:
        raise CompilationError(f"{kernel.where}: the op gives parameter {extra[0]!r}, which "
                               f"the kernel does not take (its parameters: "
                               f"{', '.join(sorted(taken)) or 'none'})")
    if missing:
        key = missing[0]
        raise CompilationError(f"{kernel.where}: parameter {key!r} (argument {taken[key]}, "
                               f"{inputs[taken[key]]}) is not given by the op")
    _check_results(ctx, kernel, results)
    params = {i: _constant(kernel, key, given[key], inputs[i]) for key, i in taken.items()}
    args += [params[i] for i in range(n, len(inputs))]
    symbol = library.link(_module_of(ctx.op), name)
    call = func.CallOp(results, ir.FlatSymbolRefAttr.get(symbol), args)
    return [_declared(ctx, kernel, i, r, mt)
            for i, (r, mt) in enumerate(zip(call.results, ctx.result_types))]
