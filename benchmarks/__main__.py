"""Side-by-side speed: our compiled graphs vs numpy and PyTorch (eager), in one run.

    ./dev bench [--only NAME] [--repeat N]

Prints the median latency of each workload for each engine and the ratios
numpy/ours and torch/ours (above 1 means we are faster). Every output, ours and torch's, is
checked against numpy before timing. Timings are not assertions: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from benchmarks.workloads import WORKLOADS


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up (first call, caches)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--only", default=None, help="run only workloads whose name contains this")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(2)
    print(f"{'workload':44} {'ours ms':>9} {'numpy ms':>9} {'torch ms':>9} {'np/ours':>8} {'torch/ours':>10}")
    for workload in WORKLOADS:
        if args.only and args.only not in workload.name:
            continue
        ours, reference, torch_fn = workload.setup()
        got = ours()
        want = reference()
        np.testing.assert_allclose(got, want, rtol=workload.rtol, atol=workload.atol)
        np.testing.assert_allclose(np.asarray(torch_fn()), want, rtol=workload.rtol,
                                   atol=workload.atol, err_msg="torch's version")
        t_ours = _median_ms(ours, args.repeat)
        t_np = _median_ms(reference, args.repeat)
        t_torch = _median_ms(torch_fn, args.repeat)
        print(f"{workload.name:44} {t_ours:9.3f} {t_np:9.3f} {t_torch:9.3f} "
              f"{t_np / t_ours:8.2f} {t_torch / t_ours:10.2f}")


if __name__ == "__main__":
    main()
