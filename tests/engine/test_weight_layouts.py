"""Weights stored once at load time in the layout their kernel reads (runtime/layouts): a
``Linear``'s ``x @ W.T`` reads W's panels (or W transposed), with no transpose or panel copy at
each call; the compiled artifact stays the same for any weights. All against numpy in float64."""

from __future__ import annotations

import json

import numpy as np
import pytest

from max.compiler.pipelines import matmul_pack
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import DeviceRef, Graph, TensorType, Weight, ops
from max.runtime import ArtifactRecord
from max.runtime.artifact import ArtifactError
from max.runtime.layouts import apply_layout, panel_layout, permutation_layout

CPU = DeviceRef.CPU()
F32 = DType.float32
# A Linear's weight in panels as this host's register tile reads them (32 columns with
# AVX-512, 16 with AVX2).
PANELS_T = panel_layout(matmul_pack.PANEL, True)


def _linear(m: int | str, k: int, n: int, name: str = "linear") -> Graph:
    """gelu(x @ W.T + b), W [n, k] as a torch Linear stores it."""
    w, b = Weight("fc.weight", F32, (n, k)), Weight("fc.bias", F32, (n,))
    return Graph(name, lambda x: ops.gelu(x @ ops.transpose(w, 0, 1) + b),
                 input_types=[TensorType(F32, (m, k), CPU)])


def _gelu(v: np.ndarray) -> np.ndarray:
    from math import erf
    return 0.5 * v * (1 + np.vectorize(erf)(v / np.sqrt(2)))


def _params(k: int, n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"fc.weight": (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32),
            "fc.bias": rng.standard_normal(n).astype(np.float32)}


def _check_linear(model, x: np.ndarray, p: dict[str, np.ndarray]) -> None:
    ref = _gelu(x.astype(np.float64) @ p["fc.weight"].T.astype(np.float64) + p["fc.bias"])
    np.testing.assert_allclose(model.execute(x)[0].to_numpy(), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("m,k,n,layout", [
    (64, 384, 128, PANELS_T),  # a panel matmul: W's panels
    (17, 97, 192, PANELS_T),  # odd rows and K
    (16, 40, 36, "t"),  # N not whole panels: W transposed, the strided-B kernel
    (3, 64, 64, "t"),  # fewer rows than a register tile: no panels
])
def test_linear_weight_layout(m: int, k: int, n: int, layout: str) -> None:
    p = _params(k, n, m + k + n)
    model = InferenceSession().load(_linear(m, k, n), weights_registry=p)
    assert model._record.weight_layouts == (layout, "")
    assert model._record.fallbacks == ()
    x = np.random.default_rng(1).standard_normal((m, k)).astype(np.float32)
    _check_linear(model, x, p)
    # The caller's array is never rearranged in place: the model holds its own copy.
    np.testing.assert_array_equal(p["fc.weight"], _params(k, n, m + k + n)["fc.weight"])


def test_symbolic_rows_read_panels() -> None:
    """A symbolic row count (batch x sequence): panels still, rows tiled at run time; row
    counts below a register tile, between tiles, past a cache tile, split over threads."""
    k, n = 96, 64
    p = _params(k, n, 5)
    model = InferenceSession().load(_linear("rows", k, n), weights_registry=p)
    assert model._record.weight_layouts == (PANELS_T, "")
    assert model._record.fallbacks == ()
    rng = np.random.default_rng(2)
    for rows in (1, 7, 8, 9, 130, 301):
        _check_linear(model, rng.standard_normal((rows, k)).astype(np.float32), p)


def test_batch_and_sequence_dims() -> None:
    """x [batch, seq, hidden] @ W.T, both dims symbolic, as in an encoder layer."""
    k, n = 64, 96
    w, b = Weight("fc.weight", F32, (n, k)), Weight("fc.bias", F32, (n,))
    g = Graph("bsh", lambda x: x @ ops.transpose(w, 0, 1) + b,
              input_types=[TensorType(F32, ("batch", "seq", k), CPU)])
    p = _params(k, n, 8)
    model = InferenceSession().load(g, weights_registry=p)
    assert model._record.weight_layouts == (PANELS_T, "")
    rng = np.random.default_rng(9)
    for shape in ((2, 5, k), (3, 41, k), (1, 1, k)):
        x = rng.standard_normal(shape).astype(np.float32)
        ref = x.astype(np.float64) @ p["fc.weight"].T + p["fc.bias"]
        np.testing.assert_allclose(model.execute(x)[0].to_numpy(), ref, rtol=1e-4, atol=1e-5)


def test_one_artifact_serves_other_weights() -> None:
    """The layout is applied to each load's weights: the second load reuses the compiled
    code (the same binary) with other values."""
    session = InferenceSession()
    x = np.random.default_rng(3).standard_normal((32, 128)).astype(np.float32)
    models = []
    for seed in (1, 2):
        p = _params(128, 96, seed)
        model = session.load(_linear(32, 128, 96, "shared_linear"), weights_registry=p)
        _check_linear(model, x, p)
        models.append(model)
    assert models[0]._record.sha256 == models[1]._record.sha256
    assert models[0]._record.weight_layouts == (PANELS_T, "")


def test_plain_weight_matmul_reads_panels() -> None:
    """x @ W with W [k, n] (no transpose): W stored in panels."""
    k, n = 256, 96
    w = Weight("w", F32, (k, n))
    g = Graph("plain", lambda x: x @ w, input_types=[TensorType(F32, (32, k), CPU)])
    value = np.random.default_rng(4).standard_normal((k, n)).astype(np.float32)
    model = InferenceSession().load(g, weights_registry={"w": value})
    assert model._record.weight_layouts == (panel_layout(matmul_pack.PANEL, False),)
    x = np.random.default_rng(5).standard_normal((32, k)).astype(np.float32)
    np.testing.assert_allclose(model.execute(x)[0].to_numpy(), x.astype(np.float64) @ value,
                               rtol=1e-4, atol=1e-4)


def test_a_weight_read_twice_keeps_its_layout() -> None:
    """A tied weight (a gather and a transposed matmul): used as given, in place."""
    k, n = 64, 96
    w = Weight("emb", F32, (n, k))

    def forward(ids, h):
        return ops.gather(w, ids, axis=0), h @ ops.transpose(w, 0, 1)

    g = Graph("tied", forward, input_types=[TensorType(DType.int64, (5,), CPU),
                                            TensorType(F32, (16, k), CPU)])
    value = np.random.default_rng(6).standard_normal((n, k)).astype(np.float32)
    model = InferenceSession().load(g, weights_registry={"emb": value})
    assert model._record.weight_layouts == ("",)
    ids = np.array([0, 3, 95, 3, 1], np.int64)
    h = np.random.default_rng(7).standard_normal((16, k)).astype(np.float32)
    rows, logits = (o.to_numpy() for o in model.execute(ids, h))
    np.testing.assert_array_equal(rows, value[ids])
    np.testing.assert_allclose(logits, h.astype(np.float64) @ value.T, rtol=1e-4, atol=1e-4)


def test_apply_layout_orders() -> None:
    w = np.arange(5 * 64, dtype=np.float32).reshape(5, 64)
    panels = apply_layout(w, "panels").reshape(2, 5, 32)  # [N/32, K, 32]
    for j in range(2):
        np.testing.assert_array_equal(panels[j], w[:, 32 * j:32 * (j + 1)])
    wt = np.ascontiguousarray(w.T)  # [64, 5]: a torch Linear's [N, K]
    np.testing.assert_array_equal(apply_layout(wt, "panels_t").ravel(),
                                  apply_layout(w, "panels").ravel())
    np.testing.assert_array_equal(apply_layout(w, "t").reshape(64, 5), w.T)
    # Columns beyond whole panels: the panels, then the rest as [K, N mod P], row-major.
    b = np.arange(5 * 70, dtype=np.float32).reshape(5, 70)
    ragged = apply_layout(b, "panels").ravel()
    for j in range(2):
        np.testing.assert_array_equal(ragged[j * 160:(j + 1) * 160].reshape(5, 32),
                                      b[:, 32 * j:32 * (j + 1)])
    np.testing.assert_array_equal(ragged[320:].reshape(5, 6), b[:, 64:])
    np.testing.assert_array_equal(apply_layout(np.ascontiguousarray(b.T), "panels_t").ravel(),
                                  ragged)
    # AVX2's panels: 16 columns.
    panels16 = apply_layout(w, "panels16").reshape(4, 5, 16)
    for j in range(4):
        np.testing.assert_array_equal(panels16[j], w[:, 16 * j:16 * (j + 1)])
    np.testing.assert_array_equal(apply_layout(wt, "panels16_t").ravel(), panels16.ravel())
    ragged16 = apply_layout(np.ascontiguousarray(b.T), "panels16_t").ravel()
    for j in range(4):
        np.testing.assert_array_equal(ragged16[j * 80:(j + 1) * 80].reshape(5, 16),
                                      b[:, 16 * j:16 * (j + 1)])
    np.testing.assert_array_equal(ragged16[320:].reshape(5, 6), b[:, 64:])
    assert (panel_layout(32, False), panel_layout(16, True)) == ("panels", "panels16_t")
    with pytest.raises(ValueError, match=r"^no panel layout 8 columns wide"):
        panel_layout(8, False)
    with pytest.raises(ValueError, match=r"^layout 't' needs a 2-D argument, got shape \[8\]$"):
        apply_layout(np.zeros(8, np.float32), "t")
    with pytest.raises(ValueError, match=r"^unknown layout 'zigzag'"):
        apply_layout(w, "zigzag")


def test_apply_layout_into_a_given_array() -> None:
    """``out`` receives exactly what a new array would; a wrong ``out`` is refused."""
    w = np.arange(5 * 64, dtype=np.float32).reshape(5, 64)
    for layout in ("t", "panels"):
        out = np.full(w.shape, np.nan, np.float32)
        assert apply_layout(w, layout, out=out) is out
        np.testing.assert_array_equal(out, apply_layout(w, layout))
    with pytest.raises(ValueError, match=r"^apply_layout: out must be a C-contiguous float32 "
                                         r"array of shape \[5, 64\]$"):
        apply_layout(w, "t", out=np.empty((64, 5), np.float32))


def test_record_layouts_are_checked() -> None:
    """An artifact's metadata is untrusted: a layout that cannot hold its weight is refused
    before any weight is rearranged or any code runs."""
    model = InferenceSession().load(_linear(16, 64, 64), weights_registry=_params(64, 64, 0))
    obj = json.loads(model._record.to_json())
    for layouts, message in ((["t"], r"1 layouts for 2 weights"),
                             (["panels_t", "t"], r"weight_layouts\[1\].*2-D argument"),
                             (["spiral", ""], r"weight_layouts\[0\].*unknown layout"),
                             (["perm:1,0,2", ""], r"weight_layouts\[0\].*no permutation"),
                             ([3, ""], r"weight_layouts\[0\]")):
        obj["weight_layouts"] = layouts
        with pytest.raises(ArtifactError, match=message):
            ArtifactRecord.from_json(json.dumps(obj))


def test_a_read_only_weight_is_rearranged_once_for_all_its_models():
    """Two graphs loaded with the same read-only array (a decoder's prefill and decode
    blocks) share its rearranged copy; a writable array, which its owner may change between
    loads, gets a copy of its own at each load."""
    from max.engine.model import _laid_out

    rng = np.random.default_rng(5)
    w = rng.standard_normal((96, 64)).astype(np.float32)
    w.flags.writeable = False
    first, second = _laid_out(w, "t"), _laid_out(w, "t")
    assert first is second
    np.testing.assert_array_equal(first.reshape(64, 96), w.T)  # same shape, data transposed
    writable = w.copy()
    assert _laid_out(writable, "t") is not _laid_out(writable, "t")
    params = _params(64, 96, seed=6)
    params["fc.weight"].flags.writeable = False
    session = InferenceSession()
    x = rng.standard_normal((8, 64)).astype(np.float32)
    want = _gelu(x.astype(np.float64) @ params["fc.weight"].T.astype(np.float64)
                 + params["fc.bias"])
    for m in ("batch", 8):  # two artifacts, one copy of the weight
        model = session.load(_linear(m, 64, 96), weights_registry=params)
        np.testing.assert_allclose(model.execute(x)[0].to_numpy(), want, rtol=1e-4, atol=1e-5)


def test_permutation_layouts() -> None:
    """``"perm:..."`` stores ``np.transpose(W, P)``; anything but a permutation of the
    argument's dims is refused by name."""
    w = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    for perm in ([2, 3, 1, 0], [0, 1, 2, 3], [3, 0, 2, 1]):
        layout = permutation_layout(perm)
        assert layout == "perm:" + ",".join(map(str, perm))
        got = apply_layout(w, layout)
        assert got.shape == w.shape  # the argument keeps its declared shape
        np.testing.assert_array_equal(got.ravel(), np.transpose(w, perm).ravel())
    np.testing.assert_array_equal(apply_layout(w[0, 0], "perm:1,0"), apply_layout(w[0, 0], "t"))
    for bad in ("perm:2,3,1", "perm:0,0,1,2", "perm:a,b,c,d", "perm:", "perm:0,1,2,4"):
        with pytest.raises(ValueError, match=rf"^layout '{bad}' is no permutation of the 4 "
                                             r"dims of shape \[2, 3, 4, 5\]$"):
            apply_layout(w, bad)


def test_conv_filter_given_in_torch_order_is_permuted_once() -> None:
    """A filter weight given as PyTorch's [F, C, R, S] and permuted in the graph (as
    ``nn.Conv2d(permute=True)`` does) is stored permuted at load time; a constant one in
    ``constants.bin``. A weight read by two ops stays as given."""
    import torch

    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 9, 9, 16)).astype(np.float32)
    wt = (rng.standard_normal((24, 16, 3, 3)) * 0.1).astype(np.float32)
    want = torch.nn.functional.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2),
                                      torch.from_numpy(wt), padding=1).permute(0, 2, 3, 1)
    t = TensorType(F32, (1, 9, 9, 16), CPU)
    w = Weight("w", F32, (24, 16, 3, 3))
    conv = lambda v, f: ops.conv2d(v, ops.permute(f, [2, 3, 1, 0]), padding=(1, 1, 1, 1))
    model = InferenceSession().load(Graph("perm_w", lambda v: conv(v, w), input_types=[t]),
                                    weights_registry={"w": wt})
    assert model._record.weight_layouts == ("perm:2,3,1,0",)
    np.testing.assert_allclose(model.execute(x)[0].to_numpy(), want.numpy(), rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_array_equal(wt, np.asarray(wt))  # the caller's array is untouched
    const = InferenceSession().load(Graph(
        "perm_c", lambda v: conv(v, ops.constant(wt, F32, CPU)), input_types=[t]))
    np.testing.assert_allclose(const.execute(x)[0].to_numpy(), want.numpy(), rtol=1e-4,
                               atol=1e-4)
    twice = InferenceSession().load(Graph(
        "perm_twice", lambda v: (conv(v, w), ops.reshape(w, [24, 144])), input_types=[t]),
        weights_registry={"w": wt})
    assert twice._record.weight_layouts == ("",)
    out, flat = (o.to_numpy() for o in twice.execute(x))
    np.testing.assert_allclose(out, want.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(flat, wt.reshape(24, 144))
