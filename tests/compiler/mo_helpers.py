"""Test helpers: an MO context, compiling hand-written MO text to a .so and calling it."""

from __future__ import annotations

import ctypes
import tempfile
from pathlib import Path

import numpy as np
import pytest
from mlir import ir

from max.dialects.mo import context as mo_context


def make_context() -> ir.Context:
    """A Context with the MO dialect loaded."""
    return mo_context.make_context()


def memref_descriptor(a: np.ndarray) -> ctypes.Structure:
    """A ranked memref descriptor {alloc, aligned, offset, sizes[r], strides[r]} viewing ``a``."""
    rank = a.ndim
    fields = [("allocated", ctypes.c_void_p), ("aligned", ctypes.c_void_p),
              ("offset", ctypes.c_int64)]
    if rank:
        fields += [("sizes", ctypes.c_int64 * rank), ("strides", ctypes.c_int64 * rank)]
    cls = type(f"MemRef{rank}", (ctypes.Structure,), {"_fields_": fields})
    d = cls()
    d.allocated = d.aligned = a.ctypes.data
    d.offset = 0
    if rank:
        d.sizes[:] = list(a.shape)
        d.strides[:] = [s // a.itemsize for s in a.strides]
    return d


class Compiled:
    """A hand-written MO module compiled to a .so, callable on numpy arrays."""

    def __init__(self, mo_text: str, *, keep_ir: bool = False, profile: bool = False) -> None:
        from max.compiler.lowering import lower_to_linalg
        from max.compiler.pipelines import cpu

        ctx = make_context()
        with ctx:
            module = ir.Module.parse(mo_text)
            lower_to_linalg(module)
            self.lowered = str(module) if keep_ir else ""
            fn = cpu.graph_functions(module)[0]
            self.sig = cpu.entry_signature(fn)
            self.fallbacks = cpu.lower_to_llvm(module, profile=profile)  # plain-loop kernels
            llvm_ir = cpu.translate_to_llvm_ir(module)
        self._dir = tempfile.TemporaryDirectory(prefix="mo-test-")
        so = Path(self._dir.name) / "model.so"
        cpu.build_shared_object(llvm_ir, so)
        self.lib = ctypes.CDLL(str(so))
        self.entry = getattr(self.lib, self.sig.symbol)
        self.entry.restype = None

    def __call__(self, inputs: list[np.ndarray], outputs: list[tuple[tuple[int, ...], str]],
                 *, out_offset: int | None = None) -> tuple[list[np.ndarray], list[str]]:
        """Runs the entry; returns the outputs and the messages of the checks that failed.

        ``out_offset``: place each output exactly that many bytes past a 64-byte boundary
        (None: wherever numpy puts it)."""
        ins = [np.ascontiguousarray(a) for a in inputs]
        outs = [np.zeros(shape, dtype) if out_offset is None else
                _zeros_at(shape, np.dtype(dtype), out_offset) for shape, dtype in outputs]
        checks = np.zeros(len(self.sig.checks), np.uint8)
        arrays = ins + outs + ([checks] if self.sig.checks else [])
        descs = [memref_descriptor(a) for a in arrays]
        self.entry(*[ctypes.byref(d) for d in descs])
        failed = [m for m, c in zip(self.sig.checks, checks) if c]
        return outs, failed


def _zeros_at(shape: tuple[int, ...], dtype: np.dtype, offset: int) -> np.ndarray:
    nbytes = dtype.itemsize * int(np.prod(shape))
    raw = np.zeros(nbytes + 64 + offset, np.uint8)
    start = -raw.ctypes.data % 64 + offset
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def graph_text(fwd, shapes) -> str:
    """The MO text of a ``max.graph`` Graph of ``fwd`` over f32 inputs of ``shapes``."""
    from max.dtype import DType
    from max.graph import DeviceRef, Graph, TensorType

    g = Graph("g", fwd, input_types=[TensorType(DType.float32, s, DeviceRef.CPU())
                                     for s in shapes])
    return g._text()


def mo_type(elt: str, dims: tuple | list) -> str:
    """The text of an ``!mo.tensor`` type."""
    from max.dialects.mo.types import MOTensorType

    return MOTensorType(elt, tuple(dims)).text()


def one_op_module(op: str, operands: list[tuple[str, tuple]], result: tuple[str, tuple],
                  attrs: str = "", name: str = "g") -> str:
    """A graph ``@name`` applying one MO op to its arguments and returning the result."""
    in_types = [mo_type(e, d) for e, d in operands]
    out = mo_type(*result)
    args = ", ".join(f"%a{i}: {t}" for i, t in enumerate(in_types))
    uses = ", ".join(f"%a{i}" for i in range(len(in_types)))
    attr_text = f" {{{attrs}}}" if attrs else ""
    return (f"func.func @{name}({args}) -> {out} attributes {{mo.graph}} {{\n"
            f'  %r = "mo.{op}"({uses}){attr_text} : ({", ".join(in_types)}) -> {out}\n'
            f"  func.return %r : {out}\n}}\n")


NP_DTYPES = {"f32": "float32", "f64": "float64", "f16": "float16", "si8": "int8",
             "si16": "int16", "si32": "int32", "si64": "int64", "ui8": "uint8", "ui16": "uint16",
             "ui32": "uint32", "ui64": "uint64", "i1": "bool"}


def run_one(op: str, operands: list[tuple[str, tuple]], result: tuple[str, tuple],
            arrays: list[np.ndarray], out_shape: tuple[int, ...], attrs: str = ""
            ) -> tuple[np.ndarray, list[str]]:
    """Compiles one op and runs it once."""
    c = Compiled(one_op_module(op, operands, result, attrs))
    (out,), failed = c(arrays, [(out_shape, NP_DTYPES[result[0]])])
    return out, failed


def record_scripts(monkeypatch) -> list[str]:
    """Records every transform script the CPU schedule applies (in order; each still runs)."""
    from max.compiler.pipelines import transform_script

    applied: list[str] = []
    apply = transform_script.apply

    def recording(module, script: str) -> None:
        applied.append(script)
        apply(module, script)

    monkeypatch.setattr(transform_script, "apply", recording)
    return applied


def check(actual: np.ndarray, expected: np.ndarray, *, rtol: float = 1e-6,
          atol: float = 0.0) -> None:
    """Shape and dtype first, then values (NaNs must match)."""
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)


def scheduled_ir(text: str, until: str = "mo-fast-math") -> str:
    """An MO module's text through the CPU target up to the stage ``until`` (by default the
    memref level: scheduled, vectorized, before the LLVM lowering)."""
    from max.compiler.lowering import lower_to_linalg
    from max.compiler.targets.cpu import CPU

    with make_context():
        m = ir.Module.parse(text)
        lower_to_linalg(m)
        CPU.run(m, until=until)
        return str(m)


def _omp_missing() -> bool:
    from max.compiler.pipelines import cpu_threads

    return cpu_threads.omp_library_dir() is None


needs_omp = pytest.mark.skipif(_omp_missing(), reason="libiomp5 (pip intel-openmp) not installed")


@pytest.fixture
def two_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two threads even on a one-CPU runner; schedule failures raise instead of falling back.
    (A module uses it for all its tests with ``pytestmark = pytest.mark.usefixtures``.)"""
    from max.compiler.pipelines import cpu_threads

    monkeypatch.setenv(cpu_threads.THREADS_ENV, "2")
    monkeypatch.setenv("MAX_SCHEDULE_DEBUG", "1")


def chain_text(dims: tuple) -> str:
    """An MO graph ``exp((a + b) * a)`` on two f32 tensors of ``dims`` (ints or names)."""
    t = mo_type("f32", dims)
    return (f"func.func @g(%a: {t}, %b: {t}) -> {t} attributes {{mo.graph}} {{\n"
            f'  %0 = "mo.add"(%a, %b) : ({t}, {t}) -> {t}\n'
            f'  %1 = "mo.mul"(%0, %a) : ({t}, {t}) -> {t}\n'
            f'  %2 = "mo.exp"(%1) : ({t}) -> {t}\n'
            f"  func.return %2 : {t}\n}}\n")


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance between f32 arrays in representable values (0 where both are NaN)."""
    def ordered(v: np.ndarray) -> np.ndarray:
        i = v.view(np.int32).astype(np.int64)
        return np.where(i < 0, -(i & 0x7FFFFFFF), i)

    d = np.abs(ordered(a) - ordered(b))
    d[np.isnan(a) & np.isnan(b)] = 0
    return d


def lowered_llvm(text: str) -> str:
    """An MO module's text lowered through the CPU pipeline to the LLVM dialect."""
    from max.compiler.lowering import lower_to_linalg
    from max.compiler.pipelines import cpu

    with make_context():
        m = ir.Module.parse(text)
        lower_to_linalg(m)
        cpu.lower_to_llvm(m)
        return str(m)
