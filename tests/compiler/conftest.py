"""Fixtures shared by the compiler tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def schedule_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    """A schedule failure raises (``MAX_SCHEDULE_DEBUG``) instead of silently compiling plain
    loops. Schedule tests use it for every test: ``pytestmark = pytest.mark.usefixtures(...)``."""
    monkeypatch.setenv("MAX_SCHEDULE_DEBUG", "1")
