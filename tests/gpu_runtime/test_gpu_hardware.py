"""The GPU tier: kernel numbers on a real accelerator against numpy (and DLPack with CUDA
torch). Skipped without an accelerator (``gpu`` marker); ``benchmarks/gpu_check.sh`` runs it
on a lent GPU."""

from __future__ import annotations

import numpy as np
import pytest

from max import driver, engine
from max.driver import CPU, Accelerator, Tensor
from max.dtype import DType
from max.graph import DeviceRef, Dim, Graph, TensorType, ops

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(driver.accelerator_count() == 0, reason="needs an accelerator"),
]


def run(fn, *arrays: np.ndarray) -> np.ndarray:
    """``fn`` as a graph on GPU 0, executed on ``arrays``; its one output, on the host."""
    gpu = Accelerator()
    graph = Graph("g", fn, input_types=[
        TensorType(DType.float32, a.shape, DeviceRef.GPU()) for a in arrays])
    model = engine.InferenceSession(devices=[gpu]).load(graph)
    (out,) = model.execute(*[Tensor(a, gpu) for a in arrays])
    assert out.device == gpu
    return out.to(CPU()).to_numpy()


def rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_round_trip_on_device() -> None:
    a = rand(1000, 37)
    t = Tensor(a, Accelerator())
    np.testing.assert_array_equal(t.to(CPU()).to_numpy(), a)
    np.testing.assert_array_equal(Tensor.zeros((5,), DType.int32, Accelerator()).to(CPU())
                                  .to_numpy(), np.zeros(5, np.int32))


@pytest.mark.parametrize("n", [1, 1000, 1 << 20])
def test_elementwise(n: int) -> None:
    x, y, z = rand(n, seed=1), rand(n, seed=2), rand(n, seed=3)
    got = run(lambda a, b, c: a * b + ops.exp(c), x, y, z)
    np.testing.assert_allclose(got, x * y + np.exp(z), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("shape", [(4, 300), (128, 1024), (3, 5000)])
def test_softmax(shape: tuple[int, int]) -> None:
    x = rand(*shape) * 4
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(run(ops.softmax, x), e / e.sum(-1, keepdims=True), rtol=1e-5,
                               atol=1e-7)


@pytest.mark.parametrize("m,k,n", [(64, 128, 96), (256, 512, 384), (1, 4096, 1024)])
def test_matmul(m: int, k: int, n: int) -> None:
    a, b = rand(m, k, seed=4), rand(k, n, seed=5)
    want = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(run(ops.matmul, a, b), want, rtol=1e-4, atol=1e-4 * np.sqrt(k))


@pytest.mark.parametrize("m,k,n", [(64, 256, 128), (1000, 512, 256)])
def test_half_matmul_on_tensor_cores(m: int, k: int, n: int) -> None:
    a = (rand(m, k, seed=14) / 4).astype(np.float16)
    b = (rand(k, n, seed=15) / 4).astype(np.float16)
    gpu = Accelerator()
    graph = Graph("h", ops.matmul, input_types=[
        TensorType(DType.float16, (m, k), DeviceRef.GPU()),
        TensorType(DType.float16, (k, n), DeviceRef.GPU())])
    (out,) = engine.InferenceSession(devices=[gpu]).load(graph).execute(
        Tensor(a, gpu), Tensor(b, gpu))
    want = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(out.to(CPU()).to_numpy().astype(np.float64), want,
                               rtol=2 ** -9, atol=2 ** -9 * np.sqrt(k))


def test_mlp() -> None:
    x, w1, b1, w2, b2 = (rand(32, 256, seed=6), rand(256, 512, seed=7) / 16, rand(512, seed=8),
                         rand(512, 128, seed=9) / 22, rand(128, seed=10))
    got = run(lambda x, w1, b1, w2, b2: ops.matmul(ops.relu(ops.matmul(x, w1) + b1), w2) + b2,
              x, w1, b1, w2, b2)
    want = np.maximum(x.astype(np.float64) @ w1 + b1, 0) @ w2 + b2
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_symbolic_dims() -> None:
    b = Dim("batch")
    gpu = Accelerator()
    graph = Graph("sym", lambda x, w: (ops.softmax(x) * 2, x @ w), input_types=[
        TensorType(DType.float32, (b, 300), DeviceRef.GPU()),
        TensorType(DType.float32, (300, 128), DeviceRef.GPU())])
    model = engine.InferenceSession(devices=[gpu]).load(graph)
    w = rand(300, 128, seed=12)
    for rows in (1, 65, 1000):
        x = rand(rows, 300, seed=rows) * 3
        soft, prod = (t.to(CPU()).to_numpy() for t in model.execute(x, w))
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        np.testing.assert_allclose(soft, 2 * e / e.sum(-1, keepdims=True), rtol=1e-5,
                                   atol=1e-7)
        np.testing.assert_allclose(prod, x.astype(np.float64) @ w, rtol=1e-4, atol=1e-3)


def test_gather_and_its_index_check() -> None:
    table = rand(1000, 64)
    graph = Graph("ga", lambda t, i: ops.gather(t, i, axis=0), input_types=[
        TensorType(DType.float32, table.shape, DeviceRef.GPU()),
        TensorType(DType.int64, (Dim("n"),), DeviceRef.GPU())])
    gpu = Accelerator()
    model = engine.InferenceSession(devices=[gpu]).load(graph)
    idx = np.array([5, 999, -1, 0, 7], np.int64)
    (out,) = model.execute(Tensor(table, gpu), idx)
    np.testing.assert_array_equal(out.to(CPU()).to_numpy(), table[idx % 1000])
    with pytest.raises(IndexError, match="index out of range"):
        model.execute(Tensor(table, gpu), np.array([1000], np.int64))


def test_transfers_inside_one_graph() -> None:
    x = rand(16, 700) * 3
    graph = Graph("moved", lambda a: ops.transfer_to(ops.softmax(ops.transfer_to(
        a, DeviceRef.GPU())), DeviceRef.CPU()), input_types=[
        TensorType(DType.float32, x.shape, DeviceRef.CPU())])
    (out,) = engine.InferenceSession(devices=[CPU(), Accelerator()]).load(graph).execute(x)
    assert out.is_host
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(out.to_numpy(), e / e.sum(-1, keepdims=True), rtol=1e-5,
                               atol=1e-7)


def test_dlpack_with_torch_cuda() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available() or driver.accelerator_api() != "cuda":
        pytest.skip("needs torch with CUDA")
    a = rand(64, 32)
    t = Tensor(a, Accelerator())
    shared = torch.from_dlpack(t)
    assert shared.is_cuda and shared.data_ptr() == t._data_ptr()
    np.testing.assert_array_equal(shared.cpu().numpy(), a)
    back = Tensor.from_dlpack(torch.arange(10, device="cuda", dtype=torch.float32) * 2)
    assert back.device == Accelerator()
    np.testing.assert_array_equal(back.to(CPU()).to_numpy(), np.arange(10) * 2.0)
