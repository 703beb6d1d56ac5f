"""Small MO graphs as MLIR text, for engine tests that do not depend on the graph builder."""

from __future__ import annotations


def _t(dtype: str, dims: str) -> str:
    return f'!mo.tensor<{dtype}, [{dims}], "cpu:0">'


def binary(name: str, op: str, dtype: str, dims: str) -> str:
    """``NAME(a, b) = op(a, b)``, both inputs and the result of type ``dims``."""
    t = _t(dtype, dims)
    return f"""
func.func @{name}(%a: {t}, %b: {t}) -> {t} attributes {{mo.graph}} {{
  %0 = "mo.{op}"(%a, %b) : ({t}, {t}) -> {t}
  return %0 : {t}
}}
"""


ADD = binary("add", "add", "f32", '"batch", 3')
ADD_STATIC = binary("add_static", "add", "f32", "2, 3")
MUL_SCALAR = binary("mul_scalar", "mul", "f32", "")
ADD_I64 = binary("add_i64", "add", "si64", '"n"')

_A, _B = _t("f32", '"n", 3'), _t("f32", '"m", 3')
_C = _t("f32", '"n + m", 3')
CONCAT = f"""
func.func @concat(%a: {_A}, %b: {_B}) -> {_C} attributes {{mo.graph}} {{
  %0 = "mo.concat"(%a, %b) {{axis = 0 : i64}} : ({_A}, {_B}) -> {_C}
  return %0 : {_C}
}}
"""

_X, _I, _G = _t("f32", "5, 2"), _t("si64", '"k"'), _t("f32", '"k", 2')
GATHER = f"""
func.func @gather(%x: {_X}, %i: {_I}) -> {_G} attributes {{mo.graph}} {{
  %0 = "mo.gather"(%x, %i) {{axis = 0 : i64}} : ({_X}, {_I}) -> {_G}
  return %0 : {_G}
}}
"""

_S, _O1, _O2 = _t("f32", '"b", 4'), _t("f32", '"b", 4'), _t("f32", '"b", 1')
TWO_OUTPUTS = f"""
func.func @two_outputs(%x: {_S}) -> ({_O1}, {_O2}) attributes {{mo.graph}} {{
  %0 = "mo.exp"(%x) : ({_S}) -> {_O1}
  %1 = "mo.reduce_sum"(%x) {{axis = 1 : i64}} : ({_S}) -> {_O2}
  return %0, %1 : {_O1}, {_O2}
}}
"""

_N = _t("f32", '"n"')
NAMED = f"""
func.func @named(%a: {_N} {{mo.name = "x"}}, %b: {_N} {{mo.name = "y"}}) -> ({_N} {{mo.name = "z"}})
    attributes {{mo.graph}} {{
  %0 = "mo.sub"(%a, %b) : ({_N}, {_N}) -> {_N}
  return %0 : {_N}
}}
"""
