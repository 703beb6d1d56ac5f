"""The host side of a GPU module: device memory, the plain-loops mapping, and the check that
nothing but launches touches memory on the host.

The entry's memref arguments are device memory (the runtime passes device pointers), so an
intermediate buffer must be too: ``memref.alloc`` becomes ``gpu.alloc``, freed by
``gpu.dealloc`` before the return (the host code is straight-line: any control flow left is
refused by :func:`check_host`).
"""

from __future__ import annotations

from mlir import ir

from max.compiler.gpu.schedule import host_functions
from max.compiler.passes.registry import CompilationError, pass_manager

# Linalg ops no schedule took -> one GPU thread per point of each (tile of the) parallel loops.
# Tiles of 16 x 16 (a 1-d loop: 16 threads): blocks over the tiles, threads inside one.
MAP_LOOPS = ("func.func(convert-linalg-to-parallel-loops),"
             "func.func(scf-parallel-loop-tiling{parallel-loop-tile-sizes=16,16}),"
             "func.func(gpu-map-parallel-loops),func.func(convert-parallel-loops-to-gpu),"
             "canonicalize,cse")

# Host ops that touch no memory (sizes, views, constants) or are the launches themselves.
# (memref.alloc is not: mo-gpu-device-buffers made every one a gpu.alloc before this check.)
HOST_OK_PREFIXES = ("arith.", "index.", "affine.apply", "affine.min", "affine.max", "gpu.",
                    "func.return")
HOST_OK = {"memref.dim", "memref.subview", "memref.expand_shape", "memref.collapse_shape",
           "memref.reshape", "memref.cast", "memref.reinterpret_cast", "memref.view",
           "memref.extract_strided_metadata"}


def map_loops(module: ir.Module, block: int, max_blocks: int) -> None:
    """The linalg ops the schedules left become plain GPU kernels: each generic that
    ``plain.py`` can run (named ops generalized first), the rest through :data:`MAP_LOOPS`."""
    from max.compiler.gpu import body, plain
    from max.compiler.gpu.schedule import generalize

    with module.context, ir.Location.unknown():
        generalize(module, everything=True)
        for fn in host_functions(module):
            for op in list(fn.regions[0].blocks[0].operations):
                op = op.operation
                if op.name == "linalg.generic" and plain.why_not(op) is None:
                    body.emit(op, plain.kernel_text(op, block, max_blocks))
        pass_manager(MAP_LOOPS).run(module.operation)


def check_host(module: ir.Module, target: str = "nvidia") -> None:
    """Raises CompilationError naming the first host op that would touch device memory from
    the CPU (or host control flow, which the device-memory rewrite does not follow);
    ``target``: the target's name, for the message."""
    for fn in host_functions(module):
        for op in fn.regions[0].blocks[0].operations:
            name = op.operation.name
            if name in HOST_OK or name.startswith(HOST_OK_PREFIXES) or _reshape_shape(op) \
                    or _on_host_shape(op):
                continue
            label = _label(op.operation)
            raise CompilationError(
                f"the {target} target cannot run {name} ({label}) on the host: no GPU schedule "
                "or loop mapping covers it")


def _host_shape_buffer(value: ir.Value) -> bool:
    """Whether ``value`` (a memref) is only ever a ``memref.reshape``'s shape, written and read
    by the host (a symbolic shape built from sizes): it stays in host memory."""
    uses = list(value.uses)
    if not any(u.owner.name == "memref.reshape" for u in uses):
        return False
    allowed = {("memref.reshape", 1), ("memref.store", 1), ("memref.load", 0),
               ("memref.dealloc", 0)}
    return all((u.owner.name, u.operand_number) in allowed for u in uses)


def _on_host_shape(op: ir.Operation) -> bool:
    """A host op on a :func:`_host_shape_buffer` (its allocation, stores, loads, free)."""
    op = op.operation
    if op.name == "memref.alloc":
        return _host_shape_buffer(op.results[0])
    at = {"memref.store": 1, "memref.load": 0, "memref.dealloc": 0}.get(op.name)
    return at is not None and _host_shape_buffer(op.operands[at])


def _reshape_shape(op: ir.Operation) -> bool:
    """Whether ``op`` is a global read only as the shape of ``memref.reshape`` ops: a host
    constant (the global stays in host memory), read on the host to build a view."""
    op = op.operation
    if op.name != "memref.get_global":
        return False
    uses = list(op.results[0].uses)
    return bool(uses) and all(u.owner.name == "memref.reshape" and u.operand_number == 1
                              for u in uses)


def _label(op: ir.Operation) -> str:
    from max.compiler.pipelines.kernel_names import kernel_label

    return kernel_label(op)


def device_buffers(module: ir.Module) -> None:
    """``memref.alloc`` -> ``gpu.alloc`` in host functions, each freed by ``gpu.dealloc``
    before the return (any ``memref.dealloc`` of it goes: the return frees it)."""
    from mlir.dialects import gpu

    with module.context, ir.Location.unknown():
        for fn in host_functions(module):
            ops = [op.operation for op in fn.regions[0].blocks[0].operations]
            ret = ops[-1]
            for op in ops:
                if op.name == "memref.dealloc" and not _host_shape_buffer(op.operands[0]):
                    op.erase()
            for op in ops:
                if op.name != "memref.alloc" or _host_shape_buffer(op.results[0]):
                    continue
                # The alignment attribute goes: cudaMalloc's 256 bytes exceed any we ask for.
                with ir.InsertionPoint(op):
                    alloc = gpu.AllocOp(op.results[0].type, None, [], list(op.operands), [])
                new = alloc.operation.results[0]
                op.results[0].replace_all_uses_with(new)
                op.erase()
                with ir.InsertionPoint(ret):
                    gpu.DeallocOp(None, [], new)




def sink_constants(module: ir.Module) -> None:
    """Copies the host constants (and globals) each ``gpu.launch`` uses into its body.

    ``gpu-kernel-outlining`` here passes them as kernel parameters otherwise, so that a
    kernel divides by a parameter (a 64-bit division loop) where it could by a constant.
    """
    with module.context:
        for fn in host_functions(module):
            block = fn.regions[0].blocks[0]
            # memref.get_global too: outlining copies the global into the kernel's module,
            # where it becomes device memory (a host global is no kernel's to read).
            constants = [op.operation for op in block.operations
                         if op.operation.name in ("arith.constant", "memref.get_global")]
            launches = [op.operation for op in block.operations
                        if op.operation.name == "gpu.launch"]
            for launch in launches:
                body = launch.regions[0].blocks[0]
                for const in constants:
                    value = const.results[0]
                    # The launch's own operands (its sizes) stay the host's.
                    inside = [(use.owner, use.operand_number) for use in value.uses
                              if use.owner.operation != launch
                              and _within(use.owner, launch)]
                    if not inside:
                        continue
                    with ir.InsertionPoint.at_block_begin(body):
                        copy = const.clone()
                    for owner, number in inside:
                        owner.operands[number] = copy.results[0]
            for const in constants:
                if not len(list(const.results[0].uses)):
                    const.erase()


def _within(op: ir.Operation, ancestor: ir.Operation) -> bool:
    op = op.operation
    while op is not None:
        if op == ancestor:
            return True
        parent = op.parent
        op = parent.operation if parent is not None else None
    return False


__all__ = ["MAP_LOOPS", "check_host", "device_buffers", "map_loops", "sink_constants"]
