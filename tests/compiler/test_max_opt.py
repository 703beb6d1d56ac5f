"""The ``max-opt`` CLI, run as ``python -m max.compiler.max_opt`` in a child process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from max.compiler import max_opt
from filecheck import filecheck

F = '!mo.tensor<f32, [2, 2], "cpu:0">'

# Every op keeps its operand type, so this parses whatever the MO spec's constraints are.
MODULE = f"""
func.func @g(%a: {F}) -> ({F}, {F}) attributes {{mo.graph}} {{
  %c = "mo.constant"() {{value = dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>}} : () -> {F}
  %d = "mo.constant"() {{value = dense<2.0> : tensor<2x2xf32>}} : () -> {F}
  %e = "mo.mul"(%c, %d) : ({F}, {F}) -> {F}
  %x = "mo.add"(%a, %e) : ({F}, {F}) -> {F}
  %y = "mo.add"(%a, %e) : ({F}, {F}) -> {F}
  %t = "mo.transpose"(%x) {{permutation = array<i64: 1, 0>}} : ({F}) -> {F}
  %u = "mo.transpose"(%t) {{permutation = array<i64: 1, 0>}} : ({F}) -> {F}
  %dead = "mo.exp"(%a) : ({F}) -> {F}
  return %u, %y : {F}, {F}
}}
"""


def max_opt_cmd(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "max.compiler.max_opt", *args],
        input=stdin, capture_output=True, timeout=300,
    )


def assert_clean_error(proc: subprocess.CompletedProcess[bytes], *words: str) -> str:
    """Exit status 1 and exactly one stderr line ``max-opt: error: ...`` naming ``words``."""
    err = proc.stderr.decode()
    assert proc.returncode == 1, (proc.returncode, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("max-opt: error: "), err
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert proc.stdout == b""
    return lines[0]


@pytest.fixture
def mlir_file(tmp_path: Path) -> Path:
    path = tmp_path / "g.mlir"
    path.write_text(MODULE)
    return path


def test_without_passes_prints_the_module(mlir_file: Path) -> None:
    proc = max_opt_cmd(str(mlir_file))
    assert proc.returncode == 0, proc.stderr
    filecheck(proc.stdout.decode(), """
    CHECK: func.func @g
    CHECK-COUNT-2: "mo.add"
    CHECK: "mo.exp"
    """)


def test_passes_run_in_command_line_order(mlir_file: Path) -> None:
    proc = max_opt_cmd(str(mlir_file), "--mo-cse", "--mo-fold", "--mo-dce")
    assert proc.returncode == 0, proc.stderr
    filecheck(proc.stdout.decode(), """
    CHECK: %[[C:.*]] = "mo.constant"() {value = dense<{{\\[\\[}}2.000000e+00, 4.000000e+00], [6.000000e+00, 8.000000e+00]]>
    CHECK-NEXT: %[[X:.*]] = "mo.add"(%arg0, %[[C]])
    CHECK-NEXT: return %[[X]], %[[X]]
    """)
    # Without DCE the dead ops stay: the passes did what was asked, no more.
    proc = max_opt_cmd(str(mlir_file), "--mo-fold")
    assert proc.returncode == 0 and b'"mo.exp"' in proc.stdout


def test_pipeline_mixes_our_passes_and_upstream_ones(mlir_file: Path) -> None:
    proc = max_opt_cmd(
        str(mlir_file),
        "--pass-pipeline=builtin.module(mo-canonicalize,canonicalize{max-iterations=2},"
        "func.func(cse))",
        "--symbol-dce",
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert out.count('"mo.add"') == 1 and '"mo.exp"' not in out


def test_upstream_pass_flag_with_options(mlir_file: Path) -> None:
    proc = max_opt_cmd(str(mlir_file), "--canonicalize=max-iterations=2 region-simplify=normal")
    assert proc.returncode == 0, proc.stderr


def test_print_ir_after_all(mlir_file: Path) -> None:
    proc = max_opt_cmd(str(mlir_file), "--mo-fold", "--print-ir-after-all", "--cse")
    assert proc.returncode == 0, proc.stderr
    filecheck(proc.stderr.decode(), """
    CHECK: // -----// IR Dump After mo-fold //----- //
    CHECK-NEXT: module {
    CHECK: "mo.exp"
    CHECK: // -----// IR Dump After cse //----- //
    CHECK-NEXT: module {
    """)
    assert b"IR Dump" not in proc.stdout


def test_list_passes() -> None:
    proc = max_opt_cmd("--list-passes")
    assert proc.returncode == 0
    out = proc.stdout.decode()
    for name in ("mo-fold", "mo-cse", "mo-dce", "mo-canonicalize"):
        assert f"--{name}" in out
    assert "upstream" in out


def test_bytecode_round_trip(mlir_file: Path, tmp_path: Path) -> None:
    bc = tmp_path / "g.bin"  # no .mlirbc suffix: the content says it is bytecode
    proc = max_opt_cmd(str(mlir_file), "--mo-canonicalize", "--emit-bytecode", "-o", str(bc))
    assert proc.returncode == 0, proc.stderr
    assert bc.read_bytes().startswith(max_opt.BYTECODE_MAGIC)
    direct = max_opt_cmd(str(mlir_file), "--mo-canonicalize").stdout
    again = max_opt_cmd(str(bc))
    assert again.returncode == 0, again.stderr
    assert again.stdout == direct


def test_stdin_and_output_file(mlir_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mlir"
    proc = max_opt_cmd("-", "--mo-dce", "-o", str(out), stdin=mlir_file.read_bytes())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b""
    assert '"mo.exp"' not in out.read_text() and "func.func @g" in out.read_text()


def test_truncated_bytecode_is_a_clean_error(mlir_file: Path, tmp_path: Path) -> None:
    bc = tmp_path / "g.mlirbc"
    assert max_opt_cmd(str(mlir_file), "--emit-bytecode", "-o", str(bc)).returncode == 0
    data = bc.read_bytes()
    for n, cut in enumerate((len(data) // 2, 12, len(data) - 5)):
        bad = tmp_path / f"cut{n}.mlirbc"
        bad.write_bytes(data[:cut])
        assert_clean_error(max_opt_cmd(str(bad)), str(bad))


def test_unknown_pass_is_a_clean_error(mlir_file: Path) -> None:
    assert_clean_error(max_opt_cmd(str(mlir_file), "--mo-nonsense"), "unknown pass", "mo-nonsense")
    assert_clean_error(
        max_opt_cmd(str(mlir_file), "--pass-pipeline=builtin.module(mo-fold,nope)"),
        "unknown pass", "nope",
    )


def test_other_errors_are_clean(mlir_file: Path, tmp_path: Path) -> None:
    assert_clean_error(max_opt_cmd(str(tmp_path / "missing.mlir")), "missing.mlir")
    bad = tmp_path / "bad.mlir"
    bad.write_text(f'func.func @f(%a: {F}) {{\n  %x = "mo.add"(%a) : ({F}) -> {F}\n  return\n}}\n')
    assert_clean_error(max_opt_cmd(str(bad)), f"{bad}:2:", "operands")
    garbage = tmp_path / "garbage.mlir"
    garbage.write_bytes(b"\xff\xfe\x00 not mlir")
    assert_clean_error(max_opt_cmd(str(garbage)), "garbage.mlir")
    assert_clean_error(max_opt_cmd(str(mlir_file), "--canonicalize=bogus=1"), "bogus")
    assert_clean_error(max_opt_cmd(str(mlir_file), "--mo-fold=x=1"), "mo-fold")
    assert_clean_error(
        max_opt_cmd(str(mlir_file), "--pass-pipeline=builtin.module(mo-fold"), "pipeline"
    )


def test_an_upstream_failure_inside_our_pass_names_its_diagnostic(mlir_file: Path) -> None:
    """A registered pass that runs an upstream pipeline (mo-nvvm-attach) and fails: the
    error is the upstream diagnostic, not just "Failure while executing pass pipeline"."""
    assert_clean_error(max_opt_cmd(str(mlir_file), "--target=nvidia{arch=sm_10}"),
                       "mo-nvvm-attach", "Minimum NVVM target SM version is sm_20")


def test_split_pipeline() -> None:
    assert max_opt.split_pipeline(
        "builtin.module(mo-fold, func.func(cse,canonicalize), canonicalize{max-iterations=2})"
    ) == ["mo-fold", "func.func(cse,canonicalize)", "canonicalize{max-iterations=2}"]
    assert max_opt.split_pipeline("mo-fold,cse") == ["mo-fold", "cse"]


def test_main_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert max_opt.main(["--list-passes"]) == 0
    assert "mo-canonicalize" in capsys.readouterr().out
    assert max_opt.main(["--no-such-pass", "/nonexistent.mlir"]) == 1
    assert capsys.readouterr().err.startswith("max-opt: error: unknown pass")
