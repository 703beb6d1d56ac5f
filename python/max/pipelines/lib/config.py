"""``PipelineConfig``: what a pipeline runs (the model file) and its limits.

MAX's ``PipelineConfig(**kwargs)`` takes its fields and those of its ``MAXModelConfig``
(``model_path``, ``quantization_encoding``, ...) as keyword arguments. Here a model is a local
file: ``model_path`` names a GGUF checkpoint (MAX's Hugging Face repository ids need network
access, which this package never uses). Unknown keywords are refused, so a misspelt option
is an error rather than silently ignored.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class MAXModelConfig:
    """The model part of a :class:`PipelineConfig`.

    Attributes:
        model_path: The model: a local GGUF file.
        quantization_encoding: The weights' encoding (informational here: a GGUF file says
            each tensor's own).
        max_length: Maximum sequence length (default: the model's context length).
    """

    model_path: str = ""
    quantization_encoding: str | None = None
    max_length: int | None = None


_MODEL_FIELDS = {f.name for f in dataclasses.fields(MAXModelConfig)}


class PipelineConfig:
    """Configuration for a pipeline.

    Args:
        model_path: The GGUF file of the model (required).
        max_length: Maximum sequence length of the model (prompt and generated tokens); the
            model's context length if None.
        max_batch_size: Maximum batch size to execute with the model (default 8).
        max_num_steps: Steps run per ``execute`` call (-1: 1).
        max_new_tokens: The default limit of generated tokens per request (-1: up to
            ``max_length``).
        chat_template: A file with a chat template to use instead of the model's.
        quantization_encoding: Informational (GGUF tensors carry their own).

    Raises:
        TypeError: On an unknown keyword.
        ValueError: If ``model_path`` is missing, or a limit is not a positive int.
    """

    _FIELDS = ("max_length", "max_batch_size", "max_num_steps", "max_new_tokens",
               "chat_template")

    def __init__(self, **kwargs: Any) -> None:
        unknown = sorted(k for k in kwargs if k not in _MODEL_FIELDS and k not in self._FIELDS)
        if unknown:
            raise TypeError(f"PipelineConfig: unknown option(s) {', '.join(unknown)} (known: "
                            f"{', '.join(sorted({*_MODEL_FIELDS, *self._FIELDS}))})")
        path = kwargs.get("model_path")
        if not path:
            raise ValueError("PipelineConfig: model_path (a GGUF file) is required")
        self.max_length: int | None = kwargs.get("max_length")
        self.max_batch_size: int | None = kwargs.get("max_batch_size", 8)
        self.max_num_steps: int = kwargs.get("max_num_steps", -1)
        self.max_new_tokens: int = kwargs.get("max_new_tokens", -1)
        template = kwargs.get("chat_template")
        self.chat_template: Path | None = Path(template) if template is not None else None
        for name in ("max_length", "max_batch_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value <= 0):
                raise ValueError(f"PipelineConfig: {name} must be a positive int or None, got "
                                 f"{value!r}")
        self._model_config = MAXModelConfig(
            model_path=os.fspath(path), quantization_encoding=kwargs.get("quantization_encoding"),
            max_length=self.max_length)

    @property
    def model_config(self) -> MAXModelConfig:
        """The model's configuration (``model_path``, ...)."""
        return self._model_config

    @property
    def model_path(self) -> str:
        """The model file."""
        return self._model_config.model_path

    def retrieve_chat_template(self) -> str | None:
        """The chat template file's text, or None to use the model's.

        Raises:
            FileNotFoundError: If the file does not exist.
        """
        if self.chat_template is None:
            return None
        return self.chat_template.read_text()

    def __repr__(self) -> str:
        return (f"PipelineConfig(model_path={self.model_path!r}, max_length={self.max_length}, "
                f"max_batch_size={self.max_batch_size})")
