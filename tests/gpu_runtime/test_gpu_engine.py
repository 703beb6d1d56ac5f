"""InferenceSession on an Accelerator: graphs placed on the GPU compile for the ``nvidia``
target, and executing them issues exactly the launches the module's ``gpu.launch_func`` ops
say (kernel names, grid and block sizes, one argument per descriptor field, device pointers
to allocations of the right sizes).

Runs without a GPU on the fake CUDA driver of ``conftest.py`` (it mocks ONLY the vendor
library and runs no kernel: the numbers are checked by ``test_gpu_hardware.py`` on a GPU)."""

from __future__ import annotations

import numpy as np
import pytest

from max import engine
from max.driver import CPU, Accelerator, Tensor
from max.dtype import DType
from max.graph import DeviceRef, Dim, Graph, TensorType, ops
from max.runtime.gpu import GpuError

from launches import TAG, check_launches, expected_launches, gpu_graph


def test_softmax_graph_launches(fake_cuda) -> None:
    graph = gpu_graph(lambda x, y: ops.softmax(x + y),
                      [(DType.float32, (4, 300)), (DType.float32, (4, 300))])
    gpu = Accelerator()
    session = engine.InferenceSession(devices=[gpu])
    model = session.load(graph)
    x = Tensor(np.ones((4, 300), np.float32), gpu)
    y = Tensor(np.zeros((4, 300), np.float32), gpu)
    fake_cuda.lib.fake_clear_launches()
    (out,) = model.execute(x, y)
    assert out.device == gpu and out.shape == (4, 300) and out.dtype == DType.float32
    check_launches(fake_cuda, graph, gpu.default_stream.handle, [x, y, out])


def test_matmul_relu_graph_launches_and_host_inputs(fake_cuda) -> None:
    graph = gpu_graph(lambda x, w: ops.relu(ops.matmul(x, w)),
                      [(DType.float32, (64, 128)), (DType.float32, (128, 96))])
    gpu = Accelerator()
    model = engine.InferenceSession(devices=[CPU(), gpu]).load(graph)
    assert [s.shape for s in model.input_metadata] == [[64, 128], [128, 96]]
    fake_cuda.lib.fake_clear_launches()
    w = Tensor(np.ones((128, 96), np.float32), gpu)
    (out,) = model.execute(np.ones((64, 128), np.float32), w)  # numpy: copied in
    assert out.shape == (64, 96) and out.device == gpu
    check_launches(fake_cuda, graph, gpu.default_stream.handle, [w, out])
    assert len(fake_cuda.launches()) == 3


def test_graph_on_second_gpu(fake_cuda) -> None:
    graph = Graph("g1", lambda x: x * 2,
                  input_types=[TensorType(DType.float32, (1000,), DeviceRef.GPU(1))])
    gpu1 = Accelerator(1)
    model = engine.InferenceSession(devices=[Accelerator(0), gpu1]).load(graph)
    (out,) = model.execute(Tensor(np.ones(1000, np.float32), gpu1))
    assert out.device == gpu1 and fake_cuda.alloc_device(out._data_ptr()) == 1
    with pytest.raises(ValueError, match="not among the session's devices"):
        engine.InferenceSession(devices=[Accelerator(0)]).load(graph)


def test_input_checks(fake_cuda) -> None:
    graph = gpu_graph(lambda x: ops.exp(x), [(DType.float32, (8,))])
    gpu = Accelerator()
    model = engine.InferenceSession(devices=[gpu]).load(graph)
    with pytest.raises(ValueError, match=r"expected shape \[8\], got \[9\]"):
        model.execute(np.ones(9, np.float32))
    with pytest.raises(TypeError, match="expected dtype float32, got int32"):
        model.execute(np.ones(8, np.int32))
    with pytest.raises(ValueError, match="expects 1 inputs, got 2"):
        model.execute(np.ones(8, np.float32), np.ones(8, np.float32))
    with pytest.raises(ValueError, match="is on gpu:1, the model on gpu:0"):
        model.execute(Tensor(np.ones(8, np.float32), Accelerator(1)))


def test_missing_kernel_raises(fake_cuda) -> None:
    graph = gpu_graph(lambda x: ops.tanh(x), [(DType.float32, (16,))], name="missing")
    model = engine.InferenceSession(devices=[Accelerator()]).load(graph)
    kernel = expected_launches(graph)[0].name
    fake_cuda.lib.fake_hide_kernel(kernel.encode())
    with pytest.raises(GpuError, match=rf"running model 'missing' on gpu:0: cuModuleGetFunction "
                       rf"failed: CUDA_ERROR_NOT_FOUND \(500\): named symbol not found\n"
                       rf"kernel {kernel}"):
        model.execute(np.ones(16, np.float32))
    fake_cuda.lib.fake_hide_kernel(None)
    (out,) = model.execute(np.ones(16, np.float32))  # the error was cleared
    assert out.shape == (16,)


def test_ptx_jit_error_raises_with_log(fake_cuda) -> None:
    graph = gpu_graph(lambda x: ops.sqrt(x), [(DType.float32, (16,))], name="jitfail")
    fake_cuda.lib.fake_fail_jit(1)
    with pytest.raises(GpuError, match=r"loading the kernels of model 'jitfail': "
                       r"cuModuleLoadDataEx failed: CUDA_ERROR_INVALID_PTX \(218\).*\n"
                       r"ptxas fatal: FAKE_JIT_ERROR"):
        engine.InferenceSession(devices=[Accelerator()]).load(graph)
    fake_cuda.lib.fake_fail_jit(0)


def test_cpu_graph_in_gpu_session_stays_on_host(fake_cuda) -> None:
    graph = Graph("h", lambda x: x + 1, input_types=[TensorType(DType.float32, (4,),
                                                                 DeviceRef.CPU())])
    model = engine.InferenceSession(devices=[CPU(), Accelerator()]).load(graph)
    (out,) = model.execute(np.zeros(4, np.float32))
    assert out.is_host
    np.testing.assert_array_equal(out.to_numpy(), np.ones(4, np.float32))


def test_large_constant_is_uploaded_once(fake_cuda) -> None:
    w = np.random.default_rng(1).standard_normal((64, 48)).astype(np.float32)
    graph = gpu_graph(lambda x: ops.matmul(x, ops.constant(w, DType.float32, DeviceRef.GPU())),
                      [(DType.float32, (32, 64))], name="const")
    gpu = Accelerator()
    model = engine.InferenceSession(devices=[gpu]).load(graph)
    (constant,) = model._fixed  # externalized, copied to the device at load
    assert constant.device == gpu
    np.testing.assert_array_equal(constant.to(CPU()).to_numpy(), w)
    fake_cuda.lib.fake_clear_launches()
    x = Tensor(np.ones((32, 64), np.float32), gpu)
    (out,) = model.execute(x)
    check_launches(fake_cuda, graph, gpu.default_stream.handle, [x, constant, out])


def test_an_nvidia_arch_between_the_tuned_ones_gets_the_newest_below_it():
    from max.engine._gpu_model import nvidia_arch

    assert nvidia_arch("sm_90") == "sm_90"
    assert nvidia_arch("sm_86") == "sm_80"  # PTX JITs forward: sm_80 code runs on an sm_86
    assert nvidia_arch("sm_89") == "sm_80"
    assert nvidia_arch("sm_100") == "sm_90"
    with pytest.raises(ValueError, match="unsupported NVIDIA arch 'sm_75'"):
        nvidia_arch("sm_75")


def test_transfers_inside_one_graph_place_it_on_the_gpu(fake_cuda) -> None:
    """Host inputs and outputs, the work moved to the GPU with ``transfer_to``: the graph
    compiles for the GPU (its kernels launched on the device's stream), the host input is
    copied in, and the output the graph moved back to the host is a host tensor."""
    def fn(x):
        y = ops.softmax(ops.transfer_to(x, DeviceRef.GPU()))
        return ops.transfer_to(y, DeviceRef.CPU()), y

    graph = Graph("moved", fn, input_types=[TensorType(DType.float32, (4, 300),
                                                       DeviceRef.CPU())])
    gpu = Accelerator()
    model = engine.InferenceSession(devices=[CPU(), gpu]).load(graph)
    fake_cuda.lib.fake_clear_launches()
    host_out, gpu_out = model.execute(np.ones((4, 300), np.float32))
    assert host_out.is_host and host_out.shape == (4, 300)
    assert gpu_out.device == gpu and gpu_out.shape == (4, 300)
    assert [launch.name for launch in fake_cuda.launches()] == [
        e.name for e in expected_launches(graph)]
    assert all(launch.stream == gpu.default_stream.handle for launch in fake_cuda.launches())


def test_symbolic_dims_bind_at_each_call(fake_cuda) -> None:
    """A graph over symbolic dims runs at any size: outputs sized from the inputs' bound
    symbols, the grid computed from the run-time sizes (softmax: one block a row, the
    matmul: one block per 64 rows of C), symbols checked across inputs."""
    b = Dim("batch")
    graph = Graph("sym", lambda x, w: (ops.softmax(x), x @ w), input_types=[
        TensorType(DType.float32, (b, 256), DeviceRef.GPU()),
        TensorType(DType.float32, (256, 128), DeviceRef.GPU())])
    gpu = Accelerator()
    model = engine.InferenceSession(devices=[gpu]).load(graph)
    assert [s.shape for s in model.input_metadata] == [[None, 256], [256, 128]]
    w = Tensor(np.ones((256, 128), np.float32), gpu)
    for rows in (3, 130):
        fake_cuda.lib.fake_clear_launches()
        soft, prod = model.execute(np.ones((rows, 256), np.float32), w)
        assert soft.shape == (rows, 256) and prod.shape == (rows, 128)
        grids = {launch.grid for launch in fake_cuda.launches()}
        assert (rows, 1, 1) in grids  # softmax: a block a row
        assert (128 // 64, -(-rows // 64), 1) in grids  # the matmul's tiles of C
    with pytest.raises(ValueError, match=r"^input 0: dim 1 expected 256, got 255 \(expected "
                                         r"shape \[batch, 256\], got \[3, 255\]\)$"):
        model.execute(np.ones((3, 255), np.float32), w)


def test_symbol_bound_to_two_sizes_is_an_error(fake_cuda) -> None:
    b = Dim("batch")
    graph = Graph("sym2", lambda x, y: x + y, input_types=[
        TensorType(DType.float32, (b, 8), DeviceRef.GPU())] * 2)
    model = engine.InferenceSession(devices=[Accelerator()]).load(graph)
    with pytest.raises(ValueError, match=r"^input 1: dim 0 binds symbol 'batch' to 5, but "
                                         r"input 0 dim 0 bound it to 4$"):
        model.execute(np.ones((4, 8), np.float32), np.ones((5, 8), np.float32))


def test_runtime_checks_are_read_back_from_the_device(fake_cuda) -> None:
    """A gather's index check on a GPU: a kernel writes one flag a check into a device
    buffer, which the call reads back (after the kernels) and raises from. The fake driver
    runs no kernel, so what the flag holds is what fresh device memory holds: set here."""
    graph = Graph("ga", lambda x, i: ops.gather(x, i, axis=0), input_types=[
        TensorType(DType.float32, (100, 64), DeviceRef.GPU()),
        TensorType(DType.int64, (Dim("n"),), DeviceRef.GPU())])
    gpu = Accelerator()
    model = engine.InferenceSession(devices=[gpu]).load(graph)
    x = Tensor(np.ones((100, 64), np.float32), gpu)
    try:
        fake_cuda.lib.fake_fill_new_allocations(0)
        fake_cuda.lib.fake_clear_launches()
        (out,) = model.execute(x, np.array([1, 2, 3], np.int64))
        assert out.shape == (3, 64)
        one_byte = [p for launch in fake_cuda.launches() for p in launch.params
                    if p & TAG and fake_cuda.allocated_size(p) == 1]  # freed by now
        assert one_byte  # the checks buffer (one flag), a kernel's argument
        fake_cuda.lib.fake_fill_new_allocations(1)  # the kernel "found" an index out of range
        with pytest.raises(IndexError, match=r"mo.gather: index out of range for axis 0 of "
                                             r"size 100"):
            model.execute(x, np.array([1, 2, 3], np.int64))
    finally:
        fake_cuda.lib.fake_fill_new_allocations(-1)
