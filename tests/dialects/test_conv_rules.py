"""The conv/pool type rules on MO types, as the verifier applies them to untrusted modules:
a result type or attribute that would let the compiled code read outside its operands is
refused, naming the op, the operand or attribute and the mismatch."""

from __future__ import annotations

from typing import Any

import pytest

from max.dialects.mo.dim import Dim
from max.dialects.mo.opdefs import OPS, TensorSig, TypeRuleError
from max.dtype import DType


def _t(*dims: Any, dtype: DType = DType.float32) -> TensorSig:
    return TensorSig(dtype, tuple(d if isinstance(d, Dim) else Dim(d) for d in dims), "cpu:0")


H = Dim("h")


CONV = {"strides": [1, 1], "dilations": [1, 1], "paddings": [0, 0, 0, 0], "groups": 1}
POOL = {"kernel": [2, 2], "strides": [2, 2], "dilations": [1, 1], "paddings": [0, 0, 0, 0],
        "ceil_mode": 0}


@pytest.mark.parametrize(("op", "operands", "attrs", "result", "match"), [
    ("mo.conv2d", [_t(1, 8, 8, 4), _t(3, 3, 4, 8)], CONV, _t(1, 7, 6, 8),
     r"mo.conv2d: result shape \[1, 7, 6, 8\] should be \[1, 6, 6, 8\]"),
    ("mo.conv2d", [_t(1, 8, 8, 4), _t(3, 3, 4, 8)], {**CONV, "paddings": [1, 1]},
     _t(1, 6, 6, 8), r"mo.conv2d: attribute paddings=\[1, 1\] must be 4 integers >= 0"),
    ("mo.conv2d", [_t(1, 8, 8, 4), _t(3, 3, 2, 8)], {**CONV, "groups": 3}, _t(1, 6, 6, 8),
     r"mo.conv2d: operand x \[1, 8, 8, 4\] has 4 channels, the filter \[3, 3, 2, 8\] with "
     r"groups=3 takes 2 \* 3"),
    ("mo.conv2d", [_t(1, 8, 8, 4), _t(3, 3, 4, 8)], {**CONV, "strides": [0, 1]},
     _t(1, 6, 6, 8), r"mo.conv2d: attribute strides=\[0, 1\] must be 2 integers >= 1"),
    ("mo.conv2d", [_t(1, 2, 8, 4), _t(3, 3, 4, 8)], CONV, _t(1, 0, 6, 8),
     r"mo.conv2d: the height window .* is larger than the padded input height 2"),
    ("mo.conv2d", [_t(1, 8, 8, 4), _t("k", 3, 4, 8)], CONV, _t(1, 6, 6, 8),
     r"mo.conv2d: operand filter \[k, 3, 4, 8\] must have static dims"),
    ("mo.conv2d", [_t(1, 8, 8, 4, dtype=DType.int32), _t(3, 3, 4, 8, dtype=DType.int32)],
     CONV, _t(1, 6, 6, 8, dtype=DType.int32), r"mo.conv2d: expected a floating-point dtype"),
    ("mo.conv3d", [_t(1, 4, 8, 8, 4), _t(2, 3, 3, 4, 8)],
     {"strides": [1, 1, 1], "dilations": [1, 1, 1], "paddings": [0] * 6, "groups": 1},
     _t(1, 3, 6, 6, 4), r"mo.conv3d: result shape \[1, 3, 6, 6, 4\] should be \[1, 3, 6, 6, 8\]"),
    ("mo.max_pool2d", [_t("n", "h", 8, 3)], {**POOL, "ceil_mode": 1, "paddings": [1] * 4},
     _t("n", H // 2 + 1, 5, 3),
     r"mo.max_pool2d: ceil_mode on the symbolic height h"),
    ("mo.avg_pool2d", [_t(1, 8, 8, 3)], {**POOL, "count_boundary": 2}, _t(1, 4, 4, 3),
     r"mo.avg_pool2d: attribute count_boundary=2 must be 0 or 1"),
    ("mo.fold", [_t(1, 8, 10)], {**POOL, "output_size": [4, 5], "strides": [1, 1]},
     _t(1, 2, 4, 5), r"mo.fold: dim 2 of operand x \[1, 8, 10\] must be the number of sliding "
     r"blocks 3 \* 4"),
    ("mo.conv2d_transpose", [_t(1, 4, 4, 3), _t(3, 3, 5, 3)],
     {"strides": [2, 2], "dilations": [1, 1], "paddings": [0, 0, 0, 0]}, _t(1, 8, 9, 5),
     r"mo.conv2d_transpose: result shape \[1, 8, 9, 5\] should be \[1, 9, 9, 5\]"),
    ("mo.resize_bicubic", [_t(1, 3, 4, 4)], {}, _t(1, 2, 8, 8),
     r"mo.resize_bicubic: result float32 \[1, 2, 8, 8\] must keep .* N, C"),
])
def test_rule_refuses(op: str, operands: list[TensorSig], attrs: dict[str, Any],
                      result: TensorSig, match: str) -> None:
    with pytest.raises(TypeRuleError, match=match):
        OPS[op].verify(operands, attrs, result)


def test_symbolic_rules_accept_what_the_builders_emit() -> None:
    OPS["mo.conv2d"].verify([_t("n", "h", "w", 4), _t(3, 3, 4, 8)],
                            {**CONV, "strides": [2, 1], "paddings": [1, 1, 0, 2]},
                            _t("n", (H - 1) // 2 + 1, "w", 8))
    OPS["mo.max_pool2d"].verify([_t("n", "h", 8, 3)], {**POOL, "kernel": [3, 3],
                                                       "paddings": [1, 1, 1, 1], "ceil_mode": 1},
                                _t("n", H // 2 + 1, 5, 3))
