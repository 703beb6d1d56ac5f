"""A 1x1 convolution (stride 1, no padding, one group) is lowered as a matmul of the pixels by
the filter, so the matmul schedule's fused fill, bias and activation apply; numbers against
numpy for static and symbolic sizes, epilogues, f16 and thread counts; other 1x1 convs (a
stride, padding, groups) keep the convolution."""

from __future__ import annotations

import numpy as np
import pytest
from mlir import ir
from mo_helpers import check, make_context

from max.compiler.lowering import lower_to_linalg
from max.driver import CPU as CPUDevice
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType, ops

CPU = DeviceRef.CPU()

pytestmark = pytest.mark.usefixtures("schedule_debug")


def _linalg(g: Graph) -> str:
    with make_context():
        m = ir.Module.parse(str(g._module))
        lower_to_linalg(m)
        return str(m)


def test_a_pointwise_conv_is_a_matmul() -> None:
    g = Graph("g", lambda x, w: ops.conv2d(x, w), input_types=[
        TensorType(DType.float32, (1, 14, 14, 64), CPU),
        TensorType(DType.float32, (1, 1, 64, 128), CPU)])
    text = _linalg(g)
    assert "linalg.matmul" in text and "conv_2d" not in text, text


@pytest.mark.parametrize("kwargs", [{"stride": (2, 2)}, {"padding": (1, 1, 1, 1)},
                                    {"groups": 2}])
def test_other_1x1_convs_stay_convs(kwargs) -> None:
    g = Graph("g", lambda x, w: ops.conv2d(x, w, **kwargs), input_types=[
        TensorType(DType.float32, (1, 14, 14, 64), CPU),
        TensorType(DType.float32, (1, 1, 64 // kwargs.get("groups", 1), 128), CPU)])
    assert "linalg.matmul" not in _linalg(g)


def _ref(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    n, h, wd, c = x.shape
    return (x.reshape(-1, c).astype(np.float64) @ w.reshape(c, -1)).reshape(n, h, wd, -1)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("epilogue", ["none", "bias_relu"])
@pytest.mark.parametrize("shape,f", [((1, 56, 56, 64), 256), ((2, 7, 9, 33), 20),
                                     ((1, 17, 17, 256), 64)])
def test_numbers(shape, f: int, epilogue: str, threads: int) -> None:
    rng = np.random.default_rng(f)
    x = rng.standard_normal(shape).astype(np.float32)
    w = (rng.standard_normal((1, 1, shape[-1], f)) / np.sqrt(shape[-1])).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)

    def body(v):
        y = ops.conv2d(v, ops.constant(w, DType.float32, CPU))
        if epilogue == "bias_relu":
            y = ops.relu(y + ops.constant(b, DType.float32, CPU))
        return y

    model = InferenceSession(devices=[CPUDevice()], num_threads=threads).load(
        Graph("g", body, input_types=[TensorType(DType.float32, shape, CPU)]))
    assert model._record.fallbacks == ()
    want = _ref(x, w)
    if epilogue == "bias_relu":
        want = np.maximum(want + b, 0)
    check(model.execute(x)[0].to_numpy(), want.astype(np.float32), rtol=1e-4, atol=1e-4)


def test_symbolic_sizes_and_f16() -> None:
    g = Graph("g", lambda x, w: ops.conv2d(x, w), input_types=[
        TensorType(DType.float16, ("n", "h", "w", 48), CPU),
        TensorType(DType.float16, (1, 1, 48, 40), CPU)])
    model = InferenceSession(devices=[CPUDevice()], num_threads=2).load(g)
    assert model._record.fallbacks == ()
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((1, 1, 48, 40)) / 7).astype(np.float16)
    for shape in [(1, 5, 7, 48), (3, 20, 11, 48)]:
        x = rng.standard_normal(shape).astype(np.float16)
        got = model.execute(x, w)[0].to_numpy()
        assert got.dtype == np.float16 and got.shape == (*shape[:3], 40)
        check(got.astype(np.float32), _ref(x, w).astype(np.float32), rtol=2e-2, atol=2e-2)
