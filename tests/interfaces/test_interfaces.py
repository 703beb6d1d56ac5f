"""max.interfaces (text generation part) and max.pipelines.core.TextContext: defaults as the
reference documents them, validation with exact messages, status and token bookkeeping."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

from max.interfaces import (
    BatchType, GenerationStatus, LogProbabilities, Pipeline, PipelineTask, PipelineTokenizer,
    RequestID, SamplingParams, SamplingParamsGenerationConfigDefaults, SamplingParamsInput,
    SchedulerResult, TextGenerationContext, TextGenerationInputs, TextGenerationOutput,
    TextGenerationRequest, TextGenerationRequestMessage,
)
from max.pipelines.core import CHUNK_SIZE, TextContext


def test_sampling_params_defaults() -> None:
    params = SamplingParams()
    expected = dict(top_k=-1, top_p=1, min_p=0.0, temperature=1, frequency_penalty=0.0,
                    presence_penalty=0.0, repetition_penalty=1.0, max_new_tokens=None,
                    min_new_tokens=0, ignore_eos=False, stop=None, stop_token_ids=None,
                    detokenize=True, logits_processors=None)
    assert {k: getattr(params, k) for k in expected} == expected
    # The reference's parameter order, and a fresh random seed each time.
    assert list(inspect.signature(SamplingParams).parameters) == [
        "top_k", "top_p", "min_p", "temperature", "frequency_penalty", "presence_penalty",
        "repetition_penalty", "max_new_tokens", "min_new_tokens", "ignore_eos", "stop",
        "stop_token_ids", "detokenize", "seed", "logits_processors"]
    assert isinstance(params.seed, int) and params.seed >= 0
    assert SamplingParams().seed != SamplingParams().seed
    assert SamplingParams(temperature=0).is_greedy and SamplingParams(top_k=1).is_greedy
    assert not SamplingParams().is_greedy


@pytest.mark.parametrize("kwargs, message", [
    ({"top_k": 0}, "top_k must be -1 (all tokens) or at least 1, got 0"),
    ({"top_k": -2}, "top_k must be -1 (all tokens) or at least 1, got -2"),
    ({"top_p": 0.0}, "top_p must be in (0, 1], got 0.0"),
    ({"top_p": 1.5}, "top_p must be in (0, 1], got 1.5"),
    ({"min_p": -0.1}, "min_p must be in [0, 1], got -0.1"),
    ({"min_p": 1.1}, "min_p must be in [0, 1], got 1.1"),
    ({"temperature": -0.5}, "temperature must be >= 0 (0 means greedy), got -0.5"),
    ({"temperature": float("nan")}, "temperature must be finite, got nan"),
    ({"repetition_penalty": 0.0}, "repetition_penalty must be > 0, got 0.0"),
    ({"max_new_tokens": 0}, "max_new_tokens must be None or at least 1, got 0"),
    ({"min_new_tokens": -1}, "min_new_tokens must be >= 0, got -1"),
    ({"min_new_tokens": 5, "max_new_tokens": 4},
     "min_new_tokens (5) must not exceed max_new_tokens (4)"),
    ({"seed": -1}, "seed must be >= 0, got -1"),
])
def test_sampling_params_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        SamplingParams(**kwargs)
    assert str(info.value) == f"SamplingParams: {message}"


@pytest.mark.parametrize("kwargs, message", [
    ({"top_k": 2.0}, "SamplingParams: top_k must be an int, got 2.0"),
    ({"temperature": "hot"}, "SamplingParams: temperature must be a number, got 'hot'"),
    ({"stop": "END"}, "SamplingParams: stop must be a list of str or None, got 'END'"),
    ({"stop_token_ids": [1, "2"]},
     "SamplingParams: stop_token_ids must be a list of int or None, got [1, '2']"),
])
def test_sampling_params_type_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(TypeError) as info:
        SamplingParams(**kwargs)
    assert str(info.value) == message


def test_sampling_params_from_generation_config() -> None:
    defaults = SamplingParamsGenerationConfigDefaults(temperature=0.7, top_k=50,
                                                      max_new_tokens=512)
    assert defaults.values_to_update == {"temperature": 0.7, "top_k": 50, "max_new_tokens": 512}
    params = SamplingParams.from_input_and_generation_config(
        SamplingParamsInput(temperature=0.2, seed=3), sampling_params_defaults=defaults)
    assert (params.temperature, params.top_k, params.max_new_tokens, params.seed,
            params.top_p) == (0.2, 50, 512, 3, 1)
    greedy = SamplingParams.from_input_and_generation_config(
        SamplingParamsInput(), SamplingParamsGenerationConfigDefaults(do_sample=False))
    assert greedy.top_k == 1 and greedy.is_greedy
    overridden = SamplingParams.from_input_and_generation_config(
        SamplingParamsInput(top_k=5), SamplingParamsGenerationConfigDefaults(do_sample=False))
    assert overridden.top_k == 5
    with pytest.raises(ValueError, match=r"^SamplingParams: top_p must be in \(0, 1\], got 2"):
        SamplingParams.from_input_and_generation_config(
            SamplingParamsInput(top_p=2), SamplingParamsGenerationConfigDefaults())
    assert [f.name for f in dataclasses.fields(SamplingParamsInput)] == list(
        inspect.signature(SamplingParams).parameters)


def test_log_sampling_info(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="max.interfaces"):
        SamplingParams(temperature=0.3, seed=9).log_sampling_info()
    assert "temperature" in caplog.text and "0.3" in caplog.text


def test_request_id_status_and_tasks() -> None:
    assert RequestID("a") == RequestID("a") and RequestID() != RequestID()
    assert len(RequestID().value) == 36 and str(RequestID("x")) == "x"
    with pytest.raises(TypeError, match=r"^RequestID: value must be a str, got int$"):
        RequestID(3)  # type: ignore[arg-type]
    assert {s.value for s in GenerationStatus} == {
        "active", "cancelled", "end_of_sequence", "maximum_length"}
    assert [s.is_done for s in GenerationStatus] == [False, True, True, True]
    assert PipelineTask.TEXT_GENERATION.value == "text_generation"
    assert PipelineTask("embeddings_generation") is PipelineTask.EMBEDDINGS_GENERATION
    assert BatchType.CE.value == "CE" and BatchType.TG.value == "TG"


def test_text_generation_request() -> None:
    message: TextGenerationRequestMessage = {"role": "user", "content": "Hi"}
    request = TextGenerationRequest(RequestID("r"), "smollm2", messages=[message])
    assert request.prompt is None and request.logprobs == 0 and request.echo is False
    assert request.request_path == "/" and isinstance(request.sampling_params, SamplingParams)
    with pytest.raises(ValueError, match=r"^TextGenerationRequest: one of prompt or messages "
                       r"must be given$"):
        TextGenerationRequest(RequestID(), "m")
    with pytest.raises(ValueError, match=r"^TextGenerationRequest: give prompt or messages, "
                       r"not both$"):
        TextGenerationRequest(RequestID(), "m", prompt="a", messages=[message])
    with pytest.raises(ValueError, match=r"^TextGenerationRequest: logprobs must be >= 0, "
                       r"got -1$"):
        TextGenerationRequest(RequestID(), "m", prompt=[1, 2], logprobs=-1)


def test_outputs_inputs_and_scheduler_result() -> None:
    rid = RequestID("r")
    out = TextGenerationOutput(rid, [1, 2], GenerationStatus.ACTIVE)
    assert not out.is_done and out.log_probabilities is None
    done = TextGenerationOutput(rid, [3], GenerationStatus.END_OF_SEQUENCE)
    assert done.is_done
    assert SchedulerResult.create(done) == SchedulerResult(True, done)
    assert SchedulerResult.create(out).is_done is False
    assert SchedulerResult.cancelled() == SchedulerResult(True, None)
    a = TextContext(max_length=10, tokens=np.array([1]), log_probabilities=2)
    b = TextContext(max_length=10, tokens=np.array([2]), log_probabilities_echo=True)
    inputs = TextGenerationInputs([{a.request_id: a}, {b.request_id: b}], num_steps=1)
    assert list(inputs.batch.values()) == [a, b] and inputs.batch_type == BatchType.TG
    assert inputs.batch_top_log_probs == [2, 0] and inputs.batch_echo == [False, True]
    assert inputs.enable_log_probs and inputs.enable_echo and inputs.input_tokens == -1
    with pytest.raises(ValueError, match=r"^TextGenerationInputs: num_steps must be a "
                       r"positive int, got 0$"):
        TextGenerationInputs([], num_steps=0)
    assert LogProbabilities([-0.5], [{3: -0.5}]).top_log_probabilities == [{3: -0.5}]


def test_pipeline_is_abstract() -> None:
    with pytest.raises(TypeError):
        Pipeline()  # type: ignore[abstract]

    class Echo(Pipeline):
        def execute(self, inputs):
            return {rid: TextGenerationOutput(rid, [0], GenerationStatus.MAXIMUM_LENGTH)
                    for rid in inputs.batch}

        def release(self, request_id):
            pass

    ctx = TextContext(max_length=4, tokens=np.array([5]))
    result = Echo().execute(TextGenerationInputs([{ctx.request_id: ctx}], 1))
    assert result[ctx.request_id].is_done


class _Tokenizer:
    eos = 2
    expects_content_wrapping = False

    async def new_context(self, request): ...
    async def encode(self, prompt, add_special_tokens): ...
    async def decode(self, encoded, **kwargs): ...


def test_protocols_are_checkable() -> None:
    assert isinstance(_Tokenizer(), PipelineTokenizer)
    assert isinstance(TextContext(max_length=4, tokens=np.array([1])), TextGenerationContext)
    assert not isinstance(object(), TextGenerationContext)


def test_text_context_generation() -> None:
    params = SamplingParams(max_new_tokens=5, seed=0)
    ctx = TextContext(max_length=100, tokens=np.array([10, 11, 12], np.int64),
                      eos_token_ids={2}, sampling_params=params)
    assert ctx.tokens.dtype == np.int32 and ctx.tokens.size == CHUNK_SIZE
    assert (ctx.start_idx, ctx.active_idx, ctx.end_idx) == (0, 3, 3)
    assert ctx.next_tokens.tolist() == [10, 11, 12] and ctx.active_length == 3
    assert ctx.needs_ce and ctx.is_initial_prompt and not ctx.is_done
    with pytest.raises(ValueError, match=r"^TextContext: no tokens have been generated yet$"):
        ctx.get_last_generated_token()
    ctx.update(20)
    assert (ctx.start_idx, ctx.active_idx, ctx.end_idx) == (3, 4, 4)
    assert ctx.next_tokens.tolist() == [20] and ctx.active_length == 1
    assert ctx.current_length == 4 and not ctx.needs_ce and not ctx.is_initial_prompt
    assert ctx.get_last_generated_token() == 20
    ctx.update(21, LogProbabilities([-0.1], [{21: -0.1}]))
    out = ctx.to_generation_output()
    assert out.tokens == [20, 21] and out.final_status == GenerationStatus.ACTIVE
    assert out.log_probabilities == [LogProbabilities([-0.1], [{21: -0.1}])]
    assert ctx.to_generation_output().tokens == []
    ctx.update(22)
    ctx.update(23)
    ctx.update(24)  # the fifth new token: max_new_tokens
    assert ctx.status == GenerationStatus.MAXIMUM_LENGTH and ctx.is_done
    assert ctx.generated_tokens.tolist() == [20, 21, 22, 23, 24]
    assert ctx.all_tokens.tolist() == [10, 11, 12, 20, 21, 22, 23, 24]
    assert ctx.prompt_tokens.tolist() == [10, 11, 12]
    assert ctx.to_generation_output().tokens == [22, 23, 24]
    with pytest.raises(ValueError, match=r"^TextContext: request .* is done "
                       r"\(maximum_length\); it takes no more tokens$"):
        ctx.update(25)


def test_text_context_stopping() -> None:
    eos = TextContext(max_length=50, tokens=np.array([1, 1]), eos_token_ids={2, 3})
    eos.update(5)
    eos.update(3)
    assert eos.status == GenerationStatus.END_OF_SEQUENCE
    assert eos.to_generation_output().tokens == [5, 3]  # the EOS token is returned
    ignoring = TextContext(max_length=4, tokens=np.array([1, 1]), eos_token_ids={2},
                           ignore_eos=True)
    ignoring.update(2)
    assert ignoring.status == GenerationStatus.ACTIVE
    ignoring.update(2)  # the sequence reaches max_length
    assert ignoring.status == GenerationStatus.MAXIMUM_LENGTH
    stop = TextContext(max_length=50, tokens=np.array([1]),
                       sampling_params=SamplingParams(stop_token_ids=[9], seed=0))
    stop.update(9)
    assert stop.status == GenerationStatus.END_OF_SEQUENCE
    seq = TextContext(max_length=50, tokens=np.array([7]), eos_sequences=[[7, 8, 9]])
    seq.update(8)
    assert not seq.is_done
    seq.update(9)
    assert seq.status == GenerationStatus.END_OF_SEQUENCE


def test_text_context_growth_masks_and_indices() -> None:
    ctx = TextContext(max_length=1000, tokens=np.arange(1, CHUNK_SIZE + 1), eos_token_ids={0, 5},
                      sampling_params=SamplingParams(min_new_tokens=2, seed=0))
    assert ctx.tokens.size == CHUNK_SIZE
    masks = ctx.get_min_token_logit_mask(3)
    assert [m.tolist() for m in masks] == [[0, 5], [0, 5], []]
    assert all(m.dtype == np.int32 for m in masks)
    ctx.update(99)
    assert ctx.tokens.size == 2 * CHUNK_SIZE and ctx.all_tokens[-1] == 99
    assert [m.tolist() for m in ctx.get_min_token_logit_mask(2)] == [[0, 5], []]
    assert ctx.compute_num_available_steps(200) == 200 - (CHUNK_SIZE + 1)
    assert ctx.compute_num_available_steps(10) == 0
    ctx.jump_ahead(100)
    assert ctx.next_tokens.tolist() == [99, 100] and ctx.generated_tokens.tolist() == [99, 100]
    ctx.reset()
    assert (ctx.start_idx, ctx.active_idx) == (0, ctx.end_idx) and ctx.needs_ce
    ctx.set_token_indices(start_idx=CHUNK_SIZE)
    ctx.bump_token_indices(start_idx=1)
    assert ctx.start_idx == CHUNK_SIZE + 1
    with pytest.raises(ValueError, match=r"^TextContext: token indices must satisfy 0 <= "
                       r"start_idx \(131\) <= active_idx \(130\)"):
        ctx.bump_token_indices(start_idx=2)
    ctx.set_matcher("m")
    assert ctx.matcher == "m"


@pytest.mark.parametrize("kwargs, message", [
    ({"tokens": np.array([], np.int64)}, "tokens must be a non-empty 1-D integer array, got "
     "shape (0,) dtype int64"),
    ({"tokens": np.array([1.0])}, "tokens must be a non-empty 1-D integer array, got shape "
     "(1,) dtype float64"),
    ({"tokens": np.arange(5), "max_length": 4}, "the prompt has 5 tokens, more than "
     "max_length=4"),
])
def test_text_context_validation(kwargs: dict, message: str) -> None:
    kwargs = {"max_length": 10, **kwargs}
    with pytest.raises(ValueError) as info:
        TextContext(**kwargs)
    assert str(info.value) == f"TextContext: {message}"
