"""The artifact round trip: a built graph saved as .mlirbc/.mlir, loaded by path, run again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from max.driver import CPU
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType, ops

ROOT = Path(__file__).resolve().parents[2]


def _mlp_graph() -> tuple[Graph, tuple[np.ndarray, ...]]:
    rng = np.random.default_rng(1)
    w1 = rng.standard_normal((8, 16), dtype=np.float32)
    b1 = rng.standard_normal(16, dtype=np.float32)
    w2 = rng.standard_normal((16, 4), dtype=np.float32)
    cpu = DeviceRef.CPU()

    def forward(x):
        h = ops.gelu(x @ ops.constant(w1, DType.float32, cpu) + ops.constant(b1, DType.float32, cpu))
        return ops.softmax(h @ ops.constant(w2, DType.float32, cpu))

    graph = Graph("mlp_rt", forward, input_types=[TensorType(DType.float32, ("batch", 8), cpu)])
    return graph, (w1, b1, w2)


def _reference(x, w1, b1, w2):
    import torch

    h = torch.nn.functional.gelu(torch.from_numpy(x @ w1 + b1)).numpy()
    return torch.softmax(torch.from_numpy(h @ w2), -1).numpy()


@pytest.mark.parametrize("suffix", [".mlirbc", ".mlir"])
def test_saved_graph_runs_from_its_path(tmp_path, suffix) -> None:
    graph, weights = _mlp_graph()
    path = tmp_path / f"mlp{suffix}"
    graph.save(path)
    session = InferenceSession(devices=[CPU()])
    from_path = session.load(path)
    from_graph = session.load(graph)
    reloaded = session.load(Graph("x", path=path))
    for batch in (5, 1):  # one compiled model, two sizes of the symbolic batch
        x = np.random.default_rng(batch).standard_normal((batch, 8), dtype=np.float32)
        want = _reference(x, *weights)
        for model in (from_path, from_graph, reloaded):
            (out,) = model.execute(x)
            np.testing.assert_allclose(out.to_numpy(), want, rtol=1e-5, atol=1e-6)


def test_main_job_runs_and_matches_numpy() -> None:
    """`./dev run mlp` runs examples/mlp.py; it must print a small error at two batch sizes."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "mlp.py"), "--iters", "3", "--hidden", "64"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    errors = [float(line.rsplit("=", 1)[1]) for line in proc.stdout.splitlines()
              if "max |error| vs numpy" in line]
    assert len(errors) == 2 and max(errors) < 1e-5, proc.stdout
    assert "time per call" in proc.stdout
