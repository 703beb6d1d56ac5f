"""Convolution and pooling shapes of CNNs: ours vs PyTorch (2 threads) and numpy, interleaved.

    python -m benchmarks.conv_suite [--only NAME] [--rounds N]

Each workload is timed in rounds that alternate the engines (the machine is shared: a
sequential run measures the neighbours' load as much as the code), and the median of each
engine's per-round medians is printed with the ratio torch/ours (above 1: we are faster).
Layouts are converted outside the timed region: torch gets NCHW views of the NHWC data with
channels_last strides, its fast layout for them. Every output is checked first.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from max.driver import CPU
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType, ops


@dataclass(frozen=True)
class Case:
    name: str
    shapes: list[tuple[int, ...]]  # inputs (the first NHWC), built with a fixed seed
    ours: Callable[..., Any]  # graph body over the inputs
    torch: Callable[..., Any]  # over the torch views of the inputs (see _torch_view)
    numpy: Callable[..., np.ndarray] | None = None


def _conv(stride: int = 1, pad: int = 0, groups: int = 1, dilation: int = 1) -> Case | Any:
    def ours(x: Any, w: Any) -> Any:
        return ops.conv2d(x, w, (stride, stride), (dilation, dilation), (pad,) * 4, groups)

    def torch_fn(x: Any, w: Any) -> Any:
        import torch.nn.functional as F

        return F.conv2d(x, w, stride=stride, padding=pad, groups=groups, dilation=dilation)

    return ours, torch_fn


def _np_conv(stride: int, pad: int) -> Callable[..., np.ndarray]:
    """im2col + one matmul (groups 1), numpy's best."""

    def run(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        r, s, c, f = w.shape
        xp = np.pad(x[0], ((pad, pad), (pad, pad), (0, 0)))
        cols = np.lib.stride_tricks.sliding_window_view(xp, (r, s), axis=(0, 1))
        cols = cols[::stride, ::stride]
        oh, ow = cols.shape[:2]
        cols = cols.transpose(0, 1, 3, 4, 2).reshape(oh * ow, r * s * c)
        return (cols @ w.reshape(r * s * c, f)).reshape(1, oh, ow, f)

    return run


def _cases() -> list[Case]:
    import torch.nn.functional as F

    cases = []
    for name, xs, ws, stride, pad in [
        ("conv 1x56x56x64 -> 64 3x3 p1", (1, 56, 56, 64), (3, 3, 64, 64), 1, 1),
        ("conv 1x28x28x128 -> 128 3x3 p1", (1, 28, 28, 128), (3, 3, 128, 128), 1, 1),
        ("conv 1x14x14x256 -> 256 3x3 s2 p1", (1, 14, 14, 256), (3, 3, 256, 256), 2, 1),
        ("conv 1x224x224x3 -> 64 7x7 s2 p3", (1, 224, 224, 3), (7, 7, 3, 64), 2, 3),
        ("conv 1x56x56x64 -> 256 1x1", (1, 56, 56, 64), (1, 1, 64, 256), 1, 0),
    ]:
        o, t = _conv(stride, pad)
        cases.append(Case(name, [xs, ws], o, t, _np_conv(stride, pad)))
    for name, xs in [("depthwise 1x56x56x64 3x3 p1", (1, 56, 56, 64)),
                     ("depthwise 1x112x112x32 3x3 p1", (1, 112, 112, 32))]:
        c = xs[3]
        o, t = _conv(1, 1, groups=c)
        cases.append(Case(name, [xs, (3, 3, 1, c)], o, t))
    for name, xs in [("dw-separable 1x56x56x64 -> 64", (1, 56, 56, 64)),
                     ("dw-separable 1x112x112x32 -> 64", (1, 112, 112, 32))]:
        c = xs[3]

        def sep_ours(x: Any, dw: Any, pw: Any) -> Any:
            return ops.conv2d(ops.conv2d(x, dw, padding=(1, 1, 1, 1), groups=int(dw.shape[3])), pw)

        def sep_torch(x: Any, dw: Any, pw: Any) -> Any:
            return F.conv2d(F.conv2d(x, dw, padding=1, groups=dw.shape[0]), pw)

        cases.append(Case(name, [xs, (3, 3, 1, c), (1, 1, c, 64)], sep_ours, sep_torch))
    pools = [
        ("max_pool 3x3 s2 p1 1x112x112x64", (1, 112, 112, 64),
         lambda x: ops.max_pool2d(x, (3, 3), 2, padding=1),
         lambda x: F.max_pool2d(x, 3, 2, 1)),
        ("max_pool 2x2 s2 1x56x56x64", (1, 56, 56, 64),
         lambda x: ops.max_pool2d(x, (2, 2), 2),
         lambda x: F.max_pool2d(x, 2, 2)),
        ("avg_pool 3x3 s2 p1 1x56x56x64", (1, 56, 56, 64),
         lambda x: ops.avg_pool2d(x, (3, 3), 2, padding=1),
         lambda x: F.avg_pool2d(x, 3, 2, 1)),
        ("avg_pool 2x2 s2 1x56x56x64", (1, 56, 56, 64),
         lambda x: ops.avg_pool2d(x, (2, 2), 2),
         lambda x: F.avg_pool2d(x, 2, 2)),
        ("global avg_pool 1x7x7x512", (1, 7, 7, 512),
         lambda x: ops.avg_pool2d(x, (7, 7), 1),
         lambda x: F.adaptive_avg_pool2d(x, 1)),
        ("global avg_pool 1x14x14x1024", (1, 14, 14, 1024),
         lambda x: ops.avg_pool2d(x, (14, 14), 1),
         lambda x: F.adaptive_avg_pool2d(x, 1)),
    ]
    for name, xs, o, t in pools:
        cases.append(Case(name, [xs], o, t))
    return cases


def _torch_view(a: np.ndarray, first: bool) -> Any:
    """NHWC data -> NCHW view (channels_last strides); RSCF filter -> FCRS channels_last."""
    import torch

    if first:
        return torch.from_numpy(a).permute(0, 3, 1, 2)
    return torch.from_numpy(a).permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)


def _median_ms(fn: Callable[[], object], reps: int, clock: Callable[[], float]) -> float:
    times = []
    for _ in range(reps):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return float(np.median(times) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default=None)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2,
                        help="ours (MAX_CPU_THREADS) and torch's; 1 avoids two OpenMP runtimes "
                             "spinning against each other on a loaded machine")
    parser.add_argument("--cpu-time", action="store_true",
                        help="with --threads 1: time the calling thread's CPU time, which "
                             "the neighbours' load on a shared machine disturbs far less")
    parser.add_argument("--engine", choices=["ours", "torch", "numpy"], action="append",
                        help="time only these (repeatable). Ours and torch each bring an "
                             "OpenMP runtime (libiomp5, libgomp) whose idle threads spin and "
                             "starve the other's at 2 threads: run them in separate processes")
    args = parser.parse_args()
    if args.cpu_time and args.threads != 1:
        parser.error("--cpu-time measures one thread: use it with --threads 1")
    clock = time.thread_time if args.cpu_time else time.perf_counter
    os.environ["MAX_CPU_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    session = InferenceSession(devices=[CPU()])
    cpu = DeviceRef.CPU()
    rng = np.random.default_rng(0)
    print(f"{'workload':38} {'ours ms':>8} {'torch ms':>9} {'numpy ms':>9} {'torch/ours':>10}")
    for case in _cases():
        if args.only and args.only not in case.name:
            continue
        # Filters scaled by 1/sqrt(fan-in): outputs of order 1, so one tolerance fits all.
        inputs = [(rng.standard_normal(s, dtype=np.float32)
                   / np.float32(np.sqrt(np.prod(s[:-1])) if i else 1)).astype(np.float32)
                  for i, s in enumerate(case.shapes)]
        types = [TensorType(DType.float32, s, cpu) for s in case.shapes]
        model = session.load(Graph("bench", case.ours, input_types=types))
        tin = [_torch_view(a, i == 0) for i, a in enumerate(inputs)]
        fns: dict[str, Callable[[], object]] = {
            "ours": lambda: model.execute(*inputs)[0].to_numpy(),
            "torch": lambda: case.torch(*tin),
        }
        if case.numpy is not None:
            fns["numpy"] = lambda: case.numpy(*inputs)
        with torch.inference_mode():
            want = case.torch(*tin).permute(0, 2, 3, 1).numpy()
            got = fns["ours"]()
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3, err_msg=case.name)
            if args.engine:
                fns = {k: f for k, f in fns.items() if k in args.engine}
            for fn in fns.values():
                fn()
            per: dict[str, list[float]] = {k: [] for k in fns}
            for _ in range(args.rounds):
                for k, fn in fns.items():
                    per[k].append(_median_ms(fn, args.reps, clock))
        med = {k: float(np.median(v)) for k, v in per.items()}
        cols = [f"{med[k]:{w}.3f}" if k in med else f"{'-':>{w}}"
                for k, w in (("ours", 8), ("torch", 9), ("numpy", 9))]
        ratio = f"{med['torch'] / med['ours']:10.2f}" if "ours" in med and "torch" in med else ""
        print(f"{case.name:38} {' '.join(cols)} {ratio}", flush=True)


if __name__ == "__main__":
    main()
