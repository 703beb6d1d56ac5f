"""Comparing large byte buffers in place: libc's ``memcmp``, which runs at memory speed.

``bytes ==`` needs two ``bytes`` objects (a 7 MB copy of a buffer view first), and
``memoryview ==`` compares element by element (20 ms for 7 MB); ``memcmp`` took 0.6 ms.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

import numpy as np


@functools.cache
def _memcmp() -> Any:
    fn = ctypes.CDLL(None).memcmp
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    return fn


def equal(a: Any, b: Any) -> bool:
    """Whether two contiguous buffers (``bytes``, memoryviews...) hold the same bytes."""
    x = np.frombuffer(a, np.uint8)
    y = np.frombuffer(b, np.uint8)
    if x.size != y.size:
        return False
    return x.size == 0 or _memcmp()(x.ctypes.data, y.ctypes.data, x.size) == 0


def is_zero(a: Any) -> bool:
    """Whether a buffer holds only zero bytes (the padding between constants: < 64 bytes)."""
    data = bytes(a)
    return data == bytes(len(data))
