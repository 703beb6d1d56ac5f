"""Edge shapes a new user meets, compiled and run against numpy: size-0 dims (static, and
symbolic dims bound to 0 at run time) through every op family, rank-0 scalars, size-1 dims
and negative axes. Each case is one small graph."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
import torch
from ops_helpers import shared_session, tt

from max.dtype import DType
from max.graph import DeviceRef, Graph, ops

CPU = DeviceRef.CPU()
RNG = np.random.default_rng(7)


def f(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def idx(*shape: int, hi: int = 3) -> np.ndarray:
    return RNG.integers(0, hi, shape).astype(np.int64)


def _t(fn: Callable[..., Any]) -> Callable[..., np.ndarray]:
    return lambda *a: fn(*(torch.from_numpy(x) for x in a)).numpy()


def run_case(fn: Callable[..., Any], expected: Callable[..., Any], arrays: Sequence[np.ndarray],
             dims: Sequence[Any] | None = None) -> None:
    """Builds ``fn`` over inputs shaped like ``arrays`` (or declared ``dims``: symbolic ones
    bind at run time), runs it and compares every output's shape, dtype and values."""
    types = [tt(DType.from_numpy(a.dtype), *(a.shape if d is None else d))
             for a, d in zip(arrays, dims or [None] * len(arrays))]
    model = shared_session().load(Graph("edge", fn, input_types=types))
    got = [o.to_numpy() for o in model.execute(*arrays)]
    want = expected(*arrays)
    want = want if isinstance(want, list) else [want]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        w = np.asarray(w)
        assert (g.shape, g.dtype) == (w.shape, w.dtype)
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def concat(axis: int) -> tuple[Callable[..., Any], Callable[..., Any]]:
    return (lambda *xs: ops.concat(xs, axis)), (lambda *xs: np.concatenate(xs, axis))


EMPTY = {
    # concat where some or all inputs are empty along the axis (or another axis)
    "concat_first_empty": (*concat(0), [f(0, 3), f(2, 3)]),
    "concat_last_empty_neg_axis": (*concat(-1), [f(2, 3), f(2, 0)]),
    "concat_all_empty": (*concat(0), [f(0, 3), f(0, 3)]),
    "concat_middle_empty": (*concat(1), [f(2, 1), f(2, 0), f(2, 2)]),
    "concat_empty_other_axis": (*concat(1), [f(0, 1), f(0, 2)]),
    "concat_one_empty": (*concat(0), [f(0, 3)]),
    # elementwise, broadcasting against empty
    "elementwise": (lambda a: ops.exp(a * 2 + 1), lambda a: np.exp(a * 2 + 1), [f(2, 0, 3)]),
    "broadcast_1_against_0": (lambda a, b: a + b, lambda a, b: a + b, [f(0, 3), f(1, 3)]),
    "broadcast_to_0": (lambda a, b: a * b, lambda a, b: a * b, [f(4, 1), f(0)]),
    "compare": (lambda a, b: a > b, lambda a, b: a > b, [f(2, 0), f(2, 0)]),
    "int_floor_div": (lambda a, b: a // b, lambda a, b: a // b, [idx(0, 2), idx(0, 2)]),
    "where": (ops.where, np.where, [np.zeros((0, 2), bool), f(0, 2), f(1, 2)]),
    "cast": (lambda a: ops.cast(a, DType.int32), lambda a: a.astype(np.int32), [f(0, 2)]),
    "float16": (lambda a: a * 2, lambda a: a * 2, [np.zeros((0, 4), np.float16)]),
    # shape ops
    "transpose": (lambda a: ops.transpose(a, 0, -1), lambda a: np.swapaxes(a, 0, -1), [f(0, 3, 2)]),
    "permute_neg": (lambda a: ops.permute(a, [-1, 0, -2]), lambda a: a.transpose(2, 0, 1),
                    [f(2, 0, 3)]),
    "reshape_to_empty": (lambda a: ops.reshape(a, (3, 0, 5)), lambda a: a.reshape(3, 0, 5),
                         [f(0, 3)]),
    "flatten_empty": (ops.flatten, lambda a: a.reshape(-1), [f(2, 0, 3)]),
    "unsqueeze_squeeze": (lambda a: ops.squeeze(ops.unsqueeze(a, -1), -1),
                          lambda a: a, [f(0, 3)]),
    "broadcast_to_empty": (lambda a: ops.broadcast_to(a, (0, 3)),
                           lambda a: np.broadcast_to(a, (0, 3)), [f(1, 3)]),
    "broadcast_empty_to": (lambda a: ops.broadcast_to(a, (2, 0, 3)),
                           lambda a: np.broadcast_to(a, (2, 0, 3)), [f(0, 3)]),
    "empty_constant": (lambda a: a + ops.constant(np.zeros((0, 3), np.float32), DType.float32,
                                                  CPU), lambda a: a, [f(0, 3)]),
    # gather
    "gather_empty_indices": (lambda a, i: ops.gather(a, i, 0), lambda a, i: a[i],
                             [f(3, 2), idx(0)]),
    "gather_empty_indices_axis1": (lambda a, i: ops.gather(a, i, 1),
                                   lambda a, i: np.take(a, i, 1), [f(3, 2), idx(2, 0, hi=2)]),
    "gather_from_empty": (lambda a, i: ops.gather(a, i, 1), lambda a, i: np.take(a, i, 1),
                          [f(0, 2), idx(3, hi=2)]),
    # matmul: k = 0 sums nothing (zeros), m = 0 or n = 0 is empty
    "matmul_k0": (ops.matmul, np.matmul, [f(2, 0), f(0, 3)]),
    "matmul_k0_int": (ops.matmul, np.matmul, [idx(2, 0), idx(0, 3)]),
    "matmul_k0_batched": (ops.matmul, np.matmul, [f(2, 3, 0), f(2, 0, 4)]),
    "matmul_m0": (ops.matmul, np.matmul, [f(0, 4), f(4, 3)]),
    "matmul_n0": (ops.matmul, np.matmul, [f(2, 4), f(4, 0)]),
    "matmul_batch0": (ops.matmul, np.matmul, [f(0, 2, 4), f(0, 4, 3)]),
    "matvec_k0": (ops.matmul, np.matmul, [f(3, 0), f(0)]),
    # reductions and normalizations over a non-empty axis of an empty tensor
    "sum_other_axis": (lambda a: ops.sum(a, 0), lambda a: a.sum(0, keepdims=True), [f(3, 0)]),
    "argmax_other_axis": (lambda a: ops.argmax(a, 0), lambda a: np.zeros((1, 0), np.int64),
                          [f(3, 0)]),
    "softmax_empty_rows": (ops.softmax, lambda a: a, [f(0, 4)]),
    "layer_norm_empty_rows": (lambda a, g, b: ops.layer_norm(a, g, b, 1e-5),
                              lambda a, g, b: a, [f(0, 3), f(3), f(3)]),
}


@pytest.mark.parametrize("case", EMPTY.values(), ids=EMPTY.keys())
def test_empty_static(case) -> None:
    run_case(*case)


SYMBOLIC_ZERO = {
    "elementwise": (lambda a, b: a + b, lambda a, b: a + b, [f(0, 3), f(0, 3)],
                    [("n", 3), ("n", 3)]),
    "matmul_m": (ops.matmul, np.matmul, [f(0, 3), f(3, 2)], [("n", 3), None]),
    "matmul_k": (ops.matmul, np.matmul, [f(2, 0), f(0, 4)], [(2, "k"), ("k", 4)]),
    "matmul_batch": (ops.matmul, np.matmul, [f(0, 2, 3), f(0, 3, 4)],
                     [("b", 2, 3), ("b", 3, 4)]),
    "concat": (*concat(0), [f(0, 3), f(2, 3)], [("n", 3), ("m", 3)]),
    "concat_both": (*concat(0), [f(0, 3), f(0, 3)], [("n", 3), ("m", 3)]),
    "transpose": (lambda a: ops.transpose(a, 0, 1), lambda a: a.T, [f(0, 3)], [("n", 3)]),
    "reshape": (lambda a: ops.reshape(a, ("n", 3, 1)), lambda a: a.reshape(0, 3, 1),
                [f(0, 3)], [("n", 3)]),
    "gather_indices": (lambda a, i: ops.gather(a, i, 0), lambda a, i: a[i], [f(3, 2), idx(0)],
                       [None, ("n",)]),
    "gather_from": (lambda a, i: ops.gather(a, i, 1), lambda a, i: np.take(a, i, 1),
                    [f(0, 2), idx(3, hi=2)], [("n", 2), None]),
    "softmax_axis0": (lambda a: ops.softmax(a, 0), _t(lambda x: torch.softmax(x, 0)),
                      [f(3, 0)], [(3, "n")]),
    "sum_other_axis": (lambda a: ops.sum(a, -1), lambda a: a.sum(-1, keepdims=True),
                       [f(0, 3)], [("n", 3)]),
    "where": (ops.where, np.where, [np.zeros((0, 3), bool), f(0, 3), f(3)],
              [("n", 3), ("n", 3), None]),
    # a static 0 beside symbolic dims: aborted MLIR's tiling (threads) or failed to verify
    "static0_beside_symbolic": (ops.exp, np.exp, [f(3, 3, 0)], [("n", "n", 0)]),
    "matvec_static0_n": (ops.matmul, np.matmul, [f(3), f(3, 0)], [("n",), ("n", 0)]),
    "vecmat_k0_n": (ops.matmul, np.matmul, [f(0), f(0, 2)], [(0,), (0, "n")]),
    "matmul_rows_n_by_0": (ops.matmul, np.matmul, [f(1, 0, 0), f(0)], [("n", 0, 0), (0,)]),
    "slices": (lambda a: [a[::-1], a[:, 1:], a[::-2]],
               lambda a: [a[::-1], a[:, 1:], a[::-2]], [f(0, 3)], [("n", 3)]),
}


@pytest.mark.parametrize("case", SYMBOLIC_ZERO.values(), ids=SYMBOLIC_ZERO.keys())
def test_symbolic_dim_zero_at_run_time(case) -> None:
    run_case(*case)


SCALARS_AND_ONES = {
    # rank 0 through each family
    "r0_binary": (lambda a, b: a * b - a, lambda a, b: a * b - a, [f(), f()]),
    "r0_broadcast": (lambda a, b: a * b, lambda a, b: a * b, [f(), f(2, 3)]),
    "r0_unary": (lambda a: ops.sqrt(ops.abs(a)), lambda a: np.sqrt(np.abs(a)), [f()]),
    "r0_compare_logical": (lambda a, b: ops.logical_not(a > b), lambda a, b: ~(a > b),
                           [f(), f()]),
    "r0_int_floor_div": (lambda a, b: a // b, lambda a, b: a // b,
                         [np.array(-7, np.int64), np.array(2, np.int64)]),
    "r0_cast": (lambda a: ops.cast(a, DType.int64), lambda a: a.astype(np.int64), [f()]),
    "r0_reshape": (lambda a: ops.reshape(ops.reshape(a, (1, 1)), ()), lambda a: a, [f()]),
    "r0_unsqueeze_neg": (lambda a: ops.unsqueeze(a, -1), lambda a: a[None], [f()]),
    "r0_broadcast_to": (lambda a: ops.broadcast_to(a, (2, 3)),
                        lambda a: np.broadcast_to(a, (2, 3)), [f()]),
    "r0_index": (lambda a: [a[...], a[None]], lambda a: [a, a[None]], [f()]),
    "r0_where": (ops.where, np.where, [np.array(True), f(), f(3)]),
    "r0_gather_index": (lambda a, i: ops.gather(a, i, -1), lambda a, i: a[:, i],
                        [f(2, 4), np.array(-1, np.int64)]),
    "r0_vector_dot": (ops.matmul, np.matmul, [f(3), f(3)]),
    "r0_flatten": (ops.flatten, lambda a: a.reshape(1), [f()]),
    "r0_passthrough_twice": (lambda a: [a, a], lambda a: [a, a], [f()]),
    # size-1 dims and negative axes
    "s1_softmax_neg": (lambda a: ops.softmax(a, -2), _t(lambda x: torch.softmax(x, -2)),
                       [f(1, 3)]),
    "s1_logsoftmax": (ops.logsoftmax, _t(lambda x: torch.log_softmax(x, -1)), [f(3, 1)]),
    "s1_argmin": (lambda a: ops.argmin(a, -1), lambda a: a.argmin(-1)[..., None], [f(3, 1)]),
    "s1_layer_norm": (lambda a, g, b: ops.layer_norm(a, g, b, 1e-5),
                      _t(lambda x, g, b: torch.nn.functional.layer_norm(x, (1,), g, b, 1e-5)),
                      [f(3, 1), f(1), f(1)]),
    "s1_mean_neg": (lambda a: ops.mean(a, -3), lambda a: a.mean(-3, keepdims=True),
                    [f(1, 2, 3)]),
    "s1_transpose_neg": (lambda a: ops.transpose(a, -1, -3), lambda a: np.swapaxes(a, -1, -3),
                         [f(1, 2, 1)]),
    # a transpose with its operand's type: was folded away as the identity (x.T == x)
    "square_transpose": (lambda a: a.T, lambda a: a.T, [f(3, 3)]),
    "square_transpose_size1": (lambda a: ops.transpose(a, -2, -3), lambda a: np.swapaxes(a, 0, 1),
                               [f(2, 2, 1)]),
    "size1_only_transpose": (lambda a: ops.permute(a, [2, 1, 0]),
                             lambda a: a.transpose(2, 1, 0), [f(1, 3, 1)]),
    "s1_squeeze_neg": (lambda a: ops.squeeze(a, -2), lambda a: np.squeeze(a, -2), [f(3, 1, 2)]),
    "s1_concat_neg": (*concat(-2), [f(1, 1, 1), f(1, 2, 1)]),
    "s1_gather_neg": (lambda a, i: ops.gather(a, i, -2), lambda a, i: np.take(a, i, -2),
                      [f(2, 1, 3), idx(1, 2, hi=1)]),
    "s1_matmul_broadcast_batch": (ops.matmul, np.matmul, [f(1, 2, 3), f(4, 3, 2)]),
    "s1_flatten_neg": (lambda a: ops.flatten(a, -2, -1), lambda a: a.reshape(2, 1),
                       [f(2, 1, 1)]),
    "s1_slices": (lambda a: [a[1:], a[::-1], a[0], a[-1:]],
                  lambda a: [a[1:], a[::-1], a[0], a[-1:]], [f(1, 2)]),
}


@pytest.mark.parametrize("case", SCALARS_AND_ONES.values(), ids=SCALARS_AND_ONES.keys())
def test_scalars_size_one_and_negative_axes(case) -> None:
    run_case(*case)


def test_symbolic_square_transpose() -> None:
    run_case(lambda a: a.T, lambda a: a.T, [f(3, 3)], [("n", "n")])


@pytest.mark.parametrize(
    ("shape", "fn"),
    [
        ((2**40, 2**23), lambda x: x + 1),  # was "compiler crashed (signal 6)" in MLIR
        ((2**60, 0, 2**60), lambda x: x),  # numpy refuses it too, zero or not
        ((1,), lambda x: ops.broadcast_to(x, (2**40, 2**40))),  # results are checked as well
    ],
)
def test_static_shape_too_big_is_value_error(shape, fn) -> None:
    with pytest.raises(ValueError, match=r"TensorType: shape \[.*\] of float32 is too big: its "
                                         r"static dims hold more than 2\*\*63 - 1 bytes"):
        Graph("big", fn, input_types=[tt(DType.float32, *shape)])
    tt(DType.float32, 2**60)  # 2**62 bytes fit


def test_concat_of_scalars_is_value_error() -> None:
    with pytest.raises(ValueError, match=r"concat: rank-0 tensors cannot be concatenated \(as in "
                                         r"numpy\); make them rank 1 first"):
        Graph("c", lambda a: ops.concat([a, a]), input_types=[tt(DType.float32)])
