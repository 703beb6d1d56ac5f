"""mo-verify on control flow: ``mo.cond``/``mo.while``/``mo.call`` are checked against the
subgraph functions they name (symbol exists and is a subgraph, operand and result types equal
the callee's signature, a bool scalar pred, consistent carried types, no recursion). Each
tampered file is rejected with a ``VerificationError`` (a ``ValueError``) naming the op."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from max.dialects.mo import make_context
from max.dialects.mo.verify import VerificationError, verify_module
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import BufferType, DeviceRef, Graph, TensorType, ops
from mlir import ir

CPU = DeviceRef.CPU()
F = '!mo.tensor<f32, ["n"], "cpu:0">'
B = '!mo.tensor<i1, [], "cpu:0">'
ZEROS = ", 0" * 15


def _forward(x, p):
    (y,) = ops.cond(p, [x.type], lambda: x + x, lambda: x)
    return ops.while_loop(y, lambda v: p, lambda v: v)


def _good() -> str:
    g = Graph("c", _forward, input_types=[TensorType(DType.float32, ["n"], CPU),
                                           TensorType(DType.bool, [], CPU)])
    return str(g)


def _sub(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def _call_in_then(text: str, callee: str, args: str, types: str, segs: str) -> str:
    call = (f'%9 = "mo.call"({args}) {{callee = @{callee}, operandSegmentSizes = '
            f'array<i32: {segs}>, resultSegmentSizes = array<i32: 1{ZEROS}>}} : ({types}) -> {F}')
    return _sub(text, f"func.func private @c_cond_then(%arg0: {F}) -> {F} {{",
                f"func.func private @c_cond_then(%arg0: {F}) -> {F} {{\n    {call}")


BAD = {
    "missing callee": (lambda t: _sub(t, "then_fn = @c_cond_then", "then_fn = @nope"),
                       r"op 0 \(mo\.cond.*?\): then_fn @nope: no such function in the module"),
    "callee is a graph": (lambda t: _sub(t, "then_fn = @c_cond_then", "then_fn = @c"),
                          r"op 0 \(mo\.cond.*?\): then_fn @c is a graph \(mo\.graph\)"),
    "float pred": (lambda t: _sub(_sub(t, '"mo.cond"(%arg1, %arg0)', '"mo.cond"(%arg0, %arg0)'),
                                  f": ({B}, {F}) -> {F}", f": ({F}, {F}) -> {F}"),
                   r"op 0 \(mo\.cond.*?\): pred .*f32.* must be a bool scalar"),
    "else takes more": (lambda t: _sub(t, f"@c_cond_else(%arg0: {F}) -> {F}",
                                       f"@c_cond_else(%arg0: {F}, %arg9: {F}) -> {F}"),
                        r"op 0 \(mo\.cond.*?\): else_fn takes \(.*, .*\) should be \(.*\)"),
    "carried count": (lambda t: _sub(t, "num_carried = 1 : i64", "num_carried = 2 : i64"),
                      r"op 1 \(mo\.while.*?\): results \(.*\) should be \(.*f32.*, .*i1.*\)"),
    "carried out of range": (lambda t: _sub(t, "num_carried = 1 : i64", "num_carried = 5 : i64"),
                             r"op 1 \(mo\.while.*?\): num_carried 5 out of range for 2 operands"),
    "pred_fn not bool": (lambda t: _sub(t, f"-> {B} {{\n    return %arg1 : {B}",
                                        f"-> {F} {{\n    return %arg0 : {F}"),
                         r"op 1 \(mo\.while.*?\): pred_fn returns \(.*f32.*\), should be one bool "
                         r"scalar"),
    "call arity": (lambda t: _call_in_then(t, "c_cond_else", "%arg0, %arg0", f"{F}, {F}",
                                           f"2{ZEROS}"),
                   r"subgraph 'c_cond_then', op 0 \(mo\.call.*?\): callee takes \(.*\) should be "
                   r"\(.*, .*\)"),
    "recursion": (lambda t: _call_in_then(t, "c_cond_then", "%arg0", F, f"1{ZEROS}"),
                  r"recursive subgraph calls: c -> c_cond_then -> c_cond_then"),
}


def test_the_built_module_verifies() -> None:
    with make_context() as ctx:
        verify_module(ir.Module.parse(_good(), ctx))


@pytest.mark.parametrize("case", sorted(BAD))
def test_tampered_control_flow_is_rejected(case: str) -> None:
    tamper, message = BAD[case]
    text = tamper(_good())
    with make_context() as ctx:
        module = ir.Module.parse(text, ctx)  # IRDL accepts it: kinds are right
        with pytest.raises(VerificationError, match=message):
            verify_module(module)


@pytest.mark.parametrize("case", ["missing callee", "float pred"])
def test_tampered_files_are_refused_by_every_door(case: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.mlir"
    path.write_text(BAD[case][0](_good()))
    message = BAD[case][1]
    with pytest.raises(ValueError, match=message):
        Graph("x", path=path)
    with pytest.raises(ValueError, match=message):
        InferenceSession().load(path)


def test_a_saved_graph_with_control_flow_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "good.mlirbc"
    Graph("c", _forward, input_types=[TensorType(DType.float32, ["n"], CPU),
                                       TensorType(DType.bool, [], CPU)]).save(path)
    model = InferenceSession().load(Graph("c", path=path))
    x = np.array([1, 2], np.float32)
    # p false: the cond gives x and the loop does not run
    np.testing.assert_array_equal(model.execute(x, np.array(False))[0].to_numpy(), x)


def _buffer_module() -> str:
    with Graph("bc", input_types=[BufferType(DType.float32, [3], CPU),
                                  TensorType(DType.float32, [3], CPU),
                                  TensorType(DType.bool, [], CPU)]) as g:
        buf, x, p = g.inputs
        ops.cond(p, None, lambda: ops.buffer_store(buf, x), lambda: None)
        ops.while_loop(x, lambda v: p, lambda v: ops.buffer_load(buf) + v)
        g.output(ops.buffer_load(buf))
    return str(g)


FB = '!mo.buffer<f32, [3], "cpu:0">'
F3 = '!mo.tensor<f32, [3], "cpu:0">'
BAD_BUFFERS = {
    # a tensor passed where the bodies take the buffer
    "tensor for buffer": (lambda t: _sub(_sub(t, '"mo.cond"(%arg2, %arg0, %arg1)',
                                              '"mo.cond"(%arg2, %arg1, %arg1)'),
                                         f": ({B}, {FB}, {F3}) -> ()",
                                         f": ({B}, {F3}, {F3}) -> ()"),
                          r"op 0 \(mo\.cond.*?\): then_fn takes \(!mo\.buffer.*\) should be "
                          r"\(!mo\.tensor<f32, \[3\], \"cpu:0\">, !mo\.tensor"),
    "carried buffer": (lambda t: _sub(t, "num_carried = 1 : i64", "num_carried = 3 : i64"),
                       r"op 1 \(mo\.while.*?\): carried operand 2 !mo\.buffer<f32, \[3\], "
                       r"\"cpu:0\"> is not a tensor"),
}


def test_buffer_arguments_of_bodies_verify() -> None:
    text = _buffer_module()
    assert f"({B}, {FB}, {F3}) -> ()" in text
    with make_context() as ctx:
        verify_module(ir.Module.parse(text, ctx))


@pytest.mark.parametrize("case", sorted(BAD_BUFFERS))
def test_mismatched_buffer_arguments_are_rejected(case: str) -> None:
    tamper, message = BAD_BUFFERS[case]
    with make_context() as ctx:
        module = ir.Module.parse(tamper(_buffer_module()), ctx)
        with pytest.raises(VerificationError, match=message):
            verify_module(module)
