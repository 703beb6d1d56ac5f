"""Large intermediates are kept between calls by the model's scratch allocator
(compiler/pipelines/scratch.py): no page faults after the first call, right numbers (vs
numpy), flat memory, returned outputs freed through the model, and the limit is honoured."""

from __future__ import annotations

import gc
import os
import resource
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from max.dtype import DType
from max.graph import DeviceRef, Graph, TensorType, ops

CPU = DeviceRef.CPU()
ROWS, COLS = 2304, 4096  # softmax over the rows keeps a [ROWS, COLS] f32 intermediate (its
# exp): 36 MiB, which glibc always maps anew (its mmap threshold stops at 32 MiB). Over the
# last axis it keeps none (row_fusion), hence axis 0.


def _softmax_graph() -> Graph:
    return Graph("scratch_softmax", lambda v: ops.softmax(v, axis=0),
                 input_types=[TensorType(DType.float32, ("rows", COLS), CPU)])


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@pytest.fixture(scope="module")
def softmax(session, module_cache):
    return session.load(_softmax_graph())


def test_the_model_links_the_scratch_allocator(softmax) -> None:
    assert softmax._exe._free is not None
    assert getattr(softmax._exe._function.free, "_library", None) is not None


def test_intermediates_take_no_page_faults_after_the_first_call(softmax) -> None:
    x = np.random.default_rng(0).standard_normal((ROWS, COLS), dtype=np.float32)
    want = _softmax(x)
    kept = softmax.execute(x)[0]  # first call: the scratch block is new
    softmax.execute(x)  # and a second output block, which the loop below reuses
    faults = 0
    for _ in range(10):
        before = _faults()  # the calls alone: numpy's checks below fault on fresh memory
        out = softmax.execute(x)[0]
        faults += _faults() - before
        np.testing.assert_allclose(out.to_numpy(), want, rtol=1e-5, atol=1e-7)
        del out
    # A fresh 36 MiB block costs 9216 faults per call; kept, a handful remain.
    assert faults / 10 < 100
    np.testing.assert_allclose(kept.to_numpy(), want, rtol=1e-5, atol=1e-7)


def test_other_sizes_stay_right(softmax) -> None:
    rng = np.random.default_rng(1)
    for rows in (1, 3, ROWS + 1, 2 * ROWS, 17):
        x = rng.standard_normal((rows, COLS), dtype=np.float32)
        np.testing.assert_allclose(softmax.execute(x)[0].to_numpy(), _softmax(x), rtol=1e-5,
                                   atol=1e-7)


def test_returned_outputs_are_freed_through_the_model(session, module_cache) -> None:
    """nonzero's result (4 MiB here) comes from the model's malloc and goes back to its free."""
    with Graph("scratch_nonzero", input_types=[TensorType(DType.float32, ("n",), CPU)]) as g:
        g.output(ops.nonzero(g.inputs[0], "nnz"))
    model = session.load(g)
    assert model._exe._free is not None
    x = np.arange(1, (1 << 19) + 1, dtype=np.float32)
    want = np.argwhere(x)
    kept = model.execute(x)[0]
    gc.collect()
    with open("/proc/self/statm") as f:
        before = int(f.read().split()[1]) * 4096
    for _ in range(50):
        out = model.execute(x)[0]
        assert out.to_numpy().shape == want.shape
    del out
    gc.collect()
    with open("/proc/self/statm") as f:
        grown = int(f.read().split()[1]) * 4096 - before
    assert grown < 32 << 20
    np.testing.assert_array_equal(kept.to_numpy(), want)
    del kept
    np.testing.assert_array_equal(model.execute(x[:5])[0].to_numpy(), want[:5])


_CHILD = textwrap.dedent("""
    import resource, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from test_scratch_reuse import _softmax, _softmax_graph
    from max.engine import InferenceSession
    model = InferenceSession().load(_softmax_graph())
    x = np.random.default_rng(0).standard_normal((2304, 4096), dtype=np.float32)
    model.execute(x)
    faults = 0
    for _ in range(5):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        out = model.execute(x)[0]
        faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
        np.testing.assert_allclose(out.to_numpy(), _softmax(x), rtol=1e-5, atol=1e-7)
    print(faults // 5)
""")


def test_a_zero_limit_keeps_nothing(module_cache, session) -> None:
    session.load(_softmax_graph())  # compiled into the shared cache: the child only loads
    env = dict(os.environ, MAX_SCRATCH_POOL_BYTES="0", MAX_OUTPUT_POOL_BYTES="0")
    r = subprocess.run([sys.executable, "-c", _CHILD, os.path.dirname(__file__)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    # Nothing kept: each call maps its intermediate (and output) anew, and is still right.
    assert int(r.stdout.split()[-1]) > 500


@pytest.mark.parametrize("text", ["-5", "1.5", "big", "²"])
def test_a_malformed_scratch_limit_fails_at_session_creation(monkeypatch, text: str) -> None:
    from max.engine import InferenceSession

    monkeypatch.setenv("MAX_SCRATCH_POOL_BYTES", text)
    with pytest.raises(ValueError, match="MAX_SCRATCH_POOL_BYTES"):
        InferenceSession()
