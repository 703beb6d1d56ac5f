"""The MAX Python API (max.graph, max.engine, max.driver, max.dtype), built on upstream MLIR."""

__version__ = "0.1.0"
