"""Outputs that are reshapes of a computed tensor are written in place (output_views.py), not
computed into a buffer of their own and copied: checked on the IR after bufferization and
against numpy, static and symbolic, and where the reshaped value has other readers; and
outputs whose identical inits the schedule's CSE would merge stay apart."""

from __future__ import annotations

import re

import numpy as np
import pytest
import mo_helpers as H
from mo_helpers import two_threads  # noqa: F401  (a fixture)

pytestmark = pytest.mark.usefixtures("two_threads")

BUFFERIZED = "mo-prefetch-weights"  # the first stage after bufferization


def _ir(fwd, shapes) -> str:
    return H.scheduled_ir(H.graph_text(fwd, shapes), until=BUFFERIZED)


def _bmm(x, y):
    return x @ y


def _heads_back(x):  # [b, h, s, d] -> [b, s, h * d], as after an attention
    from max.graph import ops

    b, h, s, d = x.shape
    return ops.reshape(ops.permute(x, [0, 2, 1, 3]), [b, s, h * d])


def _ref_bmm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a.astype(np.float64) @ b).astype(np.float32)


def _copies_into_output(text: str, output: str) -> int:
    """Copies whose target is the output argument ``output`` (the padded tiles of a symbolic
    batch matmul copy their own small buffers back, which is not this)."""
    return len(re.findall(rf"memref\.copy %\S+, {output} :", text))


@pytest.mark.parametrize("batch,seq", [(2, 48), ("b", "s")])
def test_four_dim_batch_matmul_writes_the_output(batch, seq) -> None:
    shapes = [(batch, 3, seq, 32), (batch, 3, 32, seq)]
    text = _ir(_bmm, shapes)
    assert _copies_into_output(text, "%arg2") == 0, text
    assert "memref.reinterpret_cast" in text or "memref.reshape %arg2" in text
    rng = np.random.default_rng(0)
    compiled = H.Compiled(H.graph_text(_bmm, shapes))
    for b, s in ((2, 48), (1, 13)) if batch == "b" else ((2, 48),):
        x = rng.standard_normal((b, 3, s, 32), dtype=np.float32)
        y = rng.standard_normal((b, 3, 32, s), dtype=np.float32)
        (got,), failed = compiled([x, y], [((b, 3, s, s), "float32")])
        assert not failed
        H.check(got, _ref_bmm(x, y), rtol=1e-4, atol=1e-4)


def test_permuted_heads_output_is_written_in_place() -> None:
    text = _ir(_heads_back, [(2, 4, 16, 8)])
    assert _copies_into_output(text, "%arg1") == 0, text
    x = np.random.default_rng(1).standard_normal((2, 4, 16, 8), dtype=np.float32)
    (got,), failed = H.Compiled(H.graph_text(_heads_back, [(2, 4, 16, 8)]))(
        [x], [((2, 16, 32), "float32")])
    assert not failed
    H.check(got, x.transpose(0, 2, 1, 3).reshape(2, 16, 32))


def _reshape_and_sum(x, y):
    from max.graph import ops

    p = x @ y  # [4, 8, 8]: returned reshaped, and read by the sum
    return ops.reshape(p, [32, 8]), ops.sum(p, axis=-1)


def _two_reshapes(x, y):
    from max.graph import ops

    p = x @ y
    return ops.reshape(p, [32, 8]), ops.reshape(p, [4, 64])


def _input_reshaped(x):
    from max.graph import ops

    return ops.reshape(x, [8, 12])


def test_reshaped_value_with_other_readers() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 8, 16), dtype=np.float32)
    y = rng.standard_normal((4, 16, 8), dtype=np.float32)
    p = _ref_bmm(x, y)
    shapes = [(4, 8, 16), (4, 16, 8)]
    (flat, sums), failed = H.Compiled(H.graph_text(_reshape_and_sum, shapes))(
        [x, y], [((32, 8), "float32"), ((4, 8, 1), "float32")])
    assert not failed
    H.check(flat, p.reshape(32, 8), rtol=1e-5, atol=1e-5)
    H.check(sums, p.astype(np.float64).sum(-1, keepdims=True).astype(np.float32),
            rtol=1e-4, atol=1e-4)
    # One value returned through two different reshapes: one may be written in place, the
    # other is a copy of it; both hold the product.
    (a, b), failed = H.Compiled(H.graph_text(_two_reshapes, shapes))(
        [x, y], [((32, 8), "float32"), ((4, 64), "float32")])
    assert not failed
    H.check(a, p.reshape(32, 8), rtol=1e-5, atol=1e-5)
    H.check(b, p.reshape(4, 64), rtol=1e-5, atol=1e-5)


def test_reshaped_input_is_still_copied() -> None:
    x = np.arange(96, dtype=np.float32).reshape(2, 4, 12)
    (got,), failed = H.Compiled(H.graph_text(_input_reshaped, [(2, 4, 12)]))(
        [x], [((8, 12), "float32")])
    assert not failed
    H.check(got, x.reshape(8, 12))


def _two_sums(a, b):
    from max.graph import ops

    # [n] -> [1]: a 0-d sum, reshaped. The difference is scheduled: the schedule runs its CSE.
    return ops.sum(a, axis=0), ops.sum(b, axis=0), a - b


@pytest.mark.parametrize("n", [3, "n"])
def test_two_small_sums_keep_their_own_buffers(n) -> None:
    """Two identical zero fills that mo-dps-inits kept apart are merged again by the
    schedule's CSE; one empty tensor viewed as both outputs gave both sums the first's value
    (the inits of an output written in place are marked apart)."""
    a = np.array([1, 2, 3], np.float32)
    b = np.array([0.5, -1, 4], np.float32)
    (sa, sb, d), failed = H.Compiled(H.graph_text(_two_sums, [(n,), (n,)]))(
        [a, b], [((1,), "float32"), ((1,), "float32"), ((3,), "float32")])
    assert not failed
    H.check(d, a - b)
    H.check(sa, np.array([6], np.float32))
    H.check(sb, np.array([3.5], np.float32))


def _two_products(a, w1, w2):
    return a @ w1, a @ w2


@pytest.mark.parametrize("rows", [5, 64, "m"])
def test_two_outputs_of_one_shape_are_apart(rows) -> None:
    """Two matmuls of one shape returned: their zero fills merged by the schedule's CSE made
    one buffer of both outputs (the second got the first's product plus its own)."""
    rng = np.random.default_rng(4)
    m = 64 if rows == "m" else rows
    a = rng.standard_normal((m, 32), dtype=np.float32)
    w1, w2 = (rng.standard_normal((32, 3), dtype=np.float32) for _ in range(2))
    (p1, p2), failed = H.Compiled(H.graph_text(_two_products, [(rows, 32), (32, 3), (32, 3)]))(
        [a, w1, w2], [((m, 3), "float32"), ((m, 3), "float32")])
    assert not failed
    H.check(p1, _ref_bmm(a, w1), rtol=1e-5, atol=1e-5)
    H.check(p2, _ref_bmm(a, w2), rtol=1e-5, atol=1e-5)
