"""``transpose``, ``permute``, ``broadcast_to``, ``concat``, ``gather``, ``where`` and
``transfer_to``: result types, IR attributes and errors."""

from __future__ import annotations

import numpy as np
import pytest
from ops_helpers import broadcastable_shapes, build, filecheck, graph_of, result_type, tt
from hypothesis import given, settings
from hypothesis import strategies as st

from max.dtype import DType
from max.graph import DeviceRef, TensorType, ops


def _shape(t) -> list[str]:
    return [str(d) for d in t.shape]


# -- transpose / permute ---------------------------------------------------------------------------


def test_transpose_and_permute() -> None:
    x = [tt(DType.float32, "b", 2, 3)]
    assert _shape(result_type(x, lambda v: ops.transpose(v, 0, 2))) == ["3", "2", "b"]
    assert _shape(result_type(x, lambda v: v.T)) == ["b", "3", "2"]
    assert _shape(result_type(x, lambda v: v.transpose(-1, 0))) == ["3", "2", "b"]
    assert _shape(result_type(x, lambda v: ops.permute(v, [1, -1, 0]))) == ["2", "3", "b"]
    g = build(x, lambda v: ops.transpose(v, -1, -2))
    filecheck(str(g), """
    CHECK: "mo.transpose"(%arg0) {permutation = array<i64: 0, 2, 1>} : (!mo.tensor<f32, ["b", 2, 3], "cpu:0">) -> !mo.tensor<f32, ["b", 3, 2], "cpu:0">
    """)
    g = build(x, lambda v: v.permute([2, 0, 1]))
    filecheck(str(g), 'CHECK: "mo.transpose"(%arg0) {permutation = array<i64: 2, 0, 1>}')


@settings(deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), data=st.data())
def test_permute_agrees_with_numpy(shape, data) -> None:
    perm = data.draw(st.permutations(range(len(shape))))
    t = result_type([tt(DType.int32, *shape)], lambda v: ops.permute(v, perm))
    assert tuple(int(d) for d in t.shape) == np.zeros(shape).transpose(perm).shape


def test_transpose_errors() -> None:
    x = [tt(DType.float32, 2, 3)]
    with pytest.raises(ValueError, match=r"transpose: axis_2=2 is out of range for a tensor of rank 2"):
        result_type(x, lambda v: ops.transpose(v, 0, 2))
    with pytest.raises(ValueError, match=r"permute: dims \[0\] must name each of the 2 axes of shape \[2, 3\]"):
        result_type(x, lambda v: ops.permute(v, [0]))
    with pytest.raises(ValueError, match=r"permute: dims \[0, -2\] is not a permutation of range\(2\)"):
        result_type(x, lambda v: ops.permute(v, [0, -2]))
    with pytest.raises(TypeError, match=r"transpose: axis_1 must be an int"):
        result_type(x, lambda v: ops.transpose(v, 0.0, 1))


# -- broadcast_to ----------------------------------------------------------------------------------


@settings(deadline=None)
@given(shapes=broadcastable_shapes())
def test_broadcast_to_agrees_with_numpy(shapes) -> None:
    src, _ = shapes
    target = np.broadcast_shapes(*shapes)
    t = result_type([tt(DType.float32, *src)], lambda v: ops.broadcast_to(v, target))
    assert tuple(int(d) for d in t.shape) == np.broadcast_to(np.zeros(src), target).shape


def test_broadcast_to() -> None:
    g = build([tt(DType.float32, 1, 3)], lambda v: v.broadcast_to(["batch", 2, 3]))
    filecheck(str(g), """
    CHECK: "mo.broadcast_to"(%arg0) : (!mo.tensor<f32, [1, 3], "cpu:0">) -> !mo.tensor<f32, ["batch", 2, 3], "cpu:0">
    """)
    with pytest.raises(ValueError, match=r"broadcast_to: cannot broadcast shape \[2, 3\] to \[4, 3\]: input dim 0 is 2, target dim is 4"):
        result_type([tt(DType.float32, 2, 3)], lambda v: ops.broadcast_to(v, [4, 3]))
    with pytest.raises(ValueError, match=r"cannot broadcast shape \[batch\] to \[seq\]"):
        result_type([tt(DType.float32, "batch")], lambda v: ops.broadcast_to(v, ["seq"]))
    with pytest.raises(ValueError, match=r"to the lower-rank shape \[3\]"):
        result_type([tt(DType.float32, 2, 3)], lambda v: ops.broadcast_to(v, [3]))
    with pytest.raises(ValueError, match=r"a tensor-valued shape needs out_dims"):
        result_type([tt(DType.float32, 3), tt(DType.int64, 1)], lambda v, s: ops.broadcast_to(v, s))


# -- concat ----------------------------------------------------------------------------------------


def test_concat() -> None:
    assert _shape(result_type([tt(DType.float32, 2, 3), tt(DType.float32, 4, 3)], lambda a, b: ops.concat([a, b]))) == ["6", "3"]
    assert _shape(result_type([tt(DType.float32, "a", 3), tt(DType.float32, "b", 3)], lambda a, b: ops.concat([a, b]))) == ["a + b", "3"]
    assert _shape(result_type([tt(DType.float32, "a", 3), tt(DType.float32, "a", 3), tt(DType.float32, 2, 3)], lambda *v: ops.concat(v, 0))) == ["a * 2 + 2", "3"]
    assert _shape(result_type([tt(DType.float32, "b", 1), tt(DType.float32, "b", 2)], lambda a, b: ops.concat((a, b), -1))) == ["b", "3"]
    g = build([tt(DType.float32, "b", 1), tt(DType.float32, "b", 2)], lambda a, b: ops.concat([a, b], -1))
    filecheck(str(g), """
    CHECK: "mo.concat"(%arg0, %arg1) {axis = 1 : i64} : (!mo.tensor<f32, ["b", 1], "cpu:0">, !mo.tensor<f32, ["b", 2], "cpu:0">) -> !mo.tensor<f32, ["b", 3], "cpu:0">
    """)
    g = build([tt(DType.float32, "a", 3), tt(DType.float32, 2, 3), tt(DType.float32, "c", 3)], lambda *v: ops.concat(v))
    filecheck(str(g), """
    CHECK: %0 = "mo.concat"(%arg0, %arg1) {axis = 0 : i64} {{.*}} -> !mo.tensor<f32, ["a + 2", 3], "cpu:0">
    CHECK-NEXT: %1 = "mo.concat"(%0, %arg2) {axis = 0 : i64} {{.*}} -> !mo.tensor<f32, ["a + c + 2", 3], "cpu:0">
    CHECK-NEXT: return %1
    """)
    with graph_of(tt(DType.float32, 2)) as gr:
        assert ops.concat([gr.inputs[0]]) is gr.inputs[0]


def test_concat_errors() -> None:
    f32, i32 = DType.float32, DType.int32
    with pytest.raises(ValueError, match=r"concat: dim 1 differs between original_vals\[0\] \[2, 3\] and original_vals\[1\] \[2, 4\]"):
        result_type([tt(f32, 2, 3), tt(f32, 2, 4)], lambda a, b: ops.concat([a, b]))
    with pytest.raises(ValueError, match=r"concat: all inputs must have one dtype: original_vals\[0\] is float32, original_vals\[1\] is int32"):
        result_type([tt(f32, 2), tt(i32, 2)], lambda a, b: ops.concat([a, b]))
    with pytest.raises(ValueError, match=r"concat: all inputs must have one rank"):
        result_type([tt(f32, 2), tt(f32, 2, 1)], lambda a, b: ops.concat([a, b]))
    with pytest.raises(ValueError, match=r"concat: expected at least one tensor"):
        result_type([], lambda: ops.concat([]))
    with pytest.raises(ValueError, match=r"concat: axis=2 is out of range"):
        result_type([tt(f32, 2, 2)], lambda a: ops.concat([a, a], 2))


# -- gather ----------------------------------------------------------------------------------------


def test_gather() -> None:
    types = [tt(DType.float32, "vocab", 16), tt(DType.int64, "batch", "seq")]
    assert _shape(result_type(types, lambda e, i: ops.gather(e, i, 0))) == ["batch", "seq", "16"]
    types = [tt(DType.float32, 2, 5, 3), tt(DType.int32, 4)]
    assert _shape(result_type(types, lambda e, i: ops.gather(e, i, -2))) == ["2", "4", "3"]
    assert _shape(result_type(types[:1], lambda e: ops.gather(e, [0, 1], 2))) == ["2", "5", "2"]
    g = build(types, lambda e, i: ops.gather(e, i, 1))
    filecheck(str(g), """
    CHECK: "mo.gather"(%arg0, %arg1) {axis = 1 : i64} : (!mo.tensor<f32, [2, 5, 3], "cpu:0">, !mo.tensor<si32, [4], "cpu:0">) -> !mo.tensor<f32, [2, 4, 3], "cpu:0">
    """)
    with pytest.raises(ValueError, match="gather: indices must have an integer dtype, got float32"):
        result_type([tt(DType.float32, 3), tt(DType.float32, 2)], lambda e, i: ops.gather(e, i, 0))
    with pytest.raises(ValueError, match="gather: axis=1 is out of range for a tensor of rank 1"):
        result_type([tt(DType.float32, 3), tt(DType.int32, 2)], lambda e, i: ops.gather(e, i, 1))


# -- where -----------------------------------------------------------------------------------------


def test_where() -> None:
    types = [tt(DType.bool, "b", 1), tt(DType.float32, 3), tt(DType.float32, "b", 3)]
    t = result_type(types, ops.where)
    assert _shape(t) == ["b", "3"] and t.dtype == DType.float32
    t = result_type(types[:2], lambda c, x: ops.where(c, x, 0))
    assert _shape(t) == ["b", "3"] and t.dtype == DType.float32
    g = build([tt(DType.bool, 3), tt(DType.float16, 3), tt(DType.float32, 3)], ops.where)
    filecheck(str(g), """
    CHECK: %0 = "mo.cast"(%arg1) {{.*}} -> !mo.tensor<f32, [3], "cpu:0">
    CHECK-NEXT: "mo.where"(%arg0, %0, %arg2) : (!mo.tensor<i1, [3], "cpu:0">, !mo.tensor<f32, [3], "cpu:0">, !mo.tensor<f32, [3], "cpu:0">) -> !mo.tensor<f32, [3], "cpu:0">
    """)
    with pytest.raises(ValueError, match="where: condition must have dtype bool, got float32"):
        result_type([tt(DType.float32, 3)] * 3, ops.where)
    with pytest.raises(ValueError, match=r"where: shapes \[2\], \[3\], \[3\] are not broadcast-compatible"):
        result_type([tt(DType.bool, 2), tt(DType.float32, 3), tt(DType.float32, 3)], ops.where)
    with pytest.raises(TypeError, match="where: needs at least one graph value"):
        result_type([tt(DType.bool, 2)], lambda c: ops.where(c, 1.0, 0.0))


# -- transfer_to -----------------------------------------------------------------------------------


def test_transfer_to() -> None:
    with graph_of(tt(DType.float32, 2)) as g:
        x = g.inputs[0]
        assert ops.transfer_to(x, DeviceRef.CPU()) is x
        assert x.to(DeviceRef.CPU()) is x
        moved = ops.transfer_to(x, DeviceRef.GPU())
        assert moved.type == TensorType(DType.float32, [2], DeviceRef.GPU())
    gpu = TensorType(DType.float32, [2], DeviceRef.GPU())
    assert result_type([gpu], lambda v: v.to(DeviceRef.CPU(1))) == TensorType(
        DType.float32, [2], DeviceRef.CPU(1))
