"""The polynomial f32 erf, tanh, log and log1p (fast_math.py) against float64 references; the
AVX-512 exp against the portable one."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import numpy as np
import pytest
import torch
from mo_helpers import Compiled, check, lowered_llvm, one_op_module

from max.compiler.host_cpu import AVX2, host
from max.compiler.pipelines import fast_math


# A schedule failure raises here instead of silently compiling plain loops.
pytestmark = pytest.mark.usefixtures("schedule_debug")


def _erf64(x: np.ndarray) -> np.ndarray:
    return torch.erf(torch.from_numpy(x)).numpy()


_REFS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "erf": _erf64, "tanh": np.tanh, "log": np.log, "log1p": np.log1p, "acos": np.arccos}
# Max relative error where the result is a normal float (erf: absolute error everywhere).
_RTOL = {"tanh": 2e-7, "log": 2e-7, "log1p": 3e-7}
_SPECIALS = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1e-38, -1e-38, 1e-30, -1e-30,
             1e-7, -1e-7, 6e-8, -6e-8, 1e-4, -1e-4, 0.5, -0.5, 0.625, -0.625, 0.7071, 1.0, -1.0,
             1.4142, 2.0, 3.83, 3.9, -3.9, 3.91, 4.0, -4.0, 9.0, 9.1, -9.1, 88.0, 1e30, -1e30,
             3.4e38, -3.4e38, 1.17549435e-38, -0.99999994, -1.0000001, 16777216.0]


def _inputs() -> np.ndarray:
    rng = np.random.default_rng(7)
    # A stride through every float32 bit pattern (both signs, denormals, all exponents).
    bits = np.arange(0, 2**32, 4099, dtype=np.uint64).astype(np.uint32).view(np.float32)
    grids = [np.linspace(-10, 10, 200_001), np.linspace(-1e-3, 1e-3, 20_001),
             np.geomspace(1e-38, 1e38, 20_001), rng.standard_normal(10_000) * 5]
    return np.concatenate([np.array(_SPECIALS, np.float32), bits,
                           *(np.float32(g) for g in grids)])


def _run(op: str, x: np.ndarray, dims: tuple) -> np.ndarray:
    c = Compiled(one_op_module(op, [("f32", dims)], ("f32", dims)))
    (out,), _ = c([x], [(x.shape, "float32")])
    return out


@pytest.mark.parametrize("op", ["erf", "tanh", "log", "log1p"])
def test_accuracy_over_the_float_range(op: str) -> None:
    x = _inputs()
    with np.errstate(all="ignore"):  # NaN payloads warn when cast to float64
        out = _run(op, x, ("n",)).astype(np.float64)
        ref = _REFS[op](x.astype(np.float64))
    assert np.array_equal(np.isnan(out), np.isnan(ref))
    fin = np.isfinite(ref)
    assert np.array_equal(out[~fin & ~np.isnan(ref)], ref[~fin & ~np.isnan(ref)])  # +-inf
    if op == "erf":
        assert np.abs(out[fin] - ref[fin]).max() <= 1e-6
        return
    normal = fin & (np.abs(ref) >= np.finfo(np.float32).tiny)
    rel = np.abs(out[normal] - ref[normal]) / np.abs(ref[normal])
    assert rel.max() <= _RTOL[op], (rel.max(), x[normal][np.argmax(rel)])
    tiny = fin & ~normal  # denormal results: within a few denormal steps
    assert np.abs(out[tiny] - ref[tiny]).max(initial=0.0) <= 4 * 1.4e-45


@pytest.mark.parametrize("op,x,expected", [
    ("erf", [np.inf, -np.inf, 0.0, 10.0, -10.0], [1.0, -1.0, 0.0, 1.0, -1.0]),
    # (9.5 .. 12: 1 in f32, either side of where |x| is clamped before the exp)
    ("tanh", [np.inf, -np.inf, 0.0, 20.0, -20.0, 9.5, 10.0, 10.5, -12.0],
     [1.0, -1.0, 0.0, 1.0, -1.0, 1.0, 1.0, 1.0, -1.0]),
    ("log", [0.0, -0.0, -1.0, np.inf, -np.inf, 1.0], [-np.inf, -np.inf, np.nan, np.inf, np.nan, 0]),
    ("log1p", [-1.0, -2.0, np.inf, 0.0, 1e-30], [-np.inf, np.nan, np.inf, 0.0, 1e-30]),
])
def test_special_values_exactly(op: str, x: list[float], expected: list[float]) -> None:
    a = np.array(x + [np.nan], np.float32)
    out = _run(op, a, ("n",))
    np.testing.assert_array_equal(out, np.array(expected + [np.nan], np.float32))


@pytest.mark.parametrize("op", ["erf", "tanh", "log", "log1p", "acos"])
@pytest.mark.parametrize("shape,dynamic", [((1,), False), ((7,), False), ((1000,), False),
                                           ((1,), True), ((7,), True), ((1000,), True),
                                           ((3, 67), True), ((5, 129), False)])
def test_scalar_and_vector_paths(op: str, shape: tuple[int, ...], dynamic: bool) -> None:
    """Odd and dynamic sizes run both the vector body and the scalar/masked remainder."""
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    if op.startswith("log"):
        x = np.abs(x) + np.float32(1e-3)
    if op == "acos":
        x = np.float32(np.tanh(x))
    dims = (("n",) + shape[1:]) if dynamic else shape
    out = _run(op, x, dims)
    ref = _REFS[op](x.astype(np.float64)).astype(np.float32)
    check(out, ref, rtol=3e-7, atol=1e-6 if op == "erf" else 0.0)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_torch(approximate: str) -> None:
    shape = (5, 1001)
    c = Compiled(one_op_module("gelu", [("f32", ("n", 1001))], ("f32", ("n", 1001)),
                               f'approximate = "{approximate}"'))
    x = np.concatenate([np.linspace(-12, 12, 5000), [0.0, -0.0, np.inf, -np.inf, 1e-30]]
                       ).astype(np.float32)[: 5 * 1001].reshape(shape)
    (out,), _ = c([x], [(shape, "float32")])
    ref = torch.nn.functional.gelu(torch.from_numpy(x.astype(np.float64)),
                                   approximate=approximate).numpy()
    check(out, ref.astype(np.float32), rtol=1e-6, atol=1e-6)


def _undefined_symbols(c: Compiled) -> str:
    return subprocess.run(["nm", "-D", "--undefined-only", c.lib._name], capture_output=True,
                          text=True, check=True).stdout


@pytest.mark.parametrize("op,attrs,libm", [
    ("erf", "", "erff"), ("tanh", "", "tanhf"), ("log", "", "logf"), ("log1p", "", "logf"),
    ("acos", "", "acosf"),
    ("gelu", 'approximate = "none"', "erff"), ("gelu", 'approximate = "tanh"', "tanhf")])
def test_vectorized_code_calls_no_libm(op: str, attrs: str, libm: str) -> None:
    text = one_op_module(op, [("f32", ("n", 256))], ("f32", ("n", 256)), attrs)
    llvm = lowered_llvm(text)
    assert "vector<" in llvm  # the schedule vectorized it
    assert f"@{libm}" not in llvm and "llvm.intr.log" not in llvm and "llvm.intr.tanh" not in llvm
    assert f" {libm}" not in _undefined_symbols(Compiled(text))


def test_acos_within_an_ulp_and_a_tenth() -> None:
    """Every 97th f32 bit pattern in [-1, 1] (all exponents down to denormals), a fine grid,
    the branch point 1/2 and the ends; outside [-1, 1] the op clamps, NaN stays NaN."""
    bits = np.arange(0, 2**32, 97, dtype=np.uint64).astype(np.uint32).view(np.float32)
    half = np.float32(0.5)
    x = np.concatenate([bits[np.abs(bits) <= 1], np.linspace(-1, 1, 400_001, dtype=np.float32),
                        np.float32([half, -half, np.nextafter(half, 1), -np.nextafter(half, 1),
                                    1, -1, 0, -0.0, np.nan, 2, -3, np.inf, -np.inf])])
    out = _run("acos", x, ("n",)).astype(np.float64)
    ref = np.arccos(np.clip(x.astype(np.float64), -1, 1))
    assert np.array_equal(np.isnan(out), np.isnan(x))
    ok = ~np.isnan(x)
    ulp = np.abs(out[ok] - ref[ok]) / np.spacing(ref[ok].astype(np.float32)).astype(np.float64)
    assert ulp.max() <= 1.15, (ulp.max(), x[ok][np.argmax(ulp)])
    assert out[x == 1].max() == 0.0 and (out[x == -1] == np.float32(np.pi)).all()


@pytest.mark.parametrize("portable", [False, True])
def test_exp_within_nine_tenths_of_an_ulp(portable: bool, monkeypatch) -> None:
    """exp_polynomial.POLY6 (0.87 ulp measured when it was fitted) over every result that is
    a normal f32, on the AVX-512 path and the portable one (two exponent-bit factors); beyond
    the range, inf and denormals within a few steps."""
    if portable:
        monkeypatch.setattr(fast_math, "host", lambda: AVX2)
    x = np.concatenate([_inputs(), np.linspace(-104, 89, 2_000_001, dtype=np.float32)])
    with np.errstate(all="ignore"):  # NaN payloads warn when cast to float64
        out = _run("exp", x, ("n",)).astype(np.float64)
        ref = np.exp(x.astype(np.float64))
    assert np.array_equal(np.isnan(out), np.isnan(x))
    big = ref > np.finfo(np.float32).max * (1 + 2.0**-25)  # rounds to inf in f32
    assert np.isinf(out[big]).all() and np.isfinite(out[~big & ~np.isnan(x)]).all()
    normal = ~big & (ref >= np.finfo(np.float32).tiny)
    ulp = np.abs(out[normal] - ref[normal]) / np.spacing(ref[normal].astype(np.float32))
    assert ulp.max() <= 0.9, (ulp.max(), x[normal][np.argmax(ulp)])
    tiny = ~np.isnan(x) & ~normal & ~big
    assert np.abs(out[tiny] - ref[tiny]).max() <= 4 * 1.4e-45


def test_f64_keeps_libm() -> None:
    """Only f32 is approximated: f64 erf and log stay libm-exact."""
    x = np.linspace(-5, 5, 1001)
    for op in ("erf", "log"):
        c = Compiled(one_op_module(op, [("f64", ("n",))], ("f64", ("n",))))
        (out,), _ = c([x], [(x.shape, "float64")])
        with np.errstate(all="ignore"):
            check(out, _REFS[op](x), rtol=1e-15, atol=1e-16)


_SCALEF = pytest.mark.skipif(not host().has_scalef,
                             reason="the host has no AVX-512F: exp keeps its two-factor 2^n")


@_SCALEF
@pytest.mark.parametrize("op", ["exp", "tanh", "sigmoid"])
def test_scalef_exp_equals_the_portable_one_bit_for_bit(op: str, monkeypatch) -> None:
    """With AVX-512, exp's 2^n is one ``vscalefps`` (an ``llvm.ldexp``) and n one
    ``cvtps2dq``; the result must be the portable code's (n rounded, then two exponent-bit
    factors), NaN payloads aside, over every exponent, overflow and denormal results."""
    x = np.concatenate([_inputs(), np.linspace(-110, 95, 400_001, dtype=np.float32)])
    fast = _run(op, x, ("n",))
    monkeypatch.setattr(fast_math, "host", lambda: AVX2)
    portable = _run(op, x, ("n",))
    assert np.array_equal(np.isnan(fast), np.isnan(portable))
    ok = ~np.isnan(fast)
    assert np.array_equal(fast[ok].view(np.uint32), portable[ok].view(np.uint32))


@_SCALEF
def test_scalef_exp_lowers_to_ldexp_and_lrint() -> None:
    llvm = lowered_llvm(one_op_module("exp", [("f32", ("n", 256))], ("f32", ("n", 256))))
    assert '"llvm.ldexp"' in llvm and "llvm.intr.lrint" in llvm
    assert "llvm.intr.roundeven" not in llvm and "@expf" not in llvm
