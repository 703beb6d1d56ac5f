"""mo-verify on buffer ops: a file may put a tensor where a buffer is written, store a tensor
of another shape, or store a window past the buffer's end; each would write memory the
compiled code does not own. The verifier rejects them before any code is generated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from max.dialects.mo import make_context
from max.dialects.mo.verify import VerificationError, verify_module
from max.engine import InferenceSession
from mlir import ir


def T(dims: str, dtype: str = "f32") -> str:
    return f'!mo.tensor<{dtype}, [{dims}], "cpu:0">'


def B(dims: str, dtype: str = "f32") -> str:
    return f'!mo.buffer<{dtype}, [{dims}], "cpu:0">'


def graph(args: list[str], body: str, result: str = T("4")) -> str:
    params = ", ".join(f"%a{i}: {t}" for i, t in enumerate(args))
    return (f"func.func @g({params}) -> {result} attributes {{mo.graph}} {{\n"
            f"  {body}\n  func.return %a1 : {result}\n}}\n")


def store(name: str, buf: tuple[str, str], x: tuple[str, str], attrs: str = "") -> str:
    return f'"{name}"({buf[0]}, {x[0]}) {attrs} : ({buf[1]}, {x[1]}) -> ()'


SLICE = "{starts = array<i64: 2>, steps = array<i64: 1>}"
BAD = {
    "store of another shape": (
        graph([B("8"), T("4")], store("mo.buffer_store", ("%a0", B("8")), ("%a1", T("4")))),
        r"mo\.buffer_store: operand x \[4\] does not have the buffer's shape \[8\]"),
    "store of another dtype": (
        graph([B("4", "f64"), T("4")],
              store("mo.buffer_store", ("%a0", B("4", "f64")), ("%a1", T("4")))),
        r"mo\.buffer_store: operand x has dtype float32, buffer has float64"),
    "store slice past the end": (
        graph([B("5"), T("4")],
              store("mo.buffer_store_slice", ("%a0", B("5")), ("%a1", T("4")), SLICE)),
        r"axis 0 writes up to index 5, past the buffer's 5 elements"),
    "store slice into a symbolic axis": (
        graph([B('"n"'), T("4")],
              store("mo.buffer_store_slice", ("%a0", B('"n"')), ("%a1", T("4")), SLICE)),
        r"axis 0 stores 4 elements into n: a partial window needs static sizes"),
    "store into a tensor": (
        graph([T("4"), T("4")], store("mo.buffer_store", ("%a0", T("4")), ("%a1", T("4")))),
        None),  # IRDL refuses it already (irdl.base @mo::@buffer): the parse fails
    "load of the wrong shape": (
        graph([B("8"), T("4")], f'%0 = "mo.buffer_load"(%a0) : ({B("8")}) -> {T("4")}'),
        r"mo\.buffer_load: result shape \[4\] should be \[8\]"),
    "a buffer where a tensor is read": (
        graph([B("4"), T("4")],
              f'%0 = "mo.relu"(%a0) : ({B("4")}) -> {T("4")}'),
        None),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_verifier_rejects(case: str) -> None:
    text, message = BAD[case]
    if message is None:  # the kinds are IRDL's: MLIR's own verifier refuses the module
        with pytest.raises(Exception, match="mo.buffer|mo::@buffer|mo.tensor|mo::@tensor"):
            ir.Module.parse(text, make_context())
        return
    module = ir.Module.parse(text, make_context())
    with pytest.raises(VerificationError, match=message):
        verify_module(module)


def test_session_load_of_a_tampered_file_is_a_value_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.mlir"
    path.write_text(BAD["store slice past the end"][0])
    with pytest.raises(ValueError, match="past the buffer's 5 elements"):
        InferenceSession().load(path)


def test_a_good_buffer_file_runs(tmp_path: Path) -> None:
    path = tmp_path / "good.mlir"
    text = graph([B("6"), T("4")], store("mo.buffer_store_slice", ("%a0", B("6")),
                                         ("%a1", T("4")), SLICE))
    path.write_text(text)
    model = InferenceSession().load(path)
    buf = np.zeros(6, np.float32)
    x = np.arange(1, 5, dtype=np.float32)
    (out,) = model.execute(buf, x)
    np.testing.assert_array_equal(buf, [0, 0, 1, 2, 3, 4])
    np.testing.assert_array_equal(out.to_numpy(), x)
