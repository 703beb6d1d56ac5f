"""A saved graph whose types were tampered with is rejected with a ValueError, or runs and
gives what the op references compute on the tampered graph: never a crash, never a wrong
answer. Each example changes the type of one value (a graph input or an op result) of a graph
built by the builders, keeps the module valid for MLIR (IRDL checks only kinds), saves it as
bytecode and loads it back through ``Graph(path=)``."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from max.compiler.passes.constants import read_constant
from max.dialects.mo import make_context
from max.dialects.mo.dim import _evaluate_dim
from max.dialects.mo.opdefs import OPS
from max.dialects.mo.opdefs.reference import FoldContext
from max.dialects.mo.types import ELEMENT_TYPES, MOTensorType, parse_tensor_type
from max.dialects.mo.verify import decode_attributes
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType, ops
from mlir import ir

CPU = DeviceRef.CPU()


def _graphs() -> list[str]:
    """Graphs from the builders, as MLIR text (parsed anew for each example)."""
    f32 = DType.float32
    out = []
    with Graph("mlp", input_types=[TensorType(f32, ("n", 4), CPU),
                                   TensorType(f32, (4, 3), CPU)]) as g:
        x, w = g.inputs
        g.output(ops.softmax(ops.relu(x @ w + 1.0)))
    out.append(str(g._module))
    with Graph("shapes", input_types=[TensorType(f32, ("n", 6), CPU),
                                      TensorType(DType.int64, (2,), CPU)]) as g:
        x, i = g.inputs
        y = ops.reshape(ops.transpose(x, 0, 1), (3, -1))
        g.output(ops.concat([y, y], 0), ops.gather(x, i, 1), ops.sum(x[:, 1:5], 0))
    out.append(str(g._module))
    with Graph("casts", input_types=[TensorType(f32, (3, "m"), CPU)]) as g:
        (x,) = g.inputs
        g.output(ops.cast(x, DType.int32), ops.mean(ops.broadcast_to(x, (2, 3, "m")), 1))
    out.append(str(g._module))
    return out


GRAPHS = _graphs()
DTYPES = ["f32", "f64", "si32", "si64", "i1", "f16"]
DIMS: list[Any] = [0, 1, 2, 3, 4, 6, "n", "m", "n + 1", "n * 2"]


@st.composite
def mutations(draw: st.DrawFn) -> tuple[int, int, str, Any]:
    graph = draw(st.integers(0, len(GRAPHS) - 1))
    value = draw(st.integers(0, 40))  # taken modulo the number of values
    kind = draw(st.sampled_from(["dtype", "dim", "rank+", "rank-"]))
    what = draw(st.sampled_from(DTYPES)) if kind == "dtype" else draw(st.sampled_from(DIMS))
    pos = draw(st.integers(0, 3))
    return graph, value, kind, (what, pos)


def _values(fn: ir.Operation) -> list[ir.Value]:
    block = fn.regions[0].blocks[0]
    return [*block.arguments, *(r for op in block.operations for r in op.results)]


def _mutate(t: MOTensorType, kind: str, what: Any, pos: int) -> MOTensorType:
    dims = list(t.dims)
    if kind == "dtype":
        return MOTensorType(what, tuple(dims), t.device)
    if kind == "rank+":
        dims.insert(pos % (len(dims) + 1), what)
    elif kind == "rank-" and dims:
        dims.pop(pos % len(dims))
    elif dims:
        dims[pos % len(dims)] = what
    return t.with_dims(tuple(dims))


def _tampered(index: int, value: int, kind: str, what: Any, pos: int) -> ir.Module | None:
    module = ir.Module.parse(GRAPHS[index], make_context())
    with module.context:
        fn = next(op.operation for op in module.body.operations)
        values = _values(fn)
        v = values[value % len(values)]
        new = _mutate(parse_tensor_type(v.type), kind, what, pos)
        if new.text() == str(v.type):
            return None
        v.set_type(new.to_mlir())
        block = fn.regions[0].blocks[0]
        ret = list(block.operations)[-1]
        fn.attributes["function_type"] = ir.TypeAttr.get(ir.FunctionType.get(
            [a.type for a in block.arguments], [o.type for o in ret.operands]))
        if not module.operation.verify():
            return None
    return module


def _interpret(module: ir.Module, args: list[np.ndarray], bindings: dict[str, int]) -> list:
    """Evaluates the graph with the op definitions' numpy references."""
    fn = next(op.operation for op in module.body.operations)
    block = fn.regions[0].blocks[0]
    env: dict[Any, np.ndarray] = dict(zip(block.arguments, args))
    for op in block.operations:
        op = op.operation
        if op.name == "func.return":
            return [env[v] for v in op.operands]
        if op.name == "mo.constant":
            env[op.results[0]] = read_constant(op)
            continue
        t = parse_tensor_type(op.results[0].type)
        shape = tuple(_evaluate_dim(d, bindings) for d in t.dims)
        dtype = DType[ELEMENT_TYPES[t.element_type]].to_numpy()
        defn = OPS[op.name]
        ctx = FoldContext(decode_attributes(defn, op), shape, dtype)
        with np.errstate(all="ignore"):
            env[op.results[0]] = np.asarray(
                defn.reference.fn(ctx, *(env[v] for v in op.operands))).astype(dtype)
    raise AssertionError("no func.return")


def _inputs(module: ir.Module, rng: np.random.Generator) -> tuple[list, dict[str, int]]:
    fn = next(op.operation for op in module.body.operations)
    types = [parse_tensor_type(a.type) for a in fn.regions[0].blocks[0].arguments]
    bindings = {s: int(rng.integers(1, 4)) for s in ("n", "m")}
    arrays = []
    for t in types:
        shape = tuple(_evaluate_dim(d, bindings) for d in t.dims)
        dtype = DType[ELEMENT_TYPES[t.element_type]].to_numpy()
        arrays.append(rng.integers(0, 2, shape).astype(dtype) if dtype.kind in "iub"
                      else rng.uniform(-2, 2, shape).astype(dtype))
    return arrays, bindings


@settings(deadline=None, max_examples=50)
@given(mutations())
@example((1, 6, "dim", (0, 0)))  # found by the fuzzer: refused by a run-time check
def test_tampered_types_are_rejected_or_run_correctly(m: tuple[int, int, str, Any]) -> None:
    index, value, kind, (what, pos) = m
    module = _tampered(index, value, kind, what, pos)
    if module is None:
        return  # no change, or MLIR itself rejects the module
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "tampered.mlirbc"
        with open(path, "wb") as f:
            module.operation.write_bytecode(f)
        try:
            graph = Graph("tampered", path=path)
        except ValueError:
            return  # rejected, with a message: what a file that lies about its types gets
        model = InferenceSession().load(graph)
    arrays, bindings = _inputs(module, np.random.default_rng(0))
    try:
        outputs = model.execute(*arrays)
    except ValueError as e:
        # A declared length the verifier cannot refute (a slice of `n` declared 0 long) is
        # caught by the compiled code's run-time check: also a rejection with a message.
        assert "declared" in str(e), e
        return
    expected = _interpret(module, arrays, bindings)
    for got, want in zip(outputs, expected, strict=True):
        got = got.to_numpy()
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64),
                                   rtol=1e-3, atol=1e-4)



def _save(module: ir.Module, d: str) -> Path:
    path = Path(d) / "tampered.mlirbc"
    with open(path, "wb") as f:
        module.operation.write_bytecode(f)
    return path


def test_tampered_examples_name_the_op_and_the_mismatch() -> None:
    cases = [
        ((2, 0, "dtype", "f64", 0), r"mo\.broadcast_to: result dtype float32 should be float64"),
        ((0, 1, "dim", 4, 1), r"mo\.matmul: result shape \[n, 3\] should be \[n, 4\]"),
    ]
    for args, message in cases:
        module = _tampered(*args)
        assert module is not None
        with tempfile.TemporaryDirectory() as d, pytest.raises(ValueError, match=message):
            Graph("tampered", path=_save(module, d))


def test_a_tampered_but_consistent_graph_runs_correctly() -> None:
    """The found example the fuzzer accepts: a value whose new dtype every user accepts."""
    module = _tampered(2, 17, "dtype", "f64", 1)
    assert module is not None
    with tempfile.TemporaryDirectory() as d:
        graph = Graph("tampered", path=_save(module, d))
        model = InferenceSession().load(graph)
    arrays, bindings = _inputs(module, np.random.default_rng(1))
    expected = _interpret(module, arrays, bindings)
    for got, want in zip(model.execute(*arrays), expected, strict=True):
        np.testing.assert_allclose(got.to_numpy(), want, rtol=1e-6)
