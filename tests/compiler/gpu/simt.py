"""A small SIMT interpreter: the NVIDIA (and AMD) target's kernels run in Python, threads and
all, to check their numbers without a GPU.

The module is taken after ``mo-gpu-check-host`` (launches still inline in the host function).
The host ops run in order (``gpu.alloc`` gives a NaN-filled array, so a read before any write
shows); each ``gpu.launch`` runs block after block, each thread a generator that stops at a
``gpu.barrier`` (until the whole block is there) or a ``gpu.shuffle`` (until its whole warp
is: 32 lanes, or an AMD wavefront's 64, the machine's ``warp``). Ops cover what our kernels
and the lowering's bodies use; anything else is an error naming it. Floats are numpy scalars
of their MLIR type, ``math.fma`` rounds once from f64. A test helper, not part of the
compiler: slow (Python per op per thread), so small shapes.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Generator
from typing import Any

import numpy as np
from mlir import ir

from max.compiler.lowering import lower_to_linalg
from max.compiler.targets import Target
from max.compiler.targets.nvidia import NVIDIA, NvidiaDescription
from max.dialects.mo import make_context
from max.graph import Graph

WARP = 32
_CMPI = {0: operator.eq, 1: operator.ne, 2: operator.lt, 3: operator.le, 4: operator.gt,
         5: operator.ge, 6: operator.lt, 7: operator.le, 8: operator.gt, 9: operator.ge}
_FLOAT_OPS = {"arith.addf": np.add, "arith.subf": np.subtract, "arith.mulf": np.multiply,
              "arith.divf": np.divide, "arith.maxnumf": np.fmax, "arith.minnumf": np.fmin,
              "arith.maximumf": np.maximum, "arith.minimumf": np.minimum}
_INT_OPS = {"arith.addi": operator.add, "arith.subi": operator.sub,
            "arith.muli": operator.mul, "arith.andi": operator.and_, "arith.ori": operator.or_,
            "arith.xori": operator.xor, "arith.maxsi": max, "arith.minsi": min,
            "arith.shli": operator.lshift, "arith.minui": min, "arith.maxui": max,
            "arith.ceildivui": lambda a, b: -(-a // b)}
_UNARY = {"math.exp": np.exp, "math.sqrt": np.sqrt, "math.rsqrt": lambda x: 1 / np.sqrt(x),
          "arith.negf": np.negative, "math.absf": np.abs, "math.tanh": np.tanh,
          "math.log": np.log, "math.erf": np.vectorize(math.erf)}


def dtype_of(t: ir.Type) -> Any:
    """The numpy dtype of a scalar MLIR type (None: index, a Python int)."""
    text = str(t)
    if text == "index":
        return None
    table = {"f32": np.float32, "f16": np.float16, "f64": np.float64, "i1": np.bool_,
             "i8": np.int8, "i16": np.int16, "i32": np.int32, "i64": np.int64}
    return table[text]


def _element(t: ir.Type) -> ir.Type:
    return ir.ShapedType(t).element_type if isinstance(t, ir.ShapedType) else t


def _cast(value: Any, t: ir.Type) -> Any:
    dt = dtype_of(_element(t))
    if dt is None:
        return int(value)
    if isinstance(t, ir.VectorType):
        return np.asarray(value).astype(dt)
    return dt(value)


def _fcmp(pred: int, a: Any, b: Any) -> Any:
    unordered = np.isnan(a) | np.isnan(b)
    base = {1: a == b, 2: a > b, 3: a >= b, 4: a < b, 5: a <= b, 6: a != b, 7: ~unordered,
            8: a == b, 9: a > b, 10: a >= b, 11: a < b, 12: a <= b, 13: a != b,
            14: unordered}
    if pred == 0:
        return np.zeros_like(unordered)
    if pred == 15:
        return np.ones_like(unordered)
    ordered_result = base[pred] & ~unordered if pred <= 7 and pred != 7 else base[pred]
    return ordered_result | unordered if 8 <= pred <= 13 else ordered_result


def mma_m16n8k16(fragments: dict[int, tuple]) -> dict[int, np.ndarray]:
    """``mma.sync.m16n8k16`` (f16 inputs, f32 accumulators) over a warp: ``fragments`` is
    each lane's (A ``[4, 2]``, B ``[2, 2]``, C ``[2, 2]``); returns each lane's D ``[2, 2]``.

    The fragment layout of the PTX ISA (groupID g = lane / 4, t = lane % 4): A element i
    holds row g (+8 for i in 2, 3, 6, 7), column 2t + i % 2 (+8 for i >= 4); B element i
    holds row 2t + i % 2 (+8 for i >= 2), column g; C/D element i holds row g (+8 for
    i >= 2), column 2t + i % 2. Products of f16 values are exact in f32; the sum is formed
    in f64 and rounded once."""
    a = np.zeros((16, 16), np.float64)
    b = np.zeros((16, 8), np.float64)
    c = np.zeros((16, 8), np.float64)
    for lane, (fa, fb, fc) in fragments.items():
        g, t = lane // 4, lane % 4
        for i, value in enumerate(np.asarray(fa, np.float64).reshape(8)):
            a[g + 8 * (i in (2, 3, 6, 7)), 2 * t + i % 2 + 8 * (i >= 4)] = value
        for i, value in enumerate(np.asarray(fb, np.float64).reshape(4)):
            b[2 * t + i % 2 + 8 * (i >= 2), g] = value
        for i, value in enumerate(np.asarray(fc, np.float64).reshape(4)):
            c[g + 8 * (i >= 2), 2 * t + i % 2] = value
    d = (a @ b + c).astype(np.float32)
    out = {}
    for lane in fragments:
        g, t = lane // 4, lane % 4
        out[lane] = np.array([[d[g, 2 * t], d[g, 2 * t + 1]],
                              [d[g + 8, 2 * t], d[g + 8, 2 * t + 1]]], np.float32)
    return out


class Machine:
    """Runs the host function of a scheduled module on numpy arrays."""

    def __init__(self, module: ir.Module, warp: int = WARP) -> None:
        self.module = module
        self.warp = warp  # lanes that shuffle together: 32 (NVIDIA), 64 (AMD CDNA)

    def run(self, args: list[np.ndarray]) -> None:
        fn = next(op.operation for op in self.module.body.operations
                  if op.operation.name == "func.func" and len(op.operation.regions[0].blocks))
        env: dict[ir.Value, Any] = dict(zip(fn.regions[0].blocks[0].arguments, args))
        for op in fn.regions[0].blocks[0].operations:
            op = op.operation
            if op.name == "gpu.launch":
                self._launch(op, env)
            elif op.name == "gpu.alloc":
                t = ir.MemRefType(op.results[0].type)
                dt = dtype_of(t.element_type)
                fill = np.nan if np.issubdtype(dt, np.floating) else 0
                sizes = iter(int(env[v]) for v in op.operands)  # the symbolic dims' sizes
                shape = [next(sizes) if n == ir.ShapedType.get_dynamic_size() else n
                         for n in t.shape]
                env[op.results[0]] = np.full(shape, fill, dt)
            elif op.name in ("gpu.dealloc", "func.return"):
                continue
            else:
                for _ in self._op(op, env):
                    raise AssertionError(f"{op.name} waits on the host")

    def _global(self, name: str, t: ir.Type) -> np.ndarray:
        """The value of ``memref.global @name`` (a dense constant), as an array."""
        for op in self.module.body.operations:
            op = op.operation
            if op.name == "memref.global" and \
                    ir.StringAttr(op.attributes["sym_name"]).value == name:
                mt = ir.MemRefType(t)
                dt = dtype_of(mt.element_type) or np.int64
                value = np.array(ir.DenseElementsAttr(op.attributes["initial_value"]))
                return np.broadcast_to(value.astype(dt), list(mt.shape)).copy()
        raise KeyError(f"simt: no memref.global @{name}")

    def _launch(self, launch: ir.Operation, env: dict) -> None:
        grid = [int(env[v]) for v in list(launch.operands)[:3]]
        block = [int(env[v]) for v in list(launch.operands)[3:6]]
        assert block[1:] == [1, 1], (grid, block)
        region = launch.regions[0].blocks[0]
        params = list(region.arguments)
        for bx, by, bz in ((x, y, z) for z in range(grid[2]) for y in range(grid[1])
                           for x in range(grid[0])):
            shared = []
            for arg in params[12:]:
                t = ir.MemRefType(arg.type)
                shared.append(np.full(list(t.shape), np.nan, dtype_of(t.element_type)))
            threads = []
            for tx in range(block[0]):
                local = dict(env)
                for arg, value in zip(params, [bx, by, bz, tx, 0, 0, grid[0], grid[1],
                                               grid[2], block[0], 1, 1] + shared):
                    local[arg] = value
                threads.append(self._region(region, local))
            self._schedule(threads)

    def _schedule(self, threads: list[Generator]) -> None:
        """Runs a block's threads: a barrier waits for all, a shuffle for its whole warp.

        A shuffle of ``width`` lanes exchanges within aligned groups of ``width`` lanes of
        the warp; a lane whose partner falls outside its group gets its own value back
        (``gpu.shuffle``'s rule, and the ROCDL lowering's on a 64-lane wavefront)."""
        warp_size = self.warp
        waiting: dict[int, Any] = {}  # thread -> its event, None: still to start/resume
        sends: dict[int, Any] = {i: None for i in range(len(threads))}
        alive = set(range(len(threads)))
        while alive:
            for i in sorted(sends):
                try:
                    waiting[i] = threads[i].send(sends[i])
                except StopIteration:
                    alive.discard(i)
                    waiting.pop(i, None)
            sends = {}
            shuffles = {i for i, e in waiting.items() if e[0] == "shuffle"}
            if shuffles:
                for warp in {i // warp_size for i in shuffles}:
                    lanes = range(warp * warp_size, (warp + 1) * warp_size)
                    assert all(i in shuffles for i in lanes), "a shuffle with idle lanes"
                    values = {i: waiting[i][1] for i in lanes}
                    for i in lanes:
                        _, _, offset, width = waiting.pop(i)
                        assert 0 < width <= warp_size and warp_size % width == 0, width
                        lane = i % warp_size
                        partner = lane ^ offset
                        if partner // width != lane // width:
                            partner = lane
                        sends[i] = values[warp * warp_size + partner]
                continue
            mmas = {i for i, e in waiting.items() if e[0] == "mma"}
            if mmas:
                for warp in {i // warp_size for i in mmas}:
                    lanes = range(warp * warp_size, (warp + 1) * warp_size)
                    assert all(i in mmas for i in lanes), "an mma.sync with idle lanes"
                    fragments = {i % warp_size: waiting.pop(i)[1:] for i in lanes}
                    for lane, d in mma_m16n8k16(fragments).items():
                        sends[warp * warp_size + lane] = d
                continue
            if waiting:
                assert len(waiting) == len(alive), "a barrier some threads never reach"
                sends = dict.fromkeys(waiting)
                waiting = {}

    def _region(self, block: ir.Block, env: dict) -> Generator:
        for op in block.operations:
            op = op.operation
            if op.name in ("gpu.terminator", "scf.yield"):
                return [env[v] for v in op.operands]
            yield from self._op(op, env)
        return []

    def _op(self, op: ir.Operation, env: dict) -> Generator:
        name = op.name
        get = [env[v] for v in op.operands]
        res = op.results
        if name == "arith.constant":
            attr = op.attributes["value"]
            t = res[0].type
            if isinstance(t, ir.VectorType):
                splat = ir.DenseElementsAttr(attr)
                assert splat.is_splat
                one = splat.get_splat_value()  # f16 splats too (no f16 element indexing)
                value = np.full(list(ir.VectorType(t).shape),
                                ir.FloatAttr(one).value if "f" in str(
                                    ir.VectorType(t).element_type) else
                                ir.IntegerAttr(one).value)
            elif isinstance(attr, ir.FloatAttr) or "f" in str(t):
                value = ir.FloatAttr(attr).value
            else:
                value = ir.IntegerAttr(attr).value
            env[res[0]] = _cast(value, t)
        elif name in _FLOAT_OPS:
            env[res[0]] = _cast(_FLOAT_OPS[name](*get), res[0].type)
        elif name in _INT_OPS:
            env[res[0]] = _cast(_INT_OPS[name](*get), res[0].type)
        elif name in ("arith.divui", "arith.divsi"):
            env[res[0]] = _cast(int(get[0]) // int(get[1]), res[0].type)
        elif name in ("arith.remui", "arith.remsi"):
            env[res[0]] = _cast(int(get[0]) % int(get[1]), res[0].type)
        elif name in _UNARY:
            env[res[0]] = _cast(_UNARY[name](get[0]), res[0].type)
        elif name == "math.fma":
            a, b, c = (np.float64(x) if np.ndim(x) == 0 else x.astype(np.float64) for x in get)
            env[res[0]] = _cast(a * b + c, res[0].type)
        elif name == "arith.cmpi":
            pred = ir.IntegerAttr(op.attributes["predicate"]).value
            env[res[0]] = np.bool_(_CMPI[pred](get[0], get[1]))
        elif name == "arith.cmpf":
            pred = ir.IntegerAttr(op.attributes["predicate"]).value
            env[res[0]] = _fcmp(pred, get[0], get[1])
        elif name == "arith.select":
            env[res[0]] = _cast(np.where(get[0], get[1], get[2]), res[0].type) \
                if np.ndim(get[1]) else (get[1] if get[0] else get[2])
        elif name == "arith.bitcast":
            env[res[0]] = np.asarray(get[0]).view(dtype_of(_element(res[0].type)))[()]
        elif name in ("arith.extui", "arith.shrui"):  # unsigned: the operand's bits as is
            bits = int(get[0]) % (1 << ir.IntegerType(_element(op.operands[0].type)).width)
            if name == "arith.shrui":
                bits >>= int(get[1])
            out = ir.IntegerType(_element(res[0].type)).width
            if out > 1 and bits >> (out - 1):  # the result's top bit: a negative signed value
                bits -= 1 << out
            env[res[0]] = _cast(bits, res[0].type)
        elif name in ("arith.extf", "arith.truncf", "arith.sitofp", "arith.extsi",
                      "arith.trunci", "arith.index_cast", "arith.fptosi",
                      "arith.uitofp"):
            env[res[0]] = _cast(get[0], res[0].type)
        elif name == "memref.subview":  # a strided view (static offsets, sizes, strides)
            dyn = ir.ShapedType.get_dynamic_size()
            values = iter(int(v) for v in get[1:])
            parts = [[next(values) if x == dyn else x
                      for x in ir.DenseI64ArrayAttr(op.attributes[key])]
                     for key in ("static_offsets", "static_sizes", "static_strides")]
            view = get[0][tuple(slice(o, o + n * st, st) for o, n, st in zip(*parts))]
            dropped = len(view.shape) - ir.MemRefType(res[0].type).rank
            env[res[0]] = view.reshape(ir.MemRefType(res[0].type).shape) if dropped else view
        elif name == "memref.reshape":
            env[res[0]] = get[0].reshape(tuple(int(n) for n in get[1]))
        elif name == "memref.alloc":  # host memory (a reshape's shape)
            t = ir.MemRefType(res[0].type)
            sizes = iter(int(v) for v in get)
            env[res[0]] = np.zeros([next(sizes) if n == ir.ShapedType.get_dynamic_size()
                                    else n for n in t.shape], dtype_of(t.element_type) or
                                   np.int64)
        elif name == "memref.dealloc":
            pass
        elif name == "memref.get_global":
            env[res[0]] = self._global(ir.FlatSymbolRefAttr(op.attributes["name"]).value,
                                       res[0].type)
        elif name == "memref.dim":
            env[res[0]] = get[0].shape[int(get[1])]
        elif name == "memref.load":
            env[res[0]] = get[0][tuple(int(i) for i in get[1:])]
        elif name == "memref.store":
            get[1][tuple(int(i) for i in get[2:])] = get[0]
        elif name == "vector.load":
            idx = [int(i) for i in get[1:]]
            n = ir.VectorType(res[0].type).shape[0]
            env[res[0]] = get[0][tuple(idx[:-1]) + (slice(idx[-1], idx[-1] + n),)].copy()
        elif name == "vector.store":
            idx = [int(i) for i in get[2:]]
            n = len(get[0])
            get[1][tuple(idx[:-1]) + (slice(idx[-1], idx[-1] + n),)] = get[0]
        elif name == "vector.extract":
            pos = list(ir.DenseI64ArrayAttr(op.attributes["static_position"]))
            env[res[0]] = get[0][tuple(pos)]
        elif name == "vector.from_elements":
            shape = list(ir.VectorType(res[0].type).shape)
            env[res[0]] = _cast(np.array(get).reshape(shape), res[0].type)
        elif name == "vector.broadcast":
            env[res[0]] = _cast(np.full(list(ir.VectorType(res[0].type).shape), get[0]),
                                res[0].type)
        elif name == "memref.collapse_shape":  # each result dim: the product of its group
            groups = [[int(ir.IntegerAttr(i).value) for i in g]
                      for g in ir.ArrayAttr(op.attributes["reassociation"])]
            env[res[0]] = get[0].reshape([int(np.prod([get[0].shape[i] for i in g]))
                                          for g in groups])
        elif name == "memref.expand_shape":
            sizes = iter(int(v) for v in get[1:])  # its symbolic output sizes
            env[res[0]] = get[0].reshape([next(sizes, -1) if n == ir.ShapedType.get_dynamic_size()
                                          else n for n in ir.MemRefType(res[0].type).shape])
        elif name == "gpu.barrier":
            yield ("barrier",)
        elif name == "nvgpu.mma.sync":  # a warp collective: every lane's fragments
            env[res[0]] = yield ("mma", np.asarray(get[0]), np.asarray(get[1]),
                                 np.asarray(get[2]))
        elif name == "vector.to_elements":
            for r, v in zip(res, np.asarray(get[0]).reshape(-1)):
                env[r] = v
        elif name == "vector.insert":
            pos = list(ir.DenseI64ArrayAttr(op.attributes["static_position"]))
            whole = np.array(get[1], copy=True)
            whole[tuple(pos)] = get[0]
            env[res[0]] = whole
        elif name == "gpu.shuffle":
            assert "xor" in str(op.attributes["mode"]), op.attributes["mode"]
            value = yield ("shuffle", get[0], int(get[1]), int(get[2]))
            env[res[0]] = value
            env[res[1]] = np.bool_(True)
        elif name == "scf.for":
            lb, ub, step, *carried = get
            body = op.regions[0].blocks[0]
            args = list(body.arguments)
            for iv in range(int(lb), int(ub), int(step)):
                env[args[0]] = iv
                for a, v in zip(args[1:], carried):
                    env[a] = v
                carried = yield from self._region(body, env)
            for r, v in zip(res, carried):
                env[r] = v
        elif name == "scf.if":
            region = op.regions[0] if get[0] else op.regions[1]
            out = yield from self._region(region.blocks[0], env) if len(region.blocks) else []
            for r, v in zip(res, out or []):
                env[r] = v
        else:
            raise NotImplementedError(f"simt: no rule for {name}")


def scheduled(graph: Graph, target: Target = NVIDIA,
              options: dict[str, Any] | None = None) -> ir.Module:
    """``graph`` through a GPU target (NVIDIA, its default options) up to
    ``mo-gpu-check-host`` (kernels inline)."""
    context = make_context()
    with context:
        m = ir.Module.parse(str(graph._module))
        lower_to_linalg(m)
        target.run(m, until="mo-gpu-check-host",
                   **(NvidiaDescription().options() if options is None else options))
    return m


def run_graph(graph: Graph, inputs: list[np.ndarray],
              outputs: list[tuple[tuple[int, ...], Any]], target: Target = NVIDIA,
              options: dict[str, Any] | None = None, warp: int = WARP) -> list[np.ndarray]:
    """Runs ``graph``'s kernels on ``inputs``; returns the outputs (filled with 7 first).
    ``target`` / ``options``: as :func:`scheduled`; ``warp``: the lanes a shuffle spans."""
    module = scheduled(graph, target, options)
    outs = [np.full(shape, 7, dtype) for shape, dtype in outputs]
    with module.context, np.errstate(all="ignore"):
        Machine(module, warp).run([np.ascontiguousarray(a) for a in inputs] + outs)
    return outs
