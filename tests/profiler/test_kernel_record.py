"""The artifact record's kernel table: typed, validated, present exactly for profiled .so."""

from __future__ import annotations

import json

import pytest

from max.runtime.artifact import ArtifactError, ArtifactRecord, KernelRecord, MOType, TensorRecord

SHA = "cd" * 32
KERNELS = (KernelRecord("matmul", False, "scf.for", True),
           KernelRecord("cast+matmul", True, "linalg.matmul", False))


def _record(**changes) -> ArtifactRecord:
    t = TensorRecord(MOType.parse('!mo.tensor<f32, [3], "cpu:0">'), "x")
    fields = dict(name="g", kind="so", sha256=SHA, inputs=(t,), outputs=(t,), checks=(),
                  constants=(), constants_sha256=SHA, target="cpu",
                  options={"profile_kernels": True}, kernels=KERNELS)
    fields.update(changes)
    return ArtifactRecord(**fields)


def test_round_trip():
    record = _record()
    again = ArtifactRecord.from_json(record.to_json())
    assert again == record and again.kernels == KERNELS
    plain = _record(options={}, kernels=None)
    assert json.loads(plain.to_json())["kernels"] is None
    assert ArtifactRecord.from_json(plain.to_json()).kernels is None


def test_table_only_with_the_option_and_a_shared_object():
    with pytest.raises(ArtifactError, match="kernels: a kernel table belongs to"):
        _record(options={})
    with pytest.raises(ArtifactError, match="kernels: a kernel table belongs to"):
        _record(kernels=None)
    with pytest.raises(ArtifactError, match="kernels: a kernel table belongs to"):
        _record(kind="jit")
    assert _record(kind="jit", kernels=None).kernels is None  # the JIT is not timed
    with pytest.raises(ArtifactError, match=r"kernels\[0\]: expected KernelRecord"):
        _record(kernels=({"label": "x"},))


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["kernels"][0].update(plain=1), r"kernels\[0\]\.plain: expected bool"),
    (lambda m: m["kernels"][1].update(label=None), r"kernels\[1\]\.label: expected str"),
    (lambda m: m["kernels"][0].pop("op"), r"kernels\[0\]: missing keys \['op'\]"),
    (lambda m: m["kernels"][0].update(vector="yes"), r"kernels\[0\]\.vector: expected bool"),
    (lambda m: m["kernels"][0].update(extra=1), r"unknown keys \['extra'\]"),
    (lambda m: m.update(kernels={}), "kernels: expected list"),
    (lambda m: m.pop("kernels"), r"record: missing keys \['kernels'\]"),
    (lambda m: m.update(kernels=None), "kernels: a kernel table belongs to"),
])
def test_every_field_is_checked(edit, message):
    meta = json.loads(_record().to_json())
    edit(meta)
    with pytest.raises(ArtifactError, match=message):
        ArtifactRecord.from_json(json.dumps(meta))
