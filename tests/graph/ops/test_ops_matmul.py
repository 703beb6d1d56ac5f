"""``matmul``: numpy's shape rules, batch broadcasting through ``mo.broadcast_to``, errors."""

from __future__ import annotations

import numpy as np
import pytest
from ops_helpers import build, filecheck, result_type, tt
from hypothesis import given, settings
from hypothesis import strategies as st

from max.dtype import DType
from max.graph import ops


def _shape(t) -> list[str]:
    return [str(d) for d in t.shape]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((2, 3), (3, 4), ["2", "4"]),
        ((5, 1, 2, 3), (4, 3, 6), ["5", "4", "2", "6"]),
        ((3,), (3, 4), ["4"]),
        ((2, 3), (3,), ["2"]),
        ((3,), (3,), []),
        ((7, 2, 3), (3,), ["7", "2"]),
        ((3,), (7, 3, 4), ["7", "4"]),
        (("batch", "seq", 8), (8, 16), ["batch", "seq", "16"]),
        (("batch", 2, "k"), ("batch", "k", 5), ["batch", "2", "5"]),
        ((1, 2, 3), ("batch", 3, 5), ["batch", "2", "5"]),
    ],
)
def test_matmul_shapes(a, b, expected) -> None:
    t = result_type([tt(DType.float32, *a), tt(DType.float32, *b)], ops.matmul)
    assert _shape(t) == expected
    assert t.dtype == DType.float32


@settings(deadline=None)
@given(
    batch=st.lists(st.integers(1, 3), max_size=2),
    m=st.integers(1, 3), k=st.integers(1, 3), n=st.integers(1, 3),
    lhs_ones=st.lists(st.booleans(), min_size=2, max_size=2),
    lhs_rank=st.integers(0, 2), rhs_rank=st.integers(0, 2),
    vectors=st.sampled_from([(False, False), (True, False), (False, True), (True, True)]),
)
def test_matmul_agrees_with_numpy(batch, m, k, n, lhs_ones, lhs_rank, rhs_rank, vectors) -> None:
    lb = [1 if lhs_ones[i] else d for i, d in enumerate(batch)][len(batch) - min(lhs_rank, len(batch)):]
    rb = batch[len(batch) - min(rhs_rank, len(batch)):]
    a = (k,) if vectors[0] else (*lb, m, k)
    b = (k,) if vectors[1] else (*rb, k, n)
    expected = np.matmul(np.zeros(a), np.zeros(b)).shape
    t = result_type([tt(DType.float32, *a), tt(DType.float32, *b)], lambda x, y: x @ y)
    assert tuple(int(d) for d in t.shape) == expected


def test_matmul_ir_broadcasts_batch_dims() -> None:
    g = build([tt(DType.float32, 2, 3), tt(DType.float32, "batch", 3, 4)], ops.matmul)
    filecheck(str(g), """
    CHECK: %0 = "mo.broadcast_to"(%arg0) : (!mo.tensor<f32, [2, 3], "cpu:0">) -> !mo.tensor<f32, ["batch", 2, 3], "cpu:0">
    CHECK-NEXT: %1 = "mo.matmul"(%0, %arg1) {{.*}} -> !mo.tensor<f32, ["batch", 2, 4], "cpu:0">
    """)


def test_matmul_ir_rank2_rhs_is_not_broadcast() -> None:
    g = build([tt(DType.float32, "batch", 2, 3), tt(DType.float32, 3, 4)], ops.matmul)
    filecheck(str(g), """
    CHECK-NOT: mo.broadcast_to
    CHECK: "mo.matmul"(%arg0, %arg1) : (!mo.tensor<f32, ["batch", 2, 3], "cpu:0">, !mo.tensor<f32, [3, 4], "cpu:0">) -> !mo.tensor<f32, ["batch", 2, 4], "cpu:0">
    """)


def test_matmul_ir_vectors_reshape() -> None:
    g = build([tt(DType.float32, 3), tt(DType.float32, 3, 4)], ops.matmul)
    filecheck(str(g), """
    CHECK: %0 = "mo.reshape"(%arg0) {{.*}} -> !mo.tensor<f32, [1, 3], "cpu:0">
    CHECK-NEXT: %1 = "mo.matmul"(%0, %arg1) {{.*}} -> !mo.tensor<f32, [1, 4], "cpu:0">
    CHECK-NEXT: %2 = "mo.reshape"(%1) {{.*}} -> !mo.tensor<f32, [4], "cpu:0">
    """)


def test_matmul_promotes_dtypes() -> None:
    g = build([tt(DType.float16, 2, 3), tt(DType.float32, 3, 4)], ops.matmul)
    filecheck(str(g), """
    CHECK: %0 = "mo.cast"(%arg0) {{.*}} -> !mo.tensor<f32, [2, 3], "cpu:0">
    CHECK-NEXT: "mo.matmul"(%0, %arg1)
    """)


def test_matmul_errors() -> None:
    with pytest.raises(ValueError, match=r"matmul: the K dims differ: lhs has 3, rhs has 4 \(shapes \[2, 3\] @ \[4, 5\]\)"):
        result_type([tt(DType.float32, 2, 3), tt(DType.float32, 4, 5)], ops.matmul)
    with pytest.raises(ValueError, match=r"K dims differ: lhs has k, rhs has j"):
        result_type([tt(DType.float32, 2, "k"), tt(DType.float32, "j", 5)], ops.matmul)
    with pytest.raises(ValueError, match=r"matmul .*\[2, 2, 3\] @ \[3, 3, 4\].* not broadcast-compatible"):
        result_type([tt(DType.float32, 2, 2, 3), tt(DType.float32, 3, 3, 4)], ops.matmul)
    with pytest.raises(ValueError, match=r"matmul: operands must have rank >= 1, got shapes \[\] and \[3\]"):
        result_type([tt(DType.float32), tt(DType.float32, 3)], ops.matmul)
    with pytest.raises(ValueError, match="matmul: expected a numeric dtype, got bool"):
        result_type([tt(DType.bool, 2, 2), tt(DType.bool, 2, 2)], ops.matmul)
