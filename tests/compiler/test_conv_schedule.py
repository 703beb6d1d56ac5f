"""The convolution and pooling schedule: the scheduled IR is vector code (no linalg op or
scalar copy left), also when split over threads; results are checked in
tests/graph/ops/test_ops_conv.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from mlir import ir
from mo_helpers import make_context

from max.compiler.lowering import lower_to_linalg
from max.compiler.pipelines import cpu_threads
from max.compiler.targets.cpu import CPU
from max.dtype import DType
from max.graph import DeviceRef, Graph, TensorType, ops


# A schedule failure raises here instead of silently compiling plain loops.
pytestmark = pytest.mark.usefixtures("schedule_debug")


def _scheduled_ir(shapes: list[tuple[int | str, ...]], fn: Callable[..., Any], threads: int) -> str:
    cpu_dev = DeviceRef.CPU()
    g = Graph("sched", fn, input_types=[TensorType(DType.float32, s, cpu_dev) for s in shapes])
    with make_context():
        m = ir.Module.parse(str(g._module))
        lower_to_linalg(m)
        CPU.run(m, until="mo-vectorize-memrefs", threads=threads)
        return str(m)


CASES = {
    "conv": ([(1, 16, 16, 32), (3, 3, 32, 64)],
             lambda x, w: ops.conv2d(x, w, padding=(1, 1, 1, 1)), "vector.fma"),
    "depthwise": ([(1, 40, 40, 64), (3, 3, 1, 64)],
                  lambda x, w: ops.conv2d(x, w, padding=(1, 1, 1, 1), groups=64), "vector.fma"),
    "grouped": ([(1, 16, 16, 64), (3, 3, 16, 128)],
                lambda x, w: ops.conv2d(x, w, padding=(1, 1, 1, 1), groups=4), "vector.fma"),
    "max_pool": ([(1, 80, 80, 64)], lambda x: ops.max_pool2d(x, (3, 3), 2, padding=1),
                 "arith.maximumf"),
    "avg_pool": ([(1, 80, 80, 64)], lambda x: ops.avg_pool2d(x, (3, 3), 2, padding=1),
                 "arith.addf"),
}


# Odd sizes: width strips and channel tiles that do not divide their dims are peeled; the
# remainders are vector code too. Their results: tests/graph/ops/test_ops_conv.py.
CASES.update({
    "conv_prime_width": ([(1, 13, 37, 24), (3, 3, 24, 40)],
                         lambda x, w: ops.conv2d(x, w, padding=(1, 1, 1, 1)), "vector.fma"),
    "conv_stride2_odd": ([(2, 15, 17, 19), (3, 3, 19, 48)],
                         lambda x, w: ops.conv2d(x, w, (2, 2), padding=(1, 1, 1, 1)),
                         "vector.fma"),
    "conv_dilation2": ([(1, 17, 19, 16), (3, 3, 16, 33)],
                       lambda x, w: ops.conv2d(x, w, (1, 1), (2, 2), (2, 2, 2, 2)),
                       "vector.fma"),
    "conv_groups2": ([(1, 31, 33, 34), (3, 3, 17, 18)],
                     lambda x, w: ops.conv2d(x, w, padding=(1, 1, 1, 1), groups=2),
                     "vector.fma"),
    "conv_7x7_stride2": ([(1, 63, 67, 3), (7, 7, 3, 20)],
                         lambda x, w: ops.conv2d(x, w, (2, 2), padding=(3, 3, 3, 3)),
                         "vector.fma"),
    "depthwise_24": ([(1, 61, 67, 24), (3, 3, 1, 24)],
                     lambda x, w: ops.conv2d(x, w, padding=(1, 1, 1, 1), groups=24),
                     "vector.fma"),
    "pointwise": ([(1, 28, 28, 64), (1, 1, 64, 96)], lambda x, w: ops.conv2d(x, w),
                  "vector.fma"),
    "dw_separable": ([(1, 40, 40, 32), (3, 3, 1, 32), (1, 1, 32, 64)],
                     lambda x, d, p: ops.conv2d(ops.conv2d(x, d, padding=(1, 1, 1, 1),
                                                           groups=32), p), "vector.fma"),
    "max_pool_odd": ([(1, 83, 89, 40)], lambda x: ops.max_pool2d(x, (3, 3), 2, padding=1),
                     "arith.maximumf"),
    "avg_pool_odd": ([(1, 83, 89, 40)], lambda x: ops.avg_pool2d(x, (3, 3), 2, padding=1),
                     "arith.addf"),
})


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", sorted(CASES))
def test_conv_and_pool_become_vector_code(name: str, threads: int) -> None:
    shapes, fn, arith_op = CASES[name]
    text = _scheduled_ir(shapes, fn, threads)
    assert "linalg." not in text and "memref.copy" not in text
    assert any(arith_op in line and "vector<" in line for line in text.splitlines())
    if threads == 2 and cpu_threads.omp_library_dir() is not None:
        assert "scf.forall" in text


def test_conv2d_transpose_conv_is_vectorized() -> None:
    # The conv of the spread-out input is scheduled; spreading the input and flipping the
    # filter are plain loops (input- and filter-sized).
    text = _scheduled_ir([(1, 14, 14, 32), (4, 4, 64, 32)],
                         lambda x, w: ops.conv2d_transpose(x, w, 2, 1, (1, 1, 1, 1)), 1)
    assert "linalg.conv" not in text and "vector.fma" in text


def test_conv3d_taps_are_vectorized_conv2ds() -> None:
    text = _scheduled_ir([(1, 6, 12, 12, 16), (3, 3, 3, 16, 32)],
                         lambda x, w: ops.conv3d(x, w, padding=(1, 1, 1, 1, 1, 1)), 1)
    assert [l for l in text.splitlines() if "linalg.conv" in l] == []
    assert text.count("vector.fma") >= 3  # one strip kernel per depth tap


@pytest.mark.parametrize("threads", [1, 2])
def test_symbolic_batch_is_scheduled(threads: int) -> None:
    text = _scheduled_ir([("n", 28, 28, 32), (3, 3, 32, 32)],
                         lambda x, w: ops.conv2d(x, w, padding=(1, 1, 1, 1)), threads)
    assert "linalg." not in text and "vector.fma" in text


@pytest.mark.parametrize("threads", [1, 2])
def test_symbolic_height_is_scheduled(threads: int) -> None:
    text = _scheduled_ir([("n", "h", 28, 32), (3, 3, 32, 32)],
                         lambda x, w: ops.conv2d(x, w, padding=(1, 1, 1, 1)), threads)
    assert "linalg." not in text and "vector.fma" in text


def test_symbolic_width_is_strips_then_one_pixel_tiles() -> None:
    # A symbolic width: strips of it, the remainder loop (marked) tiled again by one pixel;
    # every tile vectorized, no linalg op left.
    text = _scheduled_ir([("n", 9, "w", 8)], lambda x: ops.max_pool2d(x, (2, 2), padding=1), 1)
    assert "linalg.pooling_nhwc_max" not in text
    assert "mo.crest_" in text
