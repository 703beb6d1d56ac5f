"""``range`` (``mo.range``) and ``hann_window`` (a constant: its length is a Python int)."""

from __future__ import annotations

import builtins
import math
from typing import Any

import numpy as np

from max.dialects.mo.opdefs.sequence import range_length
from max.dtype import DType
from max.graph.dim import Dim, StaticDim
from max.graph.type import DeviceRef
from max.graph.value import TensorValue

from max.graph.ops import _dims
from max.graph.ops._promotion import emit, weak_to_tensor
from max.graph.ops.rebind import bind_data_symbol, require_bound

_NAMES = ("start", "stop", "step")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_)


def _rounded(value: Any, dtype: DType, name: str) -> int | float:
    """A Python bound as the dtype holds it (the compiled code computes with that value)."""
    if not dtype.is_float() and isinstance(value, float | np.floating):
        raise ValueError(f"range: {name}={value} is a float, but dtype is {dtype.name}")
    if dtype.is_float():
        return float(np.asarray(value, np.float64).astype(dtype.to_numpy()).astype(np.float64))
    return int(value)


def _symbolic_length(start: Dim, stop: Dim, step: int) -> Dim:
    """``ceil((stop - start) / step)`` in the dim algebra (exact while it is >= 0)."""
    span = stop - start if step > 0 else start - stop
    k = builtins.abs(step)
    return span if k == 1 else (span + (k - 1)) // k


def _bound_tensor(value: Any, dtype: DType, device: DeviceRef, name: str) -> TensorValue:
    from max.graph.ops.cast import cast
    from max.graph.ops.rebind import shape_to_tensor
    from max.graph.ops.reshape import reshape
    from max.graph.ops.transfer_to import transfer_to

    if isinstance(value, TensorValue):
        if value.rank != 0:
            raise ValueError(f"range: {name} must be a scalar (rank 0), got shape "
                             f"{_dims.shape_text(value.shape)}")
        if value.dtype != dtype:
            raise ValueError(f"range: {name} has dtype {value.dtype.name}, but all arguments "
                             f"must have the same element type ({dtype.name})")
        if value.device != device:
            raise ValueError(f"range: {name} is on {value.device}, the result on {device}")
        return value
    if isinstance(value, Dim) and not isinstance(value, StaticDim):
        # A symbolic dim's value exists at run time only: materialize it.
        t = cast(reshape(shape_to_tensor([value]), []), dtype)
        return t if device == DeviceRef.CPU() else transfer_to(t, device)
    return weak_to_tensor(f"range: {name}", value, dtype, device)  # checks that it fits


def range(start: Any, stop: Any, step: Any = 1, out_dim: Any = None, *, dtype: DType,
          device: Any) -> TensorValue:
    """Creates a sequence of numbers.

    The sequence goes from start with increments of size step up to (but not including)
    stop. All arguments are mandatory and must have the same element type. Note the
    following restrictions on input values: 1. step must be non-zero 2. stop - start must be
    zero or have the same sign as step.

    The result has ``ceil((stop - start) / step)`` elements. With Python numbers (and static
    dims) as bounds it is computed here; with symbolic dims as bounds and an int step it is
    the dim expression (``range(0, x.shape[0], 1, ...)`` has length ``x.shape[0]``; where
    it comes out negative at run time, ``Model.execute`` raises ``ValueError``).
    Tensor bounds need ``out_dim``. A new symbol there (``out_dim="n"``, no input has it) is
    a length only the data determines: the op computes it when the graph runs, the result is
    allocated with it, and later ops may use ``n``; an output of that size is returned as
    allocated by the model. A known ``out_dim`` (static or bound) is checked at run time, as
    is a non-zero step: ``Model.execute`` raises ``ValueError`` on a mismatch.

    Args:
        start: The start of the range to generate.
        stop: The range will be generated up to, but not including, this value.
        step: The step size for the range.
        out_dim: The expected output dimensions returned by the range op. These will be
            assert at graph execution time to be correct.
        device: Device of the result tensor.
        dtype: Data type of the result tensor (a numeric dtype).

    Returns:
        A symbolic tensor value containing the defined range of values.

    Raises:
        ValueError: If step is 0, stop - start has the sign opposite to step, out_dim does
            not match the computed length, a bound does not fit dtype, or tensor bounds come
            without out_dim.
        TypeError: If dtype is not a DType or a bound is not a number, dim or tensor.
    """
    if not isinstance(dtype, DType):
        raise TypeError(f"range: dtype must be a max.dtype.DType, got {dtype!r}")
    if dtype == DType.bool:
        raise ValueError("range: dtype must be numeric, got bool")
    device = DeviceRef.from_device(device)
    bounds = []
    for name, v in zip(_NAMES, (start, stop, step)):
        if isinstance(v, StaticDim):
            v = int(v)
        if not (_is_number(v) or isinstance(v, Dim | TensorValue)):
            raise TypeError(f"range: {name} must be a number, a Dim or a scalar tensor, got "
                            f"{v!r}")
        bounds.append(v)
    given = None if out_dim is None else _dims.as_dim(out_dim, where="range: out_dim")
    if given is not None and (_dims.static_value(given) or 0) < 0:
        raise ValueError(f"range: out_dim={out_dim} is negative")
    length: Dim | None = None
    if all(_is_number(v) for v in bounds):
        values = [_rounded(v, dtype, n) for n, v in zip(_NAMES, bounds)]
        if values[2] == 0:
            raise ValueError("range: step must be non-zero")
        if (values[1] - values[0]) * values[2] < 0:
            raise ValueError(f"range: stop - start ({values[1]} - {values[0]}) must be zero or "
                             f"have the same sign as step ({values[2]})")
        length = Dim(range_length(*values))
    elif all(isinstance(v, int | np.integer | Dim) for v in bounds[:2]) and isinstance(
            bounds[2], int | np.integer):
        if bounds[2] == 0:
            raise ValueError("range: step must be non-zero")
        length = _symbolic_length(Dim(bounds[0]), Dim(bounds[1]), int(bounds[2]))
    if length is None and given is None:
        if any(isinstance(v, TensorValue) for v in bounds):
            raise ValueError(
                "range: out_dim is required when start, stop or step is a tensor: the length "
                "depends on the tensor values (name it with a new symbol, e.g. "
                "out_dim=\"n\", for a length that only the data determines)")
        raise ValueError("range: out_dim is required for symbolic bounds beside a float bound "
                         f"or a step that is not a Python int (step={bounds[2]!r})")
    if length is None:
        assert given is not None
        # A new symbol is bound by the op from the values; a known length is checked.
        bind_data_symbol("range", given, "out_dim")
        length = given
    else:
        if given is not None and given != length:
            raise ValueError(f"range: out_dim {_dims.dim_text(given)} does not match the length "
                             f"{_dims.dim_text(length)} of the range")
        require_bound("range", [length], "the length")
    # Built once validated (a bound that does not fit dtype raises here, naming it).
    operands = [_bound_tensor(v, dtype, device, n) for n, v in zip(_NAMES, bounds)]
    return emit("mo.range", operands, dtype, [length], device)


def hann_window(window_length: int, device: Any, periodic: bool = True,
                dtype: DType = DType.float32) -> TensorValue:
    """Calculate a Hann window for a given length.

    Hann window function: ``H[n] = 1/2 [1 - cos(2 * pi * n / (N - 1))]`` where N is
    window_length (``window_length + 1`` if ``periodic``). A window of length 1 is ``[1]``,
    as in PyTorch. The window is computed in float64 and rounded once to ``dtype``.

    Args:
        window_length: The length of the window.
        device: The device to run the operation on.
        periodic: bool flag determines whether the returned window trims off the last
            duplicate value from the symmetric window and is ready to be used as a periodic
            window with functions like stft().
            ``hann_window(L, periodic=True) == hann_window(L + 1, periodic=False)[:-1])``
        dtype: The desired data type of the output tensor (a floating-point dtype).

    Returns:
        A 1-D tensor of size (window_length,) containing the window.

    Raises:
        ValueError: If window_length is negative, or dtype is not a floating-point dtype.
        TypeError: If window_length is not an integer.
    """
    from max.graph.ops.constant import constant

    if isinstance(window_length, bool) or not isinstance(window_length, int | np.integer):
        raise TypeError(f"hann_window: window_length must be an int, got {window_length!r}")
    length = int(window_length)
    if length < 0:
        raise ValueError(f"hann_window: window_length={length} is negative")
    if not isinstance(dtype, DType) or not dtype.is_float():
        raise ValueError(f"hann_window: dtype must be a floating-point DType, got {dtype!r}")
    if length == 1:
        window = np.ones(1)
    else:
        n = np.arange(length, dtype=np.float64)
        denominator = length if periodic else length - 1
        window = 0.5 - 0.5 * np.cos(2 * math.pi * n / builtins.max(denominator, 1))
    return constant(window, dtype, device)
