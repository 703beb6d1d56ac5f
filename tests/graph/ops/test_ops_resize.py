"""``resize`` (BICUBIC): compiled results against PyTorch's bicubic interpolate, symbolic input
sizes, and the documented errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ops_helpers import result_type, tt

from max import engine
from max.dtype import DType
from max.graph import Graph, ops
from max.graph.ops import InterpolationMode

RNG = np.random.default_rng(5)
BICUBIC = InterpolationMode.BICUBIC


def _torch(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return torch.nn.functional.interpolate(torch.from_numpy(x), size=size, mode="bicubic",
                                           align_corners=False).numpy()


@pytest.mark.parametrize(("xs", "size"), [((1, 2, 4, 4), (8, 8)), ((2, 3, 9, 7), (4, 5)),
                                          ((1, 1, 1, 3), (3, 6)), ((1, 2, 6, 5), (6, 5)),
                                          ((1, 1, 5, 8), (13, 3))])
@pytest.mark.parametrize("dtype", [DType.float32, DType.float64])
def test_resize_bicubic_matches_torch(xs, size, dtype: DType) -> None:
    x = RNG.standard_normal(xs).astype(dtype.to_numpy())
    g = Graph("resize", lambda a: ops.resize(a, (*xs[:2], *size), BICUBIC),
              input_types=[tt(dtype, *xs)])
    got = engine.InferenceSession().load(g).execute(x)[0].to_numpy()
    assert got.shape == (*xs[:2], *size) and got.dtype == x.dtype
    np.testing.assert_allclose(got, _torch(x, size), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("xs", "size"), [((1, 3, 64, 64), (128, 128)),   # 2x up
                                          ((2, 3, 37, 50), (80, 29)),      # up H, down W
                                          ((1, 4, 96, 72), (17, 33)),      # down, ragged
                                          ((1, 2, 16, 3), (16, 40))])      # W of 3 -> 40
@pytest.mark.parametrize("dtype", [DType.float32, DType.float16, DType.bfloat16])
def test_static_resize_is_vector_code_and_matches_torch(xs, size, dtype: DType) -> None:
    # Static sizes: separable passes over tables of taps, every kernel scheduled.
    x = RNG.standard_normal(xs).astype(dtype.to_numpy())
    g = Graph("resize", lambda a: ops.resize(a, (*xs[:2], *size), BICUBIC),
              input_types=[tt(dtype, *xs)])
    model = engine.InferenceSession().load(g)
    assert model._record.fallbacks == ()
    got = model.execute(x)[0].to_numpy()
    wide = x.astype(np.float32)
    want = _torch(wide, size)
    if dtype is DType.float32:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    else:  # computed in f32, rounded once
        np.testing.assert_allclose(got.astype(np.float32), want, rtol=1e-2, atol=2e-2)


def test_resize_symbolic_input_to_static_size() -> None:
    g = Graph("resize_sym", lambda a: ops.resize(a, ("n", 3, 6, 6), BICUBIC),
              input_types=[tt(DType.float32, "n", 3, "h", "w")])
    model = engine.InferenceSession().load(g)
    # Symbolic sizes: the taps computed per pixel, 16 scalar reads (recorded as plain loops).
    assert any("resize" in f or "linalg.generic" in f for f in model._record.fallbacks)
    for xs in ((1, 3, 4, 9), (2, 3, 12, 3)):
        x = RNG.standard_normal(xs).astype(np.float32)
        np.testing.assert_allclose(model.execute(x)[0].to_numpy(), _torch(x, (6, 6)),
                                   rtol=1e-5, atol=1e-5)
    # An input with no pixels has nothing to resample: an error, and the model stays usable.
    with pytest.raises(ValueError, match=r"mo.resize_bicubic: input .* has an empty spatial"):
        model.execute(np.zeros((1, 3, 0, 4), np.float32))
    x = RNG.standard_normal((1, 3, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(model.execute(x)[0].to_numpy(), _torch(x, (6, 6)), rtol=1e-5,
                               atol=1e-5)


def test_resize_errors() -> None:
    x = [tt(DType.float32, 1, 3, 4, 4)]
    with pytest.raises(NotImplementedError, match=r"resize: interpolation BILINEAR is not "
                       r"supported"):
        result_type(x, lambda a: ops.resize(a, (1, 3, 8, 8)))
    with pytest.raises(NotImplementedError, match=r"resize: a single integer size"):
        result_type(x, lambda a: ops.resize(a, 8, BICUBIC))
    with pytest.raises(ValueError, match=r"resize: input must have rank 4"):
        result_type([tt(DType.float32, 3, 4, 4)], lambda a: ops.resize(a, (3, 8, 8), BICUBIC))
    with pytest.raises(ValueError, match=r"resize: shape must have 4 elements"):
        result_type(x, lambda a: ops.resize(a, (1, 3, 8), BICUBIC))
    with pytest.raises(ValueError, match=r"resize: shape \[1, 2, 8, 8\] must keep the batch"):
        result_type(x, lambda a: ops.resize(a, (1, 2, 8, 8), BICUBIC))
    with pytest.raises(ValueError, match=r"resize: unsupported interpolation mode 'cubic'"):
        result_type(x, lambda a: ops.resize(a, (1, 3, 8, 8), "cubic"))
    with pytest.raises(ValueError, match=r"resize: input must have a floating-point dtype"):
        result_type([tt(DType.int32, 1, 3, 4, 4)],
                    lambda a: ops.resize(a, (1, 3, 8, 8), BICUBIC))
