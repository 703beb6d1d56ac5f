"""The compiled token sampler against an independent numpy sampler (float64, sorted with
numpy's stable argsort) fed the same uniform numbers: greedy, temperature, top-k, top-p,
min-p and their mixes in one batch, ties, the full SmolLM2 vocabulary, the distribution of
many draws (chi-square) and seeded reproducibility. One graph (symbolic batch and vocabulary,
64 candidates) is compiled once for the module."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef
from max.interfaces import GenerationStatus, SamplingParams
from max.pipelines.core import TextContext
from max.pipelines.lib.sampling.penalties import apply_penalties
from max.pipelines.lib.sampling.sampling import (
    SamplingConfig, generator_for, greedy_sampler, is_greedy, sampling_inputs, token_sampler,
)

CPU = DeviceRef.CPU()
CONFIG = SamplingConfig()  # 64 candidates, symbolic vocabulary
EPS = 2e-5  # float32 rounding of a CDF, relative to its total


@pytest.fixture(scope="module")
def sampler():
    """sampler(logits, params, uniform) -> (tokens, logits) from the compiled graph."""
    model = InferenceSession().load(token_sampler(CONFIG, CPU, return_logits=True))

    def run(logits: np.ndarray, params: list[SamplingParams], uniform: np.ndarray):
        t, k, p, m, _ = sampling_inputs(params, [generator_for(q) for q in params], CONFIG)
        tokens, out = model.execute(logits, t, k, p, m, uniform.astype(np.float32))
        tokens, out = tokens.to_numpy(), out.to_numpy()
        assert tokens.shape == (len(params),) and tokens.dtype == np.int64
        return tokens, out

    return run


@dataclass
class Choice:
    """The reference's decision for one row: the kept token ids in draw order, their
    probabilities, and the uniform's target on their CDF."""

    ids: np.ndarray
    probs: np.ndarray
    target: float

    def token(self) -> int:
        cdf = np.cumsum(self.probs)
        return int(self.ids[np.searchsorted(cdf, self.target * cdf[-1], side="right")])

    def accepts(self, token: int) -> bool:
        """Whether ``token`` is the draw, up to float32 rounding of the CDF at its ends."""
        where = np.flatnonzero(self.ids == token)
        if where.size == 0 or self.probs[where[0]] == 0:
            return False
        cdf = np.cumsum(self.probs) / self.probs.sum()
        hi = cdf[where[0]]
        lo = hi - self.probs[where[0]] / self.probs.sum()
        return lo - EPS <= self.target <= hi + EPS


def reference(row: np.ndarray, p: SamplingParams, u: float, cap: int = 64) -> Choice | int:
    """The documented sampler in numpy float64: an int for greedy rows, else a Choice."""
    x = row.astype(np.float64)
    if p.temperature == 0 or p.top_k == 1:
        return int(np.argmax(x))
    z = x / p.temperature
    if p.top_k == -1 and p.top_p >= 1:
        ids = np.arange(z.size)
    else:
        ids = np.argsort(-z, kind="stable")[:cap][: (cap if p.top_k == -1 else p.top_k)]
    probs = np.exp(z[ids] - z[ids].max())
    probs /= probs.sum()
    keep = probs >= p.min_p * probs.max()
    if not (p.top_k == -1 and p.top_p >= 1) and p.top_p < 1:
        keep &= (np.cumsum(probs) - probs) < p.top_p
    return Choice(ids, np.where(keep, probs, 0.0), u)


def check(tokens: np.ndarray, logits: np.ndarray, params: list[SamplingParams],
          uniform: np.ndarray) -> int:
    """Every row's token is the reference's; returns how many rows were exact draws (not
    within EPS of a CDF boundary)."""
    exact = 0
    for i, (tok, p, u) in enumerate(zip(tokens, params, uniform)):
        ref = reference(logits[i], p, float(u))
        if isinstance(ref, int):
            assert tok == ref, (i, p, tok, ref)
            exact += 1
            continue
        assert ref.accepts(int(tok)), (i, p, u, tok, ref.token())
        exact += int(tok) == ref.token()
    return exact


def logits_of(seed: int, batch: int, vocab: int, scale: float = 2.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((batch, vocab)) * scale).astype(
        np.float32)


MIXED = [
    SamplingParams(temperature=0, seed=0),
    SamplingParams(top_k=1, temperature=0.7, seed=0),
    SamplingParams(seed=0),  # whole vocabulary, temperature 1
    SamplingParams(temperature=0.5, seed=0),
    SamplingParams(temperature=2.0, seed=0),
    SamplingParams(top_k=5, seed=0),
    SamplingParams(top_k=40, temperature=0.8, seed=0),
    SamplingParams(top_k=64, temperature=1.3, seed=0),
    SamplingParams(top_p=0.5, seed=0),
    SamplingParams(top_p=0.9, temperature=0.7, seed=0),
    SamplingParams(top_k=20, top_p=0.8, seed=0),
    SamplingParams(top_k=3, top_p=0.3, temperature=1.5, seed=0),
    SamplingParams(min_p=0.2, seed=0),
    SamplingParams(min_p=0.1, top_k=30, top_p=0.95, temperature=0.9, seed=0),
]


@pytest.mark.parametrize("vocab", [64, 1000])
def test_mixed_batch_matches_numpy(sampler, vocab: int) -> None:
    """Rows with different parameters in one batch, many uniform draws each."""
    params = MIXED * 20
    logits = logits_of(vocab, len(params), vocab)
    uniform = np.random.default_rng(7).random(len(params), dtype=np.float32)
    tokens, out = sampler(logits, params, uniform)
    np.testing.assert_array_equal(out, logits)  # return_logits passes them through
    assert check(tokens, logits, params, uniform) >= len(params) - 2


def test_full_smollm2_vocabulary(sampler) -> None:
    params = [SamplingParams(seed=0), SamplingParams(temperature=0, seed=0),
              SamplingParams(top_k=50, temperature=0.7, seed=0),
              SamplingParams(top_p=0.9, top_k=64, seed=0)]
    logits = logits_of(3, len(params), 49152, scale=3.0)
    uniform = np.array([0.1, 0.5, 0.9, 0.35], np.float32)
    tokens, _ = sampler(logits, params, uniform)
    check(tokens, logits, params, uniform)
    assert tokens[1] == np.argmax(logits[1])


def test_greedy_ties_take_the_lowest_id(sampler) -> None:
    logits = np.full((2, 64), -1.0, np.float32)
    logits[:, [9, 4, 30]] = 2.5
    params = [SamplingParams(temperature=0, seed=0), SamplingParams(top_k=1, seed=0)]
    tokens, _ = sampler(logits, params, np.array([0.99, 0.5], np.float32))
    assert tokens.tolist() == [4, 4]


def test_tied_candidates_are_ordered_by_id(sampler) -> None:
    """Equal logits: the lower id comes first in the sorted order, so it takes the lower part
    of the uniform's range; the whole-vocabulary path orders by id anyway."""
    logits = np.full((6, 64), -20.0, np.float32)
    logits[:, [40, 7]] = 3.0  # two equal candidates, probabilities 1/2 each (+ ~0)
    params = [SamplingParams(top_k=2, seed=0)] * 3 + [SamplingParams(seed=0)] * 3
    uniform = np.array([0.1, 0.49, 0.51] * 2, np.float32)
    tokens, _ = sampler(logits, params, uniform)
    assert tokens.tolist() == [7, 7, 40, 7, 7, 40]


def test_top_k_and_top_p_sets(sampler) -> None:
    """Sweeping the uniform over [0, 1) visits exactly the documented kept set."""
    probs = np.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.04])
    logits = np.full((1, 64), -50.0, np.float32)
    ids = np.array([11, 3, 50, 0, 63, 20])
    logits[0, ids] = np.log(probs).astype(np.float32)
    uniform = (np.arange(400, dtype=np.float32) + 0.5) / 400
    cases = {
        (3, 1.0): ids[:3],          # top_k = 3
        (-1, 0.5): ids[:2],         # 0.4 < 0.5, then 0.65 >= 0.5: two tokens
        (-1, 0.35): ids[:1],        # the first token alone reaches 0.35
        (-1, 0.85): ids[:4],        # masses before: 0, 0.4, 0.65, 0.8 (< 0.85), then 0.9
        (4, 0.99): ids[:4],         # top_k cuts first
        (-1, 1.0): ids,             # whole vocabulary (and the ~0 rest)
    }
    for (k, p), expected in cases.items():
        params = [SamplingParams(top_k=k, top_p=p, seed=0)] * len(uniform)
        tokens, _ = sampler(np.repeat(logits, len(uniform), 0), params, uniform)
        assert set(tokens.tolist()) == set(expected.tolist()), (k, p)


def test_min_p_drops_unlikely_tokens(sampler) -> None:
    logits = np.full((1, 64), -50.0, np.float32)
    logits[0, [5, 6, 7]] = np.log([0.6, 0.3, 0.1]).astype(np.float32)
    uniform = (np.arange(200, dtype=np.float32) + 0.5) / 200
    for params, kept in [(SamplingParams(min_p=0.2, seed=0), {5, 6}),
                         (SamplingParams(min_p=0.6, top_k=10, seed=0), {5}),
                         (SamplingParams(min_p=0.1, seed=0), {5, 6, 7})]:
        tokens, _ = sampler(np.repeat(logits, 200, 0), [params] * 200, uniform)
        assert set(tokens.tolist()) == kept, params


def _chi_square_bound(df: int, z: float = 3.719) -> float:
    """The chi-square quantile for a tail of 1e-4 (Wilson-Hilferty)."""
    h = 2.0 / (9.0 * df)
    return df * (1.0 - h + z * math.sqrt(h)) ** 3


@pytest.mark.parametrize("kw", [{}, {"temperature": 0.6}, {"top_k": 6},
                                {"top_p": 0.7, "temperature": 1.4}, {"min_p": 0.3}])
def test_draw_frequencies_match_probabilities(sampler, kw: dict) -> None:
    """20000 draws with seeded uniforms: counts against the exact probabilities."""
    n, vocab = 20000, 64
    row = logits_of(11, 1, vocab, scale=1.0)
    params = SamplingParams(seed=5, **kw)
    uniform = np.random.default_rng(5).random(n, dtype=np.float32)
    tokens, _ = sampler(np.repeat(row, n, 0), [params] * n, uniform)
    ref = reference(row[0], params, 0.0)
    assert isinstance(ref, Choice)
    expected = np.zeros(vocab)
    expected[ref.ids] = ref.probs / ref.probs.sum() * n
    counts = np.bincount(tokens, minlength=vocab)
    assert counts[expected == 0].sum() == 0  # nothing outside the kept set
    big = expected >= 5  # merge the small bins into one
    observed = np.append(counts[big], counts[~big].sum())
    wanted = np.append(expected[big], expected[~big].sum())
    observed, wanted = observed[wanted > 0], wanted[wanted > 0]
    stat = float(((observed - wanted) ** 2 / wanted).sum())
    assert stat < _chi_square_bound(len(wanted) - 1), (stat, len(wanted))


def test_seed_reproduces_a_run(sampler) -> None:
    """A request's generator drawn step after step: the same seed gives the same tokens."""
    logits = logits_of(2, 1, 200, scale=0.5)

    def run(seed: int) -> list[int]:
        params = SamplingParams(seed=seed, top_p=0.95, top_k=50)
        gen = generator_for(params)
        out = []
        for _ in range(30):
            t, k, p, m, u = sampling_inputs([params], [gen], CONFIG)
            out.append(int(sampler(logits, [params], u)[0][0]))
        return out

    assert run(123) == run(123)
    assert run(123) != run(124)


def test_sampling_inputs() -> None:
    params = [SamplingParams(temperature=0.5, top_k=7, top_p=0.9, min_p=0.05, seed=1),
              SamplingParams(seed=2)]
    gens = [generator_for(p) for p in params]
    t, k, p, m, u = sampling_inputs(params, gens)
    assert t.dtype == p.dtype == m.dtype == u.dtype == np.float32 and k.dtype == np.int64
    assert t.tolist() == [0.5, 1.0] and k.tolist() == [7, -1]
    assert p.tolist() == [np.float32(0.9), 1.0] and m.tolist() == [np.float32(0.05), 0.0]
    assert u[0] == np.random.default_rng(1).random(dtype=np.float32)
    assert u[1] == np.random.default_rng(2).random(dtype=np.float32)
    assert ((0 <= u) & (u < 1)).all()


def test_sampling_inputs_errors() -> None:
    with pytest.raises(ValueError, match=r"^sampling_inputs: row 1 asks for top_k=65, above "
                       r"the sampler's max_top_k=64 \(SamplingConfig.max_top_k\)$"):
        sampling_inputs([SamplingParams(seed=0), SamplingParams(top_k=65, seed=0)],
                        [np.random.default_rng(0)] * 2)
    sampling_inputs([SamplingParams(top_k=100, seed=0)], [np.random.default_rng(0)],
                    SamplingConfig(max_top_k=100))
    with pytest.raises(ValueError, match=r"^sampling_inputs: 1 SamplingParams but 2 "
                       r"generators; give one generator per row$"):
        sampling_inputs([SamplingParams(seed=0)], [np.random.default_rng(0)] * 2)
    with pytest.raises(ValueError, match=r"^sampling_inputs: the batch is empty$"):
        sampling_inputs([], [])


def test_sampling_config() -> None:
    assert SamplingConfig().candidates == 64
    assert SamplingConfig(max_top_k=256, vocab_size=100).candidates == 100
    with pytest.raises(ValueError, match=r"^SamplingConfig: max_top_k must be an int >= 1, "
                       r"got 0$"):
        SamplingConfig(max_top_k=0)
    with pytest.raises(ValueError, match=r"^SamplingConfig: vocab_size must be None or an "
                       r"int >= 1, got -3$"):
        SamplingConfig(vocab_size=-3)
    with pytest.raises(ValueError, match=r"^SamplingConfig: in_dtype must be a float dtype, "
                       r"got int32$"):
        SamplingConfig(in_dtype=DType.int32)
    with pytest.raises(TypeError, match=r"^token_sampler: sampling_config must be a "
                       r"SamplingConfig, got dict$"):
        token_sampler({}, CPU)  # type: ignore[arg-type]


def test_graph_signature() -> None:
    """Build only: the input types (static vocabulary here) and the outputs."""
    graph = token_sampler(SamplingConfig(vocab_size=49152, in_dtype=DType.bfloat16), CPU)
    types = [v.type for v in graph.inputs]
    assert [t.dtype for t in types] == [DType.bfloat16, DType.float32, DType.int64,
                                        DType.float32, DType.float32, DType.float32]
    assert [str(d) for d in types[0].shape] == ["batch", "49152"]
    assert all([str(d) for d in t.shape] == ["batch"] for t in types[1:])
    assert [(t.dtype, [str(d) for d in t.shape]) for t in graph.output_types] == [
        (DType.int64, ["batch"])]
    with_logits = token_sampler(SamplingConfig(), CPU, return_logits=True)
    assert [t.dtype for t in with_logits.output_types] == [DType.int64, DType.float32]


def _penalized_by_hand(row: np.ndarray, p: SamplingParams, history: list[int]) -> np.ndarray:
    out = row.astype(np.float64)
    for token in set(history):
        x = out[token]
        x = x / p.repetition_penalty if x > 0 else x * p.repetition_penalty
        out[token] = x - p.frequency_penalty * history.count(token) - p.presence_penalty
    return out


def test_apply_penalties() -> None:
    logits = logits_of(4, 3, 50)
    params = [SamplingParams(repetition_penalty=1.3, frequency_penalty=0.5,
                             presence_penalty=0.25, seed=0),
              SamplingParams(seed=0),
              SamplingParams(repetition_penalty=0.8, presence_penalty=-1.0, seed=0)]
    history = [[1, 4, 4, 9, 1, 4], [1, 2, 3], [0, 49, 49]]
    got = apply_penalties(logits, params, [np.array(h) for h in history],
                          banned=[np.array([], np.int32), np.array([2, 7]), np.array([], np.int64)])
    assert got.dtype == np.float32 and got.shape == logits.shape
    for i in range(3):
        want = _penalized_by_hand(logits[i], params[i], history[i])
        if i == 1:
            want[[2, 7]] = -np.inf
        np.testing.assert_allclose(got[i], want, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(logits, logits_of(4, 3, 50))  # the input is not modified
    with pytest.raises(ValueError, match=r"^apply_penalties: row 0 has a generated token id "
                       r"outside \[0, 50\)$"):
        apply_penalties(logits[:1], params[:1], [np.array([50])])
    with pytest.raises(ValueError, match=r"^apply_penalties: 1 generated_tokens for a batch "
                       r"of 3 rows$"):
        apply_penalties(logits, params, [np.array([1])])


def test_generation_loop_with_text_contexts(sampler) -> None:
    """How a pipeline drives the sampler: a bigram table stands in for the model; each step
    penalizes, masks EOS below min_new_tokens, samples, and updates each request's context.
    Every token is the numpy reference's draw from the same adjusted logits and uniforms,
    and the contexts stop as their parameters say."""
    vocab, eos = 64, 0
    table = logits_of(21, vocab, vocab, scale=2.5)
    table[:, eos] += 1.0  # EOS is likely, so min_new_tokens matters
    params = [SamplingParams(temperature=0, max_new_tokens=6, seed=1),
              SamplingParams(top_k=8, top_p=0.9, min_new_tokens=4, max_new_tokens=12, seed=2),
              SamplingParams(temperature=0.8, repetition_penalty=1.5, frequency_penalty=0.3,
                             max_new_tokens=9, seed=3)]
    contexts = [TextContext(max_length=40, tokens=np.array([5, 9, 13 + i]), eos_token_ids={eos},
                            sampling_params=p) for i, p in enumerate(params)]
    generators = [generator_for(p) for p in params]
    while active := [i for i, c in enumerate(contexts) if not c.is_done]:
        ctxs = [contexts[i] for i in active]
        logits = apply_penalties(
            table[[int(c.all_tokens[-1]) for c in ctxs]], [c.sampling_params for c in ctxs],
            [c.generated_tokens for c in ctxs],
            banned=[c.get_min_token_logit_mask(1)[0] for c in ctxs])
        rows = [c.sampling_params for c in ctxs]
        *_, uniform = sampling_inputs(rows, [generators[i] for i in active], CONFIG)
        tokens, _ = sampler(logits, rows, uniform)
        check(tokens, logits, rows, uniform)
        for c, token in zip(ctxs, tokens):
            c.update(int(token))
    for c, p in zip(contexts, params):
        n = len(c.generated_tokens)
        assert n >= p.min_new_tokens and n <= p.max_new_tokens
        assert (c.status == GenerationStatus.END_OF_SEQUENCE) == (c.generated_tokens[-1] == eos)
        assert eos not in c.generated_tokens[: p.min_new_tokens]


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_greedy_sampler_is_the_argmax(sampler, dtype) -> None:
    """The greedy-only graph picks what the full sampler picks for greedy rows: the argmax,
    the lowest id among equal logits (numpy's argmax), at several batch sizes."""
    config = SamplingConfig(in_dtype=DType.float16) if dtype == np.float16 else CONFIG
    greedy = InferenceSession().load(greedy_sampler(config, CPU))
    rng = np.random.default_rng(11)
    for batch in (1, 3, 8):
        logits = rng.standard_normal((batch, 1000)).astype(dtype)
        logits[0, [17, 400]] = logits.max() + 1  # a tie: the lower id
        got = greedy.execute(logits)[0].to_numpy()
        assert got.dtype == np.int64 and got.shape == (batch,)
        np.testing.assert_array_equal(got, np.argmax(logits.astype(np.float32), axis=-1))
        assert got[0] == 17
        if dtype == np.float32:
            params = [SamplingParams(top_k=1), SamplingParams(temperature=0.0)] * batch
            params = params[:batch]
            assert all(is_greedy(p) for p in params)
            full, _ = sampler(logits, params, np.full(batch, 0.5))
            np.testing.assert_array_equal(got, full)
    assert not is_greedy(SamplingParams(top_k=5)) and not is_greedy(SamplingParams())
