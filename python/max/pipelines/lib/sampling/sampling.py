"""The token sampler compiled into a graph: ``token_sampler`` builds a ``Graph`` that turns a
batch of logits and per-row sampling parameters into one sampled token id per row, and
``sampling_inputs`` makes those per-row inputs on the host from each request's
``SamplingParams`` and its seeded random generator.

What a row does, in order:

1. **Greedy** (``temperature == 0`` or ``top_k == 1``): the argmax of the raw logits; among
   equal maxima the lowest token id.
2. **Temperature**: ``logits / temperature``, then a softmax.
3. **Whole vocabulary** (``top_k == -1`` and ``top_p == 1``): tokens whose probability is
   below ``min_p`` times the largest are dropped, and the token is drawn by inverse CDF over
   the vocabulary in token-id order: the first id whose cumulative probability exceeds
   ``uniform * total``. Exact, no sort, no cap.
4. **Filtered** (``top_k >= 1`` or ``top_p < 1``): the ``SamplingConfig.max_top_k`` most
   likely tokens, in decreasing probability (equal logits: lower id first, as ``ops.top_k``
   orders them), keep the first ``top_k`` (all ``max_top_k`` for ``top_k == -1``); renormalize
   over them; keep the smallest prefix whose mass reaches ``top_p`` (a token is kept while the
   mass of the tokens before it is below ``top_p``); drop those below ``min_p`` times the most
   likely; draw by inverse CDF in that sorted order. ``top_k`` above ``max_top_k`` is refused
   (``sampling_inputs`` raises ``ValueError``); a ``top_p`` nucleus of more than
   ``max_top_k`` tokens is cut to the ``max_top_k`` most likely tokens (the only
   approximation).

Why a cap: the filtered path's work after ``ops.top_k`` grows with ``max_top_k``, and a cap
the size of the vocabulary is a whole sort of the row. ``ops.top_k`` inserts into a sorted
buffer up to k = 64 and selects by radix above (measured on vocab 49152, one row, 2 threads,
AMD EPYC: 0.06 ms for k = 50, 0.11 ms for 64, 0.09-0.10 ms for 65 to 1000, 0.44 ms for the
whole vocabulary). The default ``max_top_k = 64`` keeps sampling cheap; raise it (up to the
vocabulary size) for wider top-k or nucleus sets.

The random numbers come from the caller (``uniform``, one per row in [0, 1)), drawn from a
``numpy.random.Generator`` seeded with ``SamplingParams.seed``, so a seed reproduces a run.
Penalties (frequency, presence, repetition) and ``min_new_tokens`` masking act on the logits
before this graph and are not part of it (``penalties.apply_penalties`` does them on the
host).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from max.dtype import DType
from max.graph import DeviceRef, Graph, TensorType, TensorValue, ops
from max.interfaces import SamplingParams

__all__ = ["SamplingConfig", "generator_for", "greedy_sampler", "is_greedy", "sampling_inputs",
           "token_sampler"]

#: ``ops.top_k`` sorts at most this many candidates without a full sort of the row.
FAST_TOP_K = 64


@dataclass(frozen=True)
class SamplingConfig:
    """The static shape of a token sampler graph.

    Attributes:
        max_top_k: How many of the most likely tokens the filtered path (``top_k``,
            ``top_p``) considers; the largest ``top_k`` a request may ask for. Up to 64 is
            cheap; more sorts the whole row.
        vocab_size: The static vocabulary size of the logits, or None for a symbolic
            ``"vocab_size"`` dim (which must then be at least ``max_top_k`` at run time).
        in_dtype: The dtype of the logits (cast to float32 inside the graph).
    """

    max_top_k: int = FAST_TOP_K
    vocab_size: int | None = None
    in_dtype: DType = DType.float32

    def __post_init__(self) -> None:
        if isinstance(self.max_top_k, bool) or not isinstance(self.max_top_k, int) \
                or self.max_top_k < 1:
            raise ValueError(f"SamplingConfig: max_top_k must be an int >= 1, got "
                             f"{self.max_top_k!r}")
        if self.vocab_size is not None and (isinstance(self.vocab_size, bool) or not
                                            isinstance(self.vocab_size, int)
                                            or self.vocab_size < 1):
            raise ValueError(f"SamplingConfig: vocab_size must be None or an int >= 1, got "
                             f"{self.vocab_size!r}")
        if not self.in_dtype.is_float():
            raise ValueError(f"SamplingConfig: in_dtype must be a float dtype, got "
                             f"{self.in_dtype.name}")

    @property
    def candidates(self) -> int:
        """The number of sorted candidates: ``max_top_k``, at most the static vocabulary."""
        if self.vocab_size is None:
            return self.max_top_k
        return min(self.max_top_k, self.vocab_size)


def _inverse_cdf(weights: TensorValue, uniform: TensorValue,
                 last_kept: TensorValue) -> TensorValue:
    """Per row, the first position whose running sum of ``weights`` exceeds
    ``uniform * total``, at most ``last_kept`` (float rounding at the top end); [batch, 1]."""
    cdf = ops.cumsum(weights, axis=-1)
    target = ops.unsqueeze(uniform, -1) * ops.max(cdf, axis=-1)
    below = ops.sum(ops.cast(cdf <= target, DType.int64), axis=-1)
    return ops.min(below, last_kept)


def _sample_rows(logits: TensorValue, temperature: TensorValue, top_k: TensorValue,
                 top_p: TensorValue, min_p: TensorValue, uniform: TensorValue,
                 candidates: int) -> TensorValue:
    """The sampled token id of each row, int64 [batch] (see the module docstring)."""
    device = logits.device
    vocab = logits.shape[-1]
    greedy = (temperature == 0.0) | (top_k == 1)
    greedy_token = ops.squeeze(ops.argmax(logits, axis=-1), -1)
    safe_t = ops.where(greedy, ops.constant(1.0, DType.float32, device), temperature)
    scaled = logits / ops.unsqueeze(safe_t, -1)
    min_p_col = ops.unsqueeze(min_p, -1)

    # Whole vocabulary, token-id order.
    probs = ops.softmax(scaled, axis=-1)
    keep = probs >= min_p_col * ops.max(probs, axis=-1)
    ids = ops.range(0, vocab, 1, dtype=DType.int64, device=device)
    last_kept = ops.max(ops.where(keep, ids, 0), axis=-1)
    full_token = ops.squeeze(_inverse_cdf(ops.where(keep, probs, 0.0), uniform, last_kept), -1)

    # The most likely `candidates` tokens, in decreasing probability.
    values, indices = ops.top_k(scaled, candidates, axis=-1)
    pos = ops.range(0, candidates, 1, dtype=DType.int64, device=device)
    k_eff = ops.where(top_k <= 0, ops.constant(candidates, DType.int64, device), top_k)
    in_k = pos < ops.unsqueeze(k_eff, -1)
    pk = ops.softmax(ops.where(in_k, values, float("-inf")), axis=-1)
    mass_before = ops.cumsum(pk, axis=-1, exclusive=True)
    top_p_col = ops.unsqueeze(top_p, -1)
    in_p = (mass_before < top_p_col) | (top_p_col >= 1.0)
    kept = in_k & in_p & (pk >= min_p_col * ops.max(pk, axis=-1))
    n_kept = ops.sum(ops.cast(kept, DType.int64), axis=-1)
    choice = _inverse_cdf(ops.where(kept, pk, 0.0), uniform, n_kept - 1)
    sorted_token = ops.sum(ops.where(pos == choice, indices, 0), axis=-1)
    sorted_token = ops.squeeze(sorted_token, -1)

    filtered = (top_k >= 1) | (top_p < 1.0)
    return ops.where(greedy, greedy_token, ops.where(filtered, sorted_token, full_token))


def token_sampler(sampling_config: SamplingConfig, device: DeviceRef,
                  return_logits: bool = False) -> Graph:
    """Builds the token sampler graph.

    The graph's inputs, in order (``batch`` is symbolic, one row per request):

    ====  ===============  =========================  =========================================
    #     name             type                       meaning
    ====  ===============  =========================  =========================================
    0     logits           ``in_dtype [batch, vocab]``  the model's last-position logits
    1     temperature      ``float32 [batch]``          0 for greedy
    2     top_k            ``int64 [batch]``            -1 for all tokens, 1 for greedy
    3     top_p            ``float32 [batch]``          in (0, 1]; 1 disables
    4     min_p            ``float32 [batch]``          in [0, 1]; 0 disables
    5     uniform          ``float32 [batch]``          a random number in [0, 1) per row
    ====  ===============  =========================  =========================================

    ``sampling_inputs`` makes inputs 1-5. The outputs: the sampled token ids, ``int64
    [batch]``, then (with ``return_logits``) the logits as given.

    Args:
        sampling_config: The static shape of the sampler (candidate cap, vocabulary size,
            logits dtype).
        device: The device the graph runs on.
        return_logits: Whether to return the logits as a second output.

    Returns:
        The sampler graph, ready for ``InferenceSession.load``.

    Example:
        >>> from max.engine import InferenceSession
        >>> model = InferenceSession().load(token_sampler(SamplingConfig(), DeviceRef.CPU()))
        >>> logits = np.zeros((1, 100), np.float32); logits[0, 7] = 5
        >>> params = [SamplingParams(top_k=1, seed=0)]
        >>> inputs = sampling_inputs(params, [generator_for(params[0])])
        >>> model.execute(logits, *inputs)[0].to_numpy()
        array([7])
    """
    if not isinstance(sampling_config, SamplingConfig):
        raise TypeError(f"token_sampler: sampling_config must be a SamplingConfig, got "
                        f"{type(sampling_config).__name__}")
    vocab = sampling_config.vocab_size if sampling_config.vocab_size is not None \
        else "vocab_size"
    row = lambda dtype: TensorType(dtype, ["batch"], device)  # noqa: E731
    input_types = [TensorType(sampling_config.in_dtype, ["batch", vocab], device),
                   row(DType.float32), row(DType.int64), row(DType.float32),
                   row(DType.float32), row(DType.float32)]
    with Graph("token_sampler", input_types=input_types) as graph:
        logits, temperature, top_k, top_p, min_p, uniform = (v.tensor for v in graph.inputs)
        f32 = logits if logits.dtype == DType.float32 else ops.cast(logits, DType.float32)
        tokens = _sample_rows(f32, temperature, top_k, top_p, min_p, uniform,
                              sampling_config.candidates)
        graph.output(*([tokens, logits] if return_logits else [tokens]))
    return graph


def greedy_sampler(sampling_config: SamplingConfig, device: DeviceRef) -> Graph:
    """The sampler for a batch whose every row is greedy (an extension): the argmax of each
    row's logits, lowest id among equals, as :func:`token_sampler` picks for a greedy row.

    Its one input is ``token_sampler``'s input 0 and its output the token ids, ``int64
    [batch]``. A pipeline runs it instead of the full sampler when no row samples: the full
    graph computes every path for every row (the whole-vocabulary softmax, running sums and
    the top-k), 0.38 ms a step of SmolLM2's 49152 logits against 0.04 ms here.
    """
    if not isinstance(sampling_config, SamplingConfig):
        raise TypeError(f"greedy_sampler: sampling_config must be a SamplingConfig, got "
                        f"{type(sampling_config).__name__}")
    vocab = sampling_config.vocab_size if sampling_config.vocab_size is not None \
        else "vocab_size"
    input_types = [TensorType(sampling_config.in_dtype, ["batch", vocab], device)]
    with Graph("greedy_sampler", input_types=input_types) as graph:
        logits = graph.inputs[0].tensor
        f32 = logits if logits.dtype == DType.float32 else ops.cast(logits, DType.float32)
        graph.output(ops.squeeze(ops.argmax(f32, axis=-1), -1))
    return graph


def is_greedy(params: SamplingParams) -> bool:
    """Whether a row with ``params`` takes the greedy path (temperature 0 or ``top_k`` 1)."""
    return params.temperature == 0.0 or params.top_k == 1


def generator_for(params: SamplingParams) -> np.random.Generator:
    """The random generator of one request: a numpy ``Generator`` seeded with
    ``params.seed`` (keep it for the whole request so that its draws continue)."""
    return np.random.default_rng(params.seed)


def sampling_inputs(params: Sequence[SamplingParams], generators: Sequence[np.random.Generator],
                    config: SamplingConfig | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The sampler graph's per-row inputs for one step of a batch.

    Each row draws one float32 uniform number from its own generator (greedy rows too, so a
    request's stream of draws does not depend on its parameters).

    Args:
        params: The sampling parameters of each row of the batch.
        generators: One generator per row (``generator_for``), advanced by one draw each.
        config: The sampler's config, to check ``top_k`` against its ``max_top_k`` (default
            ``SamplingConfig()``).

    Returns:
        ``(temperature f32, top_k int64, top_p f32, min_p f32, uniform f32)``, each of shape
        ``[len(params)]``: inputs 1-5 of ``token_sampler``'s graph.

    Raises:
        ValueError: If the lengths differ, the batch is empty, or a row's ``top_k`` exceeds
            ``config.max_top_k``.
    """
    config = config or SamplingConfig()
    if len(params) != len(generators):
        raise ValueError(f"sampling_inputs: {len(params)} SamplingParams but "
                         f"{len(generators)} generators; give one generator per row")
    if not params:
        raise ValueError("sampling_inputs: the batch is empty")
    for i, p in enumerate(params):
        if not isinstance(p, SamplingParams):
            raise TypeError(f"sampling_inputs: row {i} is a {type(p).__name__}, not "
                            f"SamplingParams")
        if p.top_k > config.max_top_k:
            raise ValueError(f"sampling_inputs: row {i} asks for top_k={p.top_k}, above the "
                             f"sampler's max_top_k={config.max_top_k} (SamplingConfig."
                             f"max_top_k)")
    temperature = np.array([p.temperature for p in params], np.float32)
    top_k = np.array([p.top_k for p in params], np.int64)
    top_p = np.array([p.top_p for p in params], np.float32)
    min_p = np.array([p.min_p for p in params], np.float32)
    uniform = np.array([g.random(dtype=np.float32) for g in generators], np.float32)
    return temperature, top_k, top_p, min_p, uniform
