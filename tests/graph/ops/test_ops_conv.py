"""``conv2d``, ``max_pool2d``, ``avg_pool2d``: compiled results against PyTorch (NCHW views of
the NHWC data) over the options, symbolic batch/spatial dims, and the builders' errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ops_helpers import result_type, shared_session, tt

from max.dtype import DType
from max.graph import DeviceRef, Graph, ops
from max.graph.type import ConvInputLayout, FilterLayout

RNG = np.random.default_rng(11)


def _run(types: list[Any], fn: Any, *inputs: np.ndarray) -> np.ndarray:
    model = shared_session().load(Graph("conv_test", fn, input_types=types))
    return model.execute(*inputs)[0].to_numpy()


def _f32(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).permute(0, 3, 1, 2)


def _nhwc(y: torch.Tensor) -> np.ndarray:
    return y.permute(0, 2, 3, 1).contiguous().numpy()


def _torch_conv(x: np.ndarray, w: np.ndarray, stride: Any, dilation: Any, padding: Any,
                groups: int, bias: np.ndarray | None = None) -> np.ndarray:
    pt, pb, pl, pr = padding
    xp = F.pad(_nchw(x.astype(np.float64)), (pl, pr, pt, pb))
    wt = torch.from_numpy(w.astype(np.float64)).permute(3, 2, 0, 1)
    b = None if bias is None else torch.from_numpy(bias.astype(np.float64))
    return _nhwc(F.conv2d(xp, wt, b, stride=stride, dilation=dilation, groups=groups))


# x shape, filter shape (RSCF), stride, dilation, padding, groups
CONV_CASES = [
    ((1, 8, 8, 4), (3, 3, 4, 8), (1, 1), (1, 1), (0, 0, 0, 0), 1),
    ((2, 9, 11, 3), (3, 3, 3, 5), (2, 2), (1, 1), (1, 1, 1, 1), 1),
    ((1, 10, 7, 4), (2, 3, 4, 6), (1, 2), (2, 1), (0, 2, 1, 0), 1),  # asymmetric padding
    ((1, 12, 12, 16), (3, 3, 16, 64), (1, 1), (1, 1), (1, 1, 1, 1), 1),  # scheduled path
    ((1, 14, 14, 32), (3, 3, 32, 96), (2, 2), (1, 1), (1, 0, 1, 0), 1),
    ((1, 8, 8, 6), (5, 5, 6, 4), (3, 1), (1, 2), (2, 2, 4, 4), 1),
    ((2, 9, 9, 16), (3, 3, 1, 16), (1, 1), (1, 1), (1, 1, 1, 1), 16),  # depthwise
    ((1, 14, 14, 144), (3, 3, 1, 144), (2, 2), (1, 1), (0, 1, 0, 1), 144),  # depthwise, C=9*16
    ((1, 7, 7, 5), (3, 3, 1, 5), (1, 1), (2, 2), (2, 2, 2, 2), 5),  # depthwise, dilated
    ((1, 8, 8, 4), (3, 3, 1, 8), (1, 1), (1, 1), (1, 1, 1, 1), 4),  # channel multiplier 2
    ((1, 9, 8, 6), (3, 3, 2, 9), (2, 1), (1, 1), (1, 2, 0, 1), 3),  # groups 3
    ((2, 6, 7, 24), (3, 2, 2, 36), (1, 2), (2, 1), (2, 1, 0, 1), 12),  # > 8 groups: generic
    ((1, 8, 8, 64), (3, 3, 16, 128), (1, 1), (1, 1), (1, 1, 1, 1), 4),  # scheduled groups
    # Odd sizes on the scheduled path: width strips and channel tiles with peeled remainders.
    ((1, 13, 37, 24), (3, 3, 24, 40), (1, 1), (1, 1), (1, 1, 1, 1), 1),  # W prime, C % 16
    ((2, 15, 17, 19), (3, 3, 19, 48), (2, 2), (1, 1), (1, 1, 1, 1), 1),  # stride 2, odd H
    ((1, 17, 19, 16), (3, 3, 16, 33), (1, 1), (2, 2), (2, 2, 2, 2), 1),  # dilation 2
    ((1, 11, 13, 34), (3, 3, 17, 18), (1, 1), (1, 1), (1, 1, 1, 1), 2),  # groups 2
    ((1, 19, 23, 24), (3, 3, 1, 24), (1, 1), (1, 1), (1, 1, 1, 1), 24),  # depthwise, 16 + 8
    ((1, 19, 23, 5), (3, 3, 1, 5), (2, 2), (1, 1), (1, 1, 1, 1), 5),  # depthwise, stride 2
    ((1, 31, 37, 3), (7, 7, 3, 20), (2, 2), (1, 1), (3, 3, 3, 3), 1),  # a first layer, 7x7
    ((1, 9, 9, 256), (3, 3, 256, 64), (2, 2), (1, 1), (1, 1, 1, 1), 1),  # filter > output
]


@pytest.mark.parametrize(("xs", "ws", "stride", "dilation", "padding", "groups"), CONV_CASES)
def test_conv2d_matches_torch(xs, ws, stride, dilation, padding, groups) -> None:
    x, w = _f32(*xs), _f32(*ws)
    got = _run([tt(DType.float32, *xs), tt(DType.float32, *ws)],
               lambda a, b: ops.conv2d(a, b, stride, dilation, padding, groups), x, w)
    want = _torch_conv(x, w, stride, dilation, padding, groups)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_conv2d_bias_and_defaults() -> None:
    x, w, b = _f32(2, 6, 6, 3), _f32(3, 3, 3, 4), _f32(4)
    got = _run([tt(DType.float32, 2, 6, 6, 3), tt(DType.float32, 3, 3, 3, 4),
                tt(DType.float32, 4)], lambda a, f, c: ops.conv2d(a, f, bias=c), x, w, b)
    np.testing.assert_allclose(got, _torch_conv(x, w, 1, 1, (0, 0, 0, 0), 1, b),
                               rtol=1e-4, atol=1e-4)


def test_conv2d_nchw_input_and_fcrs_filter() -> None:
    x, w = _f32(1, 3, 7, 6), _f32(5, 3, 3, 3)  # NCHW, FCRS (PyTorch's layouts)
    got = _run([tt(DType.float32, 1, 3, 7, 6), tt(DType.float32, 5, 3, 3, 3)],
               lambda a, f: ops.conv2d(a, f, padding=(1, 1, 1, 1),
                                       input_layout=ConvInputLayout.NCHW,
                                       filter_layout=FilterLayout.FCRS), x, w)
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [DType.float16, DType.bfloat16, DType.float64])
def test_conv2d_other_float_dtypes(dtype: DType) -> None:
    x, w = _f32(1, 6, 6, 4), _f32(3, 3, 4, 8)
    xin, win = (v.astype(dtype.to_numpy()) if dtype != DType.bfloat16 else
                torch.from_numpy(v).to(torch.bfloat16).view(torch.int16).numpy()
                .view(dtype.to_numpy()) for v in (x, w))
    got = _run([tt(dtype, 1, 6, 6, 4), tt(dtype, 3, 3, 4, 8)],
               lambda a, b: ops.conv2d(a, b, padding=(1, 1, 1, 1)), xin, win)
    want = _torch_conv(np.asarray(xin, np.float32), np.asarray(win, np.float32), 1, 1,
                       (1, 1, 1, 1), 1)
    tol = {DType.float16: 2e-2, DType.bfloat16: 1e-1, DType.float64: 1e-9}[dtype]
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=tol, atol=tol)


def test_conv2d_symbolic_batch_and_spatial_dims() -> None:
    types = [tt(DType.float32, "n", "h", "w", 4), tt(DType.float32, 3, 3, 4, 8)]
    fn = lambda a, b: ops.conv2d(a, b, stride=(2, 1), padding=(1, 1, 0, 2))  # noqa: E731
    t = result_type(types, fn)
    assert [str(d) for d in t.shape] == ["n", "(h - 1) // 2 + 1", "w", "8"]
    model = shared_session().load(Graph("conv_sym", fn, input_types=types))
    for xs in ((1, 7, 5, 4), (3, 10, 9, 4)):
        x, w = _f32(*xs), _f32(3, 3, 4, 8)
        got = model.execute(x, w)[0].to_numpy()
        np.testing.assert_allclose(got, _torch_conv(x, w, (2, 1), 1, (1, 1, 0, 2), 1),
                                   rtol=1e-4, atol=1e-4)


def test_symbolic_batch_conv_and_pools() -> None:
    # A symbolic batch keeps the vectorized schedule (tiles of one image).
    types = [tt(DType.float32, "n", 12, 12, 16), tt(DType.float32, 3, 3, 16, 32)]

    def fn(a: Any, b: Any) -> Any:
        y = ops.conv2d(a, b, stride=(1, 1), padding=(1, 1, 1, 1))
        return ops.avg_pool2d(ops.max_pool2d(y, (2, 2), 2), (3, 3), 1, padding=1,
                              count_boundary=False)

    model = shared_session().load(Graph("sym_batch", fn, input_types=types))
    w = _f32(3, 3, 16, 32)
    for n in (1, 3):
        x = _f32(n, 12, 12, 16)
        y = _torch_conv(x, w, 1, 1, (1, 1, 1, 1), 1).astype(np.float32)
        y = _torch_pool("max", y, 2, 2, 1, 0, False)
        want = _torch_pool("avg", y, 3, 1, 1, 1, False, False)
        np.testing.assert_allclose(model.execute(x, w)[0].to_numpy(), want, rtol=1e-4,
                                   atol=1e-4)


def test_symbolic_height_conv_and_pools() -> None:
    # A symbolic batch and height keep the vectorized schedule (rows of one image); threads
    # split the rows into parts of run-time size.
    types = [tt(DType.float32, "n", "h", 16, 16), tt(DType.float32, 3, 3, 16, 32)]

    def fn(a: Any, b: Any) -> Any:
        y = ops.conv2d(a, b, padding=(1, 1, 1, 1))
        return ops.avg_pool2d(ops.max_pool2d(y, (3, 3), 2, padding=1), (2, 2), 1, padding=1,
                              ceil_mode=True)

    model = shared_session().load(Graph("sym_height", fn, input_types=types))
    w = _f32(3, 3, 16, 32)
    for n, h in ((1, 40), (2, 9), (1, 1)):
        x = _f32(n, h, 16, 16)
        y = _torch_conv(x, w, 1, 1, (1, 1, 1, 1), 1).astype(np.float32)
        y = _torch_pool("max", y, 3, 2, 1, 1, False)
        want = _torch_pool("avg", y, 2, 1, 1, 1, True)
        np.testing.assert_allclose(model.execute(x, w)[0].to_numpy(), want, rtol=1e-4,
                                   atol=1e-4)


@pytest.mark.parametrize(("cin", "cout", "groups", "stride", "dilation", "padding"), [
    (16, 32, 1, 1, 1, (1, 1, 1, 1)),   # strips of 14 pixels x 32 channels
    (8, 20, 1, (1, 2), (1, 2), (0, 2, 3, 1)),
    (24, 24, 24, 1, 1, (1, 1, 1, 1)),  # depthwise: strips of 8 pixels, a channel remainder
])
def test_symbolic_width_conv_and_pools_are_vector_code(cin, cout, groups, stride, dilation,
                                                       padding) -> None:
    # A symbolic width: strips of it, the remainder strip (of run-time size) one pixel a
    # step; every kernel scheduled, for widths below, at and above a strip.
    types = [tt(DType.float32, "n", "h", "w", cin), tt(DType.float32, 3, 3, cin // groups, cout)]

    def fn(a: Any, b: Any) -> Any:
        y = ops.conv2d(a, b, stride=stride, dilation=dilation, padding=padding, groups=groups)
        return ops.max_pool2d(y, (2, 3), 1, padding=(1, 1))

    model = shared_session().load(Graph(f"sym_width_{cin}_{cout}_{groups}", fn,
                                        input_types=types))
    assert model._record.fallbacks == ()
    w = _f32(3, 3, cin // groups, cout)
    for n, h, width in ((1, 5, 3), (2, 6, 14), (1, 4, 15), (1, 9, 61)):
        x = _f32(n, h, width, cin)
        y = _torch_conv(x, w, stride, dilation, padding, groups).astype(np.float32)
        want = _torch_pool("max", y, (2, 3), 1, 1, (1, 1), False)
        np.testing.assert_allclose(model.execute(x, w)[0].to_numpy(), want, rtol=1e-4,
                                   atol=1e-4)


def _torch_pool(kind: str, x: np.ndarray, k: Any, s: Any, d: Any, p: Any, ceil: bool,
                count: bool = True) -> np.ndarray:
    if kind == "max":
        y = F.max_pool2d(_nchw(x), k, s, p, d, ceil_mode=ceil)
    else:
        y = F.avg_pool2d(_nchw(x), k, s, p, ceil_mode=ceil, count_include_pad=count)
    return _nhwc(y)


# x shape, kernel, stride, dilation, padding, ceil_mode
POOL_CASES = [
    ((1, 8, 8, 3), (2, 2), (2, 2), (1, 1), (0, 0), False),
    ((2, 9, 10, 4), (3, 3), (2, 2), (1, 1), (1, 1), False),
    ((1, 8, 8, 3), (3, 3), (2, 2), (1, 1), (1, 1), True),  # ceil adds a window
    ((1, 7, 9, 2), (3, 2), (2, 3), (1, 1), (1, 0), True),  # ceil's last window dropped
    ((1, 10, 11, 5), (2, 3), (1, 2), (1, 1), (0, 1), True),
    ((1, 16, 16, 64), (3, 3), (2, 2), (1, 1), (1, 1), False),  # scheduled path
    ((1, 14, 14, 48), (2, 2), (2, 2), (1, 1), (0, 0), True),
    ((1, 23, 29, 40), (3, 3), (2, 2), (1, 1), (1, 1), False),  # odd: strip and channel rests
    ((1, 7, 7, 40), (7, 7), (1, 1), (1, 1), (0, 0), False),  # global pool
]


@pytest.mark.parametrize(("xs", "k", "s", "d", "p", "ceil"), POOL_CASES)
def test_max_pool2d_matches_torch(xs, k, s, d, p, ceil) -> None:
    x = _f32(*xs)
    got = _run([tt(DType.float32, *xs)],
               lambda a: ops.max_pool2d(a, k, s, d, p, ceil_mode=ceil), x)
    want = _torch_pool("max", x, k, s, d, p, ceil)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_max_pool2d_dilation_and_negative_inputs() -> None:
    x = -np.abs(_f32(2, 11, 9, 3)) - 1.0  # padding (never the max) must not win over these
    got = _run([tt(DType.float32, 2, 11, 9, 3)],
               lambda a: ops.max_pool2d(a, (3, 2), (2, 1), (2, 3), (1, 1), ceil_mode=True), x)
    np.testing.assert_array_equal(got, _torch_pool("max", x, (3, 2), (2, 1), (2, 3), (1, 1),
                                                   True))


@pytest.mark.parametrize("count", [True, False])
@pytest.mark.parametrize(("xs", "k", "s", "d", "p", "ceil"), POOL_CASES)
def test_avg_pool2d_matches_torch(xs, k, s, d, p, ceil, count) -> None:
    x = _f32(*xs)
    got = _run([tt(DType.float32, *xs)],
               lambda a: ops.avg_pool2d(a, k, s, d, p, ceil_mode=ceil, count_boundary=count), x)
    want = _torch_pool("avg", x, k, s, d, p, ceil, count)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_avg_pool2d_dilation_counts_taps() -> None:
    # PyTorch's avg_pool2d has no dilation: compare with the mean over the dilated taps.
    x = _f32(1, 9, 9, 2)
    got = _run([tt(DType.float32, 1, 9, 9, 2)],
               lambda a: ops.avg_pool2d(a, (2, 2), 1, 2, 1, count_boundary=False), x)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=np.nan)
    taps = np.stack([xp[:, i:i + 9, j:j + 9] for i in (0, 2) for j in (0, 2)])
    np.testing.assert_allclose(got, np.nanmean(taps, axis=0), rtol=1e-5, atol=1e-6)


def test_pools_symbolic_dims() -> None:
    types = [tt(DType.float32, "n", "h", "w", 3)]
    t = result_type(types, lambda a: ops.max_pool2d(a, (3, 3), 2, padding=1))
    assert [str(d) for d in t.shape] == ["n", "(h - 1) // 2 + 1", "(w - 1) // 2 + 1", "3"]
    # ceil mode where no window can start in the padding: kernel 3, stride 2, padding 0.
    fn = lambda a: ops.avg_pool2d(a, (3, 3), 2, ceil_mode=True)  # noqa: E731
    assert [str(d) for d in result_type(types, fn).shape] == ["n", "h // 2", "w // 2", "3"]
    model = shared_session().load(Graph("pool_sym", fn, input_types=types))
    for xs in ((1, 7, 8, 3), (2, 10, 5, 3)):
        x = _f32(*xs)
        np.testing.assert_allclose(model.execute(x)[0].to_numpy(),
                                   _torch_pool("avg", x, 3, 2, 1, 0, True), rtol=1e-5,
                                   atol=1e-6)


def test_pool_ceil_mode_on_symbolic_dim_that_may_drop_a_window() -> None:
    with pytest.raises(ValueError, match=r"max_pool2d: ceil_mode on the symbolic height h"):
        result_type([tt(DType.float32, 1, "h", 8, 3)],
                    lambda a: ops.max_pool2d(a, (2, 2), 2, padding=1, ceil_mode=True))
    # Kernel 3, stride 2, padding 1: the last window never starts in the padding.
    t = result_type([tt(DType.float32, 1, "h", 8, 3)],
                    lambda a: ops.max_pool2d(a, (3, 3), 2, padding=1, ceil_mode=True))
    assert str(t.shape[1]) == "h // 2 + 1"


def _conv_error(xs, ws, match, **kw) -> None:
    with pytest.raises(ValueError, match=match):
        result_type([tt(DType.float32, *xs), tt(DType.float32, *ws)],
                    lambda a, b: ops.conv2d(a, b, **kw))


def test_conv2d_errors() -> None:
    _conv_error((1, 8, 8, 4), (3, 3, 5, 8), r"conv2d: x shape \[1, 8, 8, 4\] has 4 input "
                r"channels, but filter shape \[3, 3, 5, 8\] with groups=1 expects 5")
    _conv_error((1, 8, 8, 6), (3, 3, 2, 8), r"conv2d: groups=3 does not divide the 8 output",
                groups=3)
    _conv_error((1, 8, 8, 6), (3, 3, 2, 9), r"expects 2 \* 4 = 8", groups=4)
    _conv_error((1, 8, 8, 4), (3, 3, 4, 8), r"conv2d: padding \(1, -1, 0, 0\) must be "
                r"integers >= 0", padding=(1, -1, 0, 0))
    _conv_error((1, 8, 8, 4), (3, 3, 4, 8), r"conv2d: stride \(0, 1\) must be integers >= 1",
                stride=(0, 1))
    _conv_error((1, 8, 8, 4), (3, 3, 4, 8), r"conv2d: dilation \(1, 0\)", dilation=(1, 0))
    _conv_error((1, 2, 8, 4), (3, 3, 4, 8), r"conv2d: input shape \[1, 2, 8, 4\] with padding "
                r"\[0, 0, 0, 0\] is smaller in height than the filter")
    _conv_error((8, 8, 4), (3, 3, 4, 8), r"conv2d: x must have rank 4")
    _conv_error((1, 8, 8, 4), (3, 4, 8), r"conv2d: filter must have rank 4")
    _conv_error((1, 8, 8, "c"), (3, 3, 4, 8), r"conv2d: x shape \[1, 8, 8, c\] has c input")
    _conv_error((1, 8, 8, 4), (3, 3, 4, 8), r"conv2d: groups must be a positive int",
                groups=0)
    with pytest.raises(TypeError, match=r"conv2d: padding must be an int or a tuple of 4"):
        result_type([tt(DType.float32, 1, 8, 8, 4), tt(DType.float32, 3, 3, 4, 8)],
                    lambda a, b: ops.conv2d(a, b, padding=(1, 1)))
    with pytest.raises(ValueError, match=r"conv2d: bias must have shape \[8\]"):
        result_type([tt(DType.float32, 1, 8, 8, 4), tt(DType.float32, 3, 3, 4, 8),
                     tt(DType.float32, 4)], lambda a, b, c: ops.conv2d(a, b, bias=c))
    with pytest.raises(ValueError, match=r"conv2d: x must have a floating-point dtype"):
        result_type([tt(DType.int32, 1, 8, 8, 4), tt(DType.int32, 3, 3, 4, 8)], ops.conv2d)
    with pytest.raises(ValueError, match=r"conv2d: filter dtype float64 differs"):
        result_type([tt(DType.float32, 1, 8, 8, 4), tt(DType.float64, 3, 3, 4, 8)],
                    ops.conv2d)


def test_pool_errors() -> None:
    x = [tt(DType.float32, 1, 8, 8, 3)]
    cases = [
        (lambda a: ops.max_pool2d(a, (3, 3), padding=2),
         r"max_pool2d: padding 2 in height must be at most half the window"),
        (lambda a: ops.avg_pool2d(a, (2, 2), stride=(1, 0)),
         r"avg_pool2d: stride \(1, 0\) must be integers >= 1"),
        (lambda a: ops.max_pool2d(a, (9, 2)),
         r"max_pool2d: input shape \[1, 8, 8, 3\] with padding \[0, 0, 0, 0\] is smaller in "
         r"height than the kernel"),
        (lambda a: ops.avg_pool2d(a, (0, 2)), r"avg_pool2d: kernel_size \(0, 2\) must be"),
    ]
    for fn, match in cases:
        with pytest.raises(ValueError, match=match):
            result_type(x, fn)
    with pytest.raises(ValueError, match=r"max_pool2d: input must have rank 4"):
        result_type([tt(DType.float32, 8, 8, 3)], lambda a: ops.max_pool2d(a, (2, 2)))
    with pytest.raises(ValueError, match=r"avg_pool2d: input must have a floating-point"):
        result_type([tt(DType.int64, 1, 8, 8, 3)], lambda a: ops.avg_pool2d(a, (2, 2)))


def _torch_conv_transpose(x: np.ndarray, w: np.ndarray, stride: Any, dilation: Any,
                          padding: Any, bias: np.ndarray | None = None) -> np.ndarray:
    wt = torch.from_numpy(w.astype(np.float64)).permute(3, 2, 0, 1)  # RSFC -> CFRS
    b = None if bias is None else torch.from_numpy(bias.astype(np.float64))
    y = F.conv_transpose2d(_nchw(x.astype(np.float64)), wt, b, stride=stride, dilation=dilation)
    pt, pb, pl, pr = padding
    return _nhwc(y[:, :, pt: y.shape[2] - pb, pl: y.shape[3] - pr])


# x shape, filter shape (R, S, F, C), stride, dilation, padding
TRANSPOSE_CASES = [
    ((1, 5, 5, 4), (3, 3, 6, 4), (1, 1), (1, 1), (0, 0, 0, 0)),
    ((2, 4, 6, 3), (3, 3, 5, 3), (2, 2), (1, 1), (1, 1, 1, 1)),
    ((1, 4, 3, 2), (2, 3, 4, 2), (3, 2), (2, 1), (0, 2, 1, 0)),
    ((1, 6, 6, 8), (2, 2, 3, 8), (2, 2), (1, 1), (2, 1, 3, 2)),  # paddings crop the conv
    ((1, 14, 14, 32), (4, 4, 64, 32), (2, 2), (1, 1), (1, 1, 1, 1)),  # scheduled conv
    # Kernel = stride, no padding: windows that do not overlap, one matmul.
    ((2, 7, 5, 8), (2, 2, 6, 8), (2, 2), (1, 1), (0, 0, 0, 0)),
    ((1, 3, 4, 5), (3, 2, 4, 5), (3, 2), (1, 1), (0, 0, 0, 0)),
    ((1, 28, 28, 64), (2, 2, 64, 64), (2, 2), (1, 1), (0, 0, 0, 0)),
    ((1, 4, 4, 3), (1, 1, 7, 3), (1, 1), (1, 1), (0, 0, 0, 0)),
]


@pytest.mark.parametrize(("xs", "ws", "stride", "dilation", "padding"), TRANSPOSE_CASES)
def test_conv2d_transpose_matches_torch(xs, ws, stride, dilation, padding) -> None:
    x, w = _f32(*xs), _f32(*ws)
    got = _run([tt(DType.float32, *xs), tt(DType.float32, *ws)],
               lambda a, b: ops.conv2d_transpose(a, b, stride, dilation, padding), x, w)
    want = _torch_conv_transpose(x, w, stride, dilation, padding)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_conv2d_transpose_without_overlap_is_a_scheduled_matmul() -> None:
    """2x2 / stride 2 (a decoder's upsampling): a matmul and a copy putting the blocks in
    place, both scheduled; a bias after it too."""
    types = [tt(DType.float32, 1, 28, 28, 64), tt(DType.float32, 2, 2, 32, 64),
             tt(DType.float32, 32)]
    fn = lambda a, b, c: ops.conv2d_transpose(a, b, 2, 1, 0, bias=c)  # noqa: E731
    model = shared_session().load(Graph("convt_blocks", fn, input_types=types))
    assert model._record.fallbacks == ()
    x, w, b = _f32(1, 28, 28, 64), _f32(2, 2, 32, 64), _f32(32)
    np.testing.assert_allclose(model.execute(x, w, b)[0].to_numpy(),
                               _torch_conv_transpose(x, w, 2, 1, (0, 0, 0, 0), b),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("xs", "ws", "stride", "dilation", "padding"), [
    ((1, 16, 16, 32), (4, 4, 16, 32), (2, 2), (1, 1), (1, 1, 1, 1)),  # DCGAN's upsampling
    ((2, 7, 9, 8), (3, 3, 5, 8), (2, 2), (1, 1), (1, 0, 0, 1)),
    ((1, 5, 6, 4), (5, 3, 6, 4), (3, 2), (2, 1), (2, 0, 1, 3)),
    ((1, 9, 9, 3), (2, 5, 2, 3), (3, 3), (1, 1), (0, 0, 0, 0)),  # gaps between the taps
])
def test_strided_conv2d_transpose_adds_each_taps_block(xs, ws, stride, dilation,
                                                       padding) -> None:
    """Strides above 1 (but kernel = stride with no padding): one matmul of every pixel by
    every tap, each tap's values added into its strided window, the paddings cropped; all
    scheduled."""
    x, w = _f32(*xs), _f32(*ws)
    fn = lambda a, b: ops.conv2d_transpose(a, b, stride, dilation, padding)  # noqa: E731
    types = [tt(DType.float32, *xs), tt(DType.float32, *ws)]
    model = shared_session().load(Graph(f"convt_col2im_{xs[1]}_{ws[0]}_{ws[1]}", fn,
                                        input_types=types))
    assert model._record.fallbacks == ()
    np.testing.assert_allclose(model.execute(x, w)[0].to_numpy(),
                               _torch_conv_transpose(x, w, stride, dilation, padding),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("constant_filter", [False, True])
@pytest.mark.parametrize(("xs", "ws", "dilation", "padding"), [
    ((1, 28, 28, 64), (3, 3, 64, 64), (1, 1), (1, 1, 1, 1)),  # a decoder's stride-1 layer
    ((2, 9, 7, 5), (2, 3, 6, 5), (2, 1), (0, 1, 2, 0)),
])
def test_stride_1_conv2d_transpose_flips_its_filter_in_vector_code(
        xs, ws, dilation, padding, constant_filter: bool) -> None:
    """Stride 1: a conv by the flipped filter, whose flip (a transpose, then each tap's block
    copied to its mirror) is scheduled like the conv."""
    x, w = _f32(*xs), _f32(*ws)
    if constant_filter:
        fn = lambda a: ops.conv2d_transpose(  # noqa: E731
            a, ops.constant(w, DType.float32, DeviceRef.CPU()), 1, dilation, padding)
        types, args = [tt(DType.float32, *xs)], (x,)
    else:
        fn = lambda a, b: ops.conv2d_transpose(a, b, 1, dilation, padding)  # noqa: E731
        types, args = [tt(DType.float32, *xs), tt(DType.float32, *ws)], (x, w)
    model = shared_session().load(Graph(f"convt_s1_{xs[1]}_{int(constant_filter)}", fn,
                                        input_types=types))
    assert model._record.fallbacks == ()
    np.testing.assert_allclose(model.execute(*args)[0].to_numpy(),
                               _torch_conv_transpose(x, w, 1, dilation, padding),
                               rtol=1e-4, atol=1e-4)


def test_conv2d_transpose_symbolic_dims_and_bias() -> None:
    types = [tt(DType.float32, "n", "h", "w", 3), tt(DType.float32, 3, 3, 4, 3),
             tt(DType.float32, 4)]
    fn = lambda a, b, c: ops.conv2d_transpose(a, b, 2, 1, (1, 0, 2, 1), bias=c)  # noqa: E731
    assert [str(d) for d in result_type(types, fn).shape] == ["n", "h * 2", "w * 2 - 2", "4"]
    model = shared_session().load(Graph("convt_sym", fn, input_types=types))
    w, b = _f32(3, 3, 4, 3), _f32(4)
    for xs in ((1, 3, 4, 3), (2, 5, 2, 3)):
        x = _f32(*xs)
        np.testing.assert_allclose(model.execute(x, w, b)[0].to_numpy(),
                                   _torch_conv_transpose(x, w, 2, 1, (1, 0, 2, 1), b),
                                   rtol=1e-4, atol=1e-4)


def test_conv2d_transpose_errors() -> None:
    x, w = tt(DType.float32, 1, 4, 4, 3), tt(DType.float32, 3, 3, 5, 3)
    with pytest.raises(ValueError, match=r"conv2d_transpose: x shape \[1, 4, 4, 3\] has 3 input "
                       r"channels, but filter shape \[3, 3, 3, 5\] expects 5"):
        result_type([x, tt(DType.float32, 3, 3, 3, 5)], ops.conv2d_transpose)
    with pytest.raises(ValueError, match=r"conv2d_transpose: output_paddings \(1, 0\) is not "
                       r"supported"):
        result_type([x, w], lambda a, b: ops.conv2d_transpose(a, b, 2, output_paddings=(1, 0)))
    with pytest.raises(ValueError, match=r"conv2d_transpose: paddings 4 \+ 3 leave no output "
                       r"height"):
        result_type([x, w], lambda a, b: ops.conv2d_transpose(a, b, padding=(4, 3, 0, 0)))
    with pytest.raises(ValueError, match=r"conv2d_transpose: stride \(0, 1\) must be"):
        result_type([x, w], lambda a, b: ops.conv2d_transpose(a, b, (0, 1)))


def _torch_conv3d(x: np.ndarray, w: np.ndarray, stride: Any, dilation: Any, padding: Any,
                  groups: int) -> np.ndarray:
    xp = F.pad(torch.from_numpy(x.astype(np.float64)).permute(0, 4, 1, 2, 3),
               (padding[4], padding[5], padding[2], padding[3], padding[0], padding[1]))
    wt = torch.from_numpy(w.astype(np.float64)).permute(4, 3, 0, 1, 2)  # QRSCF -> FCQRS
    y = F.conv3d(xp, wt, stride=stride, dilation=dilation, groups=groups)
    return y.permute(0, 2, 3, 4, 1).contiguous().numpy()


# x shape (NDHWC), filter shape (QRSCF), stride, dilation, padding, groups
CONV3D_CASES = [
    ((1, 4, 5, 6, 3), (2, 3, 3, 3, 4), (1, 1, 1), (1, 1, 1), (0, 0, 0, 0, 0, 0), 1),
    ((2, 7, 6, 5, 4), (3, 2, 3, 4, 5), (2, 1, 2), (1, 2, 1), (1, 2, 0, 1, 1, 0), 1),
    ((1, 5, 8, 8, 16), (3, 3, 3, 16, 64), (1, 1, 1), (1, 1, 1), (1, 1, 1, 1, 1, 1), 1),
    ((1, 4, 6, 6, 8), (3, 3, 3, 1, 8), (1, 1, 1), (1, 1, 1), (1, 1, 1, 1, 1, 1), 8),
    ((1, 4, 5, 5, 6), (2, 2, 2, 2, 9), (2, 1, 1), (1, 1, 2), (0, 1, 1, 0, 2, 2), 3),
]


@pytest.mark.parametrize(("xs", "ws", "stride", "dilation", "padding", "groups"), CONV3D_CASES)
def test_conv3d_matches_torch(xs, ws, stride, dilation, padding, groups) -> None:
    x, w = _f32(*xs), _f32(*ws)
    got = _run([tt(DType.float32, *xs), tt(DType.float32, *ws)],
               lambda a, b: ops.conv3d(a, b, stride, dilation, padding, groups), x, w)
    want = _torch_conv3d(x, w, stride, dilation, padding, groups)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_conv3d_symbolic_dims_and_bias() -> None:
    types = [tt(DType.float32, "n", "d", 6, "w", 3), tt(DType.float32, 2, 3, 3, 3, 4),
             tt(DType.float32, 4)]
    fn = lambda a, b, c: ops.conv3d(a, b, (2, 1, 1), padding=(0, 1, 1, 1, 1, 1),  # noqa: E731
                                    bias=c)
    assert [str(d) for d in result_type(types, fn).shape] == ["n", "(d - 1) // 2 + 1", "6",
                                                             "w", "4"]
    model = shared_session().load(Graph("conv3d_sym", fn, input_types=types))
    w, b = _f32(2, 3, 3, 3, 4), _f32(4)
    for xs in ((1, 4, 6, 5, 3), (2, 5, 6, 3, 3)):
        x = _f32(*xs)
        want = _torch_conv3d(x, w, (2, 1, 1), 1, (0, 1, 1, 1, 1, 1), 1) + b
        np.testing.assert_allclose(model.execute(x, w, b)[0].to_numpy(), want, rtol=1e-4,
                                   atol=1e-4)


def test_conv3d_errors() -> None:
    x = tt(DType.float32, 1, 4, 4, 4, 6)
    with pytest.raises(ValueError, match=r"conv3d: x shape \[1, 4, 4, 4, 6\] has 6 input "
                       r"channels, but filter shape \[2, 2, 2, 4, 8\] with groups=1 expects 4"):
        result_type([x, tt(DType.float32, 2, 2, 2, 4, 8)], ops.conv3d)
    with pytest.raises(ValueError, match=r"conv3d: groups=2 does not divide the 5 output"):
        result_type([x, tt(DType.float32, 2, 2, 2, 3, 5)],
                    lambda a, b: ops.conv3d(a, b, groups=2))
    with pytest.raises(TypeError, match=r"conv3d: padding must be an int or a tuple of 6"):
        result_type([x, tt(DType.float32, 2, 2, 2, 6, 8)],
                    lambda a, b: ops.conv3d(a, b, padding=(1, 1, 1, 1)))
    with pytest.raises(ValueError, match=r"conv3d: the depth window \(kernel 5, dilation 1: 5 "
                       r"elements\) is larger than the padded input depth 4"):
        result_type([x, tt(DType.float32, 5, 2, 2, 6, 8)], ops.conv3d)
    with pytest.raises(ValueError, match=r"conv3d: x and filter must have rank 5"):
        result_type([tt(DType.float32, 1, 4, 4, 6), tt(DType.float32, 2, 2, 6, 8)], ops.conv3d)


# input shape, output_size, kernel, stride, dilation, padding
FOLD_CASES = [
    ((1, 2 * 2 * 2, 3 * 4), (4, 5), (2, 2), 1, 1, 0),
    ((2, 3 * 2 * 3, 5 * 3), (5, 6), (2, 3), (1, 2), (2, 1), 1),
    ((1, 4 * 3 * 3, 3 * 3), (5, 5), (3, 3), 2, 1, 1),  # windows overlap: values add up
    ((1, 1 * 2 * 2, 2 * 2), (7, 7), (2, 2), 3, 2, 0),  # gaps the blocks never reach stay 0
]


@pytest.mark.parametrize(("xs", "out", "k", "s", "d", "p"), FOLD_CASES)
def test_fold_matches_torch(xs, out, k, s, d, p) -> None:
    x = _f32(*xs)
    got = _run([tt(DType.float32, *xs)], lambda a: ops.fold(a, out, k, s, d, p), x)
    want = F.fold(torch.from_numpy(x), out, k, dilation=d, padding=p, stride=s).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_fold_symbolic_batch() -> None:
    fn = lambda a: ops.fold(a, (4, 5), (2, 2))  # noqa: E731
    model = shared_session().load(Graph("fold_sym", fn, input_types=[tt(DType.float32, "n", 12, 12)]))
    for n in (1, 3):
        x = _f32(n, 12, 12)
        np.testing.assert_allclose(model.execute(x)[0].to_numpy(),
                                   F.fold(torch.from_numpy(x), (4, 5), (2, 2)).numpy(),
                                   rtol=1e-5, atol=1e-5)


def test_fold_errors() -> None:
    with pytest.raises(ValueError, match=r"fold: input shape \[1, 8, 10\] must hold 3 \* 4 = 12 "
                       r"sliding blocks in dim 2 for output_size \(4, 5\)"):
        result_type([tt(DType.float32, 1, 8, 10)], lambda a: ops.fold(a, (4, 5), (2, 2)))
    with pytest.raises(ValueError, match=r"fold: dim 1 of input shape \[1, 6, 12\] must be C \* "
                       r"2 \* 2"):
        result_type([tt(DType.float32, 1, 6, 12)], lambda a: ops.fold(a, (4, 5), (2, 2)))
    with pytest.raises(ValueError, match=r"fold: input must have rank 3"):
        result_type([tt(DType.float32, 8, 12)], lambda a: ops.fold(a, (4, 5), (2, 2)))
    with pytest.raises(ValueError, match=r"fold: stride \(0, 1\) must be integers >= 1"):
        result_type([tt(DType.float32, 1, 8, 12)], lambda a: ops.fold(a, (4, 5), (2, 2), (0, 1)))
    with pytest.raises(ValueError, match=r"fold: output_size must be a tuple of two static ints"):
        result_type([tt(DType.float32, 1, 8, 12)], lambda a: ops.fold(a, ("h", 5), (2, 2)))


@pytest.mark.parametrize("module", ["max.graph.ops.conv", "max.graph.ops.pooling"])
def test_docstring_examples_run(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0 and result.attempted > 0
