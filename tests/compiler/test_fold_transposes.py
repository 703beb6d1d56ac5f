"""mo-fold-transposes: a permuted read by a linalg.generic reads the permute's input in place
(no copy) when the read keeps its innermost subscript; the results match numpy either way.
Also: float sums of vector lanes are reassociated (a tree, not 64 dependent adds)."""

from __future__ import annotations

import numpy as np
import pytest
from mlir import ir
from mo_helpers import graph_text, make_context, scheduled_ir

from max.compiler.lowering import lower_to_linalg
from max.compiler.targets.cpu import CPU
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType, ops

F32 = DType.float32


def _after_fold(text: str) -> str:
    with make_context():
        m = ir.Module.parse(text)
        lower_to_linalg(m)
        CPU.run(m, until="mo-fold-transposes")
        return str(m)


def _attention_scores(q, k):  # q [B, H, G, D], k [P, B, H, D] -> [B, H, G, P]
    b, h = q.shape[0], q.shape[1]
    kp = ops.permute(ops.reshape(k, [k.shape[0], b, h, 1, k.shape[3]]), [1, 2, 3, 0, 4])
    return ops.squeeze(ops.sum(ops.unsqueeze(q, -2) * kp, axis=-1), -1)


def _weighted_values(e, v):  # e [B, H, G, P], v [P, B, H, D] -> [B, H, G, D]
    b, h = e.shape[0], e.shape[1]
    vp = ops.permute(ops.reshape(v, [v.shape[0], b, h, 1, v.shape[3]]), [1, 2, 3, 0, 4])
    return ops.squeeze(ops.sum(ops.unsqueeze(e, -1) * vp, axis=-2), -2)


CASES = {
    # Both read the cache positions-first, as an LLM's KV cache lies: folded.
    "scores": (_attention_scores, [(2, 3, 4, 64), (37, 2, 3, 64)],
               lambda q, k: np.einsum("bhgd,pbhd->bhgp", q, k), True),
    "values": (_weighted_values, [(2, 3, 4, 37), (37, 2, 3, 64)],
               lambda e, v: np.einsum("bhgp,pbhd->bhgd", e, v), True),
    # A permute that keeps the last axis, read by an elementwise op: folded.
    "elementwise": (lambda x, y: ops.permute(x, [1, 0, 2]) + y, [(5, 6, 16), (6, 5, 16)],
                    lambda x, y: x.transpose(1, 0, 2) + y, True),
    # A 2-D transpose moves the innermost subscript: the copy stays (the transpose schedule).
    "matrix": (lambda x, y: ops.permute(x, [1, 0]) * y, [(33, 17), (17, 33)],
               lambda x, y: x.T * y, False),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_folded_reads_match_numpy(name: str) -> None:
    fn, shapes, ref, folds = CASES[name]
    text = _after_fold(graph_text(fn, shapes))
    assert ("linalg.transpose" not in text) == folds, text
    rng = np.random.default_rng(len(name))
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    g = Graph(f"fold_{name}", fn, input_types=[TensorType(F32, s, DeviceRef.CPU())
                                               for s in shapes])
    model = InferenceSession().load(g)
    assert model._record.fallbacks == ()
    got = model.execute(*xs)[0].to_numpy()
    np.testing.assert_allclose(got, ref(*[x.astype(np.float64) for x in xs]),
                               rtol=1e-5, atol=1e-5)


def test_symbolic_cache_length() -> None:
    """The scores over a cache whose length is symbolic (decode): folded, and right at several
    lengths."""
    shapes = [(1, 3, 3, 64), ("P", 1, 3, 64)]
    text = _after_fold(graph_text(_attention_scores, shapes))
    assert "linalg.transpose" not in text
    g = Graph("fold_symbolic", _attention_scores,
              input_types=[TensorType(F32, s, DeviceRef.CPU()) for s in shapes])
    model = InferenceSession().load(g)
    rng = np.random.default_rng(3)
    q = rng.standard_normal((1, 3, 3, 64)).astype(np.float32)
    for p in (1, 17, 128):
        k = rng.standard_normal((p, 1, 3, 64)).astype(np.float32)
        np.testing.assert_allclose(model.execute(q, k)[0].to_numpy(),
                                   np.einsum("bhgd,pbhd->bhgp", q.astype(np.float64), k),
                                   rtol=1e-5, atol=1e-5)


def test_lane_sums_are_reassociated() -> None:
    """Every float add reduction of vector lanes may sum in any order after the schedule."""
    text = scheduled_ir(graph_text(lambda x: ops.sum(x, axis=-1), [(8, 64)]))
    reductions = [line for line in text.splitlines()
                  if "vector.reduction <add>" in line and "f32" in line]
    assert reductions and all("reassoc" in line for line in reductions), reductions
