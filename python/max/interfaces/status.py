"""Identifiers and enums shared by every part of a pipeline: ``RequestID``,
``GenerationStatus``, ``PipelineTask`` and ``BatchType``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


@dataclass(frozen=True)
class RequestID:
    """A unique identifier for a request within the MAX API.

    This class wraps a string value to provide a distinct type with stronger type safety than
    a simple alias. It ensures that RequestIDs must be explicitly constructed and cannot be
    accidentally interchanged with regular strings. When called without arguments,
    automatically generates a new UUID4-based ID.

    Example:
        >>> RequestID("abc").value
        'abc'
        >>> RequestID() != RequestID()
        True
    """

    value: str = field(default_factory=lambda: str(uuid.uuid4()))

    def __post_init__(self) -> None:
        if not isinstance(self.value, str):
            raise TypeError(f"RequestID: value must be a str, got {type(self.value).__name__}")

    def __str__(self) -> str:
        return self.value


class GenerationStatus(str, Enum):
    """Enum representing the status of a generation process in the MAX API."""

    ACTIVE = "active"
    """The generation process is ongoing."""
    END_OF_SEQUENCE = "end_of_sequence"
    """The generation process has reached the end of the sequence."""
    MAXIMUM_LENGTH = "maximum_length"
    """The generation process has reached the maximum allowed length."""
    CANCELLED = "cancelled"
    """The generation process has been cancelled by the user."""

    @property
    def is_done(self) -> bool:
        """Returns True if the generation process is complete (not ACTIVE)."""
        return self is not GenerationStatus.ACTIVE


class BatchType(str, Enum):
    """Type of batch."""

    CE = "CE"
    """Context encoding batch."""
    TG = "TG"
    """Token generation batch."""


class PipelineTask(str, Enum):
    """Enum representing the types of pipeline tasks supported."""

    TEXT_GENERATION = "text_generation"
    """Task for generating text."""
    EMBEDDINGS_GENERATION = "embeddings_generation"
    """Task for generating embeddings."""
    AUDIO_GENERATION = "audio_generation"
    """Task for generating audio."""
    SPEECH_TOKEN_GENERATION = "speech_token_generation"
    """Task for generating speech tokens."""

    @property
    def output_type(self) -> Any:
        """The output type for the pipeline task: ``dict[RequestID, SchedulerResult[X]]``
        with ``X`` the task's output class (``Any`` for tasks this package does not model)."""
        from max.interfaces.generation import SchedulerResult, TextGenerationOutput

        item: Any = TextGenerationOutput if self is PipelineTask.TEXT_GENERATION else Any
        return dict[RequestID, SchedulerResult[item]]  # type: ignore[valid-type]
