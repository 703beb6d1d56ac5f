"""Model pipelines: real models (architectures) built with ``max.graph``."""
