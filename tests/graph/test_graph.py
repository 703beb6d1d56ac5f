"""Graph building, printing, artifacts (save/load round trips) and build-time errors."""

from __future__ import annotations

import re

import numpy as np
import pytest

from max.dtype import DType
from max.graph import DeviceRef, Graph, TensorType, TensorValue, ops

CPU = DeviceRef.CPU()


def _f32(*dims):
    return TensorType(DType.float32, dims, CPU)


def test_context_manager_form_prints_mo() -> None:
    with Graph("add", input_types=[_f32("batch", 3), _f32("batch", 3)]) as g:
        a, b = g.inputs
        g.output(a + b)
    text = str(g)
    # CHECK-style: the graph function, its symbolic types and one mo.add.
    assert re.search(r"func\.func @add\(%arg0: !mo\.tensor<f32, \[\"batch\", 3\], \"cpu:0\">", text)
    assert "mo.graph" in text
    assert text.count('"mo.add"') == 1
    assert re.search(r"return %0 : !mo\.tensor<f32, \[\"batch\", 3\], \"cpu:0\">", text)


def test_forward_form_and_output_types() -> None:
    g = Graph("relu", lambda x: ops.relu(x), input_types=[_f32(2, "n")])
    assert [str(t) for t in g.output_types] == [str(_f32(2, "n"))]
    assert len(g.inputs) == 1 and isinstance(g.inputs[0], TensorValue)
    assert g.inputs[0].shape == _f32(2, "n").shape


def test_forward_with_several_outputs() -> None:
    g = Graph("two", lambda x: (x * 2, x.cast(DType.float64)), input_types=[_f32(4)])
    assert [t.dtype for t in g.output_types] == [DType.float32, DType.float64]


def test_graph_current() -> None:
    with Graph("g", input_types=[_f32(1)]) as g:
        assert Graph.current is g
        g.output(g.inputs[0])
    with pytest.raises(LookupError, match="no graph is being built"):
        Graph.current  # noqa: B018


def test_output_twice_and_ops_after_output_raise() -> None:
    with Graph("g", input_types=[_f32(1)]) as g:
        x = g.inputs[0]
        g.output(x)
        with pytest.raises(ValueError, match="already called"):
            g.output(x)
        with pytest.raises(ValueError, match="after output"):
            _ = x + x


def test_output_accepts_python_scalars() -> None:
    with Graph("g", input_types=[]) as g:
        g.output(3.0)
    assert g.output_types[0].dtype == DType.float32


def test_bad_input_type_raises() -> None:
    with pytest.raises(TypeError, match=r"input_types\[0\] must be a TensorType"):
        Graph("g", input_types=[DType.float32])


def test_truth_value_of_tensor_raises() -> None:
    with Graph("g", input_types=[_f32(1)]) as g:
        with pytest.raises(TypeError, match="truth value"):
            bool(g.inputs[0])
        g.output(g.inputs[0])


@pytest.mark.parametrize("suffix", [".mlirbc", ".mlir"])
def test_save_and_load_round_trip(tmp_path, suffix) -> None:
    w = np.arange(6, dtype=np.float32).reshape(3, 2)
    with Graph("lin", input_types=[_f32("batch", 3)]) as g:
        g.output(g.inputs[0] @ ops.constant(w, DType.float32, CPU))
    path = tmp_path / f"lin{suffix}"
    g.save(path)
    if suffix == ".mlirbc":
        assert path.read_bytes()[:4] == b"ML\xefR"
    loaded = Graph("ignored", path=path)
    assert loaded.name == "lin"
    assert str(loaded) == str(g)
    assert [str(t) for t in loaded.output_types] == [str(_f32("batch", 2))]
    assert [str(i.type) for i in loaded.inputs] == [str(_f32("batch", 3))]


def test_truncated_bytecode_raises_cleanly(tmp_path) -> None:
    with Graph("g", input_types=[_f32(2)]) as g:
        g.output(ops.exp(g.inputs[0]))
    path = tmp_path / "g.mlirbc"
    g.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot"):
        Graph("g", path=path)


def test_corrupt_bytecode_raises_cleanly(tmp_path) -> None:
    """Random byte flips can abort MLIR's reader; loading must still only raise."""
    with Graph("g", input_types=[_f32("n", 2)]) as g:
        g.output(ops.exp(g.inputs[0]) + g.inputs[0])
    path = tmp_path / "g.mlirbc"
    g.save(path)
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    outcomes = set()
    for _ in range(6):
        bad = bytearray(data)
        for i in rng.integers(4, len(bad), size=4):
            bad[i] = int(rng.integers(0, 256))
        path.write_bytes(bytes(bad))
        try:
            Graph("g", path=path)
            outcomes.add("ok")
        except ValueError:
            outcomes.add("error")
    assert outcomes <= {"ok", "error"}


def test_not_bytecode_and_missing_file(tmp_path) -> None:
    bad = tmp_path / "x.mlirbc"
    bad.write_bytes(b"hello")
    with pytest.raises(ValueError, match="bad magic"):
        Graph("g", path=bad)
    with pytest.raises(FileNotFoundError):
        Graph("g", path=tmp_path / "missing.mlirbc")


def test_numpy_array_on_the_left_builds_graph_ops() -> None:
    with Graph("g", input_types=[_f32(3)]) as g:
        x = g.inputs[0]
        y = np.ones(3, np.float32) + x
        z = np.float32(2) * x
        assert isinstance(y, TensorValue) and isinstance(z, TensorValue)
        g.output(y, z)
    assert str(g).count('"mo.add"') == 1 and str(g).count('"mo.mul"') == 1


def test_values_keep_their_graph_alive() -> None:
    """A value outliving every reference to its Graph must not touch freed IR."""
    import gc

    def build() -> TensorValue:
        with Graph("short_lived", input_types=[_f32(2)]) as g:
            return ops.exp(g.inputs[0])

    value = build()
    gc.collect()
    assert str(value.to_mlir().type) == '!mo.tensor<f32, [2], "cpu:0">'
    assert value.to_mlir().owner.name == "mo.exp"


def test_operands_from_another_graph_are_rejected() -> None:
    with Graph("a", input_types=[_f32(2)]) as a:
        x = a.inputs[0]
        a.output(x)
    with Graph("b", input_types=[_f32(2)]) as b:
        with pytest.raises(ValueError, match="operand belongs to another graph"):
            _ = b.inputs[0] + x
        b.output(b.inputs[0])
