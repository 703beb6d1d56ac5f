"""Data types of MAX tensors (``max.dtype.DType``)."""

from __future__ import annotations

from max.dtype.dtype import DType

__all__ = ["DType"]
