"""Implementations of provided tokenizers.

:class:`TextTokenizer` encodes prompts, decodes generated ids and renders chat templates.
Where MAX loads a Hugging Face repository, ours takes the path of a ``.gguf`` file (the
tokenizer is built from its metadata, see :mod:`max.pipelines.lib.gguf_tokenizer`) or of a
folder holding ``tokenizer.json`` (and optionally ``tokenizer_config.json``).

The reference API is async (``encode``/``decode``); the pipeline and the ``max generate``
command can call the synchronous ``encode_sync``/``decode_sync``/``apply_chat_template``
and stream output through :meth:`TextTokenizer.incremental_decoder`.

Example:
    >>> tok = TextTokenizer(smollm2_path())  # doctest: +SKIP
    >>> prompt = tok.apply_chat_template([{"role": "user", "content": "Hi"}])  # doctest: +SKIP
    >>> ids = tok.encode_sync(prompt)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import jinja2
import numpy as np
import numpy.typing as npt
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

from max.pipelines.lib.gguf_tokenizer import GGUFTokenizerMetadata, load_gguf_tokenizer
from max.pipelines.lib.incremental_decoder import IncrementalDecoder

__all__ = [
    "IncrementalDecoder",
    "TextTokenizer",
    "max_tokens_to_generate",
    "run_with_default_executor",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")


async def run_with_default_executor(
    fn: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs
) -> _R:
    """Runs ``fn(*args, **kwargs)`` in the event loop's default executor and awaits it."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))


def max_tokens_to_generate(
    prompt_size: int, max_length: int | None, max_new_tokens: int | None = None
) -> int | None:
    """Returns the max number of new tokens to generate.

    That is ``max_length - prompt_size`` (at least 0), capped by ``max_new_tokens``; None
    when neither bounds it.

    Raises:
        ValueError: If an argument is negative.
    """
    for name, value in (("prompt_size", prompt_size), ("max_length", max_length),
                        ("max_new_tokens", max_new_tokens)):
        if value is not None and value < 0:
            raise ValueError(f"max_tokens_to_generate: {name} must be >= 0, got {value}")
    if max_length is None:
        return max_new_tokens
    room = max(max_length - prompt_size, 0)
    return room if max_new_tokens is None else min(max_new_tokens, room)


def _raise_exception(message: str) -> None:
    raise jinja2.TemplateError(message)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    # Jinja's own tojson escapes <, >, & for HTML; chat templates want plain JSON.
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@functools.lru_cache(maxsize=8)
def _compile_template(source: str) -> jinja2.Template:
    # The template comes from an untrusted model file: sandboxed, no mutation of inputs.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as e:
        raise ValueError(f"chat template is not valid Jinja (line {e.lineno}): {e.message}") from e


def _as_dict(obj: Any, what: str) -> dict[str, Any]:
    if isinstance(obj, Mapping):
        return dict(obj)
    if hasattr(obj, "model_dump"):
        return dict(obj.model_dump())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise TypeError(f"apply_chat_template: {what} must be a mapping, got {type(obj).__name__}")


def _text_message(message: Any, index: int) -> dict[str, Any]:
    msg = _as_dict(message, f"messages[{index}]")
    if "role" not in msg:
        raise ValueError(f"apply_chat_template: messages[{index}] has no 'role'")
    content = msg.get("content")
    if isinstance(content, list):
        texts = []
        for part in content:
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind != "text":
                raise ValueError(f"apply_chat_template: messages[{index}] has a content part "
                                 f"of type {kind!r}; this tokenizer handles text only")
            texts.append(part.get("text", part.get("content", "")))
        msg["content"] = "\n".join(texts)
    return msg


def _load_folder(folder: Path) -> tuple[Tokenizer, dict[str, Any]]:
    tokenizer_file = folder / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise FileNotFoundError(f"{str(folder)!r} holds no tokenizer.json")
    try:
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
    except Exception as e:  # noqa: BLE001 - the Rust parser's errors are plain Exceptions
        raise ValueError(f"{str(tokenizer_file)!r} is not a valid tokenizer.json: {e}") from e
    config: dict[str, Any] = {}
    config_file = folder / "tokenizer_config.json"
    if config_file.is_file():
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{str(config_file)!r} is not valid JSON: {e}") from e
    return tokenizer, config


def _token_content(value: Any) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("content")
    return value if isinstance(value, str) else None


class TextTokenizer:
    """Encapsulates creation of TextContext and specific token encode/decode logic.

    Args:
        model_path: Path to a ``.gguf`` file, or to a folder holding ``tokenizer.json``.
        revision: Accepted for API compatibility; unused (no hub downloads).
        max_length: Maximum sequence length; defaults to the model's context length.
        trust_remote_code: Accepted for API compatibility; unused.
        enable_llama_whitespace_fix: Accepted for API compatibility; unused.
        pipeline_config: Accepted for API compatibility; unused.
        chat_template: Optional custom chat template string to override the one shipped
            with the model.
        context_validators: Accepted for API compatibility; unused (no ``new_context``).

    Raises:
        FileNotFoundError: If ``model_path`` is neither a file nor a folder with
            ``tokenizer.json``.
        ValueError: If the tokenizer metadata is corrupt or ``max_length`` is not positive.
        NotImplementedError: If the GGUF tokenizer model is not supported.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        revision: str | None = None,
        max_length: int | None = None,
        trust_remote_code: bool = False,
        enable_llama_whitespace_fix: bool = False,
        pipeline_config: Any = None,
        chat_template: str | None = None,
        context_validators: list[Callable[[Any], None]] | None = None,
        **unused_kwargs: Any,
    ) -> None:
        path = Path(model_path)
        self.model_path = str(model_path)
        self.metadata: GGUFTokenizerMetadata | None = None
        if path.is_dir():
            self.delegate, config = _load_folder(path)
            eos_text = _token_content(config.get("eos_token"))
            bos_text = _token_content(config.get("bos_token"))
            self._eos = None if eos_text is None else self.delegate.token_to_id(eos_text)
            self._bos = None if bos_text is None else self.delegate.token_to_id(bos_text)
            self._eos_ids = frozenset() if self._eos is None else frozenset({self._eos})
            template = config.get("chat_template")
            self._chat_template = template if isinstance(template, str) else None
            model_max = config.get("model_max_length")
            default_max = model_max if isinstance(model_max, int) and model_max < 2**31 else None
        elif path.is_file():
            self.delegate, self.metadata = load_gguf_tokenizer(path)
            self._eos, self._bos = self.metadata.eos_token_id, self.metadata.bos_token_id
            self._eos_ids = self.metadata.eos_token_ids
            self._chat_template = self.metadata.chat_template
            default_max = self.metadata.context_length
        else:
            raise FileNotFoundError(f"TextTokenizer: no tokenizer at {self.model_path!r} "
                                    "(expected a .gguf file or a folder with tokenizer.json)")
        if chat_template is not None:
            self._chat_template = chat_template
        if max_length is not None and max_length <= 0:
            raise ValueError(f"TextTokenizer: max_length must be positive, got {max_length}")
        self.max_length: int | None = max_length if max_length is not None else default_max
        self._vocab_size = self.delegate.get_vocab_size(with_added_tokens=True)

    # -- properties ---------------------------------------------------------------------
    @property
    def eos(self) -> int:
        """The end of sequence token for this tokenizer."""
        if self._eos is None:
            raise ValueError(f"tokenizer {self.model_path!r} defines no end-of-sequence token")
        return self._eos

    @property
    def eos_token_ids(self) -> frozenset[int]:
        """All ids that end generation (eos, and eot/eom where the model defines them)."""
        return self._eos_ids

    @property
    def bos(self) -> int | None:
        """The beginning of sequence token, or None."""
        return self._bos

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included."""
        return self._vocab_size

    @property
    def chat_template(self) -> str | None:
        """The Jinja chat template in use, or None."""
        return self._chat_template

    @property
    def expects_content_wrapping(self) -> bool:
        """If true, this tokenizer expects messages to have a content property (text parts
        as ``{"type": "text", "content": ...}``). False: text-only, OpenAI-style messages."""
        return False

    # -- encode / decode ----------------------------------------------------------------
    def encode_sync(
        self, prompt: str | Sequence[int], add_special_tokens: bool = True
    ) -> npt.NDArray[np.int64]:
        """Synchronous :meth:`encode`."""
        if isinstance(prompt, str):
            ids = self.delegate.encode(prompt, add_special_tokens=add_special_tokens).ids
        else:
            ids = [int(t) for t in prompt]
            bad = [t for t in ids if not 0 <= t < self._vocab_size]
            if bad:
                raise ValueError(f"encode: token id {bad[0]} is out of range for a vocabulary "
                                 f"of {self._vocab_size} tokens")
        if self.max_length is not None and len(ids) > self.max_length:
            raise ValueError(f"encode: the prompt has {len(ids)} tokens, more than max_length "
                             f"{self.max_length}")
        return np.asarray(ids, dtype=np.int64)

    async def encode(
        self, prompt: str | Sequence[int], add_special_tokens: bool = True
    ) -> npt.NDArray[np.int64]:
        """Transform the provided prompt into a token array.

        Args:
            prompt: Text, or token ids (checked and returned as an array).
            add_special_tokens: Whether to add the model's bos/eos (per its metadata;
                SmolLM2 adds none). Special tokens written in the text, such as
                ``<|im_start|>``, are always encoded as their single id.

        Raises:
            ValueError: If the prompt exceeds the configured maximum length, or an id is
                out of range.
        """
        return self.encode_sync(prompt, add_special_tokens)

    def decode_sync(
        self, encoded: npt.NDArray[np.integer[Any]] | Sequence[int],
        skip_special_tokens: bool = False,
    ) -> str:
        """Synchronous :meth:`decode`."""
        ids = np.asarray(encoded).reshape(-1).tolist() if isinstance(encoded, np.ndarray) \
            else [int(t) for t in encoded]
        bad = [t for t in ids if not 0 <= t < self._vocab_size]
        if bad:
            raise ValueError(f"decode: token id {bad[0]} is out of range for a vocabulary "
                             f"of {self._vocab_size} tokens")
        return self.delegate.decode(ids, skip_special_tokens=skip_special_tokens)

    async def decode(self, encoded: npt.NDArray[np.integer[Any]] | Sequence[int],
                     **kwargs: Any) -> str:
        """Transformer a provided encoded token array, back into readable text.

        Args:
            encoded: Token ids.
            **kwargs: ``skip_special_tokens`` (default False).

        Raises:
            TypeError: For another keyword.
        """
        skip = kwargs.pop("skip_special_tokens", False)
        if kwargs:
            raise TypeError(f"decode: unexpected keyword argument(s) {sorted(kwargs)}")
        return self.decode_sync(encoded, skip_special_tokens=bool(skip))

    def incremental_decoder(self, skip_special_tokens: bool = True) -> IncrementalDecoder:
        """A fresh decoder that turns generated ids, pushed one by one, into text pieces."""
        return IncrementalDecoder(self.delegate, skip_special_tokens=skip_special_tokens)

    # -- chat template ------------------------------------------------------------------
    def _special_token_text(self, token_id: int | None) -> str:
        if token_id is None:
            return ""
        return self.delegate.id_to_token(token_id) or ""

    def apply_chat_template(
        self,
        messages: Sequence[Any],
        tools: Sequence[Any] | None = None,
        chat_template_options: dict[str, Any] | None = None,
    ) -> str:
        """Renders the messages with the model's chat template, ending with the prompt for
        the assistant's turn (``add_generation_prompt=True``).

        Args:
            messages: ``{"role": ..., "content": ...}`` mappings; content is a string or a
                list of ``{"type": "text", "text": ...}`` parts (joined by newlines).
            tools: Tool definitions passed to the template as ``tools``.
            chat_template_options: Extra template variables (they may override
                ``add_generation_prompt``).

        Raises:
            ValueError: If there is no chat template, it is not valid Jinja, it fails (e.g.
                ``raise_exception``, a sandbox violation), or a message is malformed.
        """
        if self._chat_template is None:
            raise ValueError(f"tokenizer {self.model_path!r} has no chat template; pass "
                             "chat_template= to TextTokenizer")
        template = _compile_template(self._chat_template)
        variables: dict[str, Any] = {
            "messages": [_text_message(m, i) for i, m in enumerate(messages)],
            "tools": None if tools is None else
            [_as_dict(t, f"tools[{i}]") for i, t in enumerate(tools)],
            "add_generation_prompt": True,
            "bos_token": self._special_token_text(self._bos),
            "eos_token": self._special_token_text(self._eos),
        }
        variables.update(chat_template_options or {})
        try:
            return template.render(**variables)
        except (jinja2.TemplateError, TypeError) as e:
            raise ValueError(f"chat template failed: {type(e).__name__}: {e}") from e

    def new_context_sync(self, request: Any) -> Any:
        """:meth:`new_context` without asyncio."""
        from max.pipelines.core import TextContext

        if request.messages:
            if request.prompt is not None:
                raise ValueError(f"request {request.request_id}: give a prompt or messages, "
                                 "not both")
            prompt: Any = self.apply_chat_template(request.messages, request.tools,
                                                   request.chat_template_options)
            add_special = False  # the template wrote them
        elif request.prompt is not None and len(request.prompt):
            prompt, add_special = request.prompt, True
        else:
            raise ValueError(f"request {request.request_id}: the prompt is empty")
        try:
            ids = self.encode_sync(prompt, add_special_tokens=add_special)
        except ValueError as e:
            raise ValueError(f"request {request.request_id}: {e}") from None
        if ids.size == 0:
            raise ValueError(f"request {request.request_id}: the prompt encodes to no tokens")
        params = request.sampling_params
        limit = self.max_length
        if params.max_new_tokens is not None:
            limit = min(limit, int(ids.size) + params.max_new_tokens)
        if ids.size >= self.max_length:
            raise ValueError(f"request {request.request_id}: the prompt has {ids.size} "
                             f"tokens; the model's max length is {self.max_length} (the prompt "
                             "and at least one generated token must fit)")
        stop_ids = set(params.stop_token_ids or ())
        return TextContext(max_length=limit, tokens=ids, request_id=request.request_id,
                           eos_token_ids=set(self.eos_token_ids) | stop_ids,
                           sampling_params=params, ignore_eos=params.ignore_eos,
                           model_name=request.model_name,
                           log_probabilities=request.logprobs,
                           log_probabilities_echo=request.echo,
                           target_endpoint=request.target_endpoint)

    async def new_context(self, request: Any) -> Any:
        """Create a new TextContext object, leveraging necessary information from
        TextGenerationRequest: the prompt (text or token ids) or the messages rendered with
        the chat template, the sampling parameters, the EOS ids (the model's and the
        request's ``stop_token_ids``) and ``max_length`` (the model's, or prompt +
        ``max_new_tokens``).

        Raises:
            ValueError: If the prompt is empty, both a prompt and messages are given, or the
                prompt does not fit the model's max length.
        """
        return self.new_context_sync(request)
