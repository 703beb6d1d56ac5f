"""Custom ops: ``custom`` and ``inplace_custom`` call a user kernel written in MLIR.

MAX compiles custom ops from Mojo; here a kernel is a ``func.func`` in a ``.mlir`` file (or
every ``*.mlir`` file of a folder) given to ``InferenceSession(custom_extensions=...)`` or
``InferenceSession.load(..., custom_extensions=...)``. The graph holds one ``mo.custom`` op
naming the kernel; the compiler checks the kernel's signature against the op when it links
the kernel into the model (the contract: README "Custom kernels", docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from max.dialects.mo.opdefs.custom import check_symbol, parameters_text
from max.dialects.mo.opdefs.flow import segments
from max.graph.graph import Graph
from max.graph.ops.rebind import require_bound
from max.graph.type import BufferType, DeviceRef, TensorType
from max.graph.value import BufferValue, TensorValue, Value


def _value(op: str, i: int, value: Any, buffers: bool) -> Value:
    if hasattr(value, "__tensorvalue__") and not isinstance(value, Value):
        value = value.__tensorvalue__()
    if hasattr(value, "__buffervalue__") and not isinstance(value, Value):
        value = value.__buffervalue__()
    if isinstance(value, BufferValue):
        if not buffers:
            raise TypeError(f"{op}: values[{i}] is a buffer ({value.type}); a kernel that "
                            f"updates buffers is called with ops.inplace_custom")
        return value
    if isinstance(value, TensorValue):
        return value
    raise TypeError(f"{op}: values[{i}] must be a TensorValue or BufferValue, got "
                    f"{type(value).__name__}")


def _emit(op: str, name: str, device: Any, values: Sequence[Any],
          out_types: Sequence[Any] | None, parameters: Mapping[str, Any] | None,
          buffers: bool) -> list[TensorValue]:
    if not isinstance(name, str):
        raise TypeError(f"{op}: name must be a str, got {type(name).__name__}")
    try:
        check_symbol(op, name)
    except ValueError as e:
        raise ValueError(str(e)) from None
    DeviceRef.from_device(device)  # kernels run on the host; the device is only checked
    if isinstance(values, Value) or not isinstance(values, Sequence):
        raise TypeError(f"{op}: values must be a sequence of values, got "
                        f"{type(values).__name__}")
    operands = [_value(op, i, v, buffers) for i, v in enumerate(values)]
    types = list(out_types or [])
    for i, t in enumerate(types):
        if isinstance(t, BufferType) or not isinstance(t, TensorType):
            raise TypeError(f"{op}: out_types[{i}] must be a TensorType, got {t!r}")
        require_bound(op, t.shape, f"out_types[{i}]")
    if parameters is not None and not isinstance(parameters, Mapping):
        raise TypeError(f"{op}: parameters must be a mapping, got {type(parameters).__name__}")
    attrs: dict[str, Any] = {"symbol": name, "parameters": parameters_text(op, parameters)}
    graph = Graph.current
    arg_segments = segments([v.type for v in operands], op)
    result_segments = segments(types, op, "results")
    from mlir import ir

    with graph._context:
        attrs["operandSegmentSizes"] = ir.DenseI32ArrayAttr.get(arg_segments)
        attrs["resultSegmentSizes"] = ir.DenseI32ArrayAttr.get(result_segments)
    return graph._add_op("mo.custom", operands, types, attrs)


def custom(
    name: str,
    device: Any,
    values: Sequence[Value],
    out_types: Sequence[TensorType],
    parameters: Mapping[str, bool | int | float] | None = None,
) -> list[TensorValue]:
    """Creates a node to execute a custom graph operation in the graph.

    The kernel is the function ``@name`` of the ``.mlir`` files the model is loaded with
    (``InferenceSession(custom_extensions=...)``): it takes the ``values`` as ``tensor``
    arguments, then one scalar argument per parameter (marked ``{max.parameter = "key"}``),
    and returns one tensor per entry of ``out_types``.

    Args:
        name: The kernel's function name in the custom extensions.
        device: Device that the op is assigned to (kernels run on the host CPU).
        values: The op function's arguments (tensors; buffers go to :func:`inplace_custom`).
        out_types: The list of op function's return type.
        parameters: Dictionary of extra parameters expected by the kernel: bools, ints and
            floats (``str`` and ``DType`` parameters select Mojo code: not supported).

    Returns:
        Symbolic values representing the outputs of the op in the graph. These correspond
        1:1 with the types passed as ``out_types``.

    Raises:
        TypeError: A value is not a tensor, an out type not a ``TensorType``, or a parameter
            not a bool, int or float.
        ValueError: An out type uses a symbol no graph input has. Whether the kernel exists
            and its signature matches is checked when the graph is loaded (``load`` raises
            ``CompilationError`` naming the kernel, argument and types).

    Example:
        >>> from max.dtype import DType
        >>> from max.graph import DeviceRef, Graph, TensorType, ops
        >>> x_type = TensorType(DType.float32, ["n"], DeviceRef.CPU())
        >>> with Graph("g", input_types=[x_type]) as g:
        ...     (y,) = ops.custom("scale", DeviceRef.CPU(), [g.inputs[0]], [x_type],
        ...                       parameters={"alpha": 2.0})
        ...     g.output(y)
        >>> y.type
        TensorType(dtype=DType.float32, shape=[n], device=cpu:0)
    """
    if out_types is None:
        raise TypeError("custom: out_types is required (use [] for a kernel without results)")
    return _emit("custom", name, device, values, out_types, parameters, buffers=False)


def inplace_custom(
    name: str,
    device: Any,
    values: Sequence[Value],
    out_types: Sequence[TensorType] | None = None,
    parameters: Mapping[str, bool | int | float] | None = None,
) -> list[TensorValue]:
    """Creates a node to execute an in-place custom graph operation in the graph.

    As :func:`custom`, but ``values`` may include :class:`~max.graph.BufferValue`\\ s, which
    the kernel takes as ``memref`` arguments and may update in place. The op keeps its place
    among the graph's other buffer reads and writes (program order) and is never removed.

    Args:
        name: The kernel's function name in the custom extensions.
        device: Device that the op is assigned to (kernels run on the host CPU).
        values: The op function's arguments: tensors and buffers.
        out_types: The types of the kernel's tensor results, if any.
        parameters: Dictionary of extra parameters expected by the kernel (bools, ints,
            floats).

    Returns:
        The op's results (empty without ``out_types``).
    """
    return _emit("inplace_custom", name, device, values, out_types, parameters, buffers=True)
