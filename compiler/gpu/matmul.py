"""The matmul schedule: ``linalg.matmul`` and ``linalg.batch_matmul`` on f32, tiled through
shared memory (a batch: one layer of the grid per matrix).

A block computes a 64 x 64 tile of C with 256 threads, each a 4 x 4 sub-tile kept in registers.
K advances 16 at a time: the threads copy the A tile (transposed, so that a thread's 4 rows
are one 128-bit shared load) and the B tile into workgroup memory with 128-bit global loads,
``gpu.barrier``, then each does 16 steps of 16 FMAs from shared memory, ``gpu.barrier``.
C is read once at the end (``linalg.matmul`` accumulates into its output) and written with
128-bit stores. Rows of C beyond M are guarded (M may be symbolic: the grid and the guards
read it from A at run time). N a multiple of 32 but not of 64: 64 x 32 tiles, 4 x 2 a
thread, 64-bit accesses to B and C. N or K symbolic, or not a multiple of 32 / 16 (edges):
the same tiles, every global access of the operand that ends mid-tile a scalar guarded by
the run-time size (zeros read past it, nothing written).
"""

from __future__ import annotations

from mlir import ir

from max.compiler.gpu.access import DYNAMIC, grid
from max.compiler.gpu.body import KernelText, emit_group

BM, BN, BK, TM, TN = 64, 64, 16, 4, 4
THREADS = (BM // TM) * (BN // TN)  # 256
# N a multiple of 32 only (an attention's p @ v over 32-wide heads): tiles of 64 x 32, each
# thread 4 x 2 outputs, B loaded 2 floats a thread (the same 256 threads, 16 a tile row).
NARROW_BN = 32
WG = "#gpu.address_space<workgroup>"
DEFAULT_MAPS = ("[affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d2, d1)>, "
                "affine_map<(d0, d1, d2) -> (d0, d1)>]")
BATCH_MAPS = ("[affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>, "
              "affine_map<(d0, d1, d2, d3) -> (d0, d3, d2)>, "
              "affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>]")
NAMES = {"linalg.matmul": DEFAULT_MAPS, "linalg.batch_matmul": BATCH_MAPS}


def why_not(op: ir.Operation) -> str | None:
    """Why this schedule cannot take ``op`` (None: it can)."""
    if op.name not in NAMES:
        return "not linalg.matmul or linalg.batch_matmul"
    if "indexing_maps" in op.attributes and \
            str(op.attributes["indexing_maps"]) != NAMES[op.name]:
        return "a transposed matmul"
    if "cast" in op.attributes and "unsigned" in str(op.attributes["cast"]):
        return "an unsigned casting matmul"
    types = [v.type for v in op.operands]
    if len(types) != 3 or not all(isinstance(t, ir.MemRefType) for t in types):
        return "not three memrefs"
    for t in types:
        mt = ir.MemRefType(t)
        if not isinstance(mt.element_type, ir.F32Type) or "strided" in str(t) or \
                mt.memory_space is not None:
            return f"operand {t} is not a contiguous f32 memref"
    batched = op.name == "linalg.batch_matmul"
    m = ir.MemRefType(types[0]).shape[batched]
    if m == 0:
        return "M=0"
    return None


def _edges(n: int, kdim: int) -> tuple[bool, bool]:
    """Whether the columns (N) and the reduction (K) need guarded scalar accesses: a
    symbolic size, or one that the tile does not divide (N by 32, K by 16)."""
    return (n == DYNAMIC or n % NARROW_BN != 0), (kdim == DYNAMIC or kdim % BK != 0)


def emit(op: ir.Operation) -> None:
    """Replaces ``op`` (accepted by :func:`why_not`) by the tiled kernel."""
    emit_group({}, kernel_text(op), list(op.operands), op)
    op.erase()


def kernel_text(op: ir.Operation) -> str:
    """The kernel module text (see ``body.emit_group``). A batched matmul: one grid layer
    (``%bz``) per matrix of the batch, every access prefixed by it."""
    ta, tb, tc = (str(v.type) for v in op.operands)
    batched = op.name == "linalg.batch_matmul"
    a_shape = ir.MemRefType(op.operands[0].type).shape
    (_, kdim), (_, n) = a_shape[batched:], ir.MemRefType(op.operands[1].type).shape[batched:]
    k = KernelText()
    c = k.const_index
    one = c(1)
    v4 = "vector<4xf32>"
    n_edge, k_edge = _edges(n, kdim)
    bn = BN if n_edge or n % BN == 0 else NARROW_BN  # the tile's columns
    tn = bn // (THREADS // (BM // TM))  # each thread's columns: 4, or 2 in a narrow tile
    vn = f"vector<{tn}xf32>"  # a thread's row of B (and of C) in one access
    as_t, bs_t = f"memref<{BK}x{BM}xf32, {WG}>", f"memref<{BK}x{bn}xf32, {WG}>"
    rows, row_tiles, layers, guard = row_and_batch_grid(k, ta, a_shape, batched, BM)
    # Columns and depth: the run-time sizes where symbolic (the guards compare with them).
    cols = k.op(f"memref.dim %a1, {c(int(batched) + 1)} : {tb}", "n") if n == DYNAMIC else c(n)
    depth = k.op(f"memref.dim %a0, {c(int(batched) + 1)} : {ta}", "k") if kdim == DYNAMIC \
        else c(kdim)
    col_tiles = grid(k, cols, bn) if n == DYNAMIC else c(max(1, -(-n // bn)))
    at = "%bz, " if batched else ""  # the batch index of every access
    k.raw(f"gpu.launch blocks(%bx, %by, %bz) in (%gx = {col_tiles}, %gy = {row_tiles}, "
          f"%gz = {layers}) threads(%tx, %ty, %tz) in (%sx = {c(THREADS)}, %sy = {one}, "
          f"%sz = {one}) workgroup(%as : {as_t}, %bs : {bs_t}) {{")
    if guard is not None:  # uniform per block: its barriers stay uniform
        k.raw(f"scf.if {k.op(f'arith.cmpi ult, %bz, {guard} : index', 'p')} {{")
    m0 = k.op(f"arith.muli %by, {c(BM)} : index")
    n0 = k.op(f"arith.muli %bx, {c(bn)} : index")
    trow = k.op(f"arith.divui %tx, {c(bn // tn)} : index")
    tcol = k.op(f"arith.remui %tx, {c(bn // tn)} : index")
    a_col = k.op(f"arith.muli {trow}, {c(TM)} : index")  # the thread's rows in the tile
    b_col = k.op(f"arith.muli {tcol}, {c(tn)} : index")  # and columns
    # Tile loads: A: row tx/4, k chunk (tx%4)*4; B: k row tx/16, n chunk (tx%16)*tn.
    a_row = k.op(f"arith.divui %tx, {c(BK // 4)} : index")
    a_k = k.op(f"arith.muli {k.op(f'arith.remui %tx, {c(BK // 4)} : index')}, {c(4)} : index")
    a_grow = k.op(f"arith.addi {m0}, {a_row} : index")
    a_in = k.op(f"arith.cmpi ult, {a_grow}, {rows} : index", "p")
    b_k = k.op(f"arith.divui %tx, {c(bn // tn)} : index")
    b_n = k.op(f"arith.muli {k.op(f'arith.remui %tx, {c(bn // tn)} : index')}, {c(tn)} : index")
    b_gn = k.op(f"arith.addi {n0}, {b_n} : index")
    zero_f = k.op("arith.constant 0.0 : f32")
    zero_v = k.op(f"arith.constant dense<0.0> : {v4}")
    accs = [[zero_f] * tn for _ in range(TM)]
    flat = [a for row in accs for a in row]
    res = [k.fresh("acc") for _ in flat]
    its = [k.fresh("it") for _ in flat]
    ftypes = ", ".join(["f32"] * len(flat))
    k.raw(f"{', '.join(res)} = scf.for %k0 = {c(0)} to {depth} step {c(BK)} "
          f"iter_args({', '.join(f'{i} = {a}' for i, a in zip(its, flat))}) -> ({ftypes}) {{")
    # A tile, transposed into As[k][m]; rows beyond M read as zeros.
    a_gk = k.op(f"arith.addi %k0, {a_k} : index")
    align = 4 * tn
    if k_edge:  # A's rows are K apart (any alignment) and end mid-chunk: scalars, guarded
        for i in range(4):
            kk = k.op(f"arith.addi {a_gk}, {c(i)} : index")
            ok = k.op(f"arith.andi {a_in}, {_lt(k, kk, depth)} : i1", "p")
            lane = _guarded_load(k, f"%a0[{at}{a_grow}, {kk}] : {ta}", ok, zero_f)
            k.raw(f"memref.store {lane}, %as[{k.op(f'arith.addi {a_k}, {c(i)} : index')}, "
                  f"{a_row}] : {as_t}")
    else:
        a_vec = k.fresh("av")
        k.raw(f"{a_vec} = scf.if {a_in} -> ({v4}) {{")
        loaded = k.op(f"vector.load %a0[{at}{a_grow}, {a_gk}] {{alignment = 16}} : {ta}, "
                      f"{v4}")
        k.raw(f"scf.yield {loaded} : {v4}")
        k.raw("} else {")
        k.raw(f"scf.yield {zero_v} : {v4}")
        k.raw("}")
        for i in range(4):
            lane = k.op(f"vector.extract {a_vec}[{i}] : f32 from {v4}")
            row = k.op(f"arith.addi {a_k}, {c(i)} : index")
            k.raw(f"memref.store {lane}, %as[{row}, {a_row}] : {as_t}")
    b_gk = k.op(f"arith.addi %k0, {b_k} : index")
    if n_edge or k_edge:  # B's rows past K, columns past N: zeros
        b_ok = _lt(k, b_gk, depth)
        for j in range(tn):
            col = k.op(f"arith.addi {b_gn}, {c(j)} : index")
            ok = k.op(f"arith.andi {b_ok}, {_lt(k, col, cols)} : i1", "p")
            lane = _guarded_load(k, f"%a1[{at}{b_gk}, {col}] : {tb}", ok, zero_f)
            k.raw(f"memref.store {lane}, %bs[{b_k}, {k.op(f'arith.addi {b_n}, {c(j)} : index')}]"
                  f" : {bs_t}")
    else:
        b_vec = k.op(f"vector.load %a1[{at}{b_gk}, {b_gn}] {{alignment = {align}}} : {tb}, "
                     f"{vn}")
        k.raw(f"vector.store {b_vec}, %bs[{b_k}, {b_n}] {{alignment = {align}}} : {bs_t}, "
              f"{vn}")
    k.raw("gpu.barrier")
    # 16 steps of a 4 x tn outer product from shared memory.
    inner_res = [k.fresh("acc") for _ in flat]
    inner_its = [k.fresh("it") for _ in flat]
    k.raw(f"{', '.join(inner_res)} = scf.for %kk = {c(0)} to {c(BK)} step {one} "
          f"iter_args({', '.join(f'{i} = {a}' for i, a in zip(inner_its, its))}) -> "
          f"({ftypes}) {{")
    av = k.op(f"vector.load %as[%kk, {a_col}] {{alignment = 16}} : {as_t}, {v4}")
    bv = k.op(f"vector.load %bs[%kk, {b_col}] {{alignment = {align}}} : {bs_t}, {vn}")
    a_l = [k.op(f"vector.extract {av}[{i}] : f32 from {v4}") for i in range(TM)]
    b_l = [k.op(f"vector.extract {bv}[{j}] : f32 from {vn}") for j in range(tn)]
    new = [k.op(f"math.fma {a_l[i]}, {b_l[j]}, {inner_its[i * tn + j]} : f32")
           for i in range(TM) for j in range(tn)]
    k.raw(f"scf.yield {', '.join(new)} : {ftypes}")
    k.raw("}")
    k.raw("gpu.barrier")
    k.raw(f"scf.yield {', '.join(inner_res)} : {ftypes}")
    k.raw("}")
    # C += the tile (linalg.matmul accumulates), one vector load and store per row.
    for i in range(TM):
        row = k.op(f"arith.addi {m0}, {k.op(f'arith.addi {a_col}, {c(i)} : index')} : index")
        col = k.op(f"arith.addi {n0}, {b_col} : index")
        inside = k.op(f"arith.cmpi ult, {row}, {rows} : index", "p")
        k.raw(f"scf.if {inside} {{")
        if n_edge:  # element by element, columns past N skipped
            for j in range(tn):
                cj = k.op(f"arith.addi {col}, {c(j)} : index")
                k.raw(f"scf.if {_lt(k, cj, cols)} {{")
                old = k.op(f"memref.load %a2[{at}{row}, {cj}] : {tc}")
                total = k.op(f"arith.addf {old}, {res[i * tn + j]} : f32")
                k.raw(f"memref.store {total}, %a2[{at}{row}, {cj}] : {tc}")
                k.raw("}")
        else:
            old = k.op(f"vector.load %a2[{at}{row}, {col}] {{alignment = {align}}} : {tc}, "
                       f"{vn}")
            tile = k.op(f"vector.from_elements {', '.join(res[i * tn:(i + 1) * tn])} : {vn}")
            total = k.op(f"arith.addf {old}, {tile} : {vn}")
            k.raw(f"vector.store {total}, %a2[{at}{row}, {col}] {{alignment = {align}}} : "
                  f"{tc}, {vn}")
        k.raw("}")
    return close_kernel(k, guard, ta, tb, tc)


def row_and_batch_grid(k: KernelText, ta: str, a_shape: list[int], batched: bool, bm: int
                       ) -> tuple[str, str, str, str | None]:
    """Text: the rows M (A's, ``%a0``), the grid's row tiles of ``bm`` (at least one), its
    layers (one per matrix of a batch, at least one) and the batch bound each block checks
    (None: every layer is a matrix)."""
    c = k.const_index
    m = a_shape[batched]
    if m == DYNAMIC:  # symbolic rows: the row guards compare with the run-time M
        rows = k.op(f"memref.dim %a0, {c(int(batched))} : {ta}", "m")
        row_tiles = grid(k, rows, bm)
    else:
        rows, row_tiles = c(m), c(max(1, -(-m // bm)))
    layers, guard = c(1), None
    if batched:
        if a_shape[0] == DYNAMIC:  # at least one layer; those past the batch do nothing
            guard = k.op(f"memref.dim %a0, {c(0)} : {ta}", "b")
            layers = grid(k, guard, 1)
        else:
            layers = c(max(1, a_shape[0]))
            guard = c(0) if a_shape[0] == 0 else None
    return rows, row_tiles, layers, guard


def close_kernel(k: KernelText, guard: str | None, ta: str, tb: str, tc: str) -> str:
    """Text: the end of a matmul kernel (the batch guard's block, the launch) and the
    module of ``@kernel(A, B, C)``."""
    if guard is not None:
        k.raw("}")
    k.raw("gpu.terminator")
    k.raw("}")
    body = k.body()
    return (f"func.func @kernel(%a0: {ta}, %a1: {tb}, %a2: {tc}) {{\n    {body}\n"
            "    return\n}\n")


def _lt(k: KernelText, a: str, b: str) -> str:
    return k.op(f"arith.cmpi ult, {a}, {b} : index", "p")


def _guarded_load(k: KernelText, where: str, ok: str, zero: str) -> str:
    """Text: the f32 at ``where`` (``%m[i, j] : type``) if ``ok``, else ``zero``."""
    value = k.fresh("g")
    k.raw(f"{value} = scf.if {ok} -> (f32) {{")
    k.raw(f"scf.yield {k.op(f'memref.load {where}')} : f32")
    k.raw("} else {")
    k.raw(f"scf.yield {zero} : f32")
    k.raw("}")
    return value


__all__ = ["close_kernel", "emit", "kernel_text", "row_and_batch_grid", "why_not"]
