"""A cache entry is never trusted: tampered metadata is rebuilt, never executed.

The finding: editing an output's dims in meta.json from [4096] to [1] (still valid JSON) was
accepted, and the kernel wrote 4096 floats into a 1-float buffer.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from max.compiler import driver
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType
from max.runtime.artifact import digest

import graphs

N = 4096
ADD_4096 = graphs.binary("add4096", "add", "f32", str(N))
TYPE_4096 = f'!mo.tensor<f32, [{N}], "cpu:0">'
TYPE_1 = '!mo.tensor<f32, [1], "cpu:0">'


def _entry(cache):
    (entry,) = [p for p in cache.iterdir() if not p.name.startswith(".")]
    return entry


def _rehash(entry) -> None:
    """What a careful editor does: make meta.sha256 match the edited meta.json."""
    (entry / "meta.sha256").write_text(digest((entry / "meta.json").read_bytes()) + "\n")


def _edit(entry, fn, rehash: bool = True) -> None:
    meta = json.loads((entry / "meta.json").read_text())
    fn(meta)
    (entry / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    if rehash:
        _rehash(entry)


def _graph_4096() -> Graph:
    t = TensorType(DType.float32, (N,), DeviceRef.CPU())
    return Graph("add4096", lambda a, b: a + b, input_types=[t, t])


def _check(model) -> None:
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal(N, dtype=np.float32) for _ in range(2))
    (out,) = model.execute(a, b)
    np.testing.assert_array_equal(out.to_numpy(), a + b)
    assert model.output_metadata[0].shape == [N]


def _shrink_dims(meta) -> None:  # the finding: dims only, type text left alone
    meta["outputs"][0]["dims"] = [1]


def _shrink_type_and_dims(meta) -> None:  # consistent with itself, not with the graph
    meta["outputs"][0].update(type=TYPE_1, dims=[1])


def _swap_input_dtype(meta) -> None:
    meta["inputs"][1].update(type=TYPE_4096.replace("f32", "f64"), dtype="float64")


def _drop_output(meta) -> None:
    meta["outputs"] = []


def _bad_binary_hash(meta) -> None:
    meta["sha256"] = "0" * 64


def _path_in_binary_name(meta) -> None:
    meta["binary"] = "../../model.so"


def _bool_dim(meta) -> None:
    meta["outputs"][0]["dims"] = [True]


def _more_constants(meta) -> None:
    meta["constants"] = [{"offset": 0, "nbytes": 4, "dims": [1], "dtype": "float32",
                          "element_type": "f32"}]


@pytest.mark.parametrize("load_from", ["path", "graph"])
@pytest.mark.parametrize("edit", [_shrink_dims, _shrink_type_and_dims, _swap_input_dtype,
                                  _drop_output, _bad_binary_hash, _path_in_binary_name,
                                  _bool_dim, _more_constants])
def test_tampered_metadata_is_rebuilt(private_cache, tmp_path, load_from, edit):
    if load_from == "path":
        source = tmp_path / "add4096.mlir"
        source.write_text(ADD_4096)
    else:
        source = _graph_4096()
    _check(InferenceSession().load(source))
    entry = _entry(private_cache)
    _edit(entry, edit)
    before = driver.stats["compiles"]
    _check(InferenceSession().load(source))
    assert driver.stats["compiles"] == before + 1  # rebuilt, never executed
    after = json.loads((_entry(private_cache) / "meta.json").read_text())
    assert after["outputs"][0]["type"] == TYPE_4096
    assert after["outputs"][0]["dims"] == [N]


@pytest.mark.parametrize("damage", ["dims_without_rehash", "hash_edited", "hash_deleted",
                                    "hash_garbage"])
def test_metadata_hash(private_cache, tmp_path, damage):
    source = tmp_path / "add4096.mlir"
    source.write_text(ADD_4096)
    _check(InferenceSession().load(source))
    entry = _entry(private_cache)
    if damage == "dims_without_rehash":
        _edit(entry, _shrink_type_and_dims, rehash=False)
    elif damage == "hash_edited":
        h = (entry / "meta.sha256").read_text()
        (entry / "meta.sha256").write_text(("1" if h[0] != "1" else "2") + h[1:])
    elif damage == "hash_deleted":
        (entry / "meta.sha256").unlink()
    else:
        (entry / "meta.sha256").write_bytes(b"\xff" * 65)
    before = driver.stats["compiles"]
    _check(InferenceSession().load(source))
    assert driver.stats["compiles"] == before + 1


def test_a_whole_forged_entry_for_another_graph_is_rebuilt(private_cache, tmp_path):
    """An entry of another graph (valid, hashed) copied under this graph's key: the types
    of its record are not the graph's, so it is rebuilt."""
    small = tmp_path / "small.mlir"
    small.write_text(graphs.binary("add4096", "add", "f32", "1"))
    big = tmp_path / "big.mlir"
    big.write_text(ADD_4096)
    InferenceSession().load(small)
    small_entry = _entry(private_cache)
    _check(InferenceSession().load(big))
    big_entry = next(p for p in private_cache.iterdir()
                     if not p.name.startswith(".") and p != small_entry)
    for f in big_entry.iterdir():
        f.write_bytes((small_entry / f.name).read_bytes())
    before = driver.stats["compiles"]
    _check(InferenceSession().load(big))
    assert driver.stats["compiles"] == before + 1


def _graph_with_constant(w: np.ndarray) -> Graph:
    from max.graph import ops

    t = TensorType(DType.float32, (N,), DeviceRef.CPU())
    return Graph("addw", lambda x: x + ops.constant(w, DType.float32, DeviceRef.CPU()),
                 input_types=[t])


@pytest.mark.parametrize("damage", ["shrink_constant", "longer_constants_file"])
def test_tampered_constants_are_rebuilt(private_cache, damage):
    w = np.arange(N, dtype=np.float32)
    x = np.ones(N, np.float32)
    model = InferenceSession().load(_graph_with_constant(w))
    np.testing.assert_array_equal(model.execute(x)[0].to_numpy(), x + w)
    entry = _entry(private_cache)
    if damage == "shrink_constant":
        _edit(entry, lambda m: m["constants"][0].update(dims=[1], nbytes=4))
    else:
        blob = (entry / "constants.bin").read_bytes() + bytes(64)
        (entry / "constants.bin").write_bytes(blob)
        _edit(entry, lambda m: m.update(constants_sha256=digest(blob)))
    before = driver.stats["compiles"]
    model = InferenceSession().load(_graph_with_constant(w))
    assert driver.stats["compiles"] == before + 1
    assert model._record.constants[0].dims == (N,)
    np.testing.assert_array_equal(model.execute(x)[0].to_numpy(), x + w)
