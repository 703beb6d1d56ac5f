"""Fixtures for the max.nn tests: one inference session per test module."""

from __future__ import annotations

import pytest
import torch

from max.engine import InferenceSession


@pytest.fixture(scope="module")
def session() -> InferenceSession:
    return InferenceSession()


@pytest.fixture(autouse=True)
def _torch_seed() -> None:
    torch.manual_seed(0)
