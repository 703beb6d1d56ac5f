"""The peers: the same workloads in PyTorch (eager), ONNX Runtime and JAX (``jax.jit``).

Each peer maps a workload key (``benchmarks/graphs.py``) to a builder taking the
:class:`~benchmarks.graphs.BenchGraph` and returning a :class:`Run`, or lacks the key (the
table prints ``-``). A peer that is not installed is skipped the same way. Inputs are
converted to the peer's types and layouts (NCHW for PyTorch and ONNX convolutions) before
timing (PyTorch's are NCHW tensors in channels_last memory, its fast CPU layout);
``Run.fetch`` turns a result back into the reference layout, outside the timed call.
The ONNX graphs are written with ``onnx.helper`` (no exporter).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from benchmarks.graphs import (
    GPTQ_GROUP, GPTQ_K, GPTQ_N, HEAD_DIM, HEADS, HIDDEN, LN_EPS, SEQ, BenchGraph, gptq_unpack,
)


@dataclass(frozen=True)
class Run:
    """A prepared engine call: ``call()`` is timed; ``fetch(call())`` is the output as numpy,
    in the reference's layout; ``prepare()``, where given, runs before each sample, untimed."""

    call: Callable[[], object]
    fetch: Callable[[object], np.ndarray] = np.asarray
    prepare: Callable[[], None] | None = None


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _nchw(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def _fcrs(w: np.ndarray) -> np.ndarray:  # RSCF -> PyTorch's / ONNX's filter layout
    return np.ascontiguousarray(w.transpose(3, 2, 0, 1))


def _nhwc(a: np.ndarray) -> np.ndarray:
    return np.asarray(a).transpose(0, 2, 3, 1)


# --- PyTorch (eager) --------------------------------------------------------------------------

def _torch_fns() -> dict[str, Callable]:
    """key -> fn(xs, p) on torch tensors (``p``: the params, with conv filters as FCRS)."""
    import torch
    import torch.nn.functional as F

    def encoder(xs, p):
        x = xs[0]
        qkv = F.linear(x, p["w_qkv"].T, p["b_qkv"])
        q, k, v = (t.view(1, SEQ, HEADS, HEAD_DIM).transpose(1, 2) for t in qkv.split(HIDDEN, -1))
        ctx = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(1, SEQ, HIDDEN)
        h = F.layer_norm(F.linear(ctx, p["w_o"].T, p["b_o"]) + x, (HIDDEN,), p["g1"], p["be1"],
                         LN_EPS)
        f = F.linear(F.gelu(F.linear(h, p["w_1"].T, p["b_1"])), p["w_2"].T, p["b_2"])
        return F.layer_norm(f + h, (HIDDEN,), p["g2"], p["be2"], LN_EPS)

    def q4_0(xs, p):
        # The dequantization of GGUF Q4_0 blocks (f16 scale + 16 bytes of nibbles) in torch ops.
        x, blocks = xs[0], xs[1].reshape(4096, -1, 18)
        d = blocks[..., :2].contiguous().view(torch.float16).float()
        q = ((blocks[..., 2:].unsqueeze(2) >> p["shifts"]) & 15).reshape(4096, -1, 32)
        return x @ (d * (q.to(torch.int8) - 8).float()).reshape(4096, 4096).T

    def gptq(xs, p):
        q = ((p["words"].unsqueeze(1) >> p["shifts"]) & 15).reshape(GPTQ_K, GPTQ_N)[p["rows"]]
        return xs[0] @ (p["scales"].repeat_interleave(GPTQ_GROUP, 0) * (q.float() - 8))

    def matmul(xs, p):
        return xs[0] @ xs[1]

    return {
        "matmul": matmul, "attn_qk": matmul, "attn_pv": matmul,
        "mlp": lambda xs, p: F.gelu(xs[0] @ p["w1"]) @ p["w2"],
        "chain": lambda xs, p: torch.relu(xs[0] * xs[1] + xs[2]) * 0.5,
        "softmax": lambda xs, p: torch.softmax(xs[0], -1),
        "layer_norm": lambda xs, p: F.layer_norm(xs[0], (4096,), p["gamma"], p["beta"], 1e-5),
        "linear": lambda xs, p: F.linear(xs[0], p["w"].T, p["b"]),
        "linear_gelu": lambda xs, p: F.gelu(F.linear(xs[0], p["w"].T, p["b"])),
        "encoder": encoder,
        "conv2d": lambda xs, p: F.conv2d(xs[0], p["w"], padding=1),
        "dwsep": lambda xs, p: F.conv2d(F.conv2d(xs[0], p["dw"], padding=1, groups=64), p["pw"]),
        "q4_0_1": q4_0, "q4_0_32": q4_0,
        "gptq_g128_1": gptq, "gptq_g128_32": gptq, "gptq_act_32": gptq,
        "stack64": lambda xs, p: torch.stack(xs),
        "concat32": lambda xs, p: torch.cat(xs),
        "tiny": lambda xs, p: xs[0] + 1,
    }


def torch_run(bg: BenchGraph) -> Run | None:
    import torch

    fn = _torch_fns().get(bg.key)
    if bg.key.startswith("minilm"):  # the example's forward in torch ops, same state dict
        from examples.minilm import torch_forward

        from max.pipelines.architectures.bert import BertConfig, minilm_path

        config = BertConfig.from_model_dir(minilm_path())
        fn = lambda xs, p: torch_forward(p, config, *xs)  # noqa: E731
    if fn is None:
        return None
    conv = bg.key in ("conv2d", "dwsep")
    xs = [torch.from_numpy(a) for a in bg.inputs]
    # Copies where the arrays are read-only (a mapped checkpoint): torch warns on those.
    p = {k: torch.from_numpy(v if v.flags.writeable else np.array(v)) for k, v in bg.params.items()}
    if conv:  # NCHW tensors in channels_last memory (the NHWC bytes): oneDNN's fast layout
        xs = [t.permute(0, 3, 1, 2) for t in xs]
        p = {k: t.permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)
             for k, t in p.items()}
    if bg.key.startswith("q4_0"):
        p["shifts"] = torch.tensor([0, 4], dtype=torch.uint8).reshape(1, 1, 2, 1)
    if bg.key.startswith("gptq"):
        words, scales = gptq_unpack(bg.inputs[1])
        p.update(words=torch.from_numpy(words.view(np.int32)),
                 scales=torch.from_numpy(scales.astype(np.float32)),
                 rows=torch.from_numpy(bg.inputs[2] if len(bg.inputs) > 2 else np.arange(GPTQ_K)),
                 shifts=torch.arange(0, 32, 4, dtype=torch.int32).reshape(1, 8, 1))
    fetch = (lambda t: t.permute(0, 2, 3, 1).numpy()) if conv else (lambda t: t.numpy())
    return Run(lambda: fn(xs, p), fetch)


# --- ONNX Runtime -----------------------------------------------------------------------------

class _OnnxBuilder:
    """A few lines per ONNX graph: ``op`` adds a node and returns its output's name."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []
        self.count = 0

    def const(self, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.count += 1
        name = f"c{self.count}"
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, kind: str, *inputs: str, **attrs) -> str:
        from onnx import helper

        self.count += 1
        out = f"t{self.count}"
        self.nodes.append(helper.make_node(kind, list(inputs), [out], **attrs))
        return out

    def split(self, value: str, parts: int, axis: int) -> list[str]:
        from onnx import helper

        outs = [f"s{self.count}_{i}" for i in range(parts)]
        self.count += 1
        self.nodes.append(helper.make_node("Split", [value], outs, axis=axis, num_outputs=parts))
        return outs

    def model(self, inputs: list[tuple[str, np.ndarray]], output: str) -> bytes:
        from onnx import TensorProto, helper

        self.nodes.append(helper.make_node("Identity", [output], ["y"]))
        graph = helper.make_graph(
            self.nodes, "bench",
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, a.shape) for n, a in inputs],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], self.inits)
        # Opset 20 has Gelu; IR version 10 is what it was released with.
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)
        return m.SerializeToString()


def _onnx_encoder(g: _OnnxBuilder, x: str, p) -> str:
    c = g.const

    def linear(v: str, w: str, b: str) -> str:
        return g.op("Add", g.op("MatMul", v, c(p[w])), c(p[b]))

    def ln(v: str, gamma: str, beta: str) -> str:
        return g.op("LayerNormalization", v, c(p[gamma]), c(p[beta]), axis=-1, epsilon=LN_EPS)

    head_shape = c(np.array([1, SEQ, HEADS, HEAD_DIM], np.int64))
    q, k, v = (g.op("Transpose", g.op("Reshape", t, head_shape), perm=[0, 2, 1, 3])
               for t in g.split(linear(x, "w_qkv", "b_qkv"), 3, axis=-1))
    kt = g.op("Transpose", k, perm=[0, 1, 3, 2])
    scale = c(np.array(1 / math.sqrt(HEAD_DIM), np.float32))
    probs = g.op("Softmax", g.op("Mul", g.op("MatMul", q, kt), scale), axis=-1)
    ctx = g.op("Transpose", g.op("MatMul", probs, v), perm=[0, 2, 1, 3])
    ctx = g.op("Reshape", ctx, c(np.array([1, SEQ, HIDDEN], np.int64)))
    h = ln(g.op("Add", linear(ctx, "w_o", "b_o"), x), "g1", "be1")
    f = linear(g.op("Gelu", linear(h, "w_1", "b_1")), "w_2", "b_2")
    return ln(g.op("Add", f, h), "g2", "be2")


def _onnx_graph(bg: BenchGraph) -> tuple[bytes, list[np.ndarray]] | None:
    """The ONNX model of a workload and its inputs (NCHW where ONNX wants it), or None."""
    g, p, key = _OnnxBuilder(), bg.params, bg.key
    names = [f"x{i}" for i in range(len(bg.inputs))]
    inputs = list(bg.inputs)
    x = names[0]
    if key in ("matmul", "attn_qk", "attn_pv"):
        out = g.op("MatMul", names[0], names[1])
    elif key == "mlp":
        out = g.op("MatMul", g.op("Gelu", g.op("MatMul", x, g.const(p["w1"]))), g.const(p["w2"]))
    elif key == "chain":
        prod = g.op("Add", g.op("Mul", names[0], names[1]), names[2])
        out = g.op("Mul", g.op("Relu", prod), g.const(np.array(0.5, np.float32)))
    elif key == "softmax":
        out = g.op("Softmax", x, axis=-1)
    elif key == "layer_norm":
        out = g.op("LayerNormalization", x, g.const(p["gamma"]), g.const(p["beta"]), axis=-1,
                   epsilon=1e-5)
    elif key in ("linear", "linear_gelu"):
        out = g.op("Add", g.op("MatMul", x, g.const(p["w"])), g.const(p["b"]))
        if key == "linear_gelu":
            out = g.op("Gelu", out)
    elif key == "encoder":
        out = _onnx_encoder(g, x, p)
    elif key == "conv2d":
        inputs = [_nchw(bg.inputs[0])]
        out = g.op("Conv", x, g.const(_fcrs(p["w"])), pads=[1, 1, 1, 1])
    elif key == "dwsep":
        inputs = [_nchw(bg.inputs[0])]
        d = g.op("Conv", x, g.const(_fcrs(p["dw"])), pads=[1, 1, 1, 1], group=64)
        out = g.op("Conv", d, g.const(_fcrs(p["pw"])))
    elif key.startswith("stack"):
        axis0 = g.const(np.array([0], np.int64))
        out = g.op("Concat", *(g.op("Unsqueeze", n, axis0) for n in names), axis=0)
    elif key.startswith("concat"):
        out = g.op("Concat", *names, axis=0)
    elif key == "tiny":
        out = g.op("Add", x, g.const(np.array(1, np.float32)))
    else:
        return None  # the quantized matmuls: no standard ONNX op for these layouts
    return g.model(list(zip(names, inputs, strict=True)), out), inputs


def ort_options(threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


def ort_session(model: bytes, threads: int, opts=None):
    import onnxruntime as ort

    return ort.InferenceSession(model, opts or ort_options(threads),
                                providers=["CPUExecutionProvider"])


def onnx_model(bg: BenchGraph) -> bytes | None:
    built = _onnx_graph(bg)
    return None if built is None else built[0]


def ort_run(bg: BenchGraph, threads: int) -> Run | None:
    built = _onnx_graph(bg)
    if built is None:
        return None
    model, inputs = built
    session = ort_session(model, threads)
    feeds = {f"x{i}": a for i, a in enumerate(inputs)}
    fetch = _nhwc if bg.key in ("conv2d", "dwsep") else np.asarray
    return Run(lambda: session.run(None, feeds)[0], fetch)


# --- JAX (jax.jit) ----------------------------------------------------------------------------

def jax_fn(bg: BenchGraph) -> Callable | None:
    """A fresh function of the workload's inputs, weights closed over (constants to
    ``jax.jit``, as they are in our graph), or None."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    p = {k: jnp.asarray(v) for k, v in bg.params.items()}
    key = bg.key

    def ln(v, gamma, beta, eps):
        mean = v.mean(-1, keepdims=True)
        var = jnp.square(v - mean).mean(-1, keepdims=True)
        return (v - mean) * lax.rsqrt(var + eps) * gamma + beta

    def gelu(v):
        return jax.nn.gelu(v, approximate=False)

    def conv(v, w, pad, groups=1):
        return lax.conv_general_dilated(v, w, (1, 1), [(pad, pad)] * 2, feature_group_count=groups,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def encoder(x):
        def heads(t):
            return t.reshape(1, SEQ, HEADS, HEAD_DIM).transpose(0, 2, 1, 3)

        q, k, v = (heads(t) for t in jnp.split(x @ p["w_qkv"] + p["b_qkv"], 3, axis=-1))
        probs = jax.nn.softmax((q @ k.transpose(0, 1, 3, 2)) / math.sqrt(HEAD_DIM), axis=-1)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(1, SEQ, HIDDEN)
        h = ln(ctx @ p["w_o"] + p["b_o"] + x, p["g1"], p["be1"], LN_EPS)
        f = gelu(h @ p["w_1"] + p["b_1"]) @ p["w_2"] + p["b_2"]
        return ln(f + h, p["g2"], p["be2"], LN_EPS)

    fns: dict[str, Callable] = {
        "matmul": lambda a, b: a @ b, "attn_qk": lambda a, b: a @ b,
        "attn_pv": lambda a, b: a @ b,
        "mlp": lambda x: gelu(x @ p["w1"]) @ p["w2"],
        "chain": lambda a, b, c: jnp.maximum(a * b + c, 0) * 0.5,
        "softmax": lambda x: jax.nn.softmax(x, axis=-1),
        "layer_norm": lambda x: ln(x, p["gamma"], p["beta"], 1e-5),
        "linear": lambda x: x @ p["w"] + p["b"],
        "linear_gelu": lambda x: gelu(x @ p["w"] + p["b"]),
        "encoder": encoder,
        "conv2d": lambda x: conv(x, p["w"], 1),
        "dwsep": lambda x: conv(conv(x, p["dw"], 1, groups=64), p["pw"], 0),
        "stack64": lambda *xs: jnp.stack(xs),
        "concat32": lambda *xs: jnp.concatenate(xs),
        "tiny": lambda x: x + 1,
    }
    return fns.get(key)


def jax_run(bg: BenchGraph) -> Run | None:
    import jax

    fn = jax_fn(bg)
    if fn is None:
        return None
    jitted = jax.jit(fn)
    xs = [jax.device_put(a) for a in bg.inputs]
    return Run(lambda: jitted(*xs).block_until_ready(), np.asarray)
