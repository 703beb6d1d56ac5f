"""Loading is memory-mapped: a 256 MiB checkpoint, loaded and every byte of it touched,
raises peak RSS by less than its size + 64 MiB, and its tensors stay file-backed pages (an
anonymous copy would show in RssAnon). Measured in a fresh process, for each format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

MIB = 1 << 20
N_TENSORS, TENSOR_BYTES = 8, 32 * MIB
N = TENSOR_BYTES // 4  # float32 elements of a tensor; tensor i is filled with i + 1

_CHILD = r"""
import json, sys
import numpy as np
from max.graph.weights import load_weights

def status():
    fields = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) * 1024
    return fields

for module in sys.argv[2:]:
    __import__(module)  # its own memory is not the checkpoint's
before = status()
weights = load_weights([sys.argv[1]])
for _, node in weights.items():
    node.allocate()
sums = {name: float(np.sum(array, dtype=np.float64))
        for name, array in weights.allocated_weights.items()}
print(json.dumps({"before": before, "after": status(), "sums": sums}))
"""


def _write_safetensors(path: Path) -> None:
    """Written a chunk at a time: the test process never holds the data."""
    header = {f"t{i}": {"dtype": "F32", "shape": [N],
                        "data_offsets": [i * TENSOR_BYTES, (i + 1) * TENSOR_BYTES]}
              for i in range(N_TENSORS)}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)  # tensors 8-byte aligned, as the package writes them
    with path.open("wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        for i in range(N_TENSORS):
            chunk = np.full(MIB, i + 1, np.float32).tobytes()
            for _ in range(TENSOR_BYTES // len(chunk)):
                f.write(chunk)


def _source(tmp_path: Path) -> list[np.ndarray]:
    """The tensors, as views of a scratch file, so that writers need not hold them."""
    scratch = tmp_path / "scratch.bin"
    _write_safetensors(scratch)
    with scratch.open("rb") as f:
        skip = 8 + int.from_bytes(f.read(8), "little")
    # Copy-on-write: writable for torch.from_numpy, never written.
    mapped = np.memmap(scratch, np.float32, "c", offset=skip, shape=(N_TENSORS, N))
    return [mapped[i] for i in range(N_TENSORS)]


def _write_gguf(path: Path, tmp_path: Path) -> None:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    for i, tensor in enumerate(_source(tmp_path)):
        writer.add_tensor(f"t{i}", tensor)
    for write in (writer.write_header_to_file, writer.write_kv_data_to_file,
                  writer.write_tensors_to_file, writer.close):
        write()


def _write_torch(path: Path, tmp_path: Path) -> None:
    import torch

    torch.save({f"t{i}": torch.from_numpy(np.asarray(t))
                for i, t in enumerate(_source(tmp_path))}, path)


@pytest.mark.parametrize("suffix,imports", [
    ("safetensors", []), ("gguf", ["gguf"]),
    pytest.param("pt", ["torch"], marks=pytest.mark.slow),  # torch.save and import: ~4 s
])
def test_loading_a_256_mib_checkpoint_maps_it_once(tmp_path: Path, suffix: str,
                                                   imports: list[str]) -> None:
    for module in imports:
        pytest.importorskip(module)
    path = tmp_path / f"big.{suffix}"
    if suffix == "safetensors":
        _write_safetensors(path)
    else:
        (_write_gguf if suffix == "gguf" else _write_torch)(path, tmp_path)
    size = path.stat().st_size
    try:
        out = subprocess.run([sys.executable, "-c", _CHILD, str(path), *imports],
                             capture_output=True, text=True, check=True, timeout=300).stdout
    finally:
        for leftover in tmp_path.iterdir():
            leftover.unlink()
    report = json.loads(out.strip().splitlines()[-1])
    before, after = report["before"], report["after"]
    assert report["sums"] == {f"t{i}": float((i + 1) * N) for i in range(N_TENSORS)}
    peak_growth = after["VmHWM"] - before["VmRSS"]
    assert peak_growth < size + 64 * MIB, (peak_growth / MIB, report)
    # The data is the file's pages, mapped: no anonymous copy of it.
    assert after["RssAnon"] - before["RssAnon"] < 64 * MIB, report
    assert after["RssFile"] - before["RssFile"] > size // 2, report
