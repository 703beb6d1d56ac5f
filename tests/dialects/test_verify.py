"""mo-verify: MO from outside the builders is checked against the op definitions before any
code is generated from it. Each finding of the hardening issue is a case here, through every
door a file comes in by: ``InferenceSession.load(path)``, ``Graph(path=)`` and ``max-opt``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from max.compiler.max_opt import main as max_opt_main
from max.dialects.mo import make_context
from max.dialects.mo.verify import VerificationError, verify_module
from max.engine import InferenceSession
from max.graph import Graph
from mlir import ir


def T(dtype: str, dims: str) -> str:
    return f'!mo.tensor<{dtype}, [{dims}], "cpu:0">'


def graph(args: list[str], body: str, result: str, attrs: str = "") -> str:
    params = ", ".join(f"%a{i}: {t}" for i, t in enumerate(args))
    return (f"func.func @g({params}) -> {result} attributes {{mo.graph}} {{\n"
            f"  {body}\n  func.return %0 : {result}\n}}\n")


def op(name: str, operands: list[tuple[str, str]], result: str, attrs: str = "") -> str:
    names = ", ".join(n for n, _ in operands)
    types = ", ".join(t for _, t in operands)
    return f'%0 = "{name}"({names}) {attrs} : ({types}) -> {result}'


N, M = T("f32", '"n"'), T("f32", '"m"')

# (case, MLIR text, the message the verifier must give)
BAD = {
    # the issue's findings: each one crashed or read out of bounds before
    "add of n and m": (
        graph([N, M], op("mo.add", [("%a0", N), ("%a1", M)], N), N),
        r"op 0 \(mo\.add.*\): mo\.add: operand shapes do not broadcast: dim 0 .* is n in lhs "
        r"\[n\] and m in rhs \[m\]"),
    "matmul k vs j": (
        graph([T("f32", '"b", "k"'), T("f32", '"j", 4')],
              op("mo.matmul", [("%a0", T("f32", '"b", "k"')), ("%a1", T("f32", '"j", 4'))],
                 T("f32", '"b", 4')), T("f32", '"b", 4')),
        r"mo\.matmul: the K dims differ: lhs has k, rhs has j"),
    "reshape n to 1000x1000": (
        graph([N], op("mo.reshape", [("%a0", N)], T("f32", "1000, 1000")), T("f32", "1000, 1000")),
        r"mo\.reshape: operand x \[n\] has n elements, result \[1000, 1000\] has 1000000"),
    "relu n to m": (
        graph([N, M], op("mo.relu", [("%a0", N)], M), M),
        r"mo\.relu: result shape \[m\] should be \[n\]"),
    # more of what a file can get wrong
    "dtype mismatch": (
        graph([N, T("f64", '"n"')], op("mo.add", [("%a0", N), ("%a1", T("f64", '"n"'))], N), N),
        r"mo\.add: operand rhs has dtype float64, lhs has float32"),
    "result dtype": (
        graph([N], op("mo.exp", [("%a0", N)], T("f64", '"n"')), T("f64", '"n"')),
        r"mo\.exp: result dtype float64 should be float32"),
    "exp of int": (
        graph([T("si32", '"n"')], op("mo.exp", [("%a0", T("si32", '"n"'))], T("si32", '"n"')),
              T("si32", '"n"')),
        r"mo\.exp: expected a floating-point dtype, got int32"),
    "axis out of range": (
        graph([N], op("mo.reduce_sum", [("%a0", N)], T("f32", "1"), "{axis = 1 : i64}"),
              T("f32", "1")),
        r"mo\.reduce_sum: attribute axis=1 is not an axis of a rank-1 operand"),
    "max over an empty axis": (
        graph([T("f32", "3, 0")],
              op("mo.reduce_max", [("%a0", T("f32", "3, 0"))], T("f32", "3, 1"), "{axis = 1 : i64}"),
              T("f32", "3, 1")),
        r"mo\.reduce_max: axis 1 of operand x \[3, 0\] is empty"),
    "axis of the wrong kind": (  # IRDL takes any builtin.integer, a bool among them
        graph([N], op("mo.softmax", [("%a0", N)], N, "{axis = true}"), N),
        r"mo\.softmax: attribute axis = true is not of kind int"),
    "permutation of the wrong kind": (  # IRDL takes any dense array
        graph([T("f32", "2, 3")],
              op("mo.transpose", [("%a0", T("f32", "2, 3"))], T("f32", "3, 2"),
                 "{permutation = array<i32: 1, 0>}"), T("f32", "3, 2")),
        r"mo\.transpose: attribute permutation = array<i32: 1, 0> is not of kind ints"),
    "bad permutation": (
        graph([T("f32", "2, 3")],
              op("mo.transpose", [("%a0", T("f32", "2, 3"))], T("f32", "3, 2"),
                 "{permutation = array<i64: 0, 0>}"), T("f32", "3, 2")),
        r"mo\.transpose: attribute permutation=\[0, 0\] is not a permutation"),
    "static slice length": (
        graph([T("f32", "5")],
              op("mo.slice", [("%a0", T("f32", "5"))], T("f32", "5"),
                 "{starts = array<i64: 1>, stops = array<i64: 5>, steps = array<i64: 1>}"),
              T("f32", "5")),
        r"mo\.slice: dim 0 of the result is 5, but slice\(1, 5, 1\) of operand x \[5\] has "
        r"length 4"),
    "concat other dim": (
        graph([T("f32", "2, 3"), T("f32", "2, 4")],
              op("mo.concat", [("%a0", T("f32", "2, 3")), ("%a1", T("f32", "2, 4"))],
                 T("f32", "4, 3"), "{axis = 0 : i64}"), T("f32", "4, 3")),
        r"mo\.concat: dim 1 differs between lhs \[2, 3\] and rhs \[2, 4\]"),
    "gather by floats": (
        graph([T("f32", "4"), T("f32", "2")],
              op("mo.gather", [("%a0", T("f32", "4")), ("%a1", T("f32", "2"))], T("f32", "2"),
                 "{axis = 0 : i64}"), T("f32", "2")),
        r"mo\.gather: operand indices must have an integer dtype, got float32"),
    "broadcast_to that does not broadcast": (
        graph([T("f32", "3")], op("mo.broadcast_to", [("%a0", T("f32", "3"))], T("f32", "2, 4")),
              T("f32", "2, 4")),
        r"mo\.broadcast_to: cannot broadcast operand x \[3\] to result \[2, 4\]"),
    "constant of another shape": (
        graph([], op("mo.constant", [], T("f32", "1000"),
                     "{value = dense<1.0> : tensor<4xf32>}"), T("f32", "1000")),
        r"mo\.constant: value of type tensor<4xf32> does not have the result's static shape"),
    "layer_norm gamma": (
        graph([T("f32", "2, 4"), T("f32", "3"), T("f32", "3")],
              op("mo.layer_norm", [("%a0", T("f32", "2, 4")), ("%a1", T("f32", "3")),
                                   ("%a2", T("f32", "3"))], T("f32", "2, 4"),
                 "{epsilon = 1.0e-05 : f64}"), T("f32", "2, 4")),
        r"mo\.layer_norm: operand gamma \[3\] does not match the last dims of operand x"),
    "negative dim": (
        graph([T("f32", "-5")], op("mo.relu", [("%a0", T("f32", "-5"))], T("f32", "-5")),
              T("f32", "-5")),
        r"input 0: negative dim -5"),
    "dim that is code": (
        graph([T("f32", '"__import__(0)"')],
              op("mo.relu", [("%a0", T("f32", '"__import__(0)"'))], T("f32", '"__import__(0)"')),
              T("f32", '"__import__(0)"')),
        r"input 0: bad dim '__import__\(0\)'"),
    "unbound symbol": (
        graph([N], op("mo.broadcast_to", [("%a0", N)], T("f32", '"k", "n"')), T("f32", '"k", "n"')),
        r"result: dim symbol 'k' is not bound by any input's dims"),
    "bad device": (
        graph([T("f32", "2").replace("cpu:0", "tpu:0")],
              op("mo.relu", [("%a0", T("f32", "2").replace("cpu:0", "tpu:0"))],
                 T("f32", "2").replace("cpu:0", "tpu:0")), T("f32", "2").replace("cpu:0", "tpu:0")),
        r"input 0: bad device 'tpu:0'"),
    "not an MO op": (
        f"func.func @h(%x: {N}) -> {N} {{\n  func.return %x : {N}\n}}\n"
        + graph([N], f"%0 = func.call @h(%a0) : ({N}) -> {N}", N),
        r"op 0 \(func\.call.*\): not an MO op"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_verifier_rejects(case: str) -> None:
    text, message = BAD[case]
    module = ir.Module.parse(text, make_context())
    with pytest.raises(VerificationError, match=message):
        verify_module(module)


@pytest.mark.parametrize("case", ["add of n and m", "matmul k vs j", "reshape n to 1000x1000",
                                  "relu n to m", "constant of another shape"])
def test_session_load_of_a_bad_file_is_a_value_error(case: str, tmp_path: Path) -> None:
    text, message = BAD[case]
    path = tmp_path / "bad.mlir"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        InferenceSession().load(path)


@pytest.mark.parametrize("case", ["add of n and m", "relu n to m", "unbound symbol"])
def test_graph_from_a_bad_file_is_a_value_error(case: str, tmp_path: Path) -> None:
    text, message = BAD[case]
    path = tmp_path / "bad.mlir"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"{path}: .*{message}"):
        Graph("g", path=path)


def test_max_opt_rejects_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "bad.mlir"
    path.write_text(BAD["reshape n to 1000x1000"][0])
    assert max_opt_main([str(path), "--mo-canonicalize"]) != 0
    err = capsys.readouterr().err
    assert "mo.reshape: operand x [n] has n elements, result [1000, 1000]" in err
    # --no-verify hands the module to the passes as it is (a pass-debugging escape hatch)
    assert max_opt_main([str(path), "--no-verify"]) == 0


def test_max_opt_mo_verify_pass(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "bad.mlir"
    path.write_text(BAD["relu n to m"][0])
    assert max_opt_main([str(path), "--no-verify", "--mo-verify"]) != 0
    assert "pass 'mo-verify' failed" in capsys.readouterr().err


def test_a_good_file_still_runs(tmp_path: Path) -> None:
    s = T("f32", '"n", 3')
    text = graph([s, T("f32", "3")], op("mo.add", [("%a0", s), ("%a1", T("f32", "3"))], s), s)
    path = tmp_path / "ok.mlir"
    path.write_text(text)
    a, b = np.ones((4, 3), np.float32), np.arange(3, dtype=np.float32)
    (out,) = InferenceSession().load(path).execute(a, b)
    np.testing.assert_array_equal(out.to_numpy(), a + b)


def test_a_file_whose_op_binds_a_symbol_from_data_runs(tmp_path: Path) -> None:
    """mo.nonzero binds "k": a result of that size is allowed, and returned sized by the data."""
    k = T("si64", '"k", 1')
    path = tmp_path / "nonzero.mlir"
    path.write_text(graph([N], op("mo.nonzero", [("%a0", N)], k), k))
    x = np.array([0, 2, 0, 5], np.float32)
    (out,) = InferenceSession().load(path).execute(x)
    np.testing.assert_array_equal(out.to_numpy(), np.argwhere(x))


def test_a_symbol_is_bound_only_after_the_op_that_binds_it() -> None:
    k, k1, s = T("f32", '"k"'), T("si64", '"k", 1'), T("f32", "")
    text = (f"func.func @g(%a0: {N}, %a1: {s}) -> {k} attributes {{mo.graph}} {{\n"
            f'  %0 = "mo.broadcast_to"(%a1) : ({s}) -> {k}\n'
            f'  %1 = "mo.nonzero"(%a0) : ({N}) -> {k1}\n'
            f"  func.return %0 : {k}\n}}\n")
    with pytest.raises(VerificationError, match="op 0 .* dim symbol 'k' is not bound"):
        verify_module(ir.Module.parse(text, make_context()))


def test_a_subgraph_may_not_bind_a_symbol_from_data() -> None:
    k = T("si64", '"k", 1')
    text = (f"func.func private @body(%a0: {N}) -> {k} {{\n"
            f'  %0 = "mo.nonzero"(%a0) : ({N}) -> {k}\n'
            f"  func.return %0 : {k}\n}}\n"
            f"func.func @g(%a0: {N}) -> {N} attributes {{mo.graph}} {{\n"
            f"  func.return %a0 : {N}\n}}\n")
    with pytest.raises(VerificationError, match=r"subgraph 'body', op 0 \(mo.nonzero.*result "
                                                r"dim 0 \(k\) is a new symbol.*not supported in "
                                                "a subgraph"):
        verify_module(ir.Module.parse(text, make_context()))


def test_the_process_survives_the_issue_cases(tmp_path: Path) -> None:
    """The issue's crashing files, loaded and called in a child: a clean error, no signal."""
    path = tmp_path / "bad.mlir"
    path.write_text(BAD["add of n and m"][0])
    code = (
        "import numpy as np\nfrom max.engine import InferenceSession\n"
        f"try:\n    InferenceSession().load({str(path)!r})\n"
        "except ValueError as e:\n    print('rejected:', e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "rejected:" in proc.stdout and "mo.add" in proc.stdout
