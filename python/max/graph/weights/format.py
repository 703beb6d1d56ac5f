"""Weight file formats: ``WeightsFormat``, ``weights_format`` and ``load_weights``."""

from __future__ import annotations

import enum
from pathlib import Path

from max.graph.weights.load_gguf import GGUFWeights
from max.graph.weights.load_pytorch import PytorchWeights
from max.graph.weights.load_safetensors import SafetensorWeights
from max.graph.weights.weights import Weights


class WeightsFormat(str, enum.Enum):
    """Enumeration of supported weight file formats.

    MAX supports multiple weight formats to accommodate different model sources and use
    cases.
    """

    gguf = "gguf"
    """GGUF (GPT-Generated Unified Format) for quantized models. File extension: ``.gguf``."""
    safetensors = "safetensors"
    """Safetensors format for secure and efficient tensor storage. File extension:
    ``.safetensors``."""
    pytorch = "pytorch"
    """PyTorch checkpoint format for model weights. File extension: ``.bin`` | ``.pt`` |
    ``.pth``."""


_SUFFIXES = {
    ".gguf": WeightsFormat.gguf,
    ".safetensors": WeightsFormat.safetensors,
    ".bin": WeightsFormat.pytorch,
    ".pt": WeightsFormat.pytorch,
    ".pth": WeightsFormat.pytorch,
}


def weights_format(weight_paths: list[Path]) -> WeightsFormat:
    """Detect the format of weight files based on their extensions.

    This function examines the file extensions of all provided paths to determine the
    weight format. All files must have the same format; mixed formats are not supported.

    Example:
        >>> from pathlib import Path
        >>> weights_format([Path("model-00001.safetensors"), Path("model-00002.safetensors")])
        <WeightsFormat.safetensors: 'safetensors'>

    Args:
        weight_paths: List of file paths containing model weights. All files must have the
            same extension/format.

    Returns:
        The detected WeightsFormat enum value.

    Raises:
        ValueError: If weight_paths is empty, contains mixed formats, or has unsupported
            file extensions.
    """
    if not weight_paths:
        raise ValueError("weights_format: no weight paths given")
    formats = set()
    for path in weight_paths:
        suffix = Path(path).suffix.lower()
        if suffix not in _SUFFIXES:
            raise ValueError(f"weights_format: {path}: unknown weight file extension "
                             f"{suffix or '(none)'!r}; supported: {', '.join(_SUFFIXES)}")
        formats.add(_SUFFIXES[suffix])
    if len(formats) > 1:
        raise ValueError("weights_format: mixed weight formats are not supported, got "
                         f"{', '.join(sorted(f.value for f in formats))}")
    return formats.pop()


def load_weights(paths: list[Path]) -> Weights:
    """Loads neural network weights from checkpoint files.

    Automatically detects checkpoint formats based on file extensions and returns the
    appropriate Weights implementation: ``.safetensors`` (one file or all shards), ``.bin``
    / ``.pt`` / ``.pth`` (PyTorch) and ``.gguf`` (one file each).

    Args:
        paths: List of pathlib.Path objects pointing to checkpoint files. For multi-file
            checkpoints (e.g., sharded Safetensors), provide all file paths in the list. For
            single-file checkpoints, provide a list with one path.

    Raises:
        ValueError: If the format is unknown or mixed, several files are given for a format
            that takes one, or a file is invalid.
        FileNotFoundError: If a file does not exist.
    """
    paths = [Path(p) for p in paths]
    fmt = weights_format(paths)
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"load_weights: weight file not found: {path}")
    if fmt is WeightsFormat.safetensors:
        return SafetensorWeights(paths)
    if len(paths) != 1:
        raise ValueError(f"load_weights: {fmt.value} checkpoints are one file, got "
                         f"{len(paths)}")
    if fmt is WeightsFormat.gguf:
        return GGUFWeights(paths[0])
    return PytorchWeights(paths[0])
