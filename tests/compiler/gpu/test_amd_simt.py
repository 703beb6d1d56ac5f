"""The numbers of the AMD target's schedules on 64-lane wavefronts, from the SIMT interpreter
(``simt.py``, its shuffles spanning 64 lanes) against numpy. The reductions' butterflies and
the per-wavefront partials are what the wavefront size changes; no GPU needed."""

from __future__ import annotations

import numpy as np
import pytest
from gpu_helpers import gpu_graph
from simt import run_graph, scheduled

from max.compiler.targets.amd import AMD, AmdDescription
from max.dtype import DType
from max.graph import ops

F32, I32 = DType.float32, DType.int32
rng = np.random.default_rng(12)
pytestmark = pytest.mark.usefixtures("schedule_debug")


def _f32(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def _run(fn, inputs: list[np.ndarray], outputs, **options) -> list[np.ndarray]:
    specs = [(I32 if a.dtype == np.int32 else F32, a.shape) for a in inputs]
    return run_graph(gpu_graph(fn, specs), inputs, outputs, target=AMD,
                     options=AmdDescription(**options).options(), warp=64)


@pytest.mark.parametrize("name", ["sum", "max", "min"])
def test_row_reductions(name: str) -> None:
    x = _f32(3, 1000)
    fn = {"sum": lambda a: ops.sum(a * a, axis=-1), "max": lambda a: ops.max(a, axis=-1),
          "min": lambda a: ops.min(a, axis=-1)}[name]
    want = {"sum": (x * x).sum(-1), "max": x.max(-1), "min": x.min(-1)}[name]
    (out,) = _run(fn, [x], [((3, 1), np.float32)])
    np.testing.assert_allclose(out[:, 0], want, rtol=1e-5, atol=1e-6)


def test_short_rows_use_one_whole_wavefront() -> None:
    x = _f32(2, 3, 40)  # 40 scalar lanes: 64 threads, 24 of them idle but shuffling
    (out,) = _run(lambda a: ops.sum(a, axis=-1), [x], [((2, 3, 1), np.float32)])
    np.testing.assert_allclose(out, x.sum(-1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_integer_row_sum() -> None:
    x = rng.integers(-1000, 1000, (2, 300), np.int32)
    (out,) = _run(lambda a: ops.sum(a, axis=-1), [x], [((2, 1), np.int32)])
    np.testing.assert_array_equal(out, x.sum(-1, keepdims=True))


def test_sixteen_wavefronts_a_block() -> None:
    x = _f32(1, 4096)  # 1024 threads: 16 partials for the first wavefront to combine
    (out,) = _run(lambda a: ops.max(a, axis=-1), [x], [((1, 1), np.float32)],
                  reduce_block=1024)
    np.testing.assert_array_equal(out[:, 0], x.max(-1))


def test_softmax() -> None:
    x = _f32(2, 1000) * 3
    (out,) = _run(lambda a: ops.softmax(a), [x], [(x.shape, np.float32)])
    e = np.exp(x - x.max(-1, keepdims=True))
    np.testing.assert_allclose(out, e / e.sum(-1, keepdims=True), rtol=2e-5, atol=1e-7)


def test_layer_norm() -> None:
    x, g, b = _f32(3, 256) * 2 + 1, _f32(256), _f32(256)
    (out,) = _run(lambda a, gg, bb: ops.layer_norm(a, gg, bb, 1e-5), [x, g, b],
                  [(x.shape, np.float32)])
    mu = x.mean(-1, keepdims=True)
    want = (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5) * g + b
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)


def test_tiled_matmul() -> None:
    x, w = _f32(5, 32), _f32(32, 64)
    (out,) = _run(lambda a, b: a @ b, [x, w], [((5, 64), np.float32)])
    np.testing.assert_allclose(out, x @ w, rtol=1e-5, atol=1e-5)


def test_shuffles_span_64_lanes() -> None:
    g = gpu_graph(lambda a: ops.sum(a, axis=-1), [(F32, (4, 1000))])
    text = str(scheduled(g, AMD, AmdDescription().options()))
    # Two butterflies (wavefronts, then the block's partials) of 6 steps: 32, 16, ..., 1.
    assert text.count("gpu.shuffle  xor") + text.count("gpu.shuffle xor") == 12
    assert "arith.constant 32 : i32" in text and "arith.constant 64 : i32" in text
    assert "memref<64xf32, #gpu.address_space<workgroup>>" in text


def test_argmax_on_64_lane_wavefronts() -> None:
    # The index pass (an i64 minimum) exchanged as two 32-bit halves across 64 lanes.
    x = _f32(3, 700)
    x[1, 5] = x[1, 600] = 40.0  # a tie: the first index
    (out,) = _run(lambda a: ops.argmax(a, axis=-1), [x], [((3, 1), np.int64)])
    np.testing.assert_array_equal(out[:, 0], x.argmax(-1))
