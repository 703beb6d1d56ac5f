"""``fold``: combines sliding blocks into a larger tensor (col2im, ``mo.fold``)."""

from __future__ import annotations

from typing import Any

from max.dialects.mo.dim import Dim
from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import as_strong, emit
from max.graph.ops.conv import int_tuple


def fold(input: Any, output_size: Any, kernel_size: Any, stride: Any = 1, dilation: Any = 1,
         padding: Any = 0) -> TensorValue:
    """Combines an array of sliding blocks into a larger containing tensor.

    The input tensor must have shape ``(N, C * kernel_sizes, L)`` where ``N`` is the batch
    dimension, ``C`` is the number of channels, ``kernel_sizes`` is the product of the kernel
    sizes, and ``L`` is the number of local blocks. The resulting output tensor will have
    shape ``(N, C, output_shape[0], output_shape[1])``. ``L``, the number of blocks, must be
    equivalent to ``prod((output_size[d] + 2 * padding[d] - dilation[d] * (kernel_size[d] - 1)
    - 1) / stride[d] + 1)`` where ``d`` is over all spatial dimensions. Values of overlapping
    blocks are summed.

    Args:
        input: The 3D tensor to fold with shape ``(N, C * kernel sizes, L)``.
        output_size: Spatial dimensions of the output tensor. Must be a tuple of two ints.
        kernel_size: The size of the sliding blocks. Must be a tuple of two ints.
        stride: The stride of the sliding blocks in the input dimension (can be an int or a
            tuple of two ints).
        dilation: The spacing between the kernel elements (can be an int or a tuple of two
            ints).
        padding: 0-paddings to be added on both sides of the inputs (can be an int or a tuple
            of two ints).

    Returns:
        The folded 4D tensor with shape ``(N, C, output_shape[0], output_shape[1])``.
    """
    op = "fold"
    x = as_strong(op, input, "input")
    if x.rank != 3:
        raise ValueError(f"{op}: input must have rank 3 (N, C * kernel sizes, L), got shape "
                         f"{_dims.shape_text(x.shape)}")
    if not x.dtype.is_float():
        raise ValueError(f"{op}: input must have a floating-point dtype, got {x.dtype.name}")
    sizes = [_dims.static_value(_dims.as_dim(v, where=f"{op}: output_size"))
             for v in (output_size if isinstance(output_size, tuple | list) else [output_size])]
    if len(sizes) != 2 or None in sizes:
        raise ValueError(f"{op}: output_size must be a tuple of two static ints, got "
                         f"{output_size!r}")
    out = int_tuple(op, "output_size", sizes, 2, 1)
    kernel = int_tuple(op, "kernel_size", kernel_size, 2, 1)
    strides = int_tuple(op, "stride", stride, 2, 1)
    dilations = int_tuple(op, "dilation", dilation, 2, 1)
    ph, pw = int_tuple(op, "padding", padding, 2, 0)
    k = kernel[0] * kernel[1]
    ck = _dims.static_value(x.shape[1])
    if ck is None or ck % k:
        raise ValueError(f"{op}: dim 1 of input shape {_dims.shape_text(x.shape)} must be C * "
                         f"{kernel[0]} * {kernel[1]} (kernel_size {tuple(kernel)})")
    blocks = []
    for i, (name, p) in enumerate((("height", ph), ("width", pw))):
        span = dilations[i] * (kernel[i] - 1) + 1
        if out[i] + 2 * p < span:
            raise ValueError(f"{op}: output_size {tuple(out)} with padding {p} is smaller in "
                             f"{name} than the kernel ({span} elements)")
        blocks.append((out[i] + 2 * p - span) // strides[i] + 1)
    if x.shape[2] != Dim(blocks[0] * blocks[1]):
        raise ValueError(f"{op}: input shape {_dims.shape_text(x.shape)} must hold "
                         f"{blocks[0]} * {blocks[1]} = {blocks[0] * blocks[1]} sliding blocks "
                         f"in dim 2 for output_size {tuple(out)}")
    attrs = {"output_size": out, "kernel": kernel, "strides": strides, "dilations": dilations,
             "paddings": [ph, ph, pw, pw]}
    return emit("mo.fold", [x], x.dtype, [x.shape[0], Dim(ck // k), *map(Dim, out)], x.device,
                attrs)
