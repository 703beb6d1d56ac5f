"""Decoding generated token ids to text one token at a time, for streaming output.

A token of a byte-level BPE vocabulary may hold only part of a multi-byte UTF-8 character
(an emoji is often split over two tokens), and a SentencePiece-style decoder may strip the
leading space of the first token it sees; so a token cannot be decoded on its own. The
decoder keeps a short window of ids: it decodes the window, emits what is new since the
last emission, and holds back text while the window ends with an incomplete character
(the decoder shows those bytes as U+FFFD). The pieces it emits, concatenated, equal
``tokenizer.decode(all_ids)``.

Example:
    >>> dec = IncrementalDecoder(tokenizer)  # doctest: +SKIP
    >>> pieces = [dec.push(t) for t in generated_ids] + [dec.flush()]  # doctest: +SKIP
    >>> full = tokenizer.decode(generated_ids, skip_special_tokens=True)  # doctest: +SKIP
    >>> "".join(pieces) == full  # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer

_REPLACEMENT = "\ufffd"


class IncrementalDecoder:
    """Turns a stream of token ids into text pieces, safe across multi-byte characters.

    Args:
        tokenizer: The ``tokenizers.Tokenizer`` that produced the ids.
        skip_special_tokens: Whether special tokens (e.g. ``<|im_end|>``) are left out of
            the text, as in ``Tokenizer.decode``.
    """

    def __init__(self, tokenizer: Tokenizer, *, skip_special_tokens: bool = True) -> None:
        self._tokenizer = tokenizer
        self._skip = skip_special_tokens
        self._vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
        self._ids: list[int] = []
        self._prefix = 0  # start of the decode window
        self._read = 0  # ids before this one have been emitted
        self._text: list[str] = []

    def _decode(self, start: int, stop: int) -> str:
        return self._tokenizer.decode(self._ids[start:stop], skip_special_tokens=self._skip)

    def push(self, token_ids: int | Iterable[int]) -> str:
        """Adds one id (or several) and returns the text that is now complete ('' if none).

        Raises:
            ValueError: If an id is not in the vocabulary.
        """
        ids = [token_ids] if isinstance(token_ids, int) else [int(t) for t in token_ids]
        for t in ids:
            if not 0 <= t < self._vocab_size:
                raise ValueError(f"token id {t} is out of range for a vocabulary of "
                                 f"{self._vocab_size} tokens")
        self._ids.extend(ids)
        window = self._decode(self._prefix, len(self._ids))
        if window.endswith(_REPLACEMENT):
            # Maybe the first bytes of a character whose remaining bytes come next.
            return ""
        piece = window[len(self._decode(self._prefix, self._read)):]
        self._prefix, self._read = self._read, len(self._ids)
        self._text.append(piece)
        return piece

    def flush(self) -> str:
        """Returns the text held back at the end of the stream (an incomplete character
        shows as U+FFFD, as in a full decode)."""
        if self._read == len(self._ids):
            return ""
        window = self._decode(self._prefix, len(self._ids))
        piece = window[len(self._decode(self._prefix, self._read)):]
        self._prefix = self._read = len(self._ids)
        self._text.append(piece)
        return piece

    @property
    def token_ids(self) -> list[int]:
        """All ids pushed so far."""
        return list(self._ids)

    @property
    def text(self) -> str:
        """All text emitted so far."""
        return "".join(self._text)
