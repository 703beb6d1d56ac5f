"""Loading a GPU vendor's Python library lazily, quietly, and only if it works here."""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
from types import ModuleType
from typing import Protocol

from ._stats import GPUStats

logger = logging.getLogger("max.diagnostics.gpu")

# What importing a vendor library raises on a machine without its native part: amdsmi looks
# its shared library up in a dict at import time (KeyError) after printing a hint to stdout.
_IMPORT_ERRORS = (ImportError, OSError, RuntimeError, KeyError)


class Backend(Protocol):
    """One vendor's initialised library and the devices it found."""

    def get_stats(self) -> dict[str, GPUStats]:
        """Stats of each device that answered, keyed by its identifier (``nv0``, ``amd1``)."""
        ...

    def close(self) -> None:
        """Shut the vendor library down; never raises."""
        ...


def import_vendor(name: str) -> ModuleType | None:
    """Import the vendor library `name`, or return ``None`` if it is absent or cannot load.

    Whatever the library prints while loading (amdsmi prints install hints) is discarded.
    """
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return importlib.import_module(name)
    except _IMPORT_ERRORS as error:
        logger.debug("GPU vendor library %s is unavailable: %r", name, error)
        return None
