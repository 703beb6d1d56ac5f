"""The MO dialect: its IRDL spec, loading it into a Context, and its types.

Every MLIR Context that max creates comes from :func:`make_context`, which loads the MO
dialect (from ``mo.irdl.mlir`` beside this file) and the upstream dialects.
"""

from __future__ import annotations

from max.dialects.mo.context import load, make_context
from max.dialects.mo.types import (
    MOTensorType,
    element_type_from_name,
    parse_tensor_type,
    tensor_type,
)

__all__ = [
    "MOTensorType",
    "element_type_from_name",
    "load",
    "make_context",
    "parse_tensor_type",
    "tensor_type",
]
