"""Entry points: the ``LLM`` class (``max.entrypoints.llm``) and the ``max`` command."""
