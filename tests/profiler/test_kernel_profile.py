"""MAX_PROFILE_KERNELS: compiled models time each kernel and say whether it was scheduled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from max import profiler
from max.compiler.driver import compile_graph
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType, ops
from max.runtime.artifact import profile_symbol

CPU = DeviceRef.CPU()
ENV = "MAX_PROFILE_KERNELS"


def _matmul_softmax() -> Graph:
    types = [TensorType(DType.float32, (37, 96), CPU), TensorType(DType.float32, (96, 129), CPU)]
    return Graph("mm_softmax", lambda a, b: ops.softmax(a @ b), input_types=types)


def _int_matmul() -> Graph:
    # An i32 matmul: cpu_schedule.classify schedules f32 matmuls only, so it stays plain loops.
    types = [TensorType(DType.int32, (9, 17), CPU), TensorType(DType.int32, (17, 5), CPU)]
    return Graph("int_matmul", lambda a, b: ops.relu(a @ b), input_types=types)


def _softmax_ref(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


pytestmark = pytest.mark.usefixtures("no_profile_table_at_exit")


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((37, 96), dtype=np.float32),
            rng.standard_normal((96, 129), dtype=np.float32))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The matmul + softmax graph loaded without and with kernel profiling."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MAX_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        mp.delenv(ENV, raising=False)
        plain = InferenceSession().load(_matmul_softmax())
        mp.setenv(ENV, "1")
        profiled = InferenceSession().load(_matmul_softmax())
        yield plain, profiled


def test_profiled_model_gives_the_same_numbers(models, inputs):
    plain, profiled = models
    a, b = inputs
    want = _softmax_ref(a.astype(np.float64) @ b.astype(np.float64))
    got_plain = plain.execute(a, b)[0].to_numpy()
    got_profiled = profiled.execute(a, b)[0].to_numpy()
    np.testing.assert_allclose(got_profiled, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got_profiled, got_plain)


def test_kernel_table_lists_scheduled_kernels(models, inputs):
    _, profiled = models
    record = profiled._record
    assert record.options["profile_kernels"] is True and record.kernels
    labels = [k.label for k in record.kernels]
    assert any("matmul" in label for label in labels), labels
    assert any("softmax" in label for label in labels), labels
    for k in record.kernels:
        if "matmul" in k.label or "softmax" in k.label:
            assert not k.plain and k.vector, k
    stats = profiled._kernel_run.stats
    before = stats.model_calls
    for _ in range(3):
        profiled.execute(*inputs)
    assert stats.model_calls == before + 3
    assert (stats.calls == stats.model_calls).all()  # each kernel once per call
    assert (stats.total_ns >= 0).all() and stats.total_ns.sum() <= stats.wall_ns
    rows = stats.rows()
    assert rows[-1].label == "(outside kernels)"
    assert [r.total_ms for r in rows[:-1]] == sorted((r.total_ms for r in rows[:-1]),
                                                     reverse=True)
    assert abs(sum(r.percent for r in rows) - 100.0) < 1e-6
    table = stats.table()
    assert "'mm_softmax'" in table and "vector" in table and "PLAIN" not in table
    assert "softmax" in profiler.kernel_report()


def test_unprofiled_build_has_no_instrumentation(models, tmp_path, monkeypatch):
    plain, profiled = models
    assert plain._record.kernels is None and "profile_kernels" not in plain._record.options
    assert plain._kernel_run is None
    monkeypatch.setenv("MAX_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(ENV, raising=False)
    bare = compile_graph(_matmul_softmax())
    monkeypatch.setenv(ENV, "1")
    timed = compile_graph(_matmul_softmax())
    assert bare.key != timed.key  # the switch is part of the cache key
    symbol = profile_symbol("mm_softmax").encode()
    assert symbol not in bare.binary and b"clock_gettime" not in bare.binary
    assert symbol in timed.binary and b"clock_gettime" in timed.binary


def test_plain_kernels_are_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("MAX_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv(ENV, "1")
    model = InferenceSession().load(_int_matmul())
    rng = np.random.default_rng(1)
    a = rng.integers(-50, 50, (9, 17), dtype=np.int32)
    b = rng.integers(-50, 50, (17, 5), dtype=np.int32)
    np.testing.assert_array_equal(model.execute(a, b)[0].to_numpy(), np.maximum(a @ b, 0))
    plain = [k for k in model._record.kernels if k.plain]
    assert any("matmul" in k.label for k in plain), model._record.kernels
    assert "PLAIN" in model._kernel_run.stats.table()


def test_scalar_loops_of_the_lowering_are_neither_plain_nor_vector(tmp_path, monkeypatch):
    # nonzero is written as scalar loops by its lowering: no linalg left, no vector code.
    monkeypatch.setenv("MAX_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv(ENV, "1")
    t = TensorType(DType.float32, ("n",), CPU)
    model = InferenceSession().load(Graph("nz", lambda x: ops.nonzero(x, "k"), input_types=[t]))
    x = np.array([0, 1.5, 0, -2, 0, 0, 3], np.float32)
    got = model.execute(x)[0].to_numpy()
    np.testing.assert_array_equal(got.ravel(), np.nonzero(x)[0])
    (kernel,) = [k for k in model._record.kernels if "nonzero" in k.label]
    assert not kernel.plain and not kernel.vector
    assert "scalar" in model._kernel_run.stats.table()


def test_kernels_nest_in_execute_spans(models, inputs):
    _, profiled = models
    profiler.reset()
    profiler.enable_profiling()
    try:
        profiled.execute(*inputs)
        profiled.execute(*inputs)
        trace = json.loads(json.dumps(profiler.chrome_trace()))
    finally:
        profiler.enable_profiling(False)
        profiler.reset()
    spans = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    calls = [e for e in spans if e["name"] == "mm_softmax.execute"]
    kernels = [e for e in spans if e["cat"] == "kernel"]
    assert len(calls) == 2 and all(e["cat"] == "model" for e in calls)
    assert len(kernels) == 2 * len(profiled._record.kernels)
    for k in kernels:
        assert k["dur"] >= 0 and isinstance(k["args"]["scheduled"], bool)
        parents = [c for c in calls if c["tid"] == k["tid"]
                   and c["ts"] - 0.002 <= k["ts"] and k["ts"] + k["dur"] <= c["ts"] + c["dur"]
                   + 0.002]
        assert len(parents) == 1, (k, calls)


@pytest.mark.parametrize("value, message", [
    ("yes", "must be 0, 1 or the path of a Chrome trace file ending in .json, got 'yes'"),
    ("2", "got '2'"),
    ("/no/such/dir/trace.json", "directory /no/such/dir does not exist"),
])
def test_bad_values_are_clear_errors(value, message, monkeypatch):
    monkeypatch.setenv(ENV, value)
    with pytest.raises(ValueError, match=f"{ENV}.*{message}"):
        InferenceSession()
    with pytest.raises(ValueError, match=ENV):
        compile_graph(_int_matmul())


def test_trace_file_and_table_at_exit(tmp_path):
    trace = tmp_path / "trace.json"
    code = textwrap.dedent("""
        import numpy as np
        from max.dtype import DType
        from max.engine import InferenceSession
        from max.graph import DeviceRef, Graph, TensorType, ops
        from max.profiler import Tracer
        t = TensorType(DType.float32, (8, 16), DeviceRef.CPU())
        model = InferenceSession().load(Graph("sm", lambda x: ops.softmax(x), input_types=[t]))
        with Tracer("outer"):
            model.execute(np.ones((8, 16), np.float32))
    """)
    env = {**os.environ, ENV: str(trace)}
    env.pop("MODULAR_ENABLE_PROFILING", None)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "model 'sm': 1 calls" in r.stderr and "softmax" in r.stderr
    events = json.loads(trace.read_text())["traceEvents"]
    names = {e["name"]: e for e in events if e["ph"] == "X"}
    assert {"outer", "sm.execute", "softmax"} <= set(names)
    assert names["softmax"]["cat"] == "kernel"
