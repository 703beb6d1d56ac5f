"""The MO op definitions are the one list every layer reads: the IRDL spec declares exactly
these ops with these operands and attributes, each has a CPU lowering rule and a numeric test
row (tests/dialects/test_mo_op_rows.py), and every reference the folder uses is a definition's."""

from __future__ import annotations

import re

import pytest
from mo_op_rows import ROWS

from max.compiler.lowering import all_rules
from max.dialects.mo.context import spec_text
from max.dialects.mo.opdefs import OPS
from max.dialects.mo.opdefs.reference import REFERENCES

_OP_RE = re.compile(r"irdl\.operation @(\w+) \{(.*?)\n  \}", re.S)


def _irdl_ops() -> dict[str, tuple[list[str], list[str]]]:
    """op name -> (operand names, attribute names), read from mo.irdl.mlir."""
    out = {}
    for name, body in _OP_RE.findall(spec_text()):
        operands = re.search(r"irdl\.operands\((.*?)\)", body)
        attrs = re.search(r"irdl\.attributes \{(.*?)\}", body)
        out[f"mo.{name}"] = (
            re.findall(r"(\w+):", operands.group(1)) if operands else [],
            re.findall(r'"(\w+)"\s*=', attrs.group(1)) if attrs else [],
        )
    return out


def test_irdl_declares_exactly_the_defined_ops() -> None:
    irdl = _irdl_ops()
    assert len(irdl) > 50  # the regex found the spec's ops
    assert set(irdl) == set(OPS)


@pytest.mark.parametrize("name", sorted(OPS))
def test_irdl_operands_and_attributes_match_the_definition(name: str) -> None:
    operands, attributes = _irdl_ops()[name]
    assert operands == list(OPS[name].operands)
    assert sorted(attributes) == sorted(a.name for a in OPS[name].attributes)


def test_every_definition_has_a_lowering_rule() -> None:
    rules = all_rules()
    assert sorted(set(OPS) - set(rules)) == []
    assert sorted(set(rules) - set(OPS)) == []


# Ops whose effect no row can express, each tested on its own: mo.buffer_create has no
# operand and its result is a buffer (which a graph cannot return; tests/graph/ops/
# test_ops_buffers.py creates, stores into and loads from one); mo.print's effect is
# standard output (tests/graph/ops/test_ops_devices.py reads it); mo.constant_external's value
# comes from the weights given at load (tests/engine/test_external_weights.py); mo.custom calls
# a kernel from a file given at load (tests/graph/ops/test_ops_custom.py).
NO_ROW = {"mo.buffer_create", "mo.constant_external", "mo.custom", "mo.print"}


def test_every_definition_has_a_numeric_test_row() -> None:
    assert sorted(set(OPS) - set(ROWS) - NO_ROW) == []
    assert sorted(set(ROWS) - set(OPS)) == []
    assert not NO_ROW & set(ROWS)


def test_references_are_the_definitions() -> None:
    used = {d.reference for d in OPS.values() if d.reference is not None}
    assert used == set(REFERENCES.values())
    # mo.round's tie rule and mo.constant (nothing to evaluate) have no reference; nor have the
    # control-flow ops (their bodies are subgraph functions, which the constant folder cannot
    # evaluate; their rows build them with the builders: rows_flow.py), nor the buffer ops and
    # mo.print (their effects are on memory or output, never folded), nor mo.custom (the
    # kernel is the user's)
    assert sorted(n for n, d in OPS.items() if d.reference is None) == [
        "mo.buffer_create", "mo.buffer_load", "mo.buffer_store", "mo.buffer_store_slice",
        "mo.call", "mo.cond", "mo.constant", "mo.constant_external", "mo.custom", "mo.print",
        "mo.round", "mo.while"]
