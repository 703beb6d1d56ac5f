"""``TextGenerationPipeline``: batches of text generation contexts, one token per step.

A step gives every active context one new token: a context whose prompt has not run yet is
prefilled (its whole prompt, one sequence at a time, into a cache slot it claims), the others
decode together (one token each, the whole cache batch at once); then every row's logits go
through the penalties and the compiled token sampler, and each context is updated (EOS, stop
tokens and length limits end it). The cache's slots are held until :meth:`release`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from max.graph import DeviceRef
from max.interfaces import (
    GenerationStatus, RequestID, SamplingParams, TextGenerationInputs, TextGenerationOutput,
)
from max.nn.kv_cache import ContinuousKVCacheManager
from max.pipelines.core import TextContext
from max.pipelines.lib.config import PipelineConfig
from max.pipelines.lib.sampling import (
    SamplingConfig, apply_penalties, generator_for, greedy_sampler, is_greedy, sampling_inputs,
    token_sampler,
)


class TextGenerationPipeline:
    """Generalized token generator pipeline.

    Args:
        pipeline_config: Configuration for the pipeline and runtime behavior.
        pipeline_model: The model class to run (e.g. ``Llama3Runner``); it is constructed
            with the config's ``model_path`` and a session.
        eos_token_id: Default EOS token id, added to each context's EOS set.
        weight_adapters: Mapping from weights format to adapter (unused: GGUF is read
            directly).
        tokenizer: The tokenizer that builds contexts and decodes.
    """

    def __init__(self, pipeline_config: PipelineConfig, pipeline_model: type,
                 eos_token_id: int, weight_adapters: dict[Any, Any] | None = None,
                 tokenizer: Any = None) -> None:
        from max.driver import CPU
        from max.engine import InferenceSession

        self._config = pipeline_config
        self._tokenizer = tokenizer
        self.eos_token_id = eos_token_id
        self.session = InferenceSession(devices=[CPU()])
        self.model = pipeline_model(pipeline_config.model_path, session=self.session)
        c = self.model.config
        self.max_seq_len = min(pipeline_config.max_length or c.max_seq_len, c.max_seq_len)
        self.max_batch_size = pipeline_config.max_batch_size or 8
        self.sampling_config = SamplingConfig(vocab_size=c.vocab_size)
        self._sampler = self.session.load(token_sampler(self.sampling_config, DeviceRef.CPU()))
        self._greedy = self.session.load(greedy_sampler(self.sampling_config, DeviceRef.CPU()))
        self._manager: ContinuousKVCacheManager | None = None
        self._slots: dict[RequestID, int] = {}
        self._generators: dict[RequestID, np.random.Generator] = {}
        self._lock = threading.Lock()  # one step at a time: the cache is shared
        #: Prompt tokens per model call (a longer prompt is prefilled in several calls).
        self.prefill_chunk_size = 512

    @property
    def pipeline_config(self) -> PipelineConfig:
        """Return the pipeline configuration."""
        return self._config

    @property
    def tokenizer(self) -> Any:
        """Return the tokenizer used for building contexts and decoding."""
        return self._tokenizer

    @property
    def kv_managers(self) -> list[Any]:
        """Return the list of KV cache managers backing this pipeline."""
        return [self._manager] if self._manager is not None else []

    def calculate_num_steps(self, num_steps: int, context: TextContext) -> int:
        """The number of steps ``context`` may run (>= 1), clamped by ``max_seq_len``.

        Raises:
            ValueError: If the context is already at ``max_seq_len``.
        """
        left = self.max_seq_len - context.current_length
        if left <= 0 and not context.needs_ce:
            raise ValueError(f"request {context.request_id}: its length "
                             f"{context.current_length} has reached max_seq_len "
                             f"{self.max_seq_len}")
        return max(1, min(num_steps, left + (1 if context.needs_ce else 0)))

    def release(self, request_id: RequestID) -> None:
        """Mark the context as complete, releasing the cache slot from the KV manager."""
        with self._lock:
            slot = self._slots.pop(request_id, None)
            self._generators.pop(request_id, None)
            if slot is not None and self._manager is not None:
                self._manager.release(slot)

    def execute(self, inputs: TextGenerationInputs[TextContext],
                ) -> dict[RequestID, TextGenerationOutput]:
        """Runs ``inputs.num_steps`` steps on the batch; returns each request's new tokens.

        Raises:
            ValueError: If a prompt does not fit ``max_seq_len``, or the batch needs more
                slots than ``max_batch_size`` (nothing has run then).
        """
        batch = inputs.batch
        with self._lock:
            self._reserve(batch)
            for _ in range(max(inputs.num_steps, 1)):
                active = [(rid, ctx) for rid, ctx in batch.items() if not ctx.is_done]
                if not active:
                    break
                self._step(active)
        return {rid: ctx.to_generation_output() for rid, ctx in batch.items()}

    def _reserve(self, batch: dict[RequestID, TextContext]) -> None:
        """Checks the new contexts and gives each a cache slot (a new cache sized to the
        batch when none is in use)."""
        new = [(rid, ctx) for rid, ctx in batch.items() if rid not in self._slots]
        for rid, ctx in new:
            if not ctx.needs_ce:
                raise ValueError(f"request {rid}: its prompt has already run elsewhere; this "
                                 "pipeline only continues contexts it prefilled")
            if ctx.current_length >= self.max_seq_len:
                raise ValueError(f"request {rid}: the prompt has {ctx.current_length} tokens; "
                                 f"the model's max_seq_len is {self.max_seq_len} (the prompt "
                                 "and at least one generated token must fit)")
        if not new:
            return
        if not self._slots:  # nothing in flight: a cache for exactly this batch
            size = len(new)
            if size > self.max_batch_size:
                raise ValueError(f"the batch has {size} requests, more than max_batch_size "
                                 f"{self.max_batch_size}")
            longest = max(min(ctx.max_length, self.max_seq_len) for _, ctx in new)
            m = self.model
            if (self._manager is None or self._manager.max_batch_size != size
                    or self._manager.max_seq_len < longest):
                self._manager = ContinuousKVCacheManager(m.kv_params, m.num_layers, size,
                                                         longest)
        manager = self._manager
        assert manager is not None
        if len(new) > manager.free_slots:
            raise ValueError(f"{len(new)} new requests but only {manager.free_slots} free cache "
                             "slots; release finished requests first")
        for rid, ctx in new:  # every check before any slot is claimed
            if min(ctx.max_length, self.max_seq_len) > manager.max_seq_len:
                raise ValueError(f"request {rid}: max_length {ctx.max_length} exceeds the "
                                 f"cache in use ({manager.max_seq_len} positions)")
        for rid, ctx in new:
            self._slots[rid] = manager.claim()
            self._generators[rid] = generator_for(ctx.sampling_params)

    def _step(self, active: Sequence[tuple[RequestID, TextContext]]) -> None:
        manager = self._manager
        assert manager is not None
        rows: list[tuple[RequestID, TextContext, np.ndarray]] = []
        for rid, ctx in active:
            if ctx.needs_ce:  # the prompt, alone, in chunks (attention among a chunk's
                slot = self._slots[rid]  # tokens is T x T per head)
                prompt = np.asarray(ctx.next_tokens, np.int64)
                for start in range(0, len(prompt), self.prefill_chunk_size):
                    chunk = prompt[None, start:start + self.prefill_chunk_size]
                    logits = self._run([slot], chunk, [slot])
                rows.append((rid, ctx, logits[0]))
        # (A context prefilled above still needs_ce until it is updated with its token.)
        decoding = [(rid, ctx) for rid, ctx in active if not ctx.needs_ce]
        if decoding:
            slots = list(range(manager.max_batch_size))
            tokens = np.zeros((len(slots), 1), np.int64)
            by_slot = {self._slots[rid]: (rid, ctx) for rid, ctx in decoding}
            for s, (_, ctx) in by_slot.items():
                tokens[s, 0] = int(ctx.next_tokens[-1])
            logits = self._run(slots, tokens, sorted(by_slot))
            for s in sorted(by_slot):
                rid, ctx = by_slot[s]
                rows.append((rid, ctx, logits[s]))
        self._sample_and_update(rows)

    def _run(self, slots: list[int], tokens: np.ndarray, advancing: list[int]) -> np.ndarray:
        """One model call on ``slots``; writes the new keys and values of the ``advancing``
        slots and moves their lengths on."""
        manager = self._manager
        assert manager is not None
        num_new = tokens.shape[1]
        cache = manager.fetch(slots, num_new, check=advancing)
        logits, new_kv = self.model.step(tokens, cache)
        rows = [slots.index(s) for s in advancing]
        for layer, kv in enumerate(new_kv):
            manager.commit(advancing, layer, kv[:, :, rows] if len(rows) != len(slots) else kv)
        manager.advance(advancing, num_new)
        return logits

    def _sample_and_update(self, rows: list[tuple[RequestID, TextContext, np.ndarray]]) -> None:
        params: list[SamplingParams] = [ctx.sampling_params for _, ctx, _ in rows]
        logits = np.stack([r[2] for r in rows])
        generated = [ctx.generated_tokens for _, ctx, _ in rows]
        banned = [ctx.get_min_token_logit_mask(1)[0] for _, ctx, _ in rows]
        if any(_penalized(p) for p in params) or any(len(b) for b in banned):
            logits = apply_penalties(logits, params, generated, banned)
        gens = [self._generators[rid] for rid, _, _ in rows]
        inputs = sampling_inputs(params, gens, self.sampling_config)  # every row draws
        if all(is_greedy(p) for p in params):  # the argmax alone, not every sampling path
            tokens = self._greedy.execute(logits)[0].to_numpy()
        else:
            tokens = self._sampler.execute(logits, *inputs)[0].to_numpy()
        for (rid, ctx, _), token in zip(rows, tokens):
            ctx.update(int(token))
            if ctx.current_length >= self.max_seq_len and not ctx.is_done:
                ctx.status = GenerationStatus.MAXIMUM_LENGTH


def _penalized(p: SamplingParams) -> bool:
    return bool(p.frequency_penalty or p.presence_penalty or p.repetition_penalty != 1.0)
