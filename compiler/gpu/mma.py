"""Tensor cores: f16/bf16 matmuls on NVIDIA sm_80+ through ``mma.sync.m16n8k16``
(``nvgpu.mma.sync``), accumulating in f32.

The lowering computes a half-precision matmul as f32 (``extf`` generics into f32 buffers, an
f32 ``linalg.matmul``, a ``truncf``). :func:`half_sources` finds, for such a matmul on
memrefs, the f16/bf16 buffers its A and B were widened from (each f32 buffer written only by
that elementwise ``extf``, read only by the matmul); :func:`emit` replaces the matmul by the
kernel below, reading the half buffers directly, and erases the widenings and their buffers.

The kernel: a block computes a 64 x 64 tile of C with 4 warps, each a 32 x 32 quarter as
2 x 4 tiles of 16 x 8 (8 ``mma.sync`` a K step, 32 f32 accumulators a thread). K advances 16
at a time: the 128 threads copy the 64 x 16 tile of A and the 16 x 64 tile of B into shared
memory with one 16-byte load each, ``gpu.barrier``, then each warp gathers its fragments from
shared memory and issues its 8 MMAs, ``gpu.barrier``. The fragments follow the PTX ISA's
m16n8k16 layout (groupID = lane / 4, t = lane % 4): A ``vector<4x2xf16>`` holds rows g, g+8,
g, g+8 at columns 2t, 2t, 2t+8, 2t+8 (two each); B ``vector<2x2xf16>`` holds column g at rows
2t (two) and 2t+8 (two); C ``vector<2x2xf32>`` rows g and g+8 at columns 2t, 2t+1. C is
read once at the end (``linalg.matmul`` accumulates into its zero-filled output) with rows
past M skipped. N must be a multiple of 64 and K of 16, static (M and the batch may be
symbolic); other shapes keep the f32 path.
"""

from __future__ import annotations

from mlir import ir

from max.compiler.gpu.access import DYNAMIC
from max.compiler.gpu.body import KernelText, emit_group
from max.compiler.gpu.matmul import close_kernel, row_and_batch_grid
from max.compiler.passes.ir_util import defining_op

BM, BN, BK = 64, 64, 16
WARPS = 4  # 2 x 2 warps, each a 32 x 32 quarter of the tile
THREADS = 32 * WARPS
WG = "#gpu.address_space<workgroup>"
HALF = ("f16",)  # nvgpu.mma.sync takes f16 (bf16 fails its verifier here)


def _widened_from(buffer: ir.Value, matmul: ir.Operation) -> tuple[ir.Value, ir.Operation] | None:
    """The half buffer ``buffer`` (f32) is the ``extf`` of, and that generic; None unless the
    f32 buffer is an allocation written only by it and read only by ``matmul`` (directly or
    through a ``memref.reshape`` to its own shape, as the batched lowering leaves it)."""
    alloc = defining_op(buffer)
    reader = matmul
    if alloc is not None and alloc.name == "memref.reshape" and \
            alloc.operands[0].type == buffer.type and len(list(buffer.uses)) == 1:
        reader, buffer = alloc, alloc.operands[0]
        alloc = defining_op(buffer)
    if alloc is None or alloc.name != "memref.alloc":
        return None
    writer = None
    for use in buffer.uses:
        user = use.owner
        if user.name == "memref.dealloc" or user == reader:
            continue
        if user.name != "linalg.generic" or writer is not None:
            return None
        writer = user
    if writer is None or len(writer.operands) != 2:
        return None
    maps = [str(m) for m in ir.ArrayAttr(writer.attributes["indexing_maps"])]
    if len(set(maps)) != 1 or writer.operands[1] != buffer:
        return None
    body = writer.regions[0].blocks[0]
    ops = [op for op in body.operations]
    if len(ops) != 2 or ops[0].name != "arith.extf" or ops[0].operands[0] != body.arguments[0]:
        return None
    source = writer.operands[0]
    t = ir.MemRefType(source.type)
    if str(t.element_type) not in HALF or "strided" in str(t) or t.memory_space is not None:
        return None
    return source, writer


def half_sources(op: ir.Operation) -> tuple[ir.Value, ir.Value, list[ir.Operation]] | None:
    """The half buffers of a tensor-core matmul ``op`` (a ``linalg.matmul`` or
    ``linalg.batch_matmul`` the f32 schedule accepts) and the widenings they replace, or
    None when the kernel does not apply (see the module docstring)."""
    a = _widened_from(op.operands[0], op)
    b = _widened_from(op.operands[1], op)
    if a is None or b is None:
        return None
    if ir.MemRefType(a[0].type).element_type != ir.MemRefType(b[0].type).element_type:
        return None
    batched = op.name == "linalg.batch_matmul"
    k, n = ir.MemRefType(b[0].type).shape[batched:]
    if k == DYNAMIC or n == DYNAMIC or k % BK or n % BN:
        return None
    if "strided" in str(op.operands[2].type):
        return None
    return a[0], b[0], [a[1], b[1]]


def emit(op: ir.Operation, a: ir.Value, b: ir.Value, widenings: list[ir.Operation]) -> None:
    """Replaces ``op`` by the tensor-core kernel on the half buffers ``a`` and ``b``; the
    widenings (and their f32 buffers, once unused) go."""
    c = op.operands[2]
    emit_group({}, kernel_text(op, a.type, b.type), [a, b, c], op)
    op.erase()
    for generic in widenings:
        buffer = generic.operands[1]
        generic.erase()
        for use in list(buffer.uses):  # an identity reshape the matmul read through
            if use.owner.name == "memref.reshape" and not len(list(use.owner.results[0].uses)):
                use.owner.erase()
        for use in list(buffer.uses):
            if use.owner.name == "memref.dealloc":
                use.owner.erase()
        alloc = defining_op(buffer)
        if alloc is not None and not len(list(buffer.uses)):
            alloc.erase()


def kernel_text(op: ir.Operation, a_type: ir.Type, b_type: ir.Type) -> str:
    """The kernel module text (see ``body.emit_group``): arguments A, B (half), C (f32)."""
    ta, tb, tc = str(a_type), str(b_type), str(op.operands[2].type)
    half = str(ir.MemRefType(a_type).element_type)
    batched = op.name == "linalg.batch_matmul"
    a_shape = ir.MemRefType(a_type).shape
    kdim = a_shape[batched + 1]
    n = ir.MemRefType(b_type).shape[batched:][1]
    k = KernelText()
    c = k.const_index
    one = c(1)
    v8, v2h, v2f = f"vector<8x{half}>", f"vector<2x{half}>", "vector<2xf32>"
    fa, fb, fc = f"vector<4x2x{half}>", f"vector<2x2x{half}>", "vector<2x2xf32>"
    as_t, bs_t = f"memref<{BM}x{BK}x{half}, {WG}>", f"memref<{BK}x{BN}x{half}, {WG}>"
    rows, row_tiles, layers, guard = row_and_batch_grid(k, ta, a_shape, batched, BM)
    at = "%bz, " if batched else ""
    k.raw(f"gpu.launch blocks(%bx, %by, %bz) in (%gx = {c(n // BN)}, %gy = {row_tiles}, "
          f"%gz = {layers}) threads(%tx, %ty, %tz) in (%sx = {c(THREADS)}, %sy = {one}, "
          f"%sz = {one}) workgroup(%as : {as_t}, %bs : {bs_t}) {{")
    if guard is not None:
        k.raw(f"scf.if {k.op(f'arith.cmpi ult, %bz, {guard} : index', 'p')} {{")
    m0 = k.op(f"arith.muli %by, {c(BM)} : index")
    n0 = k.op(f"arith.muli %bx, {c(BN)} : index")
    warp = k.op(f"arith.divui %tx, {c(32)} : index")
    lane = k.op(f"arith.remui %tx, {c(32)} : index")
    g = k.op(f"arith.divui {lane}, {c(4)} : index")  # groupID
    t2 = k.op(f"arith.muli {k.op(f'arith.remui {lane}, {c(4)} : index')}, {c(2)} : index")
    wr = k.op(f"arith.muli {k.op(f'arith.divui {warp}, {c(2)} : index')}, {c(32)} : index")
    wc = k.op(f"arith.muli {k.op(f'arith.remui {warp}, {c(2)} : index')}, {c(32)} : index")
    # Tile copies: A row tx/2, columns (tx%2)*8; B row tx/8, columns (tx%8)*8; 16 bytes each.
    a_row = k.op(f"arith.divui %tx, {c(2)} : index")
    a_col = k.op(f"arith.muli {k.op(f'arith.remui %tx, {c(2)} : index')}, {c(8)} : index")
    a_grow = k.op(f"arith.addi {m0}, {a_row} : index")
    a_in = k.op(f"arith.cmpi ult, {a_grow}, {rows} : index", "p")
    b_row = k.op(f"arith.divui %tx, {c(8)} : index")
    b_col = k.op(f"arith.muli {k.op(f'arith.remui %tx, {c(8)} : index')}, {c(8)} : index")
    b_gcol = k.op(f"arith.addi {n0}, {b_col} : index")
    zero_a = k.op(f"arith.constant dense<0.0> : {v8}")
    zero_c = k.op(f"arith.constant dense<0.0> : {fc}")
    tiles = [(mi, ni) for mi in range(2) for ni in range(4)]
    res = [k.fresh("acc") for _ in tiles]
    its = [k.fresh("it") for _ in tiles]
    types = ", ".join([fc] * len(tiles))
    k.raw(f"{', '.join(res)} = scf.for %k0 = {c(0)} to {c(kdim)} step {c(BK)} "
          f"iter_args({', '.join(f'{i} = {zero_c}' for i in its)}) -> ({types}) {{")
    a_gk = k.op(f"arith.addi %k0, {a_col} : index")
    a_vec = k.fresh("av")
    k.raw(f"{a_vec} = scf.if {a_in} -> ({v8}) {{")
    loaded = k.op(f"vector.load %a0[{at}{a_grow}, {a_gk}] {{alignment = 16}} : {ta}, {v8}")
    k.raw(f"scf.yield {loaded} : {v8}")
    k.raw("} else {")
    k.raw(f"scf.yield {zero_a} : {v8}")
    k.raw("}")
    k.raw(f"vector.store {a_vec}, %as[{a_row}, {a_col}] {{alignment = 16}} : {as_t}, {v8}")
    b_gk = k.op(f"arith.addi %k0, {b_row} : index")
    b_vec = k.op(f"vector.load %a1[{at}{b_gk}, {b_gcol}] {{alignment = 16}} : {tb}, {v8}")
    k.raw(f"vector.store {b_vec}, %bs[{b_row}, {b_col}] {{alignment = 16}} : {bs_t}, {v8}")
    k.raw("gpu.barrier")
    a_frags = []
    for mi in range(2):
        r = k.op(f"arith.addi {wr}, {k.op(f'arith.addi {g}, {c(16 * mi)} : index')} : index")
        r8 = k.op(f"arith.addi {r}, {c(8)} : index")
        t8 = k.op(f"arith.addi {t2}, {c(8)} : index")
        frag = k.op(f"arith.constant dense<0.0> : {fa}")
        for j, (row, col) in enumerate(((r, t2), (r8, t2), (r, t8), (r8, t8))):
            pair = k.op(f"vector.load %as[{row}, {col}] {{alignment = 4}} : {as_t}, {v2h}")
            frag = k.op(f"vector.insert {pair}, {frag} [{j}] : {v2h} into {fa}")
        a_frags.append(frag)
    b_frags = []
    for ni in range(4):
        col = k.op(f"arith.addi {wc}, {k.op(f'arith.addi {g}, {c(8 * ni)} : index')} : index")
        values = []
        for kk in (0, 1, 8, 9):
            row = k.op(f"arith.addi {t2}, {c(kk)} : index")
            values.append(k.op(f"memref.load %bs[{row}, {col}] : {bs_t}"))
        b_frags.append(k.op(f"vector.from_elements {', '.join(values)} : {fb}"))
    new = [k.op(f"nvgpu.mma.sync ({a_frags[mi]}, {b_frags[ni]}, {it}) "
                f"{{mmaShape = [16, 8, 16]}} : ({fa}, {fb}, {fc}) -> {fc}")
           for (mi, ni), it in zip(tiles, its)]
    k.raw("gpu.barrier")
    k.raw(f"scf.yield {', '.join(new)} : {types}")
    k.raw("}")
    # C += the accumulators: rows g and g+8 of each 16 x 8 tile, 2 columns a thread.
    def add(*terms: str) -> str:
        total = terms[0]
        for term in terms[1:]:
            total = k.op(f"arith.addi {total}, {term} : index")
        return total

    for (mi, ni), acc in zip(tiles, res):
        col = add(n0, wc, t2, c(8 * ni))
        for half_row in range(2):
            row = add(m0, wr, g, c(16 * mi + 8 * half_row))
            k.raw(f"scf.if {k.op(f'arith.cmpi ult, {row}, {rows} : index', 'p')} {{")
            old = k.op(f"vector.load %a2[{at}{row}, {col}] {{alignment = 8}} : {tc}, {v2f}")
            part = k.op(f"vector.extract {acc}[{half_row}] : {v2f} from {fc}")
            total = k.op(f"arith.addf {old}, {part} : {v2f}")
            k.raw(f"vector.store {total}, %a2[{at}{row}, {col}] {{alignment = 8}} : {tc}, {v2f}")
            k.raw("}")
    return close_kernel(k, guard, ta, tb, tc)


__all__ = ["emit", "half_sources", "kernel_text"]
