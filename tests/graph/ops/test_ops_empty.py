"""Reductions and softmax over empty axes (and empty tensors along other axes), against numpy.

numpy's sum of nothing is 0 and its mean NaN; its max/min/argmax/argmin of nothing raise, so
ours raise too: a ValueError from the builder when the size is static, a ValueError from the
runtime check when a symbolic size is 0 at run time. softmax of nothing is nothing. Static
size-0 loops used to abort the compile worker (an assertion in the CPU schedule's tiling).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from ops_helpers import shared_session, tt

from max import driver
from max.dtype import DType
from max.graph import Graph, ops


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True)) if x.shape[axis] else x
    return e / e.sum(axis=axis, keepdims=True)


def _logsoftmax(x: np.ndarray, axis: int) -> np.ndarray:
    if not x.shape[axis]:
        return x
    s = x - x.max(axis=axis, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


# op -> numpy reference (keepdims); the float32 input is empty somewhere.
WITH_IDENTITY = {
    "sum": lambda x, a: np.sum(x, axis=a, keepdims=True),
    "mean": lambda x, a: np.mean(x, axis=a, keepdims=True),
    "softmax": _softmax,
    "logsoftmax": _logsoftmax,
}
NO_IDENTITY = {
    "max": lambda x, a: np.max(x, axis=a, keepdims=True),
    "min": lambda x, a: np.min(x, axis=a, keepdims=True),
    "argmax": lambda x, a: np.expand_dims(np.argmax(x, axis=a), a),
    "argmin": lambda x, a: np.expand_dims(np.argmin(x, axis=a), a),
}
SHAPES = [((3, 0), 1), ((0,), 0), ((2, 0, 3), 1), ((0, 5), 0)]  # the reduced axis is empty
OTHER_AXIS = [((0, 5), 1), ((4, 0), 0), ((2, 0, 3), 2)]  # empty elsewhere, reduced axis not


def _run(op: str, shape: tuple[Any, ...], axis: int, x: np.ndarray,
         dtype: DType = DType.float32) -> np.ndarray:
    fn = getattr(ops, op)
    graph = Graph(op, lambda v: fn(v, axis=axis), input_types=[tt(dtype, *shape)])
    (out,) = shared_session().load(graph).execute(driver.Tensor.from_numpy(x))
    return out.to_numpy()


def _numpy(fn: Callable[..., np.ndarray], x: np.ndarray, axis: int) -> np.ndarray:
    """numpy's result, without its "mean of empty slice" warning."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(x, axis)


def _check(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, want.shape)
    np.testing.assert_array_equal(got, want)  # NaN equals NaN here


@pytest.mark.parametrize("op", sorted(WITH_IDENTITY))
@pytest.mark.parametrize(("shape", "axis"), SHAPES + OTHER_AXIS)
def test_empty_with_identity(op: str, shape: tuple[int, ...], axis: int) -> None:
    x = np.zeros(shape, np.float32)
    want = _numpy(WITH_IDENTITY[op], x, axis).astype(np.float32)
    _check(_run(op, shape, axis, x), want)


@pytest.mark.parametrize("op", sorted(NO_IDENTITY))
@pytest.mark.parametrize(("shape", "axis"), OTHER_AXIS)
def test_no_identity_empty_elsewhere(op: str, shape: tuple[int, ...], axis: int) -> None:
    x = np.zeros(shape, np.float32)
    _check(_run(op, shape, axis, x), NO_IDENTITY[op](x, axis))


@pytest.mark.parametrize("op", sorted(NO_IDENTITY))
@pytest.mark.parametrize(("shape", "axis"), SHAPES)
def test_no_identity_static_empty_axis_raises(op: str, shape: tuple[int, ...], axis: int) -> None:
    with pytest.raises(ValueError):
        NO_IDENTITY[op](np.zeros(shape, np.float32), axis)  # numpy raises too
    with pytest.raises(ValueError, match=rf"{op}: axis {axis} of shape \[.*\] is empty"):
        Graph(op, lambda v: getattr(ops, op)(v, axis=axis), input_types=[tt(DType.float32, *shape)])


@pytest.mark.parametrize("op", sorted(NO_IDENTITY))
def test_no_identity_symbolic_empty_axis_is_a_runtime_error(op: str) -> None:
    """Size 0 at run time: the runtime check raises; the model stays usable."""
    fn = getattr(ops, op)
    model = shared_session().load(Graph(op, lambda v: fn(v, axis=1), input_types=[
        tt(DType.int32, 2, "n")]))
    with pytest.raises(ValueError, match=rf"mo\.\w*{op[-3:]}: axis 1 of shape \[2, n\] is empty"):
        model.execute(driver.Tensor.from_numpy(np.zeros((2, 0), np.int32)))
    x = np.array([[3, 1, 4], [1, 5, 9]], np.int32)
    (out,) = model.execute(driver.Tensor.from_numpy(x))
    _check(out.to_numpy(), NO_IDENTITY[op](x, 1))


@pytest.mark.parametrize("op", sorted(WITH_IDENTITY))
def test_with_identity_symbolic_empty_axis(op: str) -> None:
    fn = getattr(ops, op)
    model = shared_session().load(Graph(op, lambda v: fn(v, axis=1), input_types=[
        tt(DType.float32, 2, "n")]))
    for n in (0, 3):
        x = np.arange(2 * n, dtype=np.float32).reshape(2, n)
        (out,) = model.execute(driver.Tensor.from_numpy(x))
        want = _numpy(WITH_IDENTITY[op], x, 1).astype(np.float32)
        np.testing.assert_allclose(out.to_numpy(), want, rtol=1e-6)


@pytest.mark.parametrize("dtype", [DType.int32, DType.float16, DType.bfloat16, DType.float64])
def test_sum_mean_of_nothing_other_dtypes(dtype: DType) -> None:
    x = np.zeros((3, 0), dtype.to_numpy())
    graph = Graph("s", lambda v: (ops.sum(v, axis=1), ops.mean(v, axis=0)),
                  input_types=[tt(dtype, 3, 0)])
    s, m = (o.to_numpy() for o in shared_session().load(graph).execute(driver.Tensor.from_numpy(x)))
    np.testing.assert_array_equal(s, np.zeros((3, 1), dtype.to_numpy()))
    assert m.shape == (1, 0)


def test_matmul_and_layer_norm_with_empty_dims() -> None:
    """Empty contraction (k = 0: zeros) and empty rows, which also reached the schedule."""
    graph = Graph("e", lambda a, b, x, g, beta: (ops.matmul(a, b),
                                                 ops.layer_norm(x, g, beta, 1e-5)),
                  input_types=[tt(DType.float32, 3, 0), tt(DType.float32, 0, 4),
                               tt(DType.float32, 0, 4), tt(DType.float32, 4),
                               tt(DType.float32, 4)])
    args = [np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32),
            np.zeros((0, 4), np.float32), np.ones(4, np.float32), np.zeros(4, np.float32)]
    mm, ln = (o.to_numpy() for o in shared_session().load(graph).execute(
        *map(driver.Tensor.from_numpy, args)))
    _check(mm, np.zeros((3, 4), np.float32))
    assert ln.shape == (0, 4)


def test_static_empty_max_in_mo_text_is_rejected(tmp_path) -> None:
    """MO text skips the builders: the MO verifier refuses it (this used to abort the worker)."""
    path = tmp_path / "empty_max.mlir"
    path.write_text(
        'func.func @g(%x: !mo.tensor<f32, [3, 0], "cpu:0">) -> !mo.tensor<f32, [3, 1], "cpu:0">'
        ' attributes {mo.graph} {\n'
        '  %0 = "mo.reduce_max"(%x) {axis = 1 : i64} : (!mo.tensor<f32, [3, 0], "cpu:0">)'
        ' -> !mo.tensor<f32, [3, 1], "cpu:0">\n'
        '  func.return %0 : !mo.tensor<f32, [3, 1], "cpu:0">\n}\n')
    with pytest.raises(ValueError, match=r"mo\.reduce_max: axis 1 of operand x \[3, 0\] is "
                                         r"empty") as info:
        shared_session().load(path)
    assert "crashed" not in str(info.value)
