"""The numbers of the NVIDIA target's barrier-free kernels (elementwise, plain loops), run on
the CPU one thread after another (``emulate.py``) against numpy. The kernels with barriers
and shuffles (reductions, row groups, the tiled matmul) need a GPU."""

from __future__ import annotations

import numpy as np
import pytest
from gpu_helpers import gpu_graph
from emulate import Emulated

from max.dtype import DType
from max.graph import ops

F32, F16, I32 = DType.float32, DType.float16, DType.int32
rng = np.random.default_rng(7)


def _f32(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def test_elementwise_chain_vectorized() -> None:
    x, y = _f32(64, 1024), _f32(64, 1024)
    run = Emulated(gpu_graph(lambda a, b: ops.relu(a * b + 1.0) - b,
                             [(F32, x.shape), (F32, y.shape)]))
    (out,) = run([x, y], [(x.shape, "float32")])
    np.testing.assert_allclose(out, np.maximum(x * y + 1, 0) - y, rtol=1e-6)


@pytest.mark.parametrize("shape_y", [(1, 128), (64, 1), (128,)])
def test_broadcasts(shape_y) -> None:
    x, y = _f32(64, 128), _f32(*shape_y)
    run = Emulated(gpu_graph(lambda a, b: a * b - a, [(F32, x.shape), (F32, y.shape)]))
    (out,) = run([x, y], [(x.shape, "float32")])
    np.testing.assert_allclose(out, x * y - x, rtol=1e-6)


def test_odd_sizes_and_a_grid_stride_beyond_the_grid() -> None:
    # 3 x 1000 x 7: scalar lanes (7 does not take 4), more work than threads x max_blocks.
    x = _f32(3, 1000, 7)
    run = Emulated(gpu_graph(lambda a: ops.exp(a) * 0.5, [(F32, x.shape)]))
    (out,) = run([x], [(x.shape, "float32")])
    np.testing.assert_allclose(out, np.exp(x) * 0.5, rtol=2e-6)


def test_float16_eight_lanes() -> None:
    x, y = _f32(16, 256).astype(np.float16), _f32(16, 256).astype(np.float16)
    run = Emulated(gpu_graph(lambda a, b: a * b + a, [(F16, x.shape), (F16, y.shape)]))
    (out,) = run([x, y], [(x.shape, "float16")])
    want = (x.astype(np.float32) * y.astype(np.float32) + x.astype(np.float32))
    np.testing.assert_allclose(out.astype(np.float32), want, rtol=2e-3, atol=2e-3)


def test_transpose_and_integer_ops() -> None:
    x = _f32(64, 96)
    run = Emulated(gpu_graph(lambda a: ops.transpose(a, 0, 1) * 2.0, [(F32, x.shape)]))
    (out,) = run([x], [((96, 64), "float32")])
    np.testing.assert_array_equal(out, x.T * 2)
    a, b = rng.integers(-99, 99, (32, 64), np.int32), rng.integers(-99, 99, (32, 64), np.int32)
    run = Emulated(gpu_graph(lambda p, q: p * q + p, [(I32, a.shape), (I32, b.shape)]))
    (out,) = run([a, b], [(a.shape, "int32")])
    np.testing.assert_array_equal(out, a * b + a)


def test_plain_loops_matmul() -> None:
    # An integer matmul (the tiled schedule is f32's): the plain-loops kernel, a thread per
    # element of C.
    x = np.random.default_rng(3).integers(-50, 50, (20, 48)).astype(np.int32)
    w = np.random.default_rng(4).integers(-50, 50, (48, 100)).astype(np.int32)
    run = Emulated(gpu_graph(lambda a, b: a @ b, [(DType.int32, x.shape),
                                                  (DType.int32, w.shape)]))
    (out,) = run([x, w], [((20, 100), "int32")])
    np.testing.assert_array_equal(out, x @ w)


def test_plain_loops_column_sum() -> None:
    x = _f32(64, 128)
    run = Emulated(gpu_graph(lambda a: ops.sum(a, axis=0), [(F32, x.shape)]))
    (out,) = run([x], [((1, 128), "float32")])
    np.testing.assert_allclose(out, x.sum(axis=0, keepdims=True), rtol=1e-5, atol=1e-5)
