"""MAX_CPU_THREADS and InferenceSession(num_threads=...): a bad value is a clear ValueError."""

from __future__ import annotations

import numpy as np
import pytest

from max.compiler import driver
from max.compiler.cache import cache_key, threads_from_env
from max.engine import InferenceSession

import graphs


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1.5", "2 threads", "0x2"])
def test_bad_environment_value(monkeypatch, value):
    monkeypatch.setenv("MAX_CPU_THREADS", value)
    message = rf"^MAX_CPU_THREADS must be a positive integer, got '{value}'$"
    with pytest.raises(ValueError, match=message):
        InferenceSession()
    with pytest.raises(ValueError, match=message):
        cache_key(b"graph", "cpu")  # every compile reads it: no silent fallback anywhere
    with pytest.raises(ValueError, match=message):
        driver.compile_graph(graphs.ADD)


@pytest.mark.parametrize("value", [0, -1, 1.5, "2", True, None.__class__])
def test_bad_argument(monkeypatch, value):
    monkeypatch.delenv("MAX_CPU_THREADS", raising=False)
    with pytest.raises(ValueError, match=rf"^num_threads must be a positive integer, got "
                                         rf"{repr(value).replace('(', '.').replace(')', '.')}$"):
        InferenceSession(num_threads=value)


@pytest.mark.parametrize("value, threads", [("", None), ("  ", None), ("1", 1), (" 3 ", 3)])
def test_good_environment_value(monkeypatch, value, threads):
    monkeypatch.setenv("MAX_CPU_THREADS", value)
    assert threads_from_env() == threads
    InferenceSession()


def test_valid_settings_still_run(module_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("MAX_CPU_THREADS", "1")
    path = tmp_path / "add.mlir"
    path.write_text(graphs.ADD)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    for session in (InferenceSession(), InferenceSession(num_threads=2)):
        np.testing.assert_array_equal(session.load(path).execute(a, a)[0].to_numpy(), a + a)
