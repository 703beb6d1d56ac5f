"""Fixed costs: call overhead, warm load, cold compile of a MiniLM-shaped encoder block.

    .venv/bin/python -m benchmarks.fixed_costs [--skip-cold]

* call overhead: ``model.execute(x)`` of ``x + 1`` on 4 floats (best of 7 runs of 20000 calls),
  beside numpy's ``x + 1`` and torch's (2 threads);
* warm load: ``InferenceSession().load(graph)`` of an already compiled graph, in a fresh
  process (the first load of a process also hashes the compiler's sources) and again there;
* cold compile: the encoder block (seq 128, hidden 384, 12 heads, FFN 1536; weights as
  constants) with an empty cache in a fresh process (compile worker start included), then a
  breakdown of the compile itself, run in this process: MO passes, the MLIR pipeline
  (schedule, bufferization, lowering), translation to LLVM IR, opt, llc and the link.
"""

from __future__ import annotations

import argparse
import collections
import functools
import io
import os
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

import numpy as np

S, H, NH, F = 128, 384, 12, 1536


def encoder_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def w(*s: int) -> np.ndarray:
        return (rng.standard_normal(s, dtype=np.float32) / np.sqrt(s[0])).astype(np.float32)

    def b(n: int) -> np.ndarray:
        return rng.standard_normal(n, dtype=np.float32) * np.float32(0.1)

    return dict(wq=w(H, H), bq=b(H), wk=w(H, H), bk=b(H), wv=w(H, H), bv=b(H), wo=w(H, H),
                bo=b(H), g1=1 + b(H), be1=b(H), w1=w(H, F), b1=b(F), w2=w(F, H), b2=b(H),
                g2=1 + b(H), be2=b(H))


def encoder_graph(p: dict[str, np.ndarray], name: str = "encoder"):
    """A post-norm transformer encoder block on ``[1, S, H]``, weights as constants."""
    from max.dtype import DType
    from max.graph import DeviceRef, Graph, TensorType, ops

    cpu = DeviceRef.CPU()

    def forward(x):
        def c(k):
            return ops.constant(p[k], DType.float32, cpu)

        def heads(t):  # [1, S, H] -> [1, NH, S, H / NH]
            return ops.permute(ops.reshape(t, [1, S, NH, H // NH]), [0, 2, 1, 3])

        q, k, v = (heads(x @ c(f"w{n}") + c(f"b{n}")) for n in "qkv")
        att = ops.softmax((q @ ops.transpose(k, 2, 3)) * float(1 / np.sqrt(H // NH)))
        ctx = ops.reshape(ops.permute(att @ v, [0, 2, 1, 3]), [1, S, H])
        h = ops.layer_norm(x + (ctx @ c("wo") + c("bo")), c("g1"), c("be1"), 1e-5)
        f = ops.gelu(h @ c("w1") + c("b1")) @ c("w2") + c("b2")
        return ops.layer_norm(h + f, c("g2"), c("be2"), 1e-5)

    return Graph(name, forward, input_types=[TensorType(DType.float32, (1, S, H), cpu)])


def _tiny_graph():
    from max.dtype import DType
    from max.graph import DeviceRef, Graph, TensorType

    return Graph("tiny", lambda v: v + 1,
                 input_types=[TensorType(DType.float32, (4,), DeviceRef.CPU())])


def call_overhead() -> None:
    import torch

    from max.engine import InferenceSession

    torch.set_num_threads(2)
    model = InferenceSession().load(_tiny_graph())
    x = np.ones(4, np.float32)
    tx = torch.from_numpy(x)
    np.testing.assert_array_equal(model.execute(x)[0].to_numpy(), x + 1)

    def best_us(fn) -> float:
        return min(timeit.repeat(fn, number=20000, repeat=7)) / 20000 * 1e6

    print(f"call overhead (x + 1, 4 floats): ours {best_us(lambda: model.execute(x)):.2f} us, "
          f"numpy {best_us(lambda: x + 1):.2f} us, torch {best_us(lambda: tx + 1):.2f} us")


_WARM_CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
from benchmarks.fixed_costs import _tiny_graph, encoder_graph, encoder_weights
from max.engine import InferenceSession
graphs = {"tiny": [_tiny_graph(), _tiny_graph()]}
if sys.argv[2] == "1":
    p = encoder_weights()
    graphs["encoder"] = [encoder_graph(p), encoder_graph(p)]
session = InferenceSession()
for name, (first, second) in graphs.items():
    t0 = time.perf_counter(); a = session.load(first); t1 = time.perf_counter()
    b = session.load(second); t2 = time.perf_counter()
    print(f"warm load {name}: first in a process {1e3 * (t1 - t0):.1f} ms, "
          f"again {1e3 * (t2 - t1):.1f} ms")
"""


def warm_load(encoder: bool) -> None:
    from max.engine import InferenceSession

    InferenceSession().load(_tiny_graph())  # compiled (or found) now: the child hits
    if encoder:
        InferenceSession().load(encoder_graph(encoder_weights()))
    root = str(Path(__file__).resolve().parent.parent)
    r = subprocess.run([sys.executable, "-c", _WARM_CHILD, root, "1" if encoder else "0"],
                       capture_output=True, text=True, check=True)
    print(r.stdout.strip())


_COLD_CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
from benchmarks.fixed_costs import encoder_graph, encoder_weights
graph = encoder_graph(encoder_weights())
from max.engine import InferenceSession
t = time.perf_counter(); InferenceSession().load(graph)
print(f"cold compile encoder (fresh process, empty cache, worker start included): "
      f"{time.perf_counter() - t:.2f} s")
"""


def cold_compile() -> None:
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, MAX_CACHE_DIR=tempfile.mkdtemp(prefix="max-cold-"))
    r = subprocess.run([sys.executable, "-c", _COLD_CHILD, root], env=env, capture_output=True,
                       text=True, check=True)
    print(r.stdout.strip())
    _breakdown()


def _breakdown() -> None:
    """Times the worker's stages on the encoder, in this process (functions wrapped)."""
    from max.compiler import targets, worker
    from max.compiler.passes import registry
    from max.compiler.pipelines import cpu

    spent: dict[str, float] = collections.defaultdict(float)

    def timed(label, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[label if isinstance(label, str) else label(*args)] += (
                    time.perf_counter() - t)
        return wrapper

    def stage(module, element: str) -> str:  # a target stage: its first pass names it
        return "stage " + element.split(",")[0].split("{")[0][:34]

    mo_passes = {"mo-canonicalize": "MO canonicalize (fold)", "mo-to-linalg": "MO -> linalg"}
    patches = [(targets, "run_element", stage),
               (cpu, "translate_to_llvm_ir", "translate to LLVM IR"),
               (cpu, "_tool", lambda cmd: f"{Path(cmd[0]).name} (process)")]
    saved_passes = {name: registry.all_passes()[name] for name in mo_passes
                    if name in registry.all_passes()}
    saved = [(mod, attr, getattr(mod, attr)) for mod, attr, _ in patches]
    graph = encoder_graph(encoder_weights())
    buf = io.BytesIO()
    graph._module.operation.write_bytecode(buf)
    try:
        for mod, attr, label in patches:
            setattr(mod, attr, timed(label, getattr(mod, attr)))
        for name, info in saved_passes.items():
            object.__setattr__(info, "fn", timed(mo_passes[name], info.fn))
        t = time.perf_counter()
        worker.compile_to_dir(buf.getvalue(), "cpu", {}, Path(tempfile.mkdtemp()))
        total = time.perf_counter() - t
    finally:
        for mod, attr, fn in saved:
            setattr(mod, attr, fn)
        for name, info in saved_passes.items():
            object.__setattr__(info, "fn", info.fn.__wrapped__)
    print(f"cold compile breakdown (in process, no worker start): {total:.2f} s")
    for label, seconds in spent.items():
        print(f"  {label:42} {seconds * 1e3:7.0f} ms")
    print(f"  {'other (parse, verify, externalize, Python)':42} "
          f"{(total - sum(spent.values())) * 1e3:7.0f} ms")
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import max.compiler.passes.registry as r; "
                    "r.all_passes()"], check=True)
    print(f"  {'worker start (Python, MLIR, compiler)':42} "
          f"{(time.perf_counter() - t) * 1e3:7.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--skip-cold", action="store_true", help="no cold compile (slow)")
    args = parser.parse_args()
    call_overhead()
    warm_load(encoder=not args.skip_cold)
    if not args.skip_cold:
        cold_compile()


if __name__ == "__main__":
    main()
