"""Matmul tiles of ragged columns (N = 63: a remainder tile of 31) are vectorized masked at the
full register tile, and masked tiles' accumulators (those and the dynamic remainders) stay in
registers across k (masked_accumulators); numpy's numbers for every kind of matmul, row
count, symbolic dims and thread count."""

from __future__ import annotations

import re

import numpy as np
import pytest
from mlir import ir
from mo_helpers import check, make_context

from max.compiler.lowering import lower_to_linalg
from max.compiler.targets.cpu import CPU as TARGET
from max.driver import CPU as CPUDevice
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType, ops

CPU = DeviceRef.CPU()

# A schedule failure raises here instead of silently compiling plain loops.
pytestmark = pytest.mark.usefixtures("schedule_debug")


def _types(*shapes: tuple[int, ...]) -> list[TensorType]:
    return [TensorType(DType.float32, s, CPU) for s in shapes]


def _scheduled(g: Graph, until: str = "mo-schedule-tensors", threads: int = 1) -> str:
    """The module after the stage ``until`` (as text)."""
    with make_context(), ir.Location.unknown():
        m = ir.Module.parse(g._text())
        lower_to_linalg(m)
        TARGET.run(m, until=until, threads=threads)
        m.operation.verify()
        return str(m)


def _k_loops(text: str) -> list[str]:
    """The bodies of the loops that carry a vector (the register tiles' k loops)."""
    return _loop_bodies(text, "-> (vector<")


def _loop_bodies(text: str, carrying: str = "") -> list[str]:
    """The bodies of the ``scf.for`` loops whose line contains ``carrying``."""
    bodies = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "scf.for" in line and carrying in line:
            depth, body = 1, []
            for inner in lines[i + 1:]:
                depth += inner.count("{") - inner.count("}")
                if depth <= 0:
                    break
                body.append(inner)
            bodies.append("\n".join(body))
    return bodies


def test_ragged_tile_is_masked_and_its_accumulator_hoisted() -> None:
    g = Graph("mm", lambda a, b: a @ b, input_types=_types((64, 64), (64, 63)))
    text = _scheduled(g, until="mo-vectorize-memrefs")
    loops = _k_loops(text)
    # The full tile (8 x 32) and the ragged one (8 x 31, masked to 8 x 32): both k loops
    # carry the accumulator in registers; no C read or write is left inside either.
    assert len(loops) == 2, text
    assert all("vector<8x32xf32>" in body for body in loops)
    assert not any("memref<8x31xf32" in body for body in loops), text
    assert "memref<8x31xf32, strided<[63, 1], offset: ?>>, vector<8x32xf32>" in text  # masked
    assert "vector<8x31xf32>" not in text  # never the ragged vector itself


_MASKED_WRITE = re.compile(r"vector\.transfer_write %\S+, %\S+\[[^\]]*\], %\S+ \{")


def test_dynamic_remainder_accumulators_hoisted_on_memrefs() -> None:
    # Two threads split 129 columns: each thread's tiles are of dynamic width, vectorized
    # masked after bufferization; their C tile is read before each k loop, written after.
    g = Graph("mm", lambda a, b: a @ b, input_types=_types((17, 1000), (1000, 129)))
    text = _scheduled(g, until="mo-vectorize-memrefs", threads=2)
    k_loops = [body for body in _loop_bodies(text)
               if "scf.for" not in body and "vector.fma" in body]
    assert len(k_loops) >= 4, text  # full and remainder tiles of 8 rows and of the last row
    assert not any(_MASKED_WRITE.search(body) for body in k_loops), text
    assert _MASKED_WRITE.search(text), text  # the masked tiles exist, their writes outside


def test_unrolled_k_loop_of_a_ragged_batch_matmul_tile_is_hoisted() -> None:
    # Attention scores over 77 tokens (CLIP): the batch matmul's k loop is unrolled, so its
    # masked C tile was read and written at every unrolled step (one thread, 12 heads of [80,
    # 64] @ [64, 77]: 1.84x torch's time): the reads after the first take the value written
    # before, one masked read and write are left, outside the loop.
    g = Graph("bmm", lambda a, b: a @ b, input_types=_types((12, 80, 64), (12, 64, 77)))
    text = _scheduled(g, until="mo-fast-math")
    k_loops = [body for body in _loop_bodies(text)
               if "scf.for" not in body and "vector.fma" in body]
    assert len(k_loops) == 2, text  # the full tiles and the ragged ones
    assert not any("vector.transfer_write" in body or "memref<1x8x13xf32" in body
                   for body in k_loops), text
    assert _MASKED_WRITE.search(text), text


def test_power_of_two_remainders_keep_exact_vectors() -> None:
    # 48 columns: a full tile and a remainder of 16, a whole vector: vectorized exactly.
    g = Graph("mm", lambda a, b: a @ b, input_types=_types((16, 32), (32, 48)))
    text = _scheduled(g)
    assert "vector.constant_mask" not in text and "vector<8x16xf32>" in text


def _run(forward, inputs: list[np.ndarray], want: np.ndarray, threads: int) -> None:
    g = Graph("g", forward, input_types=_types(*(x.shape for x in inputs)))
    model = InferenceSession(devices=[CPUDevice()], num_threads=threads).load(g)
    assert model._record.fallbacks == ()
    check(model.execute(*inputs)[0].to_numpy(), want.astype(np.float32), rtol=1e-4, atol=1e-4)


SHAPES = [(64, 64, 63), (256, 1025, 63), (8, 16, 31), (9, 33, 47), (17, 5, 95), (3, 7, 13),
          (1, 40, 61), (127, 127, 127), (130, 70, 250), (65, 129, 33)]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_matmul(m: int, k: int, n: int, threads: int) -> None:
    rng = np.random.default_rng(m * 1000 + n)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    _run(lambda x, y: x @ y, [a, b], a.astype(np.float64) @ b, threads)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("m,k,n", [(130, 70, 250), (130, 64, 250), (300, 70, 63), (9, 33, 47)])
def test_matmul_with_an_epilogue(m: int, k: int, n: int, threads: int) -> None:
    # Such a matmul is fused into the epilogue's tiles. On two threads, [130, 64] @ [64, 250]
    # has a ragged corner of one row at the end of each thread's share: it came out wrong
    # while the kernel got its masks as arguments (see the next test).
    rng = np.random.default_rng(n)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    _run(lambda x, y: ops.relu(x @ y + ops.constant(bias, DType.float32, CPU)), [a, b],
         np.maximum(a.astype(np.float64) @ b + bias, 0), threads)


def test_outlined_kernels_recompute_their_masks() -> None:
    # The masks of the ragged tiles are constants of the entry; a kernel (the threads'
    # omp.parallel) gets them cloned, never as vector<...xi1> arguments.
    bias = np.arange(250, dtype=np.float32)
    g = Graph("g", lambda x, y: x @ y + ops.constant(bias, DType.float32, CPU),
              input_types=_types((130, 64), (64, 250)))
    text = _scheduled(g, until="mo-outline-kernels", threads=2)
    kernels = [line for line in text.splitlines() if "func.func private" in line]
    assert kernels, text
    assert not any("xi1>" in line for line in kernels), kernels
    assert "vector.constant_mask" in text, text  # there are masks, inside the kernels


@pytest.mark.parametrize("b,m,k,n", [(3, 17, 9, 31), (12, 64, 32, 63), (2, 5, 100, 77),
                                     (12, 77, 64, 77), (2, 19, 37, 197)])
def test_batch_matmul(b: int, m: int, k: int, n: int) -> None:
    rng = np.random.default_rng(b + n)
    x = rng.standard_normal((b, m, k)).astype(np.float32)
    y = rng.standard_normal((b, k, n)).astype(np.float32)
    _run(lambda p, q: p @ q, [x, y], x.astype(np.float64) @ y, 2)


@pytest.mark.parametrize("threads", [1, 2])
def test_symbolic_rows_and_columns(threads: int) -> None:
    # Symbolic M and N: every remainder tile is dynamic, vectorized masked on memrefs.
    g = Graph("g", lambda x, y: x @ y, input_types=[
        TensorType(DType.float32, ("m", 70), CPU), TensorType(DType.float32, (70, "n"), CPU)])
    model = InferenceSession(devices=[CPUDevice()], num_threads=threads).load(g)
    rng = np.random.default_rng(threads)
    for m, n in [(1, 1), (7, 250), (9, 63), (17, 129), (130, 33), (64, 64)]:
        a = rng.standard_normal((m, 70)).astype(np.float32)
        b = rng.standard_normal((70, n)).astype(np.float32)
        check(model.execute(a, b)[0].to_numpy(), (a.astype(np.float64) @ b).astype(np.float32),
              rtol=1e-4, atol=1e-4)
