"""Runtime checks on a GPU: the checks buffer written by a kernel, never by the host.

The lowering returns a graph's runtime checks as one ``tensor<Kxi8>`` built by
``tensor.from_elements`` (``lowering/__init__.py``). Its flags are host scalars (a comparison
of sizes) or values read out of rank-0 tensors (``tensor.extract``: the "some index is out
of range" reductions of gather and scatter), which on a GPU live in device memory, where
the host may not read them. :func:`checks_on_device` rewrites that construction, on tensors
before bufferization, into one all-parallel ``linalg.generic`` over the K flags: the rank-0
tensors are its inputs (a scalar load each), the scalar ops between them and the flags are
copied into its body, host scalars are used from above (kernel parameters once outlined),
and flag ``i`` is chosen by ``linalg.index``. The elementwise schedule then makes it a
kernel like any other.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, tensor

from max.compiler.lowering.builders import PARALLEL, generic, linalg_index


def _defining_op(value: ir.Value) -> ir.Operation | None:
    owner = value.owner
    if isinstance(owner, ir.Block):
        return None
    return owner.operation if hasattr(owner, "operation") else owner


def _device_sources(value: ir.Value, found: list[ir.Value]) -> bool:
    """Whether ``value`` depends on a rank-0 tensor's element; collects those tensors."""
    op = _defining_op(value)
    if op is None:
        return False
    if op.name == "tensor.extract":
        source = op.operands[0]
        if source not in found:
            found.append(source)
        return True
    if not op.name.startswith("arith.") or op.name == "arith.constant":
        return False
    depends = False
    for operand in op.operands:
        depends = _device_sources(operand, found) or depends
    return depends


def _copy_into_body(value: ir.Value, args: dict[ir.Value, ir.Value],
                    copied: dict[ir.Value, ir.Value]) -> ir.Value:
    """``value`` inside the generic's body: an element read from an input (its block
    argument), a copy of the scalar op computing it, or the host value itself."""
    if value in copied:
        return copied[value]
    op = _defining_op(value)
    if op is None or not (op.name == "tensor.extract" or _device_sources(value, [])):
        return value
    if op.name == "tensor.extract":
        result = args[op.operands[0]]
    else:
        clone = op.clone()
        for i, operand in enumerate(op.operands):
            clone.operands[i] = _copy_into_body(operand, args, copied)
        result = clone.results[0]
    copied[value] = result
    return result


def checks_on_device(module: ir.Module) -> int:
    """Rewrites each graph function's checks tensor (see the module docstring); returns how
    many were rewritten."""
    done = 0
    for op in module.body.operations:
        fn = op.operation
        if fn.name != "func.func" or "mo.checks" not in fn.attributes or \
                not len(fn.regions[0].blocks):
            continue
        block = fn.regions[0].blocks[0]
        ret = block.operations[len(block.operations) - 1]
        last = ret.operands[len(ret.operands) - 1]
        build = _defining_op(last)
        if build is None or build.name != "tensor.from_elements":
            continue
        flags = list(build.operands)
        sources: list[ir.Value] = []
        for flag in flags:
            _device_sources(flag, sources)
        if not sources:
            continue  # host scalars only: the host writes nothing either (a fill per flag)
        _rewrite(build, flags, sources)
        done += 1
    return done


def _rewrite(build: ir.Operation, flags: list[ir.Value], sources: list[ir.Value]) -> None:
    out_type = ir.RankedTensorType(build.results[0].type)
    i8 = out_type.element_type
    index = ir.IndexType.get()
    with ir.InsertionPoint(build), build.location:
        empty = tensor.empty([len(flags)], i8)
        maps = [ir.AffineMap.get(1, 0, [])] * len(sources) + [ir.AffineMap.get_identity(1)]

        def body(*scalars: ir.Value) -> ir.Value:
            args = dict(zip(sources, scalars[:len(sources)]))
            copied: dict[ir.Value, ir.Value] = {}
            values = [_copy_into_body(f, args, copied) for f in flags]
            at = linalg_index(0)
            chosen = values[-1]
            for i in range(len(values) - 2, -1, -1):
                here = arith.cmpi(arith.CmpIPredicate.eq, at,
                                  arith.constant(index, ir.IntegerAttr.get(index, i)))
                chosen = arith.select(here, values[i], chosen)
            return chosen

        result = generic(sources, [empty], maps, [PARALLEL], body)[0]
    build.results[0].replace_all_uses_with(result)
    build.erase()


__all__ = ["checks_on_device"]
