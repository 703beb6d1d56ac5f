"""The MO types in Python: ``!mo.tensor<DTYPE, [DIMS], "DEVICE">`` and ``!mo.buffer<...>``.

A dim is an ``int`` (static), or a ``str``: a symbol name (``"batch"``) or an algebraic
expression over symbols in Python syntax with ``+ - * //`` (``"batch * 2 + 1"``). The text
form is the contract between the graph builder, the compiler and the runtime; this module reads
and writes it without needing an MLIR Context for reading.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from mlir import ir

Dim = int | str

_TYPE_RE = re.compile(r'^!mo\.(tensor|buffer)<([^,]+), (\[.*\]), "([^"]*)">$')

# MLIR element type spelling -> numpy-compatible name, for every dtype MO knows.
ELEMENT_TYPES: dict[str, str] = {
    "i1": "bool",
    "si8": "int8",
    "si16": "int16",
    "si32": "int32",
    "si64": "int64",
    "ui8": "uint8",
    "ui16": "uint16",
    "ui32": "uint32",
    "ui64": "uint64",
    "f16": "float16",
    "bf16": "bfloat16",
    "f32": "float32",
    "f64": "float64",
    "f8E4M3FN": "float8_e4m3fn",
    "f8E4M3FNUZ": "float8_e4m3fnuz",
    "f8E5M2": "float8_e5m2",
    "f8E5M2FNUZ": "float8_e5m2fnuz",
    "f4E2M1FN": "float4_e2m1fn",
}


@dataclass(frozen=True)
class MOTensorType:
    """A parsed ``!mo.tensor`` / ``!mo.buffer`` type."""

    element_type: str  # MLIR spelling: "f32", "si64", "i1", ...
    dims: tuple[Dim, ...]
    device: str = "cpu:0"
    kind: str = "tensor"  # or "buffer"

    @property
    def rank(self) -> int:
        return len(self.dims)

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.dims)

    def text(self) -> str:
        """The MLIR spelling of this type."""
        return f'!mo.{self.kind}<{self.element_type}, {json.dumps(list(self.dims))}, "{self.device}">'

    def to_mlir(self, context: ir.Context | None = None) -> ir.Type:
        return ir.Type.parse(self.text(), context)

    def with_dims(self, dims: tuple[Dim, ...]) -> MOTensorType:
        return MOTensorType(self.element_type, tuple(dims), self.device, self.kind)


def parse_tensor_type(t: ir.Type | str) -> MOTensorType:
    """Reads an ``!mo.tensor``/``!mo.buffer`` type (an ``ir.Type`` or its text)."""
    text = str(t)
    m = _TYPE_RE.match(text)
    if m is None:
        raise ValueError(f"not an MO tensor type: {text}")
    kind, element, dims_text, device = m.groups()
    dims = json.loads(dims_text)
    if not all(isinstance(d, int | str) and not isinstance(d, bool) for d in dims):
        raise ValueError(f"bad dims in MO type: {text}")
    return MOTensorType(element, tuple(dims), device, kind)


def tensor_type(element_type: str, dims: tuple[Dim, ...] | list[Dim], device: str = "cpu:0",
                *, kind: str = "tensor", context: ir.Context | None = None) -> ir.Type:
    """Builds an ``!mo.tensor`` (or ``!mo.buffer``) ``ir.Type``."""
    return MOTensorType(element_type, tuple(dims), device, kind).to_mlir(context)


def element_type_from_name(name: str) -> str:
    """numpy-style dtype name ("float32") -> MLIR element spelling ("f32")."""
    for mlir_name, np_name in ELEMENT_TYPES.items():
        if np_name == name:
            return mlir_name
    raise ValueError(f"no MO element type for dtype {name!r}")
