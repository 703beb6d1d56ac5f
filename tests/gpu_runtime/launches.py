"""What a compiled GPU graph must launch (read from its module), and the check of a fake
driver's launch log against it (shared by the CUDA and HIP engine tests)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from mlir import ir

from max.graph import DeviceRef, Graph, TensorType

TAG = 1 << 62


def gpu_graph(fn, specs, name: str = "g") -> Graph:
    return Graph(name, fn, input_types=[TensorType(d, s, DeviceRef.GPU()) for d, s in specs])


@dataclass(frozen=True)
class Expected:
    """One ``gpu.launch_func`` of the compiled module."""

    name: str
    grid: tuple[int, ...]
    block: tuple[int, ...]
    operands: tuple[ir.Type, ...]


def expected_launches(graph: Graph, target: str = "nvidia") -> list[Expected]:
    """The launches of ``graph`` on ``target`` (``nvidia``: sm_90; ``amd``: gfx942), read
    from its module just before the kernels are lowered (the host's launch ops, in order)."""
    from max.compiler.lowering import lower_to_linalg
    from max.compiler.passes.externalize import externalize_constants
    from max.compiler.targets import amd, nvidia
    from max.dialects.mo import make_context

    pipeline, options = ((nvidia.NVIDIA, nvidia.NvidiaDescription().options())
                         if target == "nvidia" else
                         (amd.AMD, amd.AmdDescription(arch="gfx942").options()))

    found: list[Expected] = []
    with make_context(), ir.Location.unknown():
        module = ir.Module.parse(str(graph._module))
        externalize_constants(module)  # as the compiler: large constants become arguments
        lower_to_linalg(module)
        pipeline.run(module, until="mo-gpu-align-shared", **options)

        def visit(op: ir.Operation) -> ir.WalkResult:
            if op.name == "gpu.launch_func":
                v = op.opview
                sizes = [ir.IntegerAttr(x.owner.attributes["value"]).value
                         for x in (v.gridSizeX, v.gridSizeY, v.gridSizeZ, v.blockSizeX,
                                   v.blockSizeY, v.blockSizeZ)]
                kernel = str(op.attributes["kernel"]).split("::@")[-1]
                found.append(Expected(kernel, tuple(sizes[:3]), tuple(sizes[3:]),
                                      tuple(o.type for o in v.kernelOperands)))
            return ir.WalkResult.ADVANCE

        module.operation.walk(visit)
    return found


def check_launches(fake, graph: Graph, stream: int, io: list, target: str = "nvidia") -> None:
    """The recorded launches are the module's, each pointer argument an allocation that holds
    its memref; the graph's inputs and outputs are passed as the tensors' own memory (where
    the driver knows the kernels' arguments: PTX says, a HSACO's symbols do not)."""
    expected = expected_launches(graph, target)
    launches = fake.launches()
    assert [launch.name for launch in launches] == [e.name for e in expected]
    seen = set()
    for launch, want in zip(launches, expected):
        assert launch.grid == want.grid and launch.block == want.block
        assert launch.shared_bytes == 0 and launch.stream == stream
        if target != "nvidia":
            continue
        params = list(launch.params)
        for t in want.operands:
            if not isinstance(t, ir.MemRefType):
                params.pop(0)  # a scalar
                continue
            rank = t.rank
            allocated, aligned, offset = params[:3]
            sizes, strides = params[3:3 + rank], params[3 + rank:3 + 2 * rank]
            del params[:3 + 2 * rank]
            assert allocated == aligned and aligned & TAG, hex(aligned)
            assert sizes == list(t.shape)
            itemsize = ir.FloatType(t.element_type).width // 8 if isinstance(
                t.element_type, ir.FloatType) else ir.IntegerType(t.element_type).width // 8
            extent = offset + sum((n - 1) * s for n, s in zip(sizes, strides)) + 1
            assert fake.allocated_size(aligned) >= extent * itemsize
            seen.add(aligned)
        assert not params  # every argument accounted for
    for tensor in io if target == "nvidia" else ():  # in place: the tensors' own memory, of their size
        assert tensor._data_ptr() in seen
        assert fake.alloc_size(tensor._data_ptr()) == math.prod(tensor.shape) * 4


