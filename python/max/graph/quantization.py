"""APIs to quantize graph tensors.

This package includes a comprehensive set of tools for working with quantized models in MAX
Graph. It defines supported quantization encodings, configuration parameters that control the
quantization process, and block parameter specifications for different quantization formats.
The module supports various quantization formats including 4-bit, 5-bit, and 6-bit precision
with different encoding schemes. It also provides support for GGUF-compatible formats for
interoperability with other frameworks.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True)
class BlockParameters:
    """Parameters describing the structure of a quantization block.

    Block-based quantization stores elements in fixed-size blocks. Each block contains a
    specific number of elements in a compressed format.

    Attributes:
        elements_per_block: Number of original tensor elements in one block.
        block_size: Number of bytes of one encoded block.
    """

    elements_per_block: int
    block_size: int


@dataclass
class QuantizationConfig:
    """Configuration for specifying quantization parameters that affect inference.

    These parameters control how tensor values are quantized, including the method, bit
    precision, grouping, and other characteristics that affect the trade-off between model
    size, inference speed, and accuracy.
    """

    quant_method: str
    bits: int
    group_size: int
    desc_act: bool = False
    sym: bool = False


class QuantizationEncoding(enum.Enum):
    """Quantization encodings supported by MAX Graph.

    Quantization reduces the precision of neural network weights to decrease memory usage and
    potentially improve inference speed. Each encoding represents a different compression
    method with specific trade-offs between model size, accuracy, and computational
    efficiency. These encodings are commonly used with pre-quantized model checkpoints
    (especially GGUF format) or can be applied during weight allocation.

    A quantized tensor is a ``uint8`` tensor whose last dim holds whole blocks in the GGUF
    byte layout (``block_size`` bytes for each ``elements_per_block`` elements). A GPTQ weight
    is MAX's packed ``uint8 [K/2 + 2K/group_size, N]``: AutoGPTQ's ``qweight`` bytes, then its
    float16 ``scales`` (see ``ops.qmatmul``); its group size comes from a
    :class:`QuantizationConfig`.

    Example:
        >>> from max.graph.quantization import QuantizationEncoding
        >>> QuantizationEncoding.Q4_K.block_parameters
        BlockParameters(elements_per_block=256, block_size=144)
    """

    Q4_0 = "Q4_0"
    """Basic 4-bit quantization with 32 elements per block."""
    Q4_1 = "Q4_1"
    """4-bit quantization with a scale and a minimum, 32 elements per block."""
    Q8_0 = "Q8_0"
    """8-bit quantization with 32 elements per block."""
    Q4_K = "Q4_K"
    """4-bit K-quantization with 256 elements per block."""
    Q5_K = "Q5_K"
    """5-bit K-quantization with 256 elements per block."""
    Q6_K = "Q6_K"
    """6-bit K-quantization with 256 elements per block."""
    GPTQ = "GPTQ"
    """Group-wise Post-Training Quantization for large language models."""

    @property
    def block_parameters(self) -> BlockParameters:
        """Gets the block parameters for this quantization encoding.

        Returns:
            The parameters describing how elements are organized and encoded in blocks for
            this quantization encoding.
        """
        return _BLOCK_PARAMETERS[self]

    @property
    def elements_per_block(self) -> int:
        """Number of elements per block.

        All quantization types currently supported by MAX Graph are block-based: groups of a
        fixed number of elements are formed, and each group is quantized together into a
        fixed-size output block. This value is the number of elements gathered into a block.
        """
        return self.block_parameters.elements_per_block

    @property
    def block_size(self) -> int:
        """Number of bytes in encoded representation of block.

        All quantization types currently supported by MAX Graph are block-based: groups of a
        fixed number of elements are formed, and each group is quantized together into a
        fixed-size output block. This value is the number of bytes resulting after encoding a
        single block.
        """
        return self.block_parameters.block_size

    @property
    def is_gguf(self) -> bool:
        """Checks if this quantization encoding is compatible with GGUF format.

        GGUF is a format for storing large language models and compatible quantized weights.
        """
        return self is not QuantizationEncoding.GPTQ

    @property
    def name(self) -> str:  # type: ignore[override]
        """Gets the lowercase name of the quantization encoding."""
        return self.value.lower()


# GGUF's block sizes (ggml's GGML_QUANT_SIZES): K-quants hold 256 elements in super-blocks.
# GPTQ packs eight 4-bit values in an int32 along K, 32 elements in 16 bytes (groups of
# ``group_size`` rows share a float16 scale, stored after all the codes in the packed tensor).
_BLOCK_PARAMETERS: dict[QuantizationEncoding, BlockParameters] = {
    QuantizationEncoding.Q4_0: BlockParameters(32, 18),
    QuantizationEncoding.Q4_1: BlockParameters(32, 20),
    QuantizationEncoding.Q8_0: BlockParameters(32, 34),
    QuantizationEncoding.Q4_K: BlockParameters(256, 144),
    QuantizationEncoding.Q5_K: BlockParameters(256, 176),
    QuantizationEncoding.Q6_K: BlockParameters(256, 210),
    QuantizationEncoding.GPTQ: BlockParameters(32, 16),
}

__all__ = ["BlockParameters", "QuantizationConfig", "QuantizationEncoding"]
