"""Model.execute: inputs of every kind, symbolic dims, metadata, numbers vs numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from max.driver import Tensor
from max.dtype import DType
from max.engine import Model, TensorSpec

import graphs


def _check(outputs, *expected):
    assert isinstance(outputs, list) and len(outputs) == len(expected)
    for out, want in zip(outputs, expected):
        assert isinstance(out, Tensor)
        got = out.to_numpy()
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-6)


def _ab(n=4):
    rng = np.random.default_rng(n)
    return rng.random((n, 3), np.float32), rng.random((n, 3), np.float32)


def test_numpy(load):
    a, b = _ab()
    _check(load(graphs.ADD).execute(a, b), a + b)


def test_call_is_execute(load):
    a, b = _ab()
    _check(load(graphs.ADD)(a, b), a + b)
    _check(load(graphs.ADD)(a, input1=b), a + b)


def test_driver_tensors(load):
    a, b = _ab()
    _check(load(graphs.ADD).execute(Tensor.from_numpy(a), Tensor.from_numpy(b)), a + b)


def test_torch(load):
    a, b = torch.rand(5, 3), torch.rand(5, 3)
    _check(load(graphs.ADD).execute(a, b), (a + b).numpy())


def test_dlpack_object(load):
    class Producer:  # any object speaking DLPack, not numpy/torch/Tensor
        def __init__(self, array):
            self.array = array

        def __dlpack__(self, **kwargs):
            return self.array.__dlpack__(**kwargs)

        def __dlpack_device__(self):
            return self.array.__dlpack_device__()

    a, b = _ab()
    _check(load(graphs.ADD).execute(Producer(a), b), a + b)


def test_python_and_numpy_scalars(load):
    model = load(graphs.MUL_SCALAR)
    _check(model.execute(2.5, 4), np.array(10.0, np.float32))
    _check(model.execute(np.float32(1.5), np.array(2, np.float32)), np.array(3.0, np.float32))
    _check(model.execute(True, 3.0), np.array(3.0, np.float32))


@pytest.mark.parametrize("n", [1, 7, 64])
def test_symbolic_dims_at_several_sizes(load, n):
    a, b = _ab(n)
    _check(load(graphs.ADD).execute(a, b), a + b)


def test_zero_size(load):
    a, b = _ab(0)
    _check(load(graphs.ADD).execute(a, b), a + b)


def test_static_shape(load):
    a, b = _ab(2)
    _check(load(graphs.ADD_STATIC).execute(a, b), a + b)


def test_int64(load):
    a = np.arange(10, dtype=np.int64)
    _check(load(graphs.ADD_I64).execute(a, a * 3), a * 4)


def test_non_contiguous_inputs_are_copied(load):
    a = np.random.rand(4, 6).astype(np.float32)[:, ::2]
    b = np.asfortranarray(np.random.rand(4, 3).astype(np.float32))
    assert not a.flags.c_contiguous and not b.flags.c_contiguous
    _check(load(graphs.ADD).execute(a, b), a + b)
    t = torch.rand(3, 4).t()  # a strided torch view through DLPack
    _check(load(graphs.ADD).execute(t, t), (t + t).numpy())


def test_read_only_input(load):
    a, b = _ab()
    a.setflags(write=False)
    _check(load(graphs.ADD).execute(a, b), a + b)


def test_outputs_are_fresh(load):
    a, b = _ab()
    model = load(graphs.ADD)
    (x,) = model.execute(a, b)
    (y,) = model.execute(a, b)
    assert not np.shares_memory(x.to_numpy(), y.to_numpy())
    assert not np.shares_memory(x.to_numpy(), a)


def test_metadata(load):
    model = load(graphs.ADD)
    assert isinstance(model, Model)
    assert model.input_metadata == [TensorSpec([None, 3], DType.float32, "input0"),
                                    TensorSpec([None, 3], DType.float32, "input1")]
    (out,) = model.output_metadata
    assert (out.shape, out.dtype, out.name) == ([None, 3], DType.float32, "output0")
    assert out.dims == ["batch", 3]
    assert load(graphs.ADD_STATIC).input_metadata[0].shape == [2, 3]
    assert load(graphs.MUL_SCALAR).output_metadata[0].shape == []
    assert load(graphs.ADD_I64).input_metadata[0].dtype == DType.int64


def test_load_module_and_graph_like(module_cache, session):
    from max.dialects.mo import make_context
    from mlir import ir

    module = ir.Module.parse(graphs.ADD, make_context())
    a, b = _ab()
    _check(session.load(module).execute(a, b), a + b)

    class GraphLike:
        name = "add"
        _module = module

    _check(session.load(GraphLike()).execute(a, b), a + b)


def test_load_builder_graph(module_cache, session):
    from max import graph as mg

    g = mg.Graph("adder", lambda x, y: mg.ops.add(x, y), input_types=[
        mg.TensorType(DType.float32, ("batch", 3), mg.DeviceRef.CPU())] * 2)
    a, b = _ab()
    _check(session.load(g).execute(a, b), a + b)


def test_two_outputs_and_checks(load):
    model = load(graphs.TWO_OUTPUTS)
    x = np.random.rand(3, 4).astype(np.float32)
    _check(model.execute(x), np.exp(x), x.sum(axis=1, keepdims=True))


def test_named_inputs_and_outputs(load):
    model = load(graphs.NAMED)
    assert [s.name for s in model.input_metadata] == ["x", "y"]
    assert [s.name for s in model.output_metadata] == ["z"]
    x, y = np.arange(4, dtype=np.float32), np.ones(4, np.float32)
    _check(model(y=y, x=x), x - y)
    _check(model(x, y=y), x - y)
    with pytest.raises(TypeError, match=r"^input 1 \('y'\): expected dtype float32, got int64$"):
        model(x, np.ones(4, np.int64))


@pytest.mark.parametrize("n, m", [(1, 2), (4, 0)])
def test_algebraic_output_dim(load, n, m):
    model = load(graphs.CONCAT)
    assert model.output_metadata[0].dims == ["n + m", 3]
    a = np.random.rand(n, 3).astype(np.float32)
    b = np.random.rand(m, 3).astype(np.float32)
    _check(model.execute(a, b), np.concatenate([a, b]))
