"""Reductions, ``softmax``/``logsoftmax`` and ``layer_norm``."""

from __future__ import annotations

import numpy as np
import pytest
from ops_helpers import build, filecheck, result_type, tt
from hypothesis import given, settings
from hypothesis import strategies as st

from max.dtype import DType
from max.graph import ops

REDUCTIONS = {
    "sum": ("mo.reduce_sum", None),
    "mean": ("mo.reduce_mean", None),
    "max": ("mo.reduce_max", None),
    "min": ("mo.reduce_min", None),
    "argmax": ("mo.argmax", DType.int64),
    "argmin": ("mo.argmin", DType.int64),
}


def _shape(t) -> list[str]:
    return [str(d) for d in t.shape]


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reductions_keep_the_axis(name: str) -> None:
    mo_op, dtype = REDUCTIONS[name]
    fn = getattr(ops, name)
    x = [tt(DType.float32, "batch", 3, 4)]
    t = result_type(x, fn)
    assert _shape(t) == ["batch", "3", "1"] and t.dtype == (dtype or DType.float32)
    assert _shape(result_type(x, lambda v: fn(v, axis=0))) == ["1", "3", "4"]
    assert _shape(result_type(x, lambda v: getattr(v, name)(-2))) == ["batch", "1", "4"]
    g = build(x, lambda v: fn(v, axis=-2))
    out = "si64" if dtype else "f32"
    filecheck(str(g), f"""
    CHECK: "{mo_op}"(%arg0) {{axis = 1 : i64}} : (!mo.tensor<f32, ["batch", 3, 4], "cpu:0">) -> !mo.tensor<{out}, ["batch", 1, 4], "cpu:0">
    """)
    with pytest.raises(ValueError, match=rf"{name}: axis=3 is out of range for a tensor of rank 3"):
        result_type(x, lambda v: fn(v, axis=3))


@settings(deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), data=st.data())
def test_reduction_shapes_agree_with_numpy(shape, data) -> None:
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    t = result_type([tt(DType.int32, *shape)], lambda v: ops.sum(v, axis))
    assert tuple(int(d) for d in t.shape) == np.zeros(shape).sum(axis, keepdims=True).shape


def test_max_min_overloads() -> None:
    types = [tt(DType.float32, "b", 1), tt(DType.float32, 3)]
    assert _shape(result_type(types, lambda a, b: ops.max(a, b))) == ["b", "3"]
    assert _shape(result_type(types, lambda a, b: ops.min(a, b, axis=0))) == ["b", "3"]
    assert _shape(result_type(types[:1], lambda a: ops.max(a, 0.5))) == ["b", "1"]
    assert _shape(result_type(types[:1], lambda a: ops.min(a, axis=0))) == ["1", "1"]
    g = build(types, lambda a, b: ops.max(a, b))
    filecheck(str(g), 'CHECK: "mo.max"(%arg0, %arg1)')


def test_reduction_dtype_errors() -> None:
    with pytest.raises(ValueError, match="sum: expected a numeric dtype, got bool"):
        result_type([tt(DType.bool, 3)], ops.sum)
    with pytest.raises(TypeError, match="mean: x must be a graph value"):
        result_type([], lambda: ops.mean(np.ones(3)))
    assert result_type([tt(DType.bool, 3)], ops.argmax).dtype == DType.int64


@pytest.mark.parametrize("name", ["softmax", "logsoftmax"])
def test_softmax(name: str) -> None:
    fn = getattr(ops, name)
    x = [tt(DType.float32, "batch", 10)]
    t = result_type(x, fn)
    assert _shape(t) == ["batch", "10"] and t.dtype == DType.float32
    g = build(x, lambda v: fn(v, axis=0))
    filecheck(str(g), f'CHECK: "mo.{name}"(%arg0) {{axis = 0 : i64}} : (!mo.tensor<f32, ["batch", 10], "cpu:0">) -> !mo.tensor<f32, ["batch", 10], "cpu:0">')
    with pytest.raises(ValueError, match=rf"{name}: expected a floating-point dtype, got int32"):
        result_type([tt(DType.int32, 3)], fn)
    with pytest.raises(ValueError, match=rf"{name}: axis=-3 is out of range"):
        result_type(x, lambda v: fn(v, -3))


def test_layer_norm() -> None:
    types = [tt(DType.float32, "batch", 8), tt(DType.float32, 8), tt(DType.float32, 8)]
    t = result_type(types, lambda x, g, b: ops.layer_norm(x, g, b, 1e-5))
    assert _shape(t) == ["batch", "8"] and t.dtype == DType.float32
    g = build(types, lambda x, g, b: ops.layer_norm(x, g, b, 1e-5))
    filecheck(str(g), """
    CHECK: "mo.layer_norm"(%arg0, %arg1, %arg2) {epsilon = 1.000000e-05 : f64} : (!mo.tensor<f32, ["batch", 8], "cpu:0">, !mo.tensor<f32, [8], "cpu:0">, !mo.tensor<f32, [8], "cpu:0">) -> !mo.tensor<f32, ["batch", 8], "cpu:0">
    """)
    t = result_type(types[:1], lambda x: ops.layer_norm(x, np.ones(8), np.zeros(8), 1e-6))
    assert t.dtype == DType.float32


def test_layer_norm_errors() -> None:
    x = tt(DType.float32, "batch", 8)

    def ln(*types, eps=1e-5):
        return result_type(list(types), lambda x, g, b: ops.layer_norm(x, g, b, eps))

    with pytest.raises(ValueError, match=r"layer_norm: gamma shape \[4\] does not match the last dimension\(s\) of input shape \[batch, 8\]"):
        ln(x, tt(DType.float32, 4), tt(DType.float32, 8))
    with pytest.raises(ValueError, match=r"layer_norm: beta shape \[7\] does not match"):
        ln(x, tt(DType.float32, 8), tt(DType.float32, 7))
    with pytest.raises(ValueError, match=r"layer_norm: epsilon must be positive, got 0.0"):
        ln(x, tt(DType.float32, 8), tt(DType.float32, 8), eps=0.0)
    with pytest.raises(ValueError, match=r"layer_norm: gamma dtype float16 differs from input dtype float32"):
        ln(x, tt(DType.float16, 8), tt(DType.float32, 8))
    with pytest.raises(ValueError, match=r"layer_norm: input must have a floating-point dtype, got int32"):
        ln(tt(DType.int32, 8), tt(DType.int32, 8), tt(DType.int32, 8))
