"""``TextContext``: the state of one text generation request (``max.pipelines.core``), the
concrete ``max.interfaces.TextGenerationContext``.

The token array is laid out as ``[completed | next_tokens | preallocated]``:

- ``tokens[:start_idx]`` have been run through the model (their keys and values are cached);
- ``tokens[start_idx:active_idx]`` (``next_tokens``) go through the model next;
- ``tokens[:end_idx]`` (``all_tokens``) are the prompt and the generated tokens;
- the rest is preallocated, grown ``CHUNK_SIZE`` tokens at a time.

A prompt of P tokens starts with ``start_idx = 0`` and ``active_idx = end_idx = P``: the
first step encodes the whole prompt (``needs_ce``). ``update(token)`` appends the sampled
token, moves ``start_idx`` past what the model just processed and makes the new token the
next input, then sets the status: ``END_OF_SEQUENCE`` for an EOS id (unless ``ignore_eos``),
a ``stop_token_ids`` id or an ``eos_sequences`` suffix, ``MAXIMUM_LENGTH`` when the sequence
reaches ``max_length`` or ``sampling_params.max_new_tokens`` tokens were generated. The
token that ends a sequence is kept in ``generated_tokens`` and returned to the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from max.interfaces import (
    GenerationStatus, LogProbabilities, RequestID, SamplingParams, TextGenerationOutput,
)

__all__ = ["CHUNK_SIZE", "TextContext"]

#: The token array grows by this many slots at a time.
CHUNK_SIZE = 128


@dataclass(eq=False)
class TextContext:
    """A base class for model context, specifically for Text model variants.

    This class manages the state and processing of text generation, including token
    management, caching, and generation parameters.

    Args:
        max_length: Maximum allowed length of the sequence (prompt and generated tokens).
        tokens: NumPy array containing the prompt's token IDs (1-D, integers).
        request_id: A unique identifier for this sequence.
        eos_token_ids: Set of token IDs that indicate end of sequence.
        eos_sequences: Token sequences that end the sequence when generated.
        log_probabilities: How many top log probabilities to return per token (0: none).
        log_probabilities_echo: Whether to return log probabilities for prompt tokens.
        ignore_eos: Whether to ignore end of sequence tokens and continue generating.
        json_schema: Optional JSON schema for structured output.
        sampling_params: Parameters controlling the token sampling strategy.
        model_name: The model's name.
        status: The generation status.
        target_endpoint: Optional target endpoint identifier for routing requests.

    Raises:
        ValueError: If ``tokens`` is empty, not 1-D or not integers, or longer than
            ``max_length``.

    Example:
        >>> ctx = TextContext(max_length=8, tokens=np.array([1, 2, 3]), eos_token_ids={0})
        >>> ctx.next_tokens.tolist(), ctx.needs_ce
        ([1, 2, 3], True)
        >>> ctx.update(7); ctx.next_tokens.tolist(), ctx.start_idx
        ([7], 3)
        >>> ctx.update(0); ctx.status, ctx.generated_tokens.tolist()
        (<GenerationStatus.END_OF_SEQUENCE: 'end_of_sequence'>, [7, 0])
    """

    max_length: int
    tokens: npt.NDArray[np.integer[Any]]
    request_id: RequestID = field(default_factory=RequestID)
    eos_token_ids: set[int] = field(default_factory=set)
    eos_sequences: list[list[int]] = field(default_factory=list)
    log_probabilities: int = 0
    log_probabilities_echo: bool = False
    ignore_eos: bool = False
    json_schema: str | None = None
    sampling_params: SamplingParams = field(default_factory=SamplingParams)
    model_name: str = ""
    status: GenerationStatus = GenerationStatus.ACTIVE
    target_endpoint: str | None = None
    _matcher: Any | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        prompt = np.asarray(self.tokens)
        if prompt.ndim != 1 or prompt.size == 0 or prompt.dtype.kind not in "iu":
            raise ValueError(f"TextContext: tokens must be a non-empty 1-D integer array, got "
                             f"shape {prompt.shape} dtype {prompt.dtype}")
        if self.max_length < prompt.size:
            raise ValueError(f"TextContext: the prompt has {prompt.size} tokens, more than "
                             f"max_length={self.max_length}")
        size = -(-prompt.size // CHUNK_SIZE) * CHUNK_SIZE
        self.tokens = np.zeros(size, np.int32)
        self.tokens[: prompt.size] = prompt
        self._prompt_len = prompt.size
        self._start_idx = 0
        self._active_idx = self._end_idx = prompt.size
        self._completion_start_idx = prompt.size
        self._log_probabilities_data: dict[int, LogProbabilities] = {}
        self._is_initial_prompt = True
        self.eos_token_ids = set(self.eos_token_ids)

    # Indices and views of the token array.
    @property
    def start_idx(self) -> int:
        """Where the tokens not yet run through the model begin."""
        return self._start_idx

    @property
    def active_idx(self) -> int:
        """One past the last of ``next_tokens``."""
        return self._active_idx

    @property
    def end_idx(self) -> int:
        """One past the last token of the sequence."""
        return self._end_idx

    @property
    def active_length(self) -> int:
        """The number of tokens input this iteration: the prompt size for context encoding,
        1 for token generation."""
        return self._active_idx - self._start_idx

    @property
    def current_length(self) -> int:
        """The current length of the sequence, including completed and active tokens."""
        return self._active_idx

    @property
    def all_tokens(self) -> npt.NDArray[np.integer[Any]]:
        """The prompt and generated tokens (no preallocated slots)."""
        return self.tokens[: self._end_idx]

    @property
    def prompt_tokens(self) -> npt.NDArray[np.integer[Any]]:
        """Returns the original prompt tokens."""
        return self.tokens[: self._prompt_len]

    @property
    def generated_tokens(self) -> npt.NDArray[np.integer[Any]]:
        """Returns all tokens that have been generated after the prompt."""
        return self.tokens[self._prompt_len : self._end_idx]

    @property
    def next_tokens(self) -> npt.NDArray[np.integer[Any]]:
        """The tokens between start_idx and active_idx: the model's next input."""
        return self.tokens[self._start_idx : self._active_idx]

    @property
    def needs_ce(self) -> bool:
        """Whether this context still has prompt tokens to encode (context encoding)."""
        return self._start_idx < self._prompt_len

    @property
    def is_initial_prompt(self) -> bool:
        """Returns true if the context has not been updated with tokens."""
        return self._is_initial_prompt

    @property
    def is_done(self) -> bool:
        """Whether the request has completed generation."""
        return self.status.is_done

    @property
    def min_tokens(self) -> int:
        """The minimum number of new tokens to generate."""
        return self.sampling_params.min_new_tokens

    @property
    def matcher(self) -> Any | None:
        """The grammar matcher for structured output, if any."""
        return self._matcher

    def set_matcher(self, matcher: Any) -> None:
        """Set a grammar matcher for constrained decoding."""
        self._matcher = matcher

    def _check_indices(self, start: int, active: int, end: int) -> None:
        if not 0 <= start <= active <= end <= self.tokens.size:
            raise ValueError(f"TextContext: token indices must satisfy 0 <= start_idx "
                             f"({start}) <= active_idx ({active}) <= end_idx ({end}) <= "
                             f"{self.tokens.size} (the token array's size)")

    def set_token_indices(self, start_idx: int | None = None, active_idx: int | None = None,
                          end_idx: int | None = None) -> None:
        """Set the token indices without manipulating the token array.

        Raises:
            ValueError: If the indices would not satisfy ``0 <= start <= active <= end``.
        """
        start = self._start_idx if start_idx is None else start_idx
        active = self._active_idx if active_idx is None else active_idx
        end = self._end_idx if end_idx is None else end_idx
        self._check_indices(start, active, end)
        self._start_idx, self._active_idx, self._end_idx = start, active, end

    def bump_token_indices(self, start_idx: int = 0, active_idx: int = 0,
                           end_idx: int = 0) -> None:
        """Update the start_idx, active_idx and end_idx without manipulating the token
        array (each by the given amount)."""
        self.set_token_indices(self._start_idx + start_idx, self._active_idx + active_idx,
                               self._end_idx + end_idx)

    def compute_num_available_steps(self, max_seq_len: int) -> int:
        """The number of tokens that can still be generated without the sequence exceeding
        ``max_seq_len``."""
        return max(0, max_seq_len - self._end_idx)

    def get_min_token_logit_mask(self, num_steps: int) -> list[npt.NDArray[np.int32]]:
        """For each of the next ``num_steps`` steps, the token ids to mask (set to -inf) in
        the logits: the EOS ids while fewer than ``min_tokens`` tokens have been generated,
        else none."""
        eos = np.array(sorted(self.eos_token_ids), np.int32)
        generated = self._end_idx - self._prompt_len
        return [eos if generated + i < self.min_tokens else np.zeros(0, np.int32)
                for i in range(num_steps)]

    def get_last_generated_token(self) -> int:
        """Returns the most recently generated token.

        Raises:
            ValueError: If no tokens have been generated yet.
        """
        if self._end_idx == self._prompt_len:
            raise ValueError("TextContext: no tokens have been generated yet")
        return int(self.tokens[self._end_idx - 1])

    def _append(self, new_token: int, log_probabilities: LogProbabilities | None) -> None:
        if self._end_idx >= self.tokens.size:
            self.tokens = np.concatenate([self.tokens, np.zeros(CHUNK_SIZE, np.int32)])
        self.tokens[self._end_idx] = new_token
        if log_probabilities is not None:
            self._log_probabilities_data[self._end_idx] = log_probabilities
        self._end_idx += 1
        self._is_initial_prompt = False
        self._update_status(int(new_token))

    def _update_status(self, token: int) -> None:
        stops = self.sampling_params.stop_token_ids or ()
        tail = self.all_tokens
        if (not self.ignore_eos and token in self.eos_token_ids) or token in stops or any(
                len(seq) and len(seq) <= tail.size and tail[-len(seq):].tolist() == list(seq)
                for seq in self.eos_sequences):
            self.status = GenerationStatus.END_OF_SEQUENCE
        elif self._end_idx >= self.max_length or (
                self.sampling_params.max_new_tokens is not None
                and self._end_idx - self._prompt_len >= self.sampling_params.max_new_tokens):
            self.status = GenerationStatus.MAXIMUM_LENGTH

    def update(self, new_token: int, log_probabilities: LogProbabilities | None = None) -> None:
        """Appends a generated token: what the model just processed becomes completed, the new
        token becomes ``next_tokens``, and the status is updated.

        Raises:
            ValueError: If the request is already done.
        """
        if self.is_done:
            raise ValueError(f"TextContext: request {self.request_id} is done "
                             f"({self.status.value}); it takes no more tokens")
        self._append(new_token, log_probabilities)
        self._start_idx = self._active_idx
        self._active_idx = self._end_idx

    def jump_ahead(self, new_token: int) -> None:
        """Appends a token that is returned to the user and added to ``next_tokens``
        (speculative decoding: an accepted draft token still to be run through the model)."""
        if self.is_done:
            raise ValueError(f"TextContext: request {self.request_id} is done "
                             f"({self.status.value}); it takes no more tokens")
        self._append(new_token, None)
        self._active_idx = self._end_idx

    def reset(self) -> None:
        """Resets the context's state so that all its tokens are encoded again (after the
        request was evicted from the cache)."""
        self._start_idx = 0
        self._active_idx = self._end_idx
        self._is_initial_prompt = True

    def to_generation_output(self) -> TextGenerationOutput:
        """The tokens generated since the last call (with their log probabilities, if any),
        and the status."""
        start, end = self._completion_start_idx, self._end_idx
        self._completion_start_idx = end
        logprobs = [self._log_probabilities_data.pop(i) for i in range(start, end)
                    if i in self._log_probabilities_data]
        return TextGenerationOutput(self.request_id, self.tokens[start:end].tolist(),
                                    self.status, logprobs or None)
