"""Compiler passes over MLIR modules, each registered by name (see registry.py)."""
