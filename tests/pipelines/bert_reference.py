"""The tests' reference: a BERT sentence embedder in plain PyTorch ops (no transformers), from
the checkpoint's state dict, written from the model's definition (Hugging Face ``BertModel``,
eval mode, then sentence-transformers' mean pooling and ``F.normalize``)."""

from __future__ import annotations

import math

import numpy as np


def torch_embed(state: dict[str, np.ndarray], config, input_ids: np.ndarray,
                attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    w = {k: torch.from_numpy(np.array(v)) for k, v in state.items()}  # writable copies
    ids, types = torch.from_numpy(input_ids), torch.from_numpy(token_type_ids)
    mask = torch.from_numpy(attention_mask).to(torch.float32)
    b, s = ids.shape
    h, nh, eps = config.hidden_size, config.num_attention_heads, config.layer_norm_eps
    d = h // nh

    def ln(t, name):
        return F.layer_norm(t, (h,), w[name + ".weight"], w[name + ".bias"], eps)

    with torch.no_grad():
        x = (F.embedding(ids, w["embeddings.word_embeddings.weight"])
             + w["embeddings.position_embeddings.weight"][:s]
             + F.embedding(types, w["embeddings.token_type_embeddings.weight"]))
        x = ln(x, "embeddings.LayerNorm")
        bias = (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float32).min
        for i in range(config.num_hidden_layers):
            p = f"encoder.layer.{i}."

            def lin(t, name, p=p):
                return F.linear(t, w[p + name + ".weight"], w[p + name + ".bias"])

            q, k, v = (lin(x, "attention.self." + n).view(b, s, nh, d).transpose(1, 2)
                       for n in ("query", "key", "value"))
            probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + bias, dim=-1)
            ctx = (probs @ v).transpose(1, 2).reshape(b, s, h)
            x = ln(lin(ctx, "attention.output.dense") + x, p + "attention.output.LayerNorm")
            f = lin(F.gelu(lin(x, "intermediate.dense")), "output.dense")
            x = ln(f + x, p + "output.LayerNorm")
        m = mask[..., None]
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=-1).numpy()
