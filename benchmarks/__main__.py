"""Side-by-side speed: our compiled graphs vs numpy, PyTorch (eager), ONNX Runtime and JAX.

    ./dev bench [--only TEXT] [--repeat N] [--threads N] [--peers numpy,torch,ort,jax] [--markdown]

Every engine runs in this process with the same thread count (``--threads``, default 2):
PyTorch through ``torch.set_num_threads``, ONNX Runtime through its session options (intra-op
N, inter-op 1), ours through ``InferenceSession(num_threads=N)``, numpy's BLAS through
``OPENBLAS_NUM_THREADS``/``MKL_NUM_THREADS``. JAX 0.10 has no thread-count setting (XLA_FLAGS
rejects ``--intra_op_parallelism_threads``; ``--xla_cpu_multi_thread_eigen`` is only on/off): its
CPU client sizes its pools by the CPUs the process may run on, so where that is more than N
the process is pinned to N of them before anything is imported (on a 2-core machine and N = 2,
nothing changes).

Each engine's output is checked against the numpy reference in float64 before timing; a wrong
one prints ``wrong`` and is left out. Each engine makes ``--repeat`` timed samples, in blocks
that alternate between the engines over three rounds (``runner._time`` says why), and the table
shows medians in ms, the best peer and ours / best peer (the target is <= 1.0). A peer that is
not installed, left out by ``--peers``, or without a version of a workload prints ``-``.
Timings are not assertions: the machine may be shared and noisy.
"""

from __future__ import annotations

import argparse
import os


def _limit_threads(threads: int) -> None:
    """Before numpy, torch or jax is imported: their pools size themselves at import."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    if threads == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + " --xla_cpu_multi_thread_eigen=false").strip()
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > threads:
        os.sched_setaffinity(0, cpus[:threads])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--only", default=None,
                        help="run only workloads whose key or title contains this")
    parser.add_argument("--repeat", type=int, default=20, help="samples per engine (median)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument("--peers", default="numpy,torch,ort,jax",
                        help="comma-separated peers to run (numpy, torch, ort, jax); others '-'")
    args = parser.parse_args()
    if args.threads < 1 or args.repeat < 1:
        parser.error("--threads and --repeat must be positive")
    chosen = {p.strip() for p in args.peers.split(",") if p.strip()}
    unknown = chosen - {"numpy", "torch", "ort", "jax"}
    if unknown:
        parser.error(f"--peers: unknown {sorted(unknown)}; choose from numpy, torch, ort, jax")
    _limit_threads(args.threads)

    from benchmarks.runner import run_all

    run_all(args.only, args.repeat, args.threads, args.markdown, frozenset(chosen | {"ours"}))


if __name__ == "__main__":
    main()
