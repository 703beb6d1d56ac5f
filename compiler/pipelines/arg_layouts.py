"""Arguments given at load time, read in the layout their one use wants (``runtime/layouts``).

The entry's trailing arguments are the named weights (``mo.num_weights`` of them, bound at
load time) and then the externalized constants (``mo.num_constants``, in ``constants.bin``).
When such an argument has a single use that reads it in another order, the IR reads the
argument's bytes in that order instead, and the module records the layout
(:data:`LAYOUTS_ATTR`, ``{"w0": "panels_t", "c2": "t"}``): the worker stores constants that
way at compile time, the engine rearranges weights once at load time. Nothing is recorded for
a failed schedule: the plain pipeline restores the whole module, attribute included.

:func:`transpose_args` (first in ``schedule_tensors``) turns ``linalg.transpose(W)`` of such an
argument into a view of its bytes as ``W.T`` (layout ``"t"``): no transpose at each call.
``matmul_pack`` then reads a B that is such an argument, or such a view, as prepacked panels
(``"panels"``, ``"panels_t"``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from mlir import ir
from mlir.dialects import tensor

from max.compiler.lowering.builders import reassociation
from max.compiler.lowering.call import SOURCE_ATTR as SUBGRAPH_ATTR
from max.compiler.passes.ir_util import as_op
from max.runtime.layouts import permutation_layout

NUM_WEIGHTS = "mo.num_weights"  # graph function: inputs before the constants that are weights
NUM_CONSTANTS = "mo.num_constants"  # graph function: trailing inputs that are constants
LAYOUTS_ATTR = "mo.arg_layouts"  # module: {"w<i>" | "c<i>": layout}
_TRANSPOSED = "mo.transposed_arg"  # on the expand_shape of a "t" view


def mark_load_time_args(fn: ir.Operation, weights: int, constants: int) -> None:
    """Records on the graph function that its last ``weights + constants`` inputs are the
    named weights and then the externalized constants (the compile worker's)."""
    i64 = ir.IntegerType.get_signless(64)
    with fn.context:
        fn.attributes[NUM_WEIGHTS] = ir.IntegerAttr.get(i64, weights)
        fn.attributes[NUM_CONSTANTS] = ir.IntegerAttr.get(i64, constants)


def load_time_args(fn: ir.Operation) -> dict[int, str]:
    """Entry argument number -> ``"w<i>"`` (the i-th weight) or ``"c<i>"`` (constant).

    For the function of a subgraph called more than once (``lowering/call.py``): argument
    number -> the keys that its calls pass there, joined by ``|`` (``"w3|w19|w35"``), where
    every call passes a load-time argument read by nothing else; :func:`record` gives them
    all the layout (the same code reads each).
    """
    attrs = fn.attributes
    if NUM_CONSTANTS not in attrs:
        if SUBGRAPH_ATTR not in attrs:
            return {}
        return _callee_args(fn, ir.StringAttr(attrs["sym_name"]).value)
    if "mo.num_inputs" in attrs:  # the entry ABI's function (outputs follow the inputs)
        n_in = ir.IntegerAttr(attrs["mo.num_inputs"]).value
    else:  # the graph function before lowering: its arguments are the inputs
        n_in = len(fn.regions[0].blocks[0].arguments)
    n_const = ir.IntegerAttr(attrs[NUM_CONSTANTS]).value
    n_w = ir.IntegerAttr(attrs[NUM_WEIGHTS]).value if NUM_WEIGHTS in attrs else 0
    first = n_in - n_const - n_w
    keys = {first + i: f"w{i}" for i in range(n_w)}
    keys.update({n_in - n_const + i: f"c{i}" for i in range(n_const)})
    return keys


def _callee_args(fn: ir.Operation, name: str) -> dict[int, str]:
    """:func:`load_time_args` of a subgraph's function, from every call of it (in loops and
    branches too: a call the layout missed would pass a weight in the wrong order)."""
    module = fn.parent
    calls: list[tuple[ir.Operation, dict[int, str]]] = []
    for caller in module.regions[0].blocks[0].operations:
        caller = caller.operation
        if caller.name != "func.func" or caller == fn:
            continue
        found: list[ir.Operation] = []

        def visit(op: ir.Operation) -> ir.WalkResult:
            if (op.name == "func.call"
                    and ir.FlatSymbolRefAttr(op.attributes["callee"]).value == name):
                found.append(op)
            return ir.WalkResult.ADVANCE

        caller.walk(visit)
        if found:
            args = load_time_args(caller)
            calls += [(call, args) for call in found]
    if not calls:
        return {}
    keys: dict[int, str] = {}
    for k in range(len(fn.regions[0].blocks[0].arguments)):
        got = [_arg_behind(call.operands[k], args) for call, args in calls]
        if all(got):
            keys[k] = "|".join(got)  # type: ignore[arg-type]
    return keys


def top_level_ops(module: ir.Module) -> Iterator[tuple[ir.Operation, dict[int, str]]]:
    """Each op directly in a function's blocks, with the function's :func:`load_time_args`.
    Each block's ops are listed before the first is given: a caller may rewrite as it goes."""
    for fn in module.body.operations:
        if fn.operation.name != "func.func":
            continue
        args = load_time_args(fn.operation)
        for block in fn.operation.regions[0].blocks:
            for child in list(block.operations):
                yield child.operation, args


def _single_use(v: ir.Value) -> bool:
    return len(list(v.uses)) == 1


def load_time_key(v: ir.Value, args: dict[int, str]) -> str | None:
    """The key of the load-time argument that ``v`` (a ``to_tensor`` of it) reads, however
    many ops read it."""
    if isinstance(v, ir.BlockArgument) and _function_argument(v):
        return args.get(v.arg_number)  # a subgraph function's argument
    owner = as_op(v.owner)
    if owner is None or owner.name != "bufferization.to_tensor":
        return None
    src = owner.operands[0]
    return args.get(ir.BlockArgument(src).arg_number) if isinstance(src, ir.BlockArgument) \
        else None


def _arg_behind(v: ir.Value, args: dict[int, str]) -> str | None:
    """:func:`load_time_key` of ``v`` when ``v`` is that argument's only reader."""
    key = load_time_key(v, args)
    if key is None or not _single_use(v):
        return None
    owner = as_op(v.owner)
    return key if owner is None or _single_use(owner.operands[0]) else None


def _function_argument(v: ir.Value) -> bool:
    """Whether block argument ``v`` is an argument of a function (not of a loop's body)."""
    parent = ir.BlockArgument(v).owner.owner
    return parent is not None and parent.operation.name == "func.func"


def source(v: ir.Value, args: dict[int, str]) -> tuple[str, str | None, ir.Value] | None:
    """``(key, layout so far, the to_tensor value)`` when ``v`` is a load-time argument read
    only here: as given (layout None) or through a :func:`transpose_args` view (``"t"``)."""
    if (key := _arg_behind(v, args)) is not None:
        return key, None, v
    owner = as_op(v.owner)
    if owner is None or owner.name != "tensor.expand_shape" or _TRANSPOSED not in owner.attributes:
        return None
    if not _single_use(v):
        return None
    flat = owner.operands[0]
    inner = as_op(flat.owner)
    if inner is None or inner.name != "tensor.collapse_shape" or not _single_use(flat):
        return None
    t = inner.operands[0]
    key = _arg_behind(t, args)
    return None if key is None else (key, "t", t)


def record(module: ir.Module, key: str, layout: str) -> None:
    """Sets the layout of argument ``key`` (or of each of ``"w3|w19"``) in the module's
    record."""
    current = layouts(module)
    for one in key.split("|"):
        current[one] = layout
    with module.context:
        module.operation.attributes[LAYOUTS_ATTR] = ir.DictAttr.get(
            {k: ir.StringAttr.get(v) for k, v in sorted(current.items())})


def layouts(module: ir.Module) -> dict[str, str]:
    """The recorded layouts: ``{"w0": "panels_t", ...}``."""
    attrs = module.operation.attributes
    if LAYOUTS_ATTR not in attrs:
        return {}
    d = ir.DictAttr(attrs[LAYOUTS_ATTR])
    return {d[i].name: ir.StringAttr(d[i].attr).value for i in range(len(d))}


def split(module: ir.Module, n_weights: int, n_constants: int) -> tuple[list[str], list[str]]:
    """The layouts as two lists (``""``: as given): one per weight, one per constant."""
    got = layouts(module)
    return ([got.get(f"w{i}", "") for i in range(n_weights)],
            [got.get(f"c{i}", "") for i in range(n_constants)])


def transposed_view(t: ir.Value) -> ir.Value:
    """``t[R, C]``'s bytes read as ``[C, R]``: the tensor ``t.T`` once the argument is stored
    in layout ``"t"`` (marked, so that :func:`source` sees through it)."""
    view = permuted_view(t, [1, 0])
    as_op(view.owner).attributes[_TRANSPOSED] = ir.UnitAttr.get()
    return view


def permuted_view(t: ir.Value, perm: list[int]) -> ir.Value:
    """``t``'s bytes read as ``np.transpose(t, perm)`` (its shape permuted): that tensor once
    the argument is stored in layout ``"perm:..."``."""
    rt = ir.RankedTensorType(t.type)
    flat = tensor.collapse_shape(ir.RankedTensorType.get([math.prod(rt.shape)], rt.element_type),
                                 t, reassociation([list(range(rt.rank))]))
    shape = [rt.shape[p] for p in perm]
    return tensor.ExpandShapeOp(ir.RankedTensorType.get(shape, rt.element_type), flat,
                                reassociation([list(range(rt.rank))]), [], shape).result


def transpose_args(module: ir.Module) -> int:
    """Each ``linalg.transpose`` of a load-time argument read only by it becomes a view of
    the argument stored transposed (layout ``"t"``, 2-D) or permuted (``"perm:..."``: a
    conv filter given in PyTorch's order, 7x7 x 512 -> 512 2.3x torch's time when the filter
    was permuted at each call); returns how many."""
    count = 0
    for op, args in top_level_ops(module):
        if op.name != "linalg.transpose" or not args:
            continue
        src = op.operands[0]
        perm = list(ir.DenseI64ArrayAttr(op.attributes["permutation"]))
        rt = ir.RankedTensorType(src.type)
        if not rt.has_static_shape or (key := _arg_behind(src, args)) is None:
            continue
        with ir.InsertionPoint(op), op.location:
            view = transposed_view(src) if perm == [1, 0] else permuted_view(src, perm)
        op.results[0].replace_all_uses_with(view)
        init = as_op(op.operands[1].owner)
        op.erase()
        if init is not None and init.name == "tensor.empty" and not list(init.results[0].uses):
            init.erase()
        record(module, key, "t" if perm == [1, 0] else permutation_layout(perm))
        count += 1
    return count


__all__ = ["LAYOUTS_ATTR", "NUM_CONSTANTS", "NUM_WEIGHTS", "layouts", "load_time_args",
           "load_time_key", "mark_load_time_args", "permuted_view", "record", "source", "split",
           "top_level_ops", "transpose_args", "transposed_view"]
