"""GPU check for a session with a lent GPU: the GPU test tier, then a few timings.

    python -m benchmarks.gpu_check            # tests + benchmarks (well under 8 minutes)
    python -m benchmarks.gpu_check --no-tests

Prints elementwise bandwidth (GB/s of ``a * b + c``: 3 reads, 1 write), softmax, matmul and
encoder-block times, each beside torch CUDA eager where torch with CUDA is installed. Timings: median of
``--repeat`` runs of ``--iters`` calls each, the device synchronized at the end of each run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _timed(call: Callable[[], Any], sync: Callable[[], None], iters: int, repeat: int) -> float:
    """Median seconds per call."""
    call()
    sync()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(iters):
            call()
        sync()
        samples.append((time.perf_counter() - start) / iters)
    return statistics.median(samples)


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def bench(iters: int, repeat: int) -> None:
    from max import driver, engine
    from max.driver import Accelerator, Tensor
    from max.dtype import DType
    from max.graph import DeviceRef, Graph, TensorType, ops

    if driver.accelerator_count() == 0:
        print("no accelerator: nothing to time")
        return
    gpu = Accelerator()
    print(f"device: {gpu} api={gpu.api} arch={gpu.architecture_name} stats={gpu.stats}")
    session = engine.InferenceSession(devices=[gpu])
    torch = _torch()

    def model(fn: Callable[..., Any], *shapes: tuple[int, ...],
              dtype: DType = DType.float32) -> Any:
        types = [TensorType(dtype, s, DeviceRef.GPU()) for s in shapes]
        return session.load(Graph("bench", fn, input_types=types))

    def inputs(*shapes: tuple[int, ...], dtype: DType = DType.float32) -> list[Tensor]:
        rng = np.random.default_rng(0)
        return [Tensor((rng.standard_normal(s) / 8).astype(dtype.to_numpy()), gpu)
                for s in shapes]

    def row(label: str, fn: Callable[..., Any], torch_fn: Callable[..., Any] | None,
            shapes: list[tuple[int, ...]], work: Callable[[float], str],
            dtype: DType = DType.float32) -> None:
        m = model(fn, *shapes, dtype=dtype)
        args = inputs(*shapes, dtype=dtype)
        ours = _timed(lambda: m.execute(*args), gpu.synchronize, iters, repeat)
        line = f"{label:34s} ours {ours * 1e3:9.3f} ms  {work(ours)}"
        if torch is not None and torch_fn is not None:
            targs = [torch.from_dlpack(a) for a in args]
            theirs = _timed(lambda: torch_fn(*targs), torch.cuda.synchronize, iters, repeat)
            line += f" | torch {theirs * 1e3:9.3f} ms  {work(theirs)}  ours/torch time " \
                    f"{ours / theirs:5.2f}x"
        print(line, flush=True)

    n = 1 << 26
    row(f"elementwise a*b+c n={n}", lambda a, b, c: a * b + c,
        (lambda a, b, c: torch.addcmul(c, a, b)) if torch else None, [(n,)] * 3,
        lambda s: f"{4 * 4 * n / s / 1e9:8.1f} GB/s")
    for rows, cols in ((4096, 4096), (32768, 512)):
        row(f"softmax {rows}x{cols}", ops.softmax,
            (lambda x: torch.softmax(x, -1)) if torch else None, [(rows, cols)],
            lambda s, r=rows, c=cols: f"{2 * 4 * r * c / s / 1e9:8.1f} GB/s")
    for m_, k, n_ in ((4096, 4096, 4096), (1024, 1024, 1024), (16, 4096, 4096)):
        row(f"matmul {m_}x{k}x{n_} f32", ops.matmul,
            (lambda a, b: a @ b) if torch else None, [(m_, k), (k, n_)],
            lambda s, m_=m_, k=k, n_=n_: f"{2 * m_ * k * n_ / s / 1e12:8.2f} TFLOP/s")
    for m_ in (4096, 256):  # f16: tensor cores (mma.sync), f32 accumulators; torch: cuBLAS
        row(f"matmul {m_}x4096x4096 f16", ops.matmul, (lambda a, b: a @ b) if torch else None,
            [(m_, 4096), (4096, 4096)],
            lambda s, m_=m_: f"{2 * m_ * 4096 * 4096 / s / 1e12:8.2f} TFLOP/s",
            dtype=DType.float16)
    encoder_row(session, gpu, torch, iters, repeat)


def encoder_row(session: Any, gpu: Any, torch: Any, iters: int, repeat: int) -> None:
    """The benchmarks' encoder block (seq 128, hidden 384, 12 heads, FFN 1536) on the GPU,
    its output checked against the float64 numpy reference before it is timed, beside the
    same block in torch CUDA eager (same weights)."""
    from benchmarks import graphs
    from max.driver import CPU, Tensor
    from max.graph import DeviceRef

    bg = graphs.encoder(DeviceRef.GPU())
    model = session.load(bg.graph)
    x = Tensor(bg.inputs[0], gpu)
    want = bg.reference()
    (out,) = model.execute(x)
    got = out.to(CPU()).to_numpy()
    if not np.allclose(got, want, rtol=bg.rtol, atol=bg.atol):
        print(f"encoder block: ours wrong (max error {np.abs(got - want).max():.3g})")
        return
    ours = _timed(lambda: model.execute(x), gpu.synchronize, iters, repeat)
    line = f"{'encoder block (seq 128, hidden 384)':34s} ours {ours * 1e3:9.3f} ms"
    if torch is not None:
        fwd = torch_encoder(torch, bg.params)
        tx = torch.from_numpy(bg.inputs[0]).cuda()
        theirs_out = fwd(tx).cpu().numpy()
        if not np.allclose(theirs_out, want, rtol=bg.rtol, atol=bg.atol):
            line += " | torch wrong"
        else:
            theirs = _timed(lambda: fwd(tx), torch.cuda.synchronize, iters, repeat)
            line += f" | torch {theirs * 1e3:9.3f} ms  ours/torch time {ours / theirs:5.2f}x"
    print(line, flush=True)


def torch_encoder(torch: Any, params: dict[str, np.ndarray]) -> Callable[[Any], Any]:
    """The encoder block in torch eager on CUDA (the numpy reference's formulas)."""
    import math

    from benchmarks.graphs import HEAD_DIM, HEADS, HIDDEN, LN_EPS, SEQ

    fn = torch.nn.functional
    t = {k: torch.from_numpy(v).cuda() for k, v in params.items()}

    def forward(x: Any) -> Any:
        qkv = x @ t["w_qkv"] + t["b_qkv"]
        q, k, v = (z.reshape(1, SEQ, HEADS, HEAD_DIM).transpose(1, 2)
                   for z in qkv.split(HIDDEN, -1))
        scores = (q @ k.transpose(-1, -2)) * (1 / math.sqrt(HEAD_DIM))
        ctx = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(1, SEQ, HIDDEN)
        h = fn.layer_norm(ctx @ t["w_o"] + t["b_o"] + x, (HIDDEN,), t["g1"], t["be1"], LN_EPS)
        f = fn.gelu(h @ t["w_1"] + t["b_1"]) @ t["w_2"] + t["b_2"]
        return fn.layer_norm(f + h, (HIDDEN,), t["g2"], t["be2"], LN_EPS)

    return forward


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-tests", action="store_true", help="skip the GPU test tier")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    status = 0
    if not args.no_tests:
        status = subprocess.call([sys.executable, "-m", "pytest", "-q", "-m", "gpu",
                                  "tests/gpu_runtime", "tests/driver"], timeout=300)
        print(f"GPU test tier: exit status {status}", flush=True)
    bench(args.iters, args.repeat)
    return status


if __name__ == "__main__":
    sys.exit(main())
