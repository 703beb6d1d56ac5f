"""IR-level tests of mo-to-linalg and the CPU pipeline, and their error paths."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile

import numpy as np
import pytest
from mlir import ir
from mo_helpers import Compiled, check, make_context, mo_type, one_op_module

from max.compiler.lowering import lower_to_linalg
from max.compiler.passes.registry import CompilationError, get_pass
from max.compiler.pipelines import cpu

T = mo_type("f32", ("batch", 4))


def _lowered(text: str) -> ir.Module:
    ctx = make_context()
    with ctx:
        m = ir.Module.parse(text)
        lower_to_linalg(m)
        assert m.operation.verify()
    return m


def _filecheck(text: str, checks: str) -> None:
    """Runs the FileCheck binary shipped with the llvm package."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(checks)
    try:
        r = subprocess.run([cpu.llvm_bin("FileCheck"), f.name], input=text, capture_output=True,
                           text=True)
    finally:
        os.unlink(f.name)
    assert r.returncode == 0, r.stderr


def test_passes_are_registered() -> None:
    assert get_pass("mo-to-linalg").fn is lower_to_linalg
    assert get_pass("mo-entry-abi").fn is cpu.entry_abi


def test_add_is_one_generic_with_dynamic_dims() -> None:
    m = _lowered(one_op_module("add", [("f32", ("batch", 4)), ("f32", (4,))], ("f32", ("batch", 4))))
    _filecheck(str(m), """
CHECK: func.func @g(%{{.*}}: tensor<?x4xf32>, %{{.*}}: tensor<4xf32>) -> tensor<?x4xf32>
CHECK-SAME: mo.graph
CHECK: tensor.dim
CHECK: linalg.generic
CHECK-NOT: linalg.generic
CHECK: arith.addf
CHECK: return
""")


def test_chain_fuses_into_one_loop_nest_and_one_function() -> None:
    text = (f"func.func @g(%a: {T}, %b: {T}) -> {T} attributes {{mo.graph}} {{\n"
            f'  %0 = "mo.add"(%a, %b) : ({T}, {T}) -> {T}\n'
            f'  %1 = "mo.mul"(%0, %a) : ({T}, {T}) -> {T}\n'
            f'  %2 = "mo.relu"(%1) : ({T}) -> {T}\n'
            f'  %3 = "mo.sub"(%2, %b) : ({T}, {T}) -> {T}\n'
            f"  func.return %3 : {T}\n}}\n")
    ctx = make_context()
    with ctx:
        m = ir.Module.parse(text)
        lower_to_linalg(m)
        assert str(m).count("linalg.generic") == 4
        cpu.entry_abi(m)
        from mlir.passmanager import PassManager

        PassManager.parse(f"builtin.module({cpu.TENSOR_PIPELINE})").run(m.operation)
        lowered = str(m)
    assert lowered.count("linalg.generic") == 1, lowered
    assert lowered.count("func.func") == 1
    assert "memref.alloc" not in lowered  # written straight into the caller's output
    c = Compiled(text)
    for n in (1, 9):
        a, b = np.random.rand(n, 4).astype(np.float32), np.random.rand(n, 4).astype(np.float32)
        (out,), _ = c([a, b], [((n, 4), "float32")])
        check(out, np.maximum((a + b) * a, 0) - b, rtol=1e-6)


def test_entry_abi_signature_and_checks() -> None:
    text = one_op_module("gather", [("f32", ("n", 3)), ("si64", (2,))], ("f32", (2, 3)),
                         "axis = 0 : i64")
    m = _lowered(text)
    fn = cpu.graph_functions(m)[0]
    sig = cpu.entry_signature(fn)
    assert sig.num_inputs == 2 and sig.num_outputs == 1 and len(sig.checks) == 1
    assert "tensor<1xi8>" in str(fn.attributes["function_type"])
    with m.context:
        cpu.entry_abi(m)
    fn = cpu.graph_functions(m)[0]
    assert cpu.entry_signature(fn) == sig
    _filecheck(str(m), """
CHECK: func.func @mo_graph_g(%{{.*}}: memref<?x3xf32>, %{{.*}}: memref<2xi64>, %{{.*}}: memref<2x3xf32>, %{{.*}}: memref<1xi8>)
CHECK-SAME: llvm.emit_c_interface
CHECK-SAME: mo.checks = ["mo.gather: index out of range
CHECK: bufferization.to_tensor {{.*}} restrict
CHECK: bufferization.materialize_in_destination {{.*}} in restrict writable
CHECK-NOT: func.func
""")


def test_shared_object_exports_entry_and_needs_only_libc_libm(tmp_path) -> None:
    if not cpu.have_system_linker():
        pytest.skip("no system linker")
    text = one_op_module("slice", [("f32", ("n", 4))], ("f32", ("n", 2)),
                         "starts = array<i64: 0, 1>, stops = array<i64: 9223372036854775807, 4>,"
                         " steps = array<i64: 1, 2>")
    with make_context():
        m = ir.Module.parse(text)
        lower_to_linalg(m)
        cpu.lower_to_llvm(m)
        llvm_ir = cpu.translate_to_llvm_ir(m)
    so = tmp_path / "model.so"
    cpu.build_shared_object(llvm_ir, so)
    syms = subprocess.run([cpu.llvm_bin("llvm-nm"), "-D", str(so)], capture_output=True,
                          text=True).stdout
    assert re.search(r"\bT _mlir_ciface_mo_graph_g\b", syms)
    undefined = {line.split()[-1] for line in syms.splitlines() if " U " in line}
    assert not {u for u in undefined if u.startswith(("memref", "_mlir"))}, undefined
    # Every allocation is freed (buffer-deallocation-pipeline ran).
    assert llvm_ir.count("@malloc(") <= llvm_ir.count("@free(") + 1


def test_unknown_op_is_a_compilation_error() -> None:
    text = one_op_module("add", [("f32", (2,)), ("f32", (2,))], ("f32", (2,)))
    with make_context():
        m = ir.Module.parse(text)
        m.body.operations[0].attributes["mo.graph"] = ir.UnitAttr.get()
    bad = str(m).replace('"mo.add"', '"mo.frobnicate"')
    ctx = ir.Context()
    ctx.allow_unregistered_dialects = True
    with ctx:
        m2 = ir.Module.parse(bad.replace('!mo.tensor<f32, [2], "cpu:0">', "tensor<2xf32>"))
        with pytest.raises(CompilationError):
            lower_to_linalg(m2)


@pytest.mark.parametrize("op,attrs,why", [
    ("reduce_sum", "axis = 5 : i64", "axis 5 out of range"),
    ("transpose", "permutation = array<i64: 0, 0>", "not a permutation"),
])
def test_bad_attributes_name_the_op(op: str, attrs: str, why: str) -> None:
    result = ("f32", (2, 1)) if op == "reduce_sum" else ("f32", (2, 3))
    text = one_op_module(op, [("f32", (2, 3))], result, attrs)
    with make_context():
        m = ir.Module.parse(text)
        with pytest.raises(CompilationError, match=f"mo.{op}.*{why}"):
            lower_to_linalg(m)


def test_missing_attribute_is_rejected_by_the_mo_verifier() -> None:
    text = one_op_module("softmax", [("f32", (2, 3))], ("f32", (2, 3)), "")
    with make_context():
        with pytest.raises(ir.MLIRError, match='attribute "axis" is expected'):
            ir.Module.parse(text)


def test_dim_expressions() -> None:
    tin = mo_type("f32", ("a", "b"))
    tout = mo_type("f32", ("a * b // 2", 2))
    text = (f"func.func @g(%x: {tin}) -> {tout} attributes {{mo.graph}} {{\n"
            f'  %r = "mo.reshape"(%x) : ({tin}) -> {tout}\n'
            f"  func.return %r : {tout}\n}}\n")
    c = Compiled(text)
    for a, b in ((2, 3), (5, 4)):
        x = np.arange(a * b, dtype=np.float32).reshape(a, b)
        (out,), _ = c([x], [((a * b // 2, 2), "float32")])
        check(out, x.reshape(-1, 2))
