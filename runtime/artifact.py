"""The metadata of a compiled artifact: one typed, versioned record (``meta.json``).

The compiler writes it, the cache and the engine read it (docs/architecture.md, "Compiled
artifact"). Nothing here trusts the file: :meth:`ArtifactRecord.from_json` checks every field's
type and every derived fact (the entry symbol, the binary's name, that each tensor's dtype,
dims and device are those of its MO type text, that constants are packed as the compiler packs
them)
and raises :class:`ArtifactError` otherwise. The tensor dims used to allocate outputs are
parsed from the MO type text, which the cache compares with the graph being loaded
(:meth:`ArtifactRecord.check_types`); the JSON's ``dims`` field is only a checked copy.

``meta.json`` is covered by ``meta.sha256`` (:func:`encode` / :func:`decode`). That detects a
damaged or half-edited file; it is no signature: the cache holds executable code, so its
directory is private (compiler/cache.py) and that is what keeps others from writing it.

Imports neither ``mlir`` nor ``max.compiler``/``max.dialects``: a cache hit needs no compiler.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from max.runtime.layouts import layout_error
from max.runtime.shapes import compile_dim, is_symbol

FORMAT = 6  # bump when a field is added, removed or changes meaning
META_FILE = "meta.json"
META_HASH_FILE = "meta.sha256"
CONSTANTS_FILE = "constants.bin"
CONSTANT_ALIGNMENT = 64
BINARY_NAMES = {"so": "model.so", "jit": "model.llvm.mlirbc"}

# MLIR element type spelling -> dtype name; the same table as max.dialects.mo.types
# (a test checks that they agree), repeated here because that module imports mlir.
ELEMENT_DTYPES: dict[str, str] = {
    "i1": "bool", "si8": "int8", "si16": "int16", "si32": "int32", "si64": "int64",
    "ui8": "uint8", "ui16": "uint16", "ui32": "uint32", "ui64": "uint64",
    "f16": "float16", "bf16": "bfloat16", "f32": "float32", "f64": "float64",
    "f8E4M3FN": "float8_e4m3fn", "f8E4M3FNUZ": "float8_e4m3fnuz", "f8E5M2": "float8_e5m2",
    "f8E5M2FNUZ": "float8_e5m2fnuz", "f4E2M1FN": "float4_e2m1fn",
}
# Bytes per element as stored (numpy / ml_dtypes: float4 takes a byte).
ITEMSIZE: dict[str, int] = {
    "bool": 1, "int8": 1, "int16": 2, "int32": 4, "int64": 8, "uint8": 1, "uint16": 2,
    "uint32": 4, "uint64": 8, "float16": 2, "bfloat16": 2, "float32": 4, "float64": 8,
    "float8_e4m3fn": 1, "float8_e4m3fnuz": 1, "float8_e5m2": 1, "float8_e5m2fnuz": 1,
    "float4_e2m1fn": 1,
}

_TYPE_RE = re.compile(r'^!mo\.(tensor|buffer)<([^,]+), (\[.*\]), "([^"]*)">$')
_DEVICE_RE = re.compile(r"^(cpu|gpu):[0-9]+$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_OPTION_TYPES = (bool, int, float, str, type(None))


class ArtifactError(ValueError):
    """The metadata of a compiled artifact is malformed, damaged or not the graph's."""


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")


def entry_name(name: str) -> str:
    """The symbol of a graph's entry point: a C identifier, distinct for distinct names.

    A graph's name is anything the user chose ("model@v2", "", a C keyword, "malloc"). Used
    as is, ``@`` breaks the linker (symbol versions), and a name like ``malloc``, ``_init`` or
    any symbol of the process replaces or is interposed by that function. So every entry gets a
    prefix: ``mo_graph_NAME`` for up to 64 of ``[A-Za-z0-9_]``, else ``mo_graphx_`` + a
    sanitized prefix of the name + 16 hex digits of its sha256 (the ``x`` keeps the two
    forms apart, the hash keeps names that sanitize alike apart).
    """
    if _PLAIN_NAME.fullmatch(name):
        return f"mo_graph_{name}"
    safe = re.sub(r"[^A-Za-z0-9_]", "_", name)[:40]
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"mo_graphx_{safe}_{digest}"


def profile_symbol(name: str) -> str:
    """The exported ``i64`` array where a profiled build (``MAX_PROFILE_KERNELS``) counts the
    time of each kernel (``compiler/passes/profile_kernels.py``, ``runtime/kernel_profile.py``)."""
    return f"{entry_name(name)}__kernel_profile"


def entry_num_args(num_inputs: int, num_outputs: int, num_checks: int,
                   num_returned: int = 0) -> int:
    """Descriptor pointers the entry takes: ``@NAME([returned], inputs..., outputs...,
    [checks])``.

    ``num_inputs`` counts the named weights and externalized constants too (they follow the
    user's inputs). ``num_returned`` of the ``num_outputs`` are allocated by the compiled code
    (:func:`data_dependent_outputs`): they come back through one pointer, first, to a struct
    of their descriptors.
    The one place this arithmetic lives (docs/architecture.md, "CPU entry ABI").
    """
    return ((1 if num_returned else 0) + num_inputs + num_outputs - num_returned
            + (1 if num_checks else 0))


def data_dependent_outputs(input_dims: Sequence[Sequence[int | str]],
                           output_dims: Sequence[Sequence[int | str]]) -> tuple[int, ...]:
    """The outputs whose size only the data determines: a dim uses a symbol that no input
    has as a dim (an op such as ``mo.nonzero`` binds it when the graph runs). The compiled
    code allocates these and returns them; the caller allocates every other output.
    The compiler (``mo-to-linalg``) and the runtime both decide it here.
    """
    bound = {d for dims in input_dims for d in dims if is_symbol(d)}
    returned = []
    for i, dims in enumerate(output_dims):
        names: set[str] = set()
        for d in dims:
            if isinstance(d, str):
                names |= compile_dim(d)[1]
        if names - bound:
            returned.append(i)
    return tuple(returned)


def _fail(where: str, message: str) -> ArtifactError:
    return ArtifactError(f"artifact metadata: {where}: {message}")


def _want(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    # bool is an int subclass: never accept it where an int is meant (nor the reverse).
    ok = isinstance(value, kind) and not (isinstance(value, bool) and kind in (int, (int,)))
    if not ok:
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise _fail(where, f"expected {name}, got {type(value).__name__} {value!r:.60}")
    return value


def _check_dim(d: Any, where: str) -> int | str:
    if isinstance(d, int) and not isinstance(d, bool):
        if d < 0:
            raise _fail(where, f"negative dim {d}")
        return d
    if isinstance(d, str):
        try:
            compile_dim(d)  # symbol or expression over + - * // only
        except ValueError as e:
            raise _fail(where, str(e)) from None
        return d
    raise _fail(where, f"a dim must be an int or a str, got {type(d).__name__} {d!r:.60}")


@dataclass(frozen=True)
class MOType:
    """A parsed ``!mo.tensor<DTYPE, [DIMS], "DEVICE">`` (or ``!mo.buffer``) type text."""

    element_type: str
    dims: tuple[int | str, ...]
    device: str
    kind: str = "tensor"

    @classmethod
    def parse(cls, text: str, where: str = "type") -> MOType:
        """Reads a type text; raises :class:`ArtifactError` if it is not a valid MO type."""
        m = _TYPE_RE.match(_want(text, str, where))
        if m is None:
            raise _fail(where, f"not an MO tensor type: {text!r:.120}")
        kind, element, dims_text, device = m.groups()
        if element not in ELEMENT_DTYPES:
            raise _fail(where, f"unknown element type {element!r}")
        if not _DEVICE_RE.match(device):
            raise _fail(where, f"bad device {device!r}")
        try:
            dims = json.loads(dims_text)
        except ValueError:
            raise _fail(where, f"bad dims {dims_text!r:.120}") from None
        _want(dims, list, where)
        return cls(element, tuple(_check_dim(d, where) for d in dims), device, kind)

    @property
    def dtype(self) -> str:
        """The dtype name (``"float32"``)."""
        return ELEMENT_DTYPES[self.element_type]

    def text(self) -> str:
        """The canonical MLIR spelling."""
        return (f'!mo.{self.kind}<{self.element_type}, {json.dumps(list(self.dims))}, '
                f'"{self.device}">')


@dataclass(frozen=True)
class TensorRecord:
    """An input or output of the graph: its MO type and its name (None: unnamed)."""

    type: MOType
    name: str | None = None

    @property
    def dtype(self) -> str:
        return self.type.dtype

    @property
    def dims(self) -> tuple[int | str, ...]:
        return self.type.dims

    @property
    def device(self) -> str:
        return self.type.device

    def to_json(self) -> dict[str, Any]:
        # dtype, dims and device are copies for people reading the file; from_json checks them.
        return {"type": self.type.text(), "dtype": self.dtype, "dims": list(self.dims),
                "device": self.device, "name": self.name}

    @classmethod
    def from_json(cls, obj: Any, where: str) -> TensorRecord:
        _keys(obj, {"type", "dtype", "dims", "device", "name"}, where)
        t = MOType.parse(obj["type"], f"{where}.type")
        name = obj["name"]
        if name is not None:
            _want(name, str, f"{where}.name")
        copies = {"dtype": t.dtype, "dims": list(t.dims), "device": t.device}
        for k, v in copies.items():
            if obj[k] != v or (k == "dims" and any(type(a) is not type(b)
                                                   for a, b in zip(obj[k], v))):
                raise _fail(f"{where}.{k}", f"{obj[k]!r:.80} disagrees with the type {t.text()}")
        return cls(t, name)


@dataclass(frozen=True)
class ConstantRecord:
    """An externalized constant: where it lies in ``constants.bin``, its static type and the
    sha256 of its bytes (a load whose graph holds data of that digest compares the file with
    that data instead of hashing the file again; "" where unknown)."""

    offset: int
    nbytes: int
    dims: tuple[int, ...]
    dtype: str
    element_type: str
    sha256: str = ""

    def __post_init__(self) -> None:
        where = "constant"
        for k in ("offset", "nbytes"):
            if _want(getattr(self, k), int, f"{where}.{k}") < 0:
                raise _fail(f"{where}.{k}", "negative")
        for d in self.dims:
            if _want(d, int, f"{where}.dims") < 0:
                raise _fail(f"{where}.dims", f"negative dim {d}")
        if ELEMENT_DTYPES.get(self.element_type) != self.dtype:
            raise _fail(where, f"element type {self.element_type!r} is not dtype {self.dtype!r}")
        if self.offset % CONSTANT_ALIGNMENT:
            raise _fail(where, f"offset {self.offset} is not {CONSTANT_ALIGNMENT}-byte aligned")
        if self.nbytes != math.prod(self.dims) * ITEMSIZE[self.dtype]:
            raise _fail(where, f"{self.nbytes} bytes cannot hold {self.dtype}{list(self.dims)}")
        if _want(self.sha256, str, f"{where}.sha256") and not _SHA_RE.match(self.sha256):
            raise _fail(f"{where}.sha256", "not a hex sha256")

    def to_json(self) -> dict[str, Any]:
        return {"offset": self.offset, "nbytes": self.nbytes, "dims": list(self.dims),
                "dtype": self.dtype, "element_type": self.element_type, "sha256": self.sha256}

    @classmethod
    def from_json(cls, obj: Any, where: str) -> ConstantRecord:
        _keys(obj, {"offset", "nbytes", "dims", "dtype", "element_type", "sha256"}, where)
        try:
            return cls(obj["offset"], obj["nbytes"], tuple(_want(obj["dims"], list, where)),
                       _want(obj["dtype"], str, where), _want(obj["element_type"], str, where),
                       obj["sha256"])
        except ArtifactError as e:
            raise ArtifactError(str(e).replace("constant", where, 1)) from None


@dataclass(frozen=True)
class KernelRecord:
    """A kernel of a profiled build: its MO ops (``label``), whether it was left to plain
    loops (a linalg op survived the schedule), its outermost op (``scf.for``...) and whether
    it is vector code (else scalar loops)."""

    label: str
    plain: bool
    op: str
    vector: bool = False

    def __post_init__(self) -> None:
        _want(self.label, str, "kernel.label")
        _want(self.plain, bool, "kernel.plain")
        _want(self.op, str, "kernel.op")
        _want(self.vector, bool, "kernel.vector")

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "plain": self.plain, "op": self.op, "vector": self.vector}

    @classmethod
    def from_json(cls, obj: Any, where: str) -> KernelRecord:
        _keys(obj, {"label", "plain", "op", "vector"}, where)
        try:
            return cls(obj["label"], obj["plain"], obj["op"], obj["vector"])
        except ArtifactError as e:
            raise ArtifactError(str(e).replace("kernel", where, 1)) from None


def _keys(obj: Any, keys: set[str], where: str) -> None:
    _want(obj, dict, where)
    if set(obj) != keys:
        extra, missing = sorted(set(obj) - keys), sorted(keys - set(obj))
        raise _fail(where, f"missing keys {missing}, unknown keys {extra}")


@dataclass(frozen=True)
class ArtifactRecord:
    """What the engine needs to call a compiled graph, and what produced it.

    Attributes:
        name: the graph's name; the entry symbol is ``_mlir_ciface_`` + ``entry_name(name)``.
        kind: ``"so"`` (a shared object) or ``"jit"`` (LLVM-dialect bytecode).
        sha256: the binary's sha256 (hex).
        inputs / outputs: the graph function's arguments and results, in order.
        checks: the messages of the runtime checks (one byte each in the checks buffer).
        weights: the named external weights (``ops.constant_external``: static dims, named),
            supplied at load time and passed after the inputs.
        weight_layouts: one per weight: ``""`` (passed as given) or the layout
            (``runtime/layouts``) the engine stores it in once at load time.
        constants: the externalized constants, passed after the weights.
        constants_sha256: the sha256 of ``constants.bin``.
        target / options / compiler_version: what built it (also in the cache key).
        fallbacks: the kernels the compiler left to plain scalar loops (the CPU target's
            fallback records, e.g. ``"relu+add (linalg.generic)"``; ``"whole module: ..."``
            when the schedule failed); empty when everything was scheduled.
        kernels: for a shared object built with the option ``profile_kernels``, every
            kernel the binary times, in the order of its counters; None otherwise.
    """

    name: str
    kind: str
    sha256: str
    inputs: tuple[TensorRecord, ...]
    outputs: tuple[TensorRecord, ...]
    checks: tuple[str, ...]
    constants: tuple[ConstantRecord, ...]
    constants_sha256: str
    target: str
    options: Mapping[str, Any] = field(default_factory=dict)
    compiler_version: str = ""
    format: int = FORMAT
    weights: tuple[TensorRecord, ...] = ()
    weight_layouts: tuple[str, ...] = ()
    fallbacks: tuple[str, ...] = ()
    kernels: tuple[KernelRecord, ...] | None = None

    def __post_init__(self) -> None:
        if _want(self.format, int, "format") != FORMAT:
            raise _fail("format", f"version {self.format}, this runtime reads {FORMAT}")
        if not _want(self.weight_layouts, tuple, "weight_layouts") and self.weights:
            object.__setattr__(self, "weight_layouts", ("",) * len(self.weights))
        if len(self.weight_layouts) != len(self.weights):
            raise _fail("weight_layouts", f"{len(self.weight_layouts)} layouts for "
                                          f"{len(self.weights)} weights")
        for i, (w, layout) in enumerate(zip(self.weights, self.weight_layouts)):
            if not _want(layout, str, f"weight_layouts[{i}]"):
                continue
            static = all(type(d) is int for d in w.dims)
            why = layout_error(layout, tuple(w.dims)) if static else "symbolic dims"
            if why is not None:
                raise _fail(f"weight_layouts[{i}]", why)
        _want(self.name, str, "name")  # any string: only the entry symbol is mangled from it
        if _want(self.kind, str, "kind") not in BINARY_NAMES:
            raise _fail("kind", f"expected one of {sorted(BINARY_NAMES)}, got {self.kind!r}")
        for k in ("sha256", "constants_sha256"):
            if not _SHA_RE.match(_want(getattr(self, k), str, k)):
                raise _fail(k, "not a hex sha256")
        for k, cls in (("inputs", TensorRecord), ("outputs", TensorRecord),
                       ("checks", str), ("constants", ConstantRecord), ("fallbacks", str)):
            for i, v in enumerate(_want(getattr(self, k), tuple, k)):
                _want(v, cls, f"{k}[{i}]")
        _want(self.target, str, "target")
        _want(self.compiler_version, str, "compiler_version")
        opts = dict(_want(self.options, Mapping, "options"))
        for k, v in opts.items():
            _want(k, str, "options")
            _want(v, _OPTION_TYPES, f"options.{k}")
        object.__setattr__(self, "options", MappingProxyType(opts))
        # A profiled .so has counters, so a table to read them by; nothing else has either.
        profiled = opts.get("profile_kernels") is True and self.kind == "so"
        if self.kernels is not None:
            for i, k in enumerate(_want(self.kernels, tuple, "kernels")):
                _want(k, KernelRecord, f"kernels[{i}]")
        if profiled != (self.kernels is not None):
            raise _fail("kernels", "a kernel table belongs to, and only to, a shared object "
                                   "built with the option profile_kernels")
        # The layout is the packer's, exactly (each constant on the next aligned offset; the
        # cache also wants constants.bin to end where the last one does): one constant's dims
        # cannot be changed alone. The code reads each constant at its compiled size, which
        # nothing here can see, so a consistent edit of several remains possible: the
        # private cache directory is what stops those.
        end = 0
        for i, c in enumerate(self.constants):
            want = end + (-end % CONSTANT_ALIGNMENT)
            if c.offset != want:
                raise _fail(f"constants[{i}]", f"offset {c.offset}, expected {want} (packed)")
            end = c.offset + c.nbytes

    @property
    def entry(self) -> str:
        """The exported C-interface symbol."""
        return f"_mlir_ciface_{entry_name(self.name)}"

    @property
    def binary(self) -> str:
        """The binary's file name in the entry (fixed by ``kind``: never a path from the file)."""
        return BINARY_NAMES[self.kind]

    @property
    def num_args(self) -> int:
        """Descriptor pointers the entry takes (inputs, weights, constants, outputs, checks)."""
        return entry_num_args(len(self.inputs) + len(self.weights) + len(self.constants),
                              len(self.outputs),
                              len(self.checks), len(self.returned_outputs))

    @property
    def returned_outputs(self) -> tuple[int, ...]:
        """The outputs the compiled code allocates (:func:`data_dependent_outputs`)."""
        return data_dependent_outputs([t.dims for t in self.inputs],
                                      [t.dims for t in self.outputs])

    @property
    def constants_size(self) -> int:
        """The length of ``constants.bin`` (packed: exactly the end of the last constant)."""
        return max((c.offset + c.nbytes for c in self.constants), default=0)

    def check_types(self, inputs: Sequence[str], outputs: Sequence[str]) -> None:
        """Checks that this record describes a graph with these argument/result type texts.

        Raises:
            ArtifactError: if the counts or any type differ.
        """
        for what, mine, theirs in (("inputs", self.inputs, inputs),
                                   ("outputs", self.outputs, outputs)):
            if len(mine) != len(theirs):
                raise _fail(what, f"{len(mine)} in the record, {len(theirs)} in the graph")
            for i, (rec, text) in enumerate(zip(mine, theirs)):
                try:
                    graph_type = MOType.parse(text, f"graph {what}[{i}]")
                except ArtifactError:
                    graph_type = None
                if graph_type != rec.type:
                    raise _fail(f"{what}[{i}]", f"record says {rec.type.text()}, the graph "
                                                f"has {text}")

    def to_json(self) -> str:
        """The canonical JSON text (sorted keys: the same record always gives the same bytes)."""
        obj = {
            "format": self.format, "name": self.name, "entry": self.entry, "kind": self.kind,
            "binary": self.binary, "sha256": self.sha256,
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
            "checks": list(self.checks),
            "constants": [c.to_json() for c in self.constants],
            "weights": [w.to_json() for w in self.weights],
            "weight_layouts": list(self.weight_layouts),
            "constants_sha256": self.constants_sha256, "target": self.target,
            "options": dict(self.options), "compiler_version": self.compiler_version,
            "fallbacks": list(self.fallbacks),
            "kernels": None if self.kernels is None else [k.to_json() for k in self.kernels],
        }
        return json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> ArtifactRecord:
        """Reads and validates a record.

        Raises:
            ArtifactError: bad JSON, a missing or unknown key, a field of the wrong type, an
                unsupported format version, or facts that contradict each other.
        """
        try:
            obj = json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            raise ArtifactError(f"artifact metadata: not JSON: {e}") from None
        _want(obj, dict, "record")
        if obj.get("format") != FORMAT:  # before the keys: another version has other keys
            raise _fail("format", f"version {obj.get('format')!r:.20}, this runtime reads "
                                  f"{FORMAT}")
        _keys(obj, {"format", "name", "entry", "kind", "binary", "sha256", "inputs", "outputs",
                    "checks", "constants", "weights", "weight_layouts", "constants_sha256",
                    "target", "options",
                    "compiler_version", "fallbacks", "kernels"}, "record")
        kernels = obj["kernels"]
        if kernels is not None:
            kernels = tuple(KernelRecord.from_json(k, f"kernels[{i}]")
                            for i, k in enumerate(_want(kernels, list, "kernels")))
        record = cls(
            name=obj["name"], kind=obj["kind"], sha256=obj["sha256"],
            inputs=tuple(TensorRecord.from_json(t, f"inputs[{i}]")
                         for i, t in enumerate(_want(obj["inputs"], list, "inputs"))),
            outputs=tuple(TensorRecord.from_json(t, f"outputs[{i}]")
                          for i, t in enumerate(_want(obj["outputs"], list, "outputs"))),
            weights=tuple(TensorRecord.from_json(t, f"weights[{i}]")
                          for i, t in enumerate(_want(obj["weights"], list, "weights"))),
            weight_layouts=tuple(_want(obj["weight_layouts"], list, "weight_layouts")),
            checks=tuple(_want(obj["checks"], list, "checks")),
            constants=tuple(ConstantRecord.from_json(c, f"constants[{i}]")
                            for i, c in enumerate(_want(obj["constants"], list, "constants"))),
            constants_sha256=obj["constants_sha256"], target=obj["target"],
            options=_want(obj["options"], dict, "options"),
            compiler_version=obj["compiler_version"], format=obj["format"], kernels=kernels,
            fallbacks=tuple(_want(obj["fallbacks"], list, "fallbacks")))
        for i, w in enumerate(record.weights):  # the engine matches arrays to these
            if w.name is None or w.type.kind != "tensor" or not all(
                    type(d) is int for d in w.dims):
                raise _fail(f"weights[{i}]", "a weight is a named !mo.tensor of static dims")
        for i, t in enumerate(record.outputs):  # a graph returns tensors; buffers are inputs
            if t.type.kind != "tensor":
                raise _fail(f"outputs[{i}].type", f"an output must be an !mo.tensor, got "
                                                  f"{t.type.text()!r:.120}")
        for k in ("entry", "binary"):  # derived: the file may only repeat them
            if obj[k] != getattr(record, k):
                raise _fail(k, f"{obj[k]!r:.80}, expected {getattr(record, k)!r}")
        return record


def digest(data: bytes) -> str:
    """The hex sha256 stored in ``meta.sha256``."""
    return hashlib.sha256(data).hexdigest()


def encode(record: ArtifactRecord) -> tuple[bytes, bytes]:
    """The bytes of ``meta.json`` and of ``meta.sha256`` for ``record``."""
    data = record.to_json().encode()
    return data, (digest(data) + "\n").encode()


def decode(meta: bytes, meta_hash: bytes) -> ArtifactRecord:
    """The record in ``meta.json``, checked against ``meta.sha256`` first.

    Raises:
        ArtifactError: if the hash does not match or the record is invalid.
    """
    try:
        want = meta_hash.decode("ascii").strip()
    except UnicodeDecodeError:
        want = ""
    if not _SHA_RE.match(want) or digest(meta) != want:
        raise ArtifactError("artifact metadata: meta.json does not match meta.sha256")
    return ArtifactRecord.from_json(meta)
