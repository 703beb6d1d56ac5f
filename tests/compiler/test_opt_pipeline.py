"""opt's pass pipeline (compiler/pipelines/opt_pipeline.py): LLVM's default<O2> less
loop-load-elim, as opt itself prints it."""

from __future__ import annotations

import subprocess

from max.compiler.pipelines import cpu, opt_pipeline


def _target() -> tuple[str, ...]:
    return (f"-mtriple={cpu.host_triple()}", "-mcpu=native")


def test_without_removes_whole_elements_only() -> None:
    names = ("loop-load-elim",)
    assert opt_pipeline.without("function(a,loop-load-elim,b)", names) == "function(a,b)"
    assert opt_pipeline.without("function(a,loop-load-elim),c", names) == "function(a),c"
    assert opt_pipeline.without("f(loop-load-elim-x,b),loop-load-elimz", names) == \
        "f(loop-load-elim-x,b),loop-load-elimz"


def test_the_pipeline_is_the_default_one_less_loop_load_elim() -> None:
    opt = cpu.llvm_bin("opt")
    passes = opt_pipeline.opt_passes(opt, 2, _target())
    printed = subprocess.run([opt, "-O2", *_target(), "-print-pipeline-passes",
                              "-disable-output", "-"], input="", capture_output=True,
                             text=True, check=True).stdout.strip()
    assert "loop-load-elim" in printed and "loop-load-elim" not in passes
    assert printed.replace("loop-load-elim,", "") == passes
    # The rest of the default pipeline is all there.
    for name in ("instcombine", "loop-vectorize", "slp-vectorizer", "loop-unroll<O2>", "gvn"):
        assert name in passes


def test_an_opt_that_cannot_print_its_pipeline_gets_the_default() -> None:
    assert opt_pipeline.opt_passes("/nonexistent/opt", 2, ()) == "default<O2>"
    assert opt_pipeline.opt_passes(cpu.llvm_bin("opt"), 0, ()) == "default<O0>"
