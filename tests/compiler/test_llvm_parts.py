"""The module split over parallel opt/llc processes (compiler/pipelines/llvm_parts.py) and the
outlined serial kernels that make it worth doing (compiler/pipelines/outline_kernels.py)."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from max.compiler.pipelines import cpu, llvm_parts
from tests.compiler import mo_helpers as H


def _body(lines: int) -> str:
    return "".join("  %v{i} = add i64 0, {i}\n".format(i=i) for i in range(lines))


def _module(**extra: str) -> str:
    text = [
        "@shape = private constant [2 x i64] [i64 1, i64 2], align 64",
        "@0 = private unnamed_addr constant [3 x i8] c\"ab\\00\", align 1",
        "@counters = global [8 x i64] zeroinitializer",
        "@ext = external global i32",
        "declare void @free(ptr)",
    ]
    for name, lines in (("entry", 400), ("big", 3000), ("mid", 2000), ("small", 900)):
        text.append(f"define void @{name}(ptr %0) {{\n{_body(lines)}  ret void\n}}")
    text.append(f"define internal void @entry..omp_par(ptr %0) {{\n{_body(1200)}  ret void\n}}")
    text.append(f"define linkonce_odr i64 @helper(i64 %0) {{\n{_body(50)}  ret i64 %0\n}}")
    text.extend(extra.values())
    return "\n".join(text) + "\n"


def test_plan_balances_functions_and_copies_what_may_be_copied() -> None:
    plan = llvm_parts.plan(_module(), 2)
    assert plan is not None and len(plan.parts) == 2
    first, second = plan.parts
    # Largest first, each into the lightest part (lines: big 3002, mid 2002, omp_par 1202,
    # small 902, entry 402): big, small | mid, omp_par, entry. The linkonce helper: in both.
    assert set(first.functions) == {"big", "small", "helper"}
    assert set(second.functions) == {"mid", "entry..omp_par", "entry", "helper"}
    # The mutable global is defined once (part 0) and stays visible; the private constants
    # are copied wherever read (not public), the declaration is nobody's.
    assert first.globals == ("counters",) and second.globals == ()
    assert set(plan.public) == {"entry", "big", "mid", "small", "entry..omp_par", "helper",
                                "counters"}


def test_plan_keeps_small_or_unknown_modules_whole() -> None:
    assert llvm_parts.plan(_module(), 1) is None
    small = "define void @f() {\n" + _body(100) + "  ret void\n}\n"
    assert llvm_parts.plan(small + small.replace("@f", "@g"), 4) is None
    # At most one part per MIN_PART_LINES lines of functions (7510 lines: 5 parts).
    assert len(llvm_parts.plan(_module(), 8).parts) == 5
    for odd in ("@a = alias void (ptr), ptr @entry", '@"odd name" = global i32 0',
                "@1 = internal global i32 0", "$c = comdat any",
                "define internal void @0() {\n  ret void\n}"):
        assert llvm_parts.plan(_module(odd=odd), 2) is None, odd


@pytest.fixture
def split_everything(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every module compiled in three parts, whatever its size; the plans made, recorded."""
    plans: list = []
    plan = llvm_parts.plan

    def spy(text: str, parts: int):
        plans.append(plan(text, parts))
        return plans[-1]

    monkeypatch.setattr(llvm_parts, "MIN_PART_LINES", 1)
    monkeypatch.setattr(llvm_parts, "plan", spy)
    monkeypatch.setattr(cpu, "compile_parallelism", lambda: 3)
    return plans


def _graph(x, w):
    from max.graph import ops

    y = ops.softmax(x @ w)  # a threaded matmul, serial row kernels
    return ops.exp(-y) * x + ops.tanh(y), ops.layer_norm(
        y, gamma=ops.constant(np.linspace(0.5, 1.5, 256, dtype=np.float32), device=None),
        beta=ops.constant(np.full(256, 0.25, np.float32), device=None), epsilon=1e-5)


def _expected(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = (x.astype(np.float64) @ w)
    y = np.exp(z - z.max(-1, keepdims=True))
    y /= y.sum(-1, keepdims=True)
    mean, var = y.mean(-1, keepdims=True), y.var(-1, keepdims=True)
    gamma, beta = np.linspace(0.5, 1.5, 256), 0.25
    return np.exp(-y) * x + np.tanh(y), (y - mean) / np.sqrt(var + 1e-5) * gamma + beta


@H.needs_omp
def test_split_compile_matches_numpy(split_everything: list) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 256), dtype=np.float32)
    w = (rng.standard_normal((256, 256), dtype=np.float32) / 16).astype(np.float32)
    c = H.Compiled(H.graph_text(_graph, [(128, 256), (256, 256)]))
    plan = split_everything[-1]
    assert plan is not None and len(plan.parts) == 3
    names = [f for part in plan.parts for f in part.functions]
    assert any("__k" in f for f in names) and any("omp_par" in f for f in names)
    (a, b), failed = c([x, w], [((128, 256), "float32"), ((128, 256), "float32")])
    assert not failed
    ea, eb = _expected(x, w)
    np.testing.assert_allclose(a, ea, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(b, eb, rtol=2e-4, atol=2e-4)


@H.needs_omp
def test_split_profiled_build_keeps_one_exported_counter_array(split_everything: list) -> None:
    from max.runtime.artifact import profile_symbol

    from max.compiler.passes.profile_kernels import SLOTS

    rng = np.random.default_rng(1)
    x = rng.standard_normal((128, 256), dtype=np.float32)
    w = rng.standard_normal((256, 256), dtype=np.float32)
    c = H.Compiled(H.graph_text(_graph, [(128, 256), (256, 256)]), profile=True)
    plan = split_everything[-1]
    assert plan is not None and any(part.globals for part in plan.parts)
    for _ in range(3):
        c([x, w], [((128, 256), "float32"), ((128, 256), "float32")])
    counters = (ctypes.c_int64 * SLOTS).in_dll(c.lib, profile_symbol("g"))  # timer 0: the body
    assert counters[1] == 3 and counters[0] > 0


def test_outlined_kernels_are_internal_functions_with_their_constants() -> None:
    text = H.scheduled_ir(H.graph_text(_graph, [(128, 256), (256, 256)]),
                          until="mo-outline-kernels")
    entry = text[text.index("func.func @mo_graph_g("):]
    entry = entry[:entry.index("\n  }\n")]
    top_level = [line.strip() for line in entry.splitlines() if line.startswith("    ")
                 and not line.startswith("     ")]
    assert not any(line.startswith("scf.") for line in top_level), top_level
    assert "call @mo_graph_g__k0(" in entry
    outlined = [line for line in text.splitlines() if "__k" in line and "func.func" in line]
    assert outlined and all("private" in line and "llvm.linkage = #llvm.linkage<internal>"
                            in line for line in outlined), outlined
    body = text[text.index(outlined[0].strip()):]
    assert "arith.constant" in body[:body.index("\n  }\n")]  # loop bounds cloned, not passed


def _two_layers(x, w1, w2):
    from max.graph import ops

    def layer(h, w):
        return ops.softmax(h @ w) * h

    return layer(layer(x, w1), w2)


@H.needs_omp
def test_identical_kernels_share_one_function() -> None:
    text = H.scheduled_ir(H.graph_text(_two_layers, [(128, 256), (256, 256), (256, 256)]),
                          until="mo-outline-kernels")
    calls = [line.split("call @")[1].split("(")[0] for line in text.splitlines()
             if "call @mo_graph_g__k" in line]
    defined = [line for line in text.splitlines() if "func.func private @mo_graph_g__k" in line]
    # Each layer: the matmul and its row kernel; the second layer calls the first's functions.
    assert len(calls) == 2 * len(set(calls)) and len(defined) == len(set(calls)), (calls, defined)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((128, 256), dtype=np.float32)
    w1, w2 = ((rng.standard_normal((256, 256), dtype=np.float32) / 16).astype(np.float32)
              for _ in range(2))
    (got,), failed = H.Compiled(H.graph_text(_two_layers, [(128, 256), (256, 256), (256, 256)]))(
        [x, w1, w2], [((128, 256), "float32")])

    def layer(h, w):
        z = h.astype(np.float64) @ w
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True) * h

    assert not failed
    np.testing.assert_allclose(got, layer(layer(x, w1), w2), rtol=1e-4, atol=1e-5)


def _two_attentions(x):
    from max.graph import ops

    def layer(h):
        return ops.softmax(h @ ops.transpose(h, 1, 2)) @ h

    return layer(layer(x))


@H.needs_omp
def test_symbolic_attention_kernels_share_one_function() -> None:
    """Padded batch matmuls (symbolic rows and columns) mark their remainder loops: one mark
    for all, or each layer's attention kernels print differently and are compiled again."""
    text = H.graph_text(_two_attentions, [("b", "s", 32)])
    outlined = H.scheduled_ir(text, until="mo-outline-kernels")
    calls = [line.split("call @")[1].split("(")[0] for line in outlined.splitlines()
             if "call @mo_graph_g__k" in line]
    defined = [line for line in outlined.splitlines() if "func.func private @mo_graph_g__k" in line]
    assert len(calls) == 2 * len(set(calls)) and len(defined) == len(set(calls)), (calls, defined)
    x = np.random.default_rng(3).standard_normal((3, 21, 32), dtype=np.float32) / 4

    def layer(h):
        z = h @ h.transpose(0, 2, 1)
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True) @ h

    (got,), failed = H.Compiled(text)([x], [((3, 21, 32), "float32")])
    assert not failed
    np.testing.assert_allclose(got, layer(layer(x.astype(np.float64))), rtol=1e-4, atol=1e-5)
