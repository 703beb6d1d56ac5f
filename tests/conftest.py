"""Shared test setup: a hypothesis profile (derandomised under CI) and a private compile cache."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", deadline=None, derandomize=True, max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=60)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# Compiles verify the module after every upstream pass, as max-opt does: a pass that leaves
# invalid IR fails the test that reached it, not some later pass (the default skips it for time).
os.environ.setdefault("MAX_VERIFY_EACH", "1")


@pytest.fixture(scope="session", autouse=True)
def _private_compile_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each test session compiles into its own cache unless MAX_CACHE_DIR is set."""
    if "MAX_CACHE_DIR" not in os.environ:
        os.environ["MAX_CACHE_DIR"] = str(tmp_path_factory.mktemp("max-cache"))


@pytest.fixture(scope="module")
def no_profile_table_at_exit():
    """Loading a model profiled by ``MAX_PROFILE_KERNELS`` arranges its table on stderr at
    exit: not at pytest's exit."""
    yield
    import atexit

    from max.engine import _profiling

    atexit.unregister(_profiling._at_exit)
    _profiling._registered.clear()
