"""Runs of independent copies split over threads (``compiler/pipelines/parallel_copies``):
which runs are grouped (IR), which are not (a race could change the result), and results
against numpy through the engine with one and two threads."""

from __future__ import annotations

import mo_helpers as H
import numpy as np
import pytest
from mlir import ir

from max.compiler.pipelines import cpu_threads, parallel_copies
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType, ops

CPU = DeviceRef.CPU()


def _joined(kind: str, count: int, shape: tuple[int, ...], axis: int = 0) -> Graph:
    join = ops.stack if kind == "stack" else ops.concat
    return Graph(f"{kind}{count}", lambda *xs: join(list(xs), axis=axis),
                 input_types=[TensorType(DType.float32, shape, CPU)] * count)


@pytest.mark.parametrize("kind,count,shape,axis", [
    ("stack", 64, (256, 256), 0),
    ("concat", 32, (256, 256), 0),
    ("concat", 5, (300, 257), 1),  # slices across the inner dim, odd sizes
    ("concat", 3, (1000, 131), 0),  # fewer pieces than... still more than threads
])
@pytest.mark.parametrize("threads", [1, 2])
def test_joins_match_numpy(kind, count, shape, axis, threads, monkeypatch):
    monkeypatch.setenv(cpu_threads.THREADS_ENV, str(threads))
    rng = np.random.default_rng(count)
    xs = [rng.standard_normal(shape, dtype=np.float32) for _ in range(count)]
    model = InferenceSession().load(_joined(kind, count, shape, axis))
    ref = (np.stack if kind == "stack" else np.concatenate)(xs, axis=axis)
    np.testing.assert_array_equal(model.execute(*xs)[0].to_numpy(), ref)
    assert model._record.fallbacks == ()


def test_a_large_concat_is_one_forall_over_threads():
    g = _joined("concat", 32, (256, 256))
    text = H.scheduled_ir(str(g._module), until="mo-parallel-copies")
    assert text.count("scf.forall") == 1
    assert text.count("linalg.copy") == 32
    assert text.count("scf.if") == 2  # one share of the copies per thread


def test_one_large_copy_is_cut_into_a_piece_per_thread():
    # x[:, :1000] of [600, 2048]: one 2.3 MiB copy, cut along the rows (300 each).
    g = Graph("slice", lambda x: x[:, :1000], input_types=[
        TensorType(DType.float32, (600, 2048), CPU)])
    text = H.scheduled_ir(str(g._module), until="mo-parallel-copies")
    assert text.count("scf.forall") == 1 and text.count("scf.if") == 2, text
    assert text.count("linalg.copy") == 2 and text.count("[300, 1000] [1, 1]") == 4, text


def test_cut_pieces_keep_the_shares_balanced():
    # Two copies of 1 MiB: each cut in two, two pieces a thread.
    text = _RUN.format(second=1024, src="%b", src_layout="", off=1024 * 256)
    with H.make_context():
        m = ir.Module.parse(text)
        assert parallel_copies.parallel_copies(m, 2) == 1
        assert m.operation.verify()
        out = str(m)
    assert out.count("linalg.copy") == 4 and out.count("[512, 256] [1, 1]") == 8, out


def test_a_small_concat_stays_as_it_is():
    g = _joined("concat", 4, (16, 16))  # 4 KiB: not worth a fork
    assert "scf.forall" not in H.scheduled_ir(str(g._module), until="mo-parallel-copies")


# Hand-written runs of copies: the grouping must never reorder copies that could race.
_RUN = """
func.func @f(%a: memref<1024x256xf32>, %b: memref<1024x256xf32>, %out: memref<2048x256xf32>) {{
  %d0 = memref.subview %out[0, 0] [1024, 256] [1, 1]
      : memref<2048x256xf32> to memref<1024x256xf32, strided<[256, 1]>>
  %d1 = memref.subview %out[{second}, 0] [1024, 256] [1, 1]
      : memref<2048x256xf32> to memref<1024x256xf32, strided<[256, 1], offset: {off}>>
  linalg.copy ins(%a : memref<1024x256xf32>)
      outs(%d0 : memref<1024x256xf32, strided<[256, 1]>>)
  linalg.copy ins({src} : memref<1024x256xf32{src_layout}>)
      outs(%d1 : memref<1024x256xf32, strided<[256, 1], offset: {off}>>)
  return
}}
"""


def _group(second: int, src: str = "%b", src_layout: str = "") -> tuple[int, str]:
    text = _RUN.format(second=second, src=src, src_layout=src_layout, off=second * 256)
    with H.make_context():
        m = ir.Module.parse(text)
        n = parallel_copies.parallel_copies(m, 2)
        assert m.operation.verify()
        return n, str(m)


def test_disjoint_slices_are_grouped():
    n, text = _group(1024)
    assert n == 1 and "scf.forall" in text


def test_overlapping_slices_are_not_grouped():
    n, text = _group(512)  # rows 512..1023 written twice: the order decides
    assert n == 0 and "scf.forall" not in text
    assert text.count("linalg.copy") == 2  # nor cut into pieces


def test_a_copy_reading_what_another_writes_is_not_grouped():
    n, text = _group(1024, src="%d0", src_layout=", strided<[256, 1]>")
    assert n == 0 and "scf.forall" not in text


def test_shares_are_contiguous_and_balanced():
    assert parallel_copies._shares([1, 1, 1, 1], 2) == [[0, 1], [2, 3]]
    assert parallel_copies._shares([10, 1, 1, 1, 1], 2) == [[0], [1, 2, 3, 4]]
    assert parallel_copies._shares([5], 2) == [[0]]
