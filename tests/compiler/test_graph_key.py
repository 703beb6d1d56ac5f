"""The content digest of a module in memory (compiler/graph_key.py), which keys the cache of a
Graph load without writing its bytecode: equal content, equal digest; any change, another."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from mlir import ir

from max.compiler import driver
from max.compiler.graph_key import LARGE_ELEMENTS, module_digest
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType, ops

N = 300  # elements of each weight: above LARGE_ELEMENTS, so hashed from its data
CPU = DeviceRef.CPU()


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MAX_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _graph(w1: np.ndarray, w2: np.ndarray, small: float = 2.0) -> Graph:
    t = TensorType(DType.float32, (N,), CPU)

    def forward(x):
        a = x * ops.constant(w1, DType.float32, CPU)
        return a + ops.constant(w2, DType.float32, CPU) + small

    return Graph("keyed", forward, input_types=[t])


def _weights(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(N, dtype=np.float32), rng.standard_normal(N, dtype=np.float32))


def _digest(g: Graph) -> bytes:
    d = module_digest(g._module)
    assert d is not None
    return d


def test_equal_content_equal_digest_across_contexts():
    w1, w2 = _weights()
    a, b = _graph(w1, w2), _graph(w1.copy(), w2.copy())
    assert a._context is not b._context
    assert _digest(a) == _digest(b)


@pytest.mark.parametrize("change", ["one_element", "swap_weights", "small_constant", "nan_bits"])
def test_any_change_changes_the_digest(change):
    w1, w2 = _weights()
    base = _digest(_graph(w1, w2))
    if change == "one_element":
        w1 = w1.copy()
        w1[N // 2] = np.nextafter(w1[N // 2], np.float32(np.inf))
        other = _graph(w1, w2)
    elif change == "swap_weights":  # the same two arrays, at each other's place
        other = _graph(w2, w1)
    elif change == "small_constant":  # printed in the text, not hashed apart
        other = _graph(w1, w2, small=3.0)
    else:  # two NaNs of different bits: the data's bytes count, not its values
        w1 = w1.copy()
        w1[0] = np.float32("nan")
        base = _digest(_graph(w1, w2))
        w1.view(np.uint32)[0] ^= 1
        other = _graph(w1, w2)
    assert _digest(other) != base


def test_memo_reuses_digests_and_stays_right():
    w1, w2 = _weights()
    g = _graph(w1, w2)
    memo: dict[int, bytes] = {}
    first = module_digest(g._module, memo)
    assert len(memo) == 2  # one per large constant
    assert module_digest(g._module, memo) == first == _digest(g)


def _raw_module(text: str) -> ir.Module:
    ctx = ir.Context()
    ctx.allow_unregistered_dialects = True
    return ir.Module.parse(text, ctx)


def _dense(values: list[float]) -> str:
    return "dense<[" + ", ".join(f"{v:.1f}" for v in values) + f"]> : tensor<{len(values)}xf32>"


def test_nested_large_attribute_is_hashed():
    vals = [float(i) for i in range(LARGE_ELEMENTS + 5)]
    text = '"test.op"() {{a = [1, {{w = {}}}]}} : () -> ()'
    base = module_digest(_raw_module(text.format(_dense(vals))))
    vals[3] += 1
    other = module_digest(_raw_module(text.format(_dense(vals))))
    assert base is not None and other is not None and base != other


def test_marker_in_a_string_falls_back():
    """A string spelling the elision marker could stand for hashed data: no digest then
    (the caller hashes the bytecode)."""
    vals = [float(i) for i in range(LARGE_ELEMENTS + 5)]
    text = f'"test.op"() {{s = "dense_resource<__elided__>", w = {_dense(vals)}}} : () -> ()'
    assert module_digest(_raw_module(text)) is None


def test_bf16_constant_falls_back_to_bytecode(private_cache):
    """No buffer for bf16 data: the key is the bytecode's hash, and the cache still hits."""
    import ml_dtypes

    w = np.arange(N, dtype=np.float32).astype(ml_dtypes.bfloat16)
    t = TensorType(DType.bfloat16, (N,), CPU)

    def build() -> Graph:
        return Graph("bf", lambda x: x + ops.constant(w, DType.bfloat16, CPU), input_types=[t])

    assert module_digest(build()._module) is None
    x = np.ones(N, ml_dtypes.bfloat16)
    session = InferenceSession()
    out = session.load(build()).execute(x)[0].to_numpy()
    np.testing.assert_array_equal(out.astype(np.float32), (x + w).astype(np.float32))
    hits = driver.stats["cache_hits"]
    session.load(build())
    assert driver.stats["cache_hits"] == hits + 1


def test_graph_loads_keyed_by_content(private_cache):
    """Two graphs that differ only in a weight's data are two entries with their own results;
    a new Graph of the same content hits the first entry."""
    w1, w2 = _weights()
    x = np.linspace(-1, 1, N, dtype=np.float32)
    session = InferenceSession()
    compiles = driver.stats["compiles"]
    out = session.load(_graph(w1, w2)).execute(x)[0].to_numpy()
    np.testing.assert_allclose(out, x * w1 + w2 + 2, rtol=1e-6)
    w1b = w1.copy()
    w1b[7] += 1
    out = session.load(_graph(w1b, w2)).execute(x)[0].to_numpy()
    np.testing.assert_allclose(out, x * w1b + w2 + 2, rtol=1e-6)
    assert driver.stats["compiles"] == compiles + 2
    hits = driver.stats["cache_hits"]
    g = _graph(w1, w2)
    for _ in range(2):  # the second load reuses the digests kept beside the graph
        out = session.load(g).execute(x)[0].to_numpy()
        np.testing.assert_allclose(out, x * w1 + w2 + 2, rtol=1e-6)
    assert driver.stats["cache_hits"] == hits + 2
    assert driver.stats["compiles"] == compiles + 2
    assert len(g._attribute_digests) == 2


def test_two_hashing_threads_give_the_one_thread_digest(monkeypatch):
    """Above _PARALLEL_BYTES the constants are hashed on two threads: same digest, same
    per-constant digests (the record's), in the same order."""
    from max.compiler import graph_key

    rng = np.random.default_rng(5)
    big = [rng.standard_normal(300_000, dtype=np.float32) for _ in range(3)]
    t = TensorType(DType.float32, (300_000,), CPU)
    g = Graph("big", lambda x: x * ops.constant(big[0], DType.float32, CPU)
              + ops.constant(big[1], DType.float32, CPU) - ops.constant(big[2], DType.float32, CPU),
              input_types=[t])
    data: dict[str, memoryview] = {}
    threaded = module_digest(g._module, None, data)
    assert sorted(data) == sorted(hashlib.sha256(w.tobytes()).hexdigest() for w in big)
    assert all(bytes(data[hashlib.sha256(w.tobytes()).hexdigest()]) == w.tobytes() for w in big)
    monkeypatch.setattr(graph_key, "_PARALLEL_BYTES", 1 << 40)
    assert module_digest(g._module) == threaded
