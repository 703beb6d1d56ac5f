"""The elementwise schedule: an all-parallel ``linalg.generic`` as one grid-stride kernel.

The loop nest is flattened into vector groups of ``W`` lanes along the innermost dim (16 bytes
of the narrowest contiguous operand: ``ld.global.v4.f32`` for f32). Each thread handles one
group per step of a grid-stride loop over all groups, so any size runs with a grid bounded by
``max_blocks``; contiguous operands are one aligned vector load, broadcast ones one scalar load
shared by the lanes, and the body runs once per lane (GPUs compute scalars; the vector is what
saves memory transactions).
"""

from __future__ import annotations

import math

from mlir import ir

from max.compiler.gpu.access import (DYNAMIC, Operand, analyze, delinearize, extents, grid,
                                     load_lanes, loop_shape, product, store_lanes,
                                     vector_width)
from max.compiler.gpu.body import PLACEHOLDER, KernelText, body_block, check_body


def why_not(generic: ir.Operation) -> str | None:
    """Why this schedule cannot take ``generic`` (None: it can)."""
    iterators = [str(a) for a in ir.ArrayAttr(generic.attributes["iterator_types"])]
    if any("parallel" not in i for i in iterators):
        return "not all loops are parallel"
    operands, reason = analyze(generic)
    if reason:
        return reason
    n_out = _num_outputs(generic)
    rank = len(iterators)
    for out in operands[len(operands) - n_out:]:
        if out.dims != tuple(range(rank)):
            return "an output is not indexed by every loop in order"
    if rank == 0:
        return "a 0-d op"
    return check_body(generic)


def _num_outputs(generic: ir.Operation) -> int:
    return len(generic.operands) - _num_inputs(generic)


def _num_inputs(generic: ir.Operation) -> int:
    seg = ir.DenseI32ArrayAttr(generic.attributes["operandSegmentSizes"])
    return seg[0]


def zero_text(element: str) -> str:
    """An ``arith.constant`` of zero of a scalar type, as text."""
    return f"arith.constant {'0.0' if element[0] in 'fb' else '0'} : {element}"


def kernel_text(generic: ir.Operation, block: int, max_blocks: int) -> str:
    """The kernel module text (see ``body.emit``) for an op :func:`why_not` accepts.

    Symbolic sizes: the group count is computed on the host from the operands' sizes, the
    grid from it (at least one block, at most ``max_blocks``), threads ``block``."""
    operands, _ = analyze(generic)
    n_in = _num_inputs(generic)
    inputs, outputs = operands[:n_in], operands[n_in:]
    shape = loop_shape(generic, operands)
    inner = len(shape) - 1
    width = vector_width(operands, inner, shape[-1], outputs)
    k = KernelText()
    args = [f"%a{i}" for i in range(len(operands))]
    if DYNAMIC not in shape:
        groups = math.prod(shape) // width
        threads = min(block, max(32, -(-groups // 32) * 32))
        blocks = max(1, min(-(-groups // threads), max_blocks))
        sizes: list[int | str] = list(shape)
        total, nblocks = k.const_index(groups), k.const_index(blocks)
    else:
        sizes = list(extents(k, generic, operands, args))
        total = product(k, [str(x) for x in sizes])
        if width > 1:
            total = k.op(f"arith.divui {total}, {k.const_index(width)} : index", "n")
        threads = block
        nblocks = grid(k, total, threads, max_blocks)
    return _module_text(k, generic, args, inputs, outputs, sizes, width, total, threads,
                        nblocks)


def _module_text(k: KernelText, generic: ir.Operation, args: list[str],
                 inputs: list[Operand], outputs: list[Operand], shape: list[int | str],
                 width: int, total: str, threads: int, nblocks: str) -> str:
    rank = len(shape)
    operands = inputs + outputs
    one, nthreads = k.const_index(1), k.const_index(threads)
    k.raw(f"gpu.launch blocks(%bx, %by, %bz) in (%gx = {nblocks}, %gy = {one}, %gz = {one}) "
          f"threads(%tx, %ty, %tz) in (%sx = {nthreads}, %sy = {one}, %sz = {one}) {{")
    start = k.op("arith.muli %bx, %sx : index")
    start = k.op(f"arith.addi {start}, %tx : index")
    # The grid's size as the host computed it: a symbolic grid read in the kernel would be
    # a device-library call on AMD (__ockl_get_num_groups), a constant one folds anyway.
    step = k.op(f"arith.muli {nblocks}, %sx : index")
    k.raw(f"scf.for %g = {start} to {total} step {step} {{")
    linear = k.op(f"arith.muli %g, {k.const_index(width)} : index") if width > 1 else "%g"
    indices = delinearize(k, linear, shape)
    lanes = [load_lanes(k, a, o, indices, rank - 1, width) for a, o in zip(args, inputs)]
    block_args = list(body_block(generic).arguments)
    out_args = block_args[len(inputs):]
    for a, o, barg in zip(args[len(inputs):], outputs, out_args):
        if len(list(barg.uses)):  # the body reads the output's old value
            lanes.append(load_lanes(k, a, o, indices, rank - 1, width))
        else:
            lanes.append([k.op(zero_text(o.element), "z")] * width)
    results: list[list[str]] = [[] for _ in outputs]
    arg_types = [o.element for o in operands] + ["index"] * rank
    res_types = [o.element for o in outputs]
    for lane in range(width):
        lane_idx = list(indices)
        if lane:
            lane_idx[-1] = k.op(f"arith.addi {indices[-1]}, {k.const_index(lane)} : index")
        call_args = [lane_values[lane] for lane_values in lanes] + lane_idx
        names = [k.fresh("r") for _ in outputs]
        k.raw(f"{', '.join(names)} = func.call @{PLACEHOLDER}({', '.join(call_args)}) : "
              f"({', '.join(arg_types)}) -> ({', '.join(res_types)})")
        for j, name in enumerate(names):
            results[j].append(name)
    for a, o, lane_values in zip(args[len(inputs):], outputs, results):
        store_lanes(k, lane_values, a, o, indices)
    k.raw("}")
    k.raw("gpu.terminator")
    k.raw("}")
    signature = ", ".join(f"{a}: {o.type}" for a, o in zip(args, operands))
    body = k.body()
    return (f"func.func private @{PLACEHOLDER}({', '.join(arg_types)}) -> "
            f"({', '.join(res_types)})\n"
            f"func.func @kernel({signature}) {{\n    {body}\n    return\n}}\n")


__all__ = ["kernel_text", "why_not", "zero_text"]
