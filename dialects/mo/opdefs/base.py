"""What one MO op is: :class:`OpDef` (name, operands, attributes, result-type rule, reference).

A type rule works on anything with ``dtype`` (a :class:`~max.dtype.DType`), ``shape`` (a
sequence of :class:`~max.dialects.mo.dim.Dim`) and ``device`` (compared by equality only): the
graph builders hand it their ``TensorType``\\ s, the MO verifier a :class:`TensorSig` read from
an ``!mo.tensor`` type. Rules raise :class:`TypeRuleError` (a ``ValueError``) naming the op,
the operand and the mismatch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from max.dialects.mo.dim import Dim, StaticDim
from max.dtype import DType


class TypeLike(Protocol):
    @property
    def dtype(self) -> DType: ...

    @property
    def shape(self) -> Sequence[Dim]: ...

    @property
    def device(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class TensorSig:
    """The type of one operand or result, as a type rule sees it."""

    dtype: DType
    shape: tuple[Dim, ...]
    device: Any
    kind: str = "tensor"  # or "buffer" (!mo.buffer: mutable memory)

    @property
    def rank(self) -> int:
        return len(self.shape)


class TypeRuleError(ValueError):
    """An op's operands, attributes or result type break its type rule."""


# Attribute kinds: how an attribute is stored in MLIR, decoded to Python for rules and
# references (max.dialects.mo.verify does the decoding).
INT, INTS, FLOAT, STR, ELEMENTS = "int", "ints", "float", "str", "elements"
# A FlatSymbolRefAttr naming a function of the module (control-flow ops' subgraphs).
SYMBOL = "symbol"


@dataclass(frozen=True)
class AttrDef:
    name: str
    kind: str  # INT, INTS, FLOAT, STR, ELEMENTS or SYMBOL


InferFn = Callable[[str, Sequence[TypeLike], Mapping[str, Any]], TensorSig]
CheckFn = Callable[[str, Sequence[TypeLike], Mapping[str, Any], TypeLike], None]


@dataclass(frozen=True)
class OpDef:
    """One MO op, read by every layer: builders, IRDL check, verifier, folder, lowering tests.

    Attributes:
        name: the MO op name (``"mo.add"``).
        operands: operand names, in order (as in the IRDL spec).
        attributes: the op's attributes (all required).
        infer: the result type from operands and attributes, where they determine it.
        check: for ops whose result type carries information of its own (``mo.reshape``'s
            shape, ``mo.cast``'s dtype): checks a given result type. Exactly one of ``infer``
            and ``check`` is set.
        reference: evaluates the op with numpy (``max.dialects.mo.opdefs.reference``), or
            None where no exact reference exists.
        buffers: the operands that are ``!mo.buffer`` values (all others are tensors).
        results: how many results the op has: 1, or 0 for an op that only has an effect
            (``mo.buffer_store``; its ``check`` is then handed ``None`` as the result).
        result_kind: ``"tensor"`` or ``"buffer"`` (``mo.buffer_create``).
        defines_dim: for ops whose result size only the data determines (``mo.nonzero``,
            ``mo.range``, ``mo.repeat_interleave``): the result axis (from the attributes)
            whose dim may be a new symbol that this op binds when it runs. A symbol already
            bound there is checked at run time instead.
    """

    name: str
    operands: tuple[str, ...]
    attributes: tuple[AttrDef, ...] = ()
    infer: InferFn | None = None
    check: CheckFn | None = None
    reference: Any = None
    buffers: tuple[str, ...] = ()
    results: int = 1
    result_kind: str = "tensor"
    defines_dim: Callable[[Mapping[str, Any]], int] | None = None

    def __post_init__(self) -> None:
        if (self.infer is None) == (self.check is None):
            raise ValueError(f"{self.name}: exactly one of infer and check must be given")

    def verify(self, operands: Sequence[TypeLike], attrs: Mapping[str, Any],
               result: TypeLike | None) -> None:
        """Raises :class:`TypeRuleError` unless ``result`` is what the rule allows."""
        if len(operands) != len(self.operands):
            raise TypeRuleError(
                f"{self.name}: expected {len(self.operands)} operands "
                f"({', '.join(self.operands)}), got {len(operands)}")
        if self.check is not None:
            self.check(self.name, operands, attrs, result)
            return
        assert self.infer is not None and result is not None
        expected = self.infer(self.name, operands, attrs)
        if expected.dtype != result.dtype:
            raise TypeRuleError(f"{self.name}: result dtype {result.dtype.name} should be "
                                f"{expected.dtype.name}")
        if list(expected.shape) != list(result.shape):
            raise TypeRuleError(f"{self.name}: result shape {shape_text(result.shape)} should "
                                f"be {shape_text(expected.shape)}")
        if expected.device != result.device:
            raise TypeRuleError(f"{self.name}: result device {result.device} should be "
                                f"{expected.device}")


# -- helpers shared by the rules -------------------------------------------------------------------


def shape_text(shape: Sequence[Dim]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def static(d: Dim) -> int | None:
    return int(d.dim) if isinstance(d, StaticDim) else None


def same_device(op: str, names: Sequence[str], operands: Sequence[TypeLike]) -> Any:
    device = operands[0].device
    for name, x in zip(names[1:], operands[1:]):
        if x.device != device:
            raise TypeRuleError(f"{op}: operand {name} is on {x.device}, {names[0]} on {device}")
    return device


def same_dtype(op: str, names: Sequence[str], operands: Sequence[TypeLike]) -> DType:
    dtype = operands[0].dtype
    for name, x in zip(names[1:], operands[1:]):
        if x.dtype != dtype:
            raise TypeRuleError(f"{op}: operand {name} has dtype {x.dtype.name}, {names[0]} "
                                f"has {dtype.name} (operands must share one dtype)")
    return dtype


def broadcast(op: str, names: Sequence[str], shapes: Sequence[Sequence[Dim]]) -> tuple[Dim, ...]:
    """numpy broadcasting: each pair of dims equal (canonically) or one of them a static 1."""
    # Fast path (graph building: most elementwise ops see operands of one shape). Equal shapes
    # broadcast to themselves; list equality tries identity before Dim.__eq__.
    first = list(shapes[0]) if shapes else []
    if all(list(s) == first for s in shapes[1:]):
        return tuple(first)
    rank = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for i in range(rank):
        result: Dim | None = None
        owner = ""
        for name, s in zip(names, shapes):
            j = i - (rank - len(s))
            if j < 0:
                continue
            d = s[j]
            if result is None or result == 1:
                result, owner = d, name
            elif d != 1 and d != result:
                raise TypeRuleError(
                    f"{op}: operand shapes do not broadcast: dim {i} (from the left of the "
                    f"result) is {result} in {owner} {shape_text(_shape_of(names, shapes, owner))}"
                    f" and {d} in {name} {shape_text(s)}")
        assert result is not None
        out.append(result)
    return tuple(out)


def _shape_of(names: Sequence[str], shapes: Sequence[Sequence[Dim]], name: str) -> Sequence[Dim]:
    return shapes[list(names).index(name)]


def check_axis(op: str, axis: Any, rank: int, what: str = "axis") -> int:
    if type(axis) is not int or not 0 <= axis < rank:
        raise TypeRuleError(f"{op}: attribute {what}={axis!r} is not an axis of a rank-{rank} "
                            f"operand (0 <= {what} < {rank})")
    return axis


def num_elements(shape: Sequence[Dim]) -> Dim:
    count: Dim = Dim(1)
    for d in shape:
        count = count * d
    return count


def expect_shape(op: str, result: TypeLike, shape: Sequence[Dim], why: str) -> None:
    if list(result.shape) != list(shape):
        raise TypeRuleError(f"{op}: result shape {shape_text(result.shape)} should be "
                            f"{shape_text(shape)} ({why})")


def expect_dtype(op: str, result: TypeLike, dtype: DType) -> None:
    if result.dtype != dtype:
        raise TypeRuleError(f"{op}: result dtype {result.dtype.name} should be {dtype.name}")


def expect_device(op: str, result: TypeLike, device: Any) -> None:
    if result.device != device:
        raise TypeRuleError(f"{op}: result device {result.device} should be {device}")
