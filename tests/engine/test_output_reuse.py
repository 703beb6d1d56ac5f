"""Outputs reuse memory across calls, safely: an output the caller keeps is never written by a
later call, memory stays flat over many calls, and symbolic and data-sized outputs stay right.
Expected values from numpy."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from max.driver import Tensor
from max.dtype import DType
from max.graph import DeviceRef, Graph, TensorType, ops
from max.runtime.pool import OUTPUT_POOL

import graphs

CPU = DeviceRef.CPU()
ROWS = 200_000  # [ROWS, 3] f32 = 2.4 MB: pooled


@pytest.fixture
def add(load):
    return load(graphs.ADD)  # [batch, 3] + [batch, 3]


def _inputs(seed: int, rows: int = ROWS) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((rows, 3), dtype=np.float32),
            rng.standard_normal((rows, 3), dtype=np.float32))


def test_a_kept_output_is_never_overwritten(add) -> None:
    kept = []
    for seed in range(6):
        a, b = _inputs(seed)
        out = add.execute(a, b)[0]
        kept.append((out, a + b))
        if seed % 2:  # drop some others, so that their blocks are reused meanwhile
            _ = add.execute(*_inputs(100 + seed))
    gc.collect()
    for _ in range(4):
        add.execute(*_inputs(99))
    for out, want in kept:
        np.testing.assert_array_equal(out.to_numpy(), want)
    pointers = {out._data_ptr() for out, _ in kept}
    assert len(pointers) == len(kept)


def test_views_and_dlpack_exports_keep_the_memory(add) -> None:
    torch = pytest.importorskip("torch")
    a, b = _inputs(1)
    out = add.execute(a, b)[0]
    view = out.to_numpy()[10:20]
    exported = torch.from_dlpack(out)
    del out
    gc.collect()
    for seed in range(3):
        add.execute(*_inputs(10 + seed))
    np.testing.assert_array_equal(view, (a + b)[10:20])
    np.testing.assert_array_equal(exported.numpy(), a + b)


def test_a_dropped_output_is_reused(add) -> None:
    a, b = _inputs(2)
    add.execute(a, b)  # warm: the block exists and is back
    gc.collect()
    reused = OUTPUT_POOL.reused
    first = add.execute(a, b)[0]
    p = first._data_ptr()
    del first
    second = add.execute(*_inputs(3))[0]
    assert second._data_ptr() == p and OUTPUT_POOL.reused >= reused + 2
    np.testing.assert_array_equal(second.to_numpy(), np.add(*_inputs(3)))


def test_symbolic_sizes_each_get_their_own_block(add) -> None:
    outs = []
    for rows in (ROWS, 1, ROWS + 1, 7, 3 * ROWS, 90_001):
        a, b = _inputs(rows, rows)
        outs.append((add.execute(a, b)[0], a + b))
    for out, want in outs:
        assert tuple(out.shape) == want.shape
        np.testing.assert_array_equal(out.to_numpy(), want)


def test_the_pool_stays_under_its_limit(add) -> None:
    old = OUTPUT_POOL.limit
    try:
        OUTPUT_POOL.limit = 3 * ROWS * 3 * 4
        held = [add.execute(*_inputs(s))[0] for s in range(10)]
        assert OUTPUT_POOL.idle_bytes <= OUTPUT_POOL.limit
        del held
        gc.collect()
        assert 0 < OUTPUT_POOL.idle_bytes <= OUTPUT_POOL.limit
    finally:
        OUTPUT_POOL.limit = old


def test_limit_zero_turns_pooling_off(add) -> None:
    old = OUTPUT_POOL.limit
    try:
        OUTPUT_POOL.limit = 0
        fresh = OUTPUT_POOL.fresh
        a, b = _inputs(4)
        for _ in range(3):
            np.testing.assert_array_equal(add.execute(a, b)[0].to_numpy(), a + b)
        assert OUTPUT_POOL.fresh == fresh and OUTPUT_POOL.idle_bytes == 0
    finally:
        OUTPUT_POOL.limit = old


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_memory_is_flat_over_many_calls(add) -> None:
    a, b = _inputs(5, 1 << 20)  # 12 MiB per output
    want = a + b
    kept = add.execute(a, b)[0]

    def calls(n: int) -> None:
        out = None
        for k in range(n):
            out = add.execute(a, b)[0]  # the previous `out` lives while this call runs
            if k % 50 == 0:
                np.testing.assert_array_equal(out.to_numpy(), want)
        del out
        gc.collect()

    # The same loop first, so that malloc's heap reaches its plateau: glibc raises its mmap
    # threshold after a 12 MiB block is freed, and keeps a few such blocks (the comparison's
    # temporaries among them) in its heap from then on. That plateau is not a leak; growth after
    # it is. A leak of one output per call would be 2.4 GiB over the measured 200 calls.
    calls(100)
    before = _rss_bytes()
    calls(200)
    assert _rss_bytes() - before < 24 << 20
    np.testing.assert_array_equal(kept.to_numpy(), want)


def test_data_sized_outputs_are_still_adopted(session, module_cache) -> None:
    """nonzero's output is allocated by the compiled code and returned (not pooled)."""
    with Graph("nz_reuse", input_types=[TensorType(DType.float32, ("n",), CPU)]) as g:
        x = g.inputs[0]
        g.output(ops.nonzero(x, "nnz"), x * 2.0)
    model = session.load(g)
    rng = np.random.default_rng(0)
    kept = []
    for n in (1 << 19, 5, 1 << 19):
        x = (rng.random(n) < 0.5).astype(np.float32) * rng.standard_normal(n, dtype=np.float32)
        idx, twice = model.execute(x)
        kept.append((idx, twice, x))
    for idx, twice, x in kept:
        np.testing.assert_array_equal(idx.to_numpy(), np.argwhere(x))
        np.testing.assert_array_equal(twice.to_numpy(), x * 2.0)


def test_outputs_are_tensors_of_the_right_dtype(add) -> None:
    out = add.execute(*_inputs(6))[0]
    assert isinstance(out, Tensor) and out.dtype == DType.float32
    assert out.to_numpy().flags.c_contiguous and out.to_numpy().flags.writeable


def test_a_malformed_pool_size_fails_at_session_creation(monkeypatch) -> None:
    from max.engine import InferenceSession

    monkeypatch.setenv("MAX_OUTPUT_POOL_BYTES", "256M")
    with pytest.raises(ValueError, match="MAX_OUTPUT_POOL_BYTES"):
        InferenceSession()


def test_threads_never_share_an_output(add) -> None:
    """Concurrent calls, some outputs dropped at once (their blocks return from any thread)."""
    from concurrent.futures import ThreadPoolExecutor

    def work(seed: int) -> list[tuple[Tensor, np.ndarray]]:
        kept = []
        for k in range(12):
            a, b = _inputs(1000 * seed + k)
            out = add.execute(a, b)[0]
            if k % 3:
                kept.append((out, a + b))
        return kept

    with ThreadPoolExecutor(4) as pool:
        results = [r for kept in pool.map(work, range(4)) for r in kept]
    gc.collect()
    for out, want in results:
        np.testing.assert_array_equal(out.to_numpy(), want)
    assert len({out._data_ptr() for out, _ in results}) == len(results)
