"""Universal interfaces between the parts of a MAX pipeline: requests, sampling parameters,
generation outputs and statuses (``max.interfaces`` in the reference). Text generation only:
no audio, vision, LoRA, queues or msgpack."""

from __future__ import annotations

from max.interfaces.generation import (
    LogProbabilities,
    PipelineInputs,
    PipelineOutput,
    ProcessorInputs,
    SchedulerResult,
    TextGenerationInputs,
    TextGenerationOutput,
)
from max.interfaces.pipeline import (
    BaseContext,
    Pipeline,
    PipelinesFactory,
    PipelineTokenizer,
    TextGenerationContext,
)
from max.interfaces.request import (
    Request,
    TextGenerationRequest,
    TextGenerationRequestFunction,
    TextGenerationRequestMessage,
    TextGenerationRequestTool,
    TextGenerationResponseFormat,
)
from max.interfaces.sampling import (
    SamplingParams,
    SamplingParamsGenerationConfigDefaults,
    SamplingParamsInput,
)
from max.interfaces.status import BatchType, GenerationStatus, PipelineTask, RequestID

__all__ = [
    "BaseContext",
    "BatchType",
    "GenerationStatus",
    "LogProbabilities",
    "Pipeline",
    "PipelineInputs",
    "PipelineOutput",
    "PipelineTask",
    "PipelineTokenizer",
    "PipelinesFactory",
    "ProcessorInputs",
    "Request",
    "RequestID",
    "SamplingParams",
    "SamplingParamsGenerationConfigDefaults",
    "SamplingParamsInput",
    "SchedulerResult",
    "TextGenerationContext",
    "TextGenerationInputs",
    "TextGenerationOutput",
    "TextGenerationRequest",
    "TextGenerationRequestFunction",
    "TextGenerationRequestMessage",
    "TextGenerationRequestTool",
    "TextGenerationResponseFormat",
]
