"""transfer_to between CPU devices (cpu:0 and cpu:1 standing for devices), allgather,
assert_same_device and print (read back from the process's standard output)."""

from __future__ import annotations

import numpy as np
import pytest

from max import engine
from max.dtype import DType
from max.graph import BufferType, DeviceRef, Graph, TensorType, ops

C0, C1, C2 = DeviceRef.CPU(0), DeviceRef.CPU(1), DeviceRef.CPU(2)
F32 = DType.float32


def _run(g: Graph, *inputs: np.ndarray) -> list[np.ndarray]:
    return [o.to_numpy() for o in engine.InferenceSession().load(g).execute(*inputs)]


def test_transfer_between_cpus_copies() -> None:
    with Graph("move", input_types=[TensorType(F32, ("n", 3), C0)]) as g:
        (x,) = g.inputs
        y = ops.transfer_to(x, C1)
        assert y.device == C1 and y.shape == x.shape
        back = ops.transfer_to(y * 2, C0)
        g.output(y, back + x)
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    y, z = _run(g, x)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(z, 3 * x)


def test_allgather_concatenates_onto_every_device() -> None:
    types = [TensorType(F32, (2, 3), C0), TensorType(F32, (1, 3), C1),
             TensorType(F32, (3, 3), C2)]
    signals = [BufferType(DType.uint8, (1,), d) for d in (C0, C1, C2)]
    with Graph("gather", input_types=types + signals) as g:
        xs, bufs = g.inputs[:3], g.inputs[3:]
        outs = ops.allgather(xs, bufs, axis=0)
        assert [o.device for o in outs] == [C0, C1, C2]
        g.output(*outs)
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((n, 3)).astype(np.float32) for n in (2, 1, 3)]
    signal = [np.zeros(1, np.uint8) for _ in range(3)]
    want = np.concatenate(xs, axis=0)
    for out in _run(g, *xs, *signal):
        np.testing.assert_array_equal(out, want)


def test_allgather_on_the_last_axis_and_errors() -> None:
    types = [TensorType(F32, (2, k), d) for k, d in ((1, C0), (2, C1))]
    with Graph("gather1", input_types=types + [BufferType(DType.uint8, (1,), C0)] * 2) as g:
        a, b, s0, s1 = g.inputs
        with pytest.raises(ValueError, match=r"^allgather: expected 2 signal buffers \(one per "
                                             r"input\), got 1$"):
            ops.allgather([a, b], [s0])
        with pytest.raises(ValueError, match=r"^allgather: inputs\[1\] is on cpu:0, as "
                                             r"inputs\[0\]: each input must be on its own"):
            ops.allgather([a, a], [s0, s1])
        with pytest.raises(TypeError, match=r"^allgather: signal_buffers\[1\] must be a "
                                            r"BufferValue, got TensorValue$"):
            ops.allgather([a, b], [s0, b])
        g.output(*ops.allgather([a, b], [s0, s1], axis=-1))
    a = np.array([[1], [2]], np.float32)
    b = np.array([[3, 4], [5, 6]], np.float32)
    u = np.zeros(1, np.uint8)
    for out in _run(g, a, b, u, u.copy()):
        np.testing.assert_array_equal(out, np.concatenate([a, b], axis=1))


def test_assert_same_device() -> None:
    with Graph("dev", input_types=[TensorType(F32, (2,), C0), TensorType(F32, (2,), C1),
                                   BufferType(F32, (2,), C0)]) as g:
        a, b, buf = g.inputs
        ops.assert_same_device(a, buf)
        ops.assert_same_device(a, first=a)
        ops.assert_same_device()
        with pytest.raises(ValueError, match=r"^assert_same_device: other is on cpu:1, value 0 "
                                             r"on cpu:0$"):
            ops.assert_same_device(a, other=b)
        g.output()


def test_print_writes_labelled_values_in_program_order(capfd: pytest.CaptureFixture) -> None:
    with Graph("show", input_types=[TensorType(F32, (2, "n"), C0),
                                    TensorType(DType.int8, (3,), C0),
                                    BufferType(DType.int64, (2,), C0)]) as g:
        x, i, buf = g.inputs
        ops.print("start 100%")
        x.print("x")
        ops.print(i, label="ints")
        ops.buffer_store(buf, ops.constant([7, -8], DType.int64, C0))
        buf.print()
        ops.print(ops.constant(2**64 - 1, DType.uint64, C0) , label="big")
        ops.print(ops.constant(np.zeros((0, 2), np.float64), DType.float64, C0), label="none")
        ops.print(ops.constant(0.1, DType.float64, C0))
        g.output(x + 1)
    capfd.readouterr()
    x = np.array([[0, 0.5, 1], [1.5, 2, 2.5]], np.float32)
    (y,) = _run(g, x, np.array([-1, 2, 127], np.int8), np.zeros(2, np.int64))
    np.testing.assert_array_equal(y, x + 1)
    assert capfd.readouterr().out.splitlines() == [
        "start 100%",
        "x (float32, shape [2, n]): [0, 0.5, 1, 1.5, 2, 2.5]",
        "ints (int8, shape [3]): [-1, 2, 127]",
        "debug_buffer (int64, shape [2]): [7, -8]",
        "big (uint64, shape []): [18446744073709551615]",
        "none (float64, shape [0, 2]): []",
        "debug_tensor (float64, shape []): [0.10000000000000001]",
    ]


def test_print_errors() -> None:
    with Graph("bad", input_types=[BufferType(F32, (2,), C0)]) as g:
        (buf,) = g.inputs
        with pytest.raises(TypeError, match=r"^print: a buffer cannot be printed directly"):
            ops.print(buf)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"^print: value must be a str or a TensorValue, "
                                            r"got int$"):
            ops.print(3)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"^print: label must be a str, got int$"):
            ops.print("x", label=3)  # type: ignore[arg-type]
        g.output()
