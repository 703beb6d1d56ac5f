"""Loaded code is shared per binary and unmapped with its last user (runtime/loader.py)."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from max.runtime import CpuExecutable, TensorSig, load_shared_object, loaded_artifact_count

from kernels import CONCAT, build_so
from proc_maps import mapped_models

F32 = np.dtype("float32")


@pytest.fixture(scope="module")
def concat_so() -> bytes:
    return build_so(CONCAT)


def _run(fn) -> None:
    exe = CpuExecutable(fn, [TensorSig(F32, ("n", 3)), TensorSig(F32, ("m", 3))],
                        [TensorSig(F32, ("n + m", 3))], name="cat")
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = -np.arange(3, dtype=np.float32).reshape(1, 3)
    np.testing.assert_array_equal(exe.run([a, b])[0], np.concatenate([a, b]))


def _baseline() -> tuple[int, int]:
    gc.collect()
    return loaded_artifact_count(), mapped_models()


def test_same_bytes_share_one_mapping(concat_so):
    base = _baseline()
    f1 = load_shared_object(concat_so, symbol="_mlir_ciface_cat", num_args=3)
    f2 = load_shared_object(concat_so, symbol="_mlir_ciface_cat", num_args=3)
    assert (loaded_artifact_count(), mapped_models()) == (base[0] + 1, base[1] + 1)
    del f1
    gc.collect()
    _run(f2)  # still mapped: the other user is alive
    assert (loaded_artifact_count(), mapped_models()) == (base[0] + 1, base[1] + 1)
    del f2
    assert (loaded_artifact_count(), mapped_models()) == base  # no gc needed: no cycle


def test_200_distinct_loads_are_unmapped(concat_so):
    base = _baseline()
    for i in range(200):
        # Trailing bytes make a distinct binary (another sha256) that loads the same.
        fn = load_shared_object(concat_so + bytes(i + 1), symbol="_mlir_ciface_cat", num_args=3)
        if i % 50 == 0:
            _run(fn)
        assert loaded_artifact_count() <= base[0] + 1
        del fn
    gc.collect()
    assert (loaded_artifact_count(), mapped_models()) == base
    held = [load_shared_object(concat_so + bytes(i + 1), symbol="_mlir_ciface_cat", num_args=3)
            for i in range(20)]
    assert (loaded_artifact_count(), mapped_models()) == (base[0] + 20, base[1] + 20)
    _run(held[-1])
    del held
    gc.collect()
    assert (loaded_artifact_count(), mapped_models()) == base


def test_function_pointer_alone_keeps_its_code(concat_so):
    """Whoever holds only the ctypes function (not the CpuFunction) can still call it."""
    base = _baseline()
    fn = load_shared_object(concat_so + b"x", symbol="_mlir_ciface_cat", num_args=3)
    raw = fn.fn
    del fn
    gc.collect()
    assert loaded_artifact_count() == base[0] + 1

    class _Holder:
        def __init__(self, f):
            self.fn, self.num_args = f, 3

    _run(_Holder(raw))
    del raw
    gc.collect()
    assert loaded_artifact_count() == base[0]
