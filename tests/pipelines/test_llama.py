"""SmolLM2-135M (Llama architecture, Q4_1 GGUF) through max.entrypoints.llm.LLM against an
independent PyTorch reference of the same dequantized weights (tests/pipelines/
llama_reference.py, its own KV cache): greedy tokens equal token for token, logits within 1e-3,
batched decode of prompts of different lengths, and clear errors for bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("torch")

from max.interfaces import SamplingParams  # noqa: E402
from max.pipelines.lib.model_files import smollm2_path  # noqa: E402

try:
    MODEL = smollm2_path()
except (ModuleNotFoundError, FileNotFoundError) as e:  # the model package is not installed
    pytest.skip(f"SmolLM2 model file unavailable: {e}", allow_module_level=True)

from llama_reference import load_reference  # noqa: E402

GREEDY = SamplingParams(top_k=1, seed=0)
PROMPTS = ["The capital of France is",
           "Once upon a time, in a small village by the sea, there lived",
           "def fibonacci(n):"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def llm():
    from max.entrypoints.llm import LLM
    from max.pipelines.lib.config import PipelineConfig

    return LLM(PipelineConfig(model_path=str(MODEL), max_batch_size=4))


@pytest.fixture(scope="module")
def reference():
    return load_reference(MODEL)


def _ids(llm, prompts, n):
    out = [[] for _ in prompts]
    for step in llm.stream(prompts, n, GREEDY):
        for i, token in enumerate(step):
            if token is not None:
                out[i].append(token)
    return out


def test_the_capital_of_france_is_paris(llm) -> None:
    assert llm.generate("The capital of France is", max_new_tokens=1, use_tqdm=False,
                        sampling_params=GREEDY) == [" Paris"]


def test_greedy_tokens_equal_the_reference_batched(llm, reference) -> None:
    ids = [llm.tokenizer.encode_sync(p).tolist() for p in PROMPTS]
    assert len({len(i) for i in ids}) == 3  # different lengths decode in one batch
    want = [reference.greedy(i, 32) for i in ids]
    assert _ids(llm, PROMPTS, 32) == want
    assert _ids(llm, PROMPTS[1:2], 32) == want[1:2]  # alone (batch of one)


def test_last_position_logits_agree_with_the_reference(llm, reference) -> None:
    import torch

    from max.nn.kv_cache import ContinuousKVCacheManager

    runner = llm.pipeline.model
    manager = ContinuousKVCacheManager(runner.kv_params, runner.num_layers, 1, 64)
    slot = manager.claim()
    prompt = llm.tokenizer.encode_sync(PROMPTS[1]).tolist()
    want, cache = reference.prefill(prompt, capacity=64)
    tokens = np.array([prompt], np.int64)
    for step in range(6):
        inputs = manager.fetch([slot], tokens.shape[1])
        logits, new_kv = runner.step(tokens, inputs)
        for layer, kv in enumerate(new_kv):
            manager.commit([slot], layer, kv)
        manager.advance([slot], tokens.shape[1])
        np.testing.assert_allclose(logits[0], want.numpy(), atol=1e-3, rtol=0)
        nxt = int(want.argmax())
        tokens = np.array([[nxt]], np.int64)
        want = reference.forward(torch.tensor([[nxt]]), cache)[0, -1]


def test_bad_input_is_refused_and_the_pipeline_stays_usable(llm, tmp_path) -> None:
    from max.pipelines.lib.config import PipelineConfig
    from max.pipelines.lib.registry import PIPELINE_REGISTRY

    with pytest.raises(ValueError, match="prompt 1 is empty"):
        llm.generate(["hello", ""], use_tqdm=False)
    with pytest.raises(ValueError, match="no prompts given"):
        llm.generate([], use_tqdm=False)
    with pytest.raises(ValueError, match="max_new_tokens must be a positive int, got 0"):
        llm.generate("hello", max_new_tokens=0, use_tqdm=False)
    with pytest.raises(ValueError, match="prompt 0: .* 9001 tokens, more than max_length 8192"):
        llm.generate("word " * 9000, use_tqdm=False)
    cut = tmp_path / "cut.gguf"
    with open(MODEL, "rb") as f:
        cut.write_bytes(f.read(4 << 20))
    with pytest.raises(ValueError, match="truncated"):
        PIPELINE_REGISTRY.retrieve(PipelineConfig(model_path=str(cut)))
    import gguf

    other = tmp_path / "gpt2.gguf"
    w = gguf.GGUFWriter(str(other), "gpt2")
    w.add_tensor("token_embd.weight", np.zeros((4, 8), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ValueError, match="architecture 'gpt2' is not supported"):
        PIPELINE_REGISTRY.retrieve(PipelineConfig(model_path=str(other)))
    with pytest.raises(FileNotFoundError):
        PIPELINE_REGISTRY.retrieve(PipelineConfig(model_path=str(tmp_path / "missing.gguf")))
    with pytest.raises(TypeError, match="unknown option"):
        PipelineConfig(model_path=str(MODEL), max_lenght=5)
    assert llm.generate("The capital of France is", max_new_tokens=1, use_tqdm=False,
                        sampling_params=GREEDY) == [" Paris"]


def test_sampling_is_reproducible_with_a_seed(llm) -> None:
    params = SamplingParams(temperature=0.8, top_k=40, top_p=0.95, seed=1234)
    a = llm.generate(PROMPTS[0], max_new_tokens=12, use_tqdm=False, sampling_params=params)
    b = llm.generate(PROMPTS[0], max_new_tokens=12, use_tqdm=False, sampling_params=params)
    assert a == b and a[0]


def test_a_model_path_copied_elsewhere_loads(tmp_path) -> None:
    """The model file is found by path, not by package: a copy works the same."""
    from max.pipelines.lib.registry import PIPELINE_REGISTRY

    copy = tmp_path / "model.gguf"
    shutil.copy(MODEL, copy)
    assert PIPELINE_REGISTRY.retrieve_architecture(str(copy)).name == "llama"


def test_max_generate_streams_and_reports_speed(llm, capsys) -> None:
    from max.entrypoints.cli import main

    assert main(["generate", "--model-path", str(MODEL), "--prompt", "The capital of France is",
                 "--max-new-tokens", "3"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(" Paris")
    assert "prefill: 5 tokens" in err and "decode: 3 tokens" in err and "tokens/s" in err
    assert main(["generate", "--model-path", str(MODEL), "--prompt", "",
                 "--max-new-tokens", "3"]) == 2
    assert "prompt 0 is empty" in capsys.readouterr().err


def test_a_prompt_prefilled_in_chunks_matches_the_reference(llm, reference) -> None:
    """Chunks of 7 tokens: each chunk attends to the cache the earlier ones wrote and to
    itself (causal), with a batch of two so that the slot's past is gathered."""
    pipeline = llm.pipeline
    old = pipeline.prefill_chunk_size
    pipeline.prefill_chunk_size = 7
    try:
        ids = [llm.tokenizer.encode_sync(p).tolist() for p in PROMPTS[1:]]
        assert max(len(i) for i in ids) > 7
        assert _ids(llm, PROMPTS[1:], 8) == [reference.greedy(i, 8) for i in ids]
    finally:
        pipeline.prefill_chunk_size = old


def test_the_pipeline_runs_text_generation_requests(llm, reference) -> None:
    """The documented path: PIPELINE_REGISTRY -> tokenizer + pipeline; TextGenerationRequest
    with SamplingParams -> context (new_context) -> TextGenerationPipeline.execute."""
    import asyncio

    from max.interfaces import RequestID, TextGenerationInputs, TextGenerationRequest

    tokenizer, pipeline = llm.tokenizer, llm.pipeline
    params = SamplingParams(top_k=1, max_new_tokens=6, seed=0)
    requests = [TextGenerationRequest(RequestID(), "smollm2", prompt=PROMPTS[0],
                                      sampling_params=params),
                TextGenerationRequest(RequestID(), "smollm2", messages=[
                    {"role": "user", "content": "What is the capital of France?"}],
                    sampling_params=params)]
    contexts = [asyncio.run(tokenizer.new_context(r)) for r in requests]
    assert contexts[1].prompt_tokens.tolist() == tokenizer.encode_sync(
        tokenizer.apply_chat_template(requests[1].messages), add_special_tokens=False).tolist()
    batch = {c.request_id: c for c in contexts}
    tokens: dict = {r: [] for r in batch}
    for _ in range(10):
        out = pipeline.execute(TextGenerationInputs([batch], num_steps=2))
        for rid, o in out.items():
            tokens[rid] += o.tokens
        if all(o.is_done for o in out.values()):
            break
    for c in contexts:
        pipeline.release(c.request_id)
        want = reference.greedy(c.prompt_tokens.tolist(), 6)
        assert tokens[c.request_id] == want
    assert "Paris" in tokenizer.decode_sync(tokens[contexts[1].request_id])
    with pytest.raises(ValueError, match="the prompt is empty"):
        asyncio.run(tokenizer.new_context(TextGenerationRequest(RequestID(), "m", prompt="")))


def test_stop_strings_and_stop_token_ids_end_generation(llm, reference) -> None:
    ids = llm.tokenizer.encode_sync(PROMPTS[0]).tolist()
    want = reference.greedy(ids, 12)  # " Paris.\n\nThe answer is: ..."
    text = llm.tokenizer.decode_sync(want, skip_special_tokens=True)
    assert text.startswith(" Paris.\n\nThe")
    params = SamplingParams(top_k=1, seed=0, stop=["\n\n"])
    assert llm.generate(PROMPTS[0], max_new_tokens=12, use_tqdm=False,
                        sampling_params=params) == [" Paris."]
    period = want[1]  # the token after " Paris"
    params = SamplingParams(top_k=1, seed=0, stop_token_ids=[period])
    got = _ids_with(llm, PROMPTS[0], 12, params)
    assert got == want[:2]


def _ids_with(llm, prompt, n, params):
    out = []
    for (token,) in llm.stream(prompt, n, params):
        if token is not None:
            out.append(token)
    return out


def test_fused_projection_weights_concatenate_rows_of_one_encoding() -> None:
    from max.graph.quantization import QuantizationEncoding
    from max.pipelines.architectures.llama3.model import fused_weights

    rng = np.random.default_rng(0)
    state = {f"blk.3.{n}.weight": rng.integers(0, 255, (r, 360), dtype=np.uint8)
             for n, r in (("attn_q", 576), ("attn_k", 192), ("attn_v", 192),
                          ("ffn_gate", 1536), ("ffn_up", 1536))}
    q41 = QuantizationEncoding.Q4_1
    encodings = {name: q41 for name in state}
    fused = fused_weights(state, "blk.3.", encodings)
    qkv = fused["blk.3.attn_qkv.weight"]
    assert qkv.shape == (960, 360)
    np.testing.assert_array_equal(qkv[576:768], state["blk.3.attn_k.weight"])
    np.testing.assert_array_equal(fused["blk.3.ffn_gate_up.weight"][1536:],
                                  state["blk.3.ffn_up.weight"])
    # Parts of different encodings stay apart (a GGUF may keep attn_v at higher precision).
    encodings["blk.3.attn_v.weight"] = QuantizationEncoding.Q8_0
    assert sorted(fused_weights(state, "blk.3.", encodings)) == ["blk.3.ffn_gate_up.weight"]
