"""``PipelineRegistry``: which architecture runs a model file, and building its pipeline.

An architecture is found by the GGUF file's ``general.architecture`` (MAX looks up the Hugging
Face config's model class; a GGUF file names llama.cpp's architecture instead).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from max.interfaces import PipelineTask
from max.pipelines.lib.config import PipelineConfig


@dataclass
class SupportedArchitecture:
    """A model architecture the pipelines can run.

    Attributes:
        name: The architecture's name (a GGUF ``general.architecture``, e.g. ``"llama"``).
        example_repo_ids: Example models.
        default_encoding: The usual weight encoding (a GGUF type name, e.g. ``"q4_1"``).
        supported_encodings: Encodings and the cache strategies each supports.
        pipeline_model: The model class (constructed with a file path and a session).
        task: The pipeline task.
        tokenizer: Builds the tokenizer from a model path.
        default_weights_format: The weights' format (``WeightsFormat.gguf``).
        weight_adapters: Unused here (GGUF is read directly).
        multi_gpu_supported: False: one CPU.
        required_arguments: PipelineConfig values this architecture needs.
        context_validators: Checks run on each new context.
        supports_empty_batches: Whether a batch may be empty.
    """

    name: str
    example_repo_ids: list[str]
    default_encoding: Any
    supported_encodings: dict[Any, list[Any]]
    pipeline_model: type
    task: PipelineTask
    tokenizer: Callable[..., Any]
    default_weights_format: Any
    weight_adapters: dict[Any, Callable[..., Any]] = field(default_factory=dict)
    multi_gpu_supported: bool = False
    required_arguments: dict[str, bool | int | float] = field(default_factory=dict)
    context_validators: list[Callable[[Any], None]] = field(default_factory=list)
    supports_empty_batches: bool = False

    @property
    def tokenizer_cls(self) -> Callable[..., Any]:
        return self.tokenizer


class PipelineRegistry:
    """The architectures known to the pipelines, by name."""

    def __init__(self, architectures: Sequence[SupportedArchitecture]) -> None:
        self.architectures: dict[str, SupportedArchitecture] = {}
        for arch in architectures:
            self.register(arch)

    def register(self, architecture: SupportedArchitecture, *,
                 allow_override: bool = False) -> None:
        """Add new architecture to registry.

        Raises:
            ValueError: If an architecture of that name exists and ``allow_override`` is
                False.
        """
        if architecture.name in self.architectures and not allow_override:
            raise ValueError(f"PipelineRegistry: architecture {architecture.name!r} is already "
                             "registered (pass allow_override=True to replace it)")
        self.architectures[architecture.name] = architecture

    def reset(self) -> None:
        """Removes every architecture."""
        self.architectures.clear()

    def retrieve_architecture(self, model_path: str) -> SupportedArchitecture | None:
        """The architecture of the GGUF file ``model_path`` (its ``general.architecture``),
        or None if none is registered for it.

        Raises:
            FileNotFoundError: If the file does not exist.
            ValueError: If it is not a valid GGUF file.
        """
        return self.architectures.get(_architecture_name(model_path))

    def _architecture(self, config: PipelineConfig,
                      override_architecture: str | None) -> SupportedArchitecture:
        if override_architecture is not None:
            arch = self.architectures.get(override_architecture)
            if arch is None:
                raise ValueError(f"PipelineRegistry: no architecture {override_architecture!r} "
                                 f"(registered: {', '.join(sorted(self.architectures))})")
            return arch
        name = _architecture_name(config.model_path)
        arch = self.architectures.get(name)
        if arch is None:
            raise ValueError(f"{config.model_path}: architecture {name!r} is not supported "
                             f"(supported: {', '.join(sorted(self.architectures))})")
        return arch

    def retrieve_tokenizer(self, pipeline_config: PipelineConfig,
                           override_architecture: str | None = None) -> Any:
        """The tokenizer of the config's model."""
        arch = self._architecture(pipeline_config, override_architecture)
        return arch.tokenizer(pipeline_config.model_path, max_length=pipeline_config.max_length,
                              chat_template=pipeline_config.retrieve_chat_template())

    def retrieve_factory(self, pipeline_config: PipelineConfig,
                         task: PipelineTask = PipelineTask.TEXT_GENERATION,
                         override_architecture: str | None = None,
                         ) -> tuple[Any, Callable[[], Any]]:
        """The tokenizer and a function that builds the pipeline (compiling the model).

        Raises:
            ValueError: If the model's architecture is not registered or does not do
                ``task``.
        """
        arch = self._architecture(pipeline_config, override_architecture)
        if arch.task != task:
            raise ValueError(f"PipelineRegistry: architecture {arch.name!r} does "
                             f"{arch.task.value}, not {task.value}")
        tokenizer = self.retrieve_tokenizer(pipeline_config, override_architecture)

        def factory() -> Any:
            from max.pipelines.lib.text_generation import TextGenerationPipeline

            return TextGenerationPipeline(pipeline_config, arch.pipeline_model, tokenizer.eos,
                                          arch.weight_adapters, tokenizer)

        return tokenizer, factory

    def retrieve(self, pipeline_config: PipelineConfig,
                 task: PipelineTask = PipelineTask.TEXT_GENERATION,
                 override_architecture: str | None = None) -> tuple[Any, Any]:
        """The tokenizer and the pipeline (compiled and loaded) of the config's model."""
        tokenizer, factory = self.retrieve_factory(pipeline_config, task,
                                                   override_architecture)
        return tokenizer, factory()

    def retrieve_pipeline_task(self, pipeline_config: PipelineConfig) -> PipelineTask:
        """The task of the config's model."""
        return self._architecture(pipeline_config, None).task


def _architecture_name(model_path: str) -> str:
    """``general.architecture`` of a GGUF file (opened once per process: ``open_gguf``)."""
    from max.graph.weights.load_gguf import gguf_field, open_gguf

    return gguf_field(open_gguf(model_path), "general.architecture", str, model_path)


def _llama() -> SupportedArchitecture:
    from max.graph.weights import WeightsFormat
    from max.nn.kv_cache import KVCacheStrategy
    from max.pipelines.architectures.llama3.runner import Llama3Runner
    from max.pipelines.lib.tokenizer import TextTokenizer

    encodings = ("float32", "q4_0", "q4_1", "q8_0", "q4_k", "q5_k", "q6_k")
    return SupportedArchitecture(
        name="llama", example_repo_ids=["HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1)"],
        default_encoding="q4_1",
        supported_encodings={e: [KVCacheStrategy.CONTINUOUS] for e in encodings},
        pipeline_model=Llama3Runner, task=PipelineTask.TEXT_GENERATION,
        tokenizer=TextTokenizer, default_weights_format=WeightsFormat.gguf)


PIPELINE_REGISTRY = PipelineRegistry([_llama()])
"""The registry of every architecture this package implements."""
