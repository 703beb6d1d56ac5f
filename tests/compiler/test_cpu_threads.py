"""Matmul on several threads (scf.forall -> OpenMP through libiomp5), against numpy.

No timing here: the speed-up is measured by hand (see cpu_threads' docstring).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from mlir import ir
from mo_helpers import (  # noqa: F401  (two_threads: a fixture)
    Compiled, chain_text, check, make_context, mo_type, needs_omp, one_op_module, two_threads,
)

from max.compiler.lowering import lower_to_linalg
from max.compiler.pipelines import cpu, cpu_threads

pytestmark = pytest.mark.usefixtures("two_threads")


def _matmul_text(m: int | str, n: int, k: int) -> str:
    return one_op_module("matmul", [("f32", (m, k)), ("f32", (k, n))], ("f32", (m, n)))


def _llvm_ir(text: str, threads: int | None = None) -> str:
    with make_context():
        module = ir.Module.parse(text)
        lower_to_linalg(module)
        cpu.lower_to_llvm(module, threads=threads)
        return cpu.translate_to_llvm_ir(module)


def _run(c: Compiled, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    (out,), _ = c([a, b], [((a.shape[0], b.shape[1]), "float32")])
    return out


def _ref(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a.astype(np.float64) @ b).astype(np.float32)


def _inputs(m: int, n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((m, k), dtype=np.float32),
            rng.standard_normal((k, n), dtype=np.float32))


@needs_omp
def test_library_exports_the_openmp_abi() -> None:
    d = cpu_threads.omp_library_dir()
    assert d is not None and (d / cpu_threads.OMP_LIB).is_file()
    flags = cpu_threads.link_flags("declare i32 @__kmpc_fork_call(...)")
    assert flags == [f"-L{d}", "-liomp5", f"-Wl,-rpath,{d}"]
    assert cpu_threads.link_flags("define void @f() { ret void }") == []


@needs_omp
def test_large_matmul_forks_small_one_does_not() -> None:
    assert "@__kmpc_fork_call" in _llvm_ir(_matmul_text(256, 256, 256))
    assert "@__kmpc_fork_call" in _llvm_ir(_matmul_text("m", 256, 256))
    assert "@__kmpc_fork_call" not in _llvm_ir(_matmul_text(7, 256, 256))  # < MIN_ROWS
    assert "@__kmpc_fork_call" not in _llvm_ir(_matmul_text(16, 16, 16))  # too little work


def test_one_thread_or_no_library_is_the_single_thread_schedule(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert "__kmpc" not in _llvm_ir(_matmul_text(256, 256, 256), threads=1)  # as for the JIT
    monkeypatch.setenv(cpu_threads.THREADS_ENV, "1")
    assert "__kmpc" not in _llvm_ir(_matmul_text(256, 256, 256))
    monkeypatch.setenv(cpu_threads.THREADS_ENV, "2")
    monkeypatch.setattr(cpu_threads, "omp_library_dir", lambda: None)
    text = _matmul_text(256, 256, 256)
    assert "__kmpc" not in _llvm_ir(text)
    a, b = _inputs(256, 256, 256)
    check(_run(Compiled(text), a, b), _ref(a, b), rtol=1e-4, atol=1e-3)


@needs_omp
@pytest.mark.parametrize("m,n,k", [(1, 64, 300), (7, 33, 500), (33, 65, 1000), (1000, 257, 129),
                                   (256, 256, 256), (1000, 1000, 1000)])
def test_static_matmul_matches_numpy(m: int, n: int, k: int) -> None:
    a, b = _inputs(m, n, k, seed=m + n + k)
    check(_run(Compiled(_matmul_text(m, n, k)), a, b), _ref(a, b), rtol=1e-4,
          atol=1e-5 * np.sqrt(k))


@needs_omp
def test_dynamic_matmul_many_sizes_from_one_binary() -> None:
    c = Compiled(_matmul_text("m", 200, 160))
    _, b = _inputs(1, 200, 160)
    for m in (1, 2, 7, 8, 15, 16, 17, 33, 255, 256, 257, 1000):
        a = np.random.default_rng(m).standard_normal((m, 160), dtype=np.float32)
        check(_run(c, a, b), _ref(a, b), rtol=1e-4, atol=1e-4)


@needs_omp
def test_two_python_threads_call_one_model_concurrently() -> None:
    c = Compiled(_matmul_text("m", 256, 256))
    errors: list[str] = []

    def work(seed: int) -> None:
        for i in range(20):
            m = (97, 256, 33, 1000)[(seed + i) % 4]
            a, b = _inputs(m, 256, 256, seed=seed * 100 + i)
            try:
                check(_run(c, a, b), _ref(a, b), rtol=1e-4, atol=1e-3)
            except AssertionError as e:
                errors.append(str(e)[:200])

    threads = [threading.Thread(target=work, args=(s,)) for s in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


_TORCH_SCRIPT = """
import sys
import numpy as np
sys.path.insert(0, {tests!r})
first = sys.argv[1]
if first == "torch":
    import torch
    torch.set_num_threads(2)
    x = torch.randn(300, 300)
    (x @ x).sum().item()  # torch's own OpenMP (libgomp) threads are up
from mo_helpers import Compiled, one_op_module
c = Compiled(one_op_module("matmul", [("f32", ("m", 300)), ("f32", (300, 200))],
                           ("f32", ("m", 200))))
rng = np.random.default_rng(0)
b = rng.standard_normal((300, 200), dtype=np.float32)
if first == "max":
    import torch
    torch.set_num_threads(2)
for m in (1, 33, 512):
    a = rng.standard_normal((m, 300), dtype=np.float32)
    (out,), _ = c([a, b], [((m, 200), "float32")])
    ref = (a.astype(np.float64) @ b)
    assert np.abs(out - ref).max() < 1e-3, m
    t = (torch.from_numpy(a) @ torch.from_numpy(b)).numpy()
    assert np.abs(t - ref).max() < 1e-3, m
print("ok")
"""


@needs_omp
@pytest.mark.parametrize("first", ["torch", "max"])
def test_torch_in_the_same_process(first: str) -> None:
    pytest.importorskip("torch")
    tests = str(Path(__file__).parent)
    env = {**os.environ, cpu_threads.THREADS_ENV: "2"}
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(_TORCH_SCRIPT.format(tests=tests)),
                        first], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]


@needs_omp
@pytest.mark.parametrize("force_jit", [False, True])
def test_engine_runs_a_threaded_matmul(force_jit: bool) -> None:
    """The whole path: compile worker, cache, loader (the .so finds libiomp5 by its rpath)."""
    from max import driver, engine
    from max.dtype import DType
    from max.graph import DeviceRef, Graph, TensorType, ops

    cpu_dev = DeviceRef.CPU()
    graph = Graph(f"mm_threads_{int(force_jit)}", lambda a, b: ops.matmul(a, b), input_types=[
        TensorType(DType.float32, ["m", 192], cpu_dev), TensorType(DType.float32, [192, 160],
                                                                   cpu_dev)])
    session = engine.InferenceSession()
    if force_jit:
        session._options = {"force_jit": True}
    model = session.load(graph)
    assert model._artifact.kind == ("jit" if force_jit else "so")
    if not force_jit:  # threaded: the library needs libiomp5
        assert b"libiomp5.so" in (model._artifact.path / "model.so").read_bytes()
    for m in (1, 17, 300):
        a, b = _inputs(m, 160, 192, seed=m)
        (out,) = model.execute(driver.Tensor.from_numpy(a), driver.Tensor.from_numpy(b))
        check(out.to_numpy(), _ref(a, b), rtol=1e-4, atol=1e-3)


@needs_omp
@pytest.mark.parametrize("dims,shape", [((301, 257), (301, 257)), (("n", 4099), (1, 4099)),
                                        (("n", 4099), (33, 4099)), ((70000,), (70000,)),
                                        ((2, 3, 33333), (2, 3, 33333)),
                                        # a batch of one: the rows split, not the batch
                                        ((1, 128, 1536), (1, 128, 1536)),
                                        ((1, 1, 301, 257), (1, 1, 301, 257))])
def test_fused_elementwise_on_threads(dims: tuple, shape: tuple) -> None:
    text = chain_text(dims)
    assert "@__kmpc_fork_call" in _llvm_ir(text)
    rng = np.random.default_rng(7)
    a, b = (rng.standard_normal(shape, dtype=np.float32) for _ in range(2))
    (out,), _ = Compiled(text)([a, b], [(shape, "float32")])
    check(out, np.exp((a + b) * a), rtol=2e-6)


@needs_omp
@pytest.mark.parametrize("op", ["reduce_sum", "reduce_max", "softmax", "layer_norm"])
@pytest.mark.parametrize("dims,rows", [((257, 1000), 257), (("n", 4097), 1), (("n", 4097), 37)])
def test_row_ops_on_threads(op: str, dims: tuple, rows: int) -> None:
    cols = dims[1]
    tx = mo_type("f32", dims)
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((rows, cols)) * 4).astype(np.float32)
    x64 = x.astype(np.float64)
    if op == "layer_norm":
        tg = mo_type("f32", (cols,))
        text = (f"func.func @g(%x: {tx}, %g: {tg}, %b: {tg}) -> {tx} attributes {{mo.graph}} {{\n"
                f'  %r = "mo.layer_norm"(%x, %g, %b) {{epsilon = 1.0e-05 : f32}} : '
                f"({tx}, {tg}, {tg}) -> {tx}\n  func.return %r : {tx}\n}}\n")
        g, b = (rng.standard_normal(cols).astype(np.float32) for _ in range(2))
        args = [x, g, b]
        ref = (x64 - x64.mean(axis=1, keepdims=True)) / np.sqrt(
            x64.var(axis=1, keepdims=True) + 1e-5) * g + b
        out_shape, tol = (rows, cols), dict(rtol=1e-4, atol=1e-5)
    elif op == "softmax":
        text = one_op_module(op, [("f32", dims)], ("f32", dims), "axis = 1 : i64")
        e = np.exp(x64 - x64.max(axis=1, keepdims=True))
        args, ref = [x], e / e.sum(axis=1, keepdims=True)
        out_shape, tol = (rows, cols), dict(rtol=1e-5, atol=1e-7)
    else:
        text = one_op_module(op, [("f32", dims)], ("f32", (dims[0], 1)), "axis = 1 : i64")
        args = [x]
        ref = x64.sum(axis=1, keepdims=True) if op == "reduce_sum" else x.max(axis=1,
                                                                                 keepdims=True)
        out_shape, tol = (rows, 1), dict(rtol=1e-5, atol=1e-4)
    assert "@__kmpc_fork_call" in _llvm_ir(text)
    (out,), _ = Compiled(text)(args, [(out_shape, "float32")])
    check(out, ref.astype(np.float32), **tol)


@needs_omp
def test_small_elementwise_stays_on_one_thread() -> None:
    assert "__kmpc" not in _llvm_ir(chain_text((100, 100)))
    assert "__kmpc" not in _llvm_ir(chain_text(("n",)))  # unknown and maybe tiny
    assert "__kmpc" not in _llvm_ir(chain_text((1, 100, 100)))  # a batch of one, still small


def _three_linear_layers(x, w1, w2, w3):
    from max.graph import ops

    for w in (w1, w2, w3):
        x = ops.relu(x @ w)
    return x


@needs_omp
def test_repeated_splits_are_transformed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three layers of relu(x @ w) on symbolic rows: each op is split over the threads in a
    module of its own (with the producers it fuses and its run-time thread count), a layer
    that prints as an earlier one takes its result with its own schedule ids, and every row
    is right."""
    from mo_helpers import graph_text, record_scripts

    applied = record_scripts(monkeypatch)
    text = graph_text(_three_linear_layers, [("n", 256)] + [(256, 256)] * 3)
    assert "@__kmpc_fork_call" in _llvm_ir(text)
    splits = [s for s in applied if "tile_using_forall" in s]
    # Each layer is one split: the relu (the matmul's epilogue), its matmul and the fill of
    # C fused into its forall. The first layer's script is applied, the others take its
    # result; applied to the whole module, one script split all three.
    assert len(splits) == 1, splits
    assert splits[0].count("tile_using_forall") == 1
    assert splits[0].count("fuse_into_containing_op") == 2
    rng = np.random.default_rng(3)
    x = rng.standard_normal((45, 256)).astype(np.float32)
    ws = [(rng.standard_normal((256, 256)) / 16).astype(np.float32) for _ in range(3)]
    compiled = Compiled(text)
    assert not compiled.fallbacks
    for rows in (45, 1):  # run-time thread counts: two parts, then one
        (got,), _ = compiled([x[:rows], *ws], [((rows, 256), "float32")])
        want = x[:rows].astype(np.float64)
        for w in ws:
            want = np.maximum(want @ w, 0)
        check(got, want.astype(np.float32), rtol=2e-5, atol=1e-5)
