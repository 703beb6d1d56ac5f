"""The numbers of every NVIDIA schedule, barriers and warp shuffles included, from the SIMT
interpreter (``simt.py``: each GPU thread a Python generator) against numpy. No GPU needed;
small shapes, since the interpreter runs Python per op per thread."""

from __future__ import annotations

import numpy as np
import pytest
from gpu_helpers import gpu_graph
from simt import run_graph

from max.dtype import DType
from max.graph import ops

F32, I32 = DType.float32, DType.int32
rng = np.random.default_rng(11)
pytestmark = pytest.mark.usefixtures("schedule_debug")


def _f32(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("name", ["sum", "max", "min", "mean"])
def test_row_reductions(name: str) -> None:
    x = _f32(3, 1000)
    fn = {"sum": lambda a: ops.sum(a * a, axis=-1), "max": lambda a: ops.max(a, axis=-1),
          "min": lambda a: ops.min(a, axis=-1), "mean": lambda a: ops.mean(a, axis=-1)}[name]
    want = {"sum": (x * x).sum(-1), "max": x.max(-1), "min": x.min(-1),
            "mean": x.mean(-1)}[name]
    (out,) = run_graph(gpu_graph(fn, [(F32, x.shape)]), [x], [((3, 1), np.float32)])
    np.testing.assert_allclose(out[:, 0], want, rtol=1e-5, atol=1e-6)


def test_short_rows_and_three_dims() -> None:
    x = _f32(2, 3, 40)  # 40: scalar lanes, 64 threads of which 24 idle
    (out,) = run_graph(gpu_graph(lambda a: ops.sum(a, axis=-1), [(F32, x.shape)]), [x],
                       [((2, 3, 1), np.float32)])
    np.testing.assert_allclose(out, x.sum(-1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_integer_row_sum() -> None:
    x = rng.integers(-1000, 1000, (2, 300), np.int32)
    (out,) = run_graph(gpu_graph(lambda a: ops.sum(a, axis=-1), [(I32, x.shape)]), [x],
                       [((2, 1), np.int32)])
    np.testing.assert_array_equal(out, x.sum(-1, keepdims=True))


@pytest.mark.parametrize("n", [1000, 9000])  # the exp row in shared memory / global memory
def test_softmax(n: int) -> None:
    x = _f32(2, n) * 3
    (out,) = run_graph(gpu_graph(lambda a: ops.softmax(a), [(F32, x.shape)]), [x],
                       [(x.shape, np.float32)])
    e = np.exp(x - x.max(-1, keepdims=True))
    np.testing.assert_allclose(out, e / e.sum(-1, keepdims=True), rtol=2e-5, atol=1e-7)


def test_layer_norm() -> None:
    x, g, b = _f32(3, 256) * 2 + 1, _f32(256), _f32(256)
    (out,) = run_graph(gpu_graph(lambda a, gg, bb: ops.layer_norm(a, gg, bb, 1e-5),
                                 [(F32, x.shape), (F32, g.shape), (F32, b.shape)]),
                       [x, g, b], [(x.shape, np.float32)])
    mu = x.mean(-1, keepdims=True)
    want = (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5) * g + b
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("m", "k", "n"), [(5, 32, 64), (70, 16, 128)])
def test_tiled_matmul(m: int, k: int, n: int) -> None:
    x, w = _f32(m, k), _f32(k, n)
    (out,) = run_graph(gpu_graph(lambda a, b: a @ b, [(F32, x.shape), (F32, w.shape)]),
                       [x, w], [((m, n), np.float32)])
    np.testing.assert_allclose(out, x @ w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch", [0, 2])
def test_batched_matmul(batch: int) -> None:
    """One grid layer per matrix (a symbolic batch: at least one layer, none past it
    writes); rows past M guarded in each."""
    from max.graph import DeviceRef, Dim, Graph, TensorType

    a, b = _f32(batch, 70, 16), _f32(batch, 16, 64)
    graph = Graph("bmm", lambda x, y: x @ y, input_types=[
        TensorType(F32, (Dim("h"), Dim("s"), 16), DeviceRef.GPU()),
        TensorType(F32, (Dim("h"), 16, 64), DeviceRef.GPU())])
    (out,) = run_graph(graph, [a, b], [((batch, 70, 64), np.float32)])
    np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("batch", "n"), [(3, 32), (None, 96)])
def test_narrow_tiles_for_n_a_multiple_of_32(batch: int | None, n: int) -> None:
    """N a multiple of 32, not of 64 (an attention's p @ v over 32-wide heads; N = 96):
    64 x 32 tiles, 4 x 2 outputs a thread."""
    lead = () if batch is None else (batch,)
    a, b = _f32(*lead, 70, 32), _f32(*lead, 32, n)
    (out,) = run_graph(gpu_graph(lambda x, y: x @ y, [(F32, a.shape), (F32, b.shape)]),
                       [a, b], [((*lead, 70, n), np.float32)])
    np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("m", "k", "n", "symbolic"), [(5, 13, 7, False), (3, 21, 37, True),
                                                       (66, 16, 100, False)])
def test_matmul_edges(m: int, k: int, n: int, symbolic: bool) -> None:
    """K not a multiple of 16, N not of 32, or both symbolic: guarded scalar accesses, zeros
    read past the ends, nothing written past them (the output starts as 7s)."""
    from max.graph import DeviceRef, Dim, Graph, TensorType

    a, b = _f32(2, m, k), _f32(2, k, n)
    dims = ((Dim("h"), Dim("s"), Dim("k")), (Dim("h"), Dim("k"), Dim("n"))) if symbolic \
        else (a.shape, b.shape)
    graph = Graph("edges", lambda x, y: x @ y, input_types=[
        TensorType(F32, d, DeviceRef.GPU()) for d in dims])
    (out,) = run_graph(graph, [a, b], [((2, m, n), np.float32)])
    np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("a_shape", "b_shape"), [((70, 32), (32, 64)),
                                                  ((2, 5, 16), (2, 16, 64))])
def test_half_matmul_on_tensor_cores(a_shape: tuple, b_shape: tuple) -> None:
    """f16 matmuls through mma.sync (its warp-wide fragment exchange interpreted by the
    PTX ISA's m16n8k16 layout), rows past M guarded, a batch a grid layer; the f32 sums
    rounded once to the f16 result."""
    a = rng.standard_normal(a_shape).astype(np.float16)
    b = rng.standard_normal(b_shape).astype(np.float16)
    (out,) = run_graph(gpu_graph(lambda x, y: x @ y, [(DType.float16, a_shape),
                                                      (DType.float16, b_shape)]),
                       [a, b], [((*a_shape[:-1], b_shape[-1]), np.float16)])
    want = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(out.astype(np.float64), want, rtol=2 ** -10, atol=2 ** -10)


def test_argmax() -> None:
    x = _f32(4, 128)
    x[1, 7] = x[1, 90] = 50.0  # ties: the first index
    (out,) = run_graph(gpu_graph(lambda a: ops.argmax(a, axis=-1), [(F32, x.shape)]), [x],
                       [((4, 1), np.int64)])
    np.testing.assert_array_equal(out[:, 0], x.argmax(-1))


@pytest.mark.parametrize("dtype", [DType.int64, DType.float64])
def test_64_bit_row_sums(dtype: DType) -> None:
    """64-bit accumulators exchanged as two 32-bit halves: values past 2^32 (i64) and sums
    that need f64's precision."""
    if dtype == DType.int64:
        x = rng.integers(-(1 << 40), 1 << 40, (3, 300), np.int64)
    else:
        x = rng.standard_normal((3, 300)) * 1e10 + 1e-3
    (out,) = run_graph(gpu_graph(lambda a: ops.sum(a, axis=-1), [(dtype, x.shape)]), [x],
                       [((3, 1), x.dtype)])
    if dtype == DType.int64:
        np.testing.assert_array_equal(out[:, 0], x.sum(-1))
    else:
        np.testing.assert_allclose(out[:, 0], x.sum(-1), rtol=1e-12)


@pytest.mark.parametrize(("stride", "groups"), [(1, 1), (2, 1), (1, 4)])
def test_convolutions_run_as_plain_kernels(stride: int, groups: int) -> None:
    """Convolutions (NHWC, RSCF filters, padding 1; strided; depthwise): the plain kernel
    reads the window at its affine indices (oh * stride + kh), against a direct numpy
    convolution."""
    x, w = _f32(1, 7, 6, 4), _f32(3, 3, 4 // groups, 4) * 0.5
    (out,) = run_graph(gpu_graph(lambda a, b: ops.conv2d(a, b, stride=(stride, stride),
                                                         padding=(1, 1, 1, 1), groups=groups),
                                 [(F32, x.shape), (F32, w.shape)]),
                       [x, w], [((1, (7 + 2 - 3) // stride + 1, (6 + 2 - 3) // stride + 1, 4),
                                 np.float32)])
    padded = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    want = np.zeros(out.shape)
    per = 4 // groups
    for oh in range(out.shape[1]):
        for ow in range(out.shape[2]):
            window = padded[0, oh * stride:oh * stride + 3, ow * stride:ow * stride + 3]
            for f in range(4):
                g = f // per  # the filter's group: its input channels
                want[0, oh, ow, f] = (window[:, :, g * per:(g + 1) * per] * w[:, :, :, f]).sum()
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_elementwise_with_a_bias() -> None:
    x, y = _f32(8, 256), _f32(256)
    (out,) = run_graph(gpu_graph(lambda a, b: ops.gelu(a + b), [(F32, x.shape),
                                                                 (F32, y.shape)]),
                       [x, y], [(x.shape, np.float32)])
    import math

    z = (x + y).astype(np.float64)
    want = 0.5 * z * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)


def test_transfers_inside_one_graph() -> None:
    """A graph of host inputs and outputs that moves its work to the GPU with ``transfer_to``
    (and back): every kernel runs on the device, the numbers are the host graph's."""
    from max.graph import DeviceRef, Graph, TensorType

    x = _f32(3, 200)

    def fn(a):
        on_gpu = ops.softmax(ops.transfer_to(a, DeviceRef.GPU()) * 2)
        return ops.transfer_to(on_gpu, DeviceRef.CPU()) + 1

    graph = Graph("moved", fn, input_types=[TensorType(F32, x.shape, DeviceRef.CPU())])
    (out,) = run_graph(graph, [x], [(x.shape, np.float32)])
    e = np.exp(2 * x - (2 * x).max(-1, keepdims=True))
    np.testing.assert_allclose(out, e / e.sum(-1, keepdims=True) + 1, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("rows", [0, 2])
def test_symbolic_sizes(rows: int) -> None:
    """Graphs over symbolic dims: every schedule reads its sizes at run time (no rows: no
    writes, and no launch of zero blocks)."""
    from max.graph import DeviceRef, Dim, Graph, TensorType

    gpu = DeviceRef.GPU()

    def run(fn, types, inputs, out_shape):
        graph = Graph("sym", fn, input_types=types)
        return run_graph(graph, inputs, [(out_shape, np.float32)])[0]

    x, y = _f32(rows, 300), _f32(rows, 300)
    b = Dim("b")
    row = TensorType(F32, (b, 300), gpu)
    np.testing.assert_array_equal(run(lambda p, q: p * q + 1, [row, row], [x, y], x.shape),
                                  x * y + 1)
    e = np.exp(x - x.max(-1, keepdims=True)) if rows else x
    want = e / e.sum(-1, keepdims=True) if rows else x
    np.testing.assert_allclose(run(ops.softmax, [row], [x], x.shape), want, rtol=2e-5,
                               atol=1e-7)
    a, w = _f32(rows * 32 + 1, 32), _f32(32, 64)  # M past one 64-row tile
    np.testing.assert_allclose(run(lambda p, q: p @ q, [TensorType(F32, (Dim("m"), 32), gpu),
                                                        TensorType(F32, (32, 64), gpu)],
                                   [a, w], (a.shape[0], 64)), a @ w, rtol=1e-5, atol=1e-5)
    z = _f32(rows + 1, 77)  # a symbolic row length: scalar lanes, a loop to the run-time n
    np.testing.assert_allclose(run(lambda p: ops.sum(p, axis=-1),
                                   [TensorType(F32, (b, Dim("n")), gpu)], [z],
                                   (rows + 1, 1))[:, 0], z.sum(-1), rtol=1e-5, atol=1e-5)
    t = _f32(rows + 2, 5)  # a reduction over the rows: the plain kernel, symbolic loops
    np.testing.assert_allclose(run(lambda p: ops.sum(p, axis=0),
                                   [TensorType(F32, (b, Dim("n")), gpu)], [t], (1, 5))[0],
                               t.sum(0), rtol=1e-5, atol=1e-5)


def test_gather_and_its_index_check() -> None:
    """A gather's table read inside the kernel, and its runtime check written into the
    checks buffer by a kernel (the flag reduced on the device, never read by the host)."""
    from max.graph import DeviceRef, Dim, Graph, TensorType

    x = _f32(100, 64)
    graph = Graph("ga", lambda a, i: ops.gather(a, i, axis=0), input_types=[
        TensorType(F32, x.shape, DeviceRef.GPU()),
        TensorType(DType.int64, (Dim("n"),), DeviceRef.GPU())])
    idx = np.array([3, 99, -1, 0], np.int64)
    out, flags = run_graph(graph, [x, idx], [((4, 64), np.float32), ((1,), np.int8)])
    np.testing.assert_array_equal(flags, [0])
    np.testing.assert_array_equal(out, x[idx % 100])
    _, flags = run_graph(graph, [x, np.array([3, 100], np.int64)],
                         [((2, 64), np.float32), ((1,), np.int8)])
    np.testing.assert_array_equal(flags, [1])


def test_a_small_encoder_over_symbolic_sizes() -> None:
    """A BERT-shaped graph (token and position embeddings gathered, layer norm, attention
    with two heads, a GELU MLP) over symbolic batch and sequence: the numbers of every
    kernel against numpy, and the three index checks (range, two gathers) all clear."""
    import math

    from max.graph import DeviceRef, Dim, Graph, TensorType

    gpu = DeviceRef.GPU()
    vocab, hidden, heads, ffn = 30, 16, 2, 32
    hd = hidden // heads
    p = {k: _f32(*s) * 0.3 for k, s in dict(
        emb=(vocab, hidden), pos=(8, hidden), wqkv=(hidden, 3 * hidden), wo=(hidden, hidden),
        w1=(hidden, ffn), w2=(ffn, hidden), g=(hidden,), b=(hidden,)).items()}

    def c(a):
        return ops.constant(a, F32, gpu)

    def forward(ids):
        b, s = ids.shape
        x = ops.gather(c(p["emb"]), ids, axis=0) + ops.gather(
            c(p["pos"]), ops.range(0, s, 1, dtype=DType.int64, device=gpu), axis=0)
        x = ops.layer_norm(x, c(p["g"]), c(p["b"]), 1e-5)
        q, k, v = ops.split(x @ c(p["wqkv"]), [hidden] * 3, axis=-1)

        def split_heads(t):
            return ops.permute(ops.reshape(t, [b, s, heads, hd]), [0, 2, 1, 3])

        att = ops.softmax(split_heads(q) @ ops.permute(split_heads(k), [0, 1, 3, 2])
                          * (1 / math.sqrt(hd)))
        o = ops.reshape(ops.permute(att @ split_heads(v), [0, 2, 1, 3]), [b, s, hidden])
        h = x + o @ c(p["wo"])
        return h + ops.gelu(h @ c(p["w1"])) @ c(p["w2"])

    graph = Graph("encoder", forward, input_types=[
        TensorType(DType.int64, (Dim("batch"), Dim("seq")), gpu)])
    ids = rng.integers(0, vocab, (2, 5)).astype(np.int64)
    out, flags = run_graph(graph, [ids], [((2, 5, hidden), np.float32), ((3,), np.int8)])
    np.testing.assert_array_equal(flags, [0, 0, 0])

    x = p["emb"][ids] + p["pos"][:5]
    mu = x.mean(-1, keepdims=True)
    x = (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5) * p["g"] + p["b"]
    q, k, v = (t.reshape(2, 5, heads, hd).transpose(0, 2, 1, 3)
               for t in np.split(x @ p["wqkv"], 3, -1))
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd)
    e = np.exp(scores - scores.max(-1, keepdims=True))
    o = (e / e.sum(-1, keepdims=True) @ v).transpose(0, 2, 1, 3).reshape(2, 5, hidden)
    h = x + o @ p["wo"]
    z = (h @ p["w1"]).astype(np.float64)
    want = h + 0.5 * z * (1 + np.vectorize(math.erf)(z / math.sqrt(2))) @ p["w2"]
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)
