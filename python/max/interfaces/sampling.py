"""Request-specific sampling parameters: ``SamplingParams``, the user's partial
``SamplingParamsInput`` and a model's ``SamplingParamsGenerationConfigDefaults``."""

from __future__ import annotations

import dataclasses
import logging
import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from max.interfaces.generation import ProcessorInputs

logger = logging.getLogger("max.interfaces")

LogitsProcessor = Callable[["ProcessorInputs"], None]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass
class SamplingParams:
    """Request specific sampling parameters that are only known at run time.

    The constructor validates every field and raises ``ValueError`` (``TypeError`` for a
    value of the wrong Python type) naming the field: ``top_k`` is -1 or at least 1,
    ``top_p`` in (0, 1], ``min_p`` in [0, 1], ``temperature`` >= 0, ``repetition_penalty``
    > 0, ``max_new_tokens`` None or at least 1, ``min_new_tokens`` in [0, max_new_tokens],
    ``seed`` >= 0, and all floats finite.

    Example:
        >>> SamplingParams(temperature=0.7, top_k=50, seed=1).top_p
        1
        >>> SamplingParams(top_p=0.0)
        Traceback (most recent call last):
        ...
        ValueError: SamplingParams: top_p must be in (0, 1], got 0.0
    """

    top_k: int = -1
    """Limits the sampling to the K most probable tokens. This defaults to -1 (to sample all
    tokens), for greedy sampling set to 1."""
    top_p: float = 1
    """Only use the tokens whose cumulative probability is within the top_p threshold. This
    applies to the top_k tokens."""
    min_p: float = 0.0
    """Float that represents the minimum probability for a token to be considered, relative to
    the probability of the most likely token. Must be in [0, 1]. Set to 0 to disable this."""
    temperature: float = 1
    """Controls the randomness of the model's output; higher values produce more diverse
    responses. For greedy sampling, set to temperature to 0."""
    frequency_penalty: float = 0.0
    """The frequency penalty to apply to the model's output: tokens receive a penalty
    proportional to the count of their appearances in the generated text."""
    presence_penalty: float = 0.0
    """The presence penalty to apply to the model's output: tokens that have already appeared
    in the generated text at least once receive a constant penalty."""
    repetition_penalty: float = 1.0
    """Values > 1 penalize tokens that have already appeared in the generated text by
    dividing their logits by the repetition penalty."""
    max_new_tokens: int | None = None
    """The maximum number of new tokens to generate in the response. When None (default),
    the model may generate tokens until it reaches its internal limits or other stopping
    criteria are met."""
    min_new_tokens: int = 0
    """The minimum number of tokens to generate in the response."""
    ignore_eos: bool = False
    """If True, the response will ignore the EOS token, and continue to generate until the
    max tokens or a stop string is hit."""
    stop: list[str] | None = None
    """A list of detokenized sequences that can be used as stop criteria when generating a
    new sequence."""
    stop_token_ids: list[int] | None = None
    """A list of token ids that are used as stopping criteria when generating a new
    sequence."""
    detokenize: bool = True
    """Whether to detokenize the output tokens into text."""
    seed: int = field(default_factory=lambda: secrets.randbits(63))
    """The seed to use for the random number generator. Defaults to a cryptographically
    secure random value."""
    logits_processors: Sequence[LogitsProcessor] | None = None
    """Callables to post-process the model logits."""

    def __post_init__(self) -> None:
        self._validate()

    def _fail(self, message: str) -> ValueError:
        return ValueError(f"SamplingParams: {message}")

    def _validate(self) -> None:
        for name in ("top_p", "min_p", "temperature", "frequency_penalty", "presence_penalty",
                     "repetition_penalty"):
            value = getattr(self, name)
            if not _is_number(value):
                raise TypeError(f"SamplingParams: {name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise self._fail(f"{name} must be finite, got {value}")
        for name in ("top_k", "min_new_tokens", "seed"):
            value = getattr(self, name)
            if not _is_int(value):
                raise TypeError(f"SamplingParams: {name} must be an int, got {value!r}")
        if self.max_new_tokens is not None and not _is_int(self.max_new_tokens):
            raise TypeError("SamplingParams: max_new_tokens must be an int or None, got "
                            f"{self.max_new_tokens!r}")
        if self.top_k < -1 or self.top_k == 0:
            raise self._fail(f"top_k must be -1 (all tokens) or at least 1, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise self._fail(f"top_p must be in (0, 1], got {self.top_p}")
        if not 0 <= self.min_p <= 1:
            raise self._fail(f"min_p must be in [0, 1], got {self.min_p}")
        if self.temperature < 0:
            raise self._fail(f"temperature must be >= 0 (0 means greedy), got "
                             f"{self.temperature}")
        if self.repetition_penalty <= 0:
            raise self._fail(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise self._fail(f"max_new_tokens must be None or at least 1, got "
                             f"{self.max_new_tokens}")
        if self.min_new_tokens < 0:
            raise self._fail(f"min_new_tokens must be >= 0, got {self.min_new_tokens}")
        if self.max_new_tokens is not None and self.min_new_tokens > self.max_new_tokens:
            raise self._fail(f"min_new_tokens ({self.min_new_tokens}) must not exceed "
                             f"max_new_tokens ({self.max_new_tokens})")
        if self.seed < 0:
            raise self._fail(f"seed must be >= 0, got {self.seed}")
        if self.stop is not None and (not isinstance(self.stop, list)
                                      or not all(isinstance(s, str) for s in self.stop)):
            raise TypeError(f"SamplingParams: stop must be a list of str or None, got "
                            f"{self.stop!r}")
        if self.stop_token_ids is not None and (
                not isinstance(self.stop_token_ids, list)
                or not all(_is_int(t) for t in self.stop_token_ids)):
            raise TypeError(f"SamplingParams: stop_token_ids must be a list of int or None, "
                            f"got {self.stop_token_ids!r}")

    @property
    def is_greedy(self) -> bool:
        """Whether these parameters select the most likely token (temperature 0 or top_k 1)."""
        return self.temperature == 0 or self.top_k == 1

    @classmethod
    def from_input_and_generation_config(
        cls, input_params: SamplingParamsInput,
        sampling_params_defaults: SamplingParamsGenerationConfigDefaults,
    ) -> SamplingParams:
        """Create SamplingParams with defaults from HuggingFace's GenerationConfig.

        Values come from, in priority order (highest to lowest): 1. user-provided values in
        ``input_params`` (non-None); 2. the model's GenerationConfig values (only if
        explicitly set in the model's config); 3. SamplingParams class defaults. A model whose
        GenerationConfig says ``do_sample=False`` defaults to greedy sampling (``top_k=1``).

        Args:
            input_params: Dataclass containing user-specified parameter values. Values of
                None will be replaced with model defaults or class defaults.
            sampling_params_defaults: Default sampling parameters extracted from the
                model's GenerationConfig.

        Returns:
            A new SamplingParams instance with model-aware defaults.
        """
        values: dict[str, Any] = dict(sampling_params_defaults.values_to_update)
        if sampling_params_defaults.do_sample is False:
            values["top_k"] = 1
        values.update({f.name: getattr(input_params, f.name) for f in fields(input_params)
                       if getattr(input_params, f.name) is not None})
        return cls(**values)

    def log_sampling_info(self) -> None:
        """Log comprehensive sampling parameters information (one line per parameter)."""
        width = max(len(f.name) for f in fields(self))
        lines = ["Sampling parameters", "-" * 40]
        lines += [f"    {f.name:<{width}} : {getattr(self, f.name)}" for f in fields(self)]
        logger.info("\n".join(lines))


@dataclass
class SamplingParamsInput:
    """Input dataclass for creating SamplingParams instances.

    All fields are optional, allowing partial specification with None values indicating "use
    default".
    """

    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    temperature: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    repetition_penalty: float | None = None
    max_new_tokens: int | None = None
    min_new_tokens: int | None = None
    ignore_eos: bool | None = None
    stop: list[str] | None = None
    stop_token_ids: list[int] | None = None
    detokenize: bool | None = None
    seed: int | None = None
    logits_processors: Sequence[LogitsProcessor] | None = None


@dataclass
class SamplingParamsGenerationConfigDefaults:
    """Default sampling parameter values extracted from a model's GenerationConfig.

    All fields default to None, indicating that the model's GenerationConfig does not
    explicitly set that parameter; SamplingParams then falls back to its own class defaults.

    Example:
        >>> SamplingParamsGenerationConfigDefaults(temperature=0.7, top_k=50).values_to_update
        {'temperature': 0.7, 'top_k': 50}
    """

    temperature: float | None = None
    """Temperature value from the model's GenerationConfig, if explicitly set."""
    top_p: float | None = None
    """Top-p (nucleus sampling) value from the model's GenerationConfig, if explicitly set."""
    top_k: int | None = None
    """Top-k sampling value from the model's GenerationConfig, if explicitly set."""
    repetition_penalty: float | None = None
    """Repetition penalty value from the model's GenerationConfig, if explicitly set."""
    max_new_tokens: int | None = None
    """Maximum number of new tokens from the model's GenerationConfig, if explicitly set."""
    min_new_tokens: int | None = None
    """Minimum number of new tokens from the model's GenerationConfig, if explicitly set."""
    do_sample: bool | None = None
    """If False, use greedy sampling."""

    @property
    def values_to_update(self) -> dict[str, float | int]:
        """Extract non-None field values (other than ``do_sample``) as a dictionary."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "do_sample" and getattr(self, f.name) is not None}
