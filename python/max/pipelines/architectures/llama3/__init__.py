"""Llama-architecture decoders (Llama 3, SmolLM2) from GGUF checkpoints."""
