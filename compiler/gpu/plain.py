"""The plain-loops kernel: any ``linalg.generic`` the schedules did not take, one GPU thread
per point of its parallel loops.

Correct for every generic (static or symbolic sizes; inputs read at any sum of products of
loops and constants, a convolution's window) whose outputs are indexed by parallel loops
only: a grid-stride loop over the (row-major flattened) parallel points, innermost fastest so
that neighbouring threads touch neighbouring output elements, and inside it the reduction loops in
order, the accumulators carried in registers and stored once. No vectors, no shared memory:
what a schedule does better is the schedules' job, and every op that lands here was recorded
as a fallback before (``mo-record-fallbacks``).
"""

from __future__ import annotations

import math

from mlir import ir

from max.compiler.gpu.access import (DYNAMIC, analyze, delinearize, extents, grid, load_lanes,
                                     loop_shape, product, store_lanes)
from max.compiler.gpu.body import PLACEHOLDER, KernelText, body_block, check_body


def why_not(generic: ir.Operation) -> str | None:
    """Why the plain kernel cannot run ``generic`` (None: it can)."""
    if generic.name != "linalg.generic" or len(generic.results):
        return f"{generic.name} on tensors or not generic"
    operands, reason = analyze(generic, affine=True)
    if reason:
        return reason
    iterators = [str(a) for a in ir.ArrayAttr(generic.attributes["iterator_types"])]
    parallel = {i for i, it in enumerate(iterators) if "parallel" in it}
    n_in = ir.DenseI32ArrayAttr(generic.attributes["operandSegmentSizes"])[0]
    for out in operands[n_in:]:
        if out.dims is None or out.exprs is not None or \
                any(d is not None and d not in parallel for d in out.dims):
            return "an output is indexed by a reduction loop or an expression"
    try:
        loop_shape(generic, operands)
    except ValueError as e:
        return str(e)
    return check_body(generic)


def kernel_text(generic: ir.Operation, block: int, max_blocks: int) -> str:
    """The kernel module text (see ``body.emit``) for an op :func:`why_not` accepts."""
    operands, _ = analyze(generic, affine=True)
    n_in = ir.DenseI32ArrayAttr(generic.attributes["operandSegmentSizes"])[0]
    inputs, outputs = operands[:n_in], operands[n_in:]
    iterators = [str(a) for a in ir.ArrayAttr(generic.attributes["iterator_types"])]
    shape = loop_shape(generic, operands)
    par = [i for i, it in enumerate(iterators) if "parallel" in it]
    red = [i for i, it in enumerate(iterators) if "parallel" not in it]
    k = KernelText()
    args = [f"%a{i}" for i in range(len(operands))]
    one = k.const_index(1)
    sizes = extents(k, generic, operands, args)  # host values: constants or memref.dim
    if DYNAMIC in [shape[i] for i in par]:
        threads = block
        points = product(k, [sizes[i] for i in par])
        blocks = grid(k, points, threads, max_blocks)
    else:
        static_points = math.prod(shape[i] for i in par)
        threads = min(block, max(32, -(-static_points // 32) * 32))
        points = k.const_index(static_points)
        blocks = k.const_index(max(1, min(-(-static_points // threads), max_blocks)))
    k.raw(f"gpu.launch blocks(%bx, %by, %bz) in (%gx = {blocks}, %gy = {one}, "
          f"%gz = {one}) threads(%tx, %ty, %tz) in (%sx = {k.const_index(threads)}, "
          f"%sy = {one}, %sz = {one}) {{")
    start = k.op("arith.muli %bx, %sx : index")
    start = k.op(f"arith.addi {start}, %tx : index")
    # The grid's size as the host computed it: a symbolic grid read in the kernel would be
    # a device-library call on AMD (__ockl_get_num_groups), a constant one folds anyway.
    step = k.op(f"arith.muli {blocks}, %sx : index")
    k.raw(f"scf.for %p = {start} to {points} step {step} {{")
    indices: list[str] = [""] * len(shape)
    for d, name in zip(par, delinearize(k, "%p", [sizes[i] for i in par])):
        indices[d] = name
    out_args = args[n_in:]
    types = [o.element for o in outputs]
    block_args = list(body_block(generic).arguments)[n_in:]
    accs = []
    for a, o, barg in zip(out_args, outputs, block_args):
        if len(list(barg.uses)):
            accs.append(load_lanes(k, a, o, indices, -1, 1)[0])
        else:
            accs.append(k.op(f"arith.constant {'0.0' if o.element[0] in 'fb' else '0'} : "
                             f"{o.element}", "z"))
    results = _reduction_loops(k, generic, red, sizes, indices, args[:n_in], inputs, accs,
                               types, operands)
    for a, o, value in zip(out_args, outputs, results):
        store_lanes(k, [value], a, o, indices)
    k.raw("}")
    k.raw("gpu.terminator")
    k.raw("}")
    signature = ", ".join(f"{a}: {o.type}" for a, o in zip(args, operands))
    arg_types = [o.element for o in operands] + ["index"] * len(shape)
    body = k.body()
    return (f"func.func private @{PLACEHOLDER}({', '.join(arg_types)}) -> "
            f"({', '.join(types)})\n"
            f"func.func @kernel({signature}) {{\n    {body}\n    return\n}}\n")


def _reduction_loops(k: KernelText, generic: ir.Operation, red: list[int], shape: list[str],
                     indices: list[str], in_args: list[str], inputs: list, accs: list[str],
                     types: list[str], operands: list) -> list[str]:
    """Text of the nested reduction loops around one body application; the final values."""
    results = [k.fresh("acc") for _ in accs]
    iter_names = [k.fresh("it") for _ in accs]
    level_names: list[list[str]] = []
    current = accs
    for depth, d in enumerate(red):
        iv = k.fresh("r")
        indices[d] = iv
        names = results if depth == 0 else [k.fresh("acc") for _ in accs]
        iters = iter_names if depth == 0 else [k.fresh("it") for _ in accs]
        pairs = ", ".join(f"{i} = {c}" for i, c in zip(iters, current))
        k.raw(f"{', '.join(names)} = scf.for {iv} = {k.const_index(0)} to "
              f"{shape[d]} step {k.const_index(1)} iter_args({pairs}) -> "
              f"({', '.join(types)}) {{")
        current = iters
        level_names.append(names)
    lanes = [load_lanes(k, a, o, indices, -1, 1)[0] for a, o in zip(in_args, inputs)]
    arg_types = [o.element for o in operands] + ["index"] * len(shape)
    outs = [k.fresh("y") for _ in accs]
    k.raw(f"{', '.join(outs)} = func.call @{PLACEHOLDER}({', '.join(lanes + current + indices)})"
          f" : ({', '.join(arg_types)}) -> ({', '.join(types)})")
    if not red:
        return outs
    # Each loop yields the results of the one inside it (the innermost: the body's).
    yielded = outs
    for names in reversed(level_names):
        k.raw(f"scf.yield {', '.join(yielded)} : {', '.join(types)}")
        k.raw("}")
        yielded = names
    return results


__all__ = ["kernel_text", "why_not"]
