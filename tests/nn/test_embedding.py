"""Embedding against torch.nn.Embedding (int32 and int64 indices of symbolic shape) and a
Q8_0-quantized table against gguf's dequantization; one compiled graph."""

from __future__ import annotations

from typing import Any

import gguf
import numpy as np
import pytest
import torch
from nn_helpers import CPU, F32, close, compile_module, execute, tt

from max import nn
from max.dtype import DType
from max.graph import Graph, TensorValue
from max.graph.quantization import QuantizationEncoding

VOCAB, DIM = 37, 11


class Tables(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, DIM, F32, CPU, name="word_embeddings.weight")
        self.positions = nn.Embedding(VOCAB, DIM, F32, CPU)
        self.quantized = nn.Embedding(VOCAB, 64, F32, CPU,
                                      quantization_encoding=QuantizationEncoding.Q8_0)

    def __call__(self, ids: TensorValue, ids32: TensorValue) -> list[TensorValue]:
        return [self.tokens(ids), self.positions(ids32), self.quantized(ids)]


def test_embedding_matches_torch(session: Any) -> None:
    ref_tok, ref_pos = torch.nn.Embedding(VOCAB, DIM), torch.nn.Embedding(VOCAB, DIM)
    table = np.random.default_rng(0).standard_normal((VOCAB, 64)).astype(np.float32)
    blocks = gguf.quants.quantize(table, gguf.GGMLQuantizationType.Q8_0)
    tables = Tables()
    assert set(tables.raw_state_dict()) == {
        "tokens.word_embeddings.weight", "positions.weight", "quantized.weight"}
    tables.load_state_dict({
        "tokens.word_embeddings.weight": ref_tok.weight.detach().numpy(),
        "positions.weight": ref_pos.weight.detach().numpy(), "quantized.weight": blocks})
    model = compile_module(session, tables, [tt("batch", "seq", dtype=DType.int64),
                                             tt("n", dtype=DType.int32)])
    dequantized = torch.from_numpy(gguf.quants.dequantize(blocks,
                                                          gguf.GGMLQuantizationType.Q8_0))
    for shape in [(1, 1), (3, 7)]:
        ids = torch.randint(0, VOCAB, shape)
        ids[0, 0] = VOCAB - 1  # the last row too
        ids32 = torch.randint(0, VOCAB, (shape[1] * 2 + 1,), dtype=torch.int32)
        tok, pos, q = execute(model, ids.numpy(), ids32.numpy())
        with torch.no_grad():
            close(tok, ref_tok(ids), rtol=0, atol=0)
            close(pos, ref_pos(ids32), rtol=0, atol=0)
            close(q, torch.nn.functional.embedding(ids, dequantized), rtol=0, atol=0)


def test_embedding_bad_input() -> None:
    emb = nn.Embedding(4, 2, F32, CPU)
    with Graph("bad", input_types=[tt(3)]), pytest.raises(ValueError, match="integer dtype"):
        emb(Graph.current.inputs[0])
    with pytest.raises(ValueError, match="vocab_size must be a positive int"):
        nn.Embedding(0, 2, F32, CPU)
