"""``x @ W.T`` against a weight that a gather reads too (a tied embedding): dot products of
W's rows for a few static rows, no transpose of W per call (compiler/pipelines/
shared_weight_matmuls); symbolic or many rows keep the transpose and a matmul. Against numpy
in float64."""

from __future__ import annotations

import numpy as np
import pytest

from max.compiler.pipelines.shared_weight_matmuls import MAX_ROWS
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType, Weight, ops

CPU = DeviceRef.CPU()
F32 = DType.float32
pytestmark = pytest.mark.usefixtures("no_profile_table_at_exit")


def _tied(rows: int | str, vocab: int, hidden: int, name: str) -> Graph:
    w = Weight("wte", F32, (vocab, hidden))

    def forward(ids, h):
        return ops.gather(w, ids, 0), h @ ops.transpose(w, 0, 1)

    return Graph(name, forward, input_types=[TensorType(DType.int64, (rows,), CPU),
                                             TensorType(F32, (rows, hidden), CPU)])


@pytest.mark.parametrize("rows,vocab,hidden", [
    (1, 1000, 128), (5, 333, 40), (MAX_ROWS, 517, 64), (MAX_ROWS + 1, 300, 64), ("m", 257, 48)])
def test_tied_embedding_head(rows, vocab: int, hidden: int, monkeypatch) -> None:
    monkeypatch.setenv("MAX_PROFILE_KERNELS", "1")
    rng = np.random.default_rng(hidden)
    wte = rng.standard_normal((vocab, hidden)).astype(np.float32)
    model = InferenceSession().load(_tied(rows, vocab, hidden, f"tied_{rows}_{vocab}"),
                                    weights_registry={"wte": wte})
    assert model._record.weight_layouts == ("",)  # read as given by both
    assert model._record.fallbacks == ()
    kernels = [k.label for k in model._record.kernels]
    dots = isinstance(rows, int) and rows <= MAX_ROWS
    assert any("transpose" in k for k in kernels) != dots, kernels
    for m in ([rows] if isinstance(rows, int) else [1, 3, 40]):
        ids = rng.integers(0, vocab, m).astype(np.int64)
        h = rng.standard_normal((m, hidden)).astype(np.float32)
        emb, logits = (t.to_numpy() for t in model.execute(ids, h))
        np.testing.assert_array_equal(emb, wte[ids])
        np.testing.assert_allclose(logits, h.astype(np.float64) @ wte.T.astype(np.float64),
                                   rtol=1e-4, atol=1e-4)
