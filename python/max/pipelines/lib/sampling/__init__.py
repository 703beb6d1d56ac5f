"""Token sampling compiled into graphs (``max.pipelines.lib.sampling``)."""

from __future__ import annotations

from max.pipelines.lib.sampling.penalties import apply_penalties
from max.pipelines.lib.sampling.sampling import (
    SamplingConfig,
    generator_for,
    greedy_sampler,
    is_greedy,
    sampling_inputs,
    token_sampler,
)

__all__ = ["SamplingConfig", "apply_penalties", "generator_for", "greedy_sampler", "is_greedy",
           "sampling_inputs", "token_sampler"]
