"""Requests: the generic ``Request`` and the text generation request with its messages,
tools and response format."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from max.interfaces.sampling import SamplingParams
from max.interfaces.status import RequestID


@dataclass(frozen=True)
class Request:
    """Base class representing a generic request within the MAX API, with its unique
    identifier."""

    request_id: RequestID


class TextGenerationRequestMessage(TypedDict):
    """One turn of a chat: who speaks and what they say."""

    role: Literal["system", "user", "assistant", "tool", "function"]
    """The role of the message sender."""
    content: str | list[dict[str, Any]]
    """Content can be a simple string or a list of message parts of different modalities."""


class TextGenerationRequestFunction(TypedDict):
    """Represents a function definition for a text generation request."""

    name: str
    description: str | None
    parameters: dict[str, Any]


class TextGenerationRequestTool(TypedDict):
    """Represents a tool definition for a text generation request."""

    type: str
    function: TextGenerationRequestFunction


class TextGenerationResponseFormat(TypedDict):
    """Represents the response format specification for a text generation request."""

    type: str
    json_schema: dict[str, Any]


@dataclass(frozen=True)
class TextGenerationRequest(Request):
    """A text generation request: a prompt (text or token ids) or chat messages, with its
    sampling parameters.

    Raises:
        ValueError: If neither ``prompt`` nor ``messages`` is given, or both are, or
            ``logprobs`` is negative.
    """

    model_name: str
    """The name of the model to be used for generating tokens."""
    prompt: str | Sequence[int] | None = None
    """The prompt to be processed by the model: a string or a sequence of token IDs."""
    messages: list[TextGenerationRequestMessage] | None = None
    """A list of messages for chat-based interactions."""
    images: list[bytes] | None = None
    """A list of image byte arrays (multimodal inputs)."""
    tools: list[TextGenerationRequestTool] | None = None
    """A list of tools that can be invoked during the generation process."""
    response_format: TextGenerationResponseFormat | None = None
    """Specifies the desired format for the model's output (structured generation)."""
    timestamp_ns: int = 0
    """The time (in nanoseconds) when the request was received by the server."""
    request_path: str = "/"
    """The endpoint path for the request."""
    logprobs: int = 0
    """The number of top log probabilities to return for each generated token (0: none)."""
    echo: bool = False
    """If set to True, the response will include the original prompt along with the
    generated output."""
    stop: str | list[str] | None = None
    """Optional list of stop expressions."""
    chat_template_options: dict[str, Any] | None = None
    """Optional dictionary of options to pass when applying the chat template."""
    sampling_params: SamplingParams = field(default_factory=SamplingParams)
    """Token sampling configuration parameters for the request."""
    target_endpoint: str | None = None
    """Optional target endpoint identifier for routing the request."""

    def __post_init__(self) -> None:
        if not isinstance(self.request_id, RequestID):
            raise TypeError(f"TextGenerationRequest: request_id must be a RequestID, got "
                            f"{type(self.request_id).__name__}")
        if self.prompt is None and self.messages is None:
            raise ValueError("TextGenerationRequest: one of prompt or messages must be given")
        if self.prompt is not None and self.messages is not None:
            raise ValueError("TextGenerationRequest: give prompt or messages, not both")
        if self.logprobs < 0:
            raise ValueError(f"TextGenerationRequest: logprobs must be >= 0, got "
                             f"{self.logprobs}")
