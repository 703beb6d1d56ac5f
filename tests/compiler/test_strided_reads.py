"""Reads of every s-th element (``x[:, ::2]``) become one contiguous masked read and a shuffle
(strided_reads), and large copies split over the threads (parallel_copies): numpy's numbers
for strides, offsets, dtypes and thread counts, the rewrite present in the IR, and no read past
the input's last byte (the input ends at a page the process may not read)."""

from __future__ import annotations

import ctypes
import mmap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlir import ir
from mo_helpers import make_context

from max.compiler.lowering import lower_to_linalg
from max.compiler.targets.cpu import CPU as TARGET
from max.driver import CPU as CPUDevice
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType

CPU = DeviceRef.CPU()

pytestmark = pytest.mark.usefixtures("schedule_debug")

DTYPES = {np.float32: DType.float32, np.float16: DType.float16, np.int32: DType.int32,
          np.int8: DType.int8}


def _run(x: np.ndarray, index, threads: int) -> np.ndarray:
    g = Graph("g", lambda v: v[index], input_types=[
        TensorType(DTYPES[x.dtype.type], x.shape, CPU)])
    model = InferenceSession(devices=[CPUDevice()], num_threads=threads).load(g)
    assert model._record.fallbacks == ()
    return model.execute(x)[0].to_numpy()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("index", [
    (slice(None), slice(None, None, 2)), (slice(None), slice(1, None, 2)),
    (slice(None), slice(2, None, 3)), (slice(None), slice(3, None, 4)),
    (slice(1, None, 2), slice(1, 1000, 2)), (slice(None), slice(None, 2000))])
def test_slices(index, threads: int) -> None:
    x = np.random.default_rng(0).standard_normal((300, 2048)).astype(np.float32)
    np.testing.assert_array_equal(_run(x, index, threads), x[index])


@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.int8])
def test_dtypes(dtype) -> None:
    x = (np.arange(64 * 770) % 101).astype(dtype).reshape(64, 770)
    np.testing.assert_array_equal(_run(x, (slice(None), slice(1, None, 2)), 2),
                                  x[:, 1::2])


def test_the_strided_read_is_a_shuffle() -> None:
    g = Graph("g", lambda v: v[:, 1::2] + 1.0, input_types=[
        TensorType(DType.float32, (64, 1024), CPU)])
    with make_context(), ir.Location.unknown():
        m = ir.Module.parse(g._text())
        lower_to_linalg(m)
        TARGET.run(m, until="mo-deinterleave-strided-reads", threads=1)
        text = str(m)
    assert "vector.shuffle" in text and "vector.maskedload" in text, text
    assert not [line for line in text.splitlines()
                if "vector.transfer_read" in line and "strided<[1024, 2]" in line], text


def _guarded(shape: tuple[int, ...]) -> tuple[np.ndarray, mmap.mmap]:
    """A float32 array whose last byte is the last readable byte before a PROT_NONE page."""
    size = int(np.prod(shape)) * 4
    page = mmap.PAGESIZE
    pages = -(-size // page)
    buf = mmap.mmap(-1, (pages + 1) * page, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.mprotect(ctypes.c_void_p(base + pages * page), page, 0) == 0  # PROT_NONE
    arr = np.frombuffer(buf, dtype=np.float32, count=size // 4,
                        offset=pages * page - size).reshape(shape)
    return arr, buf


@pytest.mark.parametrize("index", [(slice(None), slice(1, None, 2)),
                                   (slice(None), slice(3, None, 4))])
def test_no_read_past_the_input(index) -> None:
    # The last row's last pick is the input's last element: the contiguous run ends there and
    # the lanes after it are masked off (a plain wide load would fault on the guard page).
    x, buf = _guarded((16, 1024))
    x[...] = np.random.default_rng(1).standard_normal(x.shape)
    np.testing.assert_array_equal(_run(x, index, 1), x[index])
    del x
    buf.close()


@settings(max_examples=25)
@given(rows=st.integers(1, 40), cols=st.integers(1, 300), step=st.integers(2, 4),
       start=st.integers(0, 3), stop=st.one_of(st.none(), st.integers(-5, 300)),
       then_add=st.booleans(), threads=st.sampled_from([1, 2]))
def test_random_slices(rows: int, cols: int, step: int, start: int, stop: int | None,
                       then_add: bool, threads: int) -> None:
    x = np.arange(rows * cols, dtype=np.float32).reshape(rows, cols)
    index = (slice(None), slice(start, stop, step))
    want = x[index]
    if 0 in want.shape:
        return  # an empty slice: nothing read
    g = Graph("g", lambda v: v[index] + 1.0 if then_add else v[index], input_types=[
        TensorType(DType.float32, x.shape, CPU)])
    model = InferenceSession(devices=[CPUDevice()], num_threads=threads).load(g)
    np.testing.assert_array_equal(model.execute(x)[0].to_numpy(), want + 1 if then_add else want)
