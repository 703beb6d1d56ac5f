"""Buffers end to end: a BufferType input is the caller's array, updated in place by
``Model.execute``; stores and loads take effect in program order (checked against numpy
doing the same assignments), and bad buffer arguments fail with exact messages."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from max import engine
from max.driver import Tensor
from max.dtype import DType
from max.graph import BufferType, BufferValue, DeviceRef, Graph, TensorType, ops

CPU = DeviceRef.CPU()
F32 = DType.float32


def _model(g: Graph) -> engine.Model:
    return engine.InferenceSession().load(g)


def test_several_stores_then_a_load_and_an_earlier_load_keeps_its_value() -> None:
    with Graph("stores", input_types=[BufferType(F32, (3, 4), CPU),
                                      TensorType(F32, (3, 4), CPU)]) as g:
        buf, x = g.inputs
        before = ops.buffer_load(buf)
        ops.buffer_store(buf, x * 2)
        ops.buffer_store_slice(buf, x[0] + 100, [0])
        ops.buffer_store_slice(buf, ops.constant(-1.0, F32, CPU), [slice(1, 3), slice(0, 4, 3)])
        after = ops.buffer_load(buf)
        g.output(before, after + 1)
    rng = np.random.default_rng(0)
    b = rng.standard_normal((3, 4)).astype(np.float32)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    want = x * 2
    want[0] = x[0] + 100
    want[1:3, 0:4:3] = -1
    original = b.copy()
    before, after = _model(g).execute(b, x)
    np.testing.assert_array_equal(before.to_numpy(), original)
    np.testing.assert_allclose(b, want, rtol=1e-6)  # the caller's array, in place
    np.testing.assert_allclose(after.to_numpy(), want + 1, rtol=1e-6)


def test_a_graph_returning_a_value_and_mutating_a_driver_tensor() -> None:
    with Graph("acc", input_types=[BufferType(DType.int64, ("n",), CPU),
                                   TensorType(DType.int64, ("n",), CPU)]) as g:
        acc, x = g.inputs
        total = ops.buffer_load(acc) + x
        ops.buffer_store(acc, total)
        g.output(ops.sum(total, axis=0))
    model = _model(g)
    acc = Tensor.from_numpy(np.zeros(5, np.int64))
    for step in range(1, 4):
        (s,) = model.execute(acc, np.arange(5, dtype=np.int64))
        np.testing.assert_array_equal(acc.to_numpy(), np.arange(5) * step)
        assert s.to_numpy().tolist() == [10 * step]


def test_setitem_and_getitem_on_a_buffer_value() -> None:
    with Graph("setitem", input_types=[BufferType(F32, (4, 6), CPU),
                                       TensorType(F32, (2, 6), CPU)]) as g:
        buf, x = g.inputs
        assert isinstance(buf, BufferValue)
        buf[1:3] = x
        buf[..., 0] = 7.0
        g.output(buf[2])
    b = np.zeros((4, 6), np.float32)
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    (row,) = _model(g).execute(b, x)
    want = np.zeros((4, 6), np.float32)
    want[1:3] = x
    want[..., 0] = 7
    np.testing.assert_array_equal(b, want)
    np.testing.assert_array_equal(row.to_numpy(), want[2])


def test_buffer_create_is_scratch_memory() -> None:
    with Graph("scratch", input_types=[TensorType(F32, ("n", 3), CPU)]) as g:
        (x,) = g.inputs
        tmp = ops.buffer_create(BufferType(F32, ["n", 3], CPU))
        ops.buffer_store(tmp, x)
        ops.buffer_store_slice(tmp, ops.buffer_load(tmp)[:, 0] * 10, [slice(None), 2])
        g.output(ops.buffer_load(tmp))
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    want = x.copy()
    want[:, 2] = x[:, 0] * 10
    (out,) = _model(g).execute(x)
    np.testing.assert_array_equal(out.to_numpy(), want)


def _store_model() -> engine.Model:
    with Graph("store", input_types=[BufferType(F32, (2, 3), CPU),
                                     TensorType(F32, (2, 3), CPU)]) as g:
        buf, x = g.inputs
        ops.buffer_store(buf, x)
        g.output()
    return _model(g)


def test_execute_refuses_bad_buffers() -> None:
    model = _store_model()
    x = np.ones((2, 3), np.float32)
    with pytest.raises(TypeError, match=r"^input 0: expected dtype float32, got float64$"):
        model.execute(np.zeros((2, 3), np.float64), x)
    with pytest.raises(ValueError, match=r"^input 0: dim 1 expected 3, got 4 "):
        model.execute(np.zeros((2, 4), np.float32), x)
    with pytest.raises(ValueError, match=r"^input 0 \(input0, a buffer\): the array is not "
                                         r"contiguous; pass a C-contiguous array"):
        model.execute(np.zeros((3, 2), np.float32).T, x)
    read_only = np.zeros((2, 3), np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match=r"^input 0 \(input0, a buffer\): the array is "
                                         r"read-only; pass a writeable array$"):
        model.execute(read_only, x)
    shared = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"^input 0 \(input0, a buffer\) shares memory with "
                                         r"input 1; pass a separate array$"):
        model.execute(shared, shared)
    assert model.execute(np.zeros((2, 3), np.float32), x) == []  # still usable


def test_a_tensor_where_a_buffer_is_expected() -> None:
    with Graph("t", input_types=[TensorType(F32, (2,), CPU)]) as g:
        (x,) = g.inputs
        with pytest.raises(TypeError, match=r"^buffer_store: expected a buffer, got a value of "
                                            r"type "):
            ops.buffer_store(x, x)
        with pytest.raises(TypeError, match=r"^buffer_load: expected a BufferValue, got ndarray$"):
            ops.buffer_load(np.zeros(2, np.float32))


def test_builder_errors() -> None:
    with Graph("e", input_types=[BufferType(F32, (4, "n"), CPU),
                                 TensorType(DType.int32, (4, "n"), CPU)]) as g:
        buf, i = g.inputs
        with pytest.raises(ValueError, match=r"^buffer_store: source has dtype int32, the "
                                             r"buffer float32 \(cast it first\)$"):
            ops.buffer_store(buf, i)
        with pytest.raises(ValueError, match=r"^buffer_store_slice: axis 1 has symbolic size n: "
                                             r"it can only be stored whole"):
            ops.buffer_store_slice(buf, 1.0, [0, slice(0, 2)])
        with pytest.raises(ValueError, match=r"^buffer_store_slice: index 4 is out of bounds for "
                                             r"axis 0 with size 4$"):
            ops.buffer_store_slice(buf, 1.0, [4])
        with pytest.raises(ValueError, match=r"negative steps are not supported"):
            ops.buffer_store_slice(buf, 1.0, [slice(None, None, -1)])
        with pytest.raises(TypeError, match=r"^buffer_create: type must be a BufferType"):
            ops.buffer_create(TensorType(F32, (2,), CPU))  # type: ignore[arg-type]


def test_buffer_graph_saves_and_loads(tmp_path) -> None:
    with Graph("saved", input_types=[BufferType(F32, (3,), CPU)]) as g:
        (buf,) = g.inputs
        ops.buffer_store(buf, ops.buffer_load(buf) * 3)
        g.output()
    path = tmp_path / "g.mlirbc"
    g.save(path)
    loaded = Graph("saved", path=path)
    assert isinstance(loaded.inputs[0], BufferValue)
    b = np.array([1, 2, 3], np.float32)
    _model(loaded).execute(b)
    np.testing.assert_array_equal(b, [3, 6, 9])


@st.composite
def _stores(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[Any, ...]]:
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    index = []
    for n in shape:
        if draw(st.booleans()):
            index.append(draw(st.integers(-n, n - 1)))
        else:
            index.append(slice(draw(st.none() | st.integers(-n - 1, n + 1)),
                               draw(st.none() | st.integers(-n - 1, n + 1)),
                               draw(st.none() | st.integers(1, 3))))
    return shape, tuple(index)


@settings(max_examples=12, deadline=None)
@given(_stores())
def test_store_slice_matches_numpy_assignment(case: tuple[tuple[int, ...], tuple[Any, ...]]
                                              ) -> None:
    shape, index = case
    want = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    source = -1 - np.arange(want[index].size, dtype=np.float32).reshape(want[index].shape)
    with Graph("fuzz", input_types=[BufferType(F32, shape, CPU),
                                    TensorType(F32, source.shape, CPU)]) as g:
        buf, x = g.inputs
        ops.buffer_store_slice(buf, x, list(index))
        g.output()
    got = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    want[index] = source
    _model(g).execute(got, source)
    np.testing.assert_array_equal(got, want)


# ---- buffers in control-flow bodies ----------------------------------------------------------


def test_cond_stores_to_a_buffer_in_one_branch_and_the_graph_reads_it_after() -> None:
    # MAX's cond example: one branch increments the buffer, the other decrements a slice.
    with Graph("bcond", input_types=[BufferType(F32, (2, 3), CPU), TensorType(F32, (3,), CPU),
                                     TensorType(DType.bool, (), CPU)]) as g:
        buf, x, p = g.inputs
        before = ops.buffer_load(buf)

        def then_fn() -> None:
            ops.buffer_store(buf, ops.buffer_load(buf) + x)

        def else_fn() -> None:
            ops.buffer_store_slice(buf, buf[1] - 1.0, [1])

        ops.cond(p, None, then_fn, else_fn)
        g.output(before * 1.0, ops.buffer_load(buf) * 2.0)
    model = _model(g)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(3).astype(np.float32)
    for taken in (True, False, True):
        b = rng.standard_normal((2, 3)).astype(np.float32)
        want = b.copy()
        if taken:
            want += x
        else:
            want[1] -= 1
        original = b.copy()
        got_before, got_after = model.execute(b, x, np.array(taken))
        np.testing.assert_array_equal(got_before.to_numpy(), original)
        np.testing.assert_allclose(b, want, rtol=1e-6)  # the caller's array, in place
        np.testing.assert_allclose(got_after.to_numpy(), want * 2, rtol=1e-6)


def test_while_loop_accumulates_into_a_buffer_each_iteration() -> None:
    # Each iteration reads what the previous one stored: acc = acc * 2 + x[i]; the rows are
    # selected by the loop counter, the buffer's length is symbolic.
    with Graph("bwhile", input_types=[BufferType(DType.int64, ("n",), CPU),
                                      TensorType(DType.int64, ("k", "n"), CPU)]) as g:
        acc, x = g.inputs
        k = ops.shape_to_tensor([x.shape[0]]).reshape([])

        def body(i):
            row = ops.gather(x, i.reshape([1]), axis=0).reshape([x.shape[1]])
            ops.buffer_store(acc, ops.buffer_load(acc) * 2 + row)
            return i + 1

        (i,) = ops.while_loop(ops.constant(0, DType.int64, CPU), lambda i: i < k, body)
        g.output(i, ops.sum(ops.buffer_load(acc), axis=0))
    model = _model(g)
    for rows, n in ((3, 4), (0, 2), (5, 1)):
        x = np.arange(rows * n, dtype=np.int64).reshape(rows, n) - 3
        acc = Tensor.from_numpy(np.ones(n, np.int64))
        want = np.ones(n, np.int64)
        for r in x:
            want = want * 2 + r
        i, total = model.execute(acc, x)
        assert int(i.to_numpy()) == rows
        np.testing.assert_array_equal(acc.to_numpy(), want)
        assert total.to_numpy().tolist() == [want.sum()]


def test_call_stores_into_the_callers_buffer_in_program_order() -> None:
    with Graph("bcall", input_types=[BufferType(F32, (4,), CPU), TensorType(F32, (4,), CPU)]) as g:
        buf, x = g.inputs
        sub = g.add_subgraph("scale", lambda b, y: ops.buffer_store(b, ops.buffer_load(b) * y),
                             input_types=[buf.type, x.type])
        ops.call(sub, buf, x)
        mid = ops.buffer_load(buf)
        ops.call(sub, buf, x + 1.0)
        g.output(mid)
    b = np.array([1, 2, 3, 4], np.float32)
    x = np.array([2, -1, 0.5, 3], np.float32)
    (mid,) = _model(g).execute(b, x)
    np.testing.assert_allclose(mid.to_numpy(), np.array([1, 2, 3, 4]) * x, rtol=1e-6)
    np.testing.assert_allclose(b, np.array([1, 2, 3, 4]) * x * (x + 1), rtol=1e-6)


def test_call_refuses_a_tensor_where_the_subgraph_takes_a_buffer() -> None:
    with Graph("bcall_bad", input_types=[BufferType(F32, (4,), CPU),
                                         TensorType(F32, (4,), CPU)]) as g:
        buf, x = g.inputs
        sub = g.add_subgraph("st", lambda b: ops.buffer_store(b, ops.buffer_load(b) * 2.0),
                             input_types=[buf.type])
        with pytest.raises(ValueError, match=r"call: subgraph 'st' takes \[buffer float32\[4\]\], "
                                             r"got \[float32\[4\]\]"):
            ops.call(sub, x)


def test_while_predicate_reads_the_buffer_its_body_writes() -> None:
    with Graph("bpred", input_types=[BufferType(DType.int64, (1,), CPU),
                                     TensorType(DType.int64, (), CPU)]) as g:
        buf, limit = g.inputs

        def body(i):
            ops.buffer_store(buf, ops.buffer_load(buf) * 3)
            return i + 1

        (i,) = ops.while_loop(ops.constant(0, DType.int64, CPU),
                              lambda i: ops.buffer_load(buf).reshape([]) < limit, body)
        g.output(i)
    model = _model(g)
    for start, limit in ((1, 100), (7, 5), (2, 2000)):
        b = np.array([start], np.int64)
        steps, v = 0, start
        while v < limit:
            v, steps = v * 3, steps + 1
        (i,) = model.execute(b, np.array(limit, np.int64))
        assert int(i.to_numpy()) == steps and b.tolist() == [v]


def test_while_loop_refuses_a_buffer_as_a_carried_value() -> None:
    with Graph("bcarry", input_types=[BufferType(F32, (2,), CPU)]) as g:
        (buf,) = g.inputs
        with pytest.raises(NotImplementedError, match=r"while_loop: BufferValue loop arguments "
                                                      r"are not supported \(the predicate and "
                                                      r"body may use the buffer directly\)"):
            ops.while_loop([buf], lambda b: ops.constant(False, DType.bool, CPU), lambda b: b)


def test_buffer_and_checks_through_cond_in_while_in_cond() -> None:
    # The buffer and x are captured through three levels; the gather's check leaves them all.
    with Graph("bnest", input_types=[BufferType(F32, ("n",), CPU), TensorType(F32, ("n",), CPU),
                                     TensorType(DType.bool, (), CPU),
                                     TensorType(DType.int64, (1,), CPU)]) as g:
        buf, x, p, j = g.inputs

        def outer() -> None:
            def body(i):
                def add() -> None:
                    ops.buffer_store(buf, ops.buffer_load(buf) + ops.gather(x, j, axis=0))

                def sub() -> None:
                    ops.buffer_store(buf, ops.buffer_load(buf) - 1.0)

                ops.cond(i % 2 == 0, None, add, sub)
                return i + 1

            ops.while_loop(ops.constant(0, DType.int64, CPU), lambda i: i < 5, body)

        ops.cond(p, None, outer, lambda: None)
        g.output(ops.buffer_load(buf))
    model = _model(g)
    x = np.array([1, 10, 100], np.float32)
    for p, j in ((True, 1), (True, -1), (False, 3)):
        b = np.arange(3, dtype=np.float32)
        want = b.copy()
        if p:
            for i in range(5):
                want = want + x[j] if i % 2 == 0 else want - 1
        (got,) = model.execute(b, x, np.array(p), np.array([j], np.int64))
        np.testing.assert_allclose(b, want, rtol=1e-6)
        np.testing.assert_allclose(got.to_numpy(), want, rtol=1e-6)
    with pytest.raises(IndexError, match=r"mo\.gather: index out of range for axis 0 of size n"):
        model.execute(np.zeros(3, np.float32), x, np.array(True), np.array([3], np.int64))
