"""The output pool on its own: a block is lent again only once every array over it is gone,
idle blocks stay under the limit, and the environment knob is checked."""

from __future__ import annotations

import gc

import ml_dtypes
import numpy as np
import pytest

from max.runtime.pool import MIN_POOLED_BYTES, OutputPool, pool_limit_from_env

F32 = np.dtype(np.float32)
SHAPE = (512, 1024)  # 2 MiB of f32
NBYTES = 512 * 1024 * 4


def _take(pool: OutputPool, shape=SHAPE, dtype=F32) -> tuple[np.ndarray, int]:
    return pool.empty(shape, dtype, dtype.itemsize * int(np.prod(shape)))


def test_a_live_array_is_never_lent_again() -> None:
    pool = OutputPool(64 << 20)
    first, p1 = _take(pool)
    first[...] = 1.0
    others = [_take(pool) for _ in range(4)]
    assert p1 not in {p for _, p in others}
    for arr, _ in others:
        arr[...] = 7.0
    np.testing.assert_array_equal(first, np.ones(SHAPE, np.float32))
    assert pool.fresh == 5 and pool.reused == 0


def test_a_view_keeps_the_block() -> None:
    pool = OutputPool(64 << 20)
    arr, p = _take(pool)
    view = arr[3:5].reshape(-1)
    del arr
    gc.collect()
    again, q = _take(pool)
    assert q != p  # the view still reads the first block
    del view
    gc.collect()
    third, r = _take(pool)
    assert r == p and pool.reused == 1


def test_the_array_is_page_aligned_contiguous_and_typed() -> None:
    pool = OutputPool(64 << 20)
    arr, p = _take(pool, (3, 5, 70001), np.dtype(np.int16))
    assert p % 4096 == 0 and arr.ctypes.data == p
    assert arr.shape == (3, 5, 70001) and arr.dtype == np.int16
    assert arr.flags.c_contiguous and arr.flags.writeable
    bf16, _ = _take(pool, (1024, 600), np.dtype(ml_dtypes.bfloat16))
    assert bf16.dtype == ml_dtypes.bfloat16 and bf16.shape == (1024, 600)
    bf16[...] = 1.5
    assert float(bf16.astype(np.float32).sum()) == 1.5 * 1024 * 600


def test_idle_blocks_stay_under_the_limit() -> None:
    pool = OutputPool(5 * NBYTES)
    held = [_take(pool)[0] for _ in range(12)]
    assert pool.idle_bytes == 0
    del held
    gc.collect()
    assert pool.idle_blocks == 5 and pool.idle_bytes == 5 * NBYTES
    pool.limit = 2 * NBYTES
    assert pool.idle_bytes == 2 * NBYTES
    pool.clear()
    assert pool.idle_bytes == 0 and pool.idle_blocks == 0


def test_least_recently_returned_sizes_are_evicted_first() -> None:
    pool = OutputPool(3 * NBYTES)
    a, pa = _take(pool, (1 << 20,))  # 4 MiB
    b, pb = _take(pool)  # 2 MiB
    del a, b  # a returns first
    gc.collect()
    c, pc = _take(pool, (300_000,))  # 1.2 MiB rounds to pages: another size
    del c
    gc.collect()
    # 4 + 2 + 1.2 MiB exceeds 6 MiB: the 4 MiB block, returned first, went.
    assert pool.idle_bytes <= pool.limit and pool.idle_blocks == 2
    _, q = _take(pool)
    assert q == pb


def test_limit_zero_keeps_nothing() -> None:
    pool = OutputPool(0)
    arr, _ = _take(pool)
    del arr
    gc.collect()
    assert pool.idle_bytes == 0


def test_threshold_is_a_mebibyte() -> None:
    assert MIN_POOLED_BYTES == 1 << 20


@pytest.mark.parametrize("text, want", [("", 256 << 20), ("0", 0), (" 1048576 ", 1 << 20)])
def test_limit_from_environment(monkeypatch, text: str, want: int) -> None:
    monkeypatch.setenv("MAX_OUTPUT_POOL_BYTES", text)
    assert pool_limit_from_env() == want


@pytest.mark.parametrize("text", ["-1", "1.5", "lots", "1e9"])
def test_a_malformed_limit_is_a_value_error(monkeypatch, text: str) -> None:
    monkeypatch.setenv("MAX_OUTPUT_POOL_BYTES", text)
    with pytest.raises(ValueError, match="MAX_OUTPUT_POOL_BYTES"):
        pool_limit_from_env()
