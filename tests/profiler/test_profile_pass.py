"""The mo-profile-kernels pass on the IR: what it times, how it classifies, what it leaves."""

from __future__ import annotations

import io

import pytest
from mlir import ir

from max.compiler.passes.profile_kernels import PROFILE_ATTR, kernel_table
from max.compiler.passes.registry import CompilationError, get_pass
from max.compiler.pipelines import cpu
from max.dialects.mo import make_context
from max.dtype import DType
from max.graph import DeviceRef, Graph, TensorType, ops

CPU = DeviceRef.CPU()


def _lowered(ctx: ir.Context) -> ir.Module:
    types = [TensorType(DType.float32, (8, 33), CPU), TensorType(DType.float32, (33, 16), CPU)]
    graph = Graph("pg", lambda a, b: ops.softmax(a @ b) + 1.0, input_types=types)
    buf = io.BytesIO()
    graph._module.operation.write_bytecode(buf)
    module = ir.Module.parse(buf.getvalue(), ctx)
    with ctx, ir.Location.unknown():
        get_pass("mo-to-linalg").fn(module)
    return module


@pytest.mark.parametrize("schedule", [True, False])
def test_kernels_are_timed_and_classified(schedule):
    ctx = make_context()
    module = _lowered(ctx)
    cpu.lower_to_llvm(module, schedule=schedule, threads=1, profile=True)
    table = kernel_table(module)
    assert table and all(op for _, _, op, _ in table)
    assert any("matmul" in label for label, _, _, _ in table)
    assert any("softmax" in label for label, _, _, _ in table)
    # Without the schedule every kernel is plain loops; with it, the matmul and softmax are
    # vector code.
    for label, plain, _, vector in table:
        if not schedule:
            assert plain and not vector, label
        elif "matmul" in label or "softmax" in label:
            assert not plain and vector, label
    llvm_ir = cpu.translate_to_llvm_ir(module)
    # One timer per kernel and one around the whole body, 4 slots each.
    assert llvm_ir.count("call void @__mo_prof_end(") == len(table) + 1
    assert "@mo_graph_pg__kernel_profile = global [" in llvm_ir
    assert f"[{4 * (len(table) + 1)} x i64]" in llvm_ir


def test_off_leaves_no_trace_in_the_module():
    ctx = make_context()
    module = _lowered(ctx)
    cpu.lower_to_llvm(module, threads=1)
    assert kernel_table(module) is None and PROFILE_ATTR not in module.operation.attributes
    text = cpu.translate_to_llvm_ir(module)
    assert "clock_gettime" not in text and "__mo_prof" not in text and "kernel_profile" not in text


def test_pass_is_registered_and_refuses_bad_input():
    profile = get_pass("mo-profile-kernels").fn
    ctx = make_context()
    module = _lowered(ctx)
    with pytest.raises(CompilationError, match="expected one entry function"):
        profile(module)  # not wrapped by mo-entry-abi yet
    cpu.entry_abi(module)
    profile(module)
    with pytest.raises(CompilationError, match="instrumented already"):
        profile(module)
