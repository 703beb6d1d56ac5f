"""Numeric rows for mo.resize_bicubic, expected values from PyTorch's bicubic interpolate."""

from __future__ import annotations

import torch
from mo_op_rows import Row, f32

from max.dtype import DType

ROWS: dict[str, list[Row]] = {
    "mo.resize_bicubic": [
        Row((f32(2, 3, 5, 7),),
            lambda x: torch.nn.functional.interpolate(
                torch.from_numpy(x), size=(8, 4), mode="bicubic", align_corners=False).numpy(),
            result=(DType.float32, (2, 3, 8, 4)), rtol=1e-5, atol=1e-5),
    ],
}
