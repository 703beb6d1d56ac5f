"""A warm load of a Graph verifies the entry's constants.bin by comparing it with the graph's
own constants (their sha256 is in the record and was computed for the key) instead of hashing
the file: the same guarantee, and a damaged file is still rebuilt, never used."""

from __future__ import annotations

import gc
import hashlib
import json

import numpy as np
import pytest

from max.compiler import driver
from max.compiler.cache import constants_valid, lookup
from max.compiler.driver import _Graph
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType, ops
from max.runtime.artifact import digest

CPU = DeviceRef.CPU()
N = 1100  # 4400 bytes (above the externalized minimum): 16 bytes of padding follow


def _weights() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    return rng.standard_normal(N, dtype=np.float32), rng.standard_normal(N, dtype=np.float32)


def _graph(w1: np.ndarray, w2: np.ndarray) -> Graph:
    t = TensorType(DType.float32, (N,), CPU)
    return Graph("twoconst", lambda x: x * ops.constant(w1, DType.float32, CPU)
                 + ops.constant(w2, DType.float32, CPU), input_types=[t])


def _entry(cache):
    (entry,) = [p for p in cache.iterdir() if not p.name.startswith(".")]
    return entry


def _check(model, w1, w2) -> None:
    x = np.linspace(-2, 2, N, dtype=np.float32)
    np.testing.assert_allclose(model.execute(x)[0].to_numpy(), x * w1 + w2, rtol=1e-6)


def test_record_has_each_constants_digest(private_cache):
    w1, w2 = _weights()
    model = InferenceSession().load(_graph(w1, w2))
    _check(model, w1, w2)
    record = model._record
    assert [c.sha256 for c in record.constants] == [
        hashlib.sha256(w.tobytes()).hexdigest() for w in (w1, w2)]
    assert record.constants[1].offset == 4416  # 16 bytes of padding after the first


def test_constants_valid_accepts_only_the_exact_file(private_cache):
    w1, w2 = _weights()
    g = _graph(w1, w2)
    InferenceSession().load(g)
    source = _Graph(g)
    entry = lookup(_entry(private_cache).name, private_cache)
    assert entry is not None
    blob, record = entry.constants, entry.record
    assert len(source.constants) == 2
    assert constants_valid(blob, record, source.constants)
    for where in (0, 4410, len(blob) - 1):  # data, padding, last byte
        bad = bytearray(blob)
        bad[where] ^= 1
        assert not constants_valid(bytes(bad), record, source.constants)
    assert not constants_valid(bytes(blob) + bytes(64), record, source.constants)
    other = dict(source.constants)
    other.pop(record.constants[0].sha256)
    # Unknown data: that constant is checked by its own digest instead, as strictly.
    assert constants_valid(blob, record, other)
    bad = bytearray(blob)
    bad[0] ^= 1
    assert not constants_valid(bytes(bad), record, other)


@pytest.mark.parametrize("where", ["data", "padding"])
def test_damaged_constants_are_rebuilt_on_a_graph_load(private_cache, where):
    w1, w2 = _weights()
    session = InferenceSession()
    _check(session.load(_graph(w1, w2)), w1, w2)
    path = _entry(private_cache) / "constants.bin"
    blob = bytearray(path.read_bytes())
    blob[100 if where == "data" else 4410] ^= 0x40
    path.write_bytes(bytes(blob))
    before = driver.stats["compiles"]
    _check(session.load(_graph(w1, w2)), w1, w2)
    assert driver.stats["compiles"] == before + 1


def test_a_wrong_constant_digest_in_the_record_falls_back_to_the_file_hash(private_cache):
    """The per-constant digest only picks what to compare with: a record whose digest names
    no constant of the graph is checked against constants_sha256 as before."""
    w1, w2 = _weights()
    session = InferenceSession()
    _check(session.load(_graph(w1, w2)), w1, w2)
    entry = _entry(private_cache)
    meta = json.loads((entry / "meta.json").read_text())
    meta["constants"][0]["sha256"] = "0" * 64
    (entry / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    (entry / "meta.sha256").write_text(digest((entry / "meta.json").read_bytes()) + "\n")
    before = driver.stats["compiles"]
    _check(session.load(_graph(w1, w2)), w1, w2)
    assert driver.stats["compiles"] == before  # the file is whole: loaded


def _linear(w: np.ndarray) -> Graph:
    # N a multiple of 32, static f32: the weight is stored in matmul panel order, so its
    # bytes in constants.bin are not the graph's and are verified by their own digest.
    t = TensorType(DType.float32, (32, w.shape[0]), CPU)
    return Graph("packed", lambda x: x @ ops.constant(w, DType.float32, CPU), input_types=[t])


def test_constants_stored_in_another_layout_are_verified_by_their_own_digests(private_cache):
    w = np.random.default_rng(4).standard_normal((128, 96), dtype=np.float32)
    x = np.random.default_rng(5).standard_normal((32, 128), dtype=np.float32)
    session = InferenceSession()
    np.testing.assert_allclose(session.load(_linear(w)).execute(x)[0].to_numpy(), x @ w,
                               rtol=1e-5, atol=1e-5)
    entry = lookup(_entry(private_cache).name, private_cache)
    assert entry is not None
    blob, record = entry.constants, entry.record
    assert blob[:w.nbytes] != w.tobytes()  # packed, not the graph's layout
    assert constants_valid(blob, record, {})
    for where in (0, w.nbytes // 2, len(blob) - 1):
        bad = bytearray(blob)
        bad[where] ^= 1
        assert not constants_valid(bytes(bad), record, {})
    path = _entry(private_cache) / "constants.bin"
    damaged = bytearray(path.read_bytes())
    damaged[100] ^= 0x40
    path.write_bytes(bytes(damaged))
    # Nothing holds the verified copy any more (while something did, a load would share it
    # and never read the file: the next test).
    del entry, blob
    gc.collect()
    before = driver.stats["compiles"]
    model = session.load(_linear(w))
    assert driver.stats["compiles"] == before + 1
    np.testing.assert_allclose(model.execute(x)[0].to_numpy(), x @ w, rtol=1e-5, atol=1e-5)


def test_large_constants_are_shared_by_the_loads_of_one_graph(private_cache):
    """A graph loaded again while a model of it lives (a decoder's block, once per layer)
    maps its verified constants once; they are content-addressed (by the sha256 the record
    holds), so a file damaged since is not read for them."""
    big = 600_000  # 2.4 MB: read into huge pages, shared
    rng = np.random.default_rng(4)
    w1 = rng.standard_normal(big, dtype=np.float32)
    w2 = rng.standard_normal(big, dtype=np.float32)
    t = TensorType(DType.float32, (big,), CPU)

    def graph() -> Graph:
        return Graph("bigconst", lambda x: x * ops.constant(w1, DType.float32, CPU)
                     + ops.constant(w2, DType.float32, CPU), input_types=[t])

    x = np.linspace(-2, 2, big, dtype=np.float32)
    session = InferenceSession()
    first = session.load(graph())
    path = _entry(private_cache) / "constants.bin"
    blob = bytearray(path.read_bytes())
    blob[100] ^= 0x40
    path.write_bytes(bytes(blob))
    second = session.load(graph())
    a, b = (m._exe._fixed[0] for m in (first, second))
    assert np.shares_memory(a, b)
    for m in (first, second):
        np.testing.assert_allclose(m.execute(x)[0].to_numpy(), x * w1 + w2, rtol=1e-6)
