"""``Graph``: builds one MO graph function in an MLIR module."""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlir import ir
from mlir.dialects import func

from max.dialects.mo import make_context, safe_parse
from max.dialects.mo.safe_parse import BYTECODE_MAGIC, check_parses
from max.dialects.mo.verify import VerificationError, verify_module
from max.graph._chain import _ChainValue, _DeviceChainMap
from max.graph.kernel_library import KernelLibrary
from max.graph.type import BufferType, TensorType, Type
from max.graph.value import BufferValue, TensorValue, Value, as_tensor_value

_CURRENT_GRAPH: contextvars.ContextVar[Graph | None] = contextvars.ContextVar(
    "max_current_graph", default=None
)

class _GraphMeta(type):
    @property
    def current(cls) -> Graph:
        """The graph being built (innermost ``with Graph(...)`` or ``forward`` call)."""
        graph = _CURRENT_GRAPH.get()
        if graph is None:
            raise LookupError("no graph is being built: use `with Graph(...)` or Graph(forward=...)")
        return graph


class Graph(metaclass=_GraphMeta):
    """Represents a single MAX graph: a named function from input types to outputs.

    Build it with ``forward`` or as a context manager, then set the outputs with
    :meth:`output`::

        with Graph("add", input_types=[TensorType(DType.float32, ("batch", 3), DeviceRef.CPU())] * 2) as g:
            a, b = g.inputs
            g.output(a + b)

    A graph may have no outputs (``forward`` returning None, or ``output()`` with no
    values): it compiles, and its model's ``execute`` returns ``[]``. It must have called
    :meth:`output` before it is saved or loaded.

    Args:
        name: A name for the graph: any string. It stays the graph's name wherever it is
            shown (the MO function, the model, errors); the compiled entry point gets a
            C symbol derived from it.
        forward: The sequence of graph ops for the forward pass; called with the graph's
            inputs, its return value (a value, an iterable of values, or None) becomes the
            output.
        input_types: The data type(s) for the input tensor(s).
        path: The path to a saved graph (``.mlirbc`` bytecode or ``.mlir`` text).
        custom_extensions: The extensions to load for the model: ``.mlir`` kernel files or
            folders that its :func:`~max.graph.ops.custom` ops call, read (with the session's)
            when an ``InferenceSession`` loads the graph. They are added to the graph's
            kernel library (Mojo packages and sources: ``NotImplementedError``).
        context: An MLIR Context to build in (one with the MO dialect is made otherwise).
        kernel_library: The graph's :class:`KernelLibrary` (of the same context): its paths
            are the graph's kernel paths, as ``custom_extensions`` are (both may be given).
        module: An existing MLIR module holding an MO graph.

    Attributes:
        device_chains: The current chain of each device (``DeviceRef -> chain``, a chain made
            on first read). Side effects are ordered by program order here, not by chains:
            the map holds what MAX code stores in it and orders nothing.
    """

    def __init__(
        self,
        name: str,
        forward: Callable[..., Any] | None = None,
        input_types: Iterable[Type] = (),
        path: Path | str | None = None,
        *args: Any,
        custom_extensions: Iterable[Path] = (),
        context: ir.Context | None = None,
        kernel_library: KernelLibrary | None = None,
        module: ir.Module | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(name, str):
            raise TypeError(f"Graph name must be a str, got {type(name).__name__} {name!r}")
        try:
            name.encode("utf-8")  # MLIR symbol names are UTF-8
        except UnicodeEncodeError as e:
            raise ValueError(f"Graph name {name!r} is not valid unicode: {e.reason}") from None
        self.name = name
        self._context = context or make_context()
        if context is not None:
            from max.dialects.mo import load

            load(context)
        # Kernel paths for its ops.custom calls, read when a session loads the graph.
        if kernel_library is None:
            kernel_library = KernelLibrary(self._context)
        elif not isinstance(kernel_library, KernelLibrary):
            raise TypeError(f"Graph {name!r}: kernel_library must be a KernelLibrary, got "
                            f"{type(kernel_library).__name__}")
        elif kernel_library._context is not self._context:
            raise ValueError(f"Graph {name!r}: kernel_library belongs to another MLIR context; "
                             f"pass context=<the library's context>")
        kernel_library.load_paths(self._context, custom_extensions or ())
        self._kernel_library = kernel_library
        # Side effects are ordered by program order; these are MAX's chain handles (_chain.py).
        self._always_ready_chain = _ChainValue(self)
        self.device_chains = _DeviceChainMap(self)
        self._finished = False
        self._context_tokens: list[Any] = []
        self._frame: Any = None  # the subgraph body being built (max.graph._subgraph.Frame)
        # Whether any body was built: only then can a value of another function reach an op
        # (checking every operand of every op costs graph building time otherwise).
        self._open_bodies = False
        self._subgraphs: dict[str, Graph] = {}
        # Symbols that ops of this graph bind from data (nonzero's count: ops/rebind.py).
        self._data_symbols: set[str] = set()
        self._parent: Graph | None = None
        self._type_cache: dict[TensorType, ir.Type] = {}
        self._weights: dict[str, tuple[Any, TensorValue]] = {}  # name -> (Weight, its value)
        # A subgraph's weights are trailing arguments of its function (placeholders): each
        # ops.call passes its caller's weight named call prefix + placeholder name.
        self._weight_prefix = ""  # stripped from the weights' names (Module.build_subgraph)
        # (name in the subgraph, Weight, whether each call's prefix goes before the name)
        self._placeholders: list[tuple[str, Any, bool]] = []
        self._call_bound: set[str] = set()  # weights this graph added for ops.call
        if path is not None:
            module = _read_module(Path(path), self._context)
        if module is not None:
            self._adopt_module(module)
            return
        input_types = list(input_types)
        for i, t in enumerate(input_types):
            if not isinstance(t, TensorType | BufferType):
                raise TypeError(
                    f"Graph {name!r}: input_types[{i}] must be a TensorType or BufferType, "
                    f"got {type(t).__name__}"
                )
        parent_module = kwargs.pop("_parent_module", None)
        with self._context, ir.Location.unknown():
            self._module = parent_module or ir.Module.create()
            with ir.InsertionPoint(self._module.body):
                fn_type = ir.FunctionType.get([t.to_mlir() for t in input_types], [])
                self._func = func.FuncOp(name, fn_type)
            if parent_module is None:
                self._func.attributes["mo.graph"] = ir.UnitAttr.get()
            else:  # a subgraph: only its callers use it, never an entry point
                self._func.attributes["sym_visibility"] = ir.StringAttr.get("private")
            self._block = self._func.add_entry_block()
        self._input_types = input_types
        self._output_types: list[TensorType] = []
        self._inputs = [
            _wrap_value(arg, t, self)
            for arg, t in zip(self._block.arguments, input_types, strict=True)
        ]
        if forward is not None:
            with self:
                outputs = forward(*self._inputs, *args, **kwargs)
                if outputs is None:
                    outputs = ()
                elif isinstance(outputs, Value) or not isinstance(outputs, Iterable):
                    outputs = (outputs,)
                self.output(*outputs)

    # -- building ------------------------------------------------------------------------------

    def __enter__(self) -> Graph:
        self._context_tokens.append(_CURRENT_GRAPH.set(self))
        return self

    def __exit__(self, *exc: object) -> None:
        _CURRENT_GRAPH.reset(self._context_tokens.pop())

    @property
    def kernel_libraries_paths(self) -> list[Path]:
        """Returns the list of extra kernel libraries paths for the custom ops."""
        return self._kernel_library.library_paths()

    @property
    def always_ready_chain(self) -> _ChainValue:
        """A graph-global, immutable chain that is always ready.

        Created once per graph and never advanced or merged by the graph itself. Chains
        order nothing here (side effects follow program order): it is a token that code
        written for MAX can pass where a chain is expected.
        """
        return self._always_ready_chain

    @property
    def inputs(self) -> Sequence[TensorValue | BufferValue]:
        """The input values of the graph."""
        return tuple(self._inputs)

    @property
    def output_types(self) -> list[TensorType]:
        """View of the types of the graph output terminator."""
        return list(self._output_types)

    def output(self, *outputs: Any) -> None:
        """Sets the output nodes of the :class:`Graph`."""
        if self._finished:
            raise ValueError(f"Graph {self.name!r}: output() was already called")
        with self:
            values = [as_tensor_value(o, where="Graph.output") for o in outputs]
        with self._context, ir.Location.unknown():
            returned = [self._local(v._mlir_value) for v in values]
            with ir.InsertionPoint(self._block):
                func.ReturnOp(returned)
            self._output_types = [v.type for v in values]
            fn_type = ir.FunctionType.get(
                [t.to_mlir() for t in self._input_types]
                + [w.type.to_mlir() for _, w, _ in self._placeholders],
                [t.to_mlir() for t in self._output_types])
            self._func.attributes["function_type"] = ir.TypeAttr.get(fn_type)
        self._finished = True
        # A subgraph shares its parent's module, whose graph may still be unfinished.
        checked = self._module.operation if self._parent is None else self._func.operation
        if not checked.verify():  # pragma: no cover - verify raises instead
            raise ValueError(f"Graph {self.name!r} failed to verify")

    def _add_op(
        self,
        name: str,
        operands: Sequence[Value | ir.Value],
        result_types: Sequence[TensorType | BufferType],
        attributes: Mapping[str, Any] | None = None,
    ) -> list[Any]:
        """Emits one MO op at the end of the graph body and returns its typed results."""
        if self._finished:
            raise ValueError(f"Graph {self.name!r}: cannot add {name} after output() was called")
        mlir_operands = []
        for v in operands:
            if isinstance(v, Value):
                if v._graph is not None and v._graph is not self:
                    raise ValueError(f"{name}: operand belongs to another graph")
                v = v._mlir_value
            mlir_operands.append(self._local(v))
        with self._context, ir.Location.unknown():
            attrs = {k: _to_attribute(v) for k, v in (attributes or {}).items()}
            op = ir.Operation.create(
                name,
                results=[self._mlir_type(t) for t in result_types],
                operands=mlir_operands,
                attributes=attrs,
                ip=ir.InsertionPoint(self._block),
            )
        return [_wrap_value(r, t, self) for r, t in zip(op.results, result_types, strict=True)]

    def _local(self, value: ir.Value) -> ir.Value:
        """``value`` as seen from the body being built: a value of an enclosing function is
        captured as a body argument (through every level in between). A value of a body that
        is finished (leaked out of its callable) is a ``ValueError``: no op may use it."""
        from max.graph._subgraph import defined_in

        frame = self._frame
        if frame is None:
            if self._open_bodies and not defined_in(value, self._func.operation):
                raise ValueError("a value computed inside a cond/while_loop body is used "
                                 "outside it; return it from the body instead")
            return value
        if defined_in(value, frame.func.operation):
            return value
        outer = frame.parent
        while outer is not None and not defined_in(value, outer.func.operation):
            outer = outer.parent
        if outer is None and not defined_in(value, self._func.operation):
            raise ValueError("a value computed inside another cond/while_loop body is used "
                             "here; return it from that body instead")
        return frame.capture(value)

    @contextlib.contextmanager
    def _enter_frame(self, frame: Any) -> Iterator[None]:
        """Emits ops into ``frame``'s subgraph function; its captures come from the frame
        that was current (the enclosing one), localized when the outer op is emitted."""
        saved = (self._frame, self._block)
        frame.parent = self._frame
        self._open_bodies = True
        self._frame, self._block = frame, frame.block
        try:
            with self:
                yield
        finally:
            self._frame, self._block = saved

    def add_subgraph(
        self,
        name: str,
        forward: Callable[..., Any] | None = None,
        input_types: Iterable[Type] = (),
        path: Path | None = None,
        custom_extensions: Iterable[Path] = (),
        devices: Iterable[Any] = (),
    ) -> Graph:
        """Creates and adds a subgraph to the current graph.

        The subgraph is a further function of this graph's module (no ``mo.graph``
        attribute), called with :func:`max.graph.ops.call`. Called once, its body is inlined
        into the caller when compiled; called more than once, it is compiled once, as a
        function each call runs (the CPU target). It sees only its own inputs (no values of
        the parent graph) and weights: a weight it uses is a placeholder that each call binds
        to the caller's weight of the same name (with the call's ``prefix`` in front).
        A ``BufferType`` input takes the caller's buffer itself: the subgraph's loads and
        stores act on it, in program order with the caller's (no chain input is added).

        Args:
            name: The name identifier for the subgraph.
            forward: The optional callable that defines the sequence of operations for the
                subgraph's forward pass. If provided, the subgraph will be built immediately
                using this callable.
            input_types: The data types for the subgraph's input tensors.
            path: Loading a subgraph from disk is not supported (``NotImplementedError``).
            custom_extensions: Not supported (must be empty).
            devices: The list of devices this subgraph is meant to use (unused).
        """
        if path is not None or list(custom_extensions):
            raise NotImplementedError("add_subgraph: path and custom_extensions are not supported")
        if not isinstance(name, str) or not name:
            raise ValueError(f"add_subgraph: name must be a non-empty str, got {name!r}")
        taken = {ir.StringAttr(op.attributes["sym_name"]).value
                 for op in self._module.body.operations if "sym_name" in op.attributes}
        if name in taken:
            raise ValueError(f"add_subgraph: the module already has a function named {name!r}")
        sub = Graph(name, input_types=input_types, context=self._context, module=None,
                    _parent_module=self._module)
        sub._parent = self
        self._subgraphs[name] = sub
        if forward is not None:
            with sub:
                outputs = forward(*sub._inputs)
                if outputs is None:
                    outputs = ()
                elif isinstance(outputs, Value) or not isinstance(outputs, Iterable):
                    outputs = (outputs,)
                sub.output(*outputs)
        return sub

    def add_weight(self, weight: Any, force_initial_weight_on_host: bool = True) -> TensorValue:
        """Adds a weight to the graph.

        If the weight is in the graph already, return the existing value. The weight is an
        ``ops.constant_external`` of its name and type: its value is given when the model is
        loaded (``InferenceSession.load(graph, weights_registry={name: array})``).

        Args:
            weight: The weight to add to the graph.
            force_initial_weight_on_host: Accepted for compatibility; weights live in host
                memory here.

        Returns:
            A TensorValue that contains this weight.

        Raises:
            ValueError: If a weight with the same name already exists in the graph.
        """
        from max.graph.ops.constant import constant_external

        existing = self._weights.get(weight.name)
        if existing is not None:
            if existing[0] is not weight and not (weight.name in self._call_bound
                                                  and existing[0].type == weight.type):
                raise ValueError(f"Graph {self.name!r}: a weight named {weight.name!r} already "
                                 "exists in the graph")
            return existing[1]
        if self._parent is not None:  # a subgraph: the weight is an argument its callers bind
            # A weight under the prefix is a placeholder (the call's prefix goes in front of
            # its name); any other is the caller's weight of its own name (shared by calls).
            name, per_call = weight.name, weight.name.startswith(self._weight_prefix)
            if per_call:
                name = name[len(self._weight_prefix):]
            if any(n == name and p == per_call for n, _, p in self._placeholders):
                raise ValueError(f"subgraph {self.name!r}: two weights are named {name!r} once "
                                 f"the prefix {self._weight_prefix!r} is removed")
            with self._context, ir.Location.unknown():
                arg = self._func.entry_block.add_argument(self._mlir_type(weight.type),
                                                          ir.Location.unknown())
            value = _wrap_value(arg, weight.type, self)
            self._placeholders.append((name, weight, per_call))
        else:
            # In the graph's own block even while a cond/while body is built: the compiler
            # binds the weights found there, and a body captures the value like any other.
            body, self._block = self._block, self._func.entry_block
            try:
                with self:
                    value = constant_external(weight.name, weight.type)
            finally:
                self._block = body
        self._weights[weight.name] = (weight, value)
        return value

    def _call_weight(self, name: str, like: Any) -> TensorValue:
        """The weight ``name`` of this graph for an ``ops.call`` (``like``: the callee's
        placeholder, whose type it takes); one value per name, however many calls bind it."""
        existing = self._weights.get(name)
        if existing is not None:
            if existing[0].type != like.type:
                raise ValueError(f"call: weight {name!r} is {existing[0].type} in graph "
                                 f"{self.name!r}, the subgraph takes {like.type}")
            return existing[1]
        t = like.type
        weight = type(like)(name, t.dtype, t.shape, t.device, like.quantization_encoding,
                            like.align)
        weight._original = like._original
        self._call_bound.add(name)
        return self.add_weight(weight)

    def _mlir_type(self, t: TensorType | BufferType) -> ir.Type:
        """``t.to_mlir()``, parsed once per graph (types repeat: most ops keep their shape)."""
        cached = self._type_cache.get(t)
        if cached is None:
            cached = self._type_cache[t] = t.to_mlir()
        return cached

    # -- artifacts -----------------------------------------------------------------------------

    def _require_output(self, action: str) -> None:
        """Raises unless :meth:`output` was called (the function has no terminator before)."""
        if not self._finished:
            raise ValueError(
                f"Graph {self.name!r}: cannot {action} a graph before its outputs are set; "
                f"call output(...) first (output() with no values for a graph without outputs)"
            )

    def save(self, path: Path | str) -> None:
        """Writes the graph: MLIR bytecode (``.mlirbc``), or MLIR text for a ``.mlir`` path."""
        self._require_output("save")
        path = Path(path)
        if path.suffix == ".mlir":
            path.write_text(self._text())
        else:
            with open(path, "wb") as f:
                self._module.operation.write_bytecode(f)

    def _bytecode(self) -> bytes:
        import io

        buf = io.BytesIO()
        self._module.operation.write_bytecode(buf)
        return buf.getvalue()

    def _text(self) -> str:
        """The module as MLIR text that parses back. MLIR prints an empty symbol name (a graph
        named "") as ``@<<INVALID EMPTY SYMBOL>>``, but reads ``@""`` as one."""
        text = str(self._module)
        if self.name == "":
            text = text.replace("func.func @<<INVALID EMPTY SYMBOL>>(", 'func.func @""(', 1)
        return text

    def __str__(self) -> str:
        return self._text()

    def __repr__(self) -> str:
        ins = ", ".join(str(t) for t in self._input_types)
        return f"Graph({self.name!r}, inputs=[{ins}])"

    # -- loading -------------------------------------------------------------------------------

    def _adopt_module(self, module: ir.Module) -> None:
        graphs = [
            op for op in module.body.operations
            if op.operation.name == "func.func" and "mo.graph" in op.operation.attributes
        ]
        if len(graphs) != 1:
            raise ValueError(f"expected one MO graph function in the module, found {len(graphs)}")
        self._module = module
        self._func = graphs[0]
        self.name = ir.StringAttr(self._func.attributes["sym_name"]).value
        self._block = self._func.regions[0].blocks[0]
        fn_type = ir.FunctionType(ir.TypeAttr(self._func.attributes["function_type"]).value)
        self._input_types = [Type.from_mlir(t) for t in fn_type.inputs]
        self._output_types = [TensorType.from_mlir(t) for t in fn_type.results]
        self._inputs = [
            _wrap_value(a, t, self)
            for a, t in zip(self._block.arguments, self._input_types, strict=True)
        ]
        self._finished = True


def _read_module(path: Path, context: ir.Context) -> ir.Module:
    """Parses a saved graph; a corrupt or truncated file raises ValueError, never crashes."""
    if not path.is_file():
        raise FileNotFoundError(f"no such graph file: {os.fspath(path)}")
    data = path.read_bytes()
    if path.suffix == ".mlirbc" and not data.startswith(BYTECODE_MAGIC):
        raise ValueError(f"{path}: not MLIR bytecode (bad magic number)")
    check_parses(data, what=str(path))  # in a child process: corrupt bytecode can abort MLIR
    try:
        module = safe_parse.parse(data, context)
    except (ir.MLIRError, ValueError) as e:
        raise ValueError(f"{path}: cannot read graph: {e}") from None
    try:  # a file is untrusted: its types must follow the op rules the builders follow
        verify_module(module)
    except VerificationError as e:
        raise VerificationError(f"{path}: {e}") from None
    return module


def _to_attribute(value: Any) -> ir.Attribute:
    if isinstance(value, ir.Attribute):
        return value
    if isinstance(value, bool):
        return ir.BoolAttr.get(value)
    if isinstance(value, int):
        return ir.IntegerAttr.get(ir.IntegerType.get_signless(64), value)
    if isinstance(value, float):
        return ir.FloatAttr.get_f64(value)
    if isinstance(value, str):
        return ir.StringAttr.get(value)
    if isinstance(value, tuple | list) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return ir.DenseI64ArrayAttr.get([int(v) for v in value])
    raise TypeError(f"cannot make an MLIR attribute from {value!r}")


def _wrap_value(value: ir.Value, t: TensorType | BufferType, graph: Graph) -> Any:
    """The graph value of an MLIR value whose type is known: a buffer or a tensor."""
    if isinstance(t, BufferType):
        return BufferValue._from(value, t, graph)
    return TensorValue._from(value, t, graph)
