"""Helpers for the max.nn tests: build a graph around a module, load its weights through
``weights_registry``, run it; PyTorch weights as numpy arrays."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from max.dtype import DType
from max.engine import InferenceSession, Model
from max.graph import DeviceRef, Graph, TensorType
from max.nn import Module

CPU = DeviceRef.CPU()
F32 = DType.float32


def tt(*dims: Any, dtype: DType = F32) -> TensorType:
    return TensorType(dtype, dims, CPU)


def compile_module(session: InferenceSession, module: Module, input_types: Sequence[TensorType],
                   forward: Callable[..., Any] | None = None, name: str = "nn") -> Model:
    """The compiled graph of ``forward(module, *inputs)`` (default ``module(*inputs)``), its
    weights bound from ``module.state_dict()``."""
    module.raw_state_dict()  # the model's weight names, before any part of it is called
    with Graph(name, input_types=input_types) as g:
        out = forward(module, *g.inputs) if forward else module(*g.inputs)
        g.output(*(out if isinstance(out, list | tuple) else [out]))
    return session.load(g, weights_registry=module.state_dict())


def execute(model: Model, *inputs: np.ndarray) -> list[np.ndarray]:
    return [r.to_numpy() for r in model.execute(*inputs)]


def torch_state(module: torch.nn.Module, prefix: str = "") -> dict[str, np.ndarray]:
    """``module``'s state dict as numpy arrays, keys prefixed."""
    return {prefix + k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def randn(*shape: int) -> np.ndarray:
    return torch.randn(*shape).numpy()


def close(actual: np.ndarray, expected: Any, rtol: float = 1e-5, atol: float = 1e-5) -> None:
    """Same shape and dtype as the reference, then allclose."""
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().numpy()
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)
