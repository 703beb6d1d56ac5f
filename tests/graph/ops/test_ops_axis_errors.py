"""An axis out of range is an ``IndexError``, as in MAX (and a ``ValueError``, as every other
bad builder argument here), from every op that takes an axis."""

from __future__ import annotations

import pytest

from max.dtype import DType
from max.graph import DeviceRef, Graph, TensorType, ops


@pytest.mark.parametrize("build", [
    lambda x: ops.softmax(x, axis=2),
    lambda x: ops.sum(x, axis=-3),
    lambda x: ops.unsqueeze(x, 3),
    lambda x: ops.stack([x, x], axis=4),
    lambda x: ops.concat([x, x], axis=2),
    lambda x: ops.cumsum(x, axis=5),
    lambda x: ops.top_k(x, 1, axis=2),
    lambda x: ops.argmax(x, axis=-3),
    lambda x: ops.gather(x, ops.constant([0], DType.int64, DeviceRef.CPU()), axis=2),
    lambda x: ops.split(x, [1, 1], axis=2),
    lambda x: ops.irfft(x, axis=3),
])
def test_an_out_of_range_axis_is_an_index_error(build) -> None:
    """MAX raises IndexError for an axis out of range (ours is also a ValueError)."""
    with Graph("axis", input_types=[TensorType(DType.float32, (2, 2), DeviceRef.CPU())]):
        x = Graph.current.inputs[0]
        with pytest.raises(IndexError, match="out of range") as info:
            build(x)
        assert isinstance(info.value, ValueError)
