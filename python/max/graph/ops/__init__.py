"""Implements operations used when staging a graph.

Every op builds one MO op (plus the ``mo.cast``/``mo.reshape``/``mo.broadcast_to`` it needs)
in the current :class:`~max.graph.Graph`, with its result type inferred in Python. The rules
every op obeys:

**DType promotion.** Ops with several tensor inputs promote them to one dtype. Promotion
always returns one of the input dtypes, never a wider one. Dtypes rank by category
(``bool < unsigned int < signed int < float``) and bit width; the common dtype has the
highest category and the largest bit width of the inputs, and must represent every input
exactly, or the op raises ``ValueError`` (``uint8`` with ``int8``, ``int32`` with
``float16``, ``int32`` with ``float32``: cast explicitly with :func:`cast`). Inputs of another
dtype are converted with ``mo.cast`` before the op. Comparisons and logical ops return
``bool``; :func:`div` of integers returns ``float64``; :func:`argmax`/:func:`argmin` return
``int64``.

**Python values are weak.** Python and numpy scalars and numpy arrays take the dtype of the
graph value they meet (``x + 1`` keeps ``x.dtype``), after a check that they are exactly
representable in it: a ``float`` never becomes an integer, ``2**40`` does not fit ``int32``,
``16777217`` does not fit ``float32`` (``ValueError``). An op needs at least one graph value
(``TypeError`` otherwise); unary ops take graph values only.

**Broadcasting.** Elementwise ops and :func:`where` broadcast like numpy: shapes align from
the right, and each pair of dims must be equal or one of them a static 1. Symbolic dims
match by name, algebraic dims by their canonical form (``2 * batch`` equals
``batch * 2``); a symbolic dim never broadcasts against another symbol (``ValueError``).
:func:`matmul` broadcasts its batch dims the same way.

**Axes** may be negative (counting from the end); reductions keep the reduced axis with
size 1.

**Device placement.** The operands of an op must be on one device (``ValueError``
otherwise: move them with :func:`transfer_to`); weak values are placed on the device of the
graph value they meet; the result lives on that device.

Errors name the op, the argument and the offending shapes or dtypes: ``ValueError`` for bad
shapes, dtypes and axes, ``TypeError`` for arguments of the wrong Python type.
"""

from __future__ import annotations

from max.graph.ops.atanh import atanh
from max.graph.ops.band_part import band_part
from max.graph.ops.broadcast_to import broadcast_to
from max.graph.ops.buffer import buffer_create, buffer_load, buffer_store, buffer_store_slice
from max.graph.ops.cast import cast
from max.graph.ops.concat import concat
from max.graph.ops.constant import constant, constant_external
from max.graph.ops.conv import conv2d, conv2d_transpose, conv3d
from max.graph.ops.cumsum import cumsum
from max.graph.ops.custom import custom, inplace_custom
from max.graph.ops.debug import assert_same_device, print
from max.graph.ops.elementwise import (
    abs,
    acos,
    add,
    cos,
    div,
    equal,
    erf,
    exp,
    floor,
    floor_div,
    gelu,
    greater,
    greater_equal,
    is_inf,
    is_nan,
    log,
    log1p,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    mod,
    mul,
    negate,
    not_equal,
    pow,
    relu,
    round,
    rsqrt,
    sigmoid,
    silu,
    sin,
    sqrt,
    sub,
    tanh,
    trunc,
)
from max.graph.ops.flow import call, cond, while_loop
from max.graph.ops.fold import fold
from max.graph.ops.gather import gather
from max.graph.ops.indexing import gather_nd, scatter, scatter_nd
from max.graph.ops.nonzero import masked_scatter, nonzero
from max.graph.ops.interleave import as_interleaved_complex, repeat_interleave
from max.graph.ops.irfft import irfft
from max.graph.ops.layer_norm import layer_norm
from max.graph.ops.matmul import matmul
from max.graph.ops.outer import outer
from max.graph.ops.pad import pad
from max.graph.ops.pooling import avg_pool2d, max_pool2d
from max.graph.ops.quantized import dequantize, qmatmul
from max.graph.ops.range import hann_window, range
from max.graph.ops.rebind import rebind, shape_to_tensor
from max.graph.ops.reduction import argmax, argmin, max, mean, min, sum
from max.graph.ops.reshape import flatten, reshape, squeeze, unsqueeze
from max.graph.ops.resize import InterpolationMode, resize
from max.graph.ops.slice import slice_tensor
from max.graph.ops.softmax import logsoftmax, softmax
from max.graph.ops.sort import argsort, top_k
from max.graph.ops.split import chunk, split
from max.graph.ops.stack import stack
from max.graph.ops.tile import tile
from max.graph.ops.transfer_to import allgather, transfer_to
from max.graph.ops.transpose import permute, transpose
from max.graph.ops.where import where
from max.graph.type import DeviceRef, TensorType

__all__ = [
    "DeviceRef",
    "InterpolationMode",
    "TensorType",
    "abs",
    "acos",
    "add",
    "allgather",
    "argmax",
    "argmin",
    "argsort",
    "as_interleaved_complex",
    "assert_same_device",
    "atanh",
    "avg_pool2d",
    "band_part",
    "broadcast_to",
    "buffer_create",
    "buffer_load",
    "buffer_store",
    "buffer_store_slice",
    "call",
    "cast",
    "chunk",
    "concat",
    "cond",
    "constant",
    "constant_external",
    "conv2d",
    "conv2d_transpose",
    "conv3d",
    "cos",
    "cumsum",
    "custom",
    "dequantize",
    "div",
    "equal",
    "erf",
    "exp",
    "flatten",
    "floor",
    "floor_div",
    "fold",
    "gather",
    "gather_nd",
    "gelu",
    "greater",
    "greater_equal",
    "hann_window",
    "irfft",
    "inplace_custom",
    "is_inf",
    "is_nan",
    "layer_norm",
    "log",
    "log1p",
    "logical_and",
    "logical_not",
    "logical_or",
    "logical_xor",
    "logsoftmax",
    "matmul",
    "max",
    "max_pool2d",
    "mean",
    "min",
    "mod",
    "mul",
    "negate",
    "not_equal",
    "outer",
    "pad",
    "permute",
    "pow",
    "print",
    "qmatmul",
    "range",
    "rebind",
    "relu",
    "repeat_interleave",
    "reshape",
    "resize",
    "round",
    "rsqrt",
    "scatter",
    "scatter_nd",
    "masked_scatter",
    "nonzero",
    "shape_to_tensor",
    "sigmoid",
    "silu",
    "sin",
    "slice_tensor",
    "softmax",
    "split",
    "sqrt",
    "squeeze",
    "stack",
    "sub",
    "sum",
    "tanh",
    "tile",
    "top_k",
    "transfer_to",
    "transpose",
    "trunc",
    "unsqueeze",
    "where",
    "while_loop",
]
