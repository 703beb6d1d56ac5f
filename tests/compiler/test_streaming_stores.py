"""Streaming (non-temporal) stores into large outputs (``compiler/pipelines/streaming_stores``).

What gets marked (IR), and that results are right whichever version runs: the streaming one
(output aligned, as the runtime allocates it) and the plain one (any other address).
"""

from __future__ import annotations

import mo_helpers as H
import numpy as np
import pytest
from mlir import ir

from max.compiler.pipelines import streaming_stores
from max.runtime.pool import OUTPUT_ALIGNMENT, aligned_empty

BIG = (2048, 2048)  # 16 MiB of f32: above MIN_BYTES
SMALL = (256, 256)


def _chain(shape: tuple[int, ...]) -> str:
    t = H.mo_type("f32", shape)
    return (f"func.func @g(%a: {t}, %b: {t}) -> {t} attributes {{mo.graph}} {{\n"
            f'  %m = "mo.mul"(%a, %b) : ({t}, {t}) -> {t}\n'
            f'  %r = "mo.add"(%m, %a) : ({t}, {t}) -> {t}\n'
            f"  func.return %r : {t}\n}}\n")


def test_big_output_is_streamed_behind_an_alignment_check():
    text = H.scheduled_ir(_chain(BIG), until="mo-streaming-stores")
    marked = [line for line in text.splitlines() if "nontemporal = true" in line]
    assert marked and all("alignment = 64" in line for line in marked)
    assert "memref.extract_aligned_pointer_as_index" in text
    assert "scf.if" in text and "llvm.fence seq_cst" in text
    # The plain version is there too, for an output that is not aligned.
    assert any("vector.store" in line and "nontemporal" not in line
               for line in text.splitlines())


def test_small_output_keeps_plain_stores():
    text = H.scheduled_ir(_chain(SMALL), until="mo-streaming-stores")
    assert "nontemporal" not in text and "llvm.fence" not in text


@pytest.mark.parametrize("out_offset", [0, 4, 16])
def test_results_whichever_version_runs(out_offset):
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(BIG, dtype=np.float32) for _ in range(2))
    compiled = H.Compiled(_chain(BIG))
    (out,), failed = compiled([a, b], [(BIG, "float32")], out_offset=out_offset)
    assert not failed
    assert out.ctypes.data % OUTPUT_ALIGNMENT == out_offset
    H.check(out, a * b + a)


def test_odd_size_output_is_correct():
    shape = (2049, 1031)  # neither dim a multiple of the vector width
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal(shape, dtype=np.float32) for _ in range(2))
    (out,), _ = H.Compiled(_chain(shape))([a, b], [(shape, "float32")], out_offset=0)
    H.check(out, a * b + a)


def test_session_outputs_are_aligned_with_the_pool_on_and_off(monkeypatch):
    from max.dtype import DType
    from max.engine import InferenceSession
    from max.graph import DeviceRef, Graph, TensorType
    from max.runtime.pool import OUTPUT_POOL

    with Graph("chain", input_types=[TensorType(DType.float32, BIG, DeviceRef.CPU())] * 2) as g:
        x, y = g.inputs
        g.output(x * y + x)
    model = InferenceSession().load(g)
    rng = np.random.default_rng(2)
    a, b = (rng.standard_normal(BIG, dtype=np.float32) for _ in range(2))
    for limit in (OUTPUT_POOL.limit, 0):
        monkeypatch.setattr(OUTPUT_POOL, "limit", limit)
        out = model.execute(a, b)[0].to_numpy()
        assert out.ctypes.data % OUTPUT_ALIGNMENT == 0
        H.check(out, a * b + a)


@pytest.mark.parametrize("dtype", ["float32", "float16", "int8", "bool"])
def test_aligned_empty(dtype):
    for shape in [(1 << 18,), (3, 1 << 17), (1,)]:
        dt = np.dtype(dtype)
        out, address = aligned_empty(shape, dt, dt.itemsize * int(np.prod(shape)))
        assert out.shape == shape and out.dtype == dt and out.flags.c_contiguous
        assert address == out.ctypes.data and address % OUTPUT_ALIGNMENT == 0


# Hand-written memref-level entries: which stores the analysis proves aligned and marks.
_ENTRY = """
func.func @g(%in: memref<4194304xf32>, %out: memref<4194304xf32>)
    attributes {{mo.num_inputs = 1 : i64, mo.num_outputs = 1 : i64}} {{
  %c0 = arith.constant 0 : index
  %c64 = arith.constant 64 : index
  %n = arith.constant {upper} : index
  scf.for %i = %c0 to %n step %c64 {{
    %j = affine.apply affine_map<(d0) -> (d0 + {shift})>(%i)
    %v = vector.load %in[%i] : memref<4194304xf32>, vector<16xf32>
    {extra}
    vector.store %v, %out[%j] : memref<4194304xf32>, vector<16xf32>
  }}
  return
}}
"""


def _mark(shift: int = 0, extra: str = "") -> tuple[int, str]:
    with H.make_context():
        m = ir.Module.parse(_ENTRY.format(upper=4194304 - 64, shift=shift, extra=extra))
        n = streaming_stores.mark(m)
        assert m.operation.verify()
        return n, str(m)


def test_analysis_marks_aligned_stores():
    n, text = _mark(shift=32)  # 32 floats = 128 bytes: still on a 64-byte boundary
    assert n == 1 and "nontemporal = true" in text


def test_analysis_leaves_unaligned_stores():
    n, text = _mark(shift=4)  # 16 bytes off the boundary
    assert n == 0 and "nontemporal" not in text


def test_analysis_leaves_an_output_that_is_read_back():
    n, text = _mark(extra="%w = vector.load %out[%i] : memref<4194304xf32>, vector<16xf32>\n"
                          "vector.store %w, %in[%i] : memref<4194304xf32>, vector<16xf32>")
    assert n == 0 and "nontemporal" not in text
