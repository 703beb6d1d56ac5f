"""Panel matmuls (matmul_pack): B read as [N/P, K, P] panels (P = matmul_pack.PANEL: 32 with
AVX-512, 16 with AVX2), packed at run time or, for
constant weights, once at compile time; all against numpy in float64."""

from __future__ import annotations

import re

import numpy as np
import pytest
from mlir import ir
from mo_helpers import Compiled, check, graph_text, make_context

from max.compiler.lowering import lower_to_linalg
from max.compiler.passes.externalize import externalize_constants
from max.compiler.pipelines import arg_layouts, cpu_threads, matmul_pack
from max.compiler.targets.cpu import CPU as TARGET
from max.driver import CPU as CPUDevice
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType, ops
from max.runtime.layouts import panel_layout

CPU = DeviceRef.CPU()


# A schedule failure raises here instead of silently compiling plain loops.
pytestmark = pytest.mark.usefixtures("schedule_debug")


def _scheduled(text: str, threads: int, *,
               constants: bool = False) -> tuple[str, dict[str, str]]:
    """(memref-level IR text, the recorded argument layouts) after the memref vectorization; with
    ``constants``, large constants externalized and marked as the compile worker does."""
    with make_context():
        m = ir.Module.parse(text)
        if constants:
            values = externalize_constants(m)
            fn = next(o.operation for o in m.body.operations
                      if "mo.graph" in o.operation.attributes)
            arg_layouts.mark_load_time_args(fn, 0, len(values))
        lower_to_linalg(m)
        TARGET.run(m, until="mo-vectorize-memrefs", threads=threads)
        return str(m), arg_layouts.layouts(m)


# Rows: a register tile, odd rows (static remainders 1..7), rows split unevenly over two
# threads (dynamic remainders); K: 1, primes, not a multiple of the K block; N: one panel, many.
# Two threads split whole column blocks of B (16 panels: 300 x 70 x 512), or rows from 512 rows
# a thread (1031 x 45 x 512, a prime row count; 1040 x 16 x 96: three panels).
# K over KC_WHOLE (4112): K blocks, C zeroed before the first (else one block, the fill in the
# register tiles); K 2100: one block of 3 panels.
SHAPES = [(8, 1, 32), (9, 33, 32), (17, 300, 96), (33, 257, 160), (64, 512, 64), (256, 64, 96),
          (259, 97, 64), (1000, 130, 288), (130, 1024, 256), (300, 70, 512), (1031, 45, 512),
          (1040, 16, 96), (41, 4112, 64), (67, 2100, 96)]


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_runtime_panels_match_numpy(m: int, k: int, n: int, threads: int,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """B a graph input, copied into panels in the kernel (for any row count here)."""
    monkeypatch.setenv(cpu_threads.THREADS_ENV, str(threads))
    monkeypatch.setattr(matmul_pack, "MIN_ROWS_RUNTIME", 1)
    text = graph_text(lambda x, y: x @ y, [(m, k), (k, n)])
    c = Compiled(text)
    assert c.fallbacks == []
    rng = np.random.default_rng(m * 7 + k + n)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    (out,), _ = c([a, b], [((m, n), "float32")])
    check(out, (a.astype(np.float64) @ b).astype(np.float32), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("threads", [1, 2])
def test_panel_kernel_ir(threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The panel generic replaces the matmul; nothing is left to plain loops; the register
    kernel is MR FMAs of NR_PANEL lanes per k (8 x 32 with AVX-512, 6 x 16 with AVX2; its
    loop unrolled by K_UNROLL), reading B as contiguous rows of a panel (stride P), and C3 is
    written into the output itself (no copy of C)."""
    monkeypatch.setenv(cpu_threads.THREADS_ENV, str(threads))
    mem, _ = _scheduled(graph_text(lambda x, y: x @ y, [(512, 256), (256, 512)]), threads)
    assert "linalg." not in mem
    assert mem.count("vector.fma") >= matmul_pack.MR * matmul_pack.K_UNROLL  # k unrolled
    p = matmul_pack.PANEL
    assert f"memref<1x{matmul_pack.NR_PANEL}xf32, strided<[{p}, 1]" in mem  # a row of a panel
    assert "memref.copy" not in mem
    assert ("scf.forall" in mem) == (threads > 1)


@pytest.mark.parametrize("m,k,threads,prime", [
    (512, 256, 1, False), (512, 256, 2, False), (2048, 256, 2, False), (520, 256, 2, True),
    (512, 2048, 2, False), (512, 4096, 1, False)])
def test_runtime_panels_are_packed_per_block(m: int, k: int, threads: int, prime: bool,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A run-time B is packed one column block at a time inside the matmul's loops, into a
    buffer of one block per thread (8 panels by all of K, fewer where that is over 1 MiB; 1
    panel for N = P x 17), never into a whole-B buffer; the threads split whole column
    blocks where these divide evenly, else the rows (17 panels)."""
    monkeypatch.setenv(cpu_threads.THREADS_ENV, str(threads))
    p = matmul_pack.PANEL
    n = p * 17 if prime else 512
    block = f"{1 if prime else min(8, (1 << 20) // (k * p * 4))}x{k}x{p}"
    mem, _ = _scheduled(graph_text(lambda x, y: x @ y, [(m, k), (k, n)]), threads)
    allocs = [line for line in mem.splitlines() if "memref.alloc" in line]
    assert len(allocs) == 1 and f"memref<{block}xf32>" in allocs[0], allocs
    assert "linalg." not in mem
    # The block loops were foralls (for the fusion) and are loops now: only the threads' one.
    assert mem.count("scf.forall") == (threads > 1)
    if threads > 1:  # the buffer is the thread's own
        assert mem.index("scf.forall") < mem.index("memref.alloc")


@pytest.mark.parametrize("threads", [1, 2])
def test_one_k_block_starts_accumulators_at_zero(threads: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A run-time B with K up to KC_WHOLE: one K block, the zero fill of C fused into the
    register tiles, so the k loop's accumulators start as a zero constant (C is not zeroed
    by a pass, nor read); with K above it, they start from C, zeroed before."""
    monkeypatch.setenv(cpu_threads.THREADS_ENV, str(threads))

    def starts(k: int) -> list[str]:
        mem, _ = _scheduled(graph_text(lambda x, y: x @ y, [(512, k), (k, 512)]), threads)
        tile = f"vector<{matmul_pack.MR}x{matmul_pack.NR_PANEL}xf32>"
        zeros = set(re.findall(rf"(%\w+) = arith.constant dense<0.000000e\+00> : {tile}", mem))
        inits = re.findall(rf"iter_args\(%\w+ = (%\w+)\) -> \({tile}\)", mem)
        assert inits, "no register kernel"
        return ["zero" if v in zeros else "C" for v in inits]

    assert set(starts(matmul_pack.KC_WHOLE)) == {"zero"}
    assert set(starts(matmul_pack.KC_WHOLE + 16)) == {"C"}


def test_small_or_unaligned_matmuls_keep_the_plain_schedule() -> None:
    """N not a multiple of P, fewer than 8 rows, symbolic rows, few rows, all with a run-time B:
    no panels (the plain matmul schedule handles these)."""
    for shapes in ([(300, 64), (64, 100)], [(4, 64), (64, 256)], [("m", 64), (64, 256)],
                   [(32, 64), (64, 256)]):
        mem, _ = _scheduled(graph_text(lambda x, y: x @ y, shapes), 1)
        p = matmul_pack.PANEL
        assert f"memref<1x{p}xf32, strided<[{p}, 1]" not in mem, shapes


@pytest.mark.parametrize("m", [1, 3, 7])
def test_few_rows_against_a_constant_weight_read_panels(m: int) -> None:
    """Fewer rows than a register tile against a weight: panels too, tiles of exactly m rows
    (the small-M tiles read B's rows N floats apart)."""
    w = np.arange(384 * 1536, dtype=np.float32).reshape(384, 1536)  # (a splat stays inline)
    text = graph_text(lambda x: x @ ops.constant(w, DType.float32, CPU), [(m, 384)])
    mem, packed = _scheduled(text, 1, constants=True)
    assert packed == {"c0": panel_layout(matmul_pack.PANEL, False)}
    assert f"vector<{m}x{matmul_pack.PANEL}xf32>" in mem


@pytest.mark.parametrize("m,k,n,split", [(1, 384, 1536, True), (1, 1536, 384, True),
                                         (2, 384, 512, False)])
def test_few_rows_split_a_large_weight_over_threads(m: int, k: int, n: int, split: bool) -> None:
    """A row against a weight of 1 MiB or more (590k multiply-adds, below the threshold)
    splits its panels over the threads: B's streaming is the time. 768 KiB does not."""
    w = np.arange(k * n, dtype=np.float32).reshape(k, n)
    text = graph_text(lambda x: x @ ops.constant(w, DType.float32, CPU), [(m, k)])
    mem, packed = _scheduled(text, 2, constants=True)
    assert packed == {"c0": panel_layout(matmul_pack.PANEL, False)}
    assert ("scf.forall" in mem) == split, mem


def test_constant_weights_are_packed_at_compile_time() -> None:
    """A constant weight read by one matmul: no copy into panels in the kernel (the bytes are
    read as panels), and the module names the constant for the worker to store in panels."""
    w = np.arange(256 * 96, dtype=np.float32).reshape(256, 96)
    text = graph_text(lambda x: x @ ops.constant(w, DType.float32, CPU), [(32, 256)])
    mem, packed = _scheduled(text, 2, constants=True)
    assert packed == {"c0": panel_layout(matmul_pack.PANEL, False)}
    assert "memref.alloc" not in mem  # no buffer of panels: the argument is one
    assert "linalg." not in mem
    # The panels are a cast of the argument with plain strides, not reshapes through one
    # flat dim (which fold-memref-alias-ops indexes as floordiv/mod of the argument's rows).
    p = matmul_pack.PANEL
    assert (f"memref.reinterpret_cast %arg1 to offset: [0], sizes: [{96 // p}, 256, {p}], "
            f"strides: [{256 * p}, {p}, 1]") in mem
    assert "memref.collapse_shape %arg1" not in mem


@pytest.mark.parametrize("m,k,n", [(32, 1024, 256), (9, 97, 64), (128, 384, 1152)])
def test_engine_constant_weights_match_numpy(m: int, k: int, n: int) -> None:
    """Through the engine: the worker stores the weight in panels, the kernel reads panels.
    A weight packed on one side only would give wrong numbers."""
    rng = np.random.default_rng(k)
    w = rng.standard_normal((k, n), dtype=np.float32) / np.sqrt(k)
    w2 = rng.standard_normal((n, 64), dtype=np.float32) / np.sqrt(n)
    x = rng.standard_normal((m, k), dtype=np.float32)
    g = Graph("packed_mlp", lambda v: ops.relu(v @ ops.constant(w, DType.float32, CPU))
              @ ops.constant(w2, DType.float32, CPU),
              input_types=[TensorType(DType.float32, (m, k), CPU)])
    model = InferenceSession(devices=[CPUDevice()]).load(g)
    out = model.execute(x)[0].to_numpy()
    ref = np.maximum(x.astype(np.float64) @ w, 0) @ w2
    check(out, ref.astype(np.float32), rtol=1e-4, atol=1e-4)
    assert model._record.fallbacks == ()


def test_symbolic_rows_with_constant_weights_match_numpy() -> None:
    """Rows symbolic (a batch or a sequence) against a weight stored in panels: the row blocks
    are peeled, the last one's register tiles padded to MR rows. One model, many row counts:
    below a register tile, one row block plus a remainder, several blocks (uneven over the
    threads)."""
    rng = np.random.default_rng(3)
    k, n = 97, 160
    w = rng.standard_normal((k, n), dtype=np.float32) / np.sqrt(k)
    g = Graph("sym_rows", lambda v: v @ ops.constant(w, DType.float32, CPU),
              input_types=[TensorType(DType.float32, ("rows", k), CPU)])
    model = InferenceSession(devices=[CPUDevice()], num_threads=2).load(g)
    assert model._record.fallbacks == ()
    for m in (1, 5, matmul_pack.MR, matmul_pack.MR + 1, matmul_pack.MC - 1, matmul_pack.MC,
              matmul_pack.MC + 1, 2 * matmul_pack.MC + 7, 1000):
        x = rng.standard_normal((m, k), dtype=np.float32)
        out = model.execute(x)[0].to_numpy()
        check(out, (x.astype(np.float64) @ w).astype(np.float32), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("threads", [1, 2])
def test_symbolic_rows_kernel_is_not_masked(threads: int,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """With rows symbolic, every register tile of the panel matmul is static: full row
    blocks by the peel, the remainder block by padding to MR rows. A masked tile (AVX2 has
    no mask registers) read and wrote C at every k step."""
    monkeypatch.setenv(cpu_threads.THREADS_ENV, str(threads))
    w = np.arange(384 * 256, dtype=np.float32).reshape(384, 256)
    text = graph_text(lambda x: x @ ops.constant(w, DType.float32, CPU), [("m", 384)])
    mem, packed = _scheduled(text, threads, constants=True)
    assert packed == {"c0": panel_layout(matmul_pack.PANEL, False)}
    assert "vector.create_mask" not in mem and "vector.constant_mask" not in mem
    tile = f"vector<{matmul_pack.MR}x{matmul_pack.NR_PANEL}xf32>"
    assert f"-> ({tile})" in mem  # the k loops carry whole register tiles
    # The padded remainder: its A rows and C tile in buffers of MR rows (filled, then copied).
    assert f"memref.alloc() {{alignment = 64 : i64}} : memref<{matmul_pack.MR}x" in mem
