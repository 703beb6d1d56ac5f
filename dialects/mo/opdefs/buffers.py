"""Buffers: mutable tensors in memory (``!mo.buffer``) and the ops that read and write them.

``mo.buffer_create`` makes a new buffer, ``mo.buffer_load`` copies a buffer into an immutable
tensor, ``mo.buffer_store`` copies a tensor into a buffer and ``mo.buffer_store_slice`` into a
strided window of it. Side effects take effect in program order: a graph is one block, and a
load sees every store before it (docs/architecture.md, "Buffers"). Stores have no result, so
they have no numpy reference: their effect is tested through compiled graphs
(tests/dialects/rows_buffers.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from max.dialects.mo.opdefs.base import (
    INTS,
    AttrDef,
    OpDef,
    TensorSig,
    TypeLike,
    TypeRuleError,
    shape_text,
    static,
)


def _kind(t: TypeLike) -> str:
    return getattr(t, "kind", None) or getattr(t, "_KIND", "tensor")


def _same_element_and_device(op: str, buffer: TypeLike, x: TypeLike, what: str) -> None:
    if x.dtype != buffer.dtype:
        raise TypeRuleError(f"{op}: {what} has dtype {x.dtype.name}, buffer has "
                            f"{buffer.dtype.name}")
    if x.device != buffer.device:
        raise TypeRuleError(f"{op}: {what} is on {x.device}, buffer on {buffer.device}")


def _check_create(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any],
                  result: TypeLike | None) -> None:
    if result is None or _kind(result) != "buffer":
        raise TypeRuleError(f"{op}: the result must be an !mo.buffer")


def _load(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any]) -> TensorSig:
    """A tensor of the buffer's dtype, shape and device."""
    (buffer,) = operands
    return TensorSig(buffer.dtype, tuple(buffer.shape), buffer.device)


def _check_store(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any],
                 result: TypeLike | None) -> None:
    buffer, x = operands
    _same_element_and_device(op, buffer, x, "operand x")
    if list(x.shape) != list(buffer.shape):
        raise TypeRuleError(f"{op}: operand x {shape_text(x.shape)} does not have the buffer's "
                            f"shape {shape_text(buffer.shape)}")


def _check_store_slice(op: str, operands: Sequence[TypeLike], attrs: Mapping[str, Any],
                       result: TypeLike | None) -> None:
    """``buffer[starts[i] : starts[i] + x.shape[i] * steps[i] : steps[i]] = x``, provably
    inside the buffer: an axis is either stored whole (start 0, step 1, x's dim the buffer's)
    or has static sizes on both sides (a symbolic size could exceed the buffer at run time)."""
    buffer, x = operands
    _same_element_and_device(op, buffer, x, "operand x")
    starts, steps = list(attrs["starts"]), list(attrs["steps"])
    rank = len(buffer.shape)
    if len(x.shape) != rank or len(starts) != rank or len(steps) != rank:
        raise TypeRuleError(f"{op}: operand x {shape_text(x.shape)}, starts {starts} and steps "
                            f"{steps} must all have the buffer's rank {rank}")
    for axis, (b, d, start, step) in enumerate(zip(buffer.shape, x.shape, starts, steps)):
        if start == 0 and step == 1 and d == b:
            continue
        size, n = static(d), static(b)
        if size is None or n is None:
            raise TypeRuleError(f"{op}: axis {axis} stores {d} elements into {b}: a partial "
                                f"window needs static sizes")
        if start < 0 or step < 1:
            raise TypeRuleError(f"{op}: axis {axis} has start {start}, step {step} (need "
                                f"start >= 0, step >= 1)")
        if size > 0 and start + (size - 1) * step >= n:
            raise TypeRuleError(f"{op}: axis {axis} writes up to index "
                                f"{start + (size - 1) * step}, past the buffer's {n} elements")


def defs() -> list[OpDef]:
    return [
        OpDef("mo.buffer_create", (), check=_check_create, result_kind="buffer"),
        OpDef("mo.buffer_load", ("buffer",), infer=_load, buffers=("buffer",)),
        OpDef("mo.buffer_store", ("buffer", "x"), check=_check_store, buffers=("buffer",),
              results=0),
        OpDef("mo.buffer_store_slice", ("buffer", "x"),
              (AttrDef("starts", INTS), AttrDef("steps", INTS)),
              check=_check_store_slice, buffers=("buffer",), results=0),
    ]

