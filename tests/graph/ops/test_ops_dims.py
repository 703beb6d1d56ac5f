"""Shape arithmetic of the builders: exact division for reshape's -1, sums for concat."""

from __future__ import annotations

import sys
from pathlib import Path

from ops_helpers import result_type, tt
from hypothesis import assume, given

from max.dtype import DType
from max.graph import Dim, ops
from max.graph.dim import _evaluate_dim
from max.graph.ops._dims import exact_div

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from strategies import bindings, build_dim, exprs  # noqa: E402


@given(p=exprs, q=exprs, env=bindings)
def test_exact_div_multiplies_back(p, q, env) -> None:
    try:
        total, part = build_dim(p) * build_dim(q), build_dim(q)
    except ZeroDivisionError:  # a static // 0 inside the expression
        assume(False)
    assume(part != 0)
    quotient = exact_div(total, part)
    assert quotient is not None, (total, part)
    assert quotient * part == total
    try:
        want, divisor = _evaluate_dim(total, env), _evaluate_dim(part, env)
        got = _evaluate_dim(quotient, env)
    except ZeroDivisionError:
        return
    assume(divisor != 0)
    assert got * divisor == want


def test_exact_div_refuses_what_does_not_divide() -> None:
    n = Dim("n")
    assert exact_div(n + 1, n) is None
    assert exact_div(n * 4, Dim(3)) is None
    assert exact_div((n // 2) * 8, Dim(8)) == n // 2


def test_concat_of_floor_divided_sizes_keeps_them() -> None:
    """n // 2 + n // 2 is not n (odd n): the concatenated size must stay a sum of the parts."""
    t = result_type([tt(DType.float32, Dim("n") // 2, 3)] * 2,
                    lambda a, b: ops.concat([a, b], axis=0))
    assert t.shape[0] == (Dim("n") // 2) * 2
    assert t.shape[0] != Dim("n")


def test_reshape_minus_one_with_symbols() -> None:
    t = result_type([tt(DType.float32, "batch", "seq", 8)],
                    lambda x: ops.reshape(x, ["batch", -1, 2, 4]))
    assert [str(d) for d in t.shape] == ["batch", "seq", "2", "4"]

