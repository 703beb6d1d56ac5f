"""``ops.custom``/``ops.inplace_custom`` calling MLIR kernels from ``.mlir`` files given at load:
numbers against numpy, buffers updated in place and in program order, and exact errors for
every way a kernel and its op can disagree (at build, load and run time)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from max import engine
from max.compiler.passes.registry import CompilationError
from max.dtype import DType
from max.graph import BufferType, DeviceRef, Graph, TensorType, ops

CPU = DeviceRef.CPU()
F32 = DType.float32
ROOT = Path(__file__).resolve().parents[3]

SCALE = """
#id = affine_map<(i, j) -> (i, j)>
func.func @scale(%x: tensor<?x?xf32>, %alpha: f32 {max.parameter = "alpha"}) -> tensor<?x?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = tensor.dim %x, %c0 : tensor<?x?xf32>
  %m = tensor.dim %x, %c1 : tensor<?x?xf32>
  %e = tensor.empty(%n, %m) : tensor<?x?xf32>
  %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%x : tensor<?x?xf32>) outs(%e : tensor<?x?xf32>) {
  ^bb0(%a: f32, %o: f32):
    %s = arith.mulf %a, %alpha : f32
    linalg.yield %s : f32
  } -> tensor<?x?xf32>
  return %r : tensor<?x?xf32>
}
"""

SUM_DIFF = """
#id = affine_map<(i, j) -> (i, j)>
func.func @sum_diff(%x: tensor<4x3xf32>, %y: tensor<4x3xf32>) -> (tensor<4x3xf32>, tensor<4x3xf32>) {
  %e = tensor.empty() : tensor<4x3xf32>
  %r:2 = linalg.generic {indexing_maps = [#id, #id, #id, #id],
                         iterator_types = ["parallel", "parallel"]}
      ins(%x, %y : tensor<4x3xf32>, tensor<4x3xf32>) outs(%e, %e : tensor<4x3xf32>, tensor<4x3xf32>) {
  ^bb0(%a: f32, %b: f32, %o1: f32, %o2: f32):
    %s = arith.addf %a, %b : f32
    %d = arith.subf %a, %b : f32
    linalg.yield %s, %d : f32, f32
  } -> (tensor<4x3xf32>, tensor<4x3xf32>)
  return %r#0, %r#1 : tensor<4x3xf32>, tensor<4x3xf32>
}
"""

PICK = """
#id = affine_map<(i) -> (i)>
func.func @pick(%x: tensor<?xi32>, %neg: i1 {max.parameter = "negate"},
                %k: i32 {max.parameter = "k"}) -> tensor<?xi32> {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?xi32>
  %e = tensor.empty(%n) : tensor<?xi32>
  %zero = arith.constant 0 : i32
  %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel"]}
      ins(%x : tensor<?xi32>) outs(%e : tensor<?xi32>) {
  ^bb0(%a: i32, %o: i32):
    %p = arith.muli %a, %k : i32
    %q = arith.subi %zero, %p : i32
    %s = arith.select %neg, %q, %p : i32
    linalg.yield %s : i32
  } -> tensor<?xi32>
  return %r : tensor<?xi32>
}
"""

# An in-place kernel and the private helper it calls (helpers stay in their file).
INCREMENT = """
func.func private @bump(%v: f32, %step: f32) -> f32 {
  %w = arith.addf %v, %step : f32
  return %w : f32
}
func.func @increment(%buf: memref<?xf32>, %step: f32 {max.parameter = "step"}) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = memref.dim %buf, %c0 : memref<?xf32>
  scf.for %i = %c0 to %n step %c1 {
    %v = memref.load %buf[%i] : memref<?xf32>
    %w = func.call @bump(%v, %step) : (f32, f32) -> f32
    memref.store %w, %buf[%i] : memref<?xf32>
  }
  return
}
func.func @decrement(%buf: memref<?xf32>) {
  %one = arith.constant -1.0 : f32
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = memref.dim %buf, %c0 : memref<?xf32>
  scf.for %i = %c0 to %n step %c1 {
    %v = memref.load %buf[%i] : memref<?xf32>
    %w = func.call @bump(%v, %one) : (f32, f32) -> f32
    memref.store %w, %buf[%i] : memref<?xf32>
  }
  return
}
"""

# Five ones, whatever the input: right only when the declared out dim "n" is 5.
FIVE = """
func.func @five(%x: tensor<?xf32>) -> tensor<5xf32> {
  %one = arith.constant 1.0 : f32
  %e = tensor.empty() : tensor<5xf32>
  %r = linalg.fill ins(%one : f32) outs(%e : tensor<5xf32>) -> tensor<5xf32>
  return %r : tensor<5xf32>
}
"""


def _kernel_file(tmp_path: Path, text: str, name: str = "kernels.mlir") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _load(g: Graph, *extensions: Path) -> engine.Model:
    return engine.InferenceSession(custom_extensions=list(extensions)).load(g)


def _scale_graph(alpha: Any = 2.5, name: str = "scale",
                 out: TensorType | None = None) -> Graph:
    t = TensorType(F32, ("n", "m"), CPU)
    with Graph("scale_graph", input_types=[t]) as g:
        (y,) = ops.custom(name, CPU, [g.inputs[0]], [out or t], parameters={"alpha": alpha})
        g.output(y + 1)
    return g


def test_elementwise_kernel_with_a_float_parameter_on_symbolic_dims(tmp_path: Path) -> None:
    model = _load(_scale_graph(), _kernel_file(tmp_path, SCALE))
    rng = np.random.default_rng(0)
    for shape in [(2, 3), (5, 1), (0, 4)]:
        x = rng.standard_normal(shape).astype(np.float32)
        (y,) = model.execute(x)
        assert y.to_numpy().shape == shape
        np.testing.assert_allclose(y.to_numpy(), x * np.float32(2.5) + 1, rtol=1e-6)


def test_kernel_with_two_results(tmp_path: Path) -> None:
    t = TensorType(F32, (4, 3), CPU)
    with Graph("two", input_types=[t, t]) as g:
        s, d = ops.custom("sum_diff", CPU, list(g.inputs), [t, t])
        g.output(s, d * 2)
    x, y = np.random.default_rng(1).standard_normal((2, 4, 3)).astype(np.float32)
    s, d = _load(g, _kernel_file(tmp_path, SUM_DIFF)).execute(x, y)
    np.testing.assert_allclose(s.to_numpy(), x + y, rtol=1e-6)
    np.testing.assert_allclose(d.to_numpy(), (x - y) * 2, rtol=1e-6)


@pytest.mark.parametrize("negate", [False, True])
def test_int_and_bool_parameters(tmp_path: Path, negate: bool) -> None:
    t = TensorType(DType.int32, ("n",), CPU)
    with Graph("pick", input_types=[t]) as g:
        g.output(*ops.custom("pick", CPU, [g.inputs[0]], [t],
                             parameters={"k": np.int64(-3), "negate": negate}))
    x = np.arange(-4, 6, dtype=np.int32)
    (y,) = _load(g, _kernel_file(tmp_path, PICK)).execute(x)
    np.testing.assert_array_equal(y.to_numpy(), (3 if negate else -3) * x)


def test_inplace_kernel_updates_a_buffer_in_place_in_program_order(tmp_path: Path) -> None:
    with Graph("inc", input_types=[BufferType(F32, ("n",), CPU)]) as g:
        (buf,) = g.inputs
        before = ops.buffer_load(buf)
        assert ops.inplace_custom("increment", CPU, [buf], parameters={"step": 0.5}) == []
        middle = ops.buffer_load(buf)
        ops.inplace_custom("increment", CPU, [buf], parameters={"step": 0.5})  # not CSE'd
        g.output(before, middle)
    b = np.arange(6, dtype=np.float32)
    original = b.copy()
    before, middle = _load(g, _kernel_file(tmp_path, INCREMENT)).execute(b)
    np.testing.assert_array_equal(before.to_numpy(), original)
    np.testing.assert_array_equal(middle.to_numpy(), original + 0.5)
    np.testing.assert_array_equal(b, original + 1.0)  # the caller's array


def test_inplace_kernels_in_cond_branches_as_in_the_reference(tmp_path: Path) -> None:
    with Graph("cond_inc", input_types=[BufferType(F32, (3,), CPU),
                                        TensorType(DType.bool, (), CPU)]) as g:
        buffer, pred = g.inputs

        def then_fn() -> None:
            ops.inplace_custom("increment", device=buffer.device, values=[buffer],
                               parameters={"step": 1.0})

        def else_fn() -> None:
            ops.inplace_custom("decrement", device=buffer.device, values=[buffer])

        ops.cond(pred, None, then_fn, else_fn)
        g.output()
    model = _load(g, _kernel_file(tmp_path, INCREMENT))
    b = np.zeros(3, np.float32)
    for p, want in [(True, 1.0), (True, 2.0), (False, 1.0)]:
        model.execute(b, np.array(p))
        np.testing.assert_array_equal(b, np.full(3, want, np.float32))


def test_a_folder_is_every_mlir_file_in_it(tmp_path: Path) -> None:
    _kernel_file(tmp_path, SCALE, "a.mlir")
    _kernel_file(tmp_path, SUM_DIFF, "b.mlir")
    (tmp_path / "notes.txt").write_text("not a kernel")
    (y,) = _load(_scale_graph(alpha=3), tmp_path).execute(np.ones((1, 2), np.float32))
    np.testing.assert_array_equal(y.to_numpy(), np.full((1, 2), 4.0, np.float32))


def test_result_shape_mismatch_is_a_runtime_check(tmp_path: Path) -> None:
    t = TensorType(F32, ("n",), CPU)
    with Graph("five", input_types=[t]) as g:
        g.output(*ops.custom("five", CPU, [g.inputs[0]], [t]))
    model = _load(g, _kernel_file(tmp_path, FIVE))
    message = ("custom: kernel @five returned result 0 with a shape other than its declared "
               "out_types[0] [n]")
    with pytest.raises(ValueError, match=re.escape(message)):
        model.execute(np.zeros(3, np.float32))
    (y,) = model.execute(np.zeros(5, np.float32))  # the model stays usable
    np.testing.assert_array_equal(y.to_numpy(), np.ones(5, np.float32))


def test_kernel_text_is_part_of_the_cache_key(tmp_path: Path) -> None:
    first = _kernel_file(tmp_path, SCALE, "v1.mlir")
    second = _kernel_file(tmp_path, SCALE.replace("arith.mulf", "arith.addf"), "v2.mlir")
    x = np.full((2, 2), 3.0, np.float32)
    (a,) = _load(_scale_graph(), first).execute(x)
    (b,) = _load(_scale_graph(), second).execute(x)
    np.testing.assert_array_equal(a.to_numpy(), x * 2.5 + 1)
    np.testing.assert_array_equal(b.to_numpy(), x + 2.5 + 1)


# -- errors at load: each names the kernel, the argument and the types -------------------------


def _load_error(g: Graph, text: str, tmp_path: Path) -> str:
    with pytest.raises(CompilationError) as info:
        _load(g, _kernel_file(tmp_path, text))
    return str(info.value)


def test_unknown_kernel_name(tmp_path: Path) -> None:
    message = _load_error(_scale_graph(name="scal"), SCALE, tmp_path)
    assert f"custom kernel @scal not found in the custom extensions ({tmp_path / 'kernels.mlir'}"\
           "; kernels: @scale)" in message


def test_no_extensions_given() -> None:
    with pytest.raises(CompilationError, match="custom kernel @scale: no custom extensions were "
                                               "given"):
        engine.InferenceSession().load(_scale_graph())


def test_wrong_argument_type(tmp_path: Path) -> None:
    message = _load_error(_scale_graph(), SCALE.replace("f32", "f64"), tmp_path)
    assert ("custom kernel @scale (" in message and "): argument 0 is tensor<?x?xf64>, but the "
            "op passes !mo.tensor<f32, [n, m]>, which the kernel must take as a tensor<?x?xf32>"
            in message)


def test_static_kernel_dim_for_a_symbolic_operand(tmp_path: Path) -> None:
    text = ("func.func @scale(%x: tensor<?x3xf32>, %a: f32 {max.parameter = \"alpha\"}) -> "
            "tensor<?x3xf32> {\n  return %x : tensor<?x3xf32>\n}\n")
    message = _load_error(_scale_graph(), text, tmp_path)
    assert "argument 0 is tensor<?x3xf32>, but the op passes !mo.tensor<f32, [n, m]>" in message


def test_wrong_result_count_and_type(tmp_path: Path) -> None:
    t = TensorType(F32, (4, 3), CPU)
    with Graph("one", input_types=[t, t]) as g:
        g.output(*ops.custom("sum_diff", CPU, list(g.inputs), [t]))
    assert "returns 2 values, the op's out_types have 1" in _load_error(g, SUM_DIFF, tmp_path)
    with Graph("bad_dims", input_types=[t, t]) as g:
        g.output(*ops.custom("sum_diff", CPU, list(g.inputs),
                             [t, TensorType(F32, (4, 2), CPU)]))
    assert ("result 1 is tensor<4x3xf32>, but out_types[1] is !mo.tensor<f32, [4, 2]>"
            in _load_error(g, SUM_DIFF, tmp_path))


def test_missing_extra_and_mistyped_parameters(tmp_path: Path) -> None:
    t = TensorType(DType.int32, ("n",), CPU)

    def graph(parameters: dict[str, Any]) -> Graph:
        with Graph("pick", input_types=[t]) as g:
            g.output(*ops.custom("pick", CPU, [g.inputs[0]], [t], parameters=parameters))
        return g

    assert ("parameter 'negate' (argument 1, i1) is not given by the op"
            in _load_error(graph({"k": 2}), PICK, tmp_path))
    assert ("the op gives parameter 'scale', which the kernel does not take (its parameters: "
            "k, negate)" in _load_error(graph({"k": 2, "negate": True, "scale": 1}), PICK,
                                         tmp_path))
    assert ("parameter 'k' = 2.0 is not an int, for a i32 argument"
            in _load_error(graph({"k": 2.0, "negate": True}), PICK, tmp_path))
    assert ("parameter 'k' = 4294967296 does not fit a i32 argument"
            in _load_error(graph({"k": 2**32, "negate": True}), PICK, tmp_path))
    assert ("parameter 'negate' = 1 is not a bool, for an i1 argument"
            in _load_error(graph({"k": 1, "negate": 1}), PICK, tmp_path))


def test_malformed_kernel_file(tmp_path: Path) -> None:
    path = tmp_path / "kernels.mlir"
    message = _load_error(_scale_graph(), "func.func @scale(%x: tensor<?xf32> {\n", tmp_path)
    assert message.startswith(f"custom extension {path}: could not parse it:")
    assert f"{path}:1:" in message


def test_kernel_using_other_dialects_or_declared_only(tmp_path: Path) -> None:
    text = SCALE.replace("%s = arith.mulf %a, %alpha : f32",
                         "%s = llvm.fmul %a, %alpha : f32")
    assert "custom kernel @scale (" in (m := _load_error(_scale_graph(), text, tmp_path))
    assert ") uses llvm.fmul at " in m and "kernels may use the dialects affine, arith" in m
    declared = INCREMENT.replace("""func.func private @bump(%v: f32, %step: f32) -> f32 {
  %w = arith.addf %v, %step : f32
  return %w : f32
}""", "func.func private @bump(%v: f32, %step: f32) -> f32")
    with Graph("inc", input_types=[BufferType(F32, (2,), CPU)]) as g:
        ops.inplace_custom("increment", CPU, [g.inputs[0]], parameters={"step": 1})
        g.output()
    assert "custom kernel @increment (" in (m := _load_error(g, declared, tmp_path))
    assert "): helper @bump is external (a declaration without a body)" in m


def test_kernel_defined_in_two_files(tmp_path: Path) -> None:
    a, b = _kernel_file(tmp_path, SCALE, "a.mlir"), _kernel_file(tmp_path, SCALE, "b.mlir")
    with pytest.raises(CompilationError, match=re.escape(
            f"custom kernel @scale is defined in both {a} and {b}")):
        _load(_scale_graph(), a, b)


# -- errors at build time and in the session's arguments ---------------------------------------


def test_builder_errors() -> None:
    t = TensorType(F32, ("n",), CPU)
    with Graph("bad", input_types=[t, BufferType(F32, ("n",), CPU)]) as g:
        x, buf = g.inputs
        with pytest.raises(TypeError, match=re.escape(
                "custom: values[1] is a buffer (")):
            ops.custom("k", CPU, [x, buf], [t])
        with pytest.raises(TypeError, match="custom: parameter 'dtype' is a DType; MLIR kernels "
                                            "take bool, int and float parameters only"):
            ops.custom("k", CPU, [x], [t], parameters={"dtype": DType.float32})
        with pytest.raises(TypeError, match="custom: out_types\\[0\\] must be a TensorType"):
            ops.custom("k", CPU, [x], [BufferType(F32, ("n",), CPU)])
        with pytest.raises(ValueError, match="custom: out_types\\[0\\] uses the symbol 'k'"):
            ops.custom("k", CPU, [x], [TensorType(F32, ("k",), CPU)])
        with pytest.raises(ValueError, match="inplace_custom: kernel name 'a b' is not a "
                                             "function name"):
            ops.inplace_custom("a b", CPU, [buf])


def test_session_extension_arguments(tmp_path: Path) -> None:
    with pytest.raises(NotImplementedError, match="Mojo custom ops are not supported"):
        engine.InferenceSession(custom_extensions=[tmp_path / "ops.mojopkg"])
    with pytest.raises(ValueError, match=re.escape(
            f"InferenceSession: custom extension {tmp_path / 'nope.mlir'} not found")):
        engine.InferenceSession(custom_extensions=tmp_path / "nope.mlir")
    with pytest.raises(ValueError, match="holds no .mlir file"):
        engine.InferenceSession(custom_extensions=str(tmp_path))
    with pytest.raises(TypeError, match="custom_extensions must be paths"):
        engine.InferenceSession(custom_extensions=[3])


def test_verifier_checks_a_files_custom_op() -> None:
    from mlir import ir

    from max.dialects.mo import make_context
    from max.dialects.mo.verify import VerificationError, verify_module

    def text(parameters: str) -> str:
        t = '!mo.tensor<f32, ["n"], "cpu:0">'
        return (f'func.func @g(%x: {t}) -> {t} attributes {{mo.graph}} {{\n'
                f'  %y = "mo.custom"(%x) {{symbol = "k", parameters = "{parameters}", '
                f'operandSegmentSizes = array<i32: 1{", 0" * 15}>, '
                f'resultSegmentSizes = array<i32: 1{", 0" * 15}>}} : ({t}) -> {t}\n'
                f'  return %y : {t}\n}}\n')

    with make_context(), ir.Location.unknown():
        verify_module(ir.Module.parse(text('{\\22a\\22: 1.5}')))
        with pytest.raises(VerificationError, match="parameter 'a' = 'x' is not a bool, int or "
                                                    "float"):
            verify_module(ir.Module.parse(text('{\\22a\\22: \\22x\\22}')))
        with pytest.raises(VerificationError, match="attribute parameters is not JSON"):
            verify_module(ir.Module.parse(text("{")))


# -- the README's worked example ---------------------------------------------------------------


def test_readme_example_is_the_example_folder_and_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    kernels = (ROOT / "examples/custom_op/kernels.mlir").read_text()
    script = (ROOT / "examples/custom_op/run.py").read_text()
    assert f"```mlir\n{kernels}```" in readme
    assert f"```python\n{script}```" in readme
    out = subprocess.run([sys.executable, str(ROOT / "examples/custom_op/run.py")],
                         capture_output=True, text=True, check=True).stdout
    x = np.arange(8, dtype=np.float32).reshape(2, 4) - 4
    want = np.maximum(2 * x + 1, 0)
    assert out == f"{want}\n{np.full(3, 5, np.int64)}\n"


def test_extensions_given_to_load_or_the_graph(tmp_path: Path) -> None:
    path = _kernel_file(tmp_path, SCALE)
    x = np.ones((1, 1), np.float32)
    model = engine.InferenceSession().load(_scale_graph(), custom_extensions=[path])
    np.testing.assert_array_equal(model.execute(x)[0].to_numpy(), [[3.5]])
    model = engine.InferenceSession().load(_scale_graph(alpha=1), custom_ops_path=str(path))
    np.testing.assert_array_equal(model.execute(x)[0].to_numpy(), [[2.0]])
    t = TensorType(F32, ("n", "m"), CPU)
    with Graph("with_ext", input_types=[t], custom_extensions=[path]) as g:
        g.output(*ops.custom("scale", CPU, [g.inputs[0]], [t], parameters={"alpha": 4.0}))
    np.testing.assert_array_equal(engine.InferenceSession().load(g).execute(x)[0].to_numpy(),
                                  [[4.0]])


def test_max_opt_links_the_kernels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from max.compiler.max_opt import main

    graph = tmp_path / "graph.mlir"
    graph.write_text(str(_scale_graph()._module))
    kernels = _kernel_file(tmp_path, SCALE)
    assert main([str(graph), "--mo-to-linalg", "--custom-extensions", str(kernels)]) == 0
    out = capsys.readouterr().out
    assert "call @__mo_custom_scale(%arg0, %cst) : (tensor<?x?xf32>, f32) -> tensor<?x?xf32>" \
        in out
    assert "func.func private @__mo_custom_scale(" in out
    assert main([str(graph), "--mo-to-linalg"]) == 1
    assert "custom kernel @scale: no custom extensions were given" in capsys.readouterr().err


def test_inplace_kernel_in_a_while_body_and_on_a_constant(tmp_path: Path) -> None:
    with Graph("loop", input_types=[BufferType(F32, ("n",), CPU),
                                    TensorType(DType.int32, (), CPU)]) as g:
        buf, count = g.inputs

        def body(i: Any) -> Any:
            ops.inplace_custom("increment", CPU, [buf], parameters={"step": 0.25})
            return i + 1

        ops.while_loop([ops.constant(0, DType.int32, CPU)], lambda i: i < count, body)
        two = ops.constant(np.full((2, 2), 2.0, np.float32), F32, CPU)  # folded around, kept
        g.output(*ops.custom("scale", CPU, [two], [two.type], parameters={"alpha": -1.0}))
    model = _load(g, _kernel_file(tmp_path, INCREMENT, "a.mlir"),
                  _kernel_file(tmp_path, SCALE, "b.mlir"))
    b = np.zeros(3, np.float32)
    (y,) = model.execute(b, np.array(4, np.int32))
    np.testing.assert_array_equal(b, np.ones(3, np.float32))
    np.testing.assert_array_equal(y.to_numpy(), np.full((2, 2), -2.0, np.float32))


def test_docstring_example_runs() -> None:
    import doctest
    import importlib

    # (the package attribute ops.custom is the function, not the module)
    result = doctest.testmod(importlib.import_module("max.graph.ops.custom"))
    assert result.failed == 0 and result.attempted > 0


def test_a_saved_graph_loaded_from_a_file(tmp_path: Path) -> None:
    graph = tmp_path / "graph.mlir"
    graph.write_text(str(_scale_graph(alpha=-2)._module))
    session = engine.InferenceSession(custom_extensions=_kernel_file(tmp_path, SCALE))
    model = session.load(graph)  # parsed (graph and kernels) by the compile worker only
    (y,) = model.execute(np.full((2, 1), 3.0, np.float32))
    np.testing.assert_array_equal(y.to_numpy(), np.full((2, 1), -5.0, np.float32))


def test_bool_and_unsigned_tensors_are_i8_and_signless(tmp_path: Path) -> None:
    text = """
#id = affine_map<(i) -> (i)>
func.func @mask(%x: tensor<?xi8>, %u: tensor<?xi16>) -> (tensor<?xi8>, tensor<?xi16>) {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?xi8>
  %e = tensor.empty(%n) : tensor<?xi8>
  %f = tensor.empty(%n) : tensor<?xi16>
  %r:2 = linalg.generic {indexing_maps = [#id, #id, #id, #id], iterator_types = ["parallel"]}
      ins(%x, %u : tensor<?xi8>, tensor<?xi16>) outs(%e, %f : tensor<?xi8>, tensor<?xi16>) {
  ^bb0(%b: i8, %v: i16, %o: i8, %p: i16):
    %one = arith.constant 1 : i8
    %not = arith.xori %b, %one : i8
    %wide = arith.extui %b : i8 to i16
    %kept = arith.muli %v, %wide : i16
    linalg.yield %not, %kept : i8, i16
  } -> (tensor<?xi8>, tensor<?xi16>)
  return %r#0, %r#1 : tensor<?xi8>, tensor<?xi16>
}
"""
    tb, tu = TensorType(DType.bool, ("n",), CPU), TensorType(DType.uint16, ("n",), CPU)
    with Graph("mask", input_types=[tb, tu]) as g:
        g.output(*ops.custom("mask", CPU, list(g.inputs), [tb, tu]))
    x = np.array([True, False, True, True])
    u = np.array([1, 2, 65535, 40000], np.uint16)
    a, b = _load(g, _kernel_file(tmp_path, text)).execute(x, u)
    assert (a.to_numpy().dtype, b.to_numpy().dtype) == (np.bool_, np.uint16)
    np.testing.assert_array_equal(a.to_numpy(), ~x)
    np.testing.assert_array_equal(b.to_numpy(), np.where(x, u, 0).astype(np.uint16))
