"""Any graph name compiles and runs (the entry symbol is mangled, the name stays the user's),
and graphs without outputs run."""

from __future__ import annotations

import re

import numpy as np
import pytest

from max.runtime.artifact import entry_name
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType

CPU = DeviceRef.CPU()
X = np.arange(4, dtype=np.float32)

NAMES = [
    "model@v2",  # was a link error: '@' names a symbol version
    "my model", "modèle", "模型", "2model", "", "x" * 5000, "int", "main",
    "malloc", "free", "_init",  # were broken: the graph replaced libc's malloc, or crti's _init
    "PyList_New", "a/b", 'a"b\\c\n', "a\x00b", "mo_graph_add",
]


def _graph(name: str, scale: float = 2.0) -> Graph:
    return Graph(name, lambda x: x * scale + 1,
                 input_types=[TensorType(DType.float32, ("n",), CPU)])


@pytest.fixture(scope="module")
def session(module_cache):
    return InferenceSession()


@pytest.mark.parametrize("name", NAMES, ids=lambda n: repr(n[:12]))
def test_any_name_runs_and_stays_the_models_name(session, name) -> None:
    model = session.load(_graph(name))
    np.testing.assert_array_equal(model.execute(X)[0].to_numpy(), X * 2 + 1)
    assert model.name == name
    assert model._artifact.record.entry == f"_mlir_ciface_{entry_name(name)}"
    with pytest.raises(ValueError, match=f"model {re.escape(repr(name))} expects 1 inputs"):
        model.execute()


@pytest.mark.parametrize("name", ["", "model@v2", 'a"b\\c\n', "a\x00b", "模型"])
@pytest.mark.parametrize("suffix", [".mlir", ".mlirbc"])
def test_names_survive_save_and_load(session, tmp_path, name, suffix) -> None:
    """The empty name too: MLIR prints it as an invalid symbol, saved text says @"" instead."""
    path = tmp_path / f"g{suffix}"
    _graph(name).save(path)
    assert Graph("other", path=path).name == name
    model = session.load(path)
    assert model.name == name
    np.testing.assert_array_equal(model.execute(X)[0].to_numpy(), X * 2 + 1)


def test_entry_names_are_c_identifiers_and_distinct() -> None:
    names = [*NAMES, "a@b", "a#b", "a_b", "x_a_b", "mo_graphx_a_b", "int ", "a" * 64, "a" * 65]
    symbols = [entry_name(n) for n in names]
    assert len(set(symbols)) == len(names)
    for s in symbols:
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", s) and len(s) <= 90, s
    assert entry_name("add") == "mo_graph_add"


@pytest.mark.parametrize("jit", [False, True])
def test_names_that_sanitize_alike_do_not_collide(module_cache, jit) -> None:
    """Both live in one process and in one cache, each computing its own graph."""
    session = InferenceSession()
    if jit:
        session._options = {"force_jit": True}
    models = [session.load(_graph(n, s)) for n, s in (("a@b", 2.0), ("a#b", 3.0),
                                                      ("same", 4.0), ("same", 5.0))]
    for model, scale in zip(models, (2.0, 3.0, 4.0, 5.0)):
        np.testing.assert_array_equal(model.execute(X)[0].to_numpy(), X * scale + 1)
    assert len({m._artifact.path for m in models}) == 4


def test_graph_without_outputs_runs(session) -> None:
    g = Graph("no_outputs", lambda x: None, input_types=[TensorType(DType.float32, (2,), CPU)])
    model = session.load(g)
    assert model.execute(np.ones(2, np.float32)) == []
    assert model.output_metadata == []
    with Graph("nothing") as g:
        g.output()
    assert session.load(g).execute() == []


def test_graph_whose_output_was_never_set_is_rejected(session, tmp_path) -> None:
    with Graph("unfinished", input_types=[TensorType(DType.float32, (2,), CPU)]) as g:
        g.inputs[0] + 1
    match = (r"Graph 'unfinished': cannot load a graph before its outputs are set; call "
             r"output\(\.\.\.\) first")
    with pytest.raises(ValueError, match=match):
        session.load(g)
    with pytest.raises(ValueError, match="cannot save a graph before its outputs are set"):
        g.save(tmp_path / "g.mlirbc")


def test_graph_name_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="Graph name must be a str, got int 123"):
        Graph(123)
    with pytest.raises(ValueError, match=r"Graph name '\\ud800' is not valid unicode"):
        Graph("\ud800")
