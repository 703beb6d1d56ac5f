"""The content digest of a graph in memory, without writing its bytecode.

A warm load used to write the module to bytecode (12 ms for the 7 MB of weights of the encoder
benchmark) only to hash those bytes. Here the module is printed as text with every large
elements attribute elided (0.4 ms for that graph), and each elided attribute's raw data is
hashed straight from MLIR's storage (a zero-copy buffer), with where it sits and its type.
The digest is then a function of the module's whole content, as the bytecode's hash was:

* the text holds everything but the elided data, locations included (they name kernels);
* every elided attribute is found by a walk (op attributes, and arrays and dictionaries
  inside them) and hashed under its position (op ordinal in walk order, which the text
  fixes, and the attribute path), so moving data between ops changes the digest;
* the number of ``__elided__`` markers in the text must equal the number of attributes the
  walk hashed. An elided attribute the walk cannot reach (inside another kind of attribute)
  makes the text hold more markers than were hashed, and any marker spelled in a string
  adds one more: either way the counts differ and the digest falls back to hashing the
  bytecode (``None`` is returned). Every attribute the walk counts is one MLIR elides (same
  rule: more than the limit's elements, not a splat), so the counts cannot balance out.

Per-attribute digests may be kept in ``memo`` (keyed by the attribute's storage address):
MLIR attributes are immutable and live as long as their context, so a memo that lives no
longer than the context (``max.graph.Graph`` keeps one beside its own context) stays right.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

# Elements attributes with more elements than this are hashed from their data, not printed.
LARGE_ELEMENTS = 64
_MARKER = b"__elided__"
# Distinguishes these digests from digests of bytecode bytes, in the cache key.
_DOMAIN = b"max-graph-digest-v1\0"


def module_digest(module: Any, memo: dict[int, bytes] | None = None,
                  data: dict[str, memoryview] | None = None) -> bytes | None:
    """The sha256 digest of ``module``'s content, or None where only its bytecode can say.

    Args:
        module: an ``mlir.ir.Module``.
        memo: per-attribute digests to reuse and fill; it must not outlive the module's
            context (attribute addresses are reused after the context is gone).
        data: filled with the hashed attributes' bytes (zero-copy views, which keep their
            context alive) by the hex sha256 of those bytes: the cache compares a cached
            entry's constants with them instead of hashing its file.
    """
    from mlir import ir

    text = module.operation.get_asm(binary=True, large_elements_limit=LARGE_ELEMENTS,
                                    enable_debug_info=True)
    found: list[tuple[bytes, memoryview, int | None]] = []  # (position, bytes, memo key)
    state = {"ordinal": 0, "ok": True}

    def visit(attr: Any, path: str) -> None:
        if isinstance(attr, ir.DenseElementsAttr):
            if attr.is_splat or len(attr) <= LARGE_ELEMENTS:
                return  # printed in full
            try:
                view = memoryview(attr)
            except (TypeError, ValueError, RuntimeError, BufferError):
                view = None  # no buffer for bf16, fp8: the bytecode is hashed instead
            if view is None or not view.c_contiguous or view.nbytes == 0:
                state["ok"] = False
                return
            # Where it is, its type and the buffer's element format and shape (the same
            # bytes read as another type are another constant); the bytes' digest follows.
            where = f"{state['ordinal']}:{path}:{attr.type}:{view.format}:{view.shape}\0"
            found.append((where.encode(), view.cast("B"),
                          _address(attr) if memo is not None else None))
        elif isinstance(attr, ir.ArrayAttr):
            for i in range(len(attr)):
                visit(attr[i], f"{path}[{i}]")
        elif isinstance(attr, ir.DictAttr):
            for i in range(len(attr)):
                named = attr[i]
                visit(named.attr, f"{path}.{named.name}")

    def on_op(op: Any) -> Any:
        attrs = op.attributes
        for i in range(len(attrs)):
            named = attrs[i]
            visit(named.attr, named.name)
        state["ordinal"] += 1
        return ir.WalkResult.ADVANCE if state["ok"] else ir.WalkResult.INTERRUPT

    module.operation.walk(on_op)
    if not state["ok"] or text.count(_MARKER) != len(found):
        return None
    digests = _digests([(view, key) for _, view, key in found], memo)
    h = hashlib.sha256(_DOMAIN)
    h.update(len(text).to_bytes(8, "little"))
    h.update(text)
    for (where, view, _), digest in zip(found, digests):
        h.update(where)
        h.update(digest)
        if data is not None:
            data[digest.hex()] = view
    return h.digest()


def parallel_sha256(buffers: list[memoryview]) -> list[bytes]:
    """The sha256 digest of each buffer, on two threads where there is enough to hash."""
    return _digests([(b, None) for b in buffers], None)


# Below this many bytes to hash, one thread: a second one costs more than it saves.
_PARALLEL_BYTES = 1 << 20


def _digests(items: list[tuple[memoryview, int | None]],
             memo: dict[int, bytes] | None) -> list[bytes]:
    """sha256 of each buffer (or its memo entry). hashlib releases the GIL on large buffers,
    so two threads hash two sets of buffers at once: 7 MB took 2.4 ms instead of 4.0."""
    out: list[bytes | None] = [memo.get(key) if memo is not None and key is not None else None
                               for _, key in items]
    todo = sorted((i for i, d in enumerate(out) if d is None), key=lambda i: -items[i][0].nbytes)
    parts: list[list[int]] = [[], []]
    loads = [0, 0]
    for i in todo:  # largest first, each to the lighter part
        k = 0 if loads[0] <= loads[1] else 1
        parts[k].append(i)
        loads[k] += items[i][0].nbytes

    def work(part: list[int]) -> None:
        for i in part:
            out[i] = hashlib.sha256(items[i][0]).digest()

    if loads[1] and sum(loads) >= _PARALLEL_BYTES:
        import threading

        helper = threading.Thread(target=work, args=(parts[1],), daemon=True)
        helper.start()
        work(parts[0])
        helper.join()
    else:
        work(parts[0] + parts[1])
    for (_, key), digest in zip(items, out):
        if memo is not None and key is not None:
            memo[key] = digest  # type: ignore[assignment]
    return out  # type: ignore[return-value]


@functools.cache
def _capsule_api() -> tuple[Any, Any]:
    import ctypes

    api = ctypes.PyDLL(None)  # the interpreter's own C API, with the GIL held
    name, pointer = api.PyCapsule_GetName, api.PyCapsule_GetPointer
    name.restype, name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    pointer.restype, pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return name, pointer


def _address(attr: Any) -> int | None:
    """The address of the attribute's storage (its identity in the context), from the
    bindings' C-API capsule; None where it cannot be read (no memo then)."""
    name, pointer = _capsule_api()
    try:
        capsule = attr._CAPIPtr
        return pointer(capsule, name(capsule))
    except (AttributeError, ValueError, TypeError):
        return None
