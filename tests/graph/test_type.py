"""Types: devices, TensorType / BufferType, layouts, and their MO form."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from strategies import dtypes, static_shapes, tensor_types

from max.dialects.mo import make_context
from max.dialects.mo.types import ELEMENT_TYPES
from max.dtype import DType
from max.graph.dim import Dim
from max.graph.shape import Shape
from max.graph.type import (
    BufferType,
    ConvInputLayout,
    DeviceKind,
    DeviceRef,
    FilterLayout,
    TensorType,
    Type,
    _ChainType,
    _dtype_from_mlir,
    _dtype_to_mlir,
)

# ---------------------------------------------------------------------------------------------
# Devices


def test_device_ref() -> None:
    gpu, cpu = DeviceRef.GPU(), DeviceRef.CPU(id=1)
    assert str(gpu) == "gpu:0" and str(cpu) == "cpu:1"
    assert gpu.device_type is DeviceKind.GPU and gpu.id == 0 and gpu.is_gpu() and not gpu.is_cpu()
    assert cpu.is_cpu() and DeviceRef("cpu") == DeviceRef.CPU() == DeviceRef(DeviceKind.CPU, 0)
    assert DeviceRef.GPU(2) != DeviceRef.CPU(2) and len({DeviceRef.CPU(), DeviceRef("cpu", 0)}) == 1
    assert repr(DeviceRef.GPU(1)) == "DeviceRef.GPU(1)"
    assert pickle.loads(pickle.dumps(gpu)) == gpu and copy.deepcopy(cpu) == cpu


def test_device_kind() -> None:
    assert DeviceKind.from_string("gpu") is DeviceKind.GPU and str(DeviceKind.CPU) == "cpu"
    assert DeviceKind.CPU == "cpu"
    with pytest.raises(ValueError, match="Unknown device kind 'tpu'"):
        DeviceKind.from_string("tpu")


def test_device_ref_errors() -> None:
    with pytest.raises(ValueError, match="Unknown device kind"):
        DeviceRef("tpu")
    with pytest.raises(TypeError, match="device_type must be a DeviceKind"):
        DeviceRef(0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="id must be an int"):
        DeviceRef.GPU("0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="id must be non-negative"):
        DeviceRef.GPU(-1)
    with pytest.raises(AttributeError, match="immutable"):
        DeviceRef.CPU().id = 3  # type: ignore[misc]


def test_device_ref_mlir() -> None:
    with make_context():
        attr = DeviceRef.GPU(1).to_mlir()
        assert str(attr) == '"gpu:1"' and DeviceRef.from_mlir(attr) == DeviceRef.GPU(1)
    assert DeviceRef.from_mlir("cpu:0") == DeviceRef.CPU()
    for bad in ["cpu", "cpu:x", "gpu:-1", "npu:0"]:
        with pytest.raises(ValueError):
            DeviceRef.from_mlir(bad)


def test_device_ref_and_driver_devices() -> None:
    from max import driver

    cpu = driver.CPU()
    assert DeviceRef.from_device(cpu) == DeviceRef.CPU()
    assert DeviceRef.from_device(DeviceRef.GPU(1)) == DeviceRef.GPU(1)
    assert DeviceRef.CPU().to_device().label == "cpu"
    with pytest.raises(TypeError, match="expected a DeviceRef or a max.driver.Device"):
        DeviceRef.from_device("cpu:0")


# ---------------------------------------------------------------------------------------------
# DType <-> MO element types


def test_dtype_table() -> None:
    assert _dtype_to_mlir(DType.float32) == "f32" and _dtype_to_mlir(DType.bool) == "i1"
    assert _dtype_to_mlir(DType.int64) == "si64" and _dtype_to_mlir(DType.uint8) == "ui8"
    assert _dtype_from_mlir("bf16") is DType.bfloat16
    for mlir_name, dtype_name in ELEMENT_TYPES.items():
        assert _dtype_from_mlir(mlir_name) is DType[dtype_name]
        assert _dtype_to_mlir(DType[dtype_name]) == mlir_name
    with pytest.raises(ValueError, match="unknown MO element type 'i32'"):
        _dtype_from_mlir("i32")
    with pytest.raises(TypeError, match="expected a max.dtype.DType"):
        _dtype_to_mlir(np.float32)  # type: ignore[arg-type]


@given(dtypes)
def test_every_dtype_has_an_mo_spelling(dtype: DType) -> None:
    assert _dtype_from_mlir(_dtype_to_mlir(dtype)) is dtype


# ---------------------------------------------------------------------------------------------
# TensorType / BufferType


def test_tensor_type() -> None:
    t = TensorType(DType.int64, ("batch", 10), device=DeviceRef.CPU())
    assert t.dtype is DType.int64 and isinstance(t.shape, Shape) and t.shape == ["batch", 10]
    assert t.device == DeviceRef.CPU() and t.rank == 2 and list(t.parameters) == ["batch"]
    assert str(t.shape) == "[batch, 10]"
    assert repr(t) == "TensorType(dtype=DType.int64, shape=[batch, 10], device=cpu:0)"
    static = TensorType(DType.float32, (2, 3), DeviceRef.CPU())
    assert static.num_elements() == 6 and static.cast(DType.float16).dtype is DType.float16
    with pytest.raises(RuntimeError, match="symbolic dims"):
        t.num_elements()


def test_tensor_type_copies_its_shape() -> None:
    shape = Shape([1, "a"])
    t = TensorType(DType.float32, shape, DeviceRef.CPU())
    shape[0] = Dim(5)
    assert t.shape == [1, "a"]
    assert pickle.loads(pickle.dumps(t)) == t and copy.deepcopy(t) == t


def test_tensor_type_equality() -> None:
    a = TensorType(DType.float32, ("batch", 3), DeviceRef.CPU())
    assert a == TensorType(DType.float32, [Dim("batch"), 3], DeviceRef.CPU())
    assert hash(a) == hash(TensorType(DType.float32, ["batch", 3], DeviceRef.CPU()))
    assert a != TensorType(DType.float16, ("batch", 3), DeviceRef.CPU())
    assert a != TensorType(DType.float32, ("batch", 4), DeviceRef.CPU())
    assert a != TensorType(DType.float32, ("batch", 3), DeviceRef.GPU())
    assert a != a.as_buffer() and a.as_buffer().as_tensor() == a


def test_tensor_type_accepts_driver_devices() -> None:
    from max import driver

    assert TensorType(DType.float32, [1], driver.CPU()).device == DeviceRef.CPU()


def test_tensor_type_validation() -> None:
    with pytest.raises(TypeError, match="TensorType: dtype must be a max.dtype.DType"):
        TensorType(np.float32, (2,), DeviceRef.CPU())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="TensorType: device must be a DeviceRef"):
        TensorType(DType.float32, (2,), "cpu:0")
    with pytest.raises(TypeError, match="device"):
        TensorType(DType.float32, (2,))  # type: ignore[call-arg]
    with pytest.raises(ValueError, match=r"static dims must be non-negative, got shape \[2, -1\]"):
        TensorType(DType.float32, (2, -1), DeviceRef.CPU())
    with pytest.raises(ValueError, match="BufferType: static dims must be non-negative"):
        BufferType(DType.float32, (-3,), DeviceRef.CPU())
    with pytest.raises(ValueError, match="Invalid name for symbolic dimension"):
        TensorType(DType.float32, ("a b",), DeviceRef.CPU())


def test_to_mlir_text() -> None:
    t = TensorType(DType.float32, ("batch", 3, Dim("batch") * 2 + 1), DeviceRef.CPU())
    with make_context():
        assert str(t.to_mlir()) == '!mo.tensor<f32, ["batch", 3, "batch * 2 + 1"], "cpu:0">'
        b = BufferType(DType.bool, (), DeviceRef.GPU(1))
        assert str(b.to_mlir()) == '!mo.buffer<i1, [], "gpu:1">'
        assert Type.from_mlir(t.to_mlir()) == t and Type.from_mlir(b.to_mlir()) == b
        assert str(_ChainType().to_mlir()) == "!mo.chain"
        assert Type.from_mlir(_ChainType().to_mlir()) == _ChainType()
        with pytest.raises(TypeError, match="TensorType.from_mlir expects !mo.tensor"):
            TensorType.from_mlir(b.to_mlir())
        with pytest.raises(TypeError, match="No type found for MLIR type"):
            from mlir import ir

            Type.from_mlir(ir.F32Type.get())


def test_to_mlir_needs_a_context() -> None:
    with pytest.raises(RuntimeError, match="needs an active MLIR Context"):
        TensorType(DType.float32, (1,), DeviceRef.CPU()).to_mlir()


@settings(deadline=None)
@given(tensor_types())
def test_mlir_round_trip(t: TensorType) -> None:
    with make_context():
        assert TensorType.from_mlir(t.to_mlir()) == t
        assert BufferType.from_mlir(t.as_buffer().to_mlir()) == t.as_buffer()
    assert TensorType.from_mlir(_text(t)) == t  # the text form needs no Context


def _text(t: TensorType) -> str:
    with make_context():
        return str(t.to_mlir())


@given(tensor_types(static_shapes))
def test_static_num_elements(t: TensorType) -> None:
    assert t.num_elements() == int(np.prod(t.shape.static_dims, dtype=np.int64))


# ---------------------------------------------------------------------------------------------
# Layouts


def test_layouts() -> None:
    assert FilterLayout.RSCF.value == "RSCF" and ConvInputLayout.NHWC.value == "NHWC"
    assert {layout.value for layout in FilterLayout} == {"RSCF", "QRSCF", "FCRS", "FCQRS", "CFRS"}
    with make_context():
        assert FilterLayout.from_mlir(FilterLayout.FCRS.to_mlir()) is FilterLayout.FCRS
        assert ConvInputLayout.from_mlir(ConvInputLayout.NCHW.to_mlir()) is ConvInputLayout.NCHW
    t = TensorType(DType.float32, (3, 3, 4, 8), DeviceRef.CPU(), _layout=FilterLayout.RSCF)
    assert t._layout is FilterLayout.RSCF


@pytest.mark.parametrize("module", ["max.dialects.mo.dim", "max.graph.shape", "max.graph.type"])
def test_docstring_examples_run(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0 and result.attempted > 0
