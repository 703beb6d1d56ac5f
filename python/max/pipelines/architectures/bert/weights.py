"""The weights of a BERT encoder: their checkpoint names and shapes, and reading them.

Names are the Hugging Face ``BertModel`` state-dict names (``embeddings.word_embeddings.weight``,
``encoder.layer.0.attention.self.query.weight``, ...): the graph's weights carry the same names.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np

from max.pipelines.architectures.bert.config import BertConfig


def weight_shapes(config: BertConfig) -> dict[str, tuple[int, ...]]:
    """Every weight the encoder reads, by checkpoint name, with its shape (all float32)."""
    h, ffn = config.hidden_size, config.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (config.vocab_size, h),
        "embeddings.position_embeddings.weight": (config.max_position_embeddings, h),
        "embeddings.token_type_embeddings.weight": (config.type_vocab_size, h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    for i in range(config.num_hidden_layers):
        p = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            shapes[f"{p}attention.self.{name}.weight"] = (h, h)
            shapes[f"{p}attention.self.{name}.bias"] = (h,)
        shapes[f"{p}attention.output.dense.weight"] = (h, h)
        shapes[f"{p}attention.output.dense.bias"] = (h,)
        shapes[f"{p}attention.output.LayerNorm.weight"] = (h,)
        shapes[f"{p}attention.output.LayerNorm.bias"] = (h,)
        shapes[f"{p}intermediate.dense.weight"] = (ffn, h)
        shapes[f"{p}intermediate.dense.bias"] = (ffn,)
        shapes[f"{p}output.dense.weight"] = (h, ffn)
        shapes[f"{p}output.dense.bias"] = (h,)
        shapes[f"{p}output.LayerNorm.weight"] = (h,)
        shapes[f"{p}output.LayerNorm.bias"] = (h,)
    return shapes


def _load_state(path: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file, by name: read-only views of the memory-mapped file
    (``max.graph.weights.SafetensorWeights``, which validates the header: offsets inside the
    file, no overlaps, sizes matching dtypes and shapes), never copies.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it is not a valid safetensors file (truncated, bad header).
    """
    from max.graph.weights import SafetensorWeights

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    weights = SafetensorWeights([path])
    return {name: np.asarray(w.raw_tensor()) for name, w in weights.items()}


def load_state(path: str | Path, config: BertConfig) -> dict[str, np.ndarray]:
    """The encoder's weights from a safetensors checkpoint, checked against ``config``: a
    ``weights_registry`` for :func:`~max.pipelines.architectures.bert.build_graph`'s graph.

    Args:
        path: The ``.safetensors`` file.
        config: The encoder's sizes.

    Raises:
        ValueError: If the file is invalid, a weight is missing (the closest names in the
            file are suggested), or a weight has another shape or dtype than ``config`` says.
    """
    state = _load_state(path)
    out: dict[str, np.ndarray] = {}
    for name, shape in weight_shapes(config).items():
        array = state.get(name)
        if array is None:
            close = difflib.get_close_matches(name, list(state), n=3, cutoff=0.6)
            hint = f"; closest names in the file: {', '.join(close)}" if close else ""
            raise ValueError(f"checkpoint {path}: weight {name!r} is missing{hint}")
        if array.dtype != np.float32:
            raise ValueError(f"checkpoint {path}: weight {name!r} has dtype {array.dtype}, "
                             "expected float32")
        if tuple(array.shape) != shape:
            raise ValueError(f"checkpoint {path}: weight {name!r} has shape {list(array.shape)}, "
                             f"expected {list(shape)} (config.json)")
        out[name] = array  # file entries the encoder does not read (position_ids) are left
    return out
