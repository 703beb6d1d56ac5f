"""Row gathers (embedding lookups) are vector code: each tile reads its table row with one
contiguous load, not plain loops nor a ``vector.gather`` (compiler/pipelines/gather_rows.py).
Results against numpy's ``take``."""

from __future__ import annotations

import re

import numpy as np
import pytest
from mlir import ir
from mo_helpers import Compiled, make_context

from max.compiler.lowering import lower_to_linalg
from max.compiler.targets.cpu import CPU
from max.dtype import DType
from max.graph import DeviceRef, Graph, TensorType, ops

pytestmark = pytest.mark.usefixtures("schedule_debug")

CPU_DEV = DeviceRef.CPU()


def _graph(fn, types: list[tuple[DType, list]]) -> Graph:
    return Graph("g", fn, input_types=[TensorType(dt, shape, CPU_DEV) for dt, shape in types])


def _scheduled_ir(g: Graph) -> str:
    with make_context():
        m = ir.Module.parse(g._text())
        lower_to_linalg(m)
        CPU.run(m, until="mo-vectorize-memrefs", threads=2)
        return str(m)


def _embedding(t, ids, p):
    return ops.gather(t, ids, axis=0) + p


EMBEDDING = [(DType.float32, [1000, 384]), (DType.int64, ["b", "s"]),
             (DType.float32, ["s", 384])]


def test_embedding_reads_rows_with_vector_loads() -> None:
    """The gather (fused with the position rows' add) leaves no vector.gather: the table is
    read by vector loads."""
    text = _scheduled_ir(_graph(_embedding, EMBEDDING))
    assert "vector.gather" not in text
    # The table (the first argument) is read a vector at a time, at (row, column).
    assert re.search(r"vector\.load %arg0\[%\w+, %\w+\] : memref<1000x384xf32>, vector<\d+xf32>",
                     text)


@pytest.mark.parametrize("ids", [["b", "s"], [4, 9], ["n"], [5]])
def test_embedding_leaves_no_plain_kernel(ids: list) -> None:
    """Nor does its index check (a reduction of every index to one flag, as the one row of
    [1, count]: a reduction to rank 0 was a plain loop)."""
    g = _graph(lambda t, i: ops.gather(t, i, axis=0), [(DType.float32, [1000, 384]),
                                                       (DType.int64, ids)])
    c = Compiled(g._text())
    assert c.fallbacks == []
    shape = tuple(3 if isinstance(d, str) else d for d in ids)
    x = np.random.default_rng(8).integers(-1000, 1000, shape).astype(np.int64)
    t = np.arange(384000, dtype=np.float32).reshape(1000, 384)
    (out,), failed = c([t, x], [((*shape, 384), "float32")])
    assert failed == []
    np.testing.assert_array_equal(out, np.take(t, x, axis=0))
    x.flat[-1] = 1000  # the last index, out of range: still found
    _, failed = c([t, x], [((*shape, 384), "float32")])
    assert len(failed) == 1 and failed[0].startswith("mo.gather: index out of range")


@pytest.mark.parametrize("rows,width,shape,vector", [
    (1000, 384, (3, 7), True),  # MiniLM's row, symbolic batch and sequence
    (50, 37, (2, 5), True),  # a row that is no whole number of vectors: a peeled remainder
    (7, 8, (1, 1), True),
    # Rows of one element: the column index folds to 0, no row read (plain loops, recorded).
    (300, 1, (4, 3), False),
])
def test_embedding_matches_numpy(rows: int, width: int, shape: tuple[int, int],
                                 vector: bool) -> None:
    g = _graph(_embedding, [(DType.float32, [rows, width]), (DType.int64, ["b", "s"]),
                            (DType.float32, ["s", width])])
    c = Compiled(g._text())
    assert any("add" in f for f in c.fallbacks) != vector, c.fallbacks
    rng = np.random.default_rng(rows + width)
    t = rng.standard_normal((rows, width), dtype=np.float32)
    ids = rng.integers(-rows, rows, shape).astype(np.int64)  # negative indices wrap
    p = rng.standard_normal((shape[1], width), dtype=np.float32)
    (out,), failed = c([t, ids, p], [((*shape, width), "float32")])
    assert failed == []
    np.testing.assert_array_equal(out, np.take(t, ids, axis=0) + p)


@pytest.mark.parametrize("dtype,np_dtype", [(DType.float16, np.float16), (DType.int32, np.int32),
                                            (DType.bool, np.bool_), (DType.float64, np.float64)])
def test_gather_of_other_element_types(dtype: DType, np_dtype: type) -> None:
    g = _graph(lambda t, i: ops.gather(t, i, axis=0), [(dtype, [40, 3, 21]),
                                                       (DType.int32, ["n"])])
    c = Compiled(g._text())
    rng = np.random.default_rng(3)
    t = (rng.standard_normal((40, 3, 21)) * 10).astype(np_dtype)
    ids = rng.integers(-40, 40, (9,)).astype(np.int32)
    (out,), failed = c([t, ids], [((9, 3, 21), np.dtype(np_dtype).name)])
    assert failed == []
    np.testing.assert_array_equal(out, np.take(t, ids, axis=0))


def test_gather_on_a_middle_axis() -> None:
    """Rows of the trailing dims under an outer loop's index: still contiguous reads."""
    g = _graph(lambda t, i: ops.gather(t, i, axis=1), [(DType.float32, [3, 50, 24]),
                                                       (DType.int64, [2, 4])])
    assert "vector.gather" not in _scheduled_ir(g)
    c = Compiled(g._text())
    rng = np.random.default_rng(5)
    t = rng.standard_normal((3, 50, 24), dtype=np.float32)
    ids = rng.integers(0, 50, (2, 4)).astype(np.int64)
    (out,), _ = c([t, ids], [((3, 2, 4, 24), "float32")])
    np.testing.assert_array_equal(out, np.take(t, ids, axis=1))


def test_gather_along_the_last_axis_stays_correct() -> None:
    """An index that varies along the innermost loop is no row read: left as it was (plain
    loops, recorded), and right."""
    g = _graph(lambda t, i: ops.gather(t, i, axis=1), [(DType.float32, [6, 30]),
                                                       (DType.int64, [11])])
    c = Compiled(g._text())
    assert any("gather" in f for f in c.fallbacks)
    rng = np.random.default_rng(6)
    t = rng.standard_normal((6, 30), dtype=np.float32)
    ids = rng.integers(0, 30, (11,)).astype(np.int64)
    (out,), _ = c([t, ids], [((6, 11), "float32")])
    np.testing.assert_array_equal(out, np.take(t, ids, axis=1))


def test_out_of_range_index_is_reported_and_read_clamped() -> None:
    g = _graph(_embedding, [(DType.float32, [10, 16]), (DType.int64, ["b", "s"]),
                            (DType.float32, ["s", 16])])
    c = Compiled(g._text())
    t = np.arange(160, dtype=np.float32).reshape(10, 16)
    ids = np.array([[0, 10], [3, -11]], dtype=np.int64)
    p = np.zeros((2, 16), np.float32)
    (out,), failed = c([t, ids, p], [((2, 2, 16), "float32")])
    assert len(failed) == 1
    assert failed[0].startswith("mo.gather: index out of range for axis 0 of size 10")
    np.testing.assert_array_equal(out[0, 0], t[0])
    np.testing.assert_array_equal(out[1, 0], t[3])
