"""The AMD target as data: its stages (the NVIDIA target's front and schedules, then ROCDL
and the offline HSACO), ``targets["amd"]``, ``max-opt`` replaying it, and its errors: an
unknown arch, a missing or failing tool."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from amd_helpers import missing_tools
from gpu_helpers import gpu_graph

from max.compiler import max_opt
from max.compiler.gpu.rocdl import external_functions, hsaco
from max.compiler.passes.registry import CompilationError, all_passes, split_element
from max.compiler.targets import targets
from max.compiler.targets.amd import AMD, AmdDescription, compile_hsaco
from max.compiler.targets.nvidia import NVIDIA, NvidiaDescription
from max.dtype import DType
from max.graph import ops

F32 = DType.float32
needs_tools = pytest.mark.skipif(bool(missing_tools()), reason=f"{', '.join(missing_tools())} "
                                 "not installed (Debian: apt-get install llvm-19 lld-19)")


def _softmax_module() -> str:
    return str(gpu_graph(lambda x: ops.softmax(x), [(F32, (8, 256))])._module)


def test_registry_finds_amd() -> None:
    assert targets["amd"] is AMD and "amd" in list(targets)


def test_stages_share_the_nvidia_front_and_schedules() -> None:
    amd = AMD.pipeline(**AmdDescription(arch="gfx90a").options())
    nvidia = NVIDIA.pipeline(**NvidiaDescription().options())
    names = [split_element(e)[0] for e in amd]
    shared = names.index("mo-gpu-align-shared") + 1
    assert names[:shared] == [split_element(e)[0] for e in nvidia][:shared]
    assert "mo-gpu-schedule{block=256 reduce_block=256 max_blocks=880 wave=64}" in amd
    assert amd[shared:] == [
        "mo-rocdl-attach{arch=gfx90a}", "mo-convert-gpu-to-rocdl{arch=gfx90a}",
        nvidia[-3], nvidia[-2],  # the host's async region and the host to LLVM, as NVIDIA's
        "mo-rocdl-to-hsaco{arch=gfx90a llc=llc-19 ld_lld=ld.lld-19}"]
    ours = all_passes()
    for element in amd:
        name, options = split_element(element)
        if name in ours:
            ours[name].parse_options(options or "")


def test_description_options() -> None:
    assert AmdDescription().options() == {
        "arch": "gfx942", "block": 256, "reduce_block": 256, "max_blocks": 304 * 8,
        "wave": 64, "llc": "llc-19", "ld_lld": "ld.lld-19"}
    assert AmdDescription(arch="gfx90a", blocks_per_cu=4).options()["max_blocks"] == 110 * 4
    assert AmdDescription().wavefront == 64 and AmdDescription().lds_bytes == 65536


def test_unknown_arch_is_an_error() -> None:
    with pytest.raises(ValueError) as info:
        AmdDescription(arch="gfx1100")
    assert str(info.value) == "unsupported AMD arch 'gfx1100' (supported: gfx942, gfx90a)"
    with pytest.raises(ValueError) as info:
        compile_hsaco(_softmax_module(), "sm_90")
    assert str(info.value) == "unsupported AMD arch 'sm_90' (supported: gfx942, gfx90a)"
    with pytest.raises(ValueError, match="reduce_block=96 must be a multiple of 64"):
        AmdDescription(reduce_block=96)


def test_max_opt_unknown_arch_names_it(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "g.mlir"
    src.write_text(_softmax_module())
    assert max_opt.main([str(src), "--target=amd{arch=gfx908}", "-o",
                         str(tmp_path / "o.mlir")]) == 1
    assert "mo-rocdl-attach: unsupported AMD arch 'gfx908' (supported: gfx942, gfx90a)" in \
        capsys.readouterr().err


def test_missing_llc_is_named() -> None:
    with pytest.raises(CompilationError) as info:
        compile_hsaco(_softmax_module(), description=AmdDescription(llc="/nonexistent/llc-19"))
    assert str(info.value) == (
        "the AMD target needs '/nonexistent/llc-19' (LLVM 19) to compile gfx942 code objects, "
        "and it was not found (Debian: apt-get install llvm-19 lld-19; ./dev setup installs "
        "them)")


@needs_tools
def test_missing_ld_lld_is_named() -> None:
    desc = AmdDescription(arch="gfx90a", ld_lld="/nonexistent/ld.lld-19")
    with pytest.raises(CompilationError, match=r"^the AMD target needs "
                       r"'/nonexistent/ld.lld-19' \(LLVM 19\) to compile gfx90a code objects"):
        compile_hsaco(_softmax_module(), description=desc)


@needs_tools
def test_failing_tool_is_named(tmp_path: Path) -> None:
    fake = tmp_path / "llc"
    fake.write_text("#!/bin/sh\necho 'no such target' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(CompilationError) as info:
        compile_hsaco(_softmax_module(), description=AmdDescription(llc=str(fake)))
    assert str(info.value) == f"{fake} failed (exit 3) compiling for gfx942: no such target"


@needs_tools
def test_max_opt_replays_the_target(tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "g.mlir"
    src.write_text(_softmax_module())
    out = tmp_path / "out.mlir"
    rc = max_opt.main([str(src), "--target=amd{arch=gfx90a}", "--print-ir-after-all",
                       "-o", str(out)])
    assert rc == 0
    dumps = re.findall(r"IR Dump After (\S+)", capsys.readouterr().err)
    # Every stage in order (a dump names its element up to the first space).
    assert dumps == ["mo-to-linalg-if-mo"] + [e.split()[0]
                                              for e in AMD.pipeline(arch="gfx90a")]
    assert "mo-rocdl-attach{arch=gfx90a}" in dumps
    text = out.read_text()
    assert "gpu.binary" in text and '#rocdl.target<chip = "gfx90a">' in text
    assert not re.search(r"^\s*gpu\.module @", text, re.M)  # each became a gpu.binary
    assert "gpu.binary @mo_graph_g_kernel <#gpu.select_object<0" in text
    assert re.search(r"^\s*llvm\.func @mo_graph_g\(", text, re.M)  # the host, lowered


def test_device_library_calls_are_refused() -> None:
    text = ("declare float @__ocml_erf_f32(float)\n"
            "declare i32 @llvm.amdgcn.workitem.id.x()\n")
    assert external_functions(text) == ["__ocml_erf_f32"]
    with pytest.raises(CompilationError) as info:
        hsaco(text, "gfx942", llc="/nonexistent/llc-19")
    assert str(info.value) == ("mo-rocdl-to-hsaco: the gfx942 kernels call __ocml_erf_f32, "
                               "which the offline route does not link (no ROCm device "
                               "libraries)")
