"""The generated call (max.runtime.fast_call) serves calls like the thread's last one and
hands every other call to the general path: results, errors and output memory are the same
either way. Expected values from numpy."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from max.driver import Tensor

import graphs

F = np.float32
ROWS = 100_000  # [ROWS, 3] f32 = 1.2 MB: a pooled output


def _fast(model):
    fast = model._exe.fast_call()
    assert fast is not None, "the first call should have made this thread's fast call"
    return fast


def test_static_graph_repeated_calls(load):
    model = load(graphs.ADD_STATIC)
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rng.standard_normal((2, 3), dtype=F), rng.standard_normal((2, 3), dtype=F)
        np.testing.assert_array_equal(model.execute(a, b)[0].to_numpy(), a + b)
    out = _fast(model)(a, b)
    assert isinstance(out[0], Tensor)
    np.testing.assert_array_equal(out[0].to_numpy(), a + b)


def test_new_shapes_take_the_general_path_and_become_fast(load):
    model = load(graphs.ADD)  # [batch, 3] + [batch, 3]
    rng = np.random.default_rng(1)
    for rows in (4, 4, 7, 7, 4, ROWS, ROWS, 1, 0, 0, 4):
        a, b = rng.standard_normal((rows, 3), dtype=F), rng.standard_normal((rows, 3), dtype=F)
        got = model.execute(a, b)[0].to_numpy()
        assert got.shape == (rows, 3)
        np.testing.assert_array_equal(got, a + b)
    fast = _fast(model)
    assert fast(np.ones((5, 3), F), np.ones((5, 3), F)) is None  # not the last shapes
    np.testing.assert_array_equal(fast(a, b)[0].to_numpy(), a + b)


def test_pooled_outputs_are_never_shared(load):
    model = load(graphs.ADD)
    rng = np.random.default_rng(2)
    kept = []
    for _ in range(4):
        a, b = rng.standard_normal((ROWS, 3), dtype=F), rng.standard_normal((ROWS, 3), dtype=F)
        kept.append((model.execute(a, b)[0], a + b))
    for out, want in kept:
        np.testing.assert_array_equal(out.to_numpy(), want)
    assert len({out._data_ptr() for out, _ in kept}) == len(kept)


def test_inputs_it_does_not_cover_still_work(load):
    model = load(graphs.ADD)
    a = np.arange(12, dtype=F).reshape(4, 3)
    model.execute(a, a)
    fast = _fast(model)
    wide = np.arange(24, dtype=F).reshape(4, 6)
    strided = wide[:, ::2]
    assert fast(strided, a) is None
    np.testing.assert_array_equal(model.execute(strided, a)[0].to_numpy(), strided + a)
    readonly = a.copy()
    readonly.setflags(write=False)
    np.testing.assert_array_equal(model.execute(readonly, a)[0].to_numpy(), a + a)
    np.testing.assert_array_equal(model.execute(Tensor.from_numpy(a), a)[0].to_numpy(), a + a)
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(model.execute(torch.from_numpy(a), a)[0].to_numpy(), a + a)


def test_errors_after_a_fast_call_are_the_general_ones(load):
    model = load(graphs.ADD)
    a = np.ones((4, 3), F)
    model.execute(a, a)
    with pytest.raises(TypeError, match=r"^input 1.*expected dtype float32, got float64$"):
        model.execute(a, np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"batch"):
        model.execute(a, np.ones((5, 3), F))
    with pytest.raises(ValueError, match=r"expects 2 inputs, got 1"):
        model.execute(a)
    np.testing.assert_array_equal(model.execute(a, a)[0].to_numpy(), a + a)


def test_runtime_checks_raise_through_the_fast_call(load):
    model = load(graphs.GATHER)
    x = np.arange(10, dtype=F).reshape(5, 2)
    np.testing.assert_array_equal(model.execute(x, np.array([4, 0]))[0].to_numpy(), x[[4, 0]])
    np.testing.assert_array_equal(model.execute(x, np.array([3, 1]))[0].to_numpy(), x[[3, 1]])
    with pytest.raises(IndexError, match="out of bounds|index"):
        _fast(model)(x, np.array([1, 9]))
    with pytest.raises(IndexError, match="out of bounds|index"):
        model.execute(x, np.array([9, 1]))
    np.testing.assert_array_equal(model.execute(x, np.array([2, 2]))[0].to_numpy(), x[[2, 2]])


def test_two_outputs(load):
    model = load(graphs.TWO_OUTPUTS)
    x = np.linspace(-1, 1, 12, dtype=F).reshape(3, 4)
    for _ in range(3):
        e, s = model.execute(x)
        np.testing.assert_allclose(e.to_numpy(), np.exp(x), rtol=1e-6)
        np.testing.assert_allclose(s.to_numpy(), x.sum(axis=1, keepdims=True), rtol=1e-6,
                                   atol=1e-6)


def test_threads_each_have_their_own_fast_call(load):
    model = load(graphs.ADD)
    errors: list[BaseException] = []

    def worker(rows: int) -> None:
        try:
            rng = np.random.default_rng(rows)
            for _ in range(200):
                a = rng.standard_normal((rows, 3), dtype=F)
                np.testing.assert_array_equal(model.execute(a, a)[0].to_numpy(), a + a)
            assert model._exe.fast_call() is not None
        except BaseException as e:  # noqa: BLE001 (reported by the main thread)
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(rows,)) for rows in (3, 8, 3, 50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
