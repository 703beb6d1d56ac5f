"""``max_pool2d`` and ``avg_pool2d`` over the spatial dims of NHWC tensors."""

from __future__ import annotations

from typing import Any

from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import as_strong, emit
from max.graph.ops.conv import check_window, int_tuple, out_dims


def _pool(op: str, mo_op: str, input: Any, kernel_size: Any, stride: Any, dilation: Any,
          padding: Any, ceil_mode: bool, extra: dict[str, int]) -> TensorValue:
    x = as_strong(op, input, "input")
    if x.rank != 4:
        raise ValueError(f"{op}: input must have rank 4 (NHWC), got shape "
                         f"{_dims.shape_text(x.shape)}")
    if not x.dtype.is_float():
        raise ValueError(f"{op}: input must have a floating-point dtype, got {x.dtype.name}")
    if isinstance(kernel_size, tuple | list):
        kernel_size = [_dims.static_value(_dims.as_dim(k, where=f"{op}: kernel_size"))
                       if not isinstance(k, int) else k for k in kernel_size]
        if None in kernel_size:
            raise ValueError(f"{op}: kernel_size must be static, got {kernel_size!r}")
    kernel = int_tuple(op, "kernel_size", kernel_size, 2, 1)
    strides = int_tuple(op, "stride", stride, 2, 1)
    dilations = int_tuple(op, "dilation", dilation, 2, 1)
    ph, pw = int_tuple(op, "padding", padding, 2, 0)
    if not isinstance(ceil_mode, bool):
        raise TypeError(f"{op}: ceil_mode must be a bool, got {ceil_mode!r}")
    for i, (p, name) in enumerate(((ph, "height"), (pw, "width"))):
        # PyTorch's rule: then every window holds at least one input element.
        span = dilations[i] * (kernel[i] - 1) + 1
        if 2 * p > span:
            raise ValueError(f"{op}: padding {p} in {name} must be at most half the window "
                             f"(kernel_size {kernel[i]}, dilation {dilations[i]}: {span})")
    pads = [ph, ph, pw, pw]
    check_window(op, x, kernel, strides, dilations, pads, "kernel")
    shape = [x.shape[0], *out_dims(op, x, kernel, strides, dilations, pads, ceil_mode),
             x.shape[3]]
    attrs: dict[str, Any] = {"kernel": kernel, "strides": strides, "dilations": dilations,
                             "paddings": pads, "ceil_mode": int(ceil_mode), **extra}
    return emit(mo_op, [x], x.dtype, shape, x.device, attrs)


def max_pool2d(input: Any, kernel_size: Any, stride: Any = 1, dilation: Any = 1,
               padding: Any = 0, ceil_mode: bool = False) -> TensorValue:
    """Perform a 2D max pooling operation on the input tensor.

    This function applies a 2D max pooling operation to the input tensor [N, H, W, C]. The
    pooling operation slides a window of size kernel_size over the input tensor, and selects
    the maximum value within each window.

    Args:
        input: The input tensor to perform the pooling operation on.
        kernel_size: The size of the sliding blocks.
        stride: The stride of the sliding blocks in the input dimension.
        dilation: The spacing between the kernel elements.
        padding: 0-paddings to be added on both sides of the inputs (they never win).
        ceil_mode: If true, use ceil instead of floor to compute the output shape.

    Returns:
        The pooled tensor [N, OH, OW, C].

    Example:
        >>> from max.dtype import DType
        >>> from max.graph import DeviceRef, Graph, TensorType, ops
        >>> with Graph("pool", input_types=[
        ...         TensorType(DType.float32, (1, 7, 7, 8), DeviceRef.CPU())]) as g:
        ...     y = ops.max_pool2d(g.inputs[0], (3, 3), stride=2, ceil_mode=True)
        >>> print(y.shape)
        [1, 3, 3, 8]
    """
    return _pool("max_pool2d", "mo.max_pool2d", input, kernel_size, stride, dilation, padding,
                 ceil_mode, {})


def avg_pool2d(input: Any, kernel_size: Any, stride: Any = 1, dilation: Any = 1,
               padding: Any = 0, ceil_mode: bool = False,
               count_boundary: bool = True) -> TensorValue:
    """Perform a 2D average pooling operation on the input tensor.

    This function applies a 2D average pooling operation to the input tensor [N, H, W, C].
    The pooling operation slides a window of size kernel_size over the input tensor, and
    computes the average value within each window.

    Args:
        input: The input tensor to perform the pooling operation on.
        kernel_size: The size of the sliding blocks.
        stride: The stride of the sliding blocks in the input dimension.
        dilation: The spacing between the kernel elements.
        padding: 0-paddings to be added on both sides of the inputs.
        ceil_mode: If true, use ceil instead of floor to compute the output shape.
        count_boundary: If true, count the padding elements when computing the average.

    Returns:
        The pooled tensor [N, OH, OW, C].
    """
    if not isinstance(count_boundary, bool):
        raise TypeError(f"avg_pool2d: count_boundary must be a bool, got {count_boundary!r}")
    return _pool("avg_pool2d", "mo.avg_pool2d", input, kernel_size, stride, dilation, padding,
                 ceil_mode, {"count_boundary": int(count_boundary)})
