"""PytorchWeights: checkpoints written here with torch.save, read only through
torch.load(weights_only=True, mmap=True); a pickle that would run code is refused unrun."""

from __future__ import annotations

import pickle
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from max.dtype import DType
from max.graph.weights import PytorchWeights, load_weights

torch = pytest.importorskip("torch")


class _Touch:
    """Unpickling this creates a file: the side effect a malicious checkpoint would have."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.target), "w"))


def test_state_dict_tensors_are_mapped_views(tmp_path: Path) -> None:
    w = torch.randn(3, 4)
    bf = torch.tensor([1.5, -2.25, 8.0], dtype=torch.bfloat16)
    path = tmp_path / "pytorch_model.bin"
    torch.save({"model": {"decoder.layers.0.w": w, "bf": bf}, "epoch": 3,
                "t": w.t()}, path)
    weights = load_weights([path])
    assert isinstance(weights, PytorchWeights)
    node = weights.model.decoder.layers[0].w
    assert node.exists() and node.dtype == DType.float32 and node.shape == [3, 4]
    assert node.quantization_encoding is None
    np.testing.assert_array_equal(node.raw_tensor(), w.numpy())
    assert weights.model.bf.dtype == DType.bfloat16
    np.testing.assert_array_equal(weights.model.bf.data().astype(DType.float32).data,
                                  bf.float().numpy())
    np.testing.assert_array_equal(weights.t.raw_tensor(), w.t().numpy())  # a strided view
    assert sorted(n for n, _ in weights.items()) == ["model.bf", "model.decoder.layers.0.w", "t"]
    assert not weights.epoch.exists()  # not a tensor
    weight = node.allocate(DType.float32, (3, 4))
    assert weight.name == "model.decoder.layers.0.w"
    assert list(weights.allocated_weights) == [weight.name]
    with pytest.raises(ValueError, match=r"shape mismatch: expected \[4, 3\]"):
        node.allocate(shape=[4, 3])
    with pytest.raises(KeyError, match="did you mean 'model.decoder.layers.0.w'"):
        weights.model.decoder.layer[0].w.data()


def test_a_malicious_checkpoint_is_refused_before_it_runs(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(2), "x": _Touch(target)}, evil)
    with pytest.raises(ValueError, match=re.escape(f"{evil}: refused to load the PyTorch "
                                                   "checkpoint: it holds objects other than "
                                                   "tensors") + ".*Unsupported global"):
        PytorchWeights(evil)
    assert not target.exists()
    # A raw pickle (no zip container) is refused without being read at all.
    raw = tmp_path / "evil.bin"
    raw.write_bytes(pickle.dumps({"x": _Touch(target)}))
    with pytest.raises(ValueError, match="not a PyTorch zip checkpoint"):
        load_weights([raw])
    assert not target.exists()
    # The pickle does run when unpickled: the test would catch a loader that unpickles it.
    pickle.loads(raw.read_bytes())
    assert target.exists()


def test_truncated_and_non_dict_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(100)}, path)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="not a PyTorch zip checkpoint \\(truncated"):
        PytorchWeights(path)
    torch.save([torch.ones(1)], path)
    with pytest.raises(ValueError, match="a PyTorch checkpoint of weights is a dict of "
                                         "tensors, got list"):
        PytorchWeights(path)
    with pytest.raises(FileNotFoundError, match="PyTorch checkpoint not found"):
        PytorchWeights(tmp_path / "absent.pt")


def test_without_torch_the_error_names_it(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(1)}, path)
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    with pytest.raises(ImportError, match="PytorchWeights needs the `torch` package"):
        PytorchWeights(path)
