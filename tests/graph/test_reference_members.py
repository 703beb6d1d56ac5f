"""Members of the reference that are thin here: ``KernelLibrary`` and a graph's kernel paths
(a kernel given only through it runs), chain handles (held, ordering nothing), ``Weight``'s
``align``/``quantization_encoding``/``shard_idx`` and ``Device.label``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from max import driver, engine
from max.compiler.passes.registry import CompilationError
from max.dialects.mo import make_context
from max.dtype import DType
from max.graph import (BufferType, DeviceRef, Graph, KernelLibrary, TensorType, Weight,
                       ops)
from max.graph.quantization import QuantizationEncoding

CPU = DeviceRef.CPU()
F32 = DType.float32

AXPY = """
#id = affine_map<(i) -> (i)>
func.func @axpy(%x: tensor<4xf32>, %y: tensor<4xf32>, %a: f32 {max.parameter = "a"}) -> tensor<4xf32> {
  %e = tensor.empty() : tensor<4xf32>
  %r = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel"]}
      ins(%x, %y : tensor<4xf32>, tensor<4xf32>) outs(%e : tensor<4xf32>) {
  ^bb0(%u: f32, %v: f32, %o: f32):
    %m = arith.mulf %u, %a : f32
    %s = arith.addf %m, %v : f32
    linalg.yield %s : f32
  } -> tensor<4xf32>
  return %r : tensor<4xf32>
}
"""


def _axpy_graph(**graph_kwargs: object) -> Graph:
    t = TensorType(F32, (4,), CPU)
    with Graph("axpy_graph", input_types=[t, t], **graph_kwargs) as g:  # type: ignore[arg-type]
        x, y = g.inputs
        (r,) = ops.custom("axpy", CPU, [x, y], [t], parameters={"a": 3.0})
        g.output(r)
    return g


# -- KernelLibrary ---------------------------------------------------------------------------

def test_kernel_given_only_through_the_graphs_kernel_library_runs(tmp_path: Path) -> None:
    (tmp_path / "k.mlir").write_text(AXPY)
    ctx = make_context()
    library = KernelLibrary(ctx, [tmp_path])  # a folder: its .mlir files
    g = _axpy_graph(context=ctx, kernel_library=library)
    assert g.kernel_libraries_paths == [tmp_path]
    x = np.array([1, -2, 3.5, 0], np.float32)
    y = np.array([10, 20, 30, 40], np.float32)
    out = engine.InferenceSession().load(g).execute(x, y)[0].to_numpy()
    np.testing.assert_allclose(out, 3 * x + y, rtol=1e-6)
    # Without the library the kernel is not found when the graph is loaded.
    with pytest.raises(CompilationError, match="custom kernel @axpy: no custom extensions"):
        engine.InferenceSession().load(_axpy_graph())


def test_library_paths_keep_order_once_and_merge_with_custom_extensions(tmp_path: Path) -> None:
    a, b = tmp_path / "a.mlir", tmp_path / "b.mlir"
    a.write_text(AXPY)
    b.write_text("")
    ctx = make_context()
    library = KernelLibrary(ctx)
    assert library.library_paths() == []
    library.add_path(b)
    library.load_paths(ctx, [a, str(b)])
    assert library.library_paths() == [b, a]
    library.library_paths().clear()  # a copy
    assert library.library_paths() == [b, a]
    g = Graph("g", context=ctx, kernel_library=library, custom_extensions=[tmp_path])
    assert g.kernel_libraries_paths == [b, a, tmp_path]
    assert library.library_paths() == [b, a, tmp_path]  # the graph's library is this one
    assert Graph("h", custom_extensions=[a]).kernel_libraries_paths == [a]
    assert Graph("i").kernel_libraries_paths == []


def test_kernel_library_refuses_mojo_and_missing_paths(tmp_path: Path) -> None:
    ctx = make_context()
    library = KernelLibrary(ctx)
    for name in ("ops.mojopkg", "kernel.mojo"):
        with pytest.raises(NotImplementedError, match=re.escape(name) + ": Mojo custom ops"):
            library.add_path(tmp_path / name)
    mojo_dir = tmp_path / "mojo_ops.v1"
    mojo_dir.mkdir()
    (mojo_dir / "add.mojo").write_text("")
    with pytest.raises(NotImplementedError, match="mojo_ops.v1: Mojo custom ops are not supported"):
        library.add_path(mojo_dir)
    with pytest.raises(NotImplementedError, match="x.mojopkg: Mojo custom ops"):
        Graph("g", custom_extensions=[tmp_path / "x.mojopkg"])
    with pytest.raises(ValueError, match="custom extension .*missing.mlir not found"):
        library.add_path(tmp_path / "missing.mlir")
    with pytest.raises(TypeError, match="path must be a path"):
        library.add_path(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not the library's context"):
        library.load_paths(make_context(), [])
    assert library.library_paths() == []
    with pytest.raises(TypeError, match="context must be an mlir Context, got str"):
        KernelLibrary("ctx")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kernel_library belongs to another MLIR context"):
        Graph("g", kernel_library=library)
    with pytest.raises(TypeError, match="kernel_library must be a KernelLibrary, got list"):
        Graph("g", kernel_library=[tmp_path])  # type: ignore[arg-type]


def test_verify_custom_op(tmp_path: Path) -> None:
    (tmp_path / "k.mlir").write_text(AXPY)
    ctx = make_context()
    g = _axpy_graph(context=ctx)
    custom = next(op for op in g._func.regions[0].blocks[0].operations
                  if op.operation.name == "mo.custom")
    with pytest.raises(ValueError, match="custom op 'axpy': the kernel library has no paths"):
        KernelLibrary(ctx).verify_custom_op(custom)
    KernelLibrary(ctx, [tmp_path / "k.mlir"]).verify_custom_op(custom.operation)
    ret = g._func.regions[0].blocks[0].operations[1]
    with pytest.raises(TypeError, match="expected an mo.custom operation, got func.return"):
        KernelLibrary(ctx, [tmp_path]).verify_custom_op(ret)
    with pytest.raises(ValueError, match="belongs to another MLIR context"):
        KernelLibrary(make_context(), [tmp_path]).verify_custom_op(custom)


# -- chains ----------------------------------------------------------------------------------

def _stores(touch_chains: bool) -> Graph:
    with Graph("stores", input_types=[BufferType(F32, (3,), CPU),
                                      TensorType(F32, (3,), CPU)]) as g:
        buf, x = g.inputs
        if touch_chains:
            g.device_chains[CPU] = g.always_ready_chain
        ops.buffer_store(buf, x * 2)
        if touch_chains:
            del g.device_chains[CPU]
            _ = g.device_chains[DeviceRef.GPU()]
        g.output(ops.buffer_load(buf) + 1)
    return g


def test_chains_are_held_and_order_nothing() -> None:
    g = _stores(touch_chains=True)
    ready = g.always_ready_chain
    assert ready is g.always_ready_chain and ready.device is None and ready.graph is g
    assert list(g.device_chains) == [DeviceRef.GPU()]
    assert CPU not in g.device_chains  # asking does not make one
    cpu_chain = g.device_chains[CPU]  # reading does
    assert cpu_chain.device == CPU and cpu_chain is g.device_chains[CPU]
    assert cpu_chain is not ready and len(g.device_chains) == 2
    # The graph is the one built without touching chains: no chain reaches the MO.
    assert str(g) == str(_stores(touch_chains=False))
    assert "chain" not in str(g)
    b = np.zeros(3, np.float32)
    x = np.array([1, 2, 3], np.float32)
    (out,) = engine.InferenceSession().load(g).execute(b, x)
    np.testing.assert_array_equal(b, x * 2)
    np.testing.assert_array_equal(out.to_numpy(), x * 2 + 1)


def test_device_chain_map_checks_keys_and_values() -> None:
    g, other = Graph("g"), Graph("other")
    with pytest.raises(TypeError, match="keys are DeviceRef, got str"):
        g.device_chains["cpu"]  # type: ignore[index]
    with pytest.raises(TypeError, match=r"device_chains\[cpu:0\]: expected a chain value, "
                                        r"got int"):
        g.device_chains[CPU] = 3  # type: ignore[assignment]
    with pytest.raises(ValueError, match="the chain belongs to another graph"):
        g.device_chains[CPU] = other.always_ready_chain
    assert g.always_ready_chain is not other.always_ready_chain


# -- Weight ----------------------------------------------------------------------------------

def test_weight_align_quantization_encoding_and_shard_idx() -> None:
    w = Weight("q", DType.uint8, [4, 18], quantization_encoding=QuantizationEncoding.Q4_0,
               align=64)
    assert w.align == 64 and w.quantization_encoding is QuantizationEncoding.Q4_0
    assert w.shard_idx is None
    assert repr(w) == ("Weight('q', DType.uint8, [Dim(4), Dim(18)], cpu:0, "
                       "quantization_encoding=<QuantizationEncoding.Q4_0: 'Q4_0'>, align=64)")
    plain = Weight("p", F32, [2])
    assert plain.align is None and plain.quantization_encoding is None
    assert repr(plain) == "Weight('p', DType.float32, [Dim(2)], cpu:0)"
    plain.align = np.int64(16)
    assert plain.align == 16 and type(plain.align) is int
    for bad in (0, 3, -8, 96):
        with pytest.raises(ValueError, match=f"Weight 'p': align must be a positive power of "
                                             f"two, got {bad}"):
            Weight("p", F32, [2], align=bad)
    with pytest.raises(TypeError, match="Weight 'p': align must be an int or None, got bool"):
        Weight("p", F32, [2], align=True)
    with pytest.raises(TypeError, match="Weight 'p': quantization_encoding must be a "
                                        "QuantizationEncoding or None, got 'Q4_0'"):
        Weight("p", F32, [2], quantization_encoding="Q4_0")


def test_weight_with_alignment_loads_its_value() -> None:
    w = Weight("w", F32, [3], align=16)
    with Graph("g", input_types=[TensorType(F32, (3,), CPU)]) as g:
        g.output(g.inputs[0] + w)
    value = np.array([1, 2, 3], np.float32)
    model = engine.InferenceSession().load(g, weights_registry={"w": value})
    x = np.array([0.5, 0, -1], np.float32)
    np.testing.assert_array_equal(model.execute(x)[0].to_numpy(), x + value)


# -- Device.label ----------------------------------------------------------------------------

def test_device_label() -> None:
    assert driver.CPU().label == "cpu"
    assert isinstance(driver.Device.label, property)
    assert str(driver.CPU()) == f"{driver.CPU().label}:0"
    if driver.accelerator_count() > 0:
        assert driver.Accelerator().label == "gpu"

