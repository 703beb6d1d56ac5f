"""Loading and calling compiled code (``max.runtime``).

Imports neither ``max.graph`` nor ``max.compiler``, and not ``mlir`` unless the JIT fallback
is used. ``ArtifactRecord`` is the validated metadata of a compiled artifact;
``load_shared_object``/``load_jit`` load an entry point (one shared mapping per binary);
``CpuExecutable`` calls it with memref descriptors prepared once per thread.
"""

from __future__ import annotations

from max.runtime.artifact import ArtifactError, ArtifactRecord, MOType, TensorRecord
from max.runtime.executable import CpuExecutable, TensorSig
from max.runtime.loader import CpuFunction, load_jit, load_shared_object, loaded_artifact_count
from max.runtime.memref import descriptor_class

__all__ = [
    "ArtifactError",
    "ArtifactRecord",
    "CpuExecutable",
    "CpuFunction",
    "TensorSig",
    "descriptor_class",
    "load_jit",
    "load_shared_object",
    "loaded_artifact_count",
    "MOType",
    "TensorRecord",
]
