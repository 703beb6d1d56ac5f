"""The CPU target as data: its stages are registered passes, max-opt replays each one, and
kernels left to plain loops are recorded (never silent)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from mlir import ir
from mlir.passmanager import PassManager
from mo_helpers import make_context

from max.compiler import max_opt
from max.compiler.lowering import lower_to_linalg
from max.compiler.passes.registry import all_passes, split_element
from max.compiler.targets.cpu import CPU
from max.driver import CPU as CPUDevice
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType, ops

_SCHEDULE_STAGES = ["mo-schedule-tensors", "mo-vectorize-memrefs", "mo-fast-math",
                    "mo-forall-to-openmp"]


def _lowered_text(fn, shapes, dtype=DType.float32) -> str:
    cpu = DeviceRef.CPU()
    g = Graph("t", fn, input_types=[TensorType(dtype, s, cpu) for s in shapes])
    with make_context():
        m = ir.Module.parse(str(g._module))
        lower_to_linalg(m)
        return str(m)


def test_every_stage_is_a_registered_pass_or_an_upstream_pipeline() -> None:
    ours = all_passes()
    elements = CPU.pipeline(threads=2)
    for element in elements:
        name, options = split_element(element)
        if name in ours:
            ours[name].parse_options(options or "")  # the options the stage passes exist
        else:
            with make_context():
                PassManager.parse(f"builtin.module({element})")
    names = [split_element(e)[0] for e in elements]
    assert names[0] == "mo-entry-abi" and names[-1] == "mo-lower-to-llvm"
    for stage in _SCHEDULE_STAGES + ["mo-dps-inits", "mo-copies-to-linalg",
                                     "mo-record-fallbacks"]:
        assert stage in names, stage
    assert "mo-schedule-tensors{threads=2}" in elements
    assert "mo-profile-kernels" not in names


def test_plain_pipeline_leaves_the_schedule_out() -> None:
    names = [split_element(e)[0] for e in CPU.pipeline(schedule=False)]
    assert not set(_SCHEDULE_STAGES) & set(names)
    assert "mo-record-fallbacks" in names and "mo-lower-to-llvm" in names


def test_unknown_target_option_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"unknown options \['thread'\]"):
        CPU.pipeline(thread=2)
    with pytest.raises(ValueError, match="has no stage 'mo-nope'"):
        CPU.run(ir.Module.create(ir.Location.unknown(make_context())), until="mo-nope")


def test_pass_options_are_checked() -> None:
    info = all_passes()["mo-schedule-tensors"]
    assert info.parse_options("threads=3") == {"threads": 3}
    with pytest.raises(ValueError, match="unknown option 'thread=3'"):
        info.parse_options("thread=3")
    with pytest.raises(ValueError, match="threads='x' is not a int"):
        info.parse_options("threads=x")


def test_max_opt_replays_every_stage(tmp_path: Path) -> None:
    """Stage by stage through max-opt, each from the previous one's file, gives exactly what
    the target gives in one run: any stage can be replayed on a module saved before it."""
    text = _lowered_text(lambda x, w: ops.softmax(ops.gelu(x @ w)), [(5, 33), (33, 70)])
    with make_context() as ctx:
        whole = ir.Module.parse(text, ctx)
        CPU.run(whole, threads=1)
        want = str(whole)
    path = tmp_path / "stage0.mlir"
    path.write_text(text)
    for i, element in enumerate(CPU.pipeline(threads=1)):
        out = tmp_path / f"stage{i + 1}.mlir"
        rc = max_opt.main([str(path), "--no-verify", f"--pass-pipeline=builtin.module({element})",
                           "-o", str(out)])
        assert rc == 0, element
        path = out
    assert path.read_text() == want + ("\n" if not want.endswith("\n") else "")


def test_max_opt_rejects_bad_stage_options(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.mlir"
    path.write_text(_lowered_text(lambda x: x + 1, [(4,)]))
    assert max_opt.main([str(path), "--pass-pipeline=builtin.module(mo-schedule-tensors"
                                    "{thread=2})"]) == 1
    err = capsys.readouterr().err
    assert "unknown option 'thread=2'" in err and "options: threads" in err


def _load(fn, shapes, dtype=DType.float32):
    cpu = DeviceRef.CPU()
    g = Graph("fallback_probe", fn, input_types=[TensorType(dtype, s, cpu) for s in shapes])
    return InferenceSession(devices=[CPUDevice()]).load(g)


def test_scheduled_graph_records_no_fallback() -> None:
    model = _load(lambda x, w: ops.layer_norm(x @ w, ops.constant(np.ones(64, np.float32),
                                                                   DType.float32,
                                                                   DeviceRef.CPU()),
                                              ops.constant(np.zeros(64, np.float32),
                                                           DType.float32, DeviceRef.CPU()),
                                              1e-5),
                  [(16, 32), (32, 64)])
    assert model._record.fallbacks == ()


def test_plain_kernels_are_recorded_in_the_artifact_and_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    # f64 erf has no vector code (fast_math approximates f32 only): plain loops, recorded.
    with caplog.at_level(logging.INFO, logger="max.engine"):
        model = _load(lambda x: ops.erf(x) * 2, [(3, 70)], DType.float64)
    assert model._record.fallbacks == ("erf+mul (linalg.generic)",)
    assert "1 kernel(s) left to plain loops" in caplog.text
    assert "erf+mul (linalg.generic)" in caplog.text
    x = np.linspace(-3, 3, 210).reshape(3, 70)
    from math import erf

    np.testing.assert_allclose(model.execute(x)[0].to_numpy(), 2 * np.vectorize(erf)(x),
                               rtol=1e-14)


def _invalid_module() -> ir.Module:
    """A function declared to return an i32 whose return returns nothing (built op by op, so
    nothing has verified it), and two equal constants for ``cse`` to merge (the pass manager
    verifies only after a pass that changed something: unused, both go)."""
    from mlir.dialects import arith, func

    module = ir.Module.create()
    i32 = ir.IntegerType.get_signless(32)
    with ir.InsertionPoint(module.body):
        f = func.FuncOp("f", ir.FunctionType.get([], [i32]))
        with ir.InsertionPoint(f.add_entry_block()):
            arith.constant(i32, 7)
            arith.constant(i32, 7)
            func.ReturnOp([])
    return module


@pytest.mark.parametrize("setting", ["1", "0", None])
def test_pipelines_verify_after_each_pass_only_when_asked(monkeypatch, setting) -> None:
    from max.compiler.passes.registry import VERIFY_EACH_ENV, pass_manager

    if setting is None:
        monkeypatch.delenv(VERIFY_EACH_ENV, raising=False)
    else:
        monkeypatch.setenv(VERIFY_EACH_ENV, setting)
    with make_context(), ir.Location.unknown():
        module = _invalid_module()
        if setting == "1":
            with pytest.raises(ir.MLIRError, match="has 0 operands, but enclosing function"):
                pass_manager("cse").run(module.operation)
        else:  # the compile's own checks (its input, its LLVM dialect result) still run
            pass_manager("cse").run(module.operation)
            assert "arith.constant" not in str(module)  # the pass ran
