"""``constant`` and ``cast``: types, attributes in the IR, and errors."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from ops_helpers import ALL_DTYPES, CPU, build, filecheck, graph_of, result_type, tt
from hypothesis import given, settings
from hypothesis import strategies as st

from max.dtype import DType
from max.graph import DeviceRef, ops


def _const(*args, **kwargs):
    return lambda *_: ops.constant(*args, **kwargs)


@pytest.mark.parametrize(
    ("value", "dtype", "expected_dtype", "shape"),
    [
        (np.arange(6, dtype=np.int32).reshape(2, 3), None, DType.int32, [2, 3]),
        (np.float16(1.5), None, DType.float16, []),
        (1.5, None, DType.float32, []),
        (7, None, DType.int64, []),
        (True, None, DType.bool, []),
        ([[1, 2], [3, 4]], DType.uint8, DType.uint8, [2, 2]),
        ([1.0, 2.0], DType.bfloat16, DType.bfloat16, [2]),
        (np.zeros((0, 3), np.float32), None, DType.float32, [0, 3]),
    ],
)
def test_constant_types(value, dtype, expected_dtype, shape) -> None:
    t = result_type([], _const(value, dtype))
    assert t.dtype == expected_dtype
    assert [int(d) for d in t.shape] == shape
    assert t.device == CPU


def test_constant_ir_uses_builtin_tensor_with_mo_element_type() -> None:
    g = build([], lambda: (
        ops.constant([[1, 2, 3], [4, 5, 6]], DType.int32),
        ops.constant(True, DType.bool),
        ops.constant([True, False, True], DType.bool),
        ops.constant(np.array([1, 255], np.uint8)),
        ops.constant([0.5, 1.5], DType.bfloat16),
        ops.constant([1.0, 2.0], DType.float8_e4m3fn),
        ops.constant(2.5, DType.float64),
    ))
    filecheck(str(g), """
    CHECK: "mo.constant"() {value = dense<{{\\[\\[}}1, 2, 3], [4, 5, 6]]> : tensor<2x3xsi32>} : () -> !mo.tensor<si32, [2, 3], "cpu:0">
    CHECK: "mo.constant"() {value = dense<true> : tensor<i1>} : () -> !mo.tensor<i1, [], "cpu:0">
    CHECK: "mo.constant"() {value = dense<[true, false, true]> : tensor<3xi1>} : () -> !mo.tensor<i1, [3], "cpu:0">
    CHECK: "mo.constant"() {value = dense<[1, 255]> : tensor<2xui8>} : () -> !mo.tensor<ui8, [2], "cpu:0">
    CHECK: "mo.constant"() {value = dense<[5.000000e-01, 1.500000e+00]> : tensor<2xbf16>}
    CHECK: "mo.constant"() {value = dense<[1.000000e+00, 2.000000e+00]> : tensor<2xf8E4M3FN>}
    CHECK: "mo.constant"() {value = dense<2.500000e+00> : tensor<f64>} : () -> !mo.tensor<f64, [], "cpu:0">
    """)


@settings(deadline=None)
@given(dtype=st.sampled_from(ALL_DTYPES), shape=st.lists(st.integers(1, 3), max_size=3))
def test_constant_round_trips_values(dtype: DType, shape: list[int]) -> None:
    from mlir import ir

    values = (np.arange(int(np.prod(shape))) % 2).reshape(shape)
    with graph_of():
        c = ops.constant(values, dtype)
    assert c.dtype == dtype and [int(d) for d in c.shape] == shape
    attr = ir.DenseElementsAttr(c.to_mlir().owner.attributes["value"])
    assert str(attr.type.element_type) in str(c.to_mlir().type)
    assert list(attr.type.shape) == shape


def test_constant_device() -> None:
    t = result_type([], _const([1.0], DType.float32, DeviceRef.GPU()))
    assert t.device == DeviceRef.GPU()


@pytest.mark.parametrize(
    ("value", "dtype", "match"),
    [
        (300, DType.int8, r"constant: values in \[300, 300\] do not fit in dtype int8"),
        ([-1, 2], DType.uint32, r"do not fit in dtype uint32"),
        ([0.5], DType.int32, r"non-integral float values do not fit in dtype int32"),
        (1e300, DType.float32, r"does not fit in dtype float32"),
        (2, DType.bool, r"do not fit in dtype bool"),
    ],
)
def test_constant_value_errors(value, dtype, match) -> None:
    with graph_of():
        with pytest.raises(ValueError, match=match):
            ops.constant(value, dtype)


def test_constant_type_errors() -> None:
    with graph_of(tt(DType.float32, 1)) as g:
        with pytest.raises(TypeError, match="constant: value must be data, not a graph value"):
            ops.constant(g.inputs[0])
        with pytest.raises(TypeError, match="constant: cannot make a tensor from str"):
            ops.constant("abc")
        with pytest.raises(TypeError, match="constant: dtype must be a max.dtype.DType"):
            ops.constant(1, np.float32)


def test_constant_precision_loss_is_allowed() -> None:
    with graph_of():
        assert ops.constant(16777217, DType.float32).dtype == DType.float32
        assert ops.constant(np.array([1.1], ml_dtypes.bfloat16)).dtype == DType.bfloat16


def test_cast() -> None:
    g = build([tt(DType.float32, "batch", 2)], lambda x: ops.cast(x, DType.int8))
    filecheck(str(g), """
    CHECK: "mo.cast"(%arg0) : (!mo.tensor<f32, ["batch", 2], "cpu:0">) -> !mo.tensor<si8, ["batch", 2], "cpu:0">
    """)
    assert result_type([tt(DType.int32, 3)], lambda x: x.cast(DType.bool)).dtype == DType.bool
    with pytest.raises(TypeError, match="cast: dtype must be a max.dtype.DType"):
        result_type([tt(DType.int32, 3)], lambda x: ops.cast(x, "float32"))
    with pytest.raises(TypeError, match="cast: x must be a graph value"):
        result_type([], lambda: ops.cast(1.0, DType.float32))
