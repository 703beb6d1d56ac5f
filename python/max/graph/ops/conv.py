"""``conv2d`` and ``conv2d_transpose``: 2-D convolutions of NHWC inputs by RSCF filters
(``mo.conv2d``, ``mo.conv2d_transpose``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from max.dialects.mo.dim import Dim
from max.dialects.mo.opdefs.base import TypeRuleError
from max.dialects.mo.opdefs.conv import transpose_dim, window_dim
from max.graph.type import ConvInputLayout, FilterLayout
from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import as_strong, emit, same_device
from max.graph.ops.elementwise import add
from max.graph.ops.transpose import permute


def int_tuple(op: str, name: str, value: Any, n: int, low: int) -> list[int]:
    """``value`` (an int, or a tuple of ``n`` ints) as ``n`` Python ints >= ``low``."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,) * n
    if isinstance(value, Sequence) and not isinstance(value, str):
        out = [int(v) for v in value if hasattr(v, "__index__") and not isinstance(v, bool)]
        if len(out) == len(value) == n:
            if all(v >= low for v in out):
                return out
            raise ValueError(f"{op}: {name} {tuple(value)} must be integers >= {low}")
    raise TypeError(f"{op}: {name} must be an int or a tuple of {n} ints, got {value!r}")


def static_kernel(op: str, w: TensorValue) -> list[int]:
    """The filter's dims as Python ints; raises ValueError unless all are static."""
    kernel = [_dims.static_value(d) for d in w.shape]
    if None in kernel:
        raise ValueError(f"{op}: filter shape {_dims.shape_text(w.shape)} must be static")
    return [int(k) for k in kernel]  # type: ignore[arg-type]


def check_groups(op: str, groups: Any) -> None:
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")


def check_channels(op: str, x: TensorValue, w: TensorValue, cg: int, fo: int,
                   groups: int) -> None:
    """x's channels (its last dim) must be ``cg * groups``, and ``groups`` must divide ``fo``."""
    c = _dims.static_value(x.shape[-1])
    if c is None or c != cg * groups:
        raise ValueError(
            f"{op}: x shape {_dims.shape_text(x.shape)} has {x.shape[-1]} input channels, but "
            f"filter shape {_dims.shape_text(w.shape)} with groups={groups} expects "
            f"{cg} * {groups} = {cg * groups}")
    if fo % groups:
        raise ValueError(f"{op}: groups={groups} does not divide the {fo} output channels of "
                         f"filter shape {_dims.shape_text(w.shape)}")


def add_bias(op: str, y: TensorValue, bias: Any, fo: int) -> TensorValue:
    """``y + bias`` for a bias of shape ``[fo]`` (out_channels) and ``y``'s dtype."""
    b = as_strong(op, bias, "bias")
    if b.rank != 1 or _dims.static_value(b.shape[0]) != fo or b.dtype != y.dtype:
        raise ValueError(f"{op}: bias must have shape [{fo}] (out_channels) and dtype "
                         f"{y.dtype.name}, got {_dims.shape_text(b.shape)} {b.dtype.name}")
    return add(y, b)


def check_window(op: str, x: TensorValue, kernel: Sequence[int], strides: Sequence[int],
                 dilations: Sequence[int], pads: Sequence[int], kernel_what: str) -> None:
    """Raises ValueError where a static spatial dim is smaller than one dilated window."""
    for axis, name in ((1, "height"), (2, "width")):
        i = axis - 1
        size = _dims.static_value(x.shape[axis])
        span = dilations[i] * (kernel[i] - 1) + 1
        if size is not None and size + pads[2 * i] + pads[2 * i + 1] < span:
            raise ValueError(
                f"{op}: input shape {_dims.shape_text(x.shape)} with padding {list(pads)} is "
                f"smaller in {name} than the {kernel_what} ({kernel[i]} taps, dilation "
                f"{dilations[i]}: {span} elements)")


def conv2d(x: Any, filter: Any, stride: Any = (1, 1), dilation: Any = (1, 1),
           padding: Any = (0, 0, 0, 0), groups: int = 1, bias: Any = None,
           input_layout: ConvInputLayout = ConvInputLayout.NHWC,
           filter_layout: FilterLayout = FilterLayout.RSCF) -> TensorValue:
    """Computes the 2-D convolution product of the input with the given filter, bias,
    strides, dilations, paddings, and groups.

    The op supports 2-D convolution, with the following layout assumptions: input ``x`` has
    NHWC layout, i.e., (batch_size, height, width, in_channels); filter has layout RSCF,
    i.e., (height, width, in_channels / num_groups, out_channels); bias has shape
    (out_channels,). The padding values are expected to take the form (pad_dim1_before,
    pad_dim1_after, pad_dim2_before, pad_dim2_after) and represent padding 0's before and
    after the indicated spatial dimensions in input; dim1 is H and dim2 is W.

    Args:
        x: An NHWC input tensor to perform the convolution upon.
        filter: The convolution filter in RSCF layout: (height, width,
            in_channels / num_groups, out_channels).
        stride: The stride of the convolution operation.
        dilation: The spacing between the kernel points.
        padding: The amount of padding applied to the input.
        groups: When greater than 1, divides the convolution into multiple parallel
            convolutions. The number of input and output channels must both be divisible
            by the number of groups.
        bias: A tensor of shape (out_channels,) added to the result, or None.
        input_layout: NHWC (NCHW inputs are permuted to NHWC and the result back).
        filter_layout: RSCF (FCRS filters, PyTorch's layout, are permuted to RSCF).

    Returns:
        A symbolic tensor value with the convolution applied.

    Example:
        >>> from max.dtype import DType
        >>> from max.graph import DeviceRef, Graph, TensorType, ops
        >>> cpu = DeviceRef.CPU()
        >>> with Graph("conv", input_types=[
        ...         TensorType(DType.float32, ("n", 56, 56, 64), cpu),
        ...         TensorType(DType.float32, (3, 3, 64, 32), cpu)]) as g:
        ...     y = ops.conv2d(g.inputs[0], g.inputs[1], padding=(1, 1, 1, 1))
        >>> print(y.shape)
        [n, 56, 56, 32]
    """
    op = "conv2d"
    x = as_strong(op, x, "x")
    w = as_strong(op, filter, "filter")
    if not isinstance(input_layout, ConvInputLayout) or not isinstance(filter_layout, FilterLayout):
        raise TypeError(f"{op}: input_layout must be a ConvInputLayout and filter_layout a "
                        f"FilterLayout, got {input_layout!r} and {filter_layout!r}")
    if x.rank != 4:
        raise ValueError(f"{op}: x must have rank 4 ({input_layout.value}), got shape "
                         f"{_dims.shape_text(x.shape)}")
    if w.rank != 4:
        raise ValueError(f"{op}: filter must have rank 4 ({filter_layout.value}), got shape "
                         f"{_dims.shape_text(w.shape)}")
    if filter_layout not in (FilterLayout.RSCF, FilterLayout.FCRS):
        raise ValueError(f"{op}: filter_layout {filter_layout.value} is not a 2-D layout "
                         "(RSCF or FCRS)")
    if input_layout == ConvInputLayout.NCHW:
        x = permute(x, [0, 2, 3, 1])
    if filter_layout == FilterLayout.FCRS:
        w = permute(w, [2, 3, 1, 0])
    strides = int_tuple(op, "stride", stride, 2, 1)
    dilations = int_tuple(op, "dilation", dilation, 2, 1)
    pads = int_tuple(op, "padding", padding, 4, 0)
    check_groups(op, groups)
    if not x.dtype.is_float():
        raise ValueError(f"{op}: x must have a floating-point dtype, got {x.dtype.name}")
    if w.dtype != x.dtype:
        raise ValueError(f"{op}: filter dtype {w.dtype.name} differs from x dtype "
                         f"{x.dtype.name}")
    r, s, cg, fo = static_kernel(op, w)
    check_channels(op, x, w, cg, fo, groups)
    check_window(op, x, (r, s), strides, dilations, pads, "filter")
    device = same_device(op, [x, w])
    shape = [x.shape[0], *out_dims(op, x, (r, s), strides, dilations, pads), w.shape[3]]
    y = emit("mo.conv2d", [x, w], x.dtype, shape, device,
             {"strides": strides, "dilations": dilations, "paddings": pads, "groups": groups})
    if bias is not None:
        y = add_bias(op, y, bias, fo)
    if input_layout == ConvInputLayout.NCHW:
        y = permute(y, [0, 3, 1, 2])
    return y


def out_dims(op: str, x: TensorValue, kernel: Sequence[int], strides: Sequence[int],
             dilations: Sequence[int], pads: Sequence[int], ceil_mode: bool = False
             ) -> list[Dim]:
    """The output height and width (the MO op's rule, raising ValueError)."""
    try:
        return [window_dim(op, name, x.shape[axis], kernel[axis - 1], strides[axis - 1],
                           dilations[axis - 1], pads[2 * axis - 2], pads[2 * axis - 1],
                           ceil_mode)
                for axis, name in ((1, "height"), (2, "width"))]
    except TypeRuleError as e:
        raise ValueError(str(e)) from None


def conv2d_transpose(x: Any, filter: Any, stride: Any = (1, 1), dilation: Any = (1, 1),
                     padding: Any = (0, 0, 0, 0), output_paddings: Any = (0, 0),
                     bias: Any = None, input_layout: ConvInputLayout = ConvInputLayout.NHWC,
                     filter_layout: FilterLayout = FilterLayout.RSCF) -> TensorValue:
    """Computes the 2-D deconvolution of the input with the given filter, strides,
    dilations and paddings.

    The op supports the transpose (gradient) of convolution, with the following layout
    assumptions (the out_channel is w.r.t. the original convolution): input ``x`` has NHWC
    layout, i.e., (batch_size, height, width, in_channels); filter has layout RSCF, i.e.,
    (kernel_height, kernel_width, out_channels, in_channels); bias has shape (out_channels,).
    This op effectively computes the gradient of a convolution with respect to its input (as
    if the original convolution operation had the same filter and hyperparameters as this
    op). The padding values (pad_dim1_before, pad_dim1_after, pad_dim2_before,
    pad_dim2_after) are removed from the before/after ends of the output's H (dim1) and W
    (dim2): the output height is ``(H - 1) * stride - pad_before - pad_after +
    dilation * (kernel_height - 1) + 1``.

    Args:
        x: An NHWC input tensor to perform the convolution upon.
        filter: The convolution filter in RSCF layout: (height, width, out_channels,
            in_channels).
        stride: The stride of the sliding window for each dimension of input.
        dilation: The spacing between the kernel points.
        padding: The amount of padding applied to the input.
        output_paddings: Resolves the ambiguity of the output shape when a stride is
            greater than 1; only ``(0, 0)`` is supported, as in MAX.
        bias: A tensor of shape (out_channels,) added to the result, or None.
        input_layout: NHWC.
        filter_layout: RSCF.

    Returns:
        A symbolic tensor value with the convolution applied.
    """
    op = "conv2d_transpose"
    x = as_strong(op, x, "x")
    w = as_strong(op, filter, "filter")
    if input_layout != ConvInputLayout.NHWC or filter_layout != FilterLayout.RSCF:
        raise ValueError(f"{op}: only NHWC inputs and RSCF filters are supported, got "
                         f"{input_layout!r} and {filter_layout!r}")
    if x.rank != 4 or w.rank != 4:
        raise ValueError(f"{op}: x and filter must have rank 4 (NHWC, RSCF), got shapes "
                         f"{_dims.shape_text(x.shape)} and {_dims.shape_text(w.shape)}")
    strides = int_tuple(op, "stride", stride, 2, 1)
    dilations = int_tuple(op, "dilation", dilation, 2, 1)
    pads = int_tuple(op, "padding", padding, 4, 0)
    if int_tuple(op, "output_paddings", output_paddings, 2, 0) != [0, 0]:
        raise ValueError(f"{op}: output_paddings {tuple(output_paddings)} is not supported "
                         "(only (0, 0), as in MAX)")
    if not x.dtype.is_float() or w.dtype != x.dtype:
        raise ValueError(f"{op}: x and filter must share a floating-point dtype, got "
                         f"{x.dtype.name} and {w.dtype.name}")
    r, s, fo, ci = static_kernel(op, w)
    if _dims.static_value(x.shape[3]) != ci:
        raise ValueError(f"{op}: x shape {_dims.shape_text(x.shape)} has {x.shape[3]} input "
                         f"channels, but filter shape {_dims.shape_text(w.shape)} expects {ci}")
    device = same_device(op, [x, w])
    try:
        dims = [transpose_dim(op, name, x.shape[axis], (r, s)[axis - 1], strides[axis - 1],
                              dilations[axis - 1], pads[2 * axis - 2], pads[2 * axis - 1])
                for axis, name in ((1, "height"), (2, "width"))]
    except TypeRuleError as e:
        raise ValueError(str(e)) from None
    y = emit("mo.conv2d_transpose", [x, w], x.dtype, [x.shape[0], *dims, w.shape[2]], device,
             {"strides": strides, "dilations": dilations, "paddings": pads})
    if bias is not None:
        y = add_bias(op, y, bias, fo)
    return y


def conv3d(x: Any, filter: Any, stride: Any = (1, 1, 1), dilation: Any = (1, 1, 1),
           padding: Any = (0, 0, 0, 0, 0, 0), groups: int = 1, bias: Any = None,
           input_layout: ConvInputLayout = ConvInputLayout.NHWC,
           filter_layout: FilterLayout = FilterLayout.QRSCF) -> TensorValue:
    """Computes the 3-D convolution product of the input with the given filter, strides,
    dilations, paddings, and groups.

    The op supports 3-D convolution, with the following layout assumptions: input has NDHWC
    layout, i.e., (batch_size, depth, height, width, in_channels); filter has layout RSCF,
    i.e., (depth, height, width, in_channels / num_groups, out_channels). The padding values
    (pad_dim1_before, pad_dim1_after, pad_dim2_before, pad_dim2_after, ...) represent padding
    0's before and after the indicated spatial dimensions in input; dim1 is D, dim2 H and
    dim3 W.

    Args:
        x: An NDHWC input tensor to perform the convolution upon.
        filter: The convolution filter in RSCF layout: (depth, height, width,
            in_channels / num_groups, out_channels).
        stride: The stride of the convolution operation.
        dilation: The spacing between the kernel points.
        padding: The amount of padding applied to the input.
        groups: When greater than 1, divides the convolution into multiple parallel
            convolutions. The number of input and output channels must both be divisible
            by the number of groups.
        bias: A tensor of shape (out_channels,) added to the result, or None.
        input_layout: NHWC (meaning NDHWC here).
        filter_layout: QRSCF.

    Returns:
        A symbolic tensor value with the convolution applied. Output shape = (batch_size,
        depth, height, width, out_channels).
    """
    op = "conv3d"
    x = as_strong(op, x, "x")
    w = as_strong(op, filter, "filter")
    if input_layout != ConvInputLayout.NHWC or filter_layout != FilterLayout.QRSCF:
        raise ValueError(f"{op}: only NDHWC inputs (ConvInputLayout.NHWC) and QRSCF filters are "
                         f"supported, got {input_layout!r} and {filter_layout!r}")
    if x.rank != 5 or w.rank != 5:
        raise ValueError(f"{op}: x and filter must have rank 5 (NDHWC, QRSCF), got shapes "
                         f"{_dims.shape_text(x.shape)} and {_dims.shape_text(w.shape)}")
    strides = int_tuple(op, "stride", stride, 3, 1)
    dilations = int_tuple(op, "dilation", dilation, 3, 1)
    pads = int_tuple(op, "padding", padding, 6, 0)
    check_groups(op, groups)
    if not x.dtype.is_float() or w.dtype != x.dtype:
        raise ValueError(f"{op}: x and filter must share a floating-point dtype, got "
                         f"{x.dtype.name} and {w.dtype.name}")
    *taps, cg, fo = static_kernel(op, w)
    check_channels(op, x, w, cg, fo, groups)
    device = same_device(op, [x, w])
    try:
        dims = [window_dim(op, name, x.shape[i + 1], taps[i], strides[i], dilations[i],
                           pads[2 * i], pads[2 * i + 1])
                for i, name in enumerate(("depth", "height", "width"))]
    except TypeRuleError as e:
        raise ValueError(str(e)) from None
    y = emit("mo.conv3d", [x, w], x.dtype, [x.shape[0], *dims, w.shape[4]], device,
             {"strides": strides, "dilations": dilations, "paddings": pads, "groups": groups})
    if bias is not None:
        y = add_bias(op, y, bias, fo)
    return y
