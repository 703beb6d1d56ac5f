"""argsort of one line by sorting 64-bit words (``mo.argsort`` of keys up to 32 bits).

Each element becomes one word: its key, mapped to an unsigned integer whose order is the sort
order, in the high 32 bits, its position in the low 32. Words sort as unsigned integers, so
equal keys stay in position order (the op is stable) with one compare and no indirection.
A line of :data:`RADIX_MIN_N` elements or more is sorted by a least-significant-digit radix
sort: one counting pass for every digit's histogram, then one stable scatter a digit (a byte
of the key) between two buffers, O(n) each; a shorter one by insertion (its quadratic steps
cost less there than zeroing and scanning 256 counters a digit). A prefix of the order
(``top_k``) is a radix select first (:func:`select_line`). Keys wider than 32 bits (f64,
64-bit integers) keep the merge sort in ``indexing.py``.

The key map (``descending`` inverts it; float8 is decoded to f32 first):
- floats: the bits of the value, -0.0 as +0.0 and every NaN as the largest key (NaN above
  every number; NaNs equal); a negative value's bits all flipped, a non-negative one's sign bit
  set: unsigned order is then numeric order. f16/bf16 in their own 16 bits (two digits).
- signed integers: the sign bit flipped; unsigned and bool: as they are.
Keys of 8, 16 or 32 bits take 1, 2 or 4 digits (scatter passes).
"""

from __future__ import annotations

from collections.abc import Callable

from mlir import ir
from mlir.dialects import arith, tensor

from max.compiler.lowering.builders import index_constant, scalar
from max.compiler.lowering.context import kind_of
from max.compiler.lowering.float8 import decode, is_float8
from max.compiler.lowering.scalar_loops import choose, for_, while_

I = arith.CmpIPredicate
F = arith.CmpFPredicate
_c = index_constant

#: Lines of at least this many elements are radix sorted, shorter ones by insertion. One
#: thread, f32, 1000 lines: radix 0.50 / 0.84 / 1.55 us a line of 16 / 64 / 128.
RADIX_MIN_N = 32
RADIX = 256
MAX_DIGITS = 4
#: Positions fit the low 32 bits of a word.
MAX_N = 1 << 32


def key_bits(mo_element: str) -> int | None:
    """Bits of the sortable key of an element type (8, 16 or 32: one radix digit a byte), or
    None where it needs more than 32."""
    if is_float8(mo_element):
        return 32  # decoded to f32
    if mo_element in ("f16", "bf16"):
        return 16
    if mo_element == "i1":
        return 8  # stored as i8
    width = int("".join(ch for ch in mo_element if ch.isdigit()))
    return width if width <= 32 else None


def _i(width: int) -> ir.IntegerType:
    return ir.IntegerType.get_signless(width)


def sortable_key(v: ir.Value, mo_element: str, descending: bool) -> ir.Value:
    """The element ``v`` (as stored) mapped to an i32 whose unsigned order is the sort order;
    only its low :func:`key_bits` bits are set."""
    bits = key_bits(mo_element)
    assert bits is not None
    iw = _i(bits)
    ones, sign = scalar(iw, (1 << bits) - 1), scalar(iw, 1 << (bits - 1))
    kind = kind_of(mo_element)
    if kind == "float":
        if is_float8(mo_element):
            v = decode(v, mo_element)
        zero = scalar(iw, 0)
        # -0.0 == +0.0, and every NaN one value above every number.
        raw = arith.select(arith.cmpf(F.OEQ, v, scalar(v.type, 0.0)), zero,
                           arith.bitcast(iw, v))
        mapped = arith.xori(raw, arith.select(arith.cmpi(I.slt, raw, zero), ones, sign))
        mapped = arith.select(arith.cmpf(F.UNO, v, v), ones, mapped)
    elif kind == "sint":
        mapped = arith.xori(v, sign)
    else:  # uint, bool (stored as i8 0/1)
        mapped = v
    if descending:
        mapped = arith.xori(mapped, ones)
    return mapped if bits == 32 else arith.extui(_i(32), mapped)


def applies(mo_element: str, n: int | None) -> bool:
    """Whether lines of ``n`` elements (None: symbolic) of this type are sorted as words."""
    return key_bits(mo_element) is not None and (n is None or n < MAX_N)


def _words(n: ir.Value, mo_element: str, descending: bool,
           element: Callable[[ir.Value], ir.Value], words: ir.Value,
           per_word: Callable[[ir.Value, ir.Value], ir.Value] | None = None,
           counts: ir.Value | None = None) -> list[ir.Value]:
    """``words`` filled with the line's words; ``per_word(word, counts)`` also updates
    ``counts`` (then returned second)."""
    i64 = _i(64)

    def make(t: ir.Value, s: list[ir.Value]) -> list[ir.Value]:
        key = arith.extui(i64, sortable_key(element(t), mo_element, descending))
        word = arith.ori(arith.shli(key, scalar(i64, 32)), arith.index_cast(i64, t))
        rest = [per_word(word, s[1])] if per_word is not None else []
        return [tensor.insert(word, s[0], [t]), *rest]

    return for_(_c(0), n, _c(1), [words] + ([counts] if per_word is not None else []), make)


def _byte(word: ir.Value, d: int) -> ir.Value:
    """Digit ``d`` of ``word``'s key (an index below RADIX)."""
    i64 = _i(64)
    byte = arith.andi(arith.shrui(word, scalar(i64, 32 + 8 * d)), scalar(i64, RADIX - 1))
    return arith.index_cast(ir.IndexType.get(), byte)


def _digit(word: ir.Value, d: int) -> ir.Value:
    """The counter slot of ``word``'s digit ``d`` (digit d's counters start at d * RADIX)."""
    return arith.addi(_byte(word, d), _c(d * RADIX))


def _bump(cnt: ir.Value, slot: ir.Value) -> ir.Value:
    return tensor.insert(arith.addi(tensor.extract(cnt, [slot]), _c(1)), cnt, [slot])


def _zero(counts: ir.Value, slots: int) -> ir.Value:
    return for_(_c(0), _c(slots), _c(1), [counts],
                lambda t, s: [tensor.insert(_c(0), s[0], [t])])[0]


def _count(word: ir.Value, cnt: ir.Value, digits: range) -> ir.Value:
    """``cnt`` with the counter of each of ``word``'s ``digits`` incremented."""
    for d in digits:
        cnt = _bump(cnt, _digit(word, d))
    return cnt


def _sort_words(n: ir.Value, digits: int, src: ir.Value, dst: ir.Value, counts: ir.Value,
                counted: bool) -> list[ir.Value]:
    """``src[:n]`` radix sorted (``counted``: ``counts`` already holds every digit's counts);
    returns ``[sorted, src's latest, dst's latest, counts]`` (sorted is one of the two)."""
    if not counted:
        counts = _zero(counts, digits * RADIX)
        counts = for_(_c(0), n, _c(1), [counts], lambda t, s: [
            _count(tensor.extract(src, [t]), s[0], range(digits))])[0]

    # Each digit's counts -> the first slot of its bucket (an exclusive prefix sum).
    for d in range(digits):
        def scan(t: ir.Value, s: list[ir.Value], d: int = d) -> list[ir.Value]:
            cnt, total = s
            slot = arith.addi(t, _c(d * RADIX))
            here = tensor.extract(cnt, [slot])
            return [tensor.insert(total, cnt, [slot]), arith.addi(total, here)]
        counts = for_(_c(0), _c(RADIX), _c(1), [counts, _c(0)], scan)[0]

    a, b = src, dst  # a: where the words are now
    for d in range(digits):
        def scatter(t: ir.Value, s: list[ir.Value], d: int = d,
                    a: ir.Value = a) -> list[ir.Value]:
            out, cnt = s
            word = tensor.extract(a, [t])
            slot = _digit(word, d)
            at = tensor.extract(cnt, [slot])
            return [tensor.insert(word, out, [at]),
                    tensor.insert(arith.addi(at, _c(1)), cnt, [slot])]
        written, counts = for_(_c(0), n, _c(1), [b, counts], scatter)
        a, b = written, a
    # After an even number of digits the words are back in src's buffer.
    return [a, a, b, counts] if digits % 2 == 0 else [a, b, a, counts]


def _radix(n: ir.Value, mo_element: str, descending: bool,
           element: Callable[[ir.Value], ir.Value], words: ir.Value, spare: ir.Value,
           counts: ir.Value) -> list[ir.Value]:
    digits = (key_bits(mo_element) or 0) // 8
    counts = _zero(counts, digits * RADIX)
    words, counts = _words(n, mo_element, descending, element, words,
                           lambda w, cnt: _count(w, cnt, range(digits)), counts)
    return _sort_words(n, digits, words, spare, counts, counted=True)


def select_line(n: ir.Value, keep: ir.Value, mo_element: str, descending: bool,
                element: Callable[[ir.Value], ir.Value], words: ir.Value, spare: ir.Value,
                counts: ir.Value) -> list[ir.Value]:
    """:func:`sort_line` for the first ``keep`` of the order only: a radix select. The top
    digit's histogram gives the bucket the ``keep``-th word falls in; the words of it and
    the buckets before (``keep`` plus about ``n / 256`` on most data) are copied out in
    line order and radix sorted; the rest is never sorted. Returns as :func:`sort_line`;
    the sorted tensor's first ``keep`` words are the line's first ``keep``."""
    digits = (key_bits(mo_element) or 0) // 8
    top = digits - 1
    counts = _zero(counts, RADIX)

    words, counts = _words(n, mo_element, descending, element, words,
                           lambda word, cnt: _bump(cnt, _byte(word, top)), counts)

    # The first bucket whose words reach ``keep``, and how many words reach it.
    def find(t: ir.Value, s: list[ir.Value]) -> list[ir.Value]:
        total, bucket, through = s
        total = arith.addi(total, tensor.extract(counts, [t]))
        first = arith.andi(arith.cmpi(I.sge, total, keep), arith.cmpi(I.eq, bucket, _c(RADIX)))
        return [total, arith.select(first, t, bucket), arith.select(first, total, through)]

    _, bucket, through = for_(_c(0), _c(RADIX), _c(1), [_c(0), _c(RADIX), _c(0)], find)

    def gather(t: ir.Value, s: list[ir.Value]) -> list[ir.Value]:
        out, at = s
        word = tensor.extract(words, [t])
        # Written always (at <= t: inside the buffer), kept by advancing.
        take = arith.cmpi(I.sle, _byte(word, top), bucket)
        return [tensor.insert(word, out, [at]),
                arith.addi(at, arith.select(take, _c(1), _c(0)))]

    spare, _ = for_(_c(0), n, _c(1), [spare, _c(0)], gather)
    # Sorted from the spare buffer into the words one: slots swap back for the caller.
    out, spare, words, counts = _sort_words(through, digits, spare, words, counts,
                                            counted=False)
    return [out, words, spare, counts]


def _insertion(n: ir.Value, mo_element: str, descending: bool,
               element: Callable[[ir.Value], ir.Value], words: ir.Value, spare: ir.Value,
               counts: ir.Value) -> list[ir.Value]:
    (words,) = _words(n, mo_element, descending, element, words)

    def insert(i: ir.Value, s: list[ir.Value]) -> list[ir.Value]:
        word = tensor.extract(s[0], [i])

        def larger_before(a: list[ir.Value]) -> ir.Value:
            j, buf = a
            prev = tensor.extract(buf, [arith.maxsi(arith.subi(j, _c(1)), _c(0))])
            return arith.andi(arith.cmpi(I.sgt, j, _c(0)), arith.cmpi(I.ugt, prev, word))

        def shift(a: list[ir.Value]) -> list[ir.Value]:
            j, buf = a
            prev = arith.subi(j, _c(1))
            return [prev, tensor.insert(tensor.extract(buf, [prev]), buf, [j])]

        j, buf = while_([i, s[0]], larger_before, shift)
        return [tensor.insert(word, buf, [j])]

    (words,) = for_(_c(1), n, _c(1), [words], insert)
    return [words, words, spare, counts]


def sort_line(n: ir.Value, n_static: int | None, mo_element: str, descending: bool,
              element: Callable[[ir.Value], ir.Value], words: ir.Value, spare: ir.Value,
              counts: ir.Value) -> list[ir.Value]:
    """Sorts one line; returns ``[sorted, words, spare, counts]``: the tensor holding the
    line's words in order (one of the two buffers), then the three scratch buffers' latest
    values (to be carried to the next line). ``element(pos)``: the line's element at index
    ``pos`` (index); ``words``/``spare``: i64 buffers of n; ``counts``: an index buffer of
    :data:`MAX_DIGITS` * :data:`RADIX`. ``n_static``: n where it is static (the sort is then
    chosen at compile time, else at run time)."""
    args = (n, mo_element, descending, element, words, spare, counts)
    if n_static is not None:
        return (_radix if n_static >= RADIX_MIN_N else _insertion)(*args)
    return choose(arith.cmpi(I.sge, n, _c(RADIX_MIN_N)),
                  [words.type, words.type, spare.type, counts.type],
                  lambda: _radix(*args), lambda: _insertion(*args))


def position(word: ir.Value) -> ir.Value:
    """The i64 position held in a sorted word's low 32 bits."""
    return arith.andi(word, scalar(_i(64), (1 << 32) - 1))


__all__ = ["MAX_DIGITS", "MAX_N", "RADIX", "RADIX_MIN_N", "applies", "key_bits", "position",
           "select_line", "sort_line", "sortable_key"]
