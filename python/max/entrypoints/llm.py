"""``LLM``: text generation from a model file in a few lines.

    from max.entrypoints.llm import LLM
    from max.pipelines import PipelineConfig

    llm = LLM(PipelineConfig(model_path="SmolLM2-135M-Instruct.Q4_1.gguf"))
    print(llm.generate(["The capital of France is"], max_new_tokens=8))

Prompts are given to the model as they are (no chat template; the tokenizer's
``apply_chat_template`` makes a chat prompt). Sampling follows ``SamplingParams`` (greedy
when ``top_k=1`` or ``temperature=0``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from max.interfaces import (
    GenerationStatus, RequestID, SamplingParams, TextGenerationInputs, TextGenerationRequest,
)
from max.pipelines.core import TextContext
from max.pipelines.lib.config import PipelineConfig


@dataclass
class GenerationStats:
    """Timings of the last generation: prompt tokens, their prefill seconds, generated
    tokens and the seconds spent generating them after the first."""

    prompt_tokens: int = 0
    prefill_seconds: float = 0.0
    generated_tokens: int = 0
    decode_seconds: float = 0.0

    @property
    def prefill_tokens_per_second(self) -> float:
        return self.prompt_tokens / self.prefill_seconds if self.prefill_seconds else 0.0

    @property
    def decode_tokens_per_second(self) -> float:
        decoded = self.generated_tokens - 1  # the first comes from the prefill
        return decoded / self.decode_seconds if self.decode_seconds and decoded > 0 else 0.0


class LLM:
    """A high level interface for interacting with LLMs.

    Args:
        pipeline_config: The model and its limits.

    Raises:
        FileNotFoundError: If the model file does not exist.
        ValueError: If it is not a supported model file.
    """

    def __init__(self, pipeline_config: PipelineConfig) -> None:
        from max.pipelines.lib.registry import PIPELINE_REGISTRY

        self.pipeline_config = pipeline_config
        self.tokenizer, self.pipeline = PIPELINE_REGISTRY.retrieve(pipeline_config)
        self.stats = GenerationStats()
        self._lock = threading.Lock()

    def _contexts(self, prompts: Sequence[str], max_new_tokens: int | None,
                  sampling_params: SamplingParams | None) -> list[TextContext]:
        if isinstance(prompts, str):
            prompts = [prompts]
        if not prompts:
            raise ValueError("LLM.generate: no prompts given")
        params = sampling_params or SamplingParams()
        if max_new_tokens is not None:
            if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) \
                    or max_new_tokens < 1:
                raise ValueError(f"LLM.generate: max_new_tokens must be a positive int, got "
                                 f"{max_new_tokens!r}")
            params = replace(params, max_new_tokens=max_new_tokens)
        contexts = []
        for i, prompt in enumerate(prompts):
            if not isinstance(prompt, str):
                raise ValueError(f"LLM.generate: prompt {i} is a {type(prompt).__name__}, not "
                                 "a str")
            if not prompt:
                raise ValueError(f"LLM.generate: prompt {i} is empty")
            request = TextGenerationRequest(RequestID(), self.pipeline_config.model_path,
                                            prompt=prompt, sampling_params=params)
            try:  # tokenized, checked against the max length, EOS and stop ids joined
                contexts.append(self.tokenizer.new_context_sync(request))
            except ValueError as e:
                raise ValueError(f"LLM.generate: prompt {i}: {e}") from None
        return contexts

    def stream(self, prompts: str | Sequence[str], max_new_tokens: int | None = 100,
               sampling_params: SamplingParams | None = None) -> Iterator[list[int | None]]:
        """Generates for ``prompts`` together, yielding after each step the new token of each
        prompt (None for a finished one). :attr:`stats` holds the timings at the end.

        Raises:
            ValueError: If a prompt is empty or too long, or ``max_new_tokens`` is not
                positive (before anything runs).
        """
        contexts = self._contexts(prompts, max_new_tokens, sampling_params)
        cap = self.pipeline.max_batch_size
        stats = GenerationStats(prompt_tokens=sum(c.current_length for c in contexts))
        with self._lock:
            for start in range(0, len(contexts), cap):
                chunk = contexts[start:start + cap]
                batch = {c.request_id: c for c in chunk}
                try:
                    first = True
                    while not all(c.is_done for c in chunk):
                        t = time.perf_counter()
                        before = [c.current_length for c in chunk]
                        self.pipeline.execute(TextGenerationInputs([batch], num_steps=1))
                        dt = time.perf_counter() - t
                        if first:
                            stats.prefill_seconds += dt
                        else:
                            stats.decode_seconds += dt
                        first = False
                        new: list[int | None] = []
                        for c, n in zip(chunk, before):
                            grew = c.current_length > n
                            new.append(int(c.all_tokens[-1]) if grew else None)
                            stats.generated_tokens += int(grew)
                            if grew and c.sampling_params.stop and not c.is_done \
                                    and _stop_at(self._text(c), c.sampling_params.stop) >= 0:
                                c.status = GenerationStatus.END_OF_SEQUENCE
                        self.stats = stats
                        yield [None] * start + new + [None] * (len(contexts) - start - len(chunk))
                finally:
                    for c in chunk:
                        self.pipeline.release(c.request_id)
        self.stats = stats

    def generate(self, prompts: str | Sequence[str], max_new_tokens: int | None = 100,
                 use_tqdm: bool = True, sampling_params: SamplingParams | None = None,
                 ) -> Sequence[str]:
        """Generates text completions for the given prompts.

        Thread safe: calls from several threads run one after another.

        Args:
            prompts: The input string or list of strings to generate completions for.
            max_new_tokens: The maximum number of tokens to generate in the response.
            use_tqdm: Whether to display a progress bar during generation.
            sampling_params: How to pick tokens (an extension; default ``SamplingParams()``).

        Returns:
            A list of generated text completions corresponding to each input prompt.

        Raises:
            ValueError: If prompts is empty or contains invalid data.
            RuntimeError: If the model fails to generate completions.
        """
        single = isinstance(prompts, str)
        n = 1 if single else len(prompts)
        generated: list[list[int]] = [[] for _ in range(n)]
        bar = _progress(use_tqdm)
        try:
            for step in self.stream(prompts, max_new_tokens, sampling_params):
                for i, token in enumerate(step):
                    if token is not None:
                        generated[i].append(token)
                if bar is not None:
                    bar.update(sum(t is not None for t in step))
        except ValueError:
            raise
        except Exception as e:  # a failure inside the model: the pipeline stays usable
            raise RuntimeError(f"LLM.generate: generation failed: {e}") from e
        finally:
            if bar is not None:
                bar.close()
        texts = [self.tokenizer.decode_sync(ids, skip_special_tokens=True) for ids in generated]
        stop = (sampling_params or SamplingParams()).stop
        if stop:  # the text ends before the first stop string, as MAX returns it
            texts = [t[:cut] if (cut := _stop_at(t, stop)) >= 0 else t for t in texts]
        return texts

    def _text(self, ctx: TextContext) -> str:
        return self.tokenizer.decode_sync(ctx.generated_tokens, skip_special_tokens=True)


def _stop_at(text: str, stops: Sequence[str]) -> int:
    """Where the first of ``stops`` begins in ``text``, or -1."""
    found = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(found) if found else -1


def _progress(enabled: bool):  # type: ignore[no-untyped-def]
    """A progress bar of generated tokens on stderr (tqdm comes with gguf), or None."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(desc="generate", unit="tok", leave=False)
