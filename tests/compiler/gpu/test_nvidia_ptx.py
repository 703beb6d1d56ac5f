"""The NVIDIA target's PTX, compile-only (CI has no GPU): kernels, the arch, the schedules'
signatures (128-bit vector loads, warp shuffles, shared memory), and ptxas from the pinned
wheel assembling every kernel with no spills."""

from __future__ import annotations

import re

import numpy as np
import pytest
from gpu_helpers import gpu_graph

from max.compiler.targets.nvidia import NvidiaDescription, compile_ptx
from max.dtype import DType
from max.graph import DeviceRef, ops

F32, F16, I32 = DType.float32, DType.float16, DType.int32
pytestmark = pytest.mark.usefixtures("schedule_debug")  # a schedule failure fails the test

# LLVM 22's NVPTX prints untyped vector accesses: ld.global.v4.b32 (older ones: .v4.f32).
V4_LOAD = re.compile(r"ld\.global(\.nc)?\.v4\.(b32|f32)")
V4_STORE = re.compile(r"st\.global\.v4\.(b32|f32)")


def _compile(fn, specs, arch: str = "sm_90") -> tuple[str, list[str]]:
    fallbacks: list[str] = []
    ptx = compile_ptx(gpu_graph(fn, specs)._module, arch, fallbacks=fallbacks)
    return ptx, fallbacks


def _entries(ptx: str) -> list[str]:
    return re.findall(r"\.visible \.entry (\w+)\(", ptx)


def _assembles_clean(ptxas, ptx: str, arch: str = "sm_90") -> list[tuple]:
    rows = ptxas(ptx, arch)
    assert [r[0] for r in rows] == _entries(ptx)[::-1] or \
        sorted(r[0] for r in rows) == sorted(_entries(ptx))
    for name, regs, spill_st, spill_ld, stack in rows:
        assert (spill_st, spill_ld, stack) == (0, 0, 0), name
        assert regs <= 64, (name, regs)
    return rows


def test_elementwise_chain_is_one_vectorized_kernel(ptxas) -> None:
    ptx, fallbacks = _compile(lambda x, y: ops.relu(x * y + 1.0) - y,
                              [(F32, (64, 1024)), (F32, (64, 1024))])
    assert fallbacks == []
    assert ".target sm_90" in ptx and ".version 8.0" in ptx
    assert len(_entries(ptx)) == 1  # fused: one kernel for four ops
    assert len(V4_LOAD.findall(ptx)) == 2 and len(V4_STORE.findall(ptx)) == 1
    assert ".maxntid 256, 1, 1" in ptx
    assert "div.u" not in ptx and "rem.u" not in ptx  # index math by constants, not params
    _assembles_clean(ptxas, ptx)


def test_sm_80_is_selectable(ptxas) -> None:
    ptx, _ = _compile(lambda x: ops.exp(x) * 2.0, [(F32, (4096,))], arch="sm_80")
    assert ".target sm_80" in ptx and ".target sm_90" not in ptx
    _assembles_clean(ptxas, ptx, "sm_80")


def test_broadcast_operand_is_one_scalar_load_per_vector(ptxas) -> None:
    # y[:, 0] is the same for the 4 lanes of a row: scalar load; x and the output: vectors.
    ptx, fallbacks = _compile(lambda x, y: x * y, [(F32, (64, 128)), (F32, (64, 1))])
    assert fallbacks == [] and len(_entries(ptx)) == 1
    assert len(V4_LOAD.findall(ptx)) == 1 and len(V4_STORE.findall(ptx)) == 1
    assert re.search(r"ld\.global(\.nc)?\.(b32|f32)\s", ptx)
    _assembles_clean(ptxas, ptx)


def test_float16_uses_eight_lanes_per_128_bits(ptxas) -> None:
    ptx, fallbacks = _compile(lambda x, y: x * y + x, [(F16, (64, 1024)), (F16, (64, 1024))])
    assert fallbacks == []
    assert len(V4_LOAD.findall(ptx)) == 2  # vector<8xf16> = 4 x b32
    _assembles_clean(ptxas, ptx)


def test_odd_sizes_fall_to_scalar_accesses(ptxas) -> None:
    ptx, fallbacks = _compile(lambda x, y: x + y, [(F32, (7, 13)), (F32, (7, 13))])
    assert fallbacks == [] and not V4_LOAD.search(ptx)
    _assembles_clean(ptxas, ptx)


@pytest.mark.parametrize("reduce", ["sum", "max", "min", "mean"])
def test_last_axis_reduction_is_a_block_per_row(ptxas, reduce: str) -> None:
    fn = {"sum": lambda x: ops.sum(x * x, axis=-1), "max": lambda x: ops.max(x, axis=-1),
          "min": lambda x: ops.min(x, axis=-1), "mean": lambda x: ops.mean(x, axis=-1)}[reduce]
    ptx, fallbacks = _compile(fn, [(F32, (64, 1000))])
    assert fallbacks == []
    assert ptx.count("shfl.sync.bfly") == 10  # 5 butterfly steps, twice (warps, then block)
    assert ".shared" in ptx and "bar.sync" in ptx
    assert V4_LOAD.search(ptx)  # 1000 = 250 vectors of 4 per row
    rows = _assembles_clean(ptxas, ptx)
    assert len(rows) == len(_entries(ptx))


def test_integer_sum_reduction(ptxas) -> None:
    ptx, fallbacks = _compile(lambda x: ops.sum(x, axis=-1), [(I32, (64, 128))])
    assert fallbacks == [] and ptx.count("shfl.sync.bfly") == 10
    _assembles_clean(ptxas, ptx)


def test_softmax_is_one_kernel_a_block_per_row(ptxas) -> None:
    ptx, fallbacks = _compile(lambda x: ops.softmax(x), [(F32, (64, 1000))])
    assert fallbacks == []
    assert len(_entries(ptx)) == 1  # fills, row max, exp, row sum, divide: one launch
    assert ptx.count("shfl.sync.bfly") == 20  # the row max and the row sum
    # A barrier between consecutive ops of the row, and one inside each block reduction.
    assert ptx.count("bar.sync") == 7
    # Global memory: x read twice (max, exp), the result stored. The row of exp(x - max), the
    # row max and the row sum live in shared memory (4000 + 4 + 4 bytes; 128 for the warps).
    assert len(V4_LOAD.findall(ptx)) == 2 and len(V4_STORE.findall(ptx)) == 1
    assert re.search(r"\.shared \.align 16 \.b8 \w+\[4000\]", ptx)
    assert len(re.findall(r"ld\.shared\.v4", ptx)) == 2  # exp(x - max): sum, divide
    _assembles_clean(ptxas, ptx)


def test_long_softmax_rows_keep_their_intermediate_in_global_memory(ptxas) -> None:
    # 16384 floats (64 KB) do not fit the 32 KB budget: exp(x - max) goes through global.
    ptx, fallbacks = _compile(lambda x: ops.softmax(x), [(F32, (4, 16384))])
    assert fallbacks == [] and len(_entries(ptx)) == 1
    assert len(V4_LOAD.findall(ptx)) == 4 and len(V4_STORE.findall(ptx)) == 2
    assert not re.search(r"\.shared .*\[65536\]", ptx)
    _assembles_clean(ptxas, ptx)


def test_layer_norm(ptxas) -> None:
    ptx, fallbacks = _compile(lambda x, g, b: ops.layer_norm(x, g, b, 1e-5),
                              [(F32, (64, 768)), (F32, (768,)), (F32, (768,))])
    assert fallbacks == []
    assert len(_entries(ptx)) == 1
    assert ptx.count("shfl.sync.bfly") == 20  # mean and variance
    _assembles_clean(ptxas, ptx)


@pytest.mark.parametrize("m", [128, 5])
def test_matmul_is_tiled_through_shared_memory(ptxas, m: int) -> None:
    ptx, fallbacks = _compile(lambda x, w: x @ w, [(F32, (m, 128)), (F32, (128, 256))])
    assert fallbacks == []
    assert len(_entries(ptx)) == 2  # the fill of C, the tiled matmul
    # Two 16 x 64 f32 tiles, 16-byte aligned for the 128-bit shared loads.
    assert ptx.count(".shared .align 16 .b8") == 2 and "bar.sync" in ptx
    assert "fma.rn.f32" in ptx and re.search(r"ld\.shared\.v4\.(b32|f32)", ptx)
    assert len(V4_LOAD.findall(ptx)) >= 3  # A and B tiles, C
    _assembles_clean(ptxas, ptx)


def test_narrow_matmul_tiles_use_64_bit_accesses(ptxas) -> None:
    ptx, fallbacks = _compile(lambda p, v: p @ v, [(F32, (12, 128, 128)), (F32, (12, 128, 32))])
    assert fallbacks == []
    assert ptx.count(".shared .align 16 .b8") == 2 and "bar.sync" in ptx
    assert re.search(r"ld\.global(\.nc)?\.v2\.(b32|f32)", ptx)  # B: 2 floats a thread
    _assembles_clean(ptxas, ptx)


@pytest.mark.parametrize("shapes", [((64, 128), (128, 100)), ((64, 13), (13, 64)),
                                    (("b", "s", "k"), ("b", "k", "n"))])
def test_matmul_edges_are_tiled_with_guarded_scalar_accesses(ptxas, shapes) -> None:
    """N not a multiple of 32, K not of 16, or symbolic: the shared-memory tiles, with the
    operands that end mid-tile read and written as guarded scalars (no 128-bit access to
    them), never plain loops."""
    ptx, fallbacks = _compile(lambda x, w: x @ w, [(F32, shapes[0]), (F32, shapes[1])])
    assert fallbacks == []
    assert ptx.count(".shared .align 16 .b8") == 2 and "bar.sync" in ptx
    _assembles_clean(ptxas, ptx)


def test_an_integer_matmul_falls_back_to_plain_loops_and_is_recorded(ptxas) -> None:
    ptx, fallbacks = _compile(lambda x, w: x @ w, [(I32, (64, 128)), (I32, (128, 96))])
    assert fallbacks == ["matmul (linalg.matmul)"]
    assert "bar.sync" not in ptx
    _assembles_clean(ptxas, ptx)


def test_argmax_and_64_bit_reductions_are_block_reductions(ptxas) -> None:
    """argmax's index pass is an i64 minimum: 64-bit accumulators (i64, f64) shuffle as two
    32-bit halves, so they get the block-per-row schedule too."""
    ptx, fallbacks = _compile(lambda x: ops.argmax(x, axis=-1), [(F32, ("rows", 1000))])
    assert fallbacks == []
    assert ptx.count("shfl.sync.bfly") == 10 + 2 * 10  # the row max; the index, two halves
    _assembles_clean(ptxas, ptx)
    for dtype in (DType.int64, DType.float64):
        ptx, fallbacks = _compile(lambda x: ops.sum(x, axis=-1), [(dtype, (64, 1000))])
        assert fallbacks == [] and ptx.count("shfl.sync.bfly") == 2 * 10
        _assembles_clean(ptxas, ptx)


def test_column_reduction_falls_back_correctly_shaped(ptxas) -> None:
    ptx, fallbacks = _compile(lambda x: ops.sum(x, axis=0), [(F32, (64, 128))])
    assert fallbacks == ["reduce_sum (linalg.generic)"]
    _assembles_clean(ptxas, ptx)


def test_constants_become_device_globals(ptxas) -> None:
    c = np.arange(1024, dtype=np.float32)
    ptx, fallbacks = _compile(lambda x: x + ops.constant(c, F32, DeviceRef.GPU()),
                              [(F32, (8, 1024))])
    assert fallbacks == []
    assert re.search(r"\.global \.align \d+ \.b8 \w+\[4096\]", ptx)
    _assembles_clean(ptxas, ptx)


def test_description_sets_block_sizes() -> None:
    desc = NvidiaDescription(block=128, reduce_block=512)
    ptx = compile_ptx(gpu_graph(lambda x: ops.softmax(x * 2.0), [(F32, (8, 4096))])._module,
                      description=desc)
    assert ".maxntid 512, 1, 1" in ptx  # the softmax rows
    ptx = compile_ptx(gpu_graph(lambda x: x * 2.0, [(F32, (8, 4096))])._module,
                      description=desc)
    assert ".maxntid 128, 1, 1" in ptx


def test_symbolic_sizes_compile_to_the_same_schedules(ptxas) -> None:
    """Symbolic rows: the elementwise kernel (grid computed on the host), softmax as one
    kernel a block per row (its row count a parameter, the rows past it skipped), the
    tiled matmul (M read from A). No fallback; each kernel assembles without spills."""
    ptx, fallbacks = _compile(lambda x, y: ops.relu(x * y + 1.0),
                              [(F32, ("batch", 1024)), (F32, ("batch", 1024))])
    assert fallbacks == [] and len(_entries(ptx)) == 1
    assert len(V4_LOAD.findall(ptx)) == 2 and len(V4_STORE.findall(ptx)) == 1
    _assembles_clean(ptxas, ptx)
    ptx, fallbacks = _compile(lambda x: ops.softmax(x), [(F32, ("batch", "seq", 1000))])
    assert fallbacks == [] and len(_entries(ptx)) == 1
    assert ptx.count("shfl.sync.bfly") == 20 and ptx.count("bar.sync") == 7
    _assembles_clean(ptxas, ptx)
    ptx, fallbacks = _compile(lambda a, b: a @ b, [(F32, ("m", 128)), (F32, (128, 256))])
    assert fallbacks == [] and len(_entries(ptx)) == 2  # the fill of C, the tiled matmul
    assert ptx.count(".shared .align 16 .b8") == 2 and "fma.rn.f32" in ptx
    _assembles_clean(ptxas, ptx)


def test_symbolic_row_length_is_a_block_reduction(ptxas) -> None:
    ptx, fallbacks = _compile(lambda x: ops.sum(x, axis=-1), [(F32, ("rows", "n"))])
    assert fallbacks == []
    assert ptx.count("shfl.sync.bfly") == 10  # one block reduction (a fill and a copy besides)
    _assembles_clean(ptxas, ptx)


def test_batched_matmul_is_tiled_a_grid_layer_per_matrix(ptxas) -> None:
    ptx, fallbacks = _compile(lambda q, k: q @ k, [(F32, ("heads", "seq", 64)),
                                                  (F32, ("heads", 64, 128))])
    assert fallbacks == []
    assert ptx.count(".shared .align 16 .b8") == 2 and "bar.sync" in ptx
    assert "%ctaid.z" in ptx  # the matrix of the batch
    _assembles_clean(ptxas, ptx)


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_half_matmul_runs_on_tensor_cores(ptxas, arch: str) -> None:
    """f16 A and B: the widenings to f32 go, the tile is 8 mma.sync.m16n8k16 a K step a warp
    (f32 accumulators), the tiles copied with 16-byte loads; bf16 keeps the f32 path."""
    ptx, fallbacks = _compile(lambda a, b: a @ b, [(F16, ("m", 256)), (F16, (256, 128))],
                              arch)
    assert fallbacks == []
    assert ptx.count("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32") == 8
    assert len(_entries(ptx)) == 3  # the fill of C, the tensor-core tile, the f16 result
    rows = _assembles_clean(ptxas, ptx, arch)
    assert all(regs <= 128 for _, regs, *_ in rows)
    ptx, fallbacks = _compile(lambda a, b: a @ b, [(DType.bfloat16, (64, 256)),
                                                   (DType.bfloat16, (256, 128))], arch)
    assert fallbacks == [] and "mma.sync" not in ptx
