"""``resize`` with :class:`InterpolationMode`: resampling of NCHW images (``mo.resize_bicubic``)."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import as_strong, emit


class InterpolationMode(enum.Enum):
    """Interpolation modes for image resize operations.

    This enum defines the available interpolation methods that can be used when resizing
    tensors. Currently only BICUBIC is implemented, with BILINEAR and NEAREST planned for
    future support.
    """

    BICUBIC = "bicubic"
    BILINEAR = "bilinear"
    NEAREST = "nearest"


def resize(input: Any, shape: Iterable[Any],
           interpolation: InterpolationMode = InterpolationMode.BILINEAR) -> TensorValue:
    """Resize the input tensor to the given shape.

    This function resizes a tensor using the specified interpolation method. The tensor is
    expected to have NCHW format (batch, channels, height, width). BICUBIC samples output
    pixel ``o`` of an axis at ``(o + 0.5) * in / out - 0.5`` with Keys' cubic kernel
    (A = -0.75) over 4 taps clamped to the edge, as PyTorch's ``interpolate(mode="bicubic",
    align_corners=False)``.

    Args:
        input: The input tensor to resize. Must have rank 4 in NCHW format.
        shape: Desired output shape of length 4 corresponding to (N, C, H, W).
        interpolation: Desired interpolation enum defined by InterpolationMode. Default is
            InterpolationMode.BILINEAR. Currently only BICUBIC is supported.

    Returns:
        A resized tensor with the shape specified by the shape argument.

    Raises:
        ValueError: If the input doesn't have rank 4, shape has wrong number of elements, or
            unsupported interpolation mode is specified.
        NotImplementedError: If single integer size or non-BICUBIC interpolation mode is
            specified.
    """
    op = "resize"
    x = as_strong(op, input, "input")
    if not isinstance(interpolation, InterpolationMode):
        raise ValueError(f"{op}: unsupported interpolation mode {interpolation!r}")
    if interpolation != InterpolationMode.BICUBIC:
        raise NotImplementedError(f"{op}: interpolation {interpolation.name} is not supported "
                                  "yet (only BICUBIC)")
    if isinstance(shape, int) or not isinstance(shape, Iterable):
        raise NotImplementedError(f"{op}: a single integer size is not supported, give the "
                                  f"(N, C, H, W) shape, got {shape!r}")
    if x.rank != 4:
        raise ValueError(f"{op}: input must have rank 4 (NCHW), got shape "
                         f"{_dims.shape_text(x.shape)}")
    dims = [_dims.as_dim(d, where=f"{op}: shape") for d in shape]
    if len(dims) != 4:
        raise ValueError(f"{op}: shape must have 4 elements (N, C, H, W), got {len(dims)}")
    if list(dims[:2]) != list(x.shape[:2]):
        raise ValueError(f"{op}: shape {_dims.shape_text(dims)} must keep the batch and channels "
                         f"of input shape {_dims.shape_text(x.shape)}")
    if not x.dtype.is_float():
        raise ValueError(f"{op}: input must have a floating-point dtype, got {x.dtype.name}")
    for d, name in ((2, "height"), (3, "width")):
        if _dims.static_value(x.shape[d]) == 0 and _dims.static_value(dims[d]) != 0:
            raise ValueError(f"{op}: input shape {_dims.shape_text(x.shape)} has no {name} to "
                             f"resample to {dims[d]}")
    return emit("mo.resize_bicubic", [x], x.dtype, dims, x.device)
