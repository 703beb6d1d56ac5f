"""How a kernel reads and writes each operand of a ``linalg.generic`` on memrefs.

An operand's indexing map must be a projected permutation (constant-0 results allowed: a
broadcast unit dim). Sizes may be symbolic (``memref<?x300xf32>``): a schedule reads such a
loop's extent from its operand's descriptor (:func:`extents`, a ``memref.dim``), and two ops'
symbolic extents are known equal only when they come from the same argument dim or size
value (:func:`loop_keys`). Along the loop dim that threads step through in vectors of ``W`` lanes
(the innermost one), an operand is *contiguous* (the map's last result is that dim, and its
memref has the identity layout: one aligned vector load/store), *uniform* (the dim does not
appear: one scalar load shared by all lanes) or *strided* (any other place: the op is read
lane by lane, so the schedule uses ``W = 1``).
"""

from __future__ import annotations

from dataclasses import dataclass

from mlir import ir

from max.compiler.gpu.body import KernelText
from max.compiler.passes.ir_util import defining_op


@dataclass(frozen=True)
class Operand:
    """One operand: its type text, and each memref index as a loop dim (int) or 0 (None)."""

    type: str
    element: str
    element_bytes: int
    dims: tuple[int | None, ...] | None  # None: a scalar operand (not a memref)
    identity_layout: bool
    # Where some index is another affine expression (a convolution's ``oh + kh``; only with
    # ``analyze(..., affine=True)``): every index's expression, and ``dims`` holds -1 there.
    exprs: tuple[ir.AffineExpr, ...] | None = None

    def lanes_kind(self, inner: int) -> str:
        """``"contiguous"``, ``"uniform"`` or ``"strided"`` along loop dim ``inner``."""
        if self.dims is None or inner not in self.dims:
            return "uniform"
        if self.dims[-1] == inner and self.identity_layout:
            return "contiguous"
        return "strided"


def element_bytes(t: ir.Type) -> int | None:
    """Bytes per element of a float or integer type (None: another type)."""
    for kind in (ir.F16Type, ir.BF16Type, ir.F32Type, ir.F64Type):
        if isinstance(t, kind):
            return {ir.F16Type: 2, ir.BF16Type: 2, ir.F32Type: 4, ir.F64Type: 8}[kind]
    if isinstance(t, ir.IntegerType):
        width = ir.IntegerType(t).width
        return width // 8 if width in (8, 16, 32, 64) else None
    return None


def _sum_of_products(expr: ir.AffineExpr) -> bool:
    """Whether ``expr`` is built of dims and constants by ``+`` and ``*`` (constant factors)."""
    if isinstance(expr, (ir.AffineDimExpr, ir.AffineConstantExpr)):
        return True
    if isinstance(expr, ir.AffineAddExpr):
        return _sum_of_products(expr.lhs) and _sum_of_products(expr.rhs)
    if isinstance(expr, ir.AffineMulExpr):
        return (isinstance(expr.rhs, ir.AffineConstantExpr) and _sum_of_products(expr.lhs)) \
            or (isinstance(expr.lhs, ir.AffineConstantExpr) and _sum_of_products(expr.rhs))
    return False


def index_text(k: KernelText, expr: ir.AffineExpr, indices: list[str]) -> str:
    """Text: the index value of affine ``expr`` (see :func:`_sum_of_products`) at loop
    ``indices``."""
    if isinstance(expr, ir.AffineDimExpr):
        return indices[expr.position]
    if isinstance(expr, ir.AffineConstantExpr):
        return k.const_index(expr.value)
    op = "arith.addi" if isinstance(expr, ir.AffineAddExpr) else "arith.muli"
    lhs, rhs = index_text(k, expr.lhs, indices), index_text(k, expr.rhs, indices)
    return k.op(f"{op} {lhs}, {rhs} : index", "i")


def analyze(generic: ir.Operation, affine: bool = False) -> tuple[list[Operand], str | None]:
    """The operands of ``generic`` (inputs then outputs), or the reason the schedules cannot
    read them. ``affine``: an index may be any sum of products of loops and constants (the
    plain kernel's reads: a convolution's window), recorded in ``Operand.exprs``."""
    maps = [ir.AffineMapAttr(a).value for a in ir.ArrayAttr(generic.attributes["indexing_maps"])]
    result: list[Operand] = []
    for value, amap in zip(generic.operands, maps):
        t = value.type
        if not isinstance(t, ir.MemRefType):
            nbytes = element_bytes(t)
            if nbytes is None or amap.results:
                return [], f"operand of type {t}"
            result.append(Operand(str(t), str(t), nbytes, None, True))
            continue
        mt = ir.MemRefType(t)
        if mt.memory_space is not None:
            return [], f"memory space {t}"
        nbytes = element_bytes(mt.element_type)
        if nbytes is None:
            return [], f"element type {mt.element_type}"
        dims: list[int | None] = []
        general = False
        for expr in amap.results:
            if isinstance(expr, ir.AffineDimExpr):
                dims.append(ir.AffineDimExpr(expr).position)
            elif isinstance(expr, ir.AffineConstantExpr) and ir.AffineConstantExpr(expr).value == 0:
                dims.append(None)
            elif affine and _sum_of_products(expr):
                dims.append(-1)
                general = True
            else:
                return [], f"indexing map {amap}"
        identity = "strided" not in str(t) and "affine_map" not in str(t)
        result.append(Operand(str(t), str(mt.element_type), nbytes, tuple(dims), identity,
                              tuple(amap.results) if general else None))
    return result, None


def vector_width(operands: list[Operand], inner: int, extent: int, outputs: list[Operand]
                 ) -> int:
    """Lanes per thread step along loop dim ``inner`` (of ``extent`` iterations): 16 bytes of
    the narrowest contiguous operand, halved until it divides ``extent``; 1 when an operand
    (or output) is strided, or none is contiguous."""
    kinds = [o.lanes_kind(inner) for o in operands]
    if "strided" in kinds or any(o.lanes_kind(inner) != "contiguous" for o in outputs):
        return 1
    sizes = [o.element_bytes for o, k in zip(operands, kinds) if k == "contiguous"]
    if not sizes or extent == DYNAMIC:
        return 1
    width = 16 // min(sizes)
    while width > 1 and extent % width:
        width //= 2
    return width


def load_lanes(k: KernelText, value: str, operand: Operand, indices: list[str], inner: int,
               width: int) -> list[str]:
    """Text loading ``width`` lanes of an input at loop ``indices`` (the inner one is the
    first lane's); returns one scalar name per lane."""
    if operand.dims is None:
        return [value] * width
    zero = None
    idx: list[str] = []
    if operand.exprs is not None:  # width 1 (plain kernels): every index computed
        idx = [index_text(k, e, indices) for e in operand.exprs]
    for d in operand.dims if operand.exprs is None else ():
        if d is None:
            zero = zero or k.const_index(0)
            idx.append(zero)
        else:
            idx.append(indices[d])
    where = f"{value}[{', '.join(idx)}]"
    if width == 1 or operand.lanes_kind(inner) == "uniform":
        scalar = k.op(f"memref.load {where} : {operand.type}", "x")
        return [scalar] * width
    vtype = f"vector<{width}x{operand.element}>"
    align = min(16, width * operand.element_bytes)
    vec = k.op(f"vector.load {where} {{alignment = {align}}} : {operand.type}, {vtype}", "x")
    return [k.op(f"vector.extract {vec}[{lane}] : {operand.element} from {vtype}", "x")
            for lane in range(width)]


def store_lanes(k: KernelText, lanes: list[str], value: str, operand: Operand,
                indices: list[str]) -> None:
    """Text storing ``lanes`` (one per lane, contiguous along the last memref dim)."""
    assert operand.dims is not None
    zero = k.const_index(0) if None in operand.dims else ""
    where = f"{value}[{', '.join(zero if d is None else indices[d] for d in operand.dims)}]"
    if len(lanes) == 1:
        k.raw(f"memref.store {lanes[0]}, {where} : {operand.type}")
        return
    vtype = f"vector<{len(lanes)}x{operand.element}>"
    align = min(16, len(lanes) * operand.element_bytes)
    vec = k.op(f"vector.from_elements {', '.join(lanes)} : {vtype}", "y")
    k.raw(f"vector.store {vec}, {where} {{alignment = {align}}} : {operand.type}, {vtype}")


def delinearize(k: KernelText, linear: str, shape: list[int | str]) -> list[str]:
    """Text splitting a row-major linear index over ``shape`` (each size an int or the name
    of an index value) into one index per dim."""
    if not shape:
        return []
    out: list[str] = [""] * len(shape)
    rest = linear
    for d in range(len(shape) - 1, -1, -1):
        if d == 0:
            out[d] = rest
            break
        size = shape[d] if isinstance(shape[d], str) else k.const_index(shape[d])
        out[d] = k.op(f"arith.remui {rest}, {size} : index", "i")
        rest = k.op(f"arith.divui {rest}, {size} : index", "i")
    return out


DYNAMIC = ir.ShapedType.get_dynamic_size()  # a symbolic extent in :func:`loop_shape`


def _indexing(generic: ir.Operation, operands: list[Operand], d: int
              ) -> tuple[int, int] | None:
    """(operand, position) of the first memref operand that indexes loop ``d`` there, a
    static size preferred."""
    found = None
    for i, (value, o) in enumerate(zip(generic.operands, operands)):
        if o.dims is None:
            continue
        for pos, dim in enumerate(o.dims):
            if dim == d:
                if ir.MemRefType(value.type).shape[pos] != DYNAMIC:
                    return i, pos
                found = found or (i, pos)
    return found


def loop_shape(generic: ir.Operation, operands: list[Operand]) -> list[int]:
    """Each loop's extent, read from an operand that indexes it (:data:`DYNAMIC` where every
    such operand's size is symbolic)."""
    rank = len(ir.ArrayAttr(generic.attributes["iterator_types"]))
    shape = []
    for d in range(rank):
        at = _indexing(generic, operands, d)
        if at is None:
            raise ValueError("a loop no operand indexes")
        shape.append(ir.MemRefType(generic.operands[at[0]].type).shape[at[1]])
    return shape


def extents(k: KernelText, generic: ir.Operation, operands: list[Operand], args: list[str]
            ) -> list[str]:
    """Each loop's extent as an index value of the kernel text: a constant, or the
    ``memref.dim`` of an operand (``args``: the operands' names) that indexes it."""
    out = []
    for d, size in enumerate(loop_shape(generic, operands)):
        if size != DYNAMIC:
            out.append(k.const_index(size))
            continue
        i, pos = _indexing(generic, operands, d) or (0, 0)
        out.append(k.op(f"memref.dim {args[i]}, {k.const_index(pos)} : {operands[i].type}",
                        "n"))
    return out


def product(k: KernelText, sizes: list[str]) -> str:
    """Text: the product of index values (1 for none)."""
    total = k.const_index(1)
    for i, size in enumerate(sizes):
        total = size if i == 0 else k.op(f"arith.muli {total}, {size} : index", "n")
    return total


def grid(k: KernelText, work: str, per_block: int, max_blocks: int | None = None) -> str:
    """Text: blocks for ``work`` items at ``per_block`` a block, at least 1 (a launch of no
    blocks is an error; a block with nothing to do returns) and at most ``max_blocks``."""
    blocks = k.op(f"arith.ceildivui {work}, {k.const_index(per_block)} : index", "g")
    if max_blocks is not None:
        blocks = k.op(f"arith.minui {blocks}, {k.const_index(max_blocks)} : index", "g")
    return k.op(f"arith.maxui {blocks}, {k.const_index(1)} : index", "g")


def _size_key(value: ir.Value, pos: int) -> object:
    """What determines dim ``pos`` of memref ``value`` at run time, as a hashable key: an
    argument's dim, or the index value an allocation was sized with (None: unknown)."""
    op = defining_op(value)
    if op is None:
        return ("arg", ir.BlockArgument(value).arg_number, pos)
    if op.name == "memref.alloc":
        shape = ir.MemRefType(value.type).shape
        dynamic_pos = [p for p, s in enumerate(shape) if s == DYNAMIC]
        size = list(op.operands)[dynamic_pos.index(pos)]
        return _index_key(size)
    return None


def _index_key(size: ir.Value) -> object:
    op = defining_op(size)
    if op is not None and op.name == "memref.dim":
        source, index = list(op.operands)
        index_op = defining_op(index)
        if index_op is not None and index_op.name == "arith.constant":
            return _size_key(source, ir.IntegerAttr(index_op.attributes["value"]).value)
    return ("value", size)


def loop_keys(generic: ir.Operation, operands: list[Operand]) -> list[object]:
    """Each loop's extent as a comparable key: the int, or for a symbolic extent where it
    comes from (the same key: the same size at run time; a unique object if not known)."""
    keys: list[object] = []
    for d, size in enumerate(loop_shape(generic, operands)):
        if size != DYNAMIC:
            keys.append(size)
            continue
        found = None
        for value, o in zip(generic.operands, operands):
            for pos, dim in enumerate(o.dims or ()):
                if dim == d and ir.MemRefType(value.type).shape[pos] == DYNAMIC:
                    found = found or _size_key(value, pos)
        keys.append(found if found is not None else object())
    return keys


__all__ = ["DYNAMIC", "Operand", "analyze", "delinearize", "element_bytes", "extents", "grid",
           "index_text", "load_lanes", "loop_keys", "loop_shape", "product", "store_lanes",
           "vector_width"]
