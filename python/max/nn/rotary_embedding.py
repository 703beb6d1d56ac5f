"""The rope embedding used within the model: ``RotaryEmbedding`` and the Llama3 variant."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from max.dtype import DType
from max.graph import DeviceRef, Dim, TensorValue, ops
from max.nn.layer import Module


@dataclass
class LinearScalingParams:
    factor: float
    """Main scaling factor for the frequency components of the rope."""


@dataclass
class Llama3RopeScalingParams:
    factor: float
    """Main scaling factor for the frequency components of the rope."""
    low_freq_factor: float
    """Factor to scale the low frequency components of the rope."""
    high_freq_factor: float
    """Factor to scale the high frequency components of the rope."""
    orig_max_position: int
    """The original maximum position length supported by the model."""


class RotaryEmbedding(Module):
    """RotaryEmbedding layer to calculate and apply the frequency tensor for complex
    exponentials.

    Calling it on ``x`` of shape ``(batch, seq_len, n_heads, head_dim)`` rotates each pair
    of features of the token at position ``p`` (``start_pos + index``) by the angle
    ``p * theta ** (-2i / head_dim)``. With ``interleaved`` the pairs are adjacent features
    ``(2i, 2i + 1)`` (Meta's Llama checkpoints); otherwise they are ``(i, i + head_dim / 2)``
    (Hugging Face's ``rotate_half``). The table is computed in float64 and stored as float32.

    Args:
        dim: The model dimension (``n_heads * head_dim`` unless ``head_dim`` is given).
        n_heads: The number of attention heads.
        theta: Hyperparameter used to control the frequency scaling of the sinusoidal
            components of the embeddings.
        max_seq_len: The maximum sequence length for model's input (the table covers
            ``2 * max_seq_len`` positions).
        head_dim: ``dim // n_heads`` if not specified.
        _freqs_cis: A precomputed table ``(positions, head_dim // 2, 2)`` (cos, sin).
        interleaved: Whether the rotated pairs are adjacent features.
    """

    def __init__(self, dim: int, n_heads: int, theta: float, max_seq_len: int,
                 head_dim: int | None = None, _freqs_cis: Any = None,
                 interleaved: bool = True) -> None:
        super().__init__()
        what = type(self).__name__
        for arg, value in (("dim", dim), ("n_heads", n_heads), ("max_seq_len", max_seq_len)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{what}: {arg} must be a positive int, got {value!r}")
        self.dim, self.n_heads, self.theta = dim, n_heads, theta
        self.max_seq_len = max_seq_len
        self.head_dim = head_dim if head_dim is not None else dim // n_heads
        if self.head_dim <= 0 or self.head_dim % 2:
            raise ValueError(f"{what}: head_dim must be a positive even int, got "
                             f"{self.head_dim}")
        self.interleaved = interleaved
        self._freqs_cis = _freqs_cis

    def _inv_freqs(self) -> np.ndarray:
        """The rotation frequency of each feature pair (float64)."""
        n = self.head_dim
        return 1.0 / (float(self.theta) ** (np.arange(0, n, 2, dtype=np.float64) / n))

    def _table(self) -> np.ndarray:
        t = np.arange(self.max_seq_len * 2, dtype=np.float64)
        freqs = np.outer(t, self._inv_freqs())
        return np.stack([np.cos(freqs), np.sin(freqs)], axis=-1).astype(np.float32)

    def freqs_cis_base(self) -> TensorValue:
        """Computes the frequency tensor for complex exponentials (cis) for a given seq_len.

        Tensor is scaled with theta parameter. Required to apply Rotary Position Embedding
        (RoPE) to tensor. See 'Roformer: Enhanced Transformer with Rotary Embedding'
        (arxiv.org/pdf/2104.09864).

        Returns:
            The frequency tensor for complex exponentials with shape
            (max_seq_len * 2, head_dim / 2, 2)
        """
        if isinstance(self._freqs_cis, np.ndarray):
            return ops.constant(self._freqs_cis, DType.from_numpy(self._freqs_cis.dtype),
                                DeviceRef.CPU())
        if self._freqs_cis is not None:
            return TensorValue(self._freqs_cis)
        return ops.constant(self._table(), DType.float32, DeviceRef.CPU())

    @property
    def freqs_cis(self) -> TensorValue:
        """The table as ``(max_seq_len * 2, head_dim)``: (cos, sin) of each pair in turn."""
        base = self.freqs_cis_base()
        return ops.reshape(base, [base.shape[0], self.head_dim])

    def compute_scale(self, user_scale: float | None = None) -> float:
        """The attention scale: ``user_scale``, else ``1 / sqrt(head_dim)``."""
        return user_scale if user_scale is not None else math.sqrt(1.0 / self.head_dim)

    def __call__(self, x: TensorValue, start_pos: Dim | int | None = None, *,
                 positions: TensorValue | None = None) -> TensorValue:
        """Applies rotary positional embeddings (RoPE) to ``x``.

        Args:
            x: Activation tensor with shape (batch, seq_len, n_heads, head_dim).
            start_pos: The position of the first token (an int or a ``Dim``); 0 if None.
            positions: (an extension) each token's own position, integer
                ``(batch, seq_len)``, instead of ``start_pos``: rows of a batch that continue
                sequences of different lengths (a KV cache's decode). A position past the
                table is reported at run time.
        """
        v = TensorValue(x)
        what = type(self).__name__
        if v.rank < 3 or str(v.shape[-1]) != str(self.head_dim):
            raise ValueError(f"{what}: expected an input (batch, seq_len, n_heads, "
                             f"{self.head_dim}), got shape {[str(d) for d in v.shape]}")
        seq_len = v.shape[-3]
        start = 0 if start_pos is None else start_pos
        freqs = self.freqs_cis_base().to(v.device)
        if freqs.dtype != v.dtype:
            freqs = freqs.cast(v.dtype)
        half = self.head_dim // 2
        if positions is not None:
            p = TensorValue(positions)
            if start_pos is not None:
                raise ValueError(f"{what}: give start_pos or positions, not both")
            if v.rank != 4 or p.rank != 2 or [str(d) for d in p.shape] != [
                    str(d) for d in v.shape[:2]]:
                raise ValueError(f"{what}: positions must have shape (batch, seq_len) = "
                                 f"{[str(d) for d in v.shape[:2]]} of a rank-4 input, got "
                                 f"{[str(d) for d in p.shape]}")
            table = ops.gather(freqs, p, axis=0)  # [batch, seq_len, half, 2]
            batch = v.shape[0]
            cos = ops.reshape(table[..., 0], [batch, seq_len, 1, half])
            sin = ops.reshape(table[..., 1], [batch, seq_len, 1, half])
            return self._rotate(v, cos, sin)
        static_len = _static(seq_len)
        if static_len is not None and _static(start) is not None:
            begin = int(_static(start))  # type: ignore[arg-type]
            if begin < 0 or begin + static_len > int(freqs.shape[0]):
                raise ValueError(f"{what}: positions {begin}..{begin + static_len - 1} are "
                                 f"past the table's {freqs.shape[0]} (2 * max_seq_len)")
            freqs = freqs[begin:begin + static_len]
        else:
            # The positions are only known at run time: look them up.
            stop = Dim(start) + seq_len if not isinstance(start, Dim) else start + seq_len
            positions = ops.range(start, stop, 1, dtype=DType.int64, device=v.device)
            positions = ops.rebind(positions, [seq_len])
            freqs = ops.gather(freqs, positions, axis=0)
        cos = ops.reshape(freqs[..., 0], [seq_len, 1, half])
        sin = ops.reshape(freqs[..., 1], [seq_len, 1, half])
        return self._rotate(v, cos, sin)

    def _rotate(self, v: TensorValue, cos: TensorValue, sin: TensorValue) -> TensorValue:
        """Each feature pair of ``v`` rotated by the angles whose cos and sin are given
        (broadcast over ``v``'s leading dims, ``head_dim / 2`` last)."""
        half = self.head_dim // 2
        if self.interleaved:
            pairs = ops.reshape(v, [*v.shape[:-1], half, 2])
            x_re, x_im = pairs[..., 0], pairs[..., 1]
        else:
            x_re, x_im = v[..., :half], v[..., half:]
        out_re = x_re * cos - x_im * sin
        out_im = x_re * sin + x_im * cos
        if self.interleaved:
            return ops.reshape(ops.stack([out_re, out_im], axis=-1), list(v.shape))
        return ops.concat([out_re, out_im], axis=-1)


def _static(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class Llama3RotaryEmbedding(RotaryEmbedding):
    """RotaryEmbedding for Llama3 that takes rope scaling into account.

    With ``scaling_params`` the frequencies whose wavelength is longer than
    ``orig_max_position / low_freq_factor`` are divided by ``factor``, those shorter than
    ``orig_max_position / high_freq_factor`` are kept, and those between are blended
    smoothly (as Llama 3.1's reference code).

    Args:
        dim: The model dimension.
        n_heads: The number of attention heads.
        theta: The base of the frequencies.
        max_seq_len: The maximum sequence length.
        head_dim: ``dim // n_heads`` if not specified.
        _freqs_cis: A precomputed table.
        interleaved: Whether the rotated pairs are adjacent features.
        scaling_params: Scaling parameters to enable llama to function with a longer
            context length.
    """

    def __init__(self, dim: int, n_heads: int, theta: float, max_seq_len: int,
                 head_dim: int | None = None, _freqs_cis: Any = None,
                 interleaved: bool = True,
                 scaling_params: Llama3RopeScalingParams | None = None) -> None:
        super().__init__(dim, n_heads, theta, max_seq_len, head_dim, _freqs_cis, interleaved)
        self.scaling_params = scaling_params

    def _inv_freqs(self) -> np.ndarray:
        inv = super()._inv_freqs()
        p = self.scaling_params
        if p is None:
            return inv
        low_wavelen = p.orig_max_position / p.low_freq_factor
        high_wavelen = p.orig_max_position / p.high_freq_factor
        wavelen = 2 * math.pi / inv
        if p.low_freq_factor != p.high_freq_factor:
            smooth = ((p.orig_max_position / wavelen - p.low_freq_factor)
                      / (p.high_freq_factor - p.low_freq_factor))
        else:
            smooth = np.zeros_like(inv)
        blended = (1 - smooth) * inv / p.factor + smooth * inv
        return np.where(wavelen < high_wavelen, inv,
                        np.where(wavelen > low_wavelen, inv / p.factor, blended))
