"""Custom extensions in the parent process: which ``.mlir`` files, and their text.

``InferenceSession(custom_extensions=...)`` names files and folders; this module finds the
files and reads them, and never parses them (that is the compile worker's job:
``max.compiler.kernels``). It imports no MLIR.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterable
from typing import Any


def find_extensions(custom_extensions: Any, where: str) -> list[pathlib.Path]:
    """The ``.mlir`` files named by ``custom_extensions`` (a path or a list of paths; a
    folder: its ``*.mlir`` files, sorted).

    Raises:
        TypeError: an item is not a path.
        NotImplementedError: a Mojo source or package.
        ValueError: a path that does not exist, is not a ``.mlir`` file, or a folder without
            one.
    """
    if custom_extensions is None:
        return []
    items = ([custom_extensions] if isinstance(custom_extensions, str | os.PathLike)
             or not isinstance(custom_extensions, Iterable) else list(custom_extensions))
    out: list[pathlib.Path] = []
    for item in items:
        if not isinstance(item, str | os.PathLike):
            raise TypeError(f"{where}: custom_extensions must be paths to .mlir files or "
                            f"folders, got {type(item).__name__}")
        path = pathlib.Path(item)
        if path.suffix in (".mojo", ".mojopkg"):
            raise NotImplementedError(f"{where}: {path}: Mojo custom ops are not supported by "
                                      f"this implementation; write the kernel in MLIR (a .mlir "
                                      f"file: README, Custom kernels)")
        if path.is_dir():
            files = sorted(p for p in path.glob("*.mlir") if p.is_file())
            if not files:
                raise ValueError(f"{where}: custom extension folder {path} holds no .mlir file")
            out += files
        elif not path.exists():
            raise ValueError(f"{where}: custom extension {path} not found")
        elif path.suffix != ".mlir":
            raise ValueError(f"{where}: custom extension {path} is not a .mlir file or a folder")
        else:
            out.append(path)
    return out


def read_extensions(paths: Iterable[pathlib.Path]) -> list[tuple[str, str]]:
    """``(path, text)`` of each file (once), read now: only the compile worker parses them.

    Raises:
        ValueError: a file cannot be read or is not UTF-8.
    """
    out = []
    for path in dict.fromkeys(paths):  # a file named twice is one file
        try:
            out.append((str(path), path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read custom extension {path}: {e}") from None
    return out
