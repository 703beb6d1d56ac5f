"""``KernelLibrary``: the custom kernel paths of a graph.

Here a kernel library is a list of ``.mlir`` kernel files and folders (README, Custom kernels),
the paths a graph's :func:`~max.graph.ops.custom` ops find their kernels in. A graph's library
holds its ``Graph(custom_extensions=...)`` and ``Graph(kernel_library=...)`` paths;
``InferenceSession.load`` reads them (with the session's own) through
:attr:`Graph.kernel_libraries_paths`. The files are not parsed here: the compile worker parses
them (a bad file may abort MLIR), so a kernel that is missing is reported when the graph is
loaded.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from mlir import ir

from max.compiler.extensions import find_extensions


class KernelLibrary:
    """Manages custom kernel libraries and operations for a graph.

    A kernel library provides the kernels of custom operations: ``.mlir`` files, or folders
    of them (each ``*.mlir`` file). Mojo binary packages (``.mojopkg``) and Mojo sources are
    not supported (``NotImplementedError`` naming the path).

    Args:
        context: The MLIR context of the graph the library serves.
        paths: The kernel library paths to start with.
    """

    def __init__(self, context: ir.Context, paths: Iterable[Path] = ()) -> None:
        if not isinstance(context, ir.Context):
            raise TypeError(f"KernelLibrary: context must be an mlir Context, got "
                            f"{type(context).__name__}")
        self._context = context
        self._paths: list[Path] = []
        self.load_paths(context, paths)

    def add_path(self, path: Path) -> None:
        """Adds a kernel library path to the analysis.

        Args:
            path: The ``Path`` to the kernel library to be added: a ``.mlir`` file or a
                folder holding some. A path already in the library is not added again.

        Raises:
            TypeError: ``path`` is not a path.
            NotImplementedError: A Mojo package or source.
            ValueError: A path that does not exist, is not a ``.mlir`` file, or a folder
                without one.
        """
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"KernelLibrary.add_path: path must be a path to a .mlir file or "
                            f"folder, got {type(path).__name__}")
        path = Path(path)
        # A folder of Mojo sources (no .mlir file) is MAX's other library format.
        if path.is_dir() and not any(path.glob("*.mlir")) and any(path.glob("*.mojo")):
            raise NotImplementedError(
                f"KernelLibrary: {path}: Mojo custom ops are not supported by this "
                f"implementation; write the kernel in MLIR (a .mlir file: README, "
                f"Custom kernels)")
        find_extensions([path], "KernelLibrary")  # raises for a path that holds no kernel
        if path not in self._paths:
            self._paths.append(path)

    def library_paths(self) -> list[Path]:
        """Returns the list of kernel library paths.

        Returns:
            A list of ``Path`` objects representing the currently loaded kernel library
            paths, in the order they were added.
        """
        return list(self._paths)

    def load_paths(self, context: ir.Context, custom_extensions: Iterable[Path]) -> None:
        """Loads custom operations from provided library paths.

        Each path is added as :meth:`add_path` does; the kernel files are read when a
        session loads the graph.

        Args:
            context: The MLIR context for loading MLIR operations: this library's.
            custom_extensions: The file paths to the custom operation libraries.
        """
        if context is not self._context:
            raise ValueError("KernelLibrary.load_paths: context is not the library's context")
        if isinstance(custom_extensions, str | os.PathLike):
            custom_extensions = [custom_extensions]  # type: ignore[list-item]
        for path in custom_extensions:
            self.add_path(path)

    def verify_custom_op(self, custom_op: ir.Operation | ir.OpView) -> None:
        """Verifies that a custom operation is valid within the current context.

        Checks that ``custom_op`` is an ``mo.custom`` op of this library's context and that
        the library has a path to look its kernel up in; whether that kernel exists (and
        takes the op's types) is checked when the graph is compiled.

        Args:
            custom_op: The ``mlir.Operation`` to be verified.

        Raises:
            TypeError: ``custom_op`` is not an ``mo.custom`` operation.
            ValueError: It belongs to another context, or the library has no paths.
        """
        op = getattr(custom_op, "operation", custom_op)
        if not isinstance(op, ir.Operation) or op.name != "mo.custom":
            raise TypeError(f"KernelLibrary.verify_custom_op: expected an mo.custom "
                            f"operation, got {getattr(op, 'name', type(op).__name__)}")
        if op.context is not self._context:
            raise ValueError("KernelLibrary.verify_custom_op: the op belongs to another "
                             "MLIR context")
        symbol = ir.StringAttr(op.attributes["symbol"]).value
        if not self._paths:
            raise ValueError(f"KernelLibrary.verify_custom_op: custom op {symbol!r}: the "
                             f"kernel library has no paths to find its kernel in")

    def __repr__(self) -> str:
        return f"KernelLibrary({[str(p) for p in self._paths]})"
