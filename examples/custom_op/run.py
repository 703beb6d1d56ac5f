"""Calls the MLIR kernels of kernels.mlir from a graph (README, "Custom kernels")."""

from pathlib import Path

import numpy as np

from max.driver import CPU
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import BufferType, DeviceRef, Graph, TensorType, ops

cpu = DeviceRef.CPU()
x_type = TensorType(DType.float32, ("n", 4), cpu)
counter_type = BufferType(DType.int64, (3,), cpu)

with Graph("custom_example", input_types=[x_type, x_type, counter_type]) as graph:
    x, b, counter = graph.inputs
    (y,) = ops.custom("axpb", cpu, [x, b], out_types=[x_type], parameters={"alpha": 2.0})
    ops.inplace_custom("increment", cpu, [counter], parameters={"step": 5})
    graph.output(ops.relu(y))

session = InferenceSession(devices=[CPU()],
                           custom_extensions=Path(__file__).parent / "kernels.mlir")
model = session.load(graph)

x = np.arange(8, dtype=np.float32).reshape(2, 4) - 4
b = np.ones((2, 4), np.float32)
counter = np.zeros(3, np.int64)
(out,) = model.execute(x, b, counter)
print(out.to_numpy())  # relu(2 * x + 1)
print(counter)  # [5 5 5]: updated in place
