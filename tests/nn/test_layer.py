"""Module / LayerList / Sequential: weights found through attributes and named as checkpoints
name them, state_dict / load_state_dict (strict checks, nothing half-loaded), hooks, and the
weights reaching the compiled model through weights_registry."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from nn_helpers import CPU, F32, close, compile_module, execute, torch_state, tt

from max import nn
from max.dtype import DType
from max.graph import Graph, Shape, TensorValue, Weight, ops
from max.graph.quantization import QuantizationEncoding
from max.graph.weights import WeightData


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q_proj = nn.Linear(4, 6, F32, CPU, has_bias=True)
        self.norm = nn.RMSNorm(6, F32)

    def __call__(self, x: TensorValue) -> TensorValue:
        return self.norm(self.q_proj(x))


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4, F32, CPU, name="embed_tokens.weight")
        self.layers = nn.LayerList([Block(), Block()])
        self.head = nn.Linear(6, 3, F32, CPU, name="lm_head")


EXPECTED = {
    "embed.embed_tokens.weight": (10, 4),
    "layers.0.q_proj.weight": (6, 4), "layers.0.q_proj.bias": (6,),
    "layers.0.norm.weight": (6,),
    "layers.1.q_proj.weight": (6, 4), "layers.1.q_proj.bias": (6,),
    "layers.1.norm.weight": (6,),
    "head.lm_head.weight": (3, 6),
}


def test_weights_are_named_by_their_path() -> None:
    model = Model()
    raw = model.raw_state_dict()
    assert {k: tuple(int(d) for d in w.shape) for k, w in raw.items()} == EXPECTED
    assert all(w.name == k for k, w in raw.items())  # the graph's constant_external names
    assert list(model.sublayers) == ["embed", "layers", "head"]
    assert list(model.layers.sublayers) == ["0", "1"]
    assert list(model.layers[0].layer_weights) == []
    assert list(model.layers[0].q_proj.layer_weights) == ["weight", "bias"]
    names = [name for name, _ in nn.recursive_named_layers(model)]
    assert names == ["", "embed", "layers", "layers.0", "layers.0.q_proj", "layers.0.norm",
                     "layers.1", "layers.1.q_proj", "layers.1.norm", "head"]


def test_module_without_super_init_and_reassigned_attributes() -> None:
    class Bare(nn.Module):
        def __init__(self) -> None:  # the reference's own example skips super().__init__()
            self.up = nn.Linear(2, 3, F32, CPU)
            self.w = Weight("w", F32, (2,), CPU)

    bare = Bare()
    assert set(bare.raw_state_dict()) == {"up.weight", "w"}
    bare.up = nn.Linear(2, 5, F32, CPU, has_bias=True)
    bare.w = None
    assert set(bare.raw_state_dict()) == {"up.weight", "up.bias"}
    with pytest.raises(ValueError, match="two weights named 'w'"):
        bare.a = Weight("w", F32, (1,), CPU)
        bare.b = Weight("w", F32, (1,), CPU)


def test_calling_a_part_keeps_the_models_names() -> None:
    model = Model()
    model.load_state_dict(_values())
    with Graph("part", input_types=[tt(2, 4)]) as g:
        g.output(model.layers[1](g.inputs[0]), model.layers[0](g.inputs[0]))
    assert model.layers[1].q_proj.weight.name == "layers.1.q_proj.weight"
    alone = Block()  # never named by a model: its first call names it
    with Graph("alone", input_types=[tt(2, 4)]) as g:
        g.output(alone(g.inputs[0]))
    assert alone.q_proj.weight.name == "q_proj.weight"


def test_state_dict_initializes_to_zero_or_refuses() -> None:
    model = Model()
    with pytest.raises(ValueError, match="'embed.embed_tokens.weight' has no value"):
        model.state_dict(auto_initialize=False)
    state = model.state_dict()
    assert {k: v.shape for k, v in state.items()} == EXPECTED
    assert all(v.dtype == np.float32 and not v.any() for v in state.values())
    assert model.state_dict(auto_initialize=False).keys() == state.keys()


def _values(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in EXPECTED.items()}


def test_load_state_dict_takes_numpy_tensors_dlpack_and_weight_data() -> None:
    from max.driver import Tensor

    values = _values()
    given: dict[str, Any] = dict(values)
    given["layers.0.q_proj.weight"] = Tensor.from_numpy(values["layers.0.q_proj.weight"])
    given["layers.1.q_proj.weight"] = torch.from_numpy(values["layers.1.q_proj.weight"])
    given["head.lm_head.weight"] = WeightData.from_numpy(values["head.lm_head.weight"], "x")
    model = Model()
    model.load_state_dict(given)
    state = model.state_dict(auto_initialize=False)
    for k, v in values.items():
        np.testing.assert_array_equal(state[k], v)
    # Zero-copy: the module holds views of the given memory.
    assert np.shares_memory(state["layers.1.q_proj.weight"], values["layers.1.q_proj.weight"])


@pytest.mark.parametrize("change, error", [
    (lambda d: d.update({"layers.1.q_proj.weight": np.zeros((4, 6), np.float32)}),
     r"weight 'layers.1.q_proj.weight': expected shape \[6, 4\], got \[4, 6\]"),
    (lambda d: d.update({"layers.0.norm.weight": np.zeros(6, np.float64)}),
     "weight 'layers.0.norm.weight': expected dtype float32, got float64"),
    (lambda d: d.pop("layers.0.q_proj.bias"),
     r"missing weights: 'layers.0.q_proj.bias'"),
    (lambda d: d.update({"layers.0.q_proj.bias_": d.pop("layers.0.q_proj.bias")}),
     r"'layers.0.q_proj.bias' \(did you mean 'layers.0.q_proj.bias_'\?\)"),
    (lambda d: d.update({"layers.2.q_proj.weight": np.zeros((6, 4), np.float32)}),
     "unexpected keys .*'layers.2.q_proj.weight'"),
    (lambda d: d.update({"head.lm_head.weight": "not an array"}),
     "weight 'head.lm_head.weight': expected an array"),
])
def test_bad_state_dicts_are_refused_and_nothing_is_loaded(change: Any, error: str) -> None:
    model = Model()
    model.load_state_dict(_values(0))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    bad: dict[str, Any] = _values(1)
    change(bad)
    with pytest.raises((ValueError, TypeError), match=error):
        model.load_state_dict(bad)
    after = model.state_dict()
    for k, v in before.items():  # the whole load was refused, even the good values
        np.testing.assert_array_equal(after[k], v)


def test_quantization_encoding_of_weight_data() -> None:
    lin = nn.Linear(32, 2, F32, CPU, quantization_encoding=QuantizationEncoding.Q8_0)
    blocks = np.zeros((2, 34), np.uint8)  # one 34-byte Q8_0 block per row
    lin.load_state_dict({"weight": blocks})  # a bare array: its dtype and shape are checked
    given = {"weight": WeightData(blocks, "weight", DType.uint8, Shape(blocks.shape),
                                  QuantizationEncoding.Q4_0)}
    with pytest.raises(ValueError, match="'weight': the value has quantization encoding q4_0, "
                                         "the weight q8_0"):
        lin.load_state_dict(given)
    lin.load_state_dict(given, override_quantization_encoding=True)
    assert lin.weight.quantization_encoding == QuantizationEncoding.Q4_0
    with pytest.raises(ValueError, match=r"expected shape \[2, 34\], got \[2, 32\]"):
        lin.load_state_dict({"weight": np.zeros((2, 32), np.uint8)})


def test_non_strict_load_tolerates_missing_and_unexpected_keys() -> None:
    model = Model()
    values = _values()
    partial = {k: v for k, v in values.items() if not k.startswith("layers.1")}
    partial["something.else"] = np.zeros(3, np.float32)
    model.load_state_dict(partial, strict=False)
    state = model.state_dict()
    np.testing.assert_array_equal(state["head.lm_head.weight"], values["head.lm_head.weight"])
    assert not state["layers.1.q_proj.weight"].any()  # not loaded: zero


def test_alignment_is_checked() -> None:
    lin = nn.Linear(2, 2, F32, CPU)
    raw = np.zeros(4 * 4 + 1, np.uint8)
    unaligned = np.frombuffer(raw.data, np.float32, 4, offset=1).reshape(2, 2)
    with pytest.raises(ValueError, match="'weight': the value's data is not aligned to 4"):
        lin.load_state_dict({"weight": unaligned})
    with pytest.raises(ValueError, match="weight_alignment must be a positive power of two"):
        lin.load_state_dict({"weight": np.zeros((2, 2), np.float32)}, weight_alignment=3)
    lin.load_state_dict({"weight": np.zeros((2, 2), np.float32)}, weight_alignment=1)
    assert lin.weight.align == 1


def test_shared_weights_are_owned_once() -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(5, 3, F32, CPU)
            self.head = nn.Linear(3, 5, F32, CPU)
            self.head.set_shared_weight("weight", self.embed.weight)

    tied = Tied()
    assert set(tied.raw_state_dict()) == {"embed.weight"}
    assert tied.head.weight is tied.embed.weight
    with pytest.raises(TypeError, match="expected a Weight"):
        tied.head.set_shared_weight("weight", np.zeros(3))


def test_layer_list_is_a_list() -> None:
    layers = nn.LayerList([nn.Linear(2, 2, F32, CPU)])
    layers.append(nn.Linear(2, 3, F32, CPU))
    layers.insert(0, nn.RMSNorm(2, F32))
    layers.extend([nn.Linear(3, 1, F32, CPU)])
    assert len(layers) == 4 and [type(x).__name__ for x in layers] == [
        "RMSNorm", "Linear", "Linear", "Linear"]
    assert set(layers.raw_state_dict()) == {"0.weight", "1.weight", "2.weight", "3.weight"}
    with pytest.raises(TypeError, match="expected a Layer, got int"):
        layers.append(3)  # type: ignore[arg-type]


def test_hooks_see_every_layer_call_and_may_replace_outputs() -> None:
    seen = []

    def hook(layer: nn.Layer, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> Any:
        seen.append(type(layer).__name__)
        return out * 2.0 if isinstance(layer, nn.RMSNorm) else None

    nn.add_layer_hook(hook)
    try:
        block = Block()
        with Graph("hooks", input_types=[tt(3, 4)]) as g:
            y = block(g.inputs[0])
            assert "mo.mul" in str(y.to_mlir().owner)  # the hook's `* 2.0` is the output
    finally:
        nn.clear_hooks()
    assert seen == ["Linear", "RMSNorm", "Block"]


def test_unsupported_features_say_so() -> None:
    with pytest.raises(NotImplementedError, match="float8"):
        nn.Linear(2, 2, F32, CPU, float8_config=object())
    with pytest.raises(NotImplementedError, match="sharding"):
        nn.Linear(2, 2, F32, CPU).shard([CPU, CPU])
    with pytest.raises(NotImplementedError, match="sharding"):
        Weight("w", F32, (2,), CPU, sharding_strategy=object())
    with pytest.raises(LookupError, match="no graph is being built"):
        Block().build_subgraph("sub", [tt(3, 4)])  # (supported inside a graph)
    with pytest.raises(NotImplementedError, match="2 devices"):
        nn.MultiheadAttention(2, 4, devices=[CPU, CPU])


class Relu(nn.Module):
    def __call__(self, x: TensorValue) -> TensorValue:
        return ops.relu(x)


def test_sequential_loads_a_torch_state_dict_and_matches(session: Any) -> None:
    ref = torch.nn.Sequential(torch.nn.Linear(7, 9), torch.nn.ReLU(),
                              torch.nn.Linear(9, 5, bias=False))
    seq = nn.Sequential([nn.Linear(7, 9, F32, CPU, has_bias=True), Relu(),
                         nn.Linear(9, 5, F32, CPU)])
    seq.load_state_dict(torch_state(ref))  # the same keys: 0.weight, 0.bias, 2.weight
    model = compile_module(session, seq, [tt("batch", 7)])
    for batch in (1, 5):
        x = torch.randn(batch, 7)
        close(execute(model, x.numpy())[0], ref(x))
    # Another module's values, the same graph: one compiled artifact serves both.
    other = torch.nn.Sequential(torch.nn.Linear(7, 9), torch.nn.ReLU(),
                                torch.nn.Linear(9, 5, bias=False))
    seq.load_state_dict(torch_state(other))
    model2 = compile_module(session, seq, [tt("batch", 7)])
    x = torch.randn(3, 7)
    close(execute(model2, x.numpy())[0], other(x))
    close(execute(model, x.numpy())[0], ref(x))  # the first model keeps its weights


def test_a_safetensors_checkpoint_loads_through_weights(session: Any, tmp_path: Any) -> None:
    from safetensors.torch import save_file

    from max.graph.weights import SafetensorWeights

    ref = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU(), torch.nn.LayerNorm(4))
    with torch.no_grad():
        ref[2].weight.copy_(torch.randn(4))
    save_file({f"encoder.{k}": v.contiguous() for k, v in ref.state_dict().items()},
              str(tmp_path / "model.safetensors"))
    weights = SafetensorWeights([tmp_path / "model.safetensors"])
    seq = nn.Sequential([nn.Linear(6, 4, F32, CPU, has_bias=True), Relu(),
                         nn.LayerNorm(4, [CPU], F32)])
    seq.load_state_dict({name: w.data() for name, w in weights.encoder.items()})
    model = compile_module(session, seq, [tt("batch", 6)])
    x = torch.randn(3, 6)
    with torch.no_grad():
        close(execute(model, x.numpy())[0], ref(x))


def test_dtype_of_weights_follows_the_layer() -> None:
    lin = nn.Linear(4, 2, DType.bfloat16, CPU)
    assert lin.weight.dtype == DType.bfloat16
    assert lin.state_dict()["weight"].dtype == DType.bfloat16.to_numpy()
