"""Graphs whose deallocation needs run-time aliasing checks (a cond yielding either a buffer
its branch allocated or one from before it) used to abort the compiler in MemRefToLLVM (the
checks' ``memref<?xi1>`` flags); ``mo-widen-bool-memrefs`` stores them as i8
(compiler/pipelines/bool_memrefs.py). The numbers must be numpy's on every path."""

from __future__ import annotations

import numpy as np
import pytest
from mlir import ir

from max.compiler.passes.registry import CompilationError
from max.compiler.pipelines.bool_memrefs import widen_bool_memrefs
from max.dialects.mo import make_context
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType, ops

CPU = DeviceRef.CPU()
H = 48


def _weights(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return ((rng.standard_normal((H, 2 * H)) / 8).astype(np.float32),
            (rng.standard_normal((2 * H, H)) / 8).astype(np.float32))


def _ffn(v, w1, w2):
    return v + ops.relu(v @ ops.constant(w1, DType.float32, CPU)) @ ops.constant(
        w2, DType.float32, CPU)


def _np_ffn(v, w1, w2):
    return v + np.maximum(v @ w1, 0) @ w2


@pytest.mark.parametrize("threads", [1, 2])
def test_cond_yielding_a_new_or_an_earlier_buffer_compiles_and_matches(threads: int) -> None:
    w1, w2 = _weights(0)
    x_type = TensorType(DType.float32, ["rows", H], CPU)
    flag_type = TensorType(DType.bool, [], CPU)

    def forward(x, p, q):
        y = _ffn(x, w1, w2)
        (z,) = ops.cond(p, [y.type], lambda: _ffn(y, w1, w2), lambda: y)
        # one of two buffers from before the op, or the graph's own input
        (u,) = ops.cond(q, [y.type], lambda: z, lambda: x)
        return u * 2.0, z

    g = Graph("aliasing_conds", forward, input_types=[x_type, flag_type, flag_type])
    model = InferenceSession(num_threads=threads).load(g)
    assert model._record.fallbacks == ()  # the branches' ops too (functions of their own)
    x = np.random.default_rng(1).standard_normal((37, H)).astype(np.float32)
    y = _np_ffn(x.astype(np.float64), w1, w2)
    for p in (True, False):
        z = _np_ffn(y, w1, w2) if p else y
        for q in (True, False):
            u, got_z = (o.to_numpy() for o in model.execute(x, np.array(p), np.array(q)))
            np.testing.assert_allclose(got_z, z, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(u, 2 * (z if q else x), rtol=1e-4, atol=1e-4)


def _module(body: str) -> ir.Module:
    return ir.Module.parse(body, make_context())


def test_flags_become_i8_with_widening_stores_and_narrowing_loads() -> None:
    module = _module("""
      func.func private @helper(%flags: memref<?xi1>) {
        %c0 = arith.constant 0 : index
        %b = memref.load %flags[%c0] : memref<?xi1>
        %n = arith.xori %b, %b : i1
        memref.store %n, %flags[%c0] : memref<?xi1>
        return
      }
      func.func @f(%v: i1) -> i1 {
        %c0 = arith.constant 0 : index
        %a = memref.alloc() : memref<2xi1>
        memref.store %v, %a[%c0] : memref<2xi1>
        %d = memref.cast %a : memref<2xi1> to memref<?xi1>
        call @helper(%d) : (memref<?xi1>) -> ()
        %r = memref.load %a[%c0] : memref<2xi1>
        memref.dealloc %a : memref<2xi1>
        return %r : i1
      }""")
    with module.context, ir.Location.unknown():
        assert widen_bool_memrefs(module) > 0
    module.operation.verify()
    text = str(module)
    assert "xi1>" not in text, text
    assert text.count("arith.extui") == 2 and text.count("arith.trunci") == 2, text


def test_an_unknown_op_on_bool_memrefs_is_an_error_not_an_abort() -> None:
    module = _module("""
      func.func @f(%m: memref<4xi1>) -> memref<2xi1, strided<[1], offset: 1>> {
        %s = memref.subview %m[1] [2] [1] : memref<4xi1> to memref<2xi1, strided<[1], offset: 1>>
        return %s : memref<2xi1, strided<[1], offset: 1>>
      }""")
    with module.context, ir.Location.unknown():
        with pytest.raises(CompilationError, match=r"memref.subview on a memref of i1"):
            widen_bool_memrefs(module)
