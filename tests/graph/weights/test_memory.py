"""Loading is memory-mapped: a 256 MiB safetensors file, loaded and every byte of it touched,
raises peak RSS by less than its size + 64 MiB, and its tensors stay file-backed pages (an
anonymous copy would show in RssAnon). Measured in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

MIB = 1 << 20
N_TENSORS, TENSOR_BYTES = 8, 32 * MIB

_CHILD = r"""
import json, sys
import numpy as np
from max.graph.weights import SafetensorWeights

def status():
    fields = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) * 1024
    return fields

before = status()
weights = SafetensorWeights([sys.argv[1]])
for _, node in weights.items():
    node.allocate()
sums = {name: float(np.sum(array, dtype=np.float64))
        for name, array in weights.allocated_weights.items()}
print(json.dumps({"before": before, "after": status(), "sums": sums}))
"""


def _write_big(path: Path) -> None:
    """A safetensors file of float32 tensors t0..t7, tensor i filled with i + 1, written a
    chunk at a time (the test process never holds it)."""
    n = TENSOR_BYTES // 4
    header = {f"t{i}": {"dtype": "F32", "shape": [n],
                        "data_offsets": [i * TENSOR_BYTES, (i + 1) * TENSOR_BYTES]}
              for i in range(N_TENSORS)}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)  # tensors 8-byte aligned, as the package writes them
    with path.open("wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        for i in range(N_TENSORS):
            chunk = np.full(4 * MIB // 4, i + 1, np.float32).tobytes()
            for _ in range(TENSOR_BYTES // len(chunk)):
                f.write(chunk)


def test_loading_a_256_mib_checkpoint_maps_it_once(tmp_path: Path) -> None:
    path = tmp_path / "big.safetensors"
    _write_big(path)
    size = path.stat().st_size
    try:
        out = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True,
                             text=True, check=True, timeout=300).stdout
    finally:
        path.unlink()
    report = json.loads(out.strip().splitlines()[-1])
    before, after = report["before"], report["after"]
    n = TENSOR_BYTES // 4
    assert report["sums"] == {f"t{i}": float((i + 1) * n) for i in range(N_TENSORS)}
    peak_growth = after["VmHWM"] - before["VmRSS"]
    assert peak_growth < size + 64 * MIB, (peak_growth / MIB, report)
    # The data is the file's pages, mapped: no anonymous copy of it.
    assert after["RssAnon"] - before["RssAnon"] < 64 * MIB, report
    assert after["RssFile"] - before["RssFile"] > size // 2, report
