"""What a pipeline takes and returns: ``PipelineInputs``/``TextGenerationInputs``,
``PipelineOutput``/``TextGenerationOutput``, ``LogProbabilities``, ``SchedulerResult`` and the
logits processors' ``ProcessorInputs``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from max.interfaces.status import BatchType, GenerationStatus, RequestID

if TYPE_CHECKING:
    from max.interfaces.pipeline import TextGenerationContext

TextGenerationContextType = TypeVar("TextGenerationContextType")
PipelineOutputType = TypeVar("PipelineOutputType")


@dataclass
class LogProbabilities:
    """Log probabilities for an individual output token (data only, for transfer)."""

    token_log_probabilities: list[float]
    """Probabilities of each token."""
    top_log_probabilities: list[dict[int, float]]
    """Top tokens and their corresponding probabilities."""


class PipelineInputs:
    """Base class representing inputs to a pipeline operation (a marker interface)."""


@runtime_checkable
class PipelineOutput(Protocol):
    """Protocol representing the output of a pipeline operation."""

    @property
    def is_done(self) -> bool:
        """Indicates whether the pipeline operation has completed."""
        ...


@dataclass
class TextGenerationOutput:
    """Represents the output of a text generation operation, combining token IDs, final
    generation status, request ID, and optional log probabilities for each token."""

    request_id: RequestID
    """The unique identifier for the generation request."""
    tokens: list[int]
    """List of generated token IDs."""
    final_status: GenerationStatus
    """The final status of the generation process."""
    log_probabilities: list[LogProbabilities] | None = None
    """Optional list of log probabilities for each token."""

    @property
    def is_done(self) -> bool:
        """Indicates whether the text generation process is complete."""
        return self.final_status.is_done


@dataclass
class TextGenerationInputs(PipelineInputs, Generic[TextGenerationContextType]):
    """Input parameters for text generation pipeline operations: the batch of contexts and
    the number of steps to run."""

    batches: list[dict[RequestID, TextGenerationContextType]]
    """Variable list of batches, each mapping request IDs to context objects (one batch per
    device under data parallelism)."""
    num_steps: int
    """Number of steps to run for."""
    input_tokens: int = -1
    """Number of input tokens."""
    batch_type: BatchType = BatchType.TG
    """Type of batch."""

    def __post_init__(self) -> None:
        if not isinstance(self.num_steps, int) or self.num_steps < 1:
            raise ValueError(f"TextGenerationInputs: num_steps must be a positive int, got "
                             f"{self.num_steps!r}")

    @property
    def batch(self) -> dict[RequestID, TextGenerationContextType]:
        """Returns merged batches."""
        merged: dict[RequestID, TextGenerationContextType] = {}
        for batch in self.batches:
            merged.update(batch)
        return merged

    @property
    def batch_echo(self) -> list[bool]:
        """List indicating whether echo is enabled for each context in the batch."""
        return [bool(getattr(c, "log_probabilities_echo", False)) for c in self.batch.values()]

    @property
    def batch_top_log_probs(self) -> list[int]:
        """List of requested top log probabilities per context in the batch."""
        return [int(getattr(c, "log_probabilities", 0)) for c in self.batch.values()]

    @property
    def enable_echo(self) -> bool:
        """Return True if any context in the batch has echo enabled."""
        return any(self.batch_echo)

    @property
    def enable_log_probs(self) -> bool:
        """Return True if any context in the batch requests log probabilities."""
        return any(n > 0 for n in self.batch_top_log_probs)


@dataclass
class SchedulerResult(Generic[PipelineOutputType]):
    """The result of a scheduler operation for a specific pipeline execution."""

    is_done: bool
    """The current status of the pipeline operation from the scheduler's perspective."""
    result: PipelineOutputType | None
    """The pipeline output data, if any (None for cancelled operations)."""

    @classmethod
    def cancelled(cls) -> SchedulerResult[Any]:
        """Create a SchedulerResult representing a cancelled pipeline operation."""
        return cls(is_done=True, result=None)

    @classmethod
    def create(cls, result: PipelineOutputType) -> SchedulerResult[PipelineOutputType]:
        """Create a SchedulerResult representing a pipeline operation with some result."""
        return cls(is_done=bool(getattr(result, "is_done")), result=result)


@dataclass
class ProcessorInputs:
    """The arguments of a logits processor: the model logits and the request's context."""

    logits: Any
    context: TextGenerationContext
