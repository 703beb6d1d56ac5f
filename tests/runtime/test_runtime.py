"""max.runtime on hand-written kernels: descriptors, dim expressions, loading, calling, checks."""

from __future__ import annotations

import ctypes
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from max.runtime import CpuExecutable, TensorSig, load_jit, load_shared_object
from max.runtime.memref import contiguous_strides, descriptor_class
from max.runtime.shapes import ShapeBinder, compile_dim

from kernels import CHECKED, CONCAT, build_jit_bytecode, build_so

F32, I64 = np.dtype("float32"), np.dtype("int64")


@pytest.fixture(scope="module", params=["so", "jit"])
def kind(request):
    return request.param


def _function(kind: str, source: str, symbol: str, num_args: int):
    if kind == "so":
        return load_shared_object(build_so(source), symbol=symbol, num_args=num_args)
    return load_jit(build_jit_bytecode(source), symbol=symbol, num_args=num_args)


@pytest.fixture(scope="module")
def concat(kind):
    fn = _function(kind, CONCAT, "_mlir_ciface_cat", 3)
    return CpuExecutable(fn, [TensorSig(F32, ("n", 3)), TensorSig(F32, ("m", 3))],
                         [TensorSig(F32, ("n + m", 3))], name="cat")


@pytest.fixture(scope="module")
def checked(kind):
    fn = _function(kind, CHECKED, "_mlir_ciface_checked", 3)
    return CpuExecutable(fn, [TensorSig(I64, ("k",))], [TensorSig(I64, ("k",))],
                         ["gather index out of bounds"], name="checked")


def test_descriptor_layout():
    assert ctypes.sizeof(descriptor_class(0)) == 24
    assert ctypes.sizeof(descriptor_class(2)) == 24 + 2 * 2 * 8
    assert descriptor_class(3) is descriptor_class(3)
    assert contiguous_strides((2, 3, 4)) == [12, 4, 1]
    assert contiguous_strides(()) == []


@pytest.mark.parametrize("text, env, value", [
    ("batch", {"batch": 3}, 3),
    ("batch * 2 + 1", {"batch": 3}, 7),
    ("(n + m) // 2 - -1", {"n": 3, "m": 4}, 4),
    ("-n + 10", {"n": 3}, 7),
])
def test_compile_dim(text, env, value):
    fn, names = compile_dim(text)
    assert fn(env) == value
    assert names == set(env)


@pytest.mark.parametrize("text", ["n ** 2", "n / 2", "f(n)", "n.x", "1.5", "n +", "__import__('os')"])
def test_compile_dim_rejects(text):
    with pytest.raises(ValueError, match="unsupported dim expression"):
        compile_dim(text)


@pytest.mark.parametrize("n, m", [(2, 4), (5, 1), (0, 3)])
def test_algebraic_output_dim(concat, n, m):
    a = np.random.rand(n, 3).astype(np.float32)
    b = np.random.rand(m, 3).astype(np.float32)
    (out,) = concat.run([a, b])
    assert out.shape == (n + m, 3)
    np.testing.assert_array_equal(out, np.concatenate([a, b]))


def test_shape_binder_binds_checks_and_sizes_outputs():
    """The binder both runtimes share: symbols from the inputs, expressions checked against
    them, outputs sized from them; every error names the input, its name and the dim."""
    binder = ShapeBinder("g", [("n", 3), ("n", "n * 2 + 1")], [("n * 2 + 1", 3), ("n - 5",)],
                         ["x", None])
    bindings = binder.bind([(4, 3), (4, 9)])
    assert bindings == {"n": 4}
    assert binder.output_shape(0, bindings) == (9, 3)
    with pytest.raises(ValueError, match=r"^output 1 of 'g' would have negative shape \(-1,\)"):
        binder.output_shape(1, bindings)
    with pytest.raises(ValueError, match=r"^input 1: dim 1 expected n \* 2 \+ 1 = 9, got 8$"):
        binder.bind([(4, 3), (4, 8)])
    with pytest.raises(ValueError, match=r"^input 1: dim 0 binds symbol 'n' to 5, but input 0 "
                                         r"dim 0 bound it to 4$"):
        binder.bind([(4, 3), (5, 11)])
    with pytest.raises(ValueError, match=r"^input 0 \('x'\): dim 1 expected 3, got 2 "):
        binder.check_input(0, (4, 2))
    with pytest.raises(ValueError, match=r"^input 0 \('x'\): expected rank 2"):
        binder.bind([(4,), (4, 9)])


def test_check_failure_then_recovery(checked):
    x = np.array([0, 1, 2, 3], np.int64)
    np.testing.assert_array_equal(checked.run([x])[0], x * 2)
    with pytest.raises(IndexError, match="^gather index out of bounds$"):
        checked.run([np.array([1, 7], np.int64)])
    # The checks buffer was reset: the same executable still works.
    np.testing.assert_array_equal(checked.run([x[:3]])[0], x[:3] * 2)


def test_shapes_checked_once_are_rebound_for_each_call(kind):
    """Two executables of one signature (the layers of a decoder) share the checked shapes'
    sizes and strides; each call still binds its own arrays, alternating shapes (a growing
    cache) are written again, and a shape error after a good call leaves the next good call
    correct."""
    fn = _function(kind, CONCAT, "_mlir_ciface_cat", 3)
    sigs = ([TensorSig(F32, ("n", 3)), TensorSig(F32, ("m", 3))], [TensorSig(F32, ("n + m", 3))])
    first, second = CpuExecutable(fn, *sigs, name="a"), CpuExecutable(fn, *sigs, name="b")
    rng = np.random.default_rng(0)
    for n, m in [(2, 4), (2, 4), (3, 4), (2, 4), (0, 5), (3, 4)]:
        for exe in (first, second):
            a = rng.standard_normal((n, 3)).astype(np.float32)
            b = rng.standard_normal((m, 3)).astype(np.float32)
            (out,) = exe.run([a, b])
            assert out.shape == (n + m, 3)
            np.testing.assert_array_equal(out, np.concatenate([a, b]))
    a = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="dim 1 expected 3, got 4"):
        first.run([a, np.ones((4, 4), np.float32)])
    with pytest.raises(TypeError, match="expected dtype float32, got float64"):
        first.run([a, np.ones((4, 3), np.float64)])  # shapes seen before: dtypes still checked
    b = np.full((4, 3), 2.0, np.float32)
    np.testing.assert_array_equal(first.run([a, b])[0], np.concatenate([a, b]))


def test_symbol_bound_twice_is_refused_after_a_good_call():
    """The checks of a signature's shapes are remembered only once they passed."""
    fn = load_shared_object(build_so(CONCAT), symbol="_mlir_ciface_cat", num_args=3)
    exe = CpuExecutable(fn, [TensorSig(F32, ("n", 3)), TensorSig(F32, ("n", 3))],
                        [TensorSig(F32, ("n + n", 3))], name="same")
    a = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(exe.run([a, a + 1])[0], np.concatenate([a, a + 1]))
    for _ in range(2):  # not remembered as good the first time
        with pytest.raises(ValueError, match="binds symbol 'n' to 3, but input 0 dim 0 bound"):
            exe.run([a, np.ones((3, 3), np.float32)])
    np.testing.assert_array_equal(exe.run([a, a * 3])[0], np.concatenate([a, a * 3]))


def test_an_output_sized_by_data_is_returned_through_one_more_argument(kind):
    """An output using a symbol no input binds is allocated by the compiled code and returned
    through a leading pointer (docs/architecture.md, "Outputs sized by the data"): the entry
    takes one argument more than the inputs and the other outputs, which this one lacks."""
    fn = _function(kind, CONCAT, "_mlir_ciface_cat", 3)
    with pytest.raises(ValueError, match="takes 3 arguments, expected 4"):
        CpuExecutable(fn, [TensorSig(F32, ("n", 3)), TensorSig(F32, ("m", 3))],
                      [TensorSig(F32, ("n + m", 3)), TensorSig(F32, ("n + q", 3))])


def test_argument_count_mismatch(kind):
    fn = _function(kind, CONCAT, "_mlir_ciface_cat", 3)
    with pytest.raises(ValueError, match="takes 3 arguments, expected 2"):
        CpuExecutable(fn, [TensorSig(F32, ("n", 3))], [TensorSig(F32, ("n", 3))])


def test_missing_symbol():
    with pytest.raises(RuntimeError, match="no entry symbol '_mlir_ciface_nope'"):
        load_shared_object(build_so(CONCAT), symbol="_mlir_ciface_nope", num_args=3)


def test_not_a_shared_object():
    with pytest.raises(RuntimeError, match="could not load compiled model"):
        load_shared_object(b"\x7fELF garbage", symbol="_mlir_ciface_cat", num_args=3)


def test_runtime_does_not_import_mlir(tmp_path):
    so = tmp_path / "cat.so"
    so.write_bytes(build_so(CONCAT))
    script = textwrap.dedent(f"""
        import sys, numpy as np
        from max.runtime import CpuExecutable, TensorSig, load_shared_object
        f32 = np.dtype("float32")
        fn = load_shared_object(open({str(so)!r}, "rb").read(), symbol="_mlir_ciface_cat",
                                num_args=3)
        exe = CpuExecutable(fn, [TensorSig(f32, ("n", 3)), TensorSig(f32, ("m", 3))],
                            [TensorSig(f32, ("n + m", 3))])
        out, = exe.run([np.ones((1, 3), f32), np.zeros((2, 3), f32)])
        assert out.tolist() == [[1, 1, 1], [0, 0, 0], [0, 0, 0]], out
        assert "mlir" not in sys.modules
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
