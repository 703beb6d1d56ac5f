"""One numeric test row (or a few) per MO op: inputs, attributes, and the expected result
computed independently (PyTorch, or numpy written out differently from the op's reference).

``tests/dialects/test_opdefs.py`` checks that every op definition has a row here;
``test_mo_op_rows.py`` runs each row through the compiler and through the op's reference.
A family of ops may keep its rows in a module ``rows_FAMILY.py`` beside this one (a ``ROWS``
dict of the same form, importing :class:`Row` from here): they are merged in at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from max.dtype import DType

RNG = np.random.default_rng(7)


@dataclass(frozen=True)
class Row:
    inputs: tuple[np.ndarray, ...]
    expected: Callable[..., np.ndarray]
    attrs: dict[str, Any] = field(default_factory=dict)
    # For ops whose result type is not inferred (reshape, cast, ...): (dtype, shape).
    result: tuple[DType, tuple[int, ...]] | None = None
    rtol: float = 1e-5
    atol: float = 1e-6
    # For ops with subgraph bodies (rows_flow.py): builds the op with its builder from the
    # graph inputs (a bare op cannot be emitted without the functions it names).
    build: Callable[..., Any] | None = None
    # Inputs passed as BufferType (mutable, updated in place). For an op without a result
    # (a store) `expected` is the first buffer's contents after the op.
    buffers: tuple[int, ...] = ()


def f32(*shape: int, lo: float = -3.0, hi: float = 3.0) -> np.ndarray:
    return RNG.uniform(lo, hi, shape).astype(np.float32)


def i32(*shape: int, lo: int = -20, hi: int = 20) -> np.ndarray:
    return RNG.integers(lo, hi, shape).astype(np.int32)


def bools(*shape: int) -> np.ndarray:
    return RNG.integers(0, 2, shape).astype(np.bool_)


def t(fn: Callable[..., torch.Tensor]) -> Callable[..., np.ndarray]:
    """A torch function on numpy arrays."""
    return lambda *xs: fn(*(torch.from_numpy(np.array(x)) for x in xs)).numpy()


def _special(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x.reshape(-1)[:3] = [np.inf, -np.inf, np.nan]
    return x


def _halves() -> np.ndarray:
    return np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49, -3.7], np.float32)


_A, _B = f32(3, 4), f32(3, 4)
_ROW_BCAST = f32(1, 4)
_POS = f32(3, 4, lo=0.1, hi=4.0)

ROWS: dict[str, list[Row]] = {
    # elementwise unary
    "mo.abs": [Row((_A,), t(torch.abs)), Row((i32(5),), lambda x: np.where(x < 0, -x, x))],
    "mo.cos": [Row((_A,), t(torch.cos))],
    "mo.erf": [Row((_A,), t(torch.erf))],
    "mo.exp": [Row((_A,), t(torch.exp))],
    "mo.floor": [Row((_A,), t(torch.floor))],
    "mo.gelu": [
        Row((_A,), t(lambda x: torch.nn.functional.gelu(x)), {"approximate": "none"}),
        Row((_A,), t(lambda x: torch.nn.functional.gelu(x, approximate="tanh")),
            {"approximate": "tanh"}),
        Row((_A,), t(lambda x: x * torch.sigmoid(1.702 * x)), {"approximate": "quick"}),
    ],
    "mo.is_inf": [Row((_special(_A),), t(torch.isinf))],
    "mo.is_nan": [Row((_special(_A),), t(torch.isnan))],
    "mo.log": [Row((_POS,), t(torch.log))],
    "mo.log1p": [Row((f32(3, 4, lo=-0.9, hi=3.0),), t(torch.log1p))],
    "mo.logical_not": [Row((bools(3, 4),), t(torch.logical_not))],
    "mo.negate": [Row((_A,), t(torch.neg)), Row((i32(5),), lambda x: 0 - x)],
    "mo.relu": [Row((_A,), t(torch.relu)), Row((i32(6),), t(torch.relu))],
    "mo.round": [Row((_halves(),), t(torch.round))],  # halves to even
    "mo.rsqrt": [Row((_POS,), t(torch.rsqrt))],
    "mo.sigmoid": [Row((_A,), t(torch.sigmoid))],
    "mo.silu": [Row((_A,), t(torch.nn.functional.silu))],
    "mo.sin": [Row((_A,), t(torch.sin))],
    "mo.sqrt": [Row((_POS,), t(torch.sqrt))],
    "mo.tanh": [Row((_A,), t(torch.tanh))],
    "mo.trunc": [Row((_A,), t(torch.trunc))],
    "mo.cast": [
        Row((_A,), t(lambda x: x.to(torch.int32)), result=(DType.int32, (3, 4))),
        Row((i32(7),), t(lambda x: x.to(torch.float64)), result=(DType.float64, (7,))),
        Row((i32(7, lo=-2, hi=3),), t(lambda x: x.to(torch.bool)), result=(DType.bool, (7,))),
    ],
    # elementwise binary (broadcasting a row against a matrix)
    "mo.add": [Row((_A, _ROW_BCAST), t(torch.add))],
    "mo.sub": [Row((_A, _ROW_BCAST), t(torch.sub))],
    "mo.mul": [Row((_A, _B), t(torch.mul)), Row((i32(4), i32(4)), t(torch.mul))],
    "mo.div": [
        Row((_A, _POS), t(torch.true_divide)),
        # integers: Python's floor division
        Row((i32(8), i32(8, lo=1, hi=5) * np.array([1, -1] * 4, np.int32)),
            lambda a, b: np.array([x // y for x, y in zip(a.tolist(), b.tolist())], np.int32)),
    ],
    "mo.mod": [
        Row((_A, _POS), t(torch.remainder)),
        Row((i32(8), i32(8, lo=1, hi=5) * np.array([1, -1] * 4, np.int32)),
            lambda a, b: np.array([x % y for x, y in zip(a.tolist(), b.tolist())], np.int32)),
    ],
    "mo.pow": [Row((_POS, _A), t(torch.pow), rtol=1e-4)],
    "mo.max": [Row((_A, _B), t(torch.maximum))],
    "mo.min": [Row((_A, _B), t(torch.minimum))],
    "mo.equal": [Row((i32(3, 4, lo=0, hi=3), i32(1, 4, lo=0, hi=3)), t(torch.eq))],
    "mo.not_equal": [Row((i32(3, 4, lo=0, hi=3), i32(1, 4, lo=0, hi=3)), t(torch.ne))],
    "mo.greater": [Row((_A, _B), t(torch.gt))],
    "mo.greater_equal": [Row((i32(3, 4, lo=0, hi=3), i32(3, 4, lo=0, hi=3)), t(torch.ge))],
    "mo.logical_and": [Row((bools(3, 4), bools(3, 4)), t(torch.logical_and))],
    "mo.logical_or": [Row((bools(3, 4), bools(3, 4)), t(torch.logical_or))],
    "mo.logical_xor": [Row((bools(3, 4), bools(3, 4)), t(torch.logical_xor))],
    "mo.where": [Row((bools(3, 4), _A, _ROW_BCAST), t(torch.where))],
    # shapes and data movement
    "mo.matmul": [
        Row((f32(3, 5), f32(5, 4)), t(torch.matmul), rtol=1e-5, atol=1e-5),
        Row((f32(2, 3, 5), f32(2, 5, 4)), t(torch.bmm), rtol=1e-5, atol=1e-5),
    ],
    "mo.reshape": [Row((f32(3, 4),), t(lambda x: x.view(2, 6)), result=(DType.float32, (2, 6)))],
    "mo.transpose": [Row((f32(2, 3, 4),), t(lambda x: x.permute(2, 0, 1)),
                         {"permutation": [2, 0, 1]})],
    "mo.broadcast_to": [Row((f32(3, 1),), t(lambda x: x.expand(2, 3, 4)),
                            result=(DType.float32, (2, 3, 4)))],
    "mo.concat": [Row((f32(2, 3), f32(4, 3)), t(lambda a, b: torch.cat([a, b], 0)),
                      {"axis": 0})],
    "mo.slice": [
        Row((f32(6, 5),), lambda x: x[[1, 3], :][:, [4, 3, 2, 1, 0]],
            {"starts": [1, 2**63 - 1], "stops": [4, -(2**63)], "steps": [2, -1]},
            result=(DType.float32, (2, 5))),
    ],
    "mo.gather": [Row((f32(4, 3), np.array([[3, 0], [-1, 1]], np.int64)),
                      lambda x, i: x[[[3, 0], [3, 1]]], {"axis": 0})],
    # reductions and normalizations
    "mo.reduce_sum": [Row((_A,), t(lambda x: x.sum(1, keepdim=True)), {"axis": 1})],
    "mo.reduce_mean": [Row((_A,), t(lambda x: x.mean(0, keepdim=True)), {"axis": 0})],
    "mo.reduce_max": [Row((_A,), t(lambda x: x.amax(1, keepdim=True)), {"axis": 1})],
    "mo.reduce_min": [Row((i32(3, 4),), t(lambda x: x.amin(0, keepdim=True)), {"axis": 0})],
    "mo.argmax": [Row((_A,), t(lambda x: x.argmax(1, keepdim=True)), {"axis": 1})],
    "mo.argmin": [Row((_A,), t(lambda x: x.argmin(0, keepdim=True)), {"axis": 0})],
    "mo.softmax": [Row((_A,), t(lambda x: torch.softmax(x, 1)), {"axis": 1})],
    "mo.logsoftmax": [Row((_A,), t(lambda x: torch.log_softmax(x, 0)), {"axis": 0})],
    "mo.layer_norm": [
        Row((f32(3, 4), f32(4), f32(4)),
            t(lambda x, g, b: torch.nn.functional.layer_norm(x, (4,), g, b, 1e-5)),
            {"epsilon": 1e-5}, atol=1e-5),
    ],
    # no inputs: the value is the attribute (built by ops.constant in the test)
    "mo.constant": [Row((), lambda: np.arange(6, dtype=np.int32).reshape(2, 3) * 7,
                        result=(DType.int32, (2, 3)))],
}



def _family_rows() -> None:
    import importlib
    from pathlib import Path

    for path in sorted(Path(__file__).parent.glob("rows_*.py")):
        rows = importlib.import_module(path.stem).ROWS
        clash = set(rows) & set(ROWS)
        assert not clash, f"{path.name}: rows for {sorted(clash)} are defined twice"
        ROWS.update(rows)


_family_rows()
