"""A Model that is gone releases its code; models of one graph share one mapping.

The finding: every load() mapped another copy of the .so, also on a cache hit and after the
Model was gone (200 loads of distinct graphs kept 43.5 MB).
"""

from __future__ import annotations

import gc

import numpy as np

from max.engine import InferenceSession
from max.runtime import loaded_artifact_count

import graphs
from proc_maps import mapped_models


def _state() -> tuple[int, int]:
    gc.collect()
    return loaded_artifact_count(), mapped_models()


def _works(model, n: int = 3) -> None:
    a = np.arange(3 * n, dtype=np.float32).reshape(n, 3)
    np.testing.assert_array_equal(model.execute(a, a)[0].to_numpy(), a + a)


def test_models_of_one_graph_share_a_mapping(private_cache, tmp_path):
    path = tmp_path / "add.mlir"
    path.write_text(graphs.ADD)
    base = _state()
    first = InferenceSession().load(path)
    second = InferenceSession().load(path)  # a cache hit: the same binary
    assert second._artifact.from_cache
    assert _state() == (base[0] + 1, base[1] + 1)
    del first
    assert _state() == (base[0] + 1, base[1] + 1)
    _works(second)  # never unmapped under a live model
    del second
    assert _state() == base


def test_deleted_models_are_unmapped(private_cache, tmp_path):
    base = _state()
    models = []
    for i, op in enumerate(["add", "sub", "mul", "max", "min", "div"]):
        path = tmp_path / f"{op}.mlir"
        path.write_text(graphs.binary(f"g{i}", op, "f32", '"n", 3'))
        models.append(InferenceSession().load(path))
    assert _state() == (base[0] + 6, base[1] + 6)
    a = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    expect = [a + a, a - a, a * a, np.maximum(a, a), np.minimum(a, a), a / a]
    for model, want in zip(models, expect):
        np.testing.assert_array_equal(model.execute(a, a)[0].to_numpy(), want)
    del models, model
    assert _state() == base
    # Loading again after all were released maps them anew, and they still work.
    again = InferenceSession().load(tmp_path / "add.mlir")
    assert _state() == (base[0] + 1, base[1] + 1)
    np.testing.assert_array_equal(again.execute(a, a)[0].to_numpy(), a + a)
    del again
    assert _state() == base


def test_many_loads_stay_bounded(private_cache, tmp_path):
    """200 loads of a few graphs (hits after the first) keep one mapping per live model."""
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"g{i}.mlir")
        paths[-1].write_text(graphs.binary(f"h{i}", "add", "f32", f'"n", {i + 1}'))
    base = _state()
    for k in range(200):
        model = InferenceSession().load(paths[k % 4])
        if k % 40 == 0:
            n = k % 4 + 1
            a = np.full((2, n), k, np.float32)
            np.testing.assert_array_equal(model.execute(a, a)[0].to_numpy(), a + a)
        del model
        assert loaded_artifact_count() == base[0]  # at once: no reference cycle to wait for
    assert _state() == base
