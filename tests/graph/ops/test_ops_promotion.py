"""DType promotion (strong and weak operands), device placement and broadcasting rules."""

from __future__ import annotations

import numpy as np
import pytest
from ops_helpers import (
    ALL_DTYPES,
    NUMPY_DTYPES,
    broadcastable_shapes,
    build,
    filecheck,
    graph_of,
    result_type,
    static_shapes,
    symbolic_broadcastable_shapes,
    tt,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from max.dtype import DType
from max.graph import DeviceRef, Dim, TensorType, ops
from max.graph.ops._promotion import promote_dtypes, representable

PROMOTIONS = [
    (DType.int8, DType.float16, DType.float16),
    (DType.uint8, DType.int16, DType.int16),
    (DType.bool, DType.int32, DType.int32),
    (DType.bool, DType.float8_e4m3fn, DType.float8_e4m3fn),
    (DType.float16, DType.float32, DType.float32),
    (DType.int16, DType.float32, DType.float32),
    (DType.int32, DType.float64, DType.float64),
    (DType.uint32, DType.int64, DType.int64),
    (DType.float8_e4m3fn, DType.bfloat16, DType.bfloat16),
    (DType.float8_e5m2, DType.float16, DType.float16),
    (DType.int8, DType.bfloat16, DType.bfloat16),
]

FAILURES = [
    (DType.uint8, DType.int8),
    (DType.int32, DType.float16),
    (DType.int32, DType.float32),
    (DType.int64, DType.float64),
    (DType.uint64, DType.int64),
    (DType.float16, DType.bfloat16),
    (DType.int16, DType.float16),
    (DType.float8_e4m3fn, DType.float8_e5m2),
]


@pytest.mark.parametrize(("a", "b", "expected"), PROMOTIONS)
def test_promotion_table(a: DType, b: DType, expected: DType) -> None:
    assert promote_dtypes("add", [a, b]) == expected
    assert promote_dtypes("add", [b, a]) == expected
    assert result_type([tt(a, 2), tt(b, 2)], ops.add).dtype == expected


@pytest.mark.parametrize(("a", "b"), FAILURES)
def test_promotion_failures(a: DType, b: DType) -> None:
    with pytest.raises(ValueError, match=rf"add: cannot promote dtypes \({a.name}, {b.name}\)"):
        result_type([tt(a, 2), tt(b, 2)], ops.add)


@settings(deadline=None)
@given(a=st.sampled_from(NUMPY_DTYPES), b=st.sampled_from(NUMPY_DTYPES))
def test_promotion_agrees_with_numpy(a: DType, b: DType) -> None:
    """Where MAX promotes, it agrees with numpy; it refuses whenever numpy would widen."""
    expected = np.result_type(a.to_numpy(), b.to_numpy())
    if expected not in (a.to_numpy(), b.to_numpy()):
        with pytest.raises(ValueError, match="cannot promote"):
            promote_dtypes("add", [a, b])
        return
    try:
        got = promote_dtypes("add", [a, b])
    except ValueError:
        # Only refused where an int cannot be held exactly by the float of the same width.
        assert {a.is_integral(), b.is_integral()} == {True, False}
        return
    assert got.to_numpy() == expected
    assert promote_dtypes("add", [b, a]) == got


@settings(deadline=None)
@given(a=st.sampled_from(ALL_DTYPES), b=st.sampled_from(ALL_DTYPES))
def test_promotion_returns_an_input_that_represents_both(a: DType, b: DType) -> None:
    try:
        got = promote_dtypes("mul", [a, b])
    except ValueError:
        assert a != b
        return
    assert got in (a, b)
    assert representable(a, got) and representable(b, got)


def test_mixed_dtypes_insert_one_cast() -> None:

    g = build([tt(DType.int8, 3), tt(DType.float32, 3)], ops.add)
    filecheck(str(g), """
    CHECK: %[[C:.*]] = "mo.cast"(%arg0) : (!mo.tensor<si8, [3], "cpu:0">) -> !mo.tensor<f32, [3], "cpu:0">
    CHECK-NEXT: "mo.add"(%[[C]], %arg1) : (!mo.tensor<f32, [3], "cpu:0">, !mo.tensor<f32, [3], "cpu:0">) -> !mo.tensor<f32, [3], "cpu:0">
    CHECK-NOT: mo.cast
    """)


# -- weak (Python and numpy) values ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "value"),
    [
        (DType.int8, 127),
        (DType.int8, -128),
        (DType.uint8, 255),
        (DType.float32, 2**24),
        (DType.float16, 1.5),
        (DType.bfloat16, 3.0),
        (DType.float32, np.float64(0.1)),
        (DType.int32, np.int64(7)),
        (DType.bool, True),
        (DType.float32, True),
        (DType.int16, np.array([1, 2, 3])),
        (DType.float32, np.array([1.5, 2.5, 3.5])),
    ],
)
def test_weak_values_take_the_tensor_dtype(dtype: DType, value: object) -> None:
    fns = [lambda x: x + value, lambda x: ops.mul(value, x)]
    if not isinstance(value, np.ndarray):  # ndarray.__add__ would take over `value + x`
        fns.append(lambda x: value + x)
    for fn in fns:
        t = result_type([tt(dtype, 3)], fn)
        assert t.dtype == dtype
        assert list(t.shape) == [3]


@pytest.mark.parametrize(
    ("dtype", "value", "match"),
    [
        (DType.int8, 128, r"int 128 to dtype int8"),
        (DType.uint8, -1, r"int -1 to dtype uint8"),
        (DType.int32, 2**40, r"to dtype int32"),
        (DType.float32, 2**24 + 1, r"to dtype float32"),
        (DType.int32, 2.5, r"float to dtype int32"),
        (DType.bool, 2, r"to dtype bool"),
        (DType.int8, np.array([1, 300]), r"values in \[1, 300\]"),
        (DType.int64, np.array([0.5]), r"float to dtype int64"),
    ],
)
def test_weak_values_that_do_not_fit_raise(dtype: DType, value: object, match: str) -> None:
    with pytest.raises(ValueError, match=r"add: unsafe cast.*" + match):
        result_type([tt(dtype, 3)], lambda x: ops.add(x, value))


@settings(deadline=None)
@given(
    dtype=st.sampled_from([d for d in NUMPY_DTYPES if d.is_integral()]),
    value=st.integers(-(2**65), 2**65),
)
def test_weak_int_fits_iff_in_range(dtype: DType, value: int) -> None:
    info = np.iinfo(dtype.to_numpy())
    if info.min <= value <= info.max:
        assert result_type([tt(dtype, 2)], lambda x: x - value).dtype == dtype
    else:
        with pytest.raises(ValueError, match="unsafe cast"):
            result_type([tt(dtype, 2)], lambda x: x - value)


def test_two_weak_operands_raise_type_error() -> None:
    with graph_of(tt(DType.float32, 1)):
        with pytest.raises(TypeError, match="add: needs at least one graph value"):
            ops.add(1, 2.0)


def test_unary_ops_refuse_weak_values() -> None:
    with graph_of(tt(DType.float32, 1)):
        with pytest.raises(TypeError, match="exp: x must be a graph value"):
            ops.exp(1.0)
        with pytest.raises(TypeError, match="negate: x must be a TensorValue, got str"):
            ops.negate("x")


def test_weak_constant_in_ir_has_tensor_dtype() -> None:

    g = build([tt(DType.float16, "batch")], lambda x: x * 2)
    filecheck(str(g), """
    CHECK: %[[C:.*]] = "mo.constant"() {value = dense<2.000000e+00> : tensor<f16>} : () -> !mo.tensor<f16, [], "cpu:0">
    CHECK: "mo.mul"(%arg0, %[[C]]) : (!mo.tensor<f16, ["batch"], "cpu:0">, !mo.tensor<f16, [], "cpu:0">) -> !mo.tensor<f16, ["batch"], "cpu:0">
    """)


# -- devices ---------------------------------------------------------------------------------------


def test_operands_on_different_devices_raise() -> None:
    a = TensorType(DType.float32, [2], DeviceRef.CPU())
    b = TensorType(DType.float32, [2], DeviceRef.GPU())
    with pytest.raises(ValueError, match=r"add: operands are on different devices \(cpu:0, gpu:0\)"):
        result_type([a, b], ops.add)


def test_weak_values_go_to_the_tensor_device() -> None:
    gpu = TensorType(DType.float32, [2], DeviceRef.GPU(1))
    assert result_type([gpu], lambda x: 1.0 - x).device == DeviceRef.GPU(1)


# -- broadcasting ----------------------------------------------------------------------------------


@settings(deadline=None)
@given(shapes=broadcastable_shapes())
def test_broadcast_agrees_with_numpy(shapes: list[tuple[int, ...]]) -> None:
    a, b = shapes
    t = result_type([tt(DType.float32, *a), tt(DType.float32, *b)], ops.add)
    assert tuple(int(d) for d in t.shape) == np.broadcast_shapes(a, b)


@settings(deadline=None)
@given(a=static_shapes(3, 3), b=static_shapes(3, 3))
def test_broadcast_failures_agree_with_numpy(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    try:
        expected = np.broadcast_shapes(a, b)
    except ValueError:
        with pytest.raises(ValueError, match=r"sub: shapes .* are not broadcast-compatible"):
            result_type([tt(DType.int32, *a), tt(DType.int32, *b)], ops.sub)
        return
    t = result_type([tt(DType.int32, *a), tt(DType.int32, *b)], ops.sub)
    assert tuple(int(d) for d in t.shape) == expected


@settings(deadline=None)
@given(shapes=symbolic_broadcastable_shapes())
def test_symbolic_broadcast(shapes: tuple[list[object], list[object]]) -> None:
    """Symbols broadcast with themselves and static 1: as numpy with each symbol a prime."""
    values = {"batch": 5, "seq": 7}
    a, b = shapes
    t = result_type([tt(DType.float32, *a), tt(DType.float32, *b)], ops.mul)
    concrete = np.broadcast_shapes(
        tuple(values.get(d, d) for d in a), tuple(values.get(d, d) for d in b)
    )
    names = {v: k for k, v in values.items()}
    assert [str(d) for d in t.shape] == [str(names.get(d, d)) for d in concrete]


def test_symbolic_dims_do_not_broadcast_with_other_symbols() -> None:
    with pytest.raises(ValueError, match=r"add: shapes \[batch, 3\], \[seq, 3\] are not broadcast-compatible"):
        result_type([tt(DType.float32, "batch", 3), tt(DType.float32, "seq", 3)], ops.add)
    with pytest.raises(ValueError, match=r"is batch in one operand and 3 in another"):
        result_type([tt(DType.float32, "batch"), tt(DType.float32, 3)], ops.add)


def test_algebraic_dims_broadcast_by_canonical_form() -> None:
    def fn(x, y):
        doubled = ops.concat([x, x], 0)  # batch + batch
        return doubled + y

    t = result_type([tt(DType.float32, "batch", 1), tt(DType.float32, 2 * Dim("batch"), 4)], fn)
    assert [str(d) for d in t.shape] == ["batch * 2", "4"]
