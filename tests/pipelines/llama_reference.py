"""The tests' and benchmarks' reference: SmolLM2-135M (Llama architecture) in plain PyTorch
ops, float32, read straight from its GGUF file with the ``gguf`` package.

Written from the model's definition (Hugging Face ``LlamaForCausalLM``: RMSNorm, grouped-query
attention with RoPE, SwiGLU MLP, output head tied to the token embedding), independent of
``max``: nothing from it is used except ``smollm2_path`` to find the file.

RoPE layout. llama.cpp's converter permutes the rows of ``attn_q`` and ``attn_k`` within each
head so that Hugging Face's "rotate half" pairs ``(i, i + 32)`` become adjacent pairs
``(2i, 2i + 1)``. By default the weights are kept exactly as the file stores them and RoPE
rotates adjacent pairs (GPT-J style, what llama.cpp itself computes): no reordering, and a
model built from the same GGUF rows needs the same RoPE. ``load_reference(path, rope="half")``
undoes the permutation and uses rotate-half RoPE instead; the tests check both give the same
logits. Either way ``ReferenceLlama.weights`` holds the file's rows unchanged.

Example:
    >>> ref = load_reference(smollm2_path())                      # doctest: +SKIP
    >>> ref.greedy([504, 3575, 282, 4649, 314], 1)                # doctest: +SKIP
    [7042]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

EOS_ID = 2  # <|im_end|>


@dataclass(frozen=True)
class LlamaConfig:
    """Hyperparameters read from the GGUF metadata (``llama.*`` keys)."""

    n_layers: int
    hidden: int
    ffn: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab: int
    rope_theta: float
    rms_eps: float
    context_length: int


def _field(reader, key: str):
    field = reader.fields.get(key)
    if field is None:
        raise KeyError(f"GGUF file has no metadata key {key!r}")
    return field.contents()


def read_gguf(path: str | Path) -> tuple[LlamaConfig, dict[str, np.ndarray], list[str]]:
    """The config, the dequantized float32 weights keyed by GGUF tensor name, and the token list.

    Arrays have numpy (row-major) shapes, i.e. GGUF's dims reversed: a projection weight is
    ``(out_features, in_features)`` as ``F.linear`` takes it; ``token_embd.weight`` is
    ``(vocab, hidden)``. Rows of ``attn_q``/``attn_k`` are in the file's (llama.cpp) order.
    """
    import gguf

    reader = gguf.GGUFReader(str(path))
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise ValueError(f"{path}: general.architecture is {arch!r}, expected 'llama'")
    hidden = int(_field(reader, "llama.embedding_length"))
    n_heads = int(_field(reader, "llama.attention.head_count"))
    tokens = list(_field(reader, "tokenizer.ggml.tokens"))
    config = LlamaConfig(
        n_layers=int(_field(reader, "llama.block_count")),
        hidden=hidden,
        ffn=int(_field(reader, "llama.feed_forward_length")),
        n_heads=n_heads,
        n_kv_heads=int(_field(reader, "llama.attention.head_count_kv")),
        head_dim=hidden // n_heads,
        vocab=len(tokens),
        rope_theta=float(_field(reader, "llama.rope.freq_base")),
        rms_eps=float(_field(reader, "llama.attention.layer_norm_rms_epsilon")),
        context_length=int(_field(reader, "llama.context_length")),
    )
    weights = {}
    for t in reader.tensors:
        arr = gguf.quants.dequantize(t.data, t.tensor_type)
        shape = tuple(int(d) for d in reversed(t.shape))
        weights[t.name] = np.array(arr.reshape(shape), dtype=np.float32)  # a writable copy
    return config, weights, tokens


def unpermute_rope_rows(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's q/k row permutation: per head, rows ``(0, 32, 1, 33, ...)`` of HF order
    were stored as ``(0, 1, 2, 3, ...)``; this returns the rows in HF (rotate-half) order."""
    out_f, in_f = w.shape
    d = out_f // n_heads
    return w.reshape(n_heads, d // 2, 2, in_f).swapaxes(1, 2).reshape(out_f, in_f).copy()


class KVCache:
    """Preallocated per-layer K/V for a batch of sequences, each row with its own length.

    ``k[layer]`` and ``v[layer]`` are ``(batch, n_kv_heads, capacity, head_dim)``; row ``b``
    holds valid entries at positions ``[0, lengths[b])``.
    """

    def __init__(self, config: LlamaConfig, batch: int = 1, capacity: int = 2048) -> None:
        shape = (batch, config.n_kv_heads, capacity, config.head_dim)
        self.k = [torch.zeros(shape) for _ in range(config.n_layers)]
        self.v = [torch.zeros(shape) for _ in range(config.n_layers)]
        self.lengths = [0] * batch
        self.capacity = capacity

    @property
    def batch(self) -> int:
        return len(self.lengths)

    @classmethod
    def stack(cls, caches: Sequence[KVCache], config: LlamaConfig,
              capacity: int | None = None) -> KVCache:
        """One batch cache whose row ``i`` is a copy of the single-row cache ``caches[i]``."""
        if any(c.batch != 1 for c in caches):
            raise ValueError("KVCache.stack takes single-row caches")
        capacity = capacity or max(c.capacity for c in caches)
        longest = max(c.lengths[0] for c in caches)
        if longest > capacity:
            raise ValueError(f"KVCache.stack: a row holds {longest} tokens, over the capacity "
                             f"{capacity}")
        out = cls(config, len(caches), capacity)
        for i, c in enumerate(caches):
            n = c.lengths[0]
            for layer in range(config.n_layers):
                out.k[layer][i, :, :n] = c.k[layer][0, :, :n]
                out.v[layer][i, :, :n] = c.v[layer][0, :, :n]
            out.lengths[i] = n
        return out


class ReferenceLlama:
    """SmolLM2 forward in float32 PyTorch with an explicit :class:`KVCache`."""

    def __init__(self, config: LlamaConfig, weights: dict[str, np.ndarray],
                 tokens: list[str] | None = None, rope: str = "interleaved") -> None:
        if rope not in ("interleaved", "half"):
            raise ValueError(f"rope must be 'interleaved' or 'half', got {rope!r}")
        self.config, self.weights, self.tokens, self.rope = config, weights, tokens or [], rope
        c = config

        def t(name: str) -> torch.Tensor:
            return torch.from_numpy(weights[name])

        def qk(name: str, heads: int) -> torch.Tensor:
            w = weights[name]
            return torch.from_numpy(unpermute_rope_rows(w, heads) if rope == "half" else w)

        self.embed = t("token_embd.weight")
        # Matmul weights are kept transposed, (in, out): x @ w beats F.linear(x, w) on this CPU
        # for a few rows (2x at batch 8, 1.3x for the output head) and ties it for prefill.
        head = t("output.weight") if "output.weight" in weights else self.embed
        self.head = head.t().contiguous()
        self.norm = t("output_norm.weight")
        self.layers = []
        for i in range(c.n_layers):
            p = f"blk.{i}."
            # q, k, v in one matmul and gate, up in another: fewer, larger GEMMs.
            qkv = torch.cat([qk(p + "attn_q.weight", c.n_heads),
                             qk(p + "attn_k.weight", c.n_kv_heads), t(p + "attn_v.weight")])
            gate_up = torch.cat([t(p + "ffn_gate.weight"), t(p + "ffn_up.weight")])
            self.layers.append(dict(
                attn_norm=t(p + "attn_norm.weight"), qkv=qkv.t().contiguous(),
                wo=t(p + "attn_output.weight").t().contiguous(),
                ffn_norm=t(p + "ffn_norm.weight"), gate_up=gate_up.t().contiguous(),
                down=t(p + "ffn_down.weight").t().contiguous(),
            ))
        inv = 1.0 / c.rope_theta ** (torch.arange(0, c.head_dim, 2, dtype=torch.float64)
                                     / c.head_dim)
        self._inv_freq = inv
        self._cos = self._sin = torch.empty(0, c.head_dim // 2)
        self._grow_rope(2048)

    def _grow_rope(self, n: int) -> None:
        if n <= self._cos.shape[0]:
            return
        ang = torch.arange(n, dtype=torch.float64)[:, None] * self._inv_freq[None, :]
        self._cos, self._sin = ang.cos().float(), ang.sin().float()

    def new_cache(self, batch: int = 1, capacity: int = 2048) -> KVCache:
        """An empty cache for ``batch`` sequences of up to ``capacity`` tokens each."""
        return KVCache(self.config, batch, capacity)

    def _apply_rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x: (B, T, H, D); cos/sin: (B, T, 1, D/2)."""
        if self.rope == "interleaved":
            x0, x1 = x[..., 0::2], x[..., 1::2]
            return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), -1).flatten(-2)
        h = x.shape[-1] // 2
        x0, x1 = x[..., :h], x[..., h:]
        return torch.cat((x0 * cos - x1 * sin, x0 * sin + x1 * cos), -1)

    def _rms(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), w, self.config.rms_eps)

    @torch.inference_mode()
    def forward(self, tokens: Sequence[int] | Sequence[Sequence[int]] | torch.Tensor,
                cache: KVCache, last_only: bool = False) -> torch.Tensor:
        """Run ``tokens`` (``(T,)`` or ``(B, T)`` ids) after what ``cache`` holds; returns logits.

        Row ``b`` of the batch continues at position ``cache.lengths[b]`` (prefill: a long ``T``
        on an empty cache; decode: ``T == 1``), and the cache grows by ``T`` in every row.
        Returns float32 logits ``(B, T, vocab)`` (``(B, 1, vocab)`` for the last position only
        when ``last_only``); a 1-D input gives ``(T, vocab)``.
        """
        ids = torch.as_tensor(tokens, dtype=torch.long)
        squeeze = ids.dim() == 1
        if squeeze:
            ids = ids[None]
        if ids.dim() != 2 or ids.shape[0] != cache.batch:
            raise ValueError(f"forward: tokens of shape {tuple(ids.shape)} do not match a cache "
                             f"of batch {cache.batch} (expected (T,) or ({cache.batch}, T))")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.config.vocab):
            raise ValueError(f"forward: token ids must lie in [0, {self.config.vocab})")
        c = self.config
        b, t = ids.shape
        start = list(cache.lengths)
        end = max(start) + t
        if end > cache.capacity:
            raise ValueError(f"forward: {end} tokens exceed the cache capacity {cache.capacity}")
        self._grow_rope(end)
        uniform = len(set(start)) == 1
        pos = torch.tensor(start)[:, None] + torch.arange(t)[None, :]  # (B, T)
        cos, sin = self._cos[pos][:, :, None], self._sin[pos][:, :, None]
        # Key j is visible to query (b, i) when j <= pos[b, i]; a bool mask (True = attend).
        mask, causal = None, uniform and start[0] == 0 and t > 1
        if not (uniform and (t == 1 or causal)):
            mask = (torch.arange(end)[None, None, :] <= pos[:, :, None])[:, None]  # (B,1,T,L)
        nq, nkv, d = c.n_heads, c.n_kv_heads, c.head_dim
        rows = torch.arange(b)[:, None]
        x = F.embedding(ids, self.embed)
        for layer, w in enumerate(self.layers):
            h = self._rms(x, w["attn_norm"])
            qkv = (h @ w["qkv"]).view(b, t, nq + 2 * nkv, d)
            qk = self._apply_rope(qkv[:, :, : nq + nkv], cos, sin)
            q = qk[:, :, :nq].transpose(1, 2)                       # (B, nq, T, D)
            k_new, v_new = qk[:, :, nq:], qkv[:, :, nq + nkv:]      # (B, T, nkv, D)
            kc, vc = cache.k[layer], cache.v[layer]
            if uniform:
                s0 = start[0]
                kc[:, :, s0:s0 + t] = k_new.transpose(1, 2)
                vc[:, :, s0:s0 + t] = v_new.transpose(1, 2)
            else:  # advanced indices (rows, pos) come first: target is (B, T, nkv, D)
                kc[rows, :, pos] = k_new
                vc[rows, :, pos] = v_new
            if t == 1:  # the query heads sharing a KV head as rows of one (faster than gqa)
                att = F.scaled_dot_product_attention(
                    q.reshape(b, nkv, nq // nkv, d), kc[:, :, :end], vc[:, :, :end],
                    attn_mask=mask).view(b, nq, 1, d)
            else:
                att = F.scaled_dot_product_attention(q, kc[:, :, :end], vc[:, :, :end],
                                                     attn_mask=mask, is_causal=causal,
                                                     enable_gqa=True)
            x = x + att.transpose(1, 2).reshape(b, t, nq * d) @ w["wo"]
            h = self._rms(x, w["ffn_norm"])
            gate, up = (h @ w["gate_up"]).split(c.ffn, -1)
            x = x + (F.silu(gate) * up) @ w["down"]
        for i in range(b):
            cache.lengths[i] += t
        if last_only:
            x = x[:, -1:]
        logits = self._rms(x, self.norm) @ self.head
        return logits[0] if squeeze else logits

    __call__ = forward

    def prefill(self, prompt_ids: Sequence[int], capacity: int = 2048
                ) -> tuple[torch.Tensor, KVCache]:
        """A fresh one-row cache holding ``prompt_ids`` and the logits ``(vocab,)`` after it."""
        if len(prompt_ids) == 0:
            raise ValueError("prefill: the prompt is empty (SmolLM2 has no BOS to start from)")
        cache = self.new_cache(1, capacity)
        return self.forward(list(prompt_ids), cache, last_only=True)[-1], cache

    def greedy(self, prompt_ids: Sequence[int], max_new_tokens: int,
               stop_ids: Sequence[int] = (EOS_ID,)) -> list[int]:
        """Greedy (argmax) continuation of ``prompt_ids``: the new ids only, at most
        ``max_new_tokens`` of them, ending with a stop id if one was produced."""
        return self.greedy_batch([prompt_ids], max_new_tokens, stop_ids)[0]

    def greedy_batch(self, prompts: Sequence[Sequence[int]], max_new_tokens: int,
                     stop_ids: Sequence[int] = (EOS_ID,)) -> list[list[int]]:
        """Greedy continuations of several prompts (any lengths) decoded together as one batch.

        Each prompt is prefilled on its own, then all rows decode one token per step in a single
        batched forward (rows that stopped keep running, their tokens discarded). Returns what
        :meth:`greedy` would return for each prompt.
        """
        if max_new_tokens < 0:
            raise ValueError(f"greedy: max_new_tokens must be >= 0, got {max_new_tokens}")
        if not prompts or max_new_tokens == 0:
            return [[] for _ in prompts]
        cap = max(len(p) for p in prompts) + max_new_tokens
        firsts, caches = zip(*(self.prefill(p, cap) for p in prompts))
        cache = caches[0] if len(caches) == 1 else KVCache.stack(caches, self.config, cap)
        nxt = torch.stack(firsts).argmax(-1)                         # (B,)
        stops = set(stop_ids)
        out: list[list[int]] = [[] for _ in prompts]
        done = [False] * len(prompts)
        for step in range(max_new_tokens):
            for i, tok in enumerate(nxt.tolist()):
                if not done[i]:
                    out[i].append(tok)
                    done[i] = tok in stops
            if all(done) or step == max_new_tokens - 1:
                break
            nxt = self.forward(nxt[:, None], cache)[:, -1].argmax(-1)
        return out

    def decode_text(self, ids: Sequence[int]) -> str:
        """Token ids to text via the GGUF token list (byte-level BPE: 'Ġ' is a space)."""
        return _bytes_decoder()(self.tokens[i] for i in ids)


def _bytes_decoder():
    """GPT-2 byte-level BPE: tokens are strings over a printable stand-in for the 256 bytes."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for byte in range(256):
        if byte not in bs:
            bs.append(byte)
            cs.append(256 + n)
            n += 1
    back = {chr(ch): byte for byte, ch in zip(bs, cs)}

    def decode(tokens) -> str:
        data = bytes(back[ch] for tok in tokens for ch in tok if ch in back)
        return data.decode("utf-8", errors="replace")

    return decode


def load_reference(path: str | Path, rope: str = "interleaved") -> ReferenceLlama:
    """The reference model of the GGUF file at ``path`` (weights dequantized to float32)."""
    config, weights, tokens = read_gguf(path)
    return ReferenceLlama(config, weights, tokens, rope)


def token_ids(model: ReferenceLlama, pieces: Sequence[str]) -> list[int]:
    """Ids of exact token strings of the GGUF vocabulary (e.g. ``['The', 'Ġcapital']``)."""
    index = {tok: i for i, tok in enumerate(model.tokens)}
    missing = [p for p in pieces if p not in index]
    if missing:
        raise KeyError(f"not in the GGUF token list: {missing}")
    return [index[p] for p in pieces]


# ---- timing helpers for the benchmarks (float32, inference mode, 2 threads) ------------------

def _prompt(model: ReferenceLlama, n: int, seed: int = 0) -> list[int]:
    rng = np.random.default_rng(seed)
    return rng.integers(3, model.config.vocab, size=n).tolist()


def prefill_tokens_per_s(model: ReferenceLlama, n_tokens: int = 128, repeats: int = 3,
                         threads: int = 2) -> float:
    """Best-of-``repeats`` prefill throughput for an ``n_tokens`` prompt (logits of the last
    position only, as generation needs)."""
    torch.set_num_threads(threads)
    ids = _prompt(model, n_tokens)
    model.prefill(ids, n_tokens)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.prefill(ids, n_tokens)
        best = min(best, time.perf_counter() - t0)
    return n_tokens / best


def decode_tokens_per_s(model: ReferenceLlama, batch: int = 1, steps: int = 32,
                        prompt_len: int = 128, threads: int = 2) -> float:
    """Decode throughput (generated tokens per second over all rows) of ``batch`` sequences
    whose prompts are ``prompt_len`` tokens long, rows of batch > 1 differing in length by up to
    ``batch - 1`` tokens: ``batch`` over the median time of ``steps`` steps (the median, as a
    2-thread run on a shared machine sees a few steps stall); prefill is not timed."""
    torch.set_num_threads(threads)
    prompts = [_prompt(model, prompt_len - i, seed=i) for i in range(batch)]
    cap = prompt_len + steps + 1
    caches = [model.prefill(p, cap)[1] for p in prompts]
    cache = caches[0] if batch == 1 else KVCache.stack(caches, model.config, cap)
    nxt = torch.full((batch, 1), 100, dtype=torch.long)
    nxt = model.forward(nxt, cache)[:, -1:].argmax(-1)  # warm-up step
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        nxt = model.forward(nxt, cache)[:, -1:].argmax(-1)
        times.append(time.perf_counter() - t0)
    return batch / float(np.median(times))
