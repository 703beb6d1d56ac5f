"""rebind (TensorValue.rebind too) and shape_to_tensor: run-time checks, symbolic dims, the
IR they emit and the errors they raise."""

from __future__ import annotations

import numpy as np
import pytest
from ops_helpers import build, filecheck, result_type, shared_session, tt
from test_ops_numeric import check, run

from max.dtype import DType
from max.graph import Dim, Graph, ops


def test_rebind_symbolic_to_static_checks_at_run_time() -> None:
    g = Graph("rb", lambda v: ops.rebind(v, [4, 3], "rows must be 4") * 2,
              input_types=[tt(DType.float32, "batch", 3)])
    assert list(g.output_types[0].shape) == [Dim(4), Dim(3)]
    model = shared_session().load(g)
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    check(model.execute(x)[0].to_numpy(), x * 2)
    for rows in (2, 6, 0):  # fewer and more rows: the model reports, reads nothing beyond x
        with pytest.raises(ValueError, match=r"rebind: rows must be 4 \(rebinding \[batch, 3\] "
                                             r"to \[4, 3\]\)"):
            model.execute(np.ones((rows, 3), np.float32))
    check(model.execute(x)[0].to_numpy(), x * 2)  # still usable


def test_rebind_to_another_inputs_symbol_and_method() -> None:
    types = [tt(DType.int32, "a", 2), tt(DType.int32, "b", 2)]
    x, y = np.arange(6, dtype=np.int32).reshape(3, 2), np.ones((3, 2), np.int32)
    (got,) = run(lambda u, v: u.rebind(v.shape) + v, types, x, y)
    check(got, x + 1)
    with pytest.raises(ValueError, match=r"rebind: the tensor's shape does not match when "
                                         r"rebinding \[a, 2\] to \[b, 2\]"):
        run(lambda u, v: u.rebind(v.shape) + v, types, x, np.ones((4, 2), np.int32))


def test_rebind_to_the_same_shape_is_the_value() -> None:
    g = build([tt(DType.float32, "n", 3)], lambda v: ops.rebind(v, ["n", 3]))
    filecheck(str(g), """
    CHECK-NOT: mo.rebind
    CHECK: return %arg0
    """)
    g = build([tt(DType.float32, "n", 3)], lambda v: ops.rebind(v, [5, 3], "m"))
    filecheck(str(g), """
    CHECK: "mo.rebind"(%arg0) {message = "m"}
    CHECK-SAME: -> !mo.tensor<f32, [5, 3], "cpu:0">
    """)


def test_rebind_errors() -> None:
    f = [tt(DType.float32, "n", 3)]
    with pytest.raises(ValueError, match=r"rebind: shape \[3\] has rank 1, the tensor \[n, 3\] "
                                         "has rank 2"):
        result_type(f, lambda v: ops.rebind(v, [3]))
    with pytest.raises(ValueError, match=r"rebind: dim 1 of \[n, 3\] is 3, it cannot be rebound "
                                         "to 4"):
        result_type(f, lambda v: ops.rebind(v, ["n", 4]))
    with pytest.raises(ValueError, match="rebind: shape uses the symbol 'm', which no graph input"):
        result_type(f, lambda v: ops.rebind(v, ["m", 3]))
    with pytest.raises(ValueError, match=r"rebind: shape\[0\] = -1 is negative"):
        result_type(f, lambda v: ops.rebind(v, [-1, 3]))
    with pytest.raises(TypeError, match="rebind: message must be a str"):
        result_type(f, lambda v: ops.rebind(v, [2, 3], 7))
    with pytest.raises(ValueError, match="rebind: layout=.* is not supported"):
        result_type(f, lambda v: ops.rebind(v, [2, 3], layout="RSCF"))
    with pytest.raises(TypeError, match="rebind: shape must be a sequence of dims"):
        result_type(f, lambda v: ops.rebind(v, 3))


def test_shape_to_tensor_of_symbolic_dims() -> None:
    types = [tt(DType.float32, "batch", 3), tt(DType.float32, "seq")]
    got = run(lambda x, y: (ops.shape_to_tensor(x.shape),
                            ops.shape_to_tensor([x.shape[0] * 2 + y.shape[0], 7, y.shape[0]]),
                            ops.shape_to_tensor([])),
              types, np.zeros((5, 3), np.float32), np.zeros(2, np.float32))
    check(got[0], np.array([5, 3], np.int64))
    check(got[1], np.array([12, 7, 2], np.int64))
    check(got[2], np.zeros(0, np.int64))


def test_shape_to_tensor_static_is_a_constant() -> None:
    g = build([], lambda: ops.shape_to_tensor([2, 0, 9]))
    filecheck(str(g), """
    CHECK: mo.constant
    CHECK-SAME: dense<[2, 0, 9]> : tensor<3xsi64>
    """)
    t = result_type([], lambda: ops.shape_to_tensor((4, 5)))
    assert t.dtype == DType.int64 and list(t.shape) == [Dim(2)]


def test_shape_to_tensor_errors() -> None:
    with pytest.raises(ValueError, match="shape_to_tensor: shape uses the symbol 'n', which no "
                                         "graph input"):
        result_type([], lambda: ops.shape_to_tensor(["n"]))
    with pytest.raises(ValueError, match=r"shape_to_tensor: shape\[1\] = -2 is negative"):
        result_type([], lambda: ops.shape_to_tensor([1, -2]))
    with pytest.raises(TypeError, match="shape_to_tensor: shape must be a sequence of dims"):
        result_type([], lambda: ops.shape_to_tensor(3))
    with pytest.raises(TypeError, match=r"shape_to_tensor: shape\[0\]: a dim must be an int"):
        result_type([], lambda: ops.shape_to_tensor([1.5]))
