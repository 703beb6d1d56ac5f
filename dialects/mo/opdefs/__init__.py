"""One definition per MO op, read by every layer.

``OPS`` maps each MO op name (``"mo.add"``) to its :class:`OpDef`: operand names, attributes,
the result-type rule on MO types and the numpy reference. The graph builders call the rule
(``max.graph.ops._promotion.emit``), the verifier (``max.dialects.mo.verify``, pass
``mo-verify``) re-checks every op of a module with it, the constant folder evaluates the
reference, and tests check that ``mo.irdl.mlir``, the lowering rules and the numeric test rows
cover exactly these ops.
"""

from __future__ import annotations

from max.dialects.mo.opdefs import (
    buffers,
    conv,
    custom,
    effects,
    elementwise,
    flow,
    gptq,
    indexing,
    quantization,
    reduction,
    resize,
    sequence,
    shape,
)
from max.dialects.mo.opdefs.base import (
    ELEMENTS,
    FLOAT,
    INT,
    INTS,
    STR,
    SYMBOL,
    AttrDef,
    OpDef,
    TensorSig,
    TypeRuleError,
)

OPS: dict[str, OpDef] = {d.name: d for d in (*elementwise.defs(), *shape.defs(),
                                               *reduction.defs(), *indexing.defs(),
                                               *quantization.defs(), *sequence.defs(),
                                               *conv.defs(), *resize.defs(), *flow.defs(),
                                               *buffers.defs(), *effects.defs(),
                                               *gptq.defs(),
                                               *custom.defs())}

__all__ = ["ELEMENTS", "FLOAT", "INT", "INTS", "OPS", "STR", "SYMBOL", "AttrDef", "OpDef",
           "TensorSig", "TypeRuleError"]
