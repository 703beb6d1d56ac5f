"""``dequantize`` and ``qmatmul``: GGUF block-quantized ``uint8`` weights (``mo.dequantize``,
``mo.qmatmul``)."""

from __future__ import annotations

from typing import Any

from max.dialects.mo.dim import Dim, StaticDim
from max.dtype import DType
from max.graph.quantization import QuantizationConfig, QuantizationEncoding
from max.graph.value import TensorValue

from max.graph.ops._promotion import as_strong, emit, same_device

# The encodings with a CPU decoder (GGUF layouts); GPTQ is not among them.
SUPPORTED = (QuantizationEncoding.Q4_0, QuantizationEncoding.Q4_1, QuantizationEncoding.Q8_0,
             QuantizationEncoding.Q4_K, QuantizationEncoding.Q5_K, QuantizationEncoding.Q6_K)


def _shape(x: TensorValue) -> str:
    return "[" + ", ".join(str(d) for d in x.shape) + "]"


def _check_blocks(op: str, encoding: Any, x: TensorValue, name: str) -> int:
    """Validates a quantized operand; returns the number of elements of one of its rows."""
    if not isinstance(encoding, QuantizationEncoding):
        raise TypeError(f"{op}: encoding must be a QuantizationEncoding, got {encoding!r}")
    if encoding not in SUPPORTED:
        raise ValueError(f"{op}: encoding {encoding.name} is not supported (supported: "
                         f"{', '.join(e.name for e in SUPPORTED)})")
    per_block, nbytes = encoding.elements_per_block, encoding.block_size
    where = f"{encoding.name} {name} of shape {_shape(x)} and dtype {x.dtype.name}"
    if x.dtype != DType.uint8:
        raise ValueError(f"{op}: {where}: quantized blocks must be uint8")
    if x.rank < 1:
        raise ValueError(f"{op}: {where}: a quantized tensor needs a last dim of blocks")
    last = x.shape[-1]
    if not isinstance(last, StaticDim) or int(last) % nbytes:
        raise ValueError(f"{op}: {where}: the last dim must be a static whole number of "
                         f"{nbytes}-byte blocks ({per_block} elements each)")
    return int(last) // nbytes * per_block


def dequantize(encoding: QuantizationEncoding, quantized: TensorValue) -> TensorValue:
    """Dequantizes a quantized tensor to floating point.

    ``quantized`` is ``uint8`` whose last dim holds whole blocks in the encoding's GGUF byte
    layout; the result is float32 with ``elements_per_block`` elements for each
    ``block_size`` bytes, equal bit for bit to the ``gguf`` package's dequantization.
    Supports Q4_0, Q4_1, Q8_0, Q4_K, Q5_K and Q6_K.

    Args:
        encoding: The quantization encoding to use.
        quantized: The quantized tensor to dequantize.

    Returns:
        The dequantized result (a floating point tensor).

    Raises:
        ValueError: If the encoding is not supported, or ``quantized`` is not ``uint8`` with a
            static last dim of whole blocks.
    """
    x = as_strong("dequantize", quantized, "quantized")
    k = _check_blocks("dequantize", encoding, x, "quantized")
    return emit("mo.dequantize", [x], DType.float32, [*x.shape[:-1], Dim(k)], x.device,
                {"encoding": encoding.name})


def qmatmul(encoding: QuantizationEncoding, config: QuantizationConfig | None,
            lhs: TensorValue, *rhs: TensorValue) -> TensorValue:
    """Performs matrix multiplication between floating point and quantized tensors.

    Beware that, compared to a regular matmul op, this one expects the ``rhs`` value to be
    transposed: ``rhs`` is ``[N, K / elements_per_block * block_size]`` ``uint8``, row ``n``
    holding the blocks of weight row ``n``, and the result is ``lhs @ transpose(W)`` of shape
    ``[..., M, N]`` where ``W`` is ``dequantize(encoding, rhs)``. The weight is dequantized
    tile by tile inside the matmul, never whole. The last two dimensions in ``lhs`` are
    treated as matrices; any remaining dimensions in ``lhs`` are broadcast dimensions. The lhs
    stays float32 (it is not quantized), so the result is the float32 matmul by the
    dequantized weight.

    Args:
        encoding: The quantization encoding to use.
        config: Quantization parameters (GPTQ's); the GGUF encodings carry theirs in their
            blocks and do not read it.
        lhs: The non-quantized, left-hand-side of the matmul (float32).
        *rhs: The transposed and quantized right-hand-side of the matmul (one rank-2
            ``uint8`` tensor for the GGUF encodings).

    Returns:
        The dequantized result (a floating point tensor).

    Raises:
        ValueError: If the encoding is not supported, an operand has the wrong dtype or rank,
            or the K dims differ.
    """
    op = "qmatmul"
    a = as_strong(op, lhs, "lhs")
    if len(rhs) != 1:
        shapes = ", ".join(_shape(as_strong(op, r, "rhs")) for r in rhs)
        raise ValueError(f"{op}: {getattr(encoding, 'name', encoding)} takes one rhs tensor, "
                         f"got {len(rhs)} ({shapes})")
    if config is not None and not isinstance(config, QuantizationConfig):
        raise TypeError(f"{op}: config must be a QuantizationConfig or None, got {config!r}")
    w = as_strong(op, rhs[0], "rhs")
    k = _check_blocks(op, encoding, w, "rhs")
    shapes = f"lhs {_shape(a)}, {encoding.name} rhs {_shape(w)}"
    if a.dtype != DType.float32:
        raise ValueError(f"{op}: lhs must be float32, got {a.dtype.name} ({shapes})")
    if a.rank < 2 or w.rank != 2:
        raise ValueError(f"{op}: lhs must have rank >= 2 and rhs rank 2 ({shapes})")
    if not isinstance(w.shape[0], StaticDim):
        raise ValueError(f"{op}: the rhs rows (N) must be a static dim ({shapes})")
    if a.shape[-1] != Dim(k):
        raise ValueError(f"{op}: the K dims differ: lhs has {a.shape[-1]}, rhs rows hold {k} "
                         f"elements ({shapes})")
    device = same_device(op, [a, w])
    return emit("mo.qmatmul", [a, w], DType.float32, [*a.shape[:-1], w.shape[0]], device,
                {"encoding": encoding.name})
