"""Masked vector loads and stores split into register-wide chunks, each skipped when its
mask is empty (AVX2 hosts).

The remainder of a tiled loop is vectorized with masks of the tile's size: a row of 12
floats in a 64-lane tile is one masked transfer of ``vector<64xf32>``. With AVX-512 that is a
k-masked instruction per register and costs what a plain one does. With AVX2 each 8-lane
register becomes a ``vmaskmovps``, and on AMD Zen (measured on a 2-vCPU EPYC, Zen 3):

* a masked load whose mask is all false costs about 55 ns, against 1-2 ns for a plain or
  partly masked one (a microcode assist), and 6 of the 8 registers of that 12-float row are
  all false;
* a masked store costs about 6 ns, whatever its mask.

Attention on short sequences is all remainders: at 12 tokens, MiniLM's softmax over
``[8, 12, 12, 12]`` and the padded copies of its ``q @ k^T`` took 365 and 403 us, 134 and 131
with this (the attention block 895 -> 270 us; alternating processes on a noisy host).

Here each masked 1-D transfer (``vector.transfer_read/write`` after ``convert-vector-to-scf``
unrolled them to one dimension) whose mask comes from ``vector.create_mask`` (or is a row of
one) becomes one transfer per register, each under ``scf.if``s on scalars: none when the
register is past the mask's count (a read yields its padding), a plain one when the whole
register is inside it, and for the register that the count cuts a masked load, or, for a
store, its lanes stored one by one (a masked store costs 6 ns, a few scalar stores 1.5-3.4:
the attention above 270 -> 216-228 us, `q @ k^T` 99 -> 75, the transposition 24.5 -> 15,
the softmax 110 -> 103, alternating processes). Nothing
changes for an AVX-512 host, nor for element types that AVX2 cannot mask (LLVM scalarizes
those already), nor for masks of other origins.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, memref, scf, vector

from max.compiler.host_cpu import CpuDescription, host
from max.compiler.passes.ir_util import defining_op

_TRANSFERS = ("vector.transfer_read", "vector.transfer_write")


def applies(cpu: CpuDescription | None = None) -> bool:
    """Whether masked transfers are worth splitting on ``cpu`` (the host by default): x86
    with AVX2 and without AVX-512."""
    cpu = cpu or host()
    return "avx2" in cpu.features and "avx512f" not in cpu.features


#: A mask's bounds: its row conditions ``(position, bound)`` and its count of leading lanes.
Bounds = tuple[list[tuple[int, ir.Value]], ir.Value]


def _index_constant(value: int) -> ir.Value:
    return arith.ConstantOp(ir.IndexType.get(), value).result


def _mask_bounds(mask: ir.Value) -> Bounds | None:
    """A mask made by ``vector.create_mask`` (perhaps one row of an n-D one, taken by
    ``vector.extract`` at static positions) as (row conditions ``position < bound``, the
    count of leading lanes set), or None."""
    owner = defining_op(mask)
    if owner is None:
        return None
    if owner.name == "vector.create_mask" and len(owner.operands) == 1:
        return [], owner.operands[0]
    if owner.name != "vector.extract" or len(owner.operands) != 1:
        return None  # dynamic positions
    made = defining_op(owner.operands[0])
    if made is None or made.name != "vector.create_mask":
        return None
    positions = list(ir.DenseI64ArrayAttr(owner.attributes["static_position"]))
    bounds = list(made.operands)
    if len(positions) != len(bounds) - 1:
        return None
    return list(zip(positions, bounds[:-1], strict=True)), bounds[-1]


def _candidates(module: ir.Module, register_bits: int) -> list[tuple[ir.Operation, int, Bounds]]:
    """(masked 1-D transfer, lanes of one register, its mask's bounds) for each transfer to
    split."""
    found: list[tuple[ir.Operation, int, Bounds]] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name not in _TRANSFERS:
            return ir.WalkResult.ADVANCE
        read = op.name == "vector.transfer_read"
        vtype = ir.VectorType(op.results[0].type if read else op.operands[0].type)
        source = op.operands[0 if read else 1]
        segments = list(ir.DenseI32ArrayAttr(op.attributes["operandSegmentSizes"]))
        if segments[-1] == 0 or vtype.rank != 1 or vtype.scalable:
            return ir.WalkResult.ADVANCE  # no mask, or not one dimension
        if not isinstance(source.type, ir.MemRefType):
            return ir.WalkResult.ADVANCE
        width = getattr(vtype.element_type, "width", 0)
        if width not in (32, 64):
            return ir.WalkResult.ADVANCE  # vmaskmovps/pd and vpmaskmovd/q only
        lanes = register_bits // width
        perm = ir.AffineMapAttr(op.attributes["permutation_map"]).value
        rank = ir.MemRefType(source.type).rank
        minor = (len(perm.results) == 1 and str(perm.results[0]) == f"d{rank - 1}")
        bounds = _mask_bounds(op.operands[-1]) if minor and vtype.shape[0] % lanes == 0 else None
        if bounds is not None:
            found.append((op, lanes, bounds))
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    return found


def _chunk(value: ir.Value, offset: int, lanes: int) -> ir.Value:
    vtype = ir.VectorType(value.type)
    if vtype.shape[0] == lanes:
        return value
    out = ir.VectorType.get([lanes], vtype.element_type)
    return vector.ExtractStridedSliceOp(out, value, [offset], [lanes], [1]).result


def _transfer(op: ir.Operation, chunk_type: ir.Type, source: ir.Value, at: list[ir.Value],
              tail: list[ir.Value], masked: bool) -> ir.Operation:
    """``op`` again at ``at``, on one register, with a ``tail`` of operands (padding and
    mask for a read, mask for a write; without the mask when not ``masked``)."""
    attributes = {name: op.attributes[name] for name in op.attributes}
    read = op.name == "vector.transfer_read"
    if read:
        operands = [source, *at, *tail[:2 if masked else 1]]
        segments = [1, len(at), 1, int(masked)]
    else:
        operands = [tail[0], source, *at, *tail[1:2 if masked else 1]]
        segments = [1, 1, len(at), int(masked)]
    attributes["operandSegmentSizes"] = ir.DenseI32ArrayAttr.get(segments)
    return ir.Operation.create(op.name, results=[chunk_type] if read else [],
                               operands=operands, attributes=attributes)


def _in_bounds(op: ir.Operation) -> bool:
    return all(ir.BoolAttr(b).value for b in ir.ArrayAttr(op.attributes["in_bounds"]))


def _scalar_stores(value: ir.Value, base: ir.Value, at: list[ir.Value], left: ir.Value,
                   lanes: int) -> None:
    """Lanes ``[0, left)`` of ``value`` (``0 < left < lanes``) stored one by one: a few
    predictable branches and ``vextractps`` cost less than one ``vmaskmovps`` store on Zen."""
    def store(i: int) -> None:
        index = arith.AddIOp(at[-1], _index_constant(i)).result if i else at[-1]
        memref.StoreOp(vector.ExtractOp(value, [], [i]).result, base, [*at[:-1], index])

    store(0)
    for i in range(1, lanes - 1):
        more = arith.CmpIOp(arith.CmpIPredicate.sgt, left, _index_constant(i)).result
        branch = scf.IfOp(more, [], has_else=False)
        with ir.InsertionPoint(branch.then_block):
            store(i)
            scf.YieldOp([])


def _split(op: ir.Operation, lanes: int, bounds: Bounds) -> None:
    read = op.name == "vector.transfer_read"
    operands = list(op.operands)
    if read:
        source, indices, padding = operands[0], operands[1:-2], operands[-2]
        vtype = ir.VectorType(op.results[0].type)
    else:
        value, source, indices = operands[0], operands[1], operands[2:-1]
        vtype = ir.VectorType(value.type)
    rows, count = bounds
    chunk_type = ir.VectorType.get([lanes], vtype.element_type)
    mask_type = ir.VectorType.get([lanes], ir.IntegerType.get_signless(1))
    with ir.InsertionPoint(op), op.location:
        live = None  # the row conditions, as one i1
        for position, bound in rows:
            here = arith.CmpIOp(arith.CmpIPredicate.slt, _index_constant(position), bound).result
            live = here if live is None else arith.AndIOp(live, here).result
        result = vector.BroadcastOp(vtype, padding).result if read else None
        for offset in range(0, vtype.shape[0], lanes):
            left = arith.SubIOp(count, _index_constant(offset)).result if offset else count
            some = arith.CmpIOp(arith.CmpIPredicate.sgt, left, _index_constant(0)).result
            if live is not None:
                some = arith.AndIOp(live, some).result
            full = arith.CmpIOp(arith.CmpIPredicate.sge, left, _index_constant(lanes)).result
            at = indices if offset == 0 else [
                *indices[:-1], arith.AddIOp(indices[-1], _index_constant(offset)).result]
            tail = [padding] if read else [_chunk(value, offset, lanes)]
            outer = scf.IfOp(some, [chunk_type] if read else [], has_else=read)
            with ir.InsertionPoint(outer.then_block):
                inner = scf.IfOp(full, [chunk_type] if read else [], has_else=True)
                with ir.InsertionPoint(inner.then_block):
                    t = _transfer(op, chunk_type, source, at, tail, masked=False)
                    scf.YieldOp(list(t.results))
                with ir.InsertionPoint(inner.else_block):
                    if not read and _in_bounds(op):
                        _scalar_stores(tail[0], source, at, left, lanes)
                        scf.YieldOp([])
                    else:
                        mask = vector.CreateMaskOp(mask_type, [left]).result
                        t = _transfer(op, chunk_type, source, at, [*tail, mask], masked=True)
                        scf.YieldOp(list(t.results))
                scf.YieldOp(list(inner.results))
            if read:
                with ir.InsertionPoint(outer.else_block):
                    scf.YieldOp([vector.BroadcastOp(chunk_type, padding).result])
                result = vector.InsertStridedSliceOp(outer.results[0], result, [offset],
                                                     [1]).result
    if read:
        op.results[0].replace_all_uses_with(result)
    op.erase()


def split_masked_transfers(module: ir.Module, cpu: CpuDescription | None = None) -> int:
    """Splits the masked 1-D transfers of ``module`` into register-wide guarded ones where
    :func:`applies`; returns how many were split."""
    cpu = cpu or host()
    if not applies(cpu):
        return 0
    with module.context, ir.Location.unknown():
        found = _candidates(module, cpu.vector_bits)
        for op, lanes, bounds in found:
            _split(op, lanes, bounds)
    return len(found)


__all__ = ["applies", "split_masked_transfers"]
