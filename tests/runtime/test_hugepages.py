"""``runtime/hugepages``: arrays in huge-page-advised mappings (rearranged weights, the KV
cache, large constants)."""

from __future__ import annotations

import numpy as np

from max.runtime import hugepages


def _copy(a: np.ndarray) -> np.ndarray:
    """``a`` copied into a huge-page array, as the engine fills one with a weight's layout."""
    out = hugepages.empty(a.shape, a.dtype)
    out[...] = a
    return out


def test_copies_are_exact_and_independent() -> None:
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((7, 13)).astype(np.float32),
              rng.integers(0, 255, (3, 100), dtype=np.uint8),
              np.arange(5, dtype=np.int64)]
    copies = [_copy(a) for a in arrays]
    for a, c in zip(arrays, copies):
        assert c.dtype == a.dtype and c.shape == a.shape and c.flags.c_contiguous
        np.testing.assert_array_equal(c, a)
        assert c.ctypes.data % 64 == 0  # each on a cache line
    copies[0][...] = 0  # neighbours in one region do not overlap
    np.testing.assert_array_equal(copies[1], arrays[1])
    np.testing.assert_array_equal(copies[2], arrays[2])


def test_large_and_empty_arrays() -> None:
    big = np.arange((hugepages.REGION // 2) // 4 + 1, dtype=np.float32)  # its own mapping
    c = _copy(big)
    np.testing.assert_array_equal(c, big)
    empty = _copy(np.zeros((0, 4), np.float32))
    assert empty.shape == (0, 4)


def test_a_non_contiguous_array_is_copied_contiguous() -> None:
    a = np.arange(24, dtype=np.float32).reshape(4, 6).T
    c = _copy(a)
    assert c.flags.c_contiguous
    np.testing.assert_array_equal(c, a)


def test_zeros_are_zero_and_writable() -> None:
    z = hugepages.zeros((3, 1 << 20), np.float32)  # 12 MiB: a mapping of its own
    assert z.shape == (3, 1 << 20) and z.dtype == np.float32 and z.flags.writeable
    assert not z.any()
    z[1, 5:9] = 2.5
    assert z.sum() == 10.0
    small = hugepages.zeros((0, 4), np.int64)
    assert small.shape == (0, 4)


def test_read_file(tmp_path) -> None:
    """Every file comes back as a read-only view, byte for byte, starting on a cache line (the
    constants in it are each on one: the kernels load them as whole vectors); an empty one
    as empty bytes."""
    rng = np.random.default_rng(0)
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert hugepages.read_file(empty) == b""
    for size in (3, 590_000, (5 << 20) + 3):  # a shared region's piece, a mapping of its own
        path = tmp_path / f"{size}.bin"
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        path.write_bytes(data)
        views = [hugepages.read_file(path) for _ in range(3)]
        for view in views:
            assert isinstance(view, memoryview) and view.readonly and len(view) == size
            assert view.tobytes() == data
            assert np.frombuffer(view, np.uint8).ctypes.data % 64 == 0
    floats = np.frombuffer(views[0], np.uint8, 16, 8)  # as the engine binds a constant
    assert floats.tobytes() == data[8:24] and not floats.flags.writeable
