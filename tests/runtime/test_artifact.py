"""max.runtime.artifact: the artifact record validates every field and owns the entry ABI count."""

from __future__ import annotations

import json

import pytest

from max.runtime.artifact import (
    ArtifactError,
    ArtifactRecord,
    ConstantRecord,
    MOType,
    TensorRecord,
    decode,
    encode,
)

SHA = "ab" * 32


def _tensor(dims: str, name: str | None = None, dtype: str = "f32") -> TensorRecord:
    return TensorRecord(MOType.parse(f'!mo.tensor<{dtype}, [{dims}], "cpu:0">'), name)


def _record(**changes) -> ArtifactRecord:
    fields = dict(
        name="add", kind="so", sha256=SHA,
        inputs=(_tensor('"batch", 3', "x"), _tensor('"batch", 3')),
        outputs=(_tensor('"batch * 2", 3', "z"),),
        checks=("gather index out of bounds",),
        constants=(ConstantRecord(0, 40, (10,), "float32", "f32"),
                   ConstantRecord(64, 16, (2, 1), "int64", "si64")),
        constants_sha256=SHA, target="cpu", options={"opt_level": 3, "force_jit": False},
        compiler_version="0.1.0+x")
    fields.update(changes)
    return ArtifactRecord(**fields)


def _json() -> dict:
    return json.loads(_record().to_json())


def test_round_trip_is_exact_and_canonical():
    record = _record()
    text = record.to_json()
    again = ArtifactRecord.from_json(text)
    assert again == record
    assert again.to_json() == text
    assert again.entry == "_mlir_ciface_mo_graph_add" and again.binary == "model.so"
    assert again.outputs[0].dims == ("batch * 2", 3) and again.outputs[0].dtype == "float32"
    assert again.inputs[1].name is None
    assert again.constants_size == 64 + 16


def test_entry_argument_count():
    # inputs, then constants, then outputs, then one checks buffer
    assert _record().num_args == 2 + 2 + 1 + 1
    assert _record(checks=(), constants=()).num_args == 3


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["outputs"][0].update(dims=[1, 3]), r"outputs\[0\]\.dims: \[1, 3\] disagrees"),
    (lambda m: m["outputs"][0].update(dims=["batch * 2", True]), r"outputs\[0\]\.dims"),
    (lambda m: m["outputs"][0].update(dtype="float64"), r"outputs\[0\]\.dtype"),
    (lambda m: m["outputs"][0].update(type="!mo.tensor<f32, [-1], \"cpu:0\">"), "negative"),
    (lambda m: m["outputs"][0].update(type="!mo.tensor<f32, [\"__import__('os')\"], \"cpu:0\">"),
     "unsupported dim expression"),
    (lambda m: m["outputs"][0].update(type="!mo.tensor<f99, [1], \"cpu:0\">"),
     "unknown element type"),
    (lambda m: m["outputs"][0].update(type="tensor<4xf32>"), "not an MO tensor type"),
    (lambda m: m["inputs"][0].update(name=7), r"inputs\[0\]\.name: expected str"),
    (lambda m: m["inputs"][0].pop("device"), r"missing keys \['device'\]"),
    (lambda m: m.update(extra=1), r"unknown keys \['extra'\]"),
    (lambda m: m.update(format=1), "format: version 1"),
    (lambda m: m.update(format="2"), "format"),
    (lambda m: m.update(kind="exe"), "kind: expected one of"),
    (lambda m: m.update(binary="../../evil.so"), "binary: '../../evil.so', expected 'model.so'"),
    (lambda m: m.update(entry="_mlir_ciface_other"), "entry"),
    (lambda m: m.update(sha256="0" * 63), "sha256: not a hex sha256"),
    (lambda m: m.update(checks=[1]), r"checks\[0\]: expected str"),
    (lambda m: m.update(inputs={}), "inputs: expected list"),
    (lambda m: m.update(options={"threads": [2]}), "options.threads"),
    (lambda m: m["constants"][0].update(nbytes=4), r"constants\[0\]: 4 bytes cannot hold"),
    (lambda m: m["constants"][0].update(offset=True), r"constants\[0\]\.offset: expected int"),
    (lambda m: m["constants"][1].update(offset=32), r"not 64-byte aligned"),
    (lambda m: m["constants"][1].update(offset=0), r"constants\[1\]: offset 0, expected 64"),
    (lambda m: m["constants"][1].update(offset=128), "offset 128, expected 64"),
    (lambda m: m["constants"][0].update(dims=[20], nbytes=80),
     r"constants\[1\]: offset 64, expected 128"),
    (lambda m: m["constants"][1].update(element_type="si32"), "is not dtype"),
])
def test_every_field_is_checked(edit, message):
    meta = _json()
    edit(meta)
    with pytest.raises(ArtifactError, match=message):
        ArtifactRecord.from_json(json.dumps(meta))


@pytest.mark.parametrize("text", ["", "{", "[]", "null", '"x"', b"\xff\xfe"])
def test_not_a_record(text):
    with pytest.raises(ArtifactError, match="artifact metadata"):
        ArtifactRecord.from_json(text)


def test_hash_covers_the_metadata():
    record = _record()
    meta, meta_hash = encode(record)
    assert decode(meta, meta_hash) == record
    edited = meta.replace(b'"batch * 2"', b'"batch * 1"')
    assert edited != meta
    for data, digest in [(edited, meta_hash), (meta, b"0" * 64), (meta, b""), (meta, b"\xff")]:
        with pytest.raises(ArtifactError, match="does not match meta.sha256"):
            decode(data, digest)


def test_types_are_checked_against_the_graph():
    record = _record()
    a = '!mo.tensor<f32, ["batch", 3], "cpu:0">'
    z = '!mo.tensor<f32, ["batch * 2", 3], "cpu:0">'
    record.check_types([a, a], [z])
    for inputs, outputs, message in [
        ([a], [z], r"inputs: 2 in the record, 1 in the graph"),
        ([a, a], ['!mo.tensor<f32, [4096], "cpu:0">'], r"outputs\[0\]: record says"),
        ([a, '!mo.tensor<f64, ["batch", 3], "cpu:0">'], [z], r"inputs\[1\]"),
        ([a, a], ["garbage"], r"outputs\[0\]"),
    ]:
        with pytest.raises(ArtifactError, match=message):
            record.check_types(inputs, outputs)


def test_record_rejects_bad_values_when_built_too():
    with pytest.raises(ArtifactError, match="name"):
        _record(name=3)
    assert _record(name="model@v2 \0").entry.startswith("_mlir_ciface_mo_graphx_model_v2")
    with pytest.raises(ArtifactError, match=r"inputs\[0\]: expected TensorRecord"):
        _record(inputs=({"type": "x"},))
    with pytest.raises(ArtifactError, match="options.x"):
        _record(options={"x": object()})
    # frozen, options read-only
    record = _record()
    with pytest.raises(TypeError):
        record.options["opt_level"] = 1  # type: ignore[index]


def test_element_types_match_the_dialect():
    from max.dialects.mo.types import ELEMENT_TYPES
    from max.runtime.artifact import ELEMENT_DTYPES, ITEMSIZE

    assert ELEMENT_DTYPES == ELEMENT_TYPES
    assert set(ITEMSIZE) == set(ELEMENT_DTYPES.values())
