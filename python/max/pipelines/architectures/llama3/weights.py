"""Reading a Llama GGUF checkpoint: its config, each weight's encoding, and the weights.

Quantized weights stay quantized: they are the file's ``uint8`` blocks, memory-mapped
(``max.graph.weights.GGUFWeights``, which checks the header's counts against the file size),
multiplied by ``qmatmul`` and gathered from by the embedding without ever being expanded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from max.graph.quantization import QuantizationEncoding
from max.pipelines.architectures.llama3.config import Llama3Config


@dataclass
class LlamaCheckpoint:
    """A Llama GGUF file, read and checked.

    Attributes:
        path: The file.
        config: The sizes, from the metadata.
        encodings: Each weight's quantization encoding (None: a float32 weight), by GGUF name.
        state: Each weight's data by GGUF name: read-only views of the mapped file.
        reader: The ``gguf.GGUFReader`` (its metadata holds the tokenizer).
    """

    path: Path
    config: Llama3Config
    encodings: dict[str, QuantizationEncoding | None]
    state: dict[str, np.ndarray]
    reader: Any


def read_checkpoint(path: str | os.PathLike[str]) -> LlamaCheckpoint:
    """Opens a Llama GGUF file.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it is not a valid GGUF file, is truncated, holds another architecture,
            or its metadata is inconsistent; or a weight has an unsupported GGML type.
    """
    from max.graph.weights import GGUFWeights
    from max.graph.weights.load_gguf import open_gguf

    path = Path(path)
    reader = open_gguf(path)  # checked; shared with the tokenizer's reading of the same file
    weights = GGUFWeights(reader)
    config = Llama3Config.from_gguf(reader, str(path))
    encodings: dict[str, QuantizationEncoding | None] = {}
    state: dict[str, np.ndarray] = {}
    for name, weight in weights.items():
        data = weight.data()
        if data.quantization_encoding is None and data.dtype.name != "float32":
            raise ValueError(f"{path}: weight {name!r} has dtype {data.dtype.name}; only "
                             "float32 and the GGUF block encodings are supported")
        encodings[name] = data.quantization_encoding
        state[name] = np.asarray(data.data)
    return LlamaCheckpoint(path, config, encodings, state, reader)
