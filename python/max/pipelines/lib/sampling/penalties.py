"""Host-side logits adjustments that need a request's history, applied before the sampler
graph: the repetition, frequency and presence penalties of ``SamplingParams`` and banned
tokens (the EOS ids that ``TextContext.get_min_token_logit_mask`` returns while fewer than
``min_new_tokens`` tokens have been generated)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from max.interfaces import SamplingParams

__all__ = ["apply_penalties"]


def apply_penalties(logits: npt.NDArray[np.floating], params: Sequence[SamplingParams],
                    generated_tokens: Sequence[npt.NDArray[np.integer]],
                    banned: Sequence[npt.NDArray[np.integer]] | None = None,
                    ) -> npt.NDArray[np.float32]:
    """Returns a float32 copy of ``logits`` [batch, vocab] with each row's penalties applied.

    For each row, over the tokens of its generated text (not the prompt), in this order:
    ``repetition_penalty`` divides the positive logits and multiplies the negative ones of
    the tokens that appeared at least once; ``frequency_penalty`` times a token's count and
    ``presence_penalty`` (once per token that appeared) are subtracted. Then the ``banned``
    ids of the row are set to ``-inf``. Rows without penalties or bans are copied unchanged.

    Args:
        logits: The model's logits, one row per request.
        params: Each row's sampling parameters.
        generated_tokens: Each row's generated token ids so far.
        banned: Optionally, each row's token ids to exclude from sampling.

    Returns:
        The adjusted logits, float32 [batch, vocab].

    Raises:
        ValueError: If ``logits`` is not 2-D, a sequence's length differs from the batch, or
            a token id is outside ``[0, vocab)``.
    """
    out = np.array(logits, dtype=np.float32, copy=True)
    if out.ndim != 2:
        raise ValueError(f"apply_penalties: logits must be [batch, vocab], got shape "
                         f"{out.shape}")
    batch, vocab = out.shape
    for name, seq in (("params", params), ("generated_tokens", generated_tokens),
                      ("banned", banned)):
        if seq is not None and len(seq) != batch:
            raise ValueError(f"apply_penalties: {len(seq)} {name} for a batch of {batch} rows")
    for i, (p, history) in enumerate(zip(params, generated_tokens)):
        history = np.asarray(history, np.int64).reshape(-1)
        for what, ids in (("generated token", history),
                          ("banned token", None if banned is None else banned[i])):
            if ids is not None and np.size(ids) and (np.min(ids) < 0 or np.max(ids) >= vocab):
                raise ValueError(f"apply_penalties: row {i} has a {what} id outside "
                                 f"[0, {vocab})")
        penalized = (p.repetition_penalty != 1.0 or p.frequency_penalty != 0.0
                     or p.presence_penalty != 0.0)
        if penalized and history.size:
            counts = np.bincount(history, minlength=vocab)
            seen = counts > 0
            row = out[i]
            r = np.float32(p.repetition_penalty)
            row[seen] = np.where(row[seen] > 0, row[seen] / r, row[seen] * r)
            row -= (np.float32(p.frequency_penalty) * counts.astype(np.float32)
                    + np.float32(p.presence_penalty) * seen.astype(np.float32))
        if banned is not None and np.size(banned[i]):
            out[i, np.asarray(banned[i], np.int64)] = -np.inf
    return out
