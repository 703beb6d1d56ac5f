"""``dequantize`` and ``qmatmul``: GGUF block-quantized ``uint8`` weights (``mo.dequantize``,
``mo.qmatmul``) and MAX's packed GPTQ weights (``mo.gptq_dequantize``, ``mo.gptq_qmatmul`` and
their ``_perm`` forms; layout in ``max.dialects.mo.opdefs.gptq``)."""

from __future__ import annotations

from typing import Any

from max.dialects.mo.dim import Dim, StaticDim
from max.dtype import DType
from max.graph.quantization import QuantizationConfig, QuantizationEncoding
from max.graph.value import TensorValue

from max.graph.ops._promotion import as_strong, emit, same_device

# The encodings with a CPU decoder (GGUF layouts); GPTQ has its own (see _gptq_*).
SUPPORTED = (QuantizationEncoding.Q4_0, QuantizationEncoding.Q4_1, QuantizationEncoding.Q8_0,
             QuantizationEncoding.Q4_K, QuantizationEncoding.Q5_K, QuantizationEncoding.Q6_K)
GPTQ = QuantizationEncoding.GPTQ


def _shape(x: TensorValue) -> str:
    return "[" + ", ".join(str(d) for d in x.shape) + "]"


def _check_blocks(op: str, encoding: Any, x: TensorValue, name: str) -> int:
    """Validates a quantized operand; returns the number of elements of one of its rows."""
    if not isinstance(encoding, QuantizationEncoding):
        raise TypeError(f"{op}: encoding must be a QuantizationEncoding, got {encoding!r}")
    if encoding not in SUPPORTED:
        raise ValueError(f"{op}: encoding {encoding.name} is not supported (supported: "
                         f"{', '.join(e.name for e in (*SUPPORTED, GPTQ))})")
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


def _gptq_group(op: str, config: Any) -> int:
    """The group size of a GPTQ config; errors for what the packed layout cannot hold."""
    if config is None:
        raise ValueError(f"{op}: gptq needs a QuantizationConfig(quant_method='gptq', bits=4, "
                         "group_size=..., desc_act=..., sym=True)")
    if not isinstance(config, QuantizationConfig):
        raise TypeError(f"{op}: config must be a QuantizationConfig or None, got {config!r}")
    if config.quant_method.lower() != "gptq":
        raise ValueError(f"{op}: encoding gptq needs quant_method 'gptq', got "
                         f"{config.quant_method!r}")
    if config.bits != 4:
        raise ValueError(f"{op}: gptq with bits={config.bits} is not supported (the packed "
                         "layout holds 4-bit codes, eight to a 32-bit word)")
    if not config.sym:
        raise ValueError(f"{op}: gptq with sym=False is not supported (the packed layout has "
                         "no zero points: symmetric, zero point 8)")
    g = config.group_size
    if type(g) is not int or g <= 0 or g % 8:
        raise ValueError(f"{op}: gptq group_size={g!r} must be a positive multiple of 8")
    return g


def _gptq_perm(op: str, config: QuantizationConfig, perm: Any, k: int) -> TensorValue | None:
    """The checked perm operand (int32/int64 [K]) that ``desc_act`` asks for, or None."""
    if not config.desc_act:
        if perm is not None:
            raise ValueError(f"{op}: gptq got a perm_idx but config.desc_act is False")
        return None
    if perm is None:
        raise ValueError(f"{op}: gptq with desc_act=True needs perm_idx (int32 [{k}], "
                         "argsort of the checkpoint's g_idx)")
    p = as_strong(op, perm, "perm_idx")
    if p.dtype not in (DType.int32, DType.int64) or p.rank != 1 or p.shape[0] != Dim(k):
        raise ValueError(f"{op}: gptq perm_idx must be int32 or int64 of shape [{k}] (K), got "
                         f"{p.dtype.name} {_shape(p)}")
    return p


def _gptq_packed(op: str, w: TensorValue, group: int, k: int | None) -> tuple[int, int]:
    """(K, N) of a packed GPTQ weight; ``k``: the K it must hold (qmatmul's lhs), if known."""
    where = f"gptq packed weight of shape {_shape(w)} and dtype {w.dtype.name}"
    if w.dtype != DType.uint8:
        raise ValueError(f"{op}: {where}: must be uint8")
    dims = [int(d) if isinstance(d, StaticDim) else None for d in w.shape]
    if w.rank != 2 or None in dims:
        raise ValueError(f"{op}: {where}: must be rank 2 with static dims [K/2 + 2K/group_size,"
                         " N]")
    rows, n = dims
    assert rows is not None and n is not None
    group_rows = group // 2 + 2
    if k is not None:
        want = k // 2 + 2 * (k // group)
        if rows != want:
            raise ValueError(f"{op}: {where}: K = {k} at group_size {group} needs {want} rows "
                             f"(K/2 of codes, 2K/{group} of float16 scales), got {rows}")
        return k, n
    if rows == 0 or rows % group_rows:
        raise ValueError(f"{op}: {where}: the rows must be whole groups of {group_rows} "
                         f"(group_size {group}: K/2 rows of codes, 2K/{group} of scales)")
    return rows // group_rows * group, n


def dequantize(encoding: QuantizationEncoding, quantized: TensorValue, *,
               config: QuantizationConfig | None = None,
               perm_idx: TensorValue | None = None) -> TensorValue:
    """Dequantizes a quantized tensor to floating point.

    For the GGUF encodings ``quantized`` is ``uint8`` whose last dim holds whole blocks in the
    encoding's byte layout; the result is float32 with ``elements_per_block`` elements for
    each ``block_size`` bytes, equal bit for bit to the ``gguf`` package's dequantization.
    Supports Q4_0, Q4_1, Q8_0, Q4_K, Q5_K and Q6_K.

    For GPTQ, ``quantized`` is MAX's packed ``uint8 [K/2 + 2K/group_size, N]`` operand (the
    bytes of AutoGPTQ's ``qweight`` ``int32 [K/8, N]``, then its ``float16`` ``scales``
    ``[K/group_size, N]``) and the result is the float32 ``[K, N]`` weight
    ``scales[k // group_size] * (code[k] - 8)``. ``config`` (keyword, an extension: MAX has no
    GPTQ dequantize) gives the group size; with ``desc_act`` row ``p`` is built from code row
    ``perm_idx[p]``, the weight that ``qmatmul`` multiplies ``lhs[..., perm_idx]`` by.

    Args:
        encoding: The quantization encoding to use.
        quantized: The quantized tensor to dequantize.
        config: GPTQ only: its QuantizationConfig (bits=4, sym=True).
        perm_idx: GPTQ with ``desc_act`` only: int32/int64 ``[K]``.

    Returns:
        The dequantized result (a floating point tensor).

    Raises:
        ValueError: If the encoding or config is not supported, or ``quantized`` does not hold
            whole blocks (GGUF) or groups (GPTQ).
    """
    x = as_strong("dequantize", quantized, "quantized")
    if encoding is GPTQ:
        group = _gptq_group("dequantize", config)
        k, n = _gptq_packed("dequantize", x, group, None)
        p = _gptq_perm("dequantize", config, perm_idx, k)  # type: ignore[arg-type]
        name = "mo.gptq_dequantize" if p is None else "mo.gptq_dequantize_perm"
        operands = [x] if p is None else [x, p]
        device = same_device("dequantize", operands)
        return emit(name, operands, DType.float32, [Dim(k), Dim(n)], device,
                    {"group_size": group})
    k = _check_blocks("dequantize", encoding, x, "quantized")
    return emit("mo.dequantize", [x], DType.float32, [*x.shape[:-1], Dim(k)], x.device,
                {"encoding": encoding.name})


def qmatmul(encoding: QuantizationEncoding, config: QuantizationConfig | None,
            lhs: TensorValue, *rhs: TensorValue) -> TensorValue:
    """Performs matrix multiplication between floating point and quantized tensors.

    Beware that, compared to a regular matmul op, this one expects the ``rhs`` value to be
    transposed: for the GGUF encodings ``rhs`` is ``[N, K / elements_per_block * block_size]``
    ``uint8``, row ``n`` holding the blocks of weight row ``n``, and the result is
    ``lhs @ transpose(W)`` of shape ``[..., M, N]`` where ``W`` is ``dequantize(encoding, rhs)``.

    For GPTQ (as MAX's) ``rhs`` is the packed ``uint8 [K/2 + 2K/group_size, N]`` weight (K
    down the rows, not transposed), ``config`` is required (bits=4, sym=True) and the result
    is ``lhs @ dequantize(GPTQ, rhs[0], config=config)``. With ``config.desc_act`` the second
    ``rhs`` is ``perm_idx`` (int32/int64 ``[K]``) and ``lhs`` is expected already permuted
    (``lhs[..., perm_idx]``, as MAX's GPTQLinear passes it).

    The weight is dequantized tile by tile inside the matmul, never whole. The last two
    dimensions in ``lhs`` are treated as matrices; any remaining dimensions in ``lhs`` are
    broadcast dimensions. The lhs stays float32 (it is not quantized), so the result is the
    float32 matmul by the dequantized weight.

    Args:
        encoding: The quantization encoding to use.
        config: Quantization parameters (GPTQ's); the GGUF encodings carry theirs in their
            blocks and do not read it.
        lhs: The non-quantized, left-hand-side of the matmul (float32).
        *rhs: The transposed and quantized right-hand-side of the matmul (one rank-2
            ``uint8`` tensor), and for GPTQ with ``desc_act`` the permutation ``perm_idx``.

    Returns:
        The dequantized result (a floating point tensor).

    Raises:
        ValueError: If the encoding or config is not supported, an operand has the wrong
            dtype or rank, or the K dims differ.
    """
    op = "qmatmul"
    a = as_strong(op, lhs, "lhs")
    if encoding is GPTQ:
        return _gptq_qmatmul(config, a, rhs)
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


def _gptq_qmatmul(config: Any, a: TensorValue, rhs: tuple[TensorValue, ...]) -> TensorValue:
    op = "qmatmul"
    group = _gptq_group(op, config)
    if len(rhs) not in (1, 2):
        raise ValueError(f"{op}: gptq takes the packed weight and, with desc_act, perm_idx; "
                         f"got {len(rhs)} rhs tensors")
    w = as_strong(op, rhs[0], "rhs")
    shapes = f"lhs {_shape(a)}, gptq rhs {_shape(w)}"
    if a.dtype != DType.float32:
        raise ValueError(f"{op}: lhs must be float32, got {a.dtype.name} ({shapes})")
    if a.rank < 2:
        raise ValueError(f"{op}: lhs must have rank >= 2 ({shapes})")
    last = a.shape[-1]
    if not isinstance(last, StaticDim):
        raise ValueError(f"{op}: gptq needs a static K (lhs last dim) ({shapes})")
    k = int(last)
    if k % group:
        raise ValueError(f"{op}: gptq K = {k} (lhs last dim) is not a multiple of group_size "
                         f"{group} ({shapes})")
    _, n = _gptq_packed(op, w, group, k)
    p = _gptq_perm(op, config, rhs[1] if len(rhs) == 2 else None, k)
    operands = [a, w] if p is None else [a, w, p]
    device = same_device(op, operands)
    name = "mo.gptq_qmatmul" if p is None else "mo.gptq_qmatmul_perm"
    return emit(name, operands, DType.float32, [*a.shape[:-1], Dim(n)], device,
                {"group_size": group})
