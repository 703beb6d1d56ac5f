"""A ``tokenizers.Tokenizer`` built from the tokenizer metadata of a GGUF file.

GGUF files carry their tokenizer as metadata (``tokenizer.ggml.*``): the vocabulary, the
token types, the BPE merges, the special token ids and the chat template. This module reads
those fields, checks them (the file is untrusted input: a missing field, counts that
disagree or an id out of range raise :class:`ValueError` naming the field) and builds the
equivalent Hugging Face ``tokenizers.Tokenizer``.

Supported: ``tokenizer.ggml.model == "gpt2"`` (byte-level BPE) with the pre-tokenizers
``"default"``/``"gpt2"`` (the GPT-2 regex), ``"smollm"`` (digits split one by one, then the
GPT-2 regex, as SmolLM2's ``tokenizer.json``) and ``"llama-bpe"`` (the Llama 3 regex).
Other models (``"llama"`` SentencePiece, ``"bert"`` WordPiece, ...) raise
:class:`NotImplementedError`.

Example:
    >>> from max.pipelines.lib.gguf_tokenizer import load_gguf_tokenizer
    >>> tok, meta = load_gguf_tokenizer(path)  # doctest: +SKIP
    >>> tok.encode("The capital of France is").tokens  # doctest: +SKIP
    ['The', 'Ġcapital', 'Ġof', 'ĠFrance', 'Ġis']
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import gguf
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

GGUFValueType = gguf.GGUFValueType

# GGUF token types (llama.cpp's llama_token_type).
TOKEN_TYPE_NORMAL = 1
TOKEN_TYPE_UNKNOWN = 2
TOKEN_TYPE_CONTROL = 3
TOKEN_TYPE_USER_DEFINED = 4
TOKEN_TYPE_UNUSED = 5
TOKEN_TYPE_BYTE = 6

# The Llama 3 pre-tokenizer regex ("llama-bpe" in llama.cpp): contractions, letters with
# at most one leading non-letter, numbers in groups of up to three, punctuation, newlines.
_LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

SUPPORTED_MODELS = ("gpt2",)
SUPPORTED_PRE_TOKENIZERS = ("default", "gpt2", "smollm", "llama-bpe")


@dataclass(frozen=True)
class GGUFTokenizerMetadata:
    """The tokenizer fields of a GGUF file, read and checked.

    Attributes:
        model: ``tokenizer.ggml.model`` (e.g. ``"gpt2"``).
        pre: ``tokenizer.ggml.pre``, the pre-tokenizer name (``"default"`` when absent).
        tokens: The vocabulary; the index is the token id.
        token_types: One GGUF token type per token (all normal when absent).
        merges: BPE merges as ``"left right"`` strings, highest priority first.
        bos_token_id: Beginning-of-sequence id, or None.
        eos_token_id: End-of-sequence id, or None.
        eos_token_ids: The ids that end generation: eos, plus ``eot``/``eom`` when present.
        unknown_token_id: Unknown-token id, or None.
        padding_token_id: Padding id, or None.
        add_bos_token: Whether encoding with special tokens prepends bos.
        add_eos_token: Whether encoding with special tokens appends eos.
        add_space_prefix: ``tokenizer.ggml.add_space_prefix`` (SentencePiece only).
        chat_template: The Jinja chat template, or None.
        architecture: ``general.architecture`` (e.g. ``"llama"``), or None.
        context_length: ``<architecture>.context_length``, or None.
    """

    model: str
    pre: str
    tokens: list[str] = field(repr=False)
    token_types: list[int] = field(repr=False)
    merges: list[str] = field(repr=False)
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    eos_token_ids: frozenset[int] = frozenset()
    unknown_token_id: int | None = None
    padding_token_id: int | None = None
    add_bos_token: bool = False
    add_eos_token: bool = False
    add_space_prefix: bool = False
    chat_template: str | None = field(default=None, repr=False)
    architecture: str | None = None
    context_length: int | None = None


_INT_TYPES = {
    GGUFValueType.UINT8, GGUFValueType.INT8, GGUFValueType.UINT16, GGUFValueType.INT16,
    GGUFValueType.UINT32, GGUFValueType.INT32, GGUFValueType.UINT64, GGUFValueType.INT64,
}


def _field(reader: gguf.GGUFReader, key: str) -> gguf.ReaderField | None:
    return reader.fields.get(key)


def _contents(f: gguf.ReaderField, key: str):
    try:
        return f.contents()
    except (UnicodeDecodeError, ValueError, IndexError) as e:
        raise ValueError(f"GGUF field {key!r} cannot be read: {e}") from e


def _scalar(reader: gguf.GGUFReader, key: str, kinds: set[GGUFValueType], what: str):
    f = _field(reader, key)
    if f is None:
        return None
    if len(f.types) != 1 or f.types[0] not in kinds:
        raise ValueError(f"GGUF field {key!r} should be {what}, found type "
                         f"{[t.name for t in f.types]}")
    return _contents(f, key)


def _string(reader: gguf.GGUFReader, key: str) -> str | None:
    return _scalar(reader, key, {GGUFValueType.STRING}, "a string")


def _int(reader: gguf.GGUFReader, key: str) -> int | None:
    value = _scalar(reader, key, _INT_TYPES, "an integer")
    return None if value is None else int(value)


def _bool(reader: gguf.GGUFReader, key: str, default: bool) -> bool:
    value = _scalar(reader, key, {GGUFValueType.BOOL}, "a bool")
    return default if value is None else bool(value)


def _array(reader: gguf.GGUFReader, key: str, kinds: set[GGUFValueType], what: str) -> list | None:
    f = _field(reader, key)
    if f is None:
        return None
    if len(f.types) != 2 or f.types[0] != GGUFValueType.ARRAY or f.types[1] not in kinds:
        raise ValueError(f"GGUF field {key!r} should be an array of {what}, found type "
                         f"{[t.name for t in f.types]}")
    return list(_contents(f, key))


def _open(source: str | os.PathLike[str] | gguf.GGUFReader) -> gguf.GGUFReader:
    """The reader of ``source``, through the weights' checked opener (header counts checked
    against the file size first; one parse per process for an unchanged file)."""
    from max.graph.weights.load_gguf import open_gguf

    if isinstance(source, gguf.GGUFReader):
        return source
    if not os.path.isfile(source):
        raise FileNotFoundError(f"no GGUF file at {os.fspath(source)!r}")
    try:
        return open_gguf(source)
    except Exception as e:  # noqa: BLE001 - any parse failure of an untrusted file
        raise ValueError(f"{os.fspath(source)!r} is not a readable GGUF file: {e}") from e


def read_tokenizer_metadata(
    source: str | os.PathLike[str] | gguf.GGUFReader,
) -> GGUFTokenizerMetadata:
    """Reads and checks the tokenizer metadata of a GGUF file.

    Args:
        source: The path of a ``.gguf`` file, or an open ``gguf.GGUFReader``.

    Returns:
        The checked metadata.

    Raises:
        FileNotFoundError: If the path is not a file.
        ValueError: If the file is not GGUF, or a tokenizer field is missing, has the wrong
            type, disagrees with another (counts, ids out of range, duplicate tokens).
    """
    reader = _open(source)
    model = _string(reader, "tokenizer.ggml.model")
    if model is None:
        raise ValueError("GGUF file has no tokenizer: field 'tokenizer.ggml.model' is missing")
    tokens = _array(reader, "tokenizer.ggml.tokens", {GGUFValueType.STRING}, "strings")
    if not tokens:
        raise ValueError("GGUF field 'tokenizer.ggml.tokens' is missing or empty")
    n = len(tokens)
    types = _array(reader, "tokenizer.ggml.token_type", _INT_TYPES, "integers")
    if types is None:
        types = [TOKEN_TYPE_NORMAL] * n
    types = [int(t) for t in types]
    if len(types) != n:
        raise ValueError(f"GGUF field 'tokenizer.ggml.token_type' has {len(types)} entries "
                         f"but 'tokenizer.ggml.tokens' has {n}")
    merges = _array(reader, "tokenizer.ggml.merges", {GGUFValueType.STRING}, "strings") or []

    def token_id(name: str) -> int | None:
        value = _int(reader, f"tokenizer.ggml.{name}_token_id")
        if value is not None and not 0 <= value < n:
            raise ValueError(f"GGUF field 'tokenizer.ggml.{name}_token_id' = {value} is out of "
                             f"range for a vocabulary of {n} tokens")
        return value

    bos, eos, unk, pad = (token_id(k) for k in ("bos", "eos", "unknown", "padding"))
    eos_ids = {i for i in (eos, token_id("eot"), token_id("eom")) if i is not None}
    arch = _string(reader, "general.architecture")
    context_length = _int(reader, f"{arch}.context_length") if arch else None
    return GGUFTokenizerMetadata(
        model=model,
        pre=_string(reader, "tokenizer.ggml.pre") or "default",
        tokens=tokens,
        token_types=types,
        merges=merges,
        bos_token_id=bos,
        eos_token_id=eos,
        eos_token_ids=frozenset(eos_ids),
        unknown_token_id=unk,
        padding_token_id=pad,
        add_bos_token=_bool(reader, "tokenizer.ggml.add_bos_token", False),
        add_eos_token=_bool(reader, "tokenizer.ggml.add_eos_token", False),
        add_space_prefix=_bool(reader, "tokenizer.ggml.add_space_prefix", False),
        chat_template=_string(reader, "tokenizer.chat_template"),
        architecture=arch,
        context_length=context_length,
    )


def _vocab(tokens: Sequence[str]) -> dict[str, int]:
    vocab: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        if tok in vocab:
            raise ValueError(f"GGUF field 'tokenizer.ggml.tokens' holds {tok!r} twice "
                             f"(ids {vocab[tok]} and {i})")
        vocab[tok] = i
    return vocab


def _merges(merges: Sequence[str], vocab: dict[str, int]) -> list[tuple[str, str]]:
    pairs = []
    for i, merge in enumerate(merges):
        parts = merge.split(" ")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise ValueError(f"GGUF field 'tokenizer.ggml.merges'[{i}] = {merge!r} is not "
                             "two tokens separated by one space")
        left, right = parts
        for tok in (left, right, left + right):
            if tok not in vocab:
                raise ValueError(f"GGUF field 'tokenizer.ggml.merges'[{i}] = {merge!r} uses "
                                 f"{tok!r}, which is not in the vocabulary")
        pairs.append((left, right))
    return pairs


def _pre_tokenizer(pre: str) -> pre_tokenizers.PreTokenizer:
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in ("default", "gpt2"):
        return byte_level
    if pre == "smollm":
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    if pre == "llama-bpe":
        return pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(_LLAMA3_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    raise NotImplementedError(
        f"GGUF pre-tokenizer 'tokenizer.ggml.pre' = {pre!r} is not supported "
        f"(supported: {', '.join(SUPPORTED_PRE_TOKENIZERS)})")


def _post_processor(meta: GGUFTokenizerMetadata) -> processors.PostProcessor | None:
    add_bos = meta.add_bos_token and meta.bos_token_id is not None
    add_eos = meta.add_eos_token and meta.eos_token_id is not None
    if not (add_bos or add_eos):
        return None
    special = []
    single, pair = "$A:0", "$A:0 $B:1"
    if add_bos:
        bos = meta.tokens[meta.bos_token_id]
        special.append((bos, meta.bos_token_id))
        single, pair = f"{bos}:0 {single}", f"{bos}:0 $A:0 {bos}:1 $B:1"
    if add_eos:
        eos = meta.tokens[meta.eos_token_id]
        if eos not in dict(special):
            special.append((eos, meta.eos_token_id))
        single = f"{single} {eos}:0"
        pair = pair.replace("$A:0", f"$A:0 {eos}:0").replace("$B:1", f"$B:1 {eos}:1")
    return processors.TemplateProcessing(single=single, pair=pair, special_tokens=special)


def build_tokenizer(meta: GGUFTokenizerMetadata) -> Tokenizer:
    """Builds the ``tokenizers.Tokenizer`` described by GGUF tokenizer metadata.

    Control tokens (type 3) and the unknown token become special added tokens (encoded as
    one id wherever they appear in the text, dropped by ``decode(skip_special_tokens=True)``);
    user-defined tokens (type 4) become plain added tokens.

    Raises:
        NotImplementedError: If the tokenizer model or pre-tokenizer is not supported.
        ValueError: If the merges are missing or malformed, or a token appears twice.
    """
    if meta.model not in SUPPORTED_MODELS:
        kind = {"llama": " (SentencePiece)", "bert": " (WordPiece)", "t5": " (Unigram)"}
        raise NotImplementedError(
            f"GGUF tokenizer model 'tokenizer.ggml.model' = {meta.model!r}"
            f"{kind.get(meta.model, '')} is not supported (supported: "
            f"{', '.join(SUPPORTED_MODELS)}, byte-level BPE)")
    pre = _pre_tokenizer(meta.pre)
    if not meta.merges:
        raise ValueError("GGUF field 'tokenizer.ggml.merges' is missing or empty; a 'gpt2' "
                         "(BPE) tokenizer needs its merges")
    vocab = _vocab(meta.tokens)
    # Llama 3 looks a whole pre-token up in the vocabulary before merging (as its
    # tokenizer.json and llama.cpp do); the GPT-2 family always merges.
    ignore_merges = meta.pre == "llama-bpe"
    tokenizer = Tokenizer(models.BPE(vocab, _merges(meta.merges, vocab),
                                     ignore_merges=ignore_merges))
    tokenizer.pre_tokenizer = pre
    tokenizer.decoder = decoders.ByteLevel()
    added = []
    for i, (tok, kind) in enumerate(zip(meta.tokens, meta.token_types)):
        if kind in (TOKEN_TYPE_CONTROL, TOKEN_TYPE_UNKNOWN) or i == meta.unknown_token_id:
            added.append(AddedToken(tok, special=True, normalized=False))
        elif kind == TOKEN_TYPE_USER_DEFINED:
            added.append(AddedToken(tok, special=False, normalized=False))
    special = [t for t in added if t.special]
    if special:
        tokenizer.add_special_tokens(special)
    plain = [t for t in added if not t.special]
    if plain:
        tokenizer.add_tokens(plain)
    post = _post_processor(meta)
    if post is not None:
        tokenizer.post_processor = post
    return tokenizer


def load_gguf_tokenizer(
    source: str | os.PathLike[str] | gguf.GGUFReader,
) -> tuple[Tokenizer, GGUFTokenizerMetadata]:
    """Reads the tokenizer metadata of a GGUF file and builds its tokenizer.

    Args:
        source: The path of a ``.gguf`` file, or an open ``gguf.GGUFReader``.

    Returns:
        The tokenizer and the metadata it was built from.
    """
    meta = read_tokenizer_metadata(source)
    return build_tokenizer(meta), meta
