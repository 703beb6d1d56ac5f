"""Matmul schedules by shape (matmul_schedule): fused bias/activation epilogues, few rows split
by columns over threads, small-row register tiles; all against numpy in float64."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from mlir import ir
from mo_helpers import Compiled, check, graph_text, make_context

from max.compiler.lowering import lower_to_linalg
from max.compiler.passes.ir_util import walk_ops
from max.compiler.pipelines import cpu_schedule, cpu_threads, matmul_schedule
from max.compiler.targets.cpu import CPU as TARGET
from max.dtype import DType
from max.graph import DeviceRef, ops

CPU = DeviceRef.CPU()


# A schedule failure raises here instead of silently compiling plain loops.
pytestmark = pytest.mark.usefixtures("schedule_debug")


def _scheduled(text: str, threads: int = 1) -> str:
    """The module after schedule_tensors and the memref vectorization."""
    with make_context():
        m = ir.Module.parse(text)
        lower_to_linalg(m)
        TARGET.run(m, until="mo-schedule-tensors", threads=threads)
        tagged = str(m)
        TARGET.run(m, after="mo-schedule-tensors", until="mo-vectorize-memrefs",
                   threads=threads)
        return tagged + "\n// ---- memrefs\n" + str(m)


def _kinds(text: str) -> list[str]:
    """The schedule kinds the ops of a graph are tagged with (epilogue groups formed first)."""
    with make_context():
        m = ir.Module.parse(text)
        lower_to_linalg(m)
        TARGET.run(m, until="mo-dps-inits")
        matmul_schedule.fuse_epilogues(m, cpu_schedule.classify)
        matmul_schedule.fuse_bmm_fills(m, cpu_schedule.classify)
        return sorted(kind for kind, _, _ in cpu_schedule._tag(m).values())


def _gelu(v: np.ndarray) -> np.ndarray:
    return 0.5 * v * (1.0 + np.vectorize(math.erf)(v / math.sqrt(2.0)))


EPILOGUES = {  # name: (graph, numpy in float64)
    "bias": (lambda y, b, r: y + b, lambda y, b, r: y + b),
    "bias_gelu": (lambda y, b, r: ops.gelu(y + b), lambda y, b, r: _gelu(y + b)),
    "bias_relu": (lambda y, b, r: ops.relu(y + b), lambda y, b, r: np.maximum(y + b, 0)),
    "residual": (lambda y, b, r: r + (y + b), lambda y, b, r: r + (y + b)),
}


def _run_epilogue(name: str, lead: tuple, k: int, n: int, threads: int,
                  monkeypatch: pytest.MonkeyPatch, sym: tuple = ()) -> None:
    monkeypatch.setenv(cpu_threads.THREADS_ENV, str(threads))
    rng = np.random.default_rng(sum(lead) * 7 + k * 3 + n)
    w = rng.standard_normal((k, n), dtype=np.float32) / np.sqrt(k)
    b = rng.standard_normal(n, dtype=np.float32)
    graph_fn, ref_fn = EPILOGUES[name]
    in_shape = tuple(sym or lead) + (k,)
    out_shape = tuple(sym or lead) + (n,)

    def fwd(x, r):
        y = x @ ops.constant(w, DType.float32, CPU)
        return graph_fn(y, ops.constant(b, DType.float32, CPU), r)

    c = Compiled(graph_text(fwd, [in_shape, out_shape]))
    for rows in ([lead] if not sym else [lead, (1,) * (len(lead) - 1) + (3,)]):
        x = rng.standard_normal((*rows, k), dtype=np.float32)
        r = rng.standard_normal((*rows, n), dtype=np.float32)
        (out,), _ = c([x, r], [((*rows, n), "float32")])
        ref = ref_fn(x.astype(np.float64) @ w, b.astype(np.float64), r.astype(np.float64))
        check(out, ref.astype(np.float32), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", list(EPILOGUES))
@pytest.mark.parametrize("lead,k,n", [((1, 7), 5, 33), ((1, 128), 64, 96), ((2, 33), 17, 130)])
@pytest.mark.parametrize("threads", [1, 2])
def test_epilogue_matches_numpy(name: str, lead: tuple, k: int, n: int, threads: int,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    _run_epilogue(name, lead, k, n, threads, monkeypatch)


@pytest.mark.parametrize("lead,k,n", [((1,), 9, 1), ((9,), 65, 257), ((1, 1, 257), 31, 40),
                                      ((3, 67), 300, 64)])
@pytest.mark.parametrize("level", ["cache", "register"])
def test_epilogue_odd_sizes(lead: tuple, k: int, n: int, level: str,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matmul_schedule, "LEVEL", level)
    _run_epilogue("bias_gelu", lead, k, n, 2, monkeypatch)


@pytest.mark.parametrize("threads", [1, 2])
def test_epilogue_symbolic_rows(threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """[batch, seq, k] with both symbolic: one binary for several sizes."""
    _run_epilogue("residual", (2, 45), 24, 70, threads, monkeypatch, sym=("batch", "seq"))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("m,k,n", [(67, 256, 100), (300, 64, 600), (128, 384, 1536)])
def test_epilogue_is_one_group_with_no_linalg_left(threads: int, m: int, k: int, n: int) -> None:
    """The bias+GELU generic is tagged as the matmul's epilogue; its matmul and fill are not
    scheduled by themselves (with threads: both fused into the forall), and nothing is left
    to plain loops."""
    w = np.ones((k, n), np.float32)
    b = np.ones(n, np.float32)
    text = graph_text(lambda x: ops.gelu(x @ ops.constant(w, DType.float32, CPU)
                                    + ops.constant(b, DType.float32, CPU)), [(1, m, k)])
    assert _kinds(text) == ["epilogue"]
    tagged, mem = _scheduled(text, threads).split("// ---- memrefs")
    assert ("scf.forall" in tagged) == (threads > 1)
    assert "linalg." not in mem
    assert "vector.fma" in mem or "vector.contract" in mem or "vector.outerproduct" in mem


def test_matmul_with_a_second_consumer_is_not_fused() -> None:
    """A matmul result read twice stays its own op: fusing would compute it twice."""
    w = np.ones((16, 32), np.float32)
    text = graph_text(lambda x: (lambda y: ops.concat([ops.relu(y), y], axis=0))(
        x @ ops.constant(w, DType.float32, CPU)), [(8, 16)])
    assert "epilogue" not in _kinds(text)


@pytest.mark.parametrize("m", [1, 2, 3, 5, 7, 8, 9, 33])
@pytest.mark.parametrize("threads", [1, 2])
def test_few_rows_match_numpy(m: int, threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decode-style rows: a register tile of exactly m rows (m < 8), and with 2 threads the
    columns split (n 1000 is no multiple of the 32-wide tile: the last part has a remainder)."""
    monkeypatch.setenv(cpu_threads.THREADS_ENV, str(threads))
    k, n = 515, 1000
    rng = np.random.default_rng(m)
    a = rng.standard_normal((m, k), dtype=np.float32)
    w = rng.standard_normal((k, n), dtype=np.float32)
    c = Compiled(graph_text(lambda x, y: x @ y, [(m, k), (k, n)]))
    (out,), _ = c([a, w], [((m, n), "float32")])
    check(out, (a.astype(np.float64) @ w).astype(np.float32), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("threads", [1, 2])
def test_symbolic_columns_match_numpy(threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Symbolic rows and columns, one binary: column remainders of none, less than half the
    register tile, half, more than half (each split again by halves), with row remainders."""
    monkeypatch.setenv(cpu_threads.THREADS_ENV, str(threads))
    k = 65
    c = Compiled(graph_text(lambda x, y: x @ y, [("m", k), (k, "n")]))
    assert c.fallbacks == []
    for m, n in [(1, 1), (9, 15), (8, 16), (33, 17), (32, 31), (7, 32), (17, 33), (40, 48),
                 (3, 100), (0, 5), (5, 0)]:
        rng = np.random.default_rng(m * 1000 + n)
        a = rng.standard_normal((m, k), dtype=np.float32)
        w = rng.standard_normal((k, n), dtype=np.float32)
        (out,), _ = c([a, w], [((m, n), "float32")])
        check(out, (a.astype(np.float64) @ w).astype(np.float32), rtol=1e-4, atol=1e-4)


def test_symbolic_columns_remainder_in_half_tiles() -> None:
    # The column remainder (fewer than NR, known at run time) in masked tiles NR / 2 wide:
    # a full-width masked tile cost as much as a whole one whatever the remainder.
    memrefs = _scheduled(graph_text(lambda x, y: x @ y, [(32, 576), (576, "n")]))
    memrefs = memrefs.split("// ---- memrefs")[1]
    mr, nr = matmul_schedule.MR, matmul_schedule.NR
    assert f"vector<{mr}x{nr // 2}xf32>" in memrefs and f"vector<{mr}x{nr}xf32>" in memrefs
    assert "linalg.matmul" not in memrefs


def test_few_rows_split_columns_over_threads() -> None:
    """8 rows, 2 threads: an scf.forall over N (tile 1024 / 2 = 512 columns), not over M."""
    text = graph_text(lambda x, y: x @ y, [(8, 512), (512, 1024)])
    tagged, _ = _scheduled(text, threads=2).split("// ---- memrefs")
    assert "scf.forall" in tagged
    forall = tagged[tagged.index("scf.forall"):].split("\n")[0]
    assert "512" in forall or "(2)" in forall, forall


@pytest.mark.parametrize("batch,m,k,n", [((12,), 128, 64, 128), ((1, 12), 128, 128, 64),
                                         ((3,), 1, 7, 9), ((5,), 9, 33, 130), ((2, 3), 33, 5, 1),
                                         ((1,), 1, 1, 1), ((4,), 127, 13, 31),
                                         ((3,), 17, 257, 33), ((2,), 9, 256, 65)])
@pytest.mark.parametrize("threads", [1, 2])
def test_batch_matmul_matches_numpy(batch: tuple, m: int, k: int, n: int, threads: int,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Attention-shaped batch matmuls (3-D and 4-D operands), heads split over threads."""
    monkeypatch.setenv(cpu_threads.THREADS_ENV, str(threads))
    rng = np.random.default_rng(m + n + k)
    a = rng.standard_normal((*batch, m, k), dtype=np.float32)
    b = rng.standard_normal((*batch, k, n), dtype=np.float32)
    c = Compiled(graph_text(lambda x, y: x @ y, [a.shape, b.shape]))
    (out,), _ = c([a, b], [((*batch, m, n), "float32")])
    check(out, (a.astype(np.float64) @ b).astype(np.float32), rtol=1e-4, atol=1e-4)


def test_batch_matmul_symbolic_sizes_one_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cpu_threads.THREADS_ENV, "2")
    c = Compiled(graph_text(lambda x, y: x @ y, [("b", "m", 40), ("b", 40, "n")]))
    rng = np.random.default_rng(0)
    for bsz, m, n in [(1, 1, 1), (12, 128, 128), (3, 9, 33)]:
        a = rng.standard_normal((bsz, m, 40), dtype=np.float32)
        b = rng.standard_normal((bsz, 40, n), dtype=np.float32)
        (out,), _ = c([a, b], [((bsz, m, n), "float32")])
        check(out, (a.astype(np.float64) @ b).astype(np.float32), rtol=1e-4, atol=1e-4)


def test_attention_batch_matmul_splits_heads_over_threads() -> None:
    text = graph_text(lambda x, y: x @ y, [(12, 128, 64), (12, 64, 128)])
    assert _kinds(text) == ["bmm"]  # its zero fill goes into the register tiles
    tagged, mem = _scheduled(text, threads=2).split("// ---- memrefs")
    assert "scf.forall" in tagged and "linalg." not in mem
    # Each register-tile accumulator starts as a zero vector: C is written once, never read.
    tile = f"{matmul_schedule.MR}x{matmul_schedule.NR}xf32>"
    reads = [line for line in mem.splitlines() if "vector.transfer_read" in line]
    assert reads and not [r for r in reads if r.rstrip().endswith(tile)]


@pytest.mark.parametrize("shapes", [[(12, "s", 40), (12, 40, "s")],  # q @ k^T, K static
                                    [(12, "s", "s"), (12, "s", 32)]],  # p @ v, K symbolic
                         ids=["qk", "pv"])
def test_attention_over_a_symbolic_sequence(shapes: list, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    """Attention with the sequence symbolic: every register tile's k loop carries a full
    MR x NR accumulator (the remainder tiles padded, not masked: masked, they read and wrote
    C at every k step), and the numbers are numpy's at sequence lengths with and without
    remainder rows and columns."""
    monkeypatch.setenv(cpu_threads.THREADS_ENV, "2")
    text = graph_text(lambda x, y: x @ y, shapes)
    _, mem = _scheduled(text, threads=2).split("// ---- memrefs")
    carried = re.findall(r"iter_args\([^)]*\) -> \((vector<[0-9x]+xf32>)\)", mem)
    full = f"vector<1x{matmul_schedule.MR}x{matmul_schedule.NR}xf32>"
    assert carried and set(carried) == {full}, carried
    # The result is written in place: no copy of the output onto itself through the
    # reshape back to the batch dims (a serial pass over all of it, each call).
    views = re.findall(r"(%\w+) = memref.reshape", mem)
    assert not [v for v in views if re.search(rf"memref.copy {v}\b", mem)]
    # Every k loop (a loop of FMAs) carries its accumulator and writes nothing.
    with make_context():
        module = ir.Module.parse(mem)
        k_loops = [op for op in walk_ops(module.operation)
                   if op.name == "scf.for" and any(
                       o.name == "vector.fma" for o in op.regions[0].blocks[0].operations)]
        assert k_loops
        for loop in k_loops:
            body = {o.name for o in loop.regions[0].blocks[0].operations}
            assert len(loop.results) == 1 and "vector.transfer_write" not in body, body
    c = Compiled(text)
    # The fills that pad the remainder tiles are vectorized too (copy_schedule): no kernel
    # of the attention is left to plain loops.
    assert c.fallbacks == []
    rng = np.random.default_rng(1)
    for s in (1, 5, matmul_schedule.MR + 1, 17, 64, 130):
        a_shape = [s if d == "s" else d for d in shapes[0]]
        b_shape = [s if d == "s" else d for d in shapes[1]]
        a = rng.standard_normal(a_shape, dtype=np.float32)
        b = rng.standard_normal(b_shape, dtype=np.float32)
        (out,), _ = c([a, b], [((12, s, b_shape[-1]), "float32")])
        check(out, (a.astype(np.float64) @ b).astype(np.float32), rtol=1e-4, atol=1e-4)


def test_batch_matmul_with_k_past_one_block_keeps_its_fill() -> None:
    k = matmul_schedule.BMM_KC + 1
    text = graph_text(lambda x, y: x @ y, [(4, 16, k), (4, k, 32)])
    assert _kinds(text) == ["bmm", "elementwise"]  # K in blocks: C accumulated in memory
