"""``irfft``: the inverse real FFT as a composite, a matmul by a constant real DFT matrix.

The n outputs along the axis are ``x[t] = scale * sum_j w_j (Re X_j cos(2 pi j t / n) -
Im X_j sin(2 pi j t / n))`` over the ``n // 2 + 1`` Hermitian half ``X_j`` (``w_j`` = 2, or 1
for ``j = 0`` and ``j = n / 2``, whose imaginary parts are ignored, as numpy and PyTorch do).
The matrix is computed in float64 numpy (angles reduced exactly with ``j * t mod n``) and
stored in the compute dtype, so the result is a plain ``mo.matmul``: O(n^2) work and a
constant of ``n * (n + 2)`` elements, good for the moderate sizes models use.
"""

from __future__ import annotations

import enum
from typing import Any

import numpy as np

from max.dtype import DType
from max.graph.dim import Dim
from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import as_strong
from max.graph.ops.cast import cast
from max.graph.ops.constant import constant
from max.graph.ops.matmul import matmul
from max.graph.ops.reshape import _reshape_to
from max.graph.ops.transpose import transpose


class Normalization(str, enum.Enum):
    """The normalization mode for inverse real FFT operations (equal to its string)."""

    BACKWARD = "backward"
    ORTHO = "ortho"
    FORWARD = "forward"


def _normalization(value: Normalization | str) -> Normalization:
    try:
        return Normalization(value)
    except ValueError:
        raise ValueError(f"irfft: normalization must be 'backward', 'ortho' or 'forward', "
                         f"got {value!r}") from None


def _dft_matrix(rows: int, n: int, scale: float, interleaved: bool) -> np.ndarray:
    """The [rows, n] (real input) or [2 * rows, n] (interleaved re, im) c2r DFT matrix."""
    j = np.arange(rows, dtype=np.int64)[:, None]
    t = np.arange(n, dtype=np.int64)[None, :]
    angle = (2.0 * np.pi / n) * ((j * t) % n)
    weight = np.full((rows, 1), 2.0)
    weight[:1] = 1.0
    if n % 2 == 0 and rows > n // 2:
        weight[n // 2] = 1.0
    cos = weight * scale * np.cos(angle)
    if not interleaved:
        return cos
    sin = -weight * scale * np.sin(angle)
    sin[:1] = 0.0  # the imaginary parts of X_0 and X_{n/2} do not count
    if n % 2 == 0 and rows > n // 2:
        sin[n // 2] = 0.0
    return np.stack([cos, sin], axis=1).reshape(2 * rows, n)


def irfft(input_tensor: Any, n: int | None = None, axis: int = -1,
          normalization: Normalization | str = Normalization.BACKWARD,
          input_is_complex: bool = False, buffer_size_mb: int = 512) -> TensorValue:
    """Compute the inverse real FFT of the input tensor.

    As ``torch.fft.irfft(input, n, dim=axis, norm=normalization)``. Without
    ``input_is_complex`` the input holds the real parts of the spectrum and its imaginary
    parts are zero (as in MAX); with it, the last dimension holds (real, imag) pairs.

    Example (the spectrum ``[4, 0, 0]`` of four ones):

    >>> import numpy as np
    >>> from max.dtype import DType
    >>> from max.engine import InferenceSession
    >>> from max.graph import DeviceRef, Graph, TensorType, ops
    >>> spectrum = TensorType(DType.float32, [3], DeviceRef.CPU())
    >>> graph = Graph("irfft", lambda x: ops.irfft(x, n=4), input_types=[spectrum])
    >>> model = InferenceSession().load(graph)
    >>> model.execute(np.array([4, 0, 0], np.float32))[0].to_numpy()
    array([1., 1., 1., 1.], dtype=float32)

    Args:
        input_tensor: The input tensor to compute the inverse real FFT of (a float dtype;
            16-bit floats are computed in float32).
        n: The size of the output tensor. Must be an int, and cannot be a symbolic Tensor.
            The input tensor will be padded or truncated to ``n // 2 + 1`` along the
            specified axis. ``None``: ``2 * (m - 1)`` for ``m`` inputs along the axis.
        axis: The axis to compute the inverse real FFT of. Its size must be static.
        normalization: The normalization to apply to the output tensor. Can be
            "backward", "ortho", or "forward". When "backward", the output is divided by
            ``n``. When "ortho", the output is divided by ``sqrt(n)``. When "forward", no
            normalization is applied.
        input_is_complex: Whether the input tensor is already interleaved complex. The last
            dimension of the input tensor must be 2, and is excluded from the dimension
            referred to by axis.
        buffer_size_mb: The estimated size of a persistent buffer for intermediate results
            in MAX's GPU kernel; accepted for compatibility, unused here (the composite
            needs no persistent buffer).

    Returns:
        The inverse real FFT of the input tensor. The shape of the output tensor is the
        same as the shape of the input tensor, except for the axis that the inverse real FFT
        is computed over, which is replaced by n (and, with ``input_is_complex``, without
        the last dimension of 2).

    Raises:
        ValueError: If the dtype is not a float, the axis is out of range or symbolic, the
            last dimension is not 2 with ``input_is_complex``, ``n`` is below 1 (or ``None``
            with a single input along the axis), or ``normalization`` is unknown.
        TypeError: If ``n``, ``axis`` or ``buffer_size_mb`` is not an int.
    """
    x = as_strong("irfft", input_tensor, "input_tensor")
    if not x.dtype.is_float():
        raise ValueError(f"irfft: input_tensor must have a float dtype, got {x.dtype.name}")
    mode = _normalization(normalization)
    if isinstance(buffer_size_mb, bool) or not isinstance(buffer_size_mb, int):
        raise TypeError(f"irfft: buffer_size_mb must be an int, got {buffer_size_mb!r}")
    if input_is_complex and (x.rank == 0 or x.shape[-1] != Dim(2)):
        raise ValueError(f"irfft: with input_is_complex the last dimension of input_tensor "
                         f"must be 2 (real, imag), got shape {_dims.shape_text(x.shape)}")
    rank = x.rank - 1 if input_is_complex else x.rank
    if rank == 0:
        raise ValueError("irfft: input_tensor must have rank >= 1 (excluding the complex "
                         "dimension), got a scalar")
    axis = _dims.normalize_axis("irfft", axis, rank)
    m = _dims.static_value(x.shape[axis])
    if m is None:
        raise ValueError(f"irfft: the size of axis {axis} of {_dims.shape_text(x.shape)} must "
                         f"be static")
    if n is None:
        n = 2 * (m - 1)
        if n < 1:
            raise ValueError(f"irfft: n = 2 * (m - 1) = {n} for m = {m} inputs along axis "
                             f"{axis}; pass n explicitly")
    elif isinstance(n, bool) or not isinstance(n, int) and not _dims._is_np_int(n):
        raise TypeError(f"irfft: n must be an int, got {n!r}")
    n = int(n)
    if n < 1:
        raise ValueError(f"irfft: n must be at least 1, got {n}")

    # The axis goes last (before the (real, imag) pair); truncate to n // 2 + 1 inputs.
    # Padding needs no data: missing inputs are zeros, i.e. fewer rows of the matrix.
    last = rank - 1
    if axis != last:
        x = transpose(x, axis, last)
    rows = min(m, n // 2 + 1)
    if rows < m:
        x = x[(..., slice(0, rows), slice(None))] if input_is_complex else x[..., :rows]
    batch = list(x.shape[:last])
    if input_is_complex:
        x = _reshape_to(x, [*batch, Dim(2 * rows)])  # (re, im) interleaved along the axis

    compute = DType.float64 if x.dtype == DType.float64 else DType.float32
    scale = {Normalization.BACKWARD: 1.0 / n, Normalization.ORTHO: 1.0 / np.sqrt(n),
             Normalization.FORWARD: 1.0}[mode]
    basis = constant(_dft_matrix(rows, n, scale, input_is_complex), compute, x.device)
    out = matmul(cast(x, compute) if x.dtype != compute else x, basis)
    if out.dtype != x.dtype:
        out = cast(out, x.dtype)
    return transpose(out, axis, last) if axis != last else out
