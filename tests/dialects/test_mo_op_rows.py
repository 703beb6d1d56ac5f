"""Each MO op, alone in a graph, compiled and run on the CPU, against its row's independent
expected value; and the op definition's numpy reference (what the constant folder evaluates)
against the same value."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from mo_op_rows import ROWS, Row

from max import engine
from max.dialects.mo.opdefs import OPS
from max.dialects.mo.opdefs.flow import CALLEES
from max.dialects.mo.opdefs.reference import FoldContext
from max.dtype import DType
from max.graph import BufferType, DeviceRef, Graph, TensorType, ops

CPU = DeviceRef.CPU()
CASES = [pytest.param(name, k, id=f"{name}-{k}") for name in sorted(ROWS)
         for k in range(len(ROWS[name]))]

_SESSION: list[engine.InferenceSession] = []


def _session() -> engine.InferenceSession:
    if not _SESSION:
        _SESSION.append(engine.InferenceSession())
    return _SESSION[0]


def _result_type(name: str, row: Row, types: list[TensorType]) -> TensorType:
    defn = OPS[name]
    if row.result is not None:
        dtype, shape = row.result
        return TensorType(dtype, shape, CPU)
    sig = defn.infer(name, types, row.attrs)
    return TensorType(sig.dtype, list(sig.shape), CPU)


def _graph(name: str, row: Row) -> Graph:
    types: list[TensorType | BufferType] = [
        (BufferType if i in row.buffers else TensorType)(DType.from_numpy(a.dtype), a.shape, CPU)
        for i, a in enumerate(row.inputs)]
    with Graph(f"row_{name[3:]}", input_types=types) as g:
        if name == "mo.constant":
            (out,) = [ops.constant(row.expected(), DType.int32)]
        elif row.build is not None:
            out = row.build(*g.inputs)
            assert f'"{name}"' in str(g)  # the row runs the op it is filed under
        elif OPS[name].results == 0:  # a store: its effect is the buffer's new contents
            OPS[name].verify(types, row.attrs, None)
            g._add_op(name, list(g.inputs), [], row.attrs)
            out = ops.buffer_load(g.inputs[row.buffers[0]])
        else:
            result = _result_type(name, row, types)
            OPS[name].verify(types, row.attrs, result)
            (out,) = g._add_op(name, list(g.inputs), [result], row.attrs)
        g.output(out)
    return g


def _check(got: np.ndarray, want: Any, row: Row) -> None:
    want = np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_allclose(got, want, rtol=row.rtol, atol=row.atol)


@pytest.mark.parametrize(("name", "k"), CASES)
def test_compiled_op_matches_row(name: str, k: int) -> None:
    row = ROWS[name][k]
    model = _session().load(_graph(name, row))
    inputs = [a.copy() for a in row.inputs]  # buffers are updated in place
    want = row.expected(*row.inputs)
    (out,) = model.execute(*inputs)
    _check(out.to_numpy(), want, row)
    if OPS[name].results == 0:
        _check(inputs[row.buffers[0]], want, row)  # the caller's array itself


@pytest.mark.parametrize(("name", "k"), CASES)
def test_reference_matches_row(name: str, k: int) -> None:
    row = ROWS[name][k]
    reference = OPS[name].reference
    if reference is None:
        # nothing to evaluate / tie rule unwritten / bodies are subgraphs, not numpy / effects
        # on buffers and output (never folded)
        assert (name in ("mo.constant", "mo.round", "mo.print", *CALLEES)
                or name.startswith("mo.buffer_"))
        return
    want = np.asarray(row.expected(*row.inputs))
    ctx = FoldContext(row.attrs, want.shape, want.dtype)
    got = np.asarray(reference.fn(ctx, *row.inputs))
    _check(got.astype(want.dtype) if got.dtype != want.dtype else got, want, row)
