"""The host CPU's description (compiler/host_cpu.py): what it derives from the feature flags,
the register tiles the schedules take from it, the compile cache's key, and the kernels built
with either vector unit's tiles, on whatever CPU runs the tests, against numpy in float64."""

from __future__ import annotations

import numpy as np
import pytest
from mo_helpers import Compiled, check, graph_text

from max.compiler import cache
from max.compiler.host_cpu import AVX2, AVX512, CpuDescription, describe, host
from max.compiler.pipelines import conv_schedule, cpu_schedule, matmul_pack, matmul_schedule

pytestmark = pytest.mark.usefixtures("schedule_debug")


@pytest.mark.parametrize("machine,flags,want", [
    ("x86_64", {"avx512f", "avx2", "fma"}, (512, 32)),
    ("x86_64", {"avx2", "fma", "avx"}, (256, 16)),
    ("x86_64", {"avx", "sse4_2"}, (128, 16)),  # AVX without FMA: no 256-bit FMA vectors
    ("aarch64", {"asimd", "fp"}, (128, 32)),
])
def test_vector_unit_from_flags(machine: str, flags: set[str], want: tuple[int, int]) -> None:
    cpu = describe("cpu", frozenset(flags), machine)
    assert (cpu.vector_bits, cpu.vector_registers) == want
    assert cpu.f32_lanes == want[0] // 32
    assert cpu.has_permvar == ("avx512f" in flags)


@pytest.mark.parametrize("cpu,tile,widths", [
    (AVX512, (8, 32), {1: 128, 2: 64, 3: 32, 4: 32, 5: 32, 6: 32, 7: 32}),
    (AVX2, (6, 16), {1: 64, 2: 32, 3: 16, 4: 16, 5: 16}),
])
def test_register_tiles_fit_the_register_file(cpu: CpuDescription, tile: tuple[int, int],
                                              widths: dict[int, int]) -> None:
    """The accumulators of every register tile leave room for two of B's vectors and a
    broadcast (8 x 32 on AVX2 was 32 accumulators in 16 registers: a spill every k step)."""
    mr, nr = matmul_schedule.register_shape(cpu)
    assert (mr, nr) == tile
    assert matmul_schedule.small_m_widths(cpu, mr) == widths
    for m, n in [(mr, nr), *widths.items()]:
        accumulators = m * n // cpu.f32_lanes
        assert accumulators + 3 <= cpu.vector_registers, (m, n)


@pytest.mark.parametrize("cpu,width,strip", [
    (AVX512, 56, (14, 32)),  # 28 accumulators, 4 strips
    (AVX2, 56, (6, 16)),  # 12 accumulators, a remainder of 2 (4 x 16 divides 56: only 8)
    (AVX2, 30, (6, 16)),  # a divisor with enough accumulators
    (AVX2, 28, (6, 16)),  # 4 + 4 + ... would be 8 accumulators: 6 and a remainder of 4
    (AVX2, 5, (5, 16)),  # a whole narrow row
])
def test_conv_strips_keep_the_fma_pipes_busy(cpu: CpuDescription, width: int,
                                             strip: tuple[int, int],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A conv strip keeps at least conv_schedule._MIN_CHAINS accumulators (two FMA pipes of
    4 cycles' latency need 8 in flight) where the row is that wide, even with a remainder
    strip; the register block fits with a filter tile and a broadcast."""
    from mlir import ir
    from mo_helpers import make_context

    from max.compiler.lowering import lower_to_linalg
    from max.graph import ops

    _use_tiles(cpu, monkeypatch)
    text = graph_text(lambda x, w: ops.conv2d(x, w, padding=(1, 1, 1, 1)),
                      [(1, 8, width, 64), (3, 3, 64, 64)])
    with make_context():
        module = ir.Module.parse(text)
        lower_to_linalg(module)
        convs: list[ir.Operation] = []
        module.operation.walk(lambda op: (convs.append(op) if op.name ==
                                          "linalg.conv_2d_nhwc_hwcf" else None,
                                          ir.WalkResult.ADVANCE)[1])
        (conv,) = convs
        kind, levels = conv_schedule.conv_tiles(conv)
    assert kind == "conv"
    ft, wt = levels.sizes[0][3], levels.sizes[-1][2]
    assert (wt, ft) == strip
    accumulators = wt * ft // cpu.f32_lanes
    assert accumulators >= min(conv_schedule._MIN_CHAINS, width * ft // cpu.f32_lanes)
    assert accumulators + ft // cpu.f32_lanes + 1 <= cpu.vector_registers
    assert levels.peel == ((0,) if width % wt else ())


def test_cache_key_names_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """An artifact built for another CPU (``-mcpu=native``) is another cache entry."""
    graph = b"module {}"
    keys = set()
    for cpu in (AVX512, AVX2, host()):
        monkeypatch.setattr(cache, "host", lambda cpu=cpu: cpu)
        keys.add(cache.cache_key(graph, "cpu"))
    assert len(keys) == 3 or (len(keys) == 2 and host().fingerprint() in
                              (AVX512.fingerprint(), AVX2.fingerprint()))
    assert AVX512.fingerprint() != AVX2.fingerprint()


def _use_tiles(cpu: CpuDescription, monkeypatch: pytest.MonkeyPatch) -> None:
    """The schedules' register tiles as they are on ``cpu`` (they are read from the host once,
    at import)."""
    mr, nr = matmul_schedule.register_shape(cpu)
    for module in (matmul_schedule, cpu_schedule):
        monkeypatch.setattr(module, "MR", mr)
        monkeypatch.setattr(module, "NR", nr)
    monkeypatch.setattr(matmul_schedule, "SMALL_M_NR", matmul_schedule.small_m_widths(cpu, mr))
    monkeypatch.setattr(matmul_pack, "MR", mr)
    monkeypatch.setattr(matmul_pack, "NR_PANEL", min(32, nr))
    monkeypatch.setattr(matmul_pack, "PANEL", min(32, nr))
    monkeypatch.setattr(matmul_pack, "MC", mr * matmul_pack.MC_TILES)
    monkeypatch.setattr(conv_schedule, "_LANES", cpu.f32_lanes)
    monkeypatch.setattr(conv_schedule, "_ACC", (cpu.vector_registers - 4) * cpu.f32_lanes)


@pytest.mark.parametrize("cpu", [AVX512, AVX2], ids=["avx512", "avx2"])
@pytest.mark.parametrize("m,k,n", [(1, 64, 256), (3, 70, 96), (5, 33, 48), (7, 16, 64),
                                   (9, 33, 32), (37, 257, 160), (300, 70, 512)])
def test_matmuls_with_either_tiles(cpu: CpuDescription, m: int, k: int, n: int,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Small-M tiles, remainders of 1..MR-1 rows, panels: numpy's numbers with both tiles."""
    _use_tiles(cpu, monkeypatch)
    monkeypatch.setattr(matmul_pack, "MIN_ROWS_RUNTIME", 1)
    c = Compiled(graph_text(lambda x, y: x @ y, [(m, k), (k, n)]))
    assert c.fallbacks == []
    rng = np.random.default_rng(m + k + n)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    (out,), _ = c([a, b], [((m, n), "float32")])
    check(out, (a.astype(np.float64) @ b).astype(np.float32), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cpu", [AVX512, AVX2], ids=["avx512", "avx2"])
def test_batch_matmul_and_epilogue_with_either_tiles(cpu: CpuDescription,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Attention's batch matmul (one K block, its fill in the tiles) and a bias + ReLU
    epilogue fused into a matmul whose N is no whole panel."""
    _use_tiles(cpu, monkeypatch)
    rng = np.random.default_rng(7)
    q = rng.standard_normal((3, 37, 24), dtype=np.float32)
    k = rng.standard_normal((3, 24, 45), dtype=np.float32)
    c = Compiled(graph_text(lambda x, y: x @ y, [q.shape, k.shape]))
    assert c.fallbacks == []
    (out,), _ = c([q, k], [((3, 37, 45), "float32")])
    check(out, (q.astype(np.float64) @ k).astype(np.float32), rtol=1e-4, atol=1e-4)

    from max.graph import ops

    x = rng.standard_normal((29, 40), dtype=np.float32)
    w = rng.standard_normal((40, 50), dtype=np.float32)
    bias = rng.standard_normal((50,), dtype=np.float32)
    c = Compiled(graph_text(lambda x, w, b: ops.relu(x @ w + b), [x.shape, w.shape, bias.shape]))
    assert c.fallbacks == []
    (out,), _ = c([x, w, bias], [((29, 50), "float32")])
    want = np.maximum(x.astype(np.float64) @ w + bias, 0).astype(np.float32)
    check(out, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cpu", [AVX512, AVX2], ids=["avx512", "avx2"])
@pytest.mark.parametrize("groups", [1, 24], ids=["conv", "depthwise"])
def test_convolutions_with_either_tiles(cpu: CpuDescription, groups: int,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A 3x3 conv (48 filters: a tile of 32 or 16 and a remainder) and a depthwise one (24
    channels: one vector and a remainder) over an odd width, against numpy."""
    from max.graph import ops

    _use_tiles(cpu, monkeypatch)
    rng = np.random.default_rng(groups)
    x = rng.standard_normal((1, 9, 13, 24), dtype=np.float32)
    f_out = 48 if groups == 1 else 24
    w = rng.standard_normal((3, 3, 24 // groups, f_out), dtype=np.float32)
    c = Compiled(graph_text(lambda x, w: ops.conv2d(x, w, padding=(1, 1, 1, 1), groups=groups),
                            [x.shape, w.shape]))
    assert c.fallbacks == []
    (out,), _ = c([x, w], [((1, 9, 13, f_out), "float32")])
    xp = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    want = np.zeros((1, 9, 13, f_out))
    for r in range(3):
        for s in range(3):
            patch = xp[:, r:r + 9, s:s + 13, :]
            if groups == 1:
                want += patch @ w[r, s]
            else:
                want += patch * w[r, s, 0]
    check(out, want.astype(np.float32), rtol=1e-4, atol=1e-4)
