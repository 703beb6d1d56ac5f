"""Fixtures: a private compile cache per test module, a session, graphs written to files."""

from __future__ import annotations

from pathlib import Path

import pytest

from max.engine import InferenceSession


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory):
    """One compile cache for a test module (so each graph compiles once per module)."""
    path = tmp_path_factory.mktemp("max-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MAX_CACHE_DIR", str(path))
        yield path


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """A fresh, empty compile cache for one test."""
    path = tmp_path / "cache"
    monkeypatch.setenv("MAX_CACHE_DIR", str(path))
    return path


@pytest.fixture(scope="module")
def session():
    return InferenceSession()


@pytest.fixture(scope="module")
def load(module_cache, session, tmp_path_factory):
    """load(mlir_text) -> Model, through a .mlir file (cached per text)."""
    folder = tmp_path_factory.mktemp("graphs")
    models = {}

    def _load(text: str):
        if text not in models:
            path = Path(folder) / f"g{len(models)}.mlir"
            path.write_text(text)
            models[text] = session.load(path)
        return models[text]

    return _load
