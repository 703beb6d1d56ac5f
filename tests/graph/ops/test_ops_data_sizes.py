"""Sizes that only the data determines: ``nonzero``, ``masked_scatter``, ``range`` with tensor
bounds and ``repeat_interleave`` with a tensor of counts, each naming its size with a new
symbol that the compiled code binds when it runs. Expected values from numpy and PyTorch."""

from __future__ import annotations

import gc

import ml_dtypes
import numpy as np
import pytest
import torch
from ops_helpers import shared_session

from max.dtype import DType
from max.graph import DeviceRef, Dim, Graph, TensorType, ops

CPU = DeviceRef.CPU()
RNG = np.random.default_rng(7)


def _run(graph: Graph, *inputs: np.ndarray, session=None) -> list[np.ndarray]:
    model = (session or shared_session()).load(graph)
    return [o.to_numpy() for o in model.execute(*inputs)]


def _nonzero_graph(dtype: DType, dims: tuple, name: str = "nz") -> Graph:
    with Graph(name, input_types=[TensorType(dtype, dims, CPU)]) as g:
        g.output(ops.nonzero(g.inputs[0], "nnz"))
    return g


# -- nonzero ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(0,), (7,), (3, 5), (2, 3, 4), (4, 0, 2)])
@pytest.mark.parametrize("dtype", [DType.float32, DType.int32, DType.bool, DType.uint8,
                                   DType.float64, DType.int64])
def test_nonzero_matches_numpy(dtype: DType, shape: tuple[int, ...]) -> None:
    dims = tuple(f"d{i}" for i in range(len(shape)))
    g = _nonzero_graph(dtype, dims)
    model = shared_session().load(g)
    for density in (0.0, 0.3, 1.0):
        x = (RNG.random(shape) < density) * RNG.integers(1, 5, shape)
        x = x.astype(dtype.to_numpy())
        (out,) = [o.to_numpy() for o in model.execute(x)]
        want = np.argwhere(x)
        assert out.dtype == np.int64 and out.shape == want.shape
        np.testing.assert_array_equal(out, want)


def test_nonzero_nan_and_negative_zero_follow_numpy() -> None:
    x = np.array([0.0, -0.0, np.nan, 1e-45, -np.inf, 0.0], np.float32)
    (out,) = _run(_nonzero_graph(DType.float32, ("n",)), x)
    np.testing.assert_array_equal(out, np.argwhere(x))  # [[2], [3], [4]]


@pytest.mark.parametrize("dtype, np_dtype", [(DType.float16, np.float16),
                                             (DType.bfloat16, ml_dtypes.bfloat16)])
def test_nonzero_16_bit_floats(dtype: DType, np_dtype: type) -> None:
    x = np.array([[0, 1.5, 0], [-0.0, 0, -2]], np.float32).astype(np_dtype)
    (out,) = _run(_nonzero_graph(dtype, ("a", "b")), x)
    np.testing.assert_array_equal(out, np.argwhere(x.astype(np.float32)))


def test_nonzero_of_a_scalar() -> None:
    g = _nonzero_graph(DType.int32, ())
    model = shared_session().load(g)
    assert model.execute(np.array(3, np.int32))[0].to_numpy().shape == (1, 0)
    assert model.execute(np.array(0, np.int32))[0].to_numpy().shape == (0, 0)


def test_nonzero_known_count_is_checked() -> None:
    with Graph("nz_static", input_types=[TensorType(DType.float32, ("n",), CPU)]) as g:
        g.output(ops.nonzero(g.inputs[0], 2))
    model = shared_session().load(g)
    x = np.array([0, 3, 0, 4], np.float32)
    np.testing.assert_array_equal(model.execute(x)[0].to_numpy(), [[1], [3]])
    with pytest.raises(ValueError, match="mo.nonzero: the number of non-zero elements is not "
                                         "the declared count 2"):
        model.execute(np.array([1, 3, 0, 4], np.float32))
    np.testing.assert_array_equal(model.execute(x)[0].to_numpy(), [[1], [3]])  # still usable


def test_nonzero_by_an_input_symbol_is_checked() -> None:
    with Graph("nz_bound", input_types=[TensorType(DType.float32, ("n",), CPU)]) as g:
        g.output(ops.nonzero(g.inputs[0], "n"))  # "n": every element must be non-zero
    model = shared_session().load(g)
    np.testing.assert_array_equal(model.execute(np.ones(3, np.float32))[0].to_numpy(),
                                  [[0], [1], [2]])
    with pytest.raises(ValueError, match="declared count n"):
        model.execute(np.array([1, 0, 1], np.float32))


def test_data_symbol_flows_into_later_ops_and_outputs_keep_their_order() -> None:
    """Outputs sized by the data (returned by the compiled code) between outputs the caller
    allocates, and the symbol used by reshape, range and shape_to_tensor."""
    with Graph("nz_flow", input_types=[TensorType(DType.float32, ("n", 4), CPU)]) as g:
        x = g.inputs[0]
        idx = ops.nonzero(x, "k")
        k = idx.shape[0]
        rows = ops.reshape(ops.slice_tensor(idx, [slice(None), slice(0, 1)]), [k])
        steps = ops.range(0, k, 1, dtype=DType.int64, device=CPU)
        g.output(x * 2, rows + steps, ops.shape_to_tensor([k, 2]), x + 1, idx)
    x = np.array([[0, 1, 0, 2], [0, 0, 0, 0], [3, 0, 0, 0]], np.float32)
    out = _run(g, x)
    want = np.argwhere(x)
    np.testing.assert_array_equal(out[0], x * 2)
    np.testing.assert_array_equal(out[1], want[:, 0] + np.arange(len(want)))
    np.testing.assert_array_equal(out[2], [3, 2])
    np.testing.assert_array_equal(out[3], x + 1)
    np.testing.assert_array_equal(out[4], want)


def test_returned_outputs_outlive_the_model_and_are_freed() -> None:
    g = _nonzero_graph(DType.float32, ("n",), name="nz_owner")
    from max.engine import InferenceSession

    model = InferenceSession().load(g)
    x = (RNG.random(100_000) > 0.5).astype(np.float32)
    outs = [model.execute(x)[0].to_numpy() for _ in range(3)]
    del model
    gc.collect()
    for out in outs:  # each array owns its memory: valid after the model is gone
        np.testing.assert_array_equal(out[:, 0], np.flatnonzero(x))
    assert outs[0].flags.writeable and outs[0].flags.c_contiguous


# -- range and repeat_interleave with sizes from tensors -------------------------------------


def _range_graph(dtype: DType) -> Graph:
    scalar = TensorType(dtype, (), CPU)
    with Graph(f"range_{dtype.name}", input_types=[scalar, scalar, scalar]) as g:
        g.output(ops.range(*g.inputs, out_dim="length", dtype=dtype, device=CPU))
    return g


@pytest.mark.parametrize("dtype", [DType.int64, DType.int32, DType.float32, DType.float64])
def test_range_of_tensors_has_the_length_the_values_give(dtype: DType) -> None:
    model = shared_session().load(_range_graph(dtype))
    np_dtype = dtype.to_numpy()
    for start, stop, step in [(0, 10, 1), (3, -4, -2), (5, 5, 1), (2, 1, 1), (-1, 7, 3)]:
        args = [np.array(v, np_dtype) for v in (start, stop, step)]
        (out,) = [o.to_numpy() for o in model.execute(*args)]
        np.testing.assert_array_equal(out, np.arange(start, stop, step, dtype=np_dtype))
    if dtype.is_float():
        args = [np.array(v, np_dtype) for v in (0.0, 1.0, 0.25)]
        np.testing.assert_allclose(model.execute(*args)[0].to_numpy(),
                                   torch.arange(0.0, 1.0, 0.25).numpy())


def test_range_of_tensors_errors_at_run_time() -> None:
    model = shared_session().load(_range_graph(DType.int64))
    with pytest.raises(ValueError, match="mo.range: step is 0"):
        model.execute(*[np.array(v, np.int64) for v in (0, 4, 0)])
    with pytest.raises(ValueError, match=r"exceeds 2147483648 \(2\*\*31\) elements"):
        model.execute(*[np.array(v, np.int64) for v in (0, 2**40, 1)])
    fmodel = shared_session().load(_range_graph(DType.float32))
    with pytest.raises(ValueError, match="is not finite"):
        fmodel.execute(*[np.array(v, np.float32) for v in (0, np.inf, 1)])
    np.testing.assert_array_equal(  # still usable
        model.execute(*[np.array(v, np.int64) for v in (0, 3, 1)])[0].to_numpy(), [0, 1, 2])


@pytest.mark.parametrize("axis, shared", [(0, False), (1, False), (-1, False), (0, True)])
def test_repeat_interleave_by_counts_has_the_total_they_give(axis: int, shared: bool) -> None:
    dims = ("a", "b")
    r_dims = (1,) if shared else (dims[axis],)
    with Graph(f"ri_{axis + 1}_{int(shared)}", input_types=[
            TensorType(DType.float32, dims, CPU), TensorType(DType.int64, r_dims, CPU)]) as g:
        x, r = g.inputs
        y = ops.repeat_interleave(x, r, axis=axis, out_dim="total")
        g.output(y, ops.shape_to_tensor(y.shape))
    model = shared_session().load(g)
    x = RNG.random((3, 4)).astype(np.float32)
    n = 1 if shared else x.shape[axis]
    for counts in (RNG.integers(0, 4, n), np.zeros(n, np.int64), np.array([5] * n)):
        out, shape = (o.to_numpy() for o in model.execute(x, counts.astype(np.int64)))
        want = torch.repeat_interleave(torch.from_numpy(x), torch.from_numpy(counts),
                                       dim=axis).numpy()
        np.testing.assert_array_equal(out, want)
        np.testing.assert_array_equal(shape, want.shape)
    with pytest.raises(ValueError, match="repeats must be non-negative"):
        model.execute(x, np.array([-1, 1, 2, 0][:n], np.int64))


# -- masked_scatter --------------------------------------------------------------------------


def _masked_scatter_graph(x_dims: tuple, mask_dims: tuple, dtype: DType = DType.float32) -> Graph:
    types = [TensorType(dtype, x_dims, CPU), TensorType(DType.bool, mask_dims, CPU),
             TensorType(dtype, ("u",), CPU)]
    with Graph("masked_scatter", input_types=types) as g:
        g.output(ops.masked_scatter(*g.inputs, out_dim="count"))
    return g


@pytest.mark.parametrize("x_shape, mask_shape", [((3, 4), (3, 4)), ((3, 4), (4,)),
                                                 ((2, 3, 2), (3, 1)), ((5,), ())])
def test_masked_scatter_matches_torch(x_shape: tuple, mask_shape: tuple) -> None:
    x_dims = tuple(f"x{i}" for i in range(len(x_shape)))
    mask_dims = tuple(f"x{i + len(x_shape) - len(mask_shape)}" if s == x_shape[
        i + len(x_shape) - len(mask_shape)] else s for i, s in enumerate(mask_shape))
    model = shared_session().load(_masked_scatter_graph(x_dims, mask_dims))
    x = RNG.random(x_shape).astype(np.float32)
    for _ in range(3):
        mask = RNG.random(mask_shape) < 0.5
        updates = RNG.random(x.size + 3).astype(np.float32)
        (out,) = [o.to_numpy() for o in model.execute(x, np.asarray(mask), updates)]
        want = torch.from_numpy(x).masked_scatter(torch.from_numpy(np.asarray(mask)),
                                                  torch.from_numpy(updates)).numpy()
        np.testing.assert_array_equal(out, want)


def test_masked_scatter_with_too_few_updates_is_an_index_error() -> None:
    model = shared_session().load(_masked_scatter_graph(("n",), ("n",)))
    x = np.zeros(4, np.float32)
    mask = np.array([True, True, False, True])
    with pytest.raises(IndexError, match="index out of range"):
        model.execute(x, mask, np.ones(2, np.float32))
    np.testing.assert_array_equal(model.execute(x, mask, np.arange(3, dtype=np.float32))[0]
                                  .to_numpy(), [0, 1, 0, 2])


def test_masked_scatter_build_errors() -> None:
    with Graph("ms_bad", input_types=[TensorType(DType.float32, (3,), CPU),
                                      TensorType(DType.int32, (3,), CPU),
                                      TensorType(DType.float64, (3,), CPU),
                                      TensorType(DType.bool, (4,), CPU)]):
        x, m, u, b4 = Graph.current.inputs
        with pytest.raises(ValueError, match="masked_scatter: mask must have dtype bool, got "
                                             "int32"):
            ops.masked_scatter(x, m, x, "c")
        with pytest.raises(ValueError, match="updates has dtype float64, input float32"):
            ops.masked_scatter(x, b4, u, "c")
        with pytest.raises(ValueError, match=r"mask \[4\] does not broadcast to input \[3\]"):
            ops.masked_scatter(x, b4, x, "c")


# -- where a new symbol is not allowed -------------------------------------------------------


def test_a_new_symbol_inside_a_control_flow_body_is_refused() -> None:
    with Graph("nz_cond", input_types=[TensorType(DType.float32, ("n",), CPU),
                                       TensorType(DType.bool, (), CPU)]) as g:
        x, pred = g.inputs

        def then_fn():
            return ops.nonzero(x, "k")

        with pytest.raises(ValueError, match="nonzero: out_dim is the new symbol 'k', whose "
                                             "value only the data determines"):
            ops.cond(pred, [TensorType(DType.int64, ("k", 1), CPU)], then_fn, then_fn)


def test_an_expression_of_a_new_symbol_is_refused() -> None:
    with Graph("nz_expr", input_types=[TensorType(DType.float32, ("n",), CPU)]):
        x = Graph.current.inputs[0]
        with pytest.raises(ValueError, match="nonzero: out_dim uses the symbol 'k'"):
            ops.nonzero(x, Dim("k") + 1)


def test_an_unused_nonzero_still_binds_its_symbol() -> None:
    """Dead-code removal keeps an op that binds a symbol later types use."""
    with Graph("nz_dce", input_types=[TensorType(DType.float32, ("n",), CPU)]) as g:
        k = ops.nonzero(g.inputs[0], "k").shape[0]
        g.output(ops.range(0, k, 1, dtype=DType.int32, device=CPU))
    (out,) = _run(g, np.array([1, 0, 2, 3], np.float32))
    np.testing.assert_array_equal(out, [0, 1, 2])


def test_returned_outputs_through_the_jit_fallback() -> None:
    """The JIT (no system linker) calls the same C interface: the returned struct first."""
    from max.engine import InferenceSession

    session = InferenceSession()
    session._options = {"force_jit": True}
    with Graph("nz_jit", input_types=[TensorType(DType.float32, ("n",), CPU)]) as g:
        x = g.inputs[0]
        idx = ops.nonzero(x, "k")
        g.output(x + 1, idx, ops.range(0, idx.shape[0], 1, dtype=DType.int32, device=CPU))
    x = np.array([0, 1, 0, 3, 5], np.float32)
    out = _run(g, x, session=session)
    np.testing.assert_array_equal(out[0], x + 1)
    np.testing.assert_array_equal(out[1], np.argwhere(x))
    np.testing.assert_array_equal(out[2], np.arange(3, dtype=np.int32))
