"""The benchmark workloads: each builds our graph, a numpy reference and a torch version."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from max.driver import CPU
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType, ops

Fn = Callable[[], np.ndarray]


@dataclass(frozen=True)
class Workload:
    name: str
    setup: Callable[[], tuple[Fn, Fn, Callable[[], object]]]
    rtol: float = 1e-4
    atol: float = 1e-5


def _compile(name: str, forward, input_shapes) -> Callable:
    cpu = DeviceRef.CPU()
    types = [TensorType(DType.float32, s, cpu) for s in input_shapes]
    model = InferenceSession(devices=[CPU()]).load(Graph(name, forward, input_types=types))
    return model


def _matmul():
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((1024, 1024), dtype=np.float32) for _ in range(2))
    model = _compile("matmul", lambda x, y: x @ y, [a.shape, b.shape])
    import torch

    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    return (lambda: model.execute(a, b)[0].to_numpy(), lambda: a @ b, lambda: ta @ tb)


def _mlp():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 1024), dtype=np.float32)
    w1 = rng.standard_normal((1024, 4096), dtype=np.float32) / 32
    w2 = rng.standard_normal((4096, 1024), dtype=np.float32) / 64
    cpu = DeviceRef.CPU()

    def forward(inp):
        h = ops.gelu(inp @ ops.constant(w1, DType.float32, cpu))
        return h @ ops.constant(w2, DType.float32, cpu)

    model = _compile("mlp", forward, [x.shape])
    import torch

    tx, tw1, tw2 = (torch.from_numpy(v) for v in (x, w1, w2))

    def np_gelu(v):
        return 0.5 * v * (1.0 + _erf(v / np.sqrt(2.0)))

    return (
        lambda: model.execute(x)[0].to_numpy(),
        lambda: np_gelu(x @ w1) @ w2,
        lambda: torch.nn.functional.gelu(tx @ tw1) @ tw2,
    )


def _erf(v: np.ndarray) -> np.ndarray:
    import torch

    return torch.special.erf(torch.from_numpy(np.ascontiguousarray(v))).numpy()


def _elementwise():
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal(1 << 24, dtype=np.float32) for _ in range(3))
    model = _compile("chain", lambda x, y, z: ops.relu(x * y + z) * 0.5, [a.shape] * 3)
    import torch

    ta, tb, tc = (torch.from_numpy(v) for v in (a, b, c))
    return (
        lambda: model.execute(a, b, c)[0].to_numpy(),
        lambda: np.maximum(a * b + c, 0) * 0.5,
        lambda: torch.relu(ta * tb + tc) * 0.5,
    )


def _softmax():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 4096), dtype=np.float32)
    model = _compile("softmax", lambda v: ops.softmax(v), [x.shape])
    import torch

    tx = torch.from_numpy(x)

    def reference():
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    return (lambda: model.execute(x)[0].to_numpy(), reference, lambda: torch.softmax(tx, -1))


def _layer_norm():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 4096), dtype=np.float32)
    gamma = rng.standard_normal(4096, dtype=np.float32)
    beta = rng.standard_normal(4096, dtype=np.float32)
    cpu = DeviceRef.CPU()
    model = _compile(
        "layer_norm",
        lambda v: ops.layer_norm(v, ops.constant(gamma, DType.float32, cpu),
                                 ops.constant(beta, DType.float32, cpu), 1e-5),
        [x.shape],
    )
    import torch

    tx, tg, tb = (torch.from_numpy(v) for v in (x, gamma, beta))

    def reference():
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-5) * gamma + beta

    return (
        lambda: model.execute(x)[0].to_numpy(),
        reference,
        lambda: torch.nn.functional.layer_norm(tx, (4096,), tg, tb, 1e-5),
    )


def _qmatmul(rows: int):
    """``x @ W.T`` with W a 4096x4096 Q4_0 weight (GGUF blocks), dequantized inside the matmul."""

    def setup():
        import gguf
        import torch

        from max.graph.quantization import QuantizationEncoding

        rng = np.random.default_rng(0)
        x = rng.standard_normal((rows, 4096), dtype=np.float32)
        w = rng.standard_normal((4096, 4096), dtype=np.float32)
        raw = gguf.quants.quantize(w, gguf.GGMLQuantizationType.Q4_0)
        cpu = DeviceRef.CPU()
        types = [TensorType(DType.float32, x.shape, cpu), TensorType(DType.uint8, raw.shape, cpu)]
        graph = Graph(f"qmatmul{rows}",
                      lambda a, q: ops.qmatmul(QuantizationEncoding.Q4_0, None, a, q),
                      input_types=types)
        model = InferenceSession(devices=[CPU()]).load(graph)

        def reference():
            return x @ gguf.quants.dequantize(raw, gguf.GGMLQuantizationType.Q4_0).T

        tx = torch.from_numpy(x)
        blocks = torch.from_numpy(raw).reshape(4096, -1, 18)
        shifts = torch.tensor([0, 4], dtype=torch.uint8).reshape(1, 1, 2, 1)

        def with_torch():
            # The same dequantization in torch ops, then torch's matmul.
            d = blocks[..., :2].contiguous().view(torch.float16).float()
            q = ((blocks[..., 2:].unsqueeze(2) >> shifts) & 15).reshape(4096, -1, 32)
            return tx @ (d * (q.to(torch.int8) - 8).float()).reshape(4096, 4096).T

        return (lambda: model.execute(x, raw)[0].to_numpy(), reference, with_torch)

    return setup


def _gptq_qmatmul(rows: int, desc_act: bool = False):
    """``x @ W`` with W a 4096x4096 GPTQ weight (MAX's packed layout, group 128, 4-bit)."""

    def setup():
        import torch

        from max.graph.quantization import QuantizationConfig, QuantizationEncoding

        k = n = 4096
        g = 128
        rng = np.random.default_rng(0)
        x = rng.standard_normal((rows, k), dtype=np.float32)
        words = rng.integers(0, 2**32, (k // 8, n), dtype=np.uint64).astype("<u4")
        scales = rng.uniform(-0.02, 0.02, (k // g, n)).astype("<f2")
        packed = np.concatenate([words.view(np.uint8).reshape(k // 2, n),
                                 scales.view(np.uint8).reshape(2 * k // g, n)])
        perm = rng.permutation(k).astype(np.int32)
        config = QuantizationConfig("gptq", 4, g, desc_act=desc_act, sym=True)
        cpu = DeviceRef.CPU()
        types = [TensorType(DType.float32, x.shape, cpu),
                 TensorType(DType.uint8, packed.shape, cpu)]
        enc = QuantizationEncoding.GPTQ
        if desc_act:
            types.append(TensorType(DType.int32, (k,), cpu))
            graph = Graph(f"gptq_act{rows}",
                          lambda a, q, p: ops.qmatmul(enc, config, a, q, p), input_types=types)
            inputs = (x, packed, perm)
        else:
            graph = Graph(f"gptq{rows}", lambda a, q: ops.qmatmul(enc, config, a, q),
                          input_types=types)
            inputs = (x, packed)
        model = InferenceSession(devices=[CPU()]).load(graph)
        rows_of = perm if desc_act else np.arange(k)

        def reference():
            q = ((words[:, None, :] >> (4 * np.arange(8, dtype=np.uint32))[None, :, None]) & 15)
            w = scales.astype(np.float32)[np.arange(k) // g] * (
                q.reshape(k, n)[rows_of].astype(np.float32) - 8)
            return x @ w

        tx, tw = torch.from_numpy(x), torch.from_numpy(words.view(np.int32))
        ts, trows = torch.from_numpy(scales.astype(np.float32)), torch.from_numpy(rows_of)
        shifts = torch.arange(0, 32, 4, dtype=torch.int32).reshape(1, 8, 1)

        def with_torch():
            q = ((tw.unsqueeze(1) >> shifts) & 15).reshape(k, n)[trows]
            return tx @ (ts.repeat_interleave(g, 0) * (q.float() - 8))

        return (lambda: model.execute(*inputs)[0].to_numpy(), reference, with_torch)

    return setup


def _conv2d():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 56, 56, 64), dtype=np.float32)
    w = rng.standard_normal((3, 3, 64, 64), dtype=np.float32) / 24  # RSCF
    cpu = DeviceRef.CPU()
    model = _compile(
        "conv2d",
        lambda v: ops.conv2d(v, ops.constant(w, DType.float32, cpu), padding=(1, 1, 1, 1)),
        [x.shape],
    )
    import torch

    # NCHW views of the NHWC data (channels_last strides: torch's fast layout for it).
    tx = torch.from_numpy(x).permute(0, 3, 1, 2)
    tw = torch.from_numpy(w).permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)

    def reference():
        # numpy: one [3136, 576] x [576, 64] matmul over the 3x3 windows (im2col).
        xp = np.pad(x[0], ((1, 1), (1, 1), (0, 0)))
        cols = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(0, 1))
        cols = cols.transpose(0, 1, 3, 4, 2).reshape(56 * 56, 576)
        return (cols @ w.reshape(576, 64)).reshape(1, 56, 56, 64)

    return (
        lambda: model.execute(x)[0].to_numpy(),
        reference,
        lambda: torch.nn.functional.conv2d(tx, tw, padding=1).permute(0, 2, 3, 1),  # NHWC view
    )


def _joining(kind: str, count: int):
    """``stack``/``concat`` of ``count`` [256, 256] tensors: one copy of each (a chain of
    binary ``mo.concat`` once copied O(count^2) data)."""

    def setup():
        import torch

        rng = np.random.default_rng(0)
        xs = [rng.standard_normal((256, 256), dtype=np.float32) for _ in range(count)]
        join = ops.stack if kind == "stack" else ops.concat
        model = _compile(f"{kind}{count}", lambda *vs: join(list(vs), 0), [x.shape for x in xs])
        np_join = np.stack if kind == "stack" else np.concatenate
        torch_join = torch.stack if kind == "stack" else torch.cat
        txs = [torch.from_numpy(x) for x in xs]
        return (lambda: model.execute(*xs)[0].to_numpy(), lambda: np_join(xs),
                lambda: torch_join(txs))

    return setup


WORKLOADS = [
    Workload("matmul 1024^3", _matmul, rtol=1e-3, atol=1e-3),
    Workload("MLP 32x1024 -> 4096 (GELU) -> 1024", _mlp, rtol=1e-3, atol=1e-3),
    Workload("relu(a*b+c)*0.5 over 16M floats", _elementwise),
    Workload("softmax 512x4096", _softmax, atol=1e-6),
    Workload("layer norm 512x4096", _layer_norm, rtol=1e-3, atol=1e-4),
    Workload("qmatmul 1x4096 @ (4096x4096 Q4_0).T", _qmatmul(1), rtol=1e-3, atol=1e-3),
    Workload("qmatmul 32x4096 @ (4096x4096 Q4_0).T", _qmatmul(32), rtol=1e-3, atol=1e-3),
    Workload("qmatmul 1x4096 @ 4096x4096 GPTQ g128", _gptq_qmatmul(1), rtol=1e-3, atol=1e-3),
    Workload("qmatmul 32x4096 @ 4096x4096 GPTQ g128", _gptq_qmatmul(32), rtol=1e-3, atol=1e-3),
    Workload("qmatmul 32x4096 @ 4096x4096 GPTQ act", _gptq_qmatmul(32, True), rtol=1e-3,
             atol=1e-3),
    Workload("conv2d 1x56x56x64, 64 3x3 filters, pad 1", _conv2d, rtol=1e-3, atol=1e-3),
    Workload("stack of 64 [256, 256]", _joining("stack", 64), rtol=0, atol=0),
    Workload("concat of 32 [256, 256]", _joining("concat", 32), rtol=0, atol=0),
]
