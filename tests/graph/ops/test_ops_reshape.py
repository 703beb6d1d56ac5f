"""``reshape`` (with -1, symbolic dims), ``squeeze``, ``unsqueeze``, ``flatten``."""

from __future__ import annotations

import numpy as np
import pytest
from ops_helpers import build, filecheck, result_type, tt
from hypothesis import given, settings
from hypothesis import strategies as st

from max.dtype import DType
from max.graph import Dim, ops


def _shape(t) -> list[str]:
    return [str(d) for d in t.shape]


@pytest.mark.parametrize(
    ("shape", "target", "expected"),
    [
        ((2, 3, 4), (6, 4), ["6", "4"]),
        ((2, 3, 4), (-1,), ["24"]),
        ((2, 3, 4), (4, -1), ["4", "6"]),
        (("batch", 28, 28), (-1, 784), ["batch", "784"]),
        (("batch", 28, 28), ("batch", -1), ["batch", "784"]),
        (("batch", 4), (-1, 2, 2), ["batch", "2", "2"]),
        (("batch", "seq", 8), (-1, 8), ["batch * seq", "8"]),
        (("batch", "seq", 8), ("batch", -1, 2, 4), ["batch", "seq", "2", "4"]),
        (("batch", 6), (3, -1), ["batch * 2", "3"][::-1]),
        (("batch", 2), (Dim("batch") * 2,), ["batch * 2"]),
        ((0, 3), (3, 0), ["3", "0"]),
        ((), (1, 1), ["1", "1"]),
        ((1, 1), (), []),
    ],
)
def test_reshape_shapes(shape, target, expected) -> None:
    t = result_type([tt(DType.float32, *shape)], lambda x: ops.reshape(x, target))
    assert _shape(t) == expected


@settings(deadline=None)
@given(
    shape=st.lists(st.integers(1, 4), max_size=4),
    data=st.data(),
)
def test_reshape_with_minus_one_agrees_with_numpy(shape, data) -> None:
    total = int(np.prod(shape))
    divisors = [d for d in range(1, total + 1) if total % d == 0]
    target = data.draw(st.lists(st.sampled_from(divisors), max_size=3))
    if total % max(int(np.prod(target)), 1):
        return
    target = [*target, -1]
    position = data.draw(st.integers(0, len(target) - 1))
    target.insert(position, target.pop())
    t = result_type([tt(DType.int8, *shape)], lambda x: x.reshape(target))
    assert tuple(int(d) for d in t.shape) == np.zeros(shape).reshape(target).shape


def test_reshape_ir() -> None:
    g = build([tt(DType.float32, "batch", 28, 28)], lambda x: x.reshape((-1, 784)))
    filecheck(str(g), """
    CHECK: "mo.reshape"(%arg0) : (!mo.tensor<f32, ["batch", 28, 28], "cpu:0">) -> !mo.tensor<f32, ["batch", 784], "cpu:0">
    """)


@pytest.mark.parametrize(
    ("shape", "target", "match"),
    [
        ((2, 3), (4, 2), r"reshape: input shape \[2, 3\] \(6 elements\) and target shape \[4, 2\] \(8 elements\)"),
        (("batch", 3), ("batch", 4), r"\(batch \* 3 elements\) .* \(batch \* 4 elements\)"),
        (("batch", 3), ("seq", 3), r"different numbers of elements"),
        ((2, 3), (-1, 4), r"reshape: cannot infer the -1 in \[-1, 4\] from input shape \[2, 3\]"),
        (("batch", 3), (-1, 2), r"cannot infer the -1 .*batch \* 3 elements are not a multiple of 2"),
        ((2, 3), (-1, -1), r"reshape: shape .* has more than one -1"),
        ((2, 3), (-2, 3), r"reshape: shape\[0\] = -2 is negative"),
        ((0, 3), (-1, 0), r"cannot infer the -1 in \[-1, 0\]: the other dims multiply to 0"),
        ((0, 4), (0, -1), r"cannot infer the -1 in \[0, -1\]: the other dims multiply to 0, so "
                          r"any size would fit \(input shape \[0, 4\]\)"),
    ],
)
def test_reshape_errors(shape, target, match) -> None:
    with pytest.raises(ValueError, match=match):
        result_type([tt(DType.float32, *shape)], lambda x: ops.reshape(x, target))


def test_reshape_type_errors() -> None:
    with pytest.raises(TypeError, match="reshape: shape must be a sequence of dims"):
        result_type([tt(DType.float32, 2)], lambda x: ops.reshape(x, 2))
    with pytest.raises(TypeError, match=r"reshape: shape\[0\]: a dim must be an int, str or Dim"):
        result_type([tt(DType.float32, 2)], lambda x: ops.reshape(x, [2.0]))


def test_squeeze_unsqueeze() -> None:
    assert _shape(result_type([tt(DType.float32, "b", 1, 3)], lambda x: ops.squeeze(x, 1))) == ["b", "3"]
    assert _shape(result_type([tt(DType.float32, "b", 3, 1)], lambda x: ops.squeeze(x, -1))) == ["b", "3"]
    assert _shape(result_type([tt(DType.float32, "b", 3)], lambda x: ops.unsqueeze(x, 0))) == ["1", "b", "3"]
    assert _shape(result_type([tt(DType.float32, "b", 3)], lambda x: ops.unsqueeze(x, -1))) == ["b", "3", "1"]
    assert _shape(result_type([tt(DType.float32, "b", 3)], lambda x: ops.unsqueeze(x, -2))) == ["b", "1", "3"]
    assert _shape(result_type([tt(DType.float32)], lambda x: ops.unsqueeze(x, 0))) == ["1"]
    g = build([tt(DType.float32, "b", 3)], lambda x: ops.unsqueeze(x, 1))
    filecheck(str(g), 'CHECK: "mo.reshape"(%arg0) {{.*}} -> !mo.tensor<f32, ["b", 1, 3], "cpu:0">')
    with pytest.raises(ValueError, match=r"squeeze: dim 1 of shape \[b, 3\] is 3, not 1"):
        result_type([tt(DType.float32, "b", 3)], lambda x: ops.squeeze(x, 1))
    with pytest.raises(ValueError, match=r"squeeze: dim 0 of shape \[b, 3\] is b, not 1"):
        result_type([tt(DType.float32, "b", 3)], lambda x: ops.squeeze(x, 0))
    with pytest.raises(ValueError, match=r"squeeze: axis=2 is out of range for a tensor of rank 2"):
        result_type([tt(DType.float32, 1, 1)], lambda x: ops.squeeze(x, 2))
    with pytest.raises(ValueError, match=r"unsqueeze: axis=-4 is out of range for a tensor of rank 2 "
                                         r"\(expected -3 <= axis <= 2\)"):
        result_type([tt(DType.float32, 1, 1)], lambda x: ops.unsqueeze(x, -4))
    with pytest.raises(ValueError, match=r"unsqueeze: axis=1 is out of range for a tensor of rank 0 "
                                         r"\(expected -1 <= axis <= 0\)"):
        result_type([tt(DType.float32)], lambda x: ops.unsqueeze(x, 1))


def test_flatten() -> None:
    x = [tt(DType.float32, "b", 2, 3, 4)]
    assert _shape(result_type(x, ops.flatten)) == ["b * 24"]
    assert _shape(result_type(x, lambda v: ops.flatten(v, 1))) == ["b", "24"]
    assert _shape(result_type(x, lambda v: v.flatten(1, 2))) == ["b", "6", "4"]
    assert _shape(result_type(x, lambda v: v.flatten(-2, -1))) == ["b", "2", "12"]
    assert _shape(result_type(x, lambda v: v.flatten(2, 2))) == ["b", "2", "3", "4"]
    assert _shape(result_type([tt(DType.float32)], ops.flatten)) == ["1"]
    with pytest.raises(ValueError, match=r"flatten: start_dim=2 comes after end_dim=1 for shape \[b, 2, 3, 4\]"):
        result_type(x, lambda v: ops.flatten(v, 2, 1))
    with pytest.raises(ValueError, match=r"flatten: end_dim=4 is out of range"):
        result_type(x, lambda v: ops.flatten(v, 0, 4))
