"""ops.constant_external: named weights supplied by InferenceSession.load's
weights_registry, passed to the compiled code as arguments (in place), checked by name,
dtype and shape; one compiled artifact serves any values."""

from __future__ import annotations

import numpy as np
import pytest

from max.compiler.passes.registry import CompilationError
from max.driver import Tensor
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType, ops

CPU = DeviceRef.CPU()
F32 = DType.float32


def _graph() -> Graph:
    with Graph("linear", input_types=[TensorType(F32, ("b", 3), CPU)]) as g:
        (x,) = g.inputs
        w = ops.constant_external("layer.weight", TensorType(F32, (3, 2), CPU))
        bias = ops.constant_external("layer.bias", TensorType(F32, (2,), CPU))
        again = ops.constant_external("layer.weight", TensorType(F32, (3, 2), CPU))
        g.output(x @ w + bias, ops.sum(again, axis=0))
    return g


def test_weights_come_from_the_registry() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    session = InferenceSession()
    for _ in range(2):  # the same compiled code, other values
        w = rng.standard_normal((3, 2)).astype(np.float32)
        b = rng.standard_normal(2).astype(np.float32)
        model = session.load(_graph(), weights_registry={
            "layer.weight": Tensor.from_numpy(w), "layer.bias": b, "unused": np.zeros(1)})
        y, s = (o.to_numpy() for o in model.execute(x))
        np.testing.assert_allclose(y, x @ w + b, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(s, w.sum(axis=0, keepdims=True), rtol=1e-5, atol=1e-6)


def test_a_non_contiguous_weight_is_copied_once() -> None:
    w = np.arange(6, dtype=np.float32).reshape(2, 3).T  # (3, 2), not C-contiguous
    model = InferenceSession().load(_graph(), weights_registry={
        "layer.weight": w, "layer.bias": np.zeros(2, np.float32)})
    (y, _) = model.execute(np.eye(3, dtype=np.float32))
    np.testing.assert_array_equal(y.to_numpy(), w)


def test_registry_errors() -> None:
    session = InferenceSession()
    good = {"layer.weight": np.zeros((3, 2), np.float32), "layer.bias": np.zeros(2, np.float32)}
    with pytest.raises(ValueError, match=r"^model 'linear': weight 'layer.bias' is missing "
                                         r"from weights_registry$"):
        session.load(_graph(), weights_registry={"layer.weight": good["layer.weight"]})
    with pytest.raises(TypeError, match=r"^weight 'layer.bias': expected dtype float32, got "
                                        r"float64$"):
        session.load(_graph(), weights_registry={**good, "layer.bias": np.zeros(2)})
    with pytest.raises(ValueError, match=r"^weight 'layer.weight': expected shape \[3, 2\], "
                                         r"got \[2, 3\]$"):
        session.load(_graph(), weights_registry={**good,
                                                 "layer.weight": np.zeros((2, 3), np.float32)})


def test_one_name_two_types_fails_compilation() -> None:
    with Graph("clash", input_types=[]) as g:
        a = ops.constant_external("w", TensorType(F32, (2,), CPU))
        b = ops.constant_external("w", TensorType(F32, (3,), CPU))
        g.output(a, b)
    with pytest.raises(CompilationError, match=r"external constant 'w' is declared as .*2xf32|"
                                               r"external constant 'w' is declared as"):
        InferenceSession().load(g, weights_registry={"w": np.zeros(2, np.float32)})


def test_builder_errors() -> None:
    with Graph("bad", input_types=[]) as g:
        with pytest.raises(ValueError, match=r"weight 'w' has shape \[n\]: its dims must be "
                                             r"static"):
            ops.constant_external("w", TensorType(F32, ("n",), CPU))
        with pytest.raises(ValueError, match=r"the weight name must not be empty"):
            ops.constant_external("", TensorType(F32, (1,), CPU))
        with pytest.raises(TypeError, match=r"^constant_external: name must be a str, got int$"):
            ops.constant_external(3, TensorType(F32, (1,), CPU))  # type: ignore[arg-type]
        g.output()


def test_weight_is_added_lazily_and_loaded_by_name() -> None:
    from max.graph import Weight

    w = Weight("proj.weight", F32, (3, 2), CPU)
    assert w.shape == [3, 2] and w.dtype is F32 and w.device == CPU and w.name == "proj.weight"
    assert w.original_dtype_and_shape == (F32, [3, 2]) and w.sharding_strategy is None
    with pytest.raises(LookupError, match="no graph is being built"):
        _ = w + 1
    with Graph("proj", input_types=[TensorType(F32, (1, 3), CPU)]) as g:
        (x,) = g.inputs
        y = x @ w + ops.sum(w, axis=0)  # used twice: one weight
        assert g.add_weight(w) is g.add_weight(w)
        with pytest.raises(ValueError, match=r"^Graph 'proj': a weight named 'proj.weight' "
                                             r"already exists in the graph$"):
            g.add_weight(Weight("proj.weight", F32, (3, 2), CPU))
        g.output(y)
    assert str(g).count("mo.constant_external") == 1
    value = np.arange(6, dtype=np.float32).reshape(3, 2)
    model = InferenceSession().load(g, weights_registry={"proj.weight": value})
    (out,) = model.execute(np.ones((1, 3), np.float32))
    np.testing.assert_array_equal(out.to_numpy(), value.sum(0, keepdims=True) * 2)
