"""The main job: build an MLP graph with a symbolic batch, compile it, run it on the CPU.

Prints the output, the max error against numpy, the compile time and the time per call.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from max.driver import CPU
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType, ops


def build_mlp(w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray) -> Graph:
    """x[batch, 784] -> relu(x @ w1 + b1) @ w2 + b2 -> softmax, with a symbolic batch."""
    cpu = DeviceRef.CPU()
    input_type = TensorType(DType.float32, ("batch", w1.shape[0]), cpu)

    def forward(x):
        hidden = ops.relu(x @ ops.constant(w1, DType.float32, cpu) + ops.constant(b1, DType.float32, cpu))
        logits = hidden @ ops.constant(w2, DType.float32, cpu) + ops.constant(b2, DType.float32, cpu)
        return ops.softmax(logits)

    return Graph("mlp", forward, input_types=[input_type])


def numpy_mlp(x, w1, b1, w2, b2):
    logits = np.maximum(x @ w1 + b1, 0) @ w2 + b2
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--iters", type=int, default=200)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((784, args.hidden), dtype=np.float32) / np.sqrt(784)
    b1 = rng.standard_normal(args.hidden, dtype=np.float32) * 0.1
    w2 = rng.standard_normal((args.hidden, 10), dtype=np.float32) / np.sqrt(args.hidden)
    b2 = rng.standard_normal(10, dtype=np.float32) * 0.1

    graph = build_mlp(w1, b1, w2, b2)
    session = InferenceSession(devices=[CPU()])
    start = time.perf_counter()
    model = session.load(graph)
    compile_s = time.perf_counter() - start

    for batch in (args.batch, 3):  # one compiled model, two values of the symbolic batch
        x = rng.standard_normal((batch, 784), dtype=np.float32)
        (out,) = model.execute(x)
        result = out.to_numpy()
        err = np.abs(result - numpy_mlp(x, w1, b1, w2, b2)).max()
        print(f"batch={batch}: output shape {result.shape}, max |error| vs numpy = {err:.2e}")

    x = rng.standard_normal((args.batch, 784), dtype=np.float32)
    print("first row:", np.array2string(model.execute(x)[0].to_numpy()[0], precision=4))
    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        model.execute(x)
        times.append(time.perf_counter() - t0)
    np_times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        numpy_mlp(x, w1, b1, w2, b2)
        np_times.append(time.perf_counter() - t0)
    ours, ref = np.median(times) * 1e3, np.median(np_times) * 1e3
    print(f"compile (or cache load): {compile_s:.2f} s")
    print(f"time per call (batch {args.batch}, median of {args.iters}): {ours:.3f} ms; "
          f"numpy {ref:.3f} ms; numpy/ours = {ref / ours:.2f}x")


if __name__ == "__main__":
    main()
