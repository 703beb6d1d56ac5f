"""The pipeline library: configuration, registry, tokenizers, sampling and the text
generation pipeline (``max.pipelines.lib`` in the reference)."""
