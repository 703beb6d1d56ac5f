"""Elementwise ops: result types from the op table, dtype checks, operators and the IR."""

from __future__ import annotations

import pytest
from ops_helpers import FLOAT_DTYPES, build, filecheck, graph_of, result_type, tt
from hypothesis import given, settings
from hypothesis import strategies as st

from max.dtype import DType
from max.graph import ops
from max.graph.ops.elementwise import BINARY_OPS, UNARY_OPS, _floating

FLOAT_ONLY = sorted(n for n, e in UNARY_OPS.items() if e.rule is _floating)
TO_BOOL = {"is_nan", "is_inf", "equal", "not_equal", "greater", "greater_equal"}
BOOL_ONLY = {"logical_not", "logical_and", "logical_or", "logical_xor"}


def _op(name: str):
    return getattr(ops, name) if name not in ("max", "min") else getattr(ops, name)


@pytest.mark.parametrize("name", sorted(UNARY_OPS))
def test_unary_result_type(name: str) -> None:
    dtype = DType.bool if name in BOOL_ONLY else DType.float32
    t = result_type([tt(dtype, "batch", 3)], getattr(ops, name))
    assert [str(d) for d in t.shape] == ["batch", "3"]
    assert t.dtype == (DType.bool if name in TO_BOOL | BOOL_ONLY else DType.float32)


@pytest.mark.parametrize("name", sorted(UNARY_OPS))
def test_unary_ir(name: str) -> None:
    dtype, mlir = (DType.bool, "i1") if name in BOOL_ONLY else (DType.float16, "f16")
    out = "i1" if name in TO_BOOL | BOOL_ONLY else mlir
    g = build([tt(dtype, "batch", 3)], getattr(ops, name))
    filecheck(str(g), f"""
    CHECK: %0 = "mo.{name}"(%arg0)
    CHECK-SAME: (!mo.tensor<{mlir}, ["batch", 3], "cpu:0">) -> !mo.tensor<{out}, ["batch", 3], "cpu:0">
    CHECK-NEXT: return %0
    """)


@pytest.mark.parametrize("name", FLOAT_ONLY)
def test_float_only_ops_reject_ints(name: str) -> None:
    with pytest.raises(ValueError, match=rf"{name}: expected a floating-point dtype, got int32"):
        result_type([tt(DType.int32, 2)], getattr(ops, name))


@settings(deadline=None)
@given(dtype=st.sampled_from(FLOAT_DTYPES), name=st.sampled_from(FLOAT_ONLY))
def test_float_ops_keep_float_dtype(dtype: DType, name: str) -> None:
    assert result_type([tt(dtype, 4)], getattr(ops, name)).dtype == dtype


def test_unary_dtype_errors() -> None:
    with pytest.raises(ValueError, match="logical_not: expected dtype bool, got float32"):
        result_type([tt(DType.float32, 2)], ops.logical_not)
    with pytest.raises(ValueError, match="negate: expected a numeric dtype, got bool"):
        result_type([tt(DType.bool, 2)], ops.negate)
    with pytest.raises(ValueError, match="is_nan: expected a floating-point dtype, got int64"):
        result_type([tt(DType.int64, 2)], ops.is_nan)


def test_int_ops_keep_int_dtype() -> None:
    for name in ("abs", "negate", "relu"):
        assert result_type([tt(DType.int16, 2)], getattr(ops, name)).dtype == DType.int16


def test_gelu_approximations() -> None:
    for approximate in ("none", "tanh", "quick"):
        g = build([tt(DType.float32, 2)], lambda x, a=approximate: ops.gelu(x, a))
        filecheck(str(g), f'CHECK: "mo.gelu"(%arg0) {{approximate = "{approximate}"}}')
    with pytest.raises(ValueError, match=r"gelu: invalid approximate='fast'"):
        result_type([tt(DType.float32, 2)], lambda x: ops.gelu(x, "fast"))


@pytest.mark.parametrize("name", sorted(BINARY_OPS))
def test_binary_result_type(name: str) -> None:
    dtype = DType.bool if name in BOOL_ONLY else DType.float32
    fn = BINARY_FUNCS[name]
    t = result_type([tt(dtype, "batch", 1), tt(dtype, 4)], fn)
    assert [str(d) for d in t.shape] == ["batch", "4"]
    assert t.dtype == (DType.bool if name in TO_BOOL | BOOL_ONLY else DType.float32)


BINARY_FUNCS = {name: getattr(ops, name) for name in BINARY_OPS if name not in ("max", "min")}
BINARY_FUNCS["max"] = lambda a, b: ops.max(a, b)
BINARY_FUNCS["min"] = lambda a, b: ops.min(a, b)


@pytest.mark.parametrize("name", sorted(BINARY_OPS))
def test_binary_ir(name: str) -> None:
    dtype, mlir = (DType.bool, "i1") if name in BOOL_ONLY else (DType.float32, "f32")
    out = "i1" if name in TO_BOOL | BOOL_ONLY else mlir
    g = build([tt(dtype, "batch", 1), tt(dtype, 4)], BINARY_FUNCS[name])
    filecheck(str(g), f"""
    CHECK: %0 = "mo.{name}"(%arg0, %arg1)
    CHECK-SAME: (!mo.tensor<{mlir}, ["batch", 1], "cpu:0">, !mo.tensor<{mlir}, [4], "cpu:0">) -> !mo.tensor<{out}, ["batch", 4], "cpu:0">
    CHECK-NEXT: return %0
    """)


def test_logical_ops_need_bool() -> None:
    for name in ("logical_and", "logical_or", "logical_xor"):
        with pytest.raises(ValueError, match=rf"{name}: expected dtype bool, got int32"):
            result_type([tt(DType.int32, 2), tt(DType.int32, 2)], getattr(ops, name))


def test_int_division_is_true_division_in_float64() -> None:
    g = build([tt(DType.int32, 3), tt(DType.int32, 3)], ops.div)
    filecheck(str(g), """
    CHECK: %0 = "mo.cast"(%arg0) {{.*}} -> !mo.tensor<f64, [3], "cpu:0">
    CHECK: %1 = "mo.cast"(%arg1) {{.*}} -> !mo.tensor<f64, [3], "cpu:0">
    CHECK: "mo.div"(%0, %1) {{.*}} -> !mo.tensor<f64, [3], "cpu:0">
    """)
    assert result_type([tt(DType.float16, 3)], lambda x: x / 2).dtype == DType.float16


def test_floor_div() -> None:
    g = build([tt(DType.int32, 3)], lambda x: x // 2)
    filecheck(str(g), """
    CHECK: "mo.div"(%arg0, %0) {{.*}} -> !mo.tensor<si32, [3], "cpu:0">
    CHECK-NOT: mo.floor
    """)
    g = build([tt(DType.float32, 3)], lambda x: 7.0 // x)
    filecheck(str(g), """
    CHECK: %[[Q:.*]] = "mo.div"(%0, %arg0)
    CHECK: "mo.floor"(%[[Q]]) {{.*}} -> !mo.tensor<f32, [3], "cpu:0">
    """)


def test_operators() -> None:
    with graph_of(tt(DType.float32, "batch", 3), tt(DType.float32, 3)) as g:
        x, y = g.inputs
        assert (x + y).type == (y + x).type
        for expr in (x - 1, 1 - x, 2 * x, x / 2, 2 / x, x % 3, x ** 2, 2 ** x, -x, abs(x)):
            assert [str(d) for d in expr.shape] == ["batch", "3"]
            assert expr.dtype == DType.float32
        for expr in (x < y, x <= 1.0, x > 0, x >= y, x == y, x != 1):
            assert expr.dtype == DType.bool
        b = x > 0
        assert (~b).dtype == (b & b).dtype == (b | True).dtype == (b ^ b).dtype == DType.bool


def test_comparison_swaps_operands() -> None:
    g = build([tt(DType.float32, 2), tt(DType.float32, 2)], lambda x, y: x < y)
    filecheck(str(g), 'CHECK: "mo.greater"(%arg1, %arg0)')
    g = build([tt(DType.float32, 2), tt(DType.float32, 2)], lambda x, y: x <= y)
    filecheck(str(g), 'CHECK: "mo.greater_equal"(%arg1, %arg0)')


def test_elementwise_chain_ir() -> None:
    def mlp(x, w):
        return ops.relu(x @ w + 1.0)

    g = build([tt(DType.float32, "batch", 4), tt(DType.float32, 4, 2)], mlp)
    filecheck(str(g), """
    CHECK: func.func @g(%arg0: !mo.tensor<f32, ["batch", 4], "cpu:0">, %arg1: !mo.tensor<f32, [4, 2], "cpu:0">) -> !mo.tensor<f32, ["batch", 2], "cpu:0">
    CHECK-NEXT: %0 = "mo.matmul"(%arg0, %arg1)
    CHECK-NEXT: %1 = "mo.constant"() {value = dense<1.000000e+00> : tensor<f32>}
    CHECK-NEXT: %2 = "mo.add"(%0, %1)
    CHECK-NEXT: %3 = "mo.relu"(%2)
    CHECK-NEXT: return %3
    """)
