"""Decode-style matmuls (a few static rows against a large B) split their columns over the
threads: their time is B's streaming, not the multiply-adds, so the split pays far below the
multiply-add threshold (matmul_schedule.B_SPLIT_BYTES). Numbers against numpy for row counts
below and at the register tile, B given and constant, with and without a bias."""

from __future__ import annotations

import numpy as np
import pytest
from mlir import ir
from mo_helpers import check, make_context

from max.compiler.lowering import lower_to_linalg
from max.compiler.pipelines.matmul_schedule import B_SPLIT_BYTES
from max.compiler.targets.cpu import CPU as TARGET
from max.driver import CPU as CPUDevice
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType, ops

CPU = DeviceRef.CPU()

pytestmark = pytest.mark.usefixtures("schedule_debug")


def _splits(g: Graph) -> int:
    """How many ``scf.forall`` the two-thread schedule makes of ``g``."""
    with make_context(), ir.Location.unknown():
        m = ir.Module.parse(g._text())
        lower_to_linalg(m)
        TARGET.run(m, until="mo-schedule-tensors", threads=2)
        return str(m).count("scf.forall (")


def _graph(m: int, k: int, n: int, w: np.ndarray | None, bias: np.ndarray | None) -> Graph:
    types = [TensorType(DType.float32, (m, k), CPU)]
    if w is None:
        types.append(TensorType(DType.float32, (k, n), CPU))

    def body(x, *rest):
        y = x @ (rest[0] if w is None else ops.constant(w, DType.float32, CPU))
        return y if bias is None else y + ops.constant(bias, DType.float32, CPU)

    return Graph("g", body, input_types=types)


@pytest.mark.parametrize("m,k,n", [(1, 384, 1536), (1, 1536, 384), (2, 384, 1024)])
def test_a_large_b_splits_whatever_the_rows(m: int, k: int, n: int) -> None:
    assert k * n * 4 >= B_SPLIT_BYTES and m * k * n < 1 << 20  # below the MAC threshold
    assert _splits(_graph(m, k, n, None, None)) == 1


def test_a_small_b_stays_on_one_thread() -> None:
    # 1 x 384 x 384: 576 KiB of B, 147k multiply-adds; a fork/join would cost what it saves.
    assert _splits(_graph(1, 384, 384, None, None)) == 0


@pytest.mark.parametrize("constant", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("m,k,n", [(1, 384, 1536), (3, 1536, 384), (7, 300, 1000),
                                   (1, 2048, 130)])
def test_numbers(m: int, k: int, n: int, constant: bool, with_bias: bool) -> None:
    rng = np.random.default_rng(m * 7 + n)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32) if with_bias else None
    g = _graph(m, k, n, w if constant else None, bias)
    model = InferenceSession(devices=[CPUDevice()], num_threads=2).load(g)
    assert model._record.fallbacks == ()
    got = model.execute(*([x] if constant else [x, w]))[0].to_numpy()
    want = x.astype(np.float64) @ w + (0 if bias is None else bias)
    check(got, want.astype(np.float32), rtol=1e-4, atol=1e-3)


EPILOGUES = {
    "none": (lambda y, b: y, lambda y, b: y),
    "bias": (lambda y, b: y + ops.constant(b, DType.float32, CPU), lambda y, b: y + b),
    "bias_gelu": (lambda y, b: ops.gelu(y + ops.constant(b, DType.float32, CPU)),
                  lambda y, b: 0.5 * (y + b) * (1 + np.vectorize(__import__("math").erf)(
                      (y + b) / np.sqrt(2)))),
    "relu": (lambda y, b: ops.relu(y), lambda y, b: np.maximum(y, 0)),
}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("epilogue", list(EPILOGUES))
@pytest.mark.parametrize("m,k,n", [(1, 512, 512), (2, 96, 4096), (5, 1536, 384),
                                   (7, 384, 1536)])
def test_few_rows_panel_numbers(m: int, k: int, n: int, epilogue: str, threads: int) -> None:
    rng = np.random.default_rng(m + k + n)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    ours, ref = EPILOGUES[epilogue]
    g = Graph("g", lambda v: ours(v @ ops.constant(w, DType.float32, CPU), b),
              input_types=[TensorType(DType.float32, (m, k), CPU)])
    model = InferenceSession(devices=[CPUDevice()], num_threads=threads).load(g)
    assert model._record.fallbacks == ()
    want = ref(x.astype(np.float64) @ w, b.astype(np.float64))
    check(model.execute(x)[0].to_numpy(), want.astype(np.float32), rtol=1e-4, atol=1e-4)
