"""The BERT encoder on a small random checkpoint the tests write (no model package needed):
numbers against the plain-PyTorch reference, weights bound at load time, and the errors for
bad config files and checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch (the test extra) is the reference")
from safetensors.numpy import save_file  # noqa: E402

from bert_reference import torch_embed  # noqa: E402

from max.driver import CPU  # noqa: E402
from max.engine import InferenceSession  # noqa: E402
from max.pipelines.architectures.bert import (  # noqa: E402
    BertConfig, build_graph, load_state, weight_shapes,
)

# Hidden 128: at 96 and below (symbolic batch and length) the compiler aborts on the attention
# scores' softmax (scf.forall cast assertion in schedule_tensors; reported with a repro).
SMALL = {"vocab_size": 50, "hidden_size": 128, "num_hidden_layers": 2,
         "num_attention_heads": 4, "intermediate_size": 256, "max_position_embeddings": 16,
         "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
         "model_type": "bert"}


def _random_state(config: BertConfig, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    state = {}
    for name, shape in weight_shapes(config).items():
        scale = 0.5 if name.endswith("bias") or "embeddings" in name else shape[-1] ** -0.5
        state[name] = (rng.standard_normal(shape) * scale).astype(np.float32)
        if name.endswith("LayerNorm.weight"):
            state[name] += 1
    return state


def _tokens(rng: np.random.Generator, lengths: list[int], seq: int):
    ids = rng.integers(1, SMALL["vocab_size"], (len(lengths), seq)).astype(np.int64)
    mask = (np.arange(seq)[None, :] < np.array(lengths)[:, None]).astype(np.int64)
    types = rng.integers(0, 2, ids.shape).astype(np.int64)
    return ids * mask, mask, types  # padding: id 0


@pytest.fixture(scope="module")
def config() -> BertConfig:
    return BertConfig.from_dict(SMALL)


@pytest.fixture(scope="module")
def session() -> InferenceSession:
    return InferenceSession(devices=[CPU()])


def test_matches_torch_for_padded_batches_of_any_shape(tmp_path: Path, config: BertConfig,
                                                       session: InferenceSession) -> None:
    path = tmp_path / "model.safetensors"
    state = _random_state(config, 0)
    save_file({**state, "embeddings.position_ids": np.arange(16)[None]}, str(path))
    weights = load_state(path, config)
    assert set(weights) == set(weight_shapes(config))  # position_ids: in the file, not read
    model = session.load(build_graph(config), weights_registry=weights)
    assert {w.name for w in model._record.weights} == set(weights)
    rng = np.random.default_rng(1)
    for lengths, seq in (([5, 2, 7, 1], 7), ([3], 3), ([16, 9], 16)):  # one model, 3 shapes
        tokens = _tokens(rng, lengths, seq)
        (out,) = model.execute(*tokens)
        got = out.to_numpy()
        assert got.shape == (len(lengths), 128) and got.dtype == np.float32
        np.testing.assert_allclose(got, torch_embed(state, config, *tokens), rtol=0, atol=2e-6)
    # Padding changes nothing: a row alone, unpadded, gives the same embedding.
    ids, mask, types = _tokens(rng, [3, 6], 6)
    (both,) = model.execute(ids, mask, types)
    (alone,) = model.execute(ids[:1, :3], mask[:1, :3], types[:1, :3])
    np.testing.assert_allclose(alone.to_numpy()[0], both.to_numpy()[0], rtol=0, atol=2e-6)
    # Longer than the position table (16): the position gather's index check refuses it.
    with pytest.raises(IndexError, match="gather: index out of range for axis 0 of size 16"):
        model.execute(*_tokens(rng, [17], 17))


def test_other_weights_same_graph(config: BertConfig, session: InferenceSession) -> None:
    """The weights are the model's, not the compiled code's: other values, other results."""
    tokens = _tokens(np.random.default_rng(2), [4, 2], 4)
    for seed in (3, 4):
        state = _random_state(config, seed)
        model = session.load(build_graph(config), weights_registry=state)
        np.testing.assert_allclose(model.execute(*tokens)[0].to_numpy(),
                                   torch_embed(state, config, *tokens), rtol=0, atol=2e-6)


def test_checkpoint_errors(tmp_path: Path, config: BertConfig) -> None:
    state = _random_state(config, 0)
    path = tmp_path / "m.safetensors"
    broken = dict(state)
    broken["encoder.layer.1.attention.self.qeury.weight"] = broken.pop(
        "encoder.layer.1.attention.self.query.weight")
    save_file(broken, str(path))
    with pytest.raises(ValueError, match=r"'encoder\.layer\.1\.attention\.self\.query\.weight' "
                       r"is missing; closest names in the file: encoder\.layer\.1\.attention\."
                       r"self\.qeury\.weight"):
        load_state(path, config)
    save_file({**state, "embeddings.LayerNorm.bias": np.zeros(31, np.float32)}, str(path))
    with pytest.raises(ValueError, match=r"'embeddings\.LayerNorm\.bias' has shape \[31\], "
                       r"expected \[128\]"):
        load_state(path, config)
    save_file({**state, "embeddings.LayerNorm.bias": np.zeros(128, np.float16)}, str(path))
    with pytest.raises(ValueError, match=r"'embeddings\.LayerNorm\.bias' has dtype float16"):
        load_state(path, config)
    save_file(state, str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(ValueError, match="truncated safetensors file"):
        load_state(path, config)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_state(tmp_path / "absent.safetensors", config)


@pytest.mark.parametrize("change, message", [
    ({"num_attention_heads": 5}, "hidden_size 128 is not a multiple of num_attention_heads 5"),
    ({"hidden_act": "relu"}, "hidden_act 'relu' is not supported"),
    ({"position_embedding_type": "relative_key"}, "position_embedding_type 'relative_key'"),
    ({"num_hidden_layers": 0}, "num_hidden_layers must be a positive int, got 0"),
    ({"hidden_size": "128"}, "hidden_size must be a positive int, got '128'"),
    ({"layer_norm_eps": -1.0}, r"layer_norm_eps must be a float in \(0, 1\)"),
])
def test_config_errors(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BertConfig.from_dict({**SMALL, **change})


def test_config_from_model_dir(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(SMALL))
    assert BertConfig.from_model_dir(tmp_path).max_seq_length == 16  # max positions
    (tmp_path / "tokenizer.json").write_text(json.dumps({"truncation": {"max_length": 12}}))
    assert BertConfig.from_model_dir(tmp_path).max_seq_length == 12
    (tmp_path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 8}))
    assert BertConfig.from_model_dir(tmp_path).max_seq_length == 8
    (tmp_path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 17}))
    with pytest.raises(ValueError, match="max_seq_length 17 exceeds max_position_embeddings 16"):
        BertConfig.from_model_dir(tmp_path)
    del_keys = {k: v for k, v in SMALL.items() if k != "vocab_size"}
    (tmp_path / "config.json").write_text(json.dumps(del_keys))
    with pytest.raises(ValueError, match="config.json lacks vocab_size"):
        BertConfig.from_model_dir(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        BertConfig.from_model_dir(tmp_path)


def test_attention_with_a_small_hidden_size(session: InferenceSession) -> None:
    """Hidden 64, symbolic batch and length: this shape once aborted the compiler in
    mo-schedule-tensors (a cast to scf.forall, in a row group's fusion); now against numpy."""
    from max.dtype import DType
    from max.graph import DeviceRef, Dim, Graph, TensorType, ops

    b, s = Dim("batch"), Dim("seq_len")

    def heads(t):  # [b, s, 64] -> [b, 4, s, 16]
        return ops.permute(ops.reshape(t, [b, s, 4, 16]), [0, 2, 1, 3])

    def forward(x, wq, wk, bias):
        return ops.softmax(heads(x @ wq + bias) @ ops.transpose(heads(x @ wk + bias), -1, -2))

    types = [TensorType(DType.float32, shape, DeviceRef.CPU())
             for shape in ([b, s, 64], [64, 64], [64, 64], [64])]
    model = session.load(Graph("small_attention", forward, input_types=types))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 64)).astype(np.float32)
    wq, wk = (rng.standard_normal((64, 64)).astype(np.float32) / 8 for _ in range(2))
    bias = rng.standard_normal(64).astype(np.float32)

    def np_heads(t):
        return t.reshape(2, 7, 4, 16).transpose(0, 2, 1, 3)

    scores = np_heads(x.astype(np.float64) @ wq + bias) @ np_heads(
        x.astype(np.float64) @ wk + bias).transpose(0, 1, 3, 2)
    e = np.exp(scores - scores.max(-1, keepdims=True))
    ref = e / e.sum(-1, keepdims=True)
    got = model.execute(x, wq, wk, bias)[0].to_numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
