"""What a session compiles in: large constants beside the binary (constants.bin), threads."""

from __future__ import annotations

import json

import numpy as np

from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType, ops

CPU = DeviceRef.CPU()


def test_large_constants_are_external_and_correct(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MAX_CACHE_DIR", str(tmp_path))
    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 40), dtype=np.float32)       # 2560 elements: external
    b = rng.standard_normal(40, dtype=np.float32)              # 40 elements: stays in code
    idx = rng.integers(0, 40, size=(2000,), dtype=np.int64)    # external, another dtype
    half = rng.standard_normal((32, 40)).astype(np.float16)   # external, 2-byte elements

    def forward(x):
        y = x @ ops.constant(w, DType.float32, CPU) + ops.constant(b, DType.float32, CPU)
        picked = ops.gather(y, ops.constant(idx, DType.int64, CPU), axis=1)
        first = ops.slice_tensor(y, [(slice(None, 32), 32)])
        return picked, first * ops.constant(half, DType.float16, CPU).cast(DType.float32)

    graph = Graph("consts", forward, input_types=[TensorType(DType.float32, ("n", 64), CPU)])
    model = InferenceSession().load(graph)
    record = model._record
    assert [c.dims for c in record.constants] == [(64, 40), (2000,), (32, 40)]
    assert all(c.offset % 64 == 0 for c in record.constants)
    assert json.loads((model._artifact.path / "meta.json").read_text())["constants"] == (
        [c.to_json() for c in record.constants])
    for n in (32, 33):
        x = rng.standard_normal((n, 64), dtype=np.float32)
        picked, scaled = (o.to_numpy() for o in model.execute(x))
        y = x @ w + b
        np.testing.assert_allclose(picked, y[:, idx], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(scaled, y[:32] * half.astype(np.float32), rtol=1e-5, atol=1e-5)
    assert len(model.input_metadata) == 1  # constants are not user inputs


def _kmpc_calls(model) -> bool:
    import subprocess

    out = subprocess.run(["nm", "-D", "--undefined-only", str(model._artifact.path / "model.so")],
                         capture_output=True, text=True, check=True).stdout
    return "__kmpc_fork_call" in out


def test_num_threads_is_compiled_in(tmp_path, monkeypatch) -> None:
    """InferenceSession(num_threads=1) builds single-thread code; more threads use OpenMP."""
    monkeypatch.setenv("MAX_CACHE_DIR", str(tmp_path))
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((256, 256), dtype=np.float32) for _ in range(2))
    graph = Graph("mm", lambda x, y: x @ y,
                  input_types=[TensorType(DType.float32, (256, 256), CPU)] * 2)
    single = InferenceSession(num_threads=1).load(graph)
    double = InferenceSession(num_threads=2).load(graph)
    assert not _kmpc_calls(single) and _kmpc_calls(double)
    for model in (single, double):
        np.testing.assert_allclose(model.execute(a, b)[0].to_numpy(), a @ b, rtol=1e-4, atol=1e-4)
