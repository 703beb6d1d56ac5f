"""Tensors built from scalars on a GPU: by a kernel, never by host stores.

``tensor.from_elements`` builds a tensor from scalars: the runtime checks (one
``tensor<Kxi8>``, ``lowering/__init__.py``), ``shape_to_tensor``, small index tensors. Its
scalars are host values (sizes, comparisons of sizes) or values read out of rank-0 tensors
(``tensor.extract``: the "some index is out of range" reductions of gather and scatter),
which on a GPU live in device memory, where the host may neither read them nor write the
result. :func:`from_elements_on_device` rewrites each one, on tensors before bufferization,
into an all-parallel ``linalg.generic``: the rank-0 tensors are its inputs (a scalar load
each), the scalar ops between them and the elements are copied into its body, host scalars
are used from above (kernel parameters once outlined), and each element is chosen by its
row-major position (``linalg.index``). The elementwise schedule makes it a kernel like any
other.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, tensor

from max.compiler.lowering.builders import PARALLEL, generic, linalg_index
from max.compiler.passes.ir_util import defining_op


def _device_sources(value: ir.Value, found: list[ir.Value]) -> bool:
    """Whether ``value`` depends on a rank-0 tensor's element; collects those tensors."""
    op = defining_op(value)
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
    op = defining_op(value)
    if op is None or not (op.name == "tensor.extract" or _device_sources(value, [])):
        return value
    if op.name == "tensor.extract":
        result = args[op.operands[0]]
    else:
        # Operands first: a clone goes at the body's end, after what it uses.
        operands = [_copy_into_body(operand, args, copied) for operand in op.operands]
        clone = op.clone()
        for i, operand in enumerate(operands):
            clone.operands[i] = operand
        result = clone.results[0]
    copied[value] = result
    return result


def from_elements_on_device(module: ir.Module) -> int:
    """Rewrites every ``tensor.from_elements`` of the graph functions (see the module
    docstring); returns how many."""
    found: list[ir.Operation] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name == "tensor.from_elements":
            found.append(op)
        return ir.WalkResult.ADVANCE

    for op in module.body.operations:
        if op.operation.name == "func.func":
            op.operation.walk(visit)
    for build in found:
        uses = list(build.results[0].uses)
        if uses and all(u.owner.name == "tensor.reshape" and u.operand_number == 1
                        for u in uses):
            continue  # a reshape's shape: read on the host to make a view, stays there
        if not len(build.operands):  # no elements: nothing to write
            with ir.InsertionPoint(build), build.location:
                shape = ir.RankedTensorType(build.results[0].type)
                empty = tensor.empty(list(shape.shape), shape.element_type)
            build.results[0].replace_all_uses_with(empty)
            build.erase()
            continue
        sources: list[ir.Value] = []
        for value in build.operands:
            _device_sources(value, sources)
        _rewrite(build, list(build.operands), sources)
    return len(found)


def _rewrite(build: ir.Operation, flags: list[ir.Value], sources: list[ir.Value]) -> None:
    """``build`` (a ``tensor.from_elements`` of ``flags``) as an all-parallel generic reading
    the rank-0 tensors ``sources``."""
    out_type = ir.RankedTensorType(build.results[0].type)
    shape = list(out_type.shape)
    rank = len(shape)
    index = ir.IndexType.get()
    with ir.InsertionPoint(build), build.location:
        empty = tensor.empty(shape, out_type.element_type)
        maps = ([ir.AffineMap.get(rank, 0, [])] * len(sources)
                + [ir.AffineMap.get_identity(rank)])

        def body(*scalars: ir.Value) -> ir.Value:
            args = dict(zip(sources, scalars[:len(sources)]))
            copied: dict[ir.Value, ir.Value] = {}
            values = [_copy_into_body(f, args, copied) for f in flags]
            if len(values) == 1:
                return values[0]
            at = linalg_index(rank - 1)  # the row-major position of the element
            stride = shape[-1]
            for d in range(rank - 2, -1, -1):
                at = arith.addi(at, arith.muli(
                    linalg_index(d), arith.constant(index, ir.IntegerAttr.get(index, stride))))
                stride *= shape[d]
            chosen = values[-1]
            for i in range(len(values) - 2, -1, -1):
                here = arith.cmpi(arith.CmpIPredicate.eq, at,
                                  arith.constant(index, ir.IntegerAttr.get(index, i)))
                chosen = arith.select(here, values[i], chosen)
            return chosen

        result = generic(sources, [empty], maps, [PARALLEL] * rank, body)[0]
    build.results[0].replace_all_uses_with(result)
    build.erase()


__all__ = ["from_elements_on_device"]
