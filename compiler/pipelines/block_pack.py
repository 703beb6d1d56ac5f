"""Panel matmuls that pack their run-time B per column block, BLIS-style (see matmul_pack).

A panel matmul whose B is a graph input (``matmul_pack.BLOCK_PACK``) used to read it from a
copy of all of B in panels, made by a pass of its own before the matmul: at 1024^3 that pass
wrote 4 MiB to memory, which the kernel read back, about 7 % of the call. Here the copy is
fused into the matmul's column-block loop: each block of B (JC panels by all of K) is packed
into a buffer of one block, once per thread, right before every row of the thread's part runs
over it, so the kernel reads its panels from L2; the zero fill of C goes into the row blocks,
and where K is one block (up to ``matmul_pack.KC_WHOLE``) on into the register tiles, whose
accumulators then start at zero in registers: C is written once, never zeroed nor read.

Producers fuse into an ``scf.forall`` through its shared outputs, but not into an ``scf.for``
through its iteration arguments (``fuse_into_containing_op`` finds no slice of the fill
there), so the block loops are made as foralls, tagged :data:`SEQUENTIAL`, and
:func:`sequential_foralls` makes them plain loops after bufferization (before the thread
foralls become OpenMP regions: a nested one would be a region of its own).
"""

from __future__ import annotations

from mlir import ir

from max.compiler.pipelines.matmul_pack import register_tiles
from max.compiler.pipelines import transform_script as ts

SEQUENTIAL = "mo.seq_forall"  # a forall made by a schedule for fusion only: runs as a loop


def schedule(sid: int, target: str, tiles3: tuple[int, int, int], fill: bool) -> str:
    """The panel matmul tiled by column blocks (jc panels) first, its copy of B into panels
    fused into that loop: each block of B (jc panels by all of K, 1 MiB at K = 1024) is packed
    into a buffer of that size right before every row of the thread's part runs over it, from
    L2. Then row blocks (mc), with the zero fill of C fused into them (``fill``: the C block is
    zeroed in L1 right before its first use, not in a pass over all of C), K blocks and the
    register tiles as ``matmul_pack.schedule``. With one K block (``kc`` 0) the fill goes on
    into the register tiles: no zeroing pass, the accumulators start as zeros.

    The block loops are made as ``scf.forall`` (producers fuse into a forall through its
    shared outputs, where an ``scf.for``'s iteration arguments stop them), tagged
    :data:`SEQUENTIAL`: :func:`sequential_foralls` makes them plain loops after bufferization.
    """
    mc, jc, kc = tiles3
    f = f"({ts.ANY}, {ts.ANY}) -> ({ts.ANY}, {ts.ANY})"

    def forall(op: str, name: str, sizes: list[int]) -> str:
        # Tagged at once: a schedule failing after this leaves no forall that would nest
        # an OpenMP region in the thread's.
        return (f"    %{name}, %{name}f = transform.structured.tile_using_forall {op} "
                f"tile_sizes {sizes} : ({ts.ANY}) -> ({ts.ANY}, {ts.ANY})\n"
                f'    transform.annotate %{name}f "{SEQUENTIAL}" : {ts.ANY}\n')

    def fuse(producer: str, loop: str, name: str) -> str:
        return (f"    %{name}, %{name}l = transform.structured.fuse_into_containing_op "
                f"{producer} into {loop} : {f}\n")

    s = f"    %pp{sid} = transform.get_producer_of_operand {target}[1] : ({ts.ANY}) -> {ts.ANY}\n"
    if fill:
        s += (f"    %pz{sid} = transform.get_producer_of_operand {target}[2] : "
              f"({ts.ANY}) -> {ts.ANY}\n")
    s += forall(target, f"pj{sid}", [0, jc, 0, 0]) + fuse(f"%pp{sid}", f"%pj{sid}f", f"pf{sid}")
    loops, op, zero = [f"%pf{sid}l"], f"%pj{sid}", f"%pz{sid}"
    if fill:
        s += fuse(zero, loops[-1], f"pz1{sid}")
        loops[-1], zero = f"%pz1{sid}l", f"%pz1{sid}"
    if mc:
        s += forall(op, f"pr{sid}", [mc, 0, 0, 0])
        loops.append(f"%pr{sid}f")
        op = f"%pr{sid}"
        if fill:
            s += fuse(zero, loops[-1], f"pz2{sid}")
            loops[-1], zero = f"%pz2{sid}l", f"%pz2{sid}"
    # One K block: the fill goes into the register tiles (their accumulators start at zero in
    # registers); else it zeroes the row block's C, row by row, before the first K block.
    in_tiles = fill and not kc
    if fill and not in_tiles:
        s += ts.tile(zero, f"pzt{sid}", [1, 1, 0]) + ts.done(f"%pzt{sid}")
    # The copy: B's rows outer (contiguous reads), each row's jc slices of 32 into the panels.
    s += ts.tile(f"%pf{sid}", f"pc{sid}", [1, 1, 0]).replace(
        f" : ({ts.ANY})", f" interchange = [1, 0, 2] : ({ts.ANY})", 1) + ts.done(f"%pc{sid}")
    # Each block into a buffer of its own size (one per thread, reused: hoist_row_buffers),
    # not into a slice of a whole-B buffer that every block would leave dirty in memory.
    s += (f"    %pfn{sid} = transform.get_parent_op %pc{sid} {{op_name = \"func.func\"}} : "
          f"({ts.ANY}) -> {ts.ANY}\n"
          f"    transform.apply_patterns to %pfn{sid} {{\n"
          f"      transform.apply_patterns.tensor.fold_tensor_empty\n"
          f"    }} : {ts.ANY}\n")
    if kc:
        s += ts.tile(op, f"pa{sid}", [0, 0, 0, kc])
        op = f"%pa{sid}"
    s += register_tiles(sid, op, in_tiles)
    for loop in loops:
        s += f'    transform.annotate {loop} "{SEQUENTIAL}" : {ts.ANY}\n'
    return s


def sequential_foralls(module: ir.Module) -> int:
    """Makes each ``scf.forall`` tagged :data:`SEQUENTIAL` an ``scf.for`` (after
    bufferization: foralls without results). Returns how many were tagged."""
    found = 0

    def visit(op: ir.Operation) -> ir.WalkResult:
        nonlocal found
        found += op.name == "scf.forall" and SEQUENTIAL in op.attributes
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    if found:
        cast = '!transform.op<"scf.forall">'
        ts.apply(module, ts.HEADER + ts.suppress(
            f"    %sf = transform.structured.match attributes{{{SEQUENTIAL}}} in %root : "
            f"({ts.ANY}) -> {ts.ANY}\n"
            f"    transform.foreach %sf : {ts.ANY} {{\n"
            f"    ^bb0(%one: {ts.ANY}):\n"
            f"      %c = transform.cast %one : {ts.ANY} to {cast}\n"
            f"      %s = transform.loop.forall_to_for %c : ({cast}) -> {ts.ANY}\n"
            f"    }}\n") + ts.FOOTER)
    return found


__all__ = ["SEQUENTIAL", "schedule", "sequential_foralls"]
