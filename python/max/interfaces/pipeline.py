"""The contracts between a server, a scheduler and a pipeline: ``Pipeline``,
``PipelineTokenizer`` and the request contexts ``BaseContext`` and
``TextGenerationContext``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt

from max.interfaces.generation import LogProbabilities, TextGenerationOutput
from max.interfaces.sampling import SamplingParams
from max.interfaces.status import GenerationStatus, RequestID

PipelineInputsType = TypeVar("PipelineInputsType", contravariant=True)
PipelineOutputType = TypeVar("PipelineOutputType", covariant=True)
TokenizerEncoded = TypeVar("TokenizerEncoded")
UnboundContextType = TypeVar("UnboundContextType")
RequestType = TypeVar("RequestType", contravariant=True)


class Pipeline(ABC, Generic[PipelineInputsType, PipelineOutputType]):
    """Abstract base class for pipeline operations: ``execute`` turns inputs into a
    ``dict[RequestID, output]``; ``release`` frees what a finished request held."""

    @abstractmethod
    def execute(self, inputs: PipelineInputsType) -> dict[RequestID, PipelineOutputType]:
        """Execute the pipeline operation with the given inputs.

        Args:
            inputs: The input data for the pipeline operation.

        Returns:
            The results of the pipeline operation, as a dictionary mapping RequestID to
            PipelineOutputType.
        """

    @abstractmethod
    def release(self, request_id: RequestID) -> None:
        """Release any resources or state associated with a specific request.

        Args:
            request_id: The unique identifier of the request to release resources for.
        """


PipelinesFactory = Callable[[], Pipeline[Any, Any]]
"""Type alias for factory functions that create pipeline instances."""


@runtime_checkable
class PipelineTokenizer(Protocol[UnboundContextType, TokenizerEncoded, RequestType]):
    """Interface for LLM tokenizers."""

    @property
    def eos(self) -> int:
        """The end of sequence token for this tokenizer."""
        ...

    @property
    def expects_content_wrapping(self) -> bool:
        """If true, this tokenizer expects messages to have a ``content`` property."""
        ...

    async def new_context(self, request: RequestType) -> UnboundContextType:
        """Creates a new context from a request object."""
        ...

    async def encode(self, prompt: str, add_special_tokens: bool) -> TokenizerEncoded:
        """Encodes text prompts as tokens.

        Raises:
            ValueError: If the prompt exceeds the configured maximum length.
        """
        ...

    async def decode(self, encoded: TokenizerEncoded, **kwargs: Any) -> str:
        """Decodes response tokens to text."""
        ...


@runtime_checkable
class BaseContext(Protocol):
    """Core interface for request lifecycle management across all of MAX."""

    @property
    def request_id(self) -> RequestID:
        """Unique identifier for the request."""
        ...

    @property
    def status(self) -> GenerationStatus:
        """Current generation status of the request."""
        ...

    @property
    def is_done(self) -> bool:
        """Whether the request has completed generation."""
        ...


@runtime_checkable
class TextGenerationContext(BaseContext, Protocol):
    """Protocol defining the interface for text generation contexts.

    The context keeps a token array laid out as ``[completed | next_tokens | preallocated]``
    with ``start_idx`` at the start of the completed tokens still to be cached, ``active_idx``
    at the start of ``next_tokens`` and ``end_idx`` one past the last token.
    ``max.pipelines.core.TextContext`` implements it.
    """

    @property
    def tokens(self) -> npt.NDArray[np.integer[Any]]: ...
    @property
    def all_tokens(self) -> npt.NDArray[np.integer[Any]]: ...
    @property
    def prompt_tokens(self) -> npt.NDArray[np.integer[Any]]: ...
    @property
    def generated_tokens(self) -> npt.NDArray[np.integer[Any]]: ...
    @property
    def next_tokens(self) -> npt.NDArray[np.integer[Any]]: ...
    @property
    def start_idx(self) -> int: ...
    @property
    def active_idx(self) -> int: ...
    @property
    def end_idx(self) -> int: ...
    @property
    def active_length(self) -> int: ...
    @property
    def current_length(self) -> int: ...
    @property
    def max_length(self) -> int | None: ...
    @property
    def min_tokens(self) -> int: ...
    @property
    def eos_token_ids(self) -> set[int]: ...
    @property
    def log_probabilities(self) -> int: ...
    @property
    def log_probabilities_echo(self) -> bool: ...
    @property
    def json_schema(self) -> str | None: ...
    @property
    def is_initial_prompt(self) -> bool: ...
    @property
    def needs_ce(self) -> bool: ...
    @property
    def sampling_params(self) -> SamplingParams: ...
    @property
    def matcher(self) -> Any | None: ...

    def set_matcher(self, matcher: Any) -> None: ...
    def get_last_generated_token(self) -> int: ...
    def get_min_token_logit_mask(self, num_steps: int) -> list[npt.NDArray[np.int32]]: ...
    def bump_token_indices(self, start_idx: int = 0, active_idx: int = 0,
                           end_idx: int = 0) -> None: ...
    def set_token_indices(self, start_idx: int | None = None, active_idx: int | None = None,
                          end_idx: int | None = None) -> None: ...
    def compute_num_available_steps(self, max_seq_len: int) -> int: ...
    def update(self, new_token: int,
               log_probabilities: LogProbabilities | None = None) -> None: ...
    def jump_ahead(self, new_token: int) -> None: ...
    def reset(self) -> None: ...
    def to_generation_output(self) -> TextGenerationOutput: ...
