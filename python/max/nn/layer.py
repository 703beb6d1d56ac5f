"""``Module``: the graph API's base for model components, with weight tracking.

A module finds its sublayers and weights through its attributes: a ``Module`` attribute is a
sublayer (its attribute name is its prefix), a ``Weight`` attribute is one of its weights
(keyed by the weight's own name, ``"weight"`` or ``"q_proj.weight"``). The full name of a
weight is the path of sublayer names joined by dots, then the weight's name
(``layers.0.q_proj.weight``), as PyTorch checkpoints name them. The full names are written
into the weights (``Weight.name``) by :meth:`Module.state_dict`,
:meth:`Module.raw_state_dict`, :meth:`Module.load_state_dict` and each outermost call of a
module not named before, so that the graph's ``mo.constant_external`` weights carry the names
that ``InferenceSession.load(graph, weights_registry=module.state_dict())`` binds. A graph
that calls the parts of a model rather than the model itself needs the model's names first:
call ``load_state_dict`` (or ``state_dict`` / ``raw_state_dict``) on the model before
building the graph.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from max.driver import Tensor, _dlpack
from max.dtype import DType
from max.graph import DeviceRef, Weight

_LAYER_HOOKS: list[Callable[[Layer, tuple[Any, ...], dict[str, Any], Any], Any]] = []
# Nesting of module calls: the outermost call names the weights of its whole tree.
_CALL_DEPTH = [0]


def add_layer_hook(fn: Callable[[Layer, tuple[Any, ...], dict[str, Any], Any], Any]) -> None:
    """Adds a hook to call a function after each layer's ``__call__``.

    The function will be passed four inputs: layer, input_args, input_kwargs and outputs.
    The function can either return None or new outputs that will replace the layer returned
    outputs.
    """
    _LAYER_HOOKS.append(fn)


def clear_hooks() -> None:
    """Remove all hooks."""
    _LAYER_HOOKS.clear()


def _hooked(call: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(call)
    def wrapper(self: Layer, *args: Any, **kwargs: Any) -> Any:
        if (_CALL_DEPTH[0] == 0 and isinstance(self, Module)
                and not self.__dict__.get("_names_final")):
            self._finalize_names()
        _CALL_DEPTH[0] += 1
        try:
            outputs = call(self, *args, **kwargs)
        finally:
            _CALL_DEPTH[0] -= 1
        for hook in list(_LAYER_HOOKS):
            replaced = hook(self, args, kwargs, outputs)
            if replaced is not None:
                outputs = replaced
        return outputs

    wrapper._max_hooked = True  # type: ignore[attr-defined]
    return wrapper


class Layer:
    """Base class for neural network components (deprecated since 25.2: use
    :class:`Module`). Provides functionality for adding hooks to the call function of each
    layer to support testing, debugging or profiling."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        call = cls.__dict__.get("__call__")
        if call is not None and not getattr(call, "_max_hooked", False):
            cls.__call__ = _hooked(call)  # type: ignore[method-assign]


@runtime_checkable
class Shardable(Protocol):
    """Protocol for objects that support sharding across multiple devices (sharding itself
    is not supported here)."""

    @property
    def sharding_strategy(self) -> Any:
        """Gets the weight sharding strategy."""
        ...

    def shard(self, devices: Iterable[DeviceRef]) -> Sequence[Any]:
        """Creates a sharded view of this object for a specific device."""
        ...


def _no_sharding(what: str) -> NotImplementedError:
    return NotImplementedError(f"{what}: sharding across devices is not supported")


class Module(Layer):
    """Base class for model components with weight management.

    Provides functionality to create custom layers and construct networks with automatic
    weight tracking::

        class MLP(nn.Module):
            def __init__(self):
                super().__init__()
                self.up = nn.Linear(5, 10, DType.float32, DeviceRef.CPU())
                self.down = nn.Linear(10, 5, DType.float32, DeviceRef.CPU())

            def __call__(self, x):
                return self.down(ops.relu(self.up(x)))

        model = MLP()
        model.state_dict()  # {"up.weight": array([10, 5]), "down.weight": ...}

    With :class:`Module`, :meth:`state_dict` and :meth:`load_state_dict` initialize or set the
    weight values and finalize the weight names to be unique within the model.
    """

    def __init__(self) -> None:
        self._module_state()

    def _module_state(self) -> dict[str, Any]:
        # Subclasses may skip super().__init__() (the reference's own example does), so
        # the bookkeeping is created on first use.
        d = self.__dict__
        if "_sublayers" not in d:
            d["_sublayers"] = {}
            d["_layer_weights"] = {}  # the weight's local name -> Weight
            d["_weight_attrs"] = {}  # attribute name -> the weight's local name
            d["_weight_values"] = {}  # the weight's local name -> array
            d["_shared_weights"] = {}  # attribute name -> Weight owned elsewhere
        return d

    def __setattr__(self, name: str, value: Any) -> None:
        d = self._module_state()
        d["_sublayers"].pop(name, None)
        d["_shared_weights"].pop(name, None)
        local = d["_weight_attrs"].pop(name, None)
        if local is not None:
            d["_layer_weights"].pop(local, None)
            d["_weight_values"].pop(local, None)
        if isinstance(value, Module):
            d["_sublayers"][name] = value
        elif isinstance(value, Weight):
            local = value.name
            if local in d["_layer_weights"]:
                raise ValueError(f"{type(self).__name__}: two weights named {local!r} (set "
                                 f"as attribute {name!r}); give each weight its own name")
            d["_layer_weights"][local] = value
            d["_weight_attrs"][name] = local
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self.__setattr__(name, None)
        object.__delattr__(self, name)

    @property
    def sublayers(self) -> dict[str, Module]:
        """The direct sublayers of this module, by attribute name."""
        return dict(self._module_state()["_sublayers"])

    @property
    def layer_weights(self) -> dict[str, Weight]:
        """The weights this module owns (not its sublayers'), by local name."""
        return dict(self._module_state()["_layer_weights"])

    def set_shared_weight(self, name: str, weight: Weight) -> None:
        """Sets attribute ``name`` to a weight owned by another module (tied weights): it is
        used here but named, loaded and listed only where it is owned."""
        if not isinstance(weight, Weight):
            raise TypeError(f"set_shared_weight: expected a Weight, got {type(weight).__name__}")
        self.__setattr__(name, None)
        object.__setattr__(self, name, weight)
        self._module_state()["_shared_weights"][name] = weight

    def _named_weights(self) -> Iterator[tuple[str, Module, str, Weight]]:
        """(full name, owning module, local name, weight) of every weight in the tree."""
        seen: set[int] = set()
        for prefix, layer in recursive_named_layers(self):
            for local, weight in layer._module_state()["_layer_weights"].items():
                if id(weight) in seen:
                    continue
                seen.add(id(weight))
                yield (f"{prefix}.{local}" if prefix else local), layer, local, weight

    def _finalize_names(self) -> list[tuple[str, Module, str, Weight]]:
        entries = list(self._named_weights())
        # A call of a part then keeps the names its model gave (see _hooked).
        for _, layer in recursive_named_layers(self):
            layer.__dict__["_names_final"] = True
        for full, _, _, weight in entries:
            weight.name = full
        return entries

    def raw_state_dict(self) -> dict[str, Weight]:
        """Returns all weights objects in the model.

        Unlike :meth:`state_dict`, this returns :class:`~max.graph.Weight` objects instead of
        the assigned values. Some parameters inside the ``Weight`` can be configured before a
        graph is built (``align``, ``dtype``, ``quantization_encoding``, ``shape``); do not
        change them after building a graph.

        Returns:
            Map from weight name to the :class:`~max.graph.Weight` object.
        """
        return {full: weight for full, _, _, weight in self._finalize_names()}

    def state_dict(self, auto_initialize: bool = True) -> dict[str, Any]:
        """Returns values of all weights in the model.

        The values returned are the same as the values set in :meth:`load_state_dict`. If
        :meth:`load_state_dict` has not been called and none of the weights have values, then
        they are initialized to zero.

        Args:
            auto_initialize: Determines whether to initialize weights to zero if the weight
                value has not been loaded. If this is False, a ValueError is raised if an
                uninitialized weight is found.

        Returns:
            Map from weight name to the weight value (a numpy array).
        """
        out: dict[str, Any] = {}
        for full, layer, local, weight in self._finalize_names():
            values = layer._module_state()["_weight_values"]
            if local not in values:
                if not auto_initialize:
                    raise ValueError(f"weight {full!r} has no value: call load_state_dict "
                                     "first, or state_dict(auto_initialize=True)")
                values[local] = np.zeros([int(d) for d in weight.shape],
                                         weight.dtype.to_numpy())
            out[full] = values[local]
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any], *,
                        override_quantization_encoding: bool = False,
                        weight_alignment: int | None = None, strict: bool = True) -> None:
        """Sets the values of all weights in this model.

        Every value is checked (shape, dtype, alignment, the keys) before any is set, so a
        bad state dict leaves the module as it was.

        Args:
            state_dict: A map from weight name to a numpy array,
                :class:`max.driver.Tensor`, any DLPack array or a
                :class:`~max.graph.weights.WeightData`.
            override_quantization_encoding: Whether to override the weight quantization
                based on the loaded value.
            weight_alignment: If specified, overrides the alignment for each weight in the
                Module. If left as None, each value in state_dict must be aligned by the
                default dtype alignment.
            strict: If True, raises an error if any weights required by the Module are
                missing from state_dict, or if any keys in state_dict were not used by the
                Module. If False, both missing and unexpected keys are tolerated.

        Raises:
            ValueError: If strict is True and any required weight is missing from
                state_dict, or if state_dict contains keys not used by the Module; if a
                value's shape, dtype or alignment does not fit its weight.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict: state_dict must be a mapping, got "
                            f"{type(state_dict).__name__}")
        if weight_alignment is not None and (
                isinstance(weight_alignment, bool) or not isinstance(weight_alignment, int)
                or weight_alignment <= 0 or weight_alignment & (weight_alignment - 1)):
            raise ValueError(f"load_state_dict: weight_alignment must be a positive power of "
                             f"two, got {weight_alignment!r}")
        entries = self._finalize_names()
        names = {full for full, _, _, _ in entries}
        missing = [full for full in names if full not in state_dict]
        unexpected = sorted(k for k in state_dict if k not in names)
        if strict and (missing or unexpected):
            raise ValueError(_key_report(sorted(missing), unexpected, names))
        updates = []
        for full, layer, local, weight in entries:
            if full not in state_dict:
                continue
            array, encoding = _as_array(full, state_dict[full])
            # A bare array carries no encoding: its dtype and shape are checked below.
            if (encoding is not None and encoding != weight.quantization_encoding
                    and not override_quantization_encoding):
                raise ValueError(f"weight {full!r}: the value has quantization encoding "
                                 f"{_enc(encoding)}, the weight "
                                 f"{_enc(weight.quantization_encoding)} (pass "
                                 "override_quantization_encoding=True to take the value's)")
            want = [int(d) for d in weight.shape]
            if list(array.shape) != want:
                raise ValueError(f"weight {full!r}: expected shape {want}, got "
                                 f"{list(array.shape)} from state_dict")
            dtype = _dtype_of(full, array)
            if dtype != weight.dtype:
                raise ValueError(f"weight {full!r}: expected dtype {weight.dtype.name}, got "
                                 f"{dtype.name} from state_dict")
            align = weight_alignment or weight.align or weight.dtype.align
            if array.size and array.ctypes.data % align:
                raise ValueError(f"weight {full!r}: the value's data is not aligned to "
                                 f"{align} bytes (address {array.ctypes.data:#x})")
            updates.append((layer, local, weight, array, encoding))
        for layer, local, weight, array, encoding in updates:
            if weight_alignment is not None:
                weight.align = weight_alignment
            if encoding is not None:
                weight.quantization_encoding = encoding
            layer._module_state()["_weight_values"][local] = array

    def build_subgraph(self, name: str, input_types: Sequence[Any],
                       weight_prefix: str = "") -> Any:
        """Builds a subgraph for this module.

        This method creates a subgraph that encapsulates the module's logic, handling input
        types, weights, and creating a graph with the module's computation. Once the subgraph
        is built, it can be called using the ``ops.call`` op.

        The module's weights under ``weight_prefix`` become the subgraph's placeholders,
        named without it; ``ops.call(subgraph, *args, prefix=P)`` binds each to the caller's
        weight ``P + name`` (a weight outside the prefix, shared by the layers, binds to the
        caller's weight of its own name). So the layers of a stack share one subgraph, built
        from the first layer with its prefix (``"layers.0."``) and called with each layer's
        (``"layers.3."``), and the compiler schedules their code once. Call it while a graph
        is being built.

        Args:
            name: The name of the subgraph to create.
            input_types: A list of input types for the subgraph. Each element can be either a
                single ``Type`` or a list of ``Type`` objects (the module then gets a list).
            weight_prefix: Optional prefix for weight names in the subgraph. If provided,
                weights with names starting with this prefix will have their names modified
                by removing the prefix and will be marked as placeholders.

        Returns:
            The created subgraph containing the module's computation.
        """
        from max.graph import Graph, Value

        if not isinstance(weight_prefix, str):
            raise TypeError(f"build_subgraph: weight_prefix must be a str, got "
                            f"{type(weight_prefix).__name__}")
        groups = [list(t) if isinstance(t, list | tuple) else t for t in input_types]
        flat = [t for g in groups for t in (g if isinstance(g, list) else [g])]
        sub = Graph.current.add_subgraph(name, input_types=flat)
        sub._weight_prefix = weight_prefix
        with sub:
            inputs, args = iter(sub.inputs), []
            for g in groups:
                args.append([next(inputs) for _ in g] if isinstance(g, list) else next(inputs))
            outputs = self(*args)
            if outputs is None:
                outputs = ()
            elif isinstance(outputs, Value) or not isinstance(outputs, list | tuple):
                outputs = (outputs,)
            sub.output(*outputs)
        return sub


def _enc(encoding: Any) -> str:
    return "none" if encoding is None else encoding.name


def _key_report(missing: list[str], unexpected: list[str], names: set[str]) -> str:
    parts = []
    if missing:
        hints = []
        for key in missing[:5]:
            close = difflib.get_close_matches(key, unexpected, n=1, cutoff=0.6)
            if close:
                hints.append(f"{key!r} (did you mean {close[0]!r}?)")
            else:
                hints.append(repr(key))
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        parts.append(f"missing weights: {', '.join(hints)}{more}")
    if unexpected:
        more = f" and {len(unexpected) - 10} more" if len(unexpected) > 10 else ""
        parts.append("unexpected keys (used by no weight): "
                     f"{', '.join(map(repr, unexpected[:10]))}{more}")
    return ("load_state_dict: " + "; ".join(parts)
            + " (strict=True; pass strict=False to tolerate them)")


def _as_array(name: str, value: Any) -> tuple[np.ndarray, Any]:
    """A zero-copy numpy view of a state-dict value, with its quantization encoding."""
    encoding = None
    # WeightData (max.graph.weights): the array is its ``data``.
    if not isinstance(value, np.ndarray | Tensor) and hasattr(value, "data") and hasattr(
            value, "quantization_encoding"):
        encoding = value.quantization_encoding
        value = value.data
    if isinstance(value, Tensor):
        return value._array, encoding
    if isinstance(value, np.ndarray):
        return value, encoding
    if hasattr(value, "__dlpack__"):
        return _dlpack.import_array(value), encoding
    raise TypeError(f"weight {name!r}: expected an array (numpy, max.driver.Tensor, DLPack "
                    f"or WeightData), got {type(value).__name__}")


def _dtype_of(name: str, array: np.ndarray) -> DType:
    try:
        return DType.from_numpy(array.dtype)
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"weight {name!r}: unsupported dtype {array.dtype}") from e


class LayerList(Module):
    """Stores a list of layers. Can be used as a regular python list."""

    def __init__(self, layers: Sequence[Layer]) -> None:
        super().__init__()
        object.__setattr__(self, "layers", [])
        self.extend(layers)

    def _check(self, layer: Any) -> Layer:
        if not isinstance(layer, Layer):
            raise TypeError(f"{type(self).__name__}: expected a Layer, got "
                            f"{type(layer).__name__}")
        return layer

    @property
    def sublayers(self) -> dict[str, Module]:
        return {str(i): layer for i, layer in enumerate(self.layers)
                if isinstance(layer, Module)}

    def append(self, layer: Layer) -> None:
        self.layers.append(self._check(layer))

    def extend(self, layer: Iterable[Layer]) -> None:
        for item in layer:
            self.append(item)

    def insert(self, i: int, layer: Layer) -> None:
        self.layers.insert(i, self._check(layer))

    def __getitem__(self, i: Any) -> Any:
        return self.layers[i]

    def __setitem__(self, i: int, layer: Layer) -> None:
        self.layers[i] = self._check(layer)

    def __delitem__(self, i: int) -> None:
        del self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.layers)


def recursive_named_layers(parent: Module, prefix: str = "") -> Iterable[tuple[str, Module]]:
    """Recursively walks through the layers and generates names (each module once, under
    the first name it is reached by)."""
    seen: set[int] = set()

    def walk(layer: Module, name: str) -> Iterator[tuple[str, Module]]:
        if id(layer) in seen:
            return
        seen.add(id(layer))
        yield name, layer
        for child_name, child in layer.sublayers.items():
            yield from walk(child, f"{name}.{child_name}" if name else child_name)

    yield from walk(parent, prefix)
