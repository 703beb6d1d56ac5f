"""Target pipelines: from the lowered module (linalg on tensors) to native code."""
