"""The type rules of the sequence MO ops reject what a file could declare but the lowering
could not compile safely (each case names the op and the mismatch); and a file holding these ops
goes through the MO verifier and runs."""

from __future__ import annotations

import numpy as np
import pytest

from max.dialects.mo.dim import Dim
from max.dialects.mo.opdefs import OPS, TensorSig, TypeRuleError
from max.dtype import DType
from max.engine import InferenceSession
from max.graph import Graph

F32, I64 = DType.float32, DType.int64


def sig(dtype: DType, *dims: int | str) -> TensorSig:
    return TensorSig(dtype, tuple(Dim(d) for d in dims), "cpu:0")


CASES = [
    ("mo.cumsum", [sig(F32, 3)], {"axis": 0, "exclusive": 2, "reverse": 0}, sig(F32, 3),
     "attribute exclusive=2 must be 0 or 1"),
    ("mo.cumsum", [sig(F32, 3)], {"axis": 1, "exclusive": 0, "reverse": 0}, sig(F32, 3),
     "attribute axis=1 is not an axis"),
    ("mo.cumsum", [sig(DType.bool, 3)], {"axis": 0, "exclusive": 0, "reverse": 0},
     sig(DType.bool, 3), "expected a numeric dtype, got bool"),
    ("mo.band_part", [sig(F32, 3)], {"num_lower": 0, "num_upper": 0, "exclude": 0},
     sig(F32, 3), "must have rank >= 2"),
    ("mo.band_part", [sig(F32, 3, 3)], {"num_lower": -2, "num_upper": 0, "exclude": 0},
     sig(F32, 3, 3), "num_lower=-2 must be -1"),
    ("mo.pad", [sig(F32, 2), sig(F32)], {"paddings": [1, -1]}, sig(F32, 2),
     "paddings=[1, -1] must hold 2 non-negative entries per dim"),
    ("mo.pad", [sig(F32, 2), sig(F32, 1)], {"paddings": [1, 1]}, sig(F32, 4),
     "operand value [1] must have rank 0"),
    ("mo.pad", [sig(F32, "n"), sig(F32)], {"paddings": [1, 1]}, sig(F32, "n"),
     "result shape [n] should be [n + 2]"),
    ("mo.range", [sig(I64), sig(I64, 1), sig(I64)], {}, sig(I64, 4),
     "operand stop [1] must have rank 0"),
    ("mo.range", [sig(I64)] * 3, {}, sig(I64, 2, 2), "result [2, 2] must have rank 1"),
    ("mo.range", [sig(I64), sig(I64), sig(DType.int32)], {}, sig(I64, 2),
     "operand step has dtype int32"),
    ("mo.rebind", [sig(F32, 2, "n")], {"message": ""}, sig(F32, 3, 4),
     "dim 0 is 2 in operand x"),
    ("mo.rebind", [sig(F32, "n")], {"message": ""}, sig(F32, 2, 2), "must have the rank"),
    ("mo.shape_to_tensor", [], {"dims": "[1, -2]"}, sig(I64, 2), "negative dim -2"),
    ("mo.shape_to_tensor", [], {"dims": "[\"a b\"]"}, sig(I64, 1), "is not a list of dims"),
    ("mo.shape_to_tensor", [], {"dims": "[1, 2]"}, sig(I64, 3), "should be [2]"),
    ("mo.tile", [sig(F32, 2, "n")], {}, sig(F32, 5, "n"), "dim 0 of the result (5) is not a "
     "positive multiple"),
    ("mo.tile", [sig(F32, "n")], {}, sig(F32, "m"), "is not a positive multiple"),
    ("mo.tile", [sig(F32, 0)], {}, sig(F32, 3), "is not a positive multiple"),
]


@pytest.mark.parametrize(("name", "operands", "attrs", "result", "message"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_type_rules_reject(name, operands, attrs, result, message) -> None:
    with pytest.raises(TypeRuleError, match=name.replace(".", r"\.") + ": .*" +
                       message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
                       .replace(")", r"\)").replace("+", r"\+")):
        OPS[name].verify(operands, attrs, result)


def test_type_rules_accept_symbolic_multiples() -> None:
    OPS["mo.tile"].verify([sig(F32, "n", 3)], {}, sig(F32, Dim("n") * Dim("r"), 6))
    OPS["mo.tile"].verify([sig(F32, 0)], {}, sig(F32, 0))
    OPS["mo.rebind"].verify([sig(F32, "n", 3)], {"message": "m"}, sig(F32, 4, 3))


MODULE = """
func.func @seq(%x: !mo.tensor<f32, ["n", 3], "cpu:0">) -> (!mo.tensor<si64, [2], "cpu:0">,
    !mo.tensor<f32, [4, 3], "cpu:0">, !mo.tensor<f32, ["n * 2", 3], "cpu:0">)
    attributes {mo.graph} {
  %0 = "mo.shape_to_tensor"() {dims = "[\\"n\\", 3]"} : () -> !mo.tensor<si64, [2], "cpu:0">
  %1 = "mo.rebind"(%x) {message = "four rows"} : (!mo.tensor<f32, ["n", 3], "cpu:0">)
      -> !mo.tensor<f32, [4, 3], "cpu:0">
  %2 = "mo.tile"(%x) : (!mo.tensor<f32, ["n", 3], "cpu:0">) -> !mo.tensor<f32, ["n * 2", 3], "cpu:0">
  func.return %0, %1, %2 : !mo.tensor<si64, [2], "cpu:0">, !mo.tensor<f32, [4, 3], "cpu:0">,
      !mo.tensor<f32, ["n * 2", 3], "cpu:0">
}
"""


def test_a_file_with_these_ops_verifies_and_runs(tmp_path) -> None:
    path = tmp_path / "seq.mlir"
    path.write_text(MODULE)
    model = InferenceSession().load(Graph("seq", path=path))
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    shape, same, tiled = (o.to_numpy() for o in model.execute(x))
    np.testing.assert_array_equal(shape, [4, 3])
    np.testing.assert_array_equal(same, x)
    np.testing.assert_array_equal(tiled, np.tile(x, (2, 1)))
    with pytest.raises(ValueError, match="rebind: four rows"):
        model.execute(x[:3])
