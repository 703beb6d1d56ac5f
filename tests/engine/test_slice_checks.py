"""A slice of a symbolic dim with a declared out_dim is checked at run time, never read past."""

from __future__ import annotations

import numpy as np
import pytest

from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Dim, Graph, TensorType, ops

CPU = DeviceRef.CPU()


def _model(index, dtype=DType.float32):
    graph = Graph("s", lambda x: ops.slice_tensor(x, index),
                  input_types=[TensorType(dtype, ("n", 3), CPU)])
    return InferenceSession().load(graph)


def test_declared_length_holds() -> None:
    model = _model([(slice(2, 6), 4)])
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    np.testing.assert_array_equal(model.execute(x)[0].to_numpy(), x[2:6])


@pytest.mark.parametrize("n", [0, 3, 5])
def test_declared_length_wrong_at_run_time_raises(n) -> None:
    model = _model([(slice(2, 6), 4)])
    with pytest.raises(ValueError, match="mo.slice: dim 0 of the slice does not have the declared "
                                         "length 4"):
        model.execute(np.ones((n, 3), np.float32))
    x = np.arange(24, dtype=np.float32).reshape(8, 3)
    np.testing.assert_array_equal(model.execute(x)[0].to_numpy(), x[2:6])  # still works


def test_negative_step_with_declared_symbolic_length() -> None:
    half = Dim("n") // 2
    model = _model([(slice(None, None, -2), half)], dtype=DType.int32)
    x = np.arange(24, dtype=np.int32).reshape(8, 3)
    np.testing.assert_array_equal(model.execute(x)[0].to_numpy(), x[::-2])
    with pytest.raises(ValueError, match="declared length n // 2"):
        model.execute(np.ones((7, 3), np.int32))  # x[::-2] has 4 rows, n // 2 is 3


def test_bool_slice_pads_safely() -> None:
    model = _model([(slice(0, 2), 2)], dtype=DType.bool)
    x = np.array([[True, False, True]] * 4)
    np.testing.assert_array_equal(model.execute(x)[0].to_numpy(), x[:2])
    with pytest.raises(ValueError, match="declared length 2"):
        model.execute(x[:1])
