"""Run inference with MAX Engine: a graph compiler and runtime for your models.

Example:
    >>> import numpy as np
    >>> from max import engine
    >>> from max.driver import CPU
    >>> session = engine.InferenceSession(devices=[CPU()])
    >>> # model = session.load(graph); model.execute(np.ones((2, 3), np.float32))
"""

from __future__ import annotations

from max.engine.model import Model, MojoValue, TensorSpec
from max.engine.session import CustomExtensionsType, GPUProfilingMode, InferenceSession, LogLevel

__all__ = [
    "CustomExtensionsType",
    "GPUProfilingMode",
    "InferenceSession",
    "LogLevel",
    "Model",
    "MojoValue",
    "TensorSpec",
]
