"""A call of a compiled graph written out for one thread's frame: the common case in
straight-line code.

:meth:`CpuExecutable.run <max.runtime.executable.CpuExecutable.run>` is general: loops over
the inputs and outputs, a shape binding, a dtype check by equality. Most calls are the same
as the last one: the same number of C-contiguous inputs of the same dtypes and shapes. For
those, this module generates (``exec``, as ``dataclasses`` does) a function of exactly that
many inputs that checks them and writes the descriptors in straight-line code, allocates the
outputs with their shapes as constants where they are static, calls the entry and returns
the outputs. ``x + 1`` on 4 floats through ``Model.execute``: 3.5-3.7 us before, about half
after (docs/performance.md).

The generated function returns None, before touching anything, for any call it does not
cover (a new shape, an unusual dtype object, a strided or foreign input): the caller then
takes the general path, which converts, checks, raises the precise errors, and binds the
new shapes for the next fast call. It is never made for outputs the compiled code allocates
(sized by the data), nor for buffer inputs (the caller checks those).
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from max.runtime.pool import pooled_empty

FastCall = Callable[..., "list[Any] | None"]

_from_buffer = ctypes.c_char.from_buffer
_addressof = ctypes.addressof


def build(frame: Any, in_dtypes: Sequence[np.dtype],
          outputs: Sequence[tuple[np.dtype, tuple[int, ...] | None, bool]],
          fn: Callable[..., Any], raise_check: Callable[[np.ndarray], None],
          unwrap: type | None = None,
          wrap: tuple[Callable[..., Any], Sequence[Any], Any] | None = None) -> FastCall:
    """The fast call of ``frame`` (a ``_Frame``, whose descriptors it writes).

    Args:
        frame: the thread's frame: ``in_descs``, ``out_descs``, ``args``, ``last_shapes``,
            ``last_outs``, ``checks``/``checks_bytes``/``no_checks``.
        in_dtypes: the dtype of each input the call passes.
        outputs: per output the caller allocates: dtype, static shape (None if dynamic: the
            shape is the frame's ``last_outs``) and, if static, whether it is pooled.
        fn: the compiled entry; ``raise_check`` raises the failed runtime checks.
        unwrap: a type whose instances hold their array in ``_array`` (``max.driver.Tensor``),
            accepted as inputs besides numpy arrays.
        wrap: ``(wrap, dtypes, device)``: each output returned as ``wrap(array, dtype,
            device)``; else the arrays are returned.
    """
    n = len(in_dtypes)
    env: dict[str, Any] = {
        "frame": frame, "fn": fn, "args": frame.args, "raise_check": raise_check,
        "ndarray": np.ndarray, "empty": np.empty, "pooled": pooled_empty, "prod": math.prod,
        "from_buffer": _from_buffer, "addressof": _addressof, "UNWRAP": unwrap,
    }
    params = ", ".join(f"a{i}" for i in range(n))
    lines = [f"def fast_call({params}):"]
    for i, dtype in enumerate(in_dtypes):
        env[f"D{i}"] = dtype
        lines.append(f"    t = type(a{i})")
        if unwrap is not None:
            lines += [f"    if t is UNWRAP:", f"        a{i} = a{i}._array",
                      f"    elif t is not ndarray:", "        return None"]
        else:
            lines += [f"    if t is not ndarray:", "        return None"]
    # The shapes first: where they change at every call (a decoder's growing cache), the
    # call is handed back at the least cost.
    shapes = ", ".join(f"a{i}.shape" for i in range(n)) + ("," if n == 1 else "")
    lines += [f"    if ({shapes}) != frame.last_shapes:", "        return None"]
    for i in range(n):
        lines += [f"    f = a{i}.flags",
                  f"    if a{i}.dtype is not D{i} or not (f.c_contiguous and f.aligned):",
                  "        return None"]
    # Past this point the call is ours: descriptors written, outputs allocated.
    for i in range(n):
        env[f"I{i}"] = frame.in_descs[i]
        lines += _pointer(f"a{i}", f"I{i}")
    if any(shape is None for _, shape, _ in outputs):
        lines.append("    outs = frame.last_outs")
    for j, (dtype, shape, pool) in enumerate(outputs):
        env[f"OD{j}"], env[f"O{j}"] = dtype, frame.out_descs[j]
        if shape is None:
            lines += [f"    shape, pool = outs[{j}]",
                      "    if pool:",
                      f"        o{j}, p = pooled(shape, OD{j}, OD{j}.itemsize * prod(shape))",
                      "    else:",
                      f"        o{j} = empty(shape, OD{j})",
                      *["    " + line for line in _pointer(f"o{j}", None)],
                      f"    O{j}.allocated = p", f"    O{j}.aligned = p"]
        elif pool:
            env[f"S{j}"] = shape
            lines += [f"    o{j}, p = pooled(S{j}, OD{j}, {dtype.itemsize * math.prod(shape)})",
                      f"    O{j}.allocated = p", f"    O{j}.aligned = p"]
        else:
            env[f"S{j}"] = shape
            lines.append(f"    o{j} = empty(S{j}, OD{j})")
            lines += _pointer(f"o{j}", f"O{j}")
    lines.append("    fn(*args)")
    if frame.checks_bytes is not None:
        env["CB"], env["NO_CHECKS"], env["CHECKS"] = (frame.checks_bytes, frame.no_checks,
                                                      frame.checks)
        lines += ["    if CB != NO_CHECKS:", "        raise_check(CHECKS)"]
    if wrap is None:
        results = ", ".join(f"o{j}" for j in range(len(outputs)))
    else:
        env["WRAP"], env["DEV"] = wrap[0], wrap[2]
        for j, dt in enumerate(wrap[1]):
            env[f"W{j}"] = dt
        results = ", ".join(f"WRAP(o{j}, W{j}, DEV)" for j in range(len(outputs)))
    lines.append(f"    return [{results}]")
    exec("\n".join(lines), env)  # noqa: S102 (our own text, from dtypes and shapes)
    # Taken out of its own globals: no reference cycle keeps the compiled code alive.
    return env.pop("fast_call")


def _pointer(array: str, desc: str | None) -> list[str]:
    """Lines setting ``p`` to ``array``'s data address (``data_pointer``'s fast path, the
    ctypes attribute for a read-only or empty array), then ``desc``'s two pointers."""
    lines = ["    try:", f"        p = addressof(from_buffer({array}))",
             "    except (TypeError, ValueError, BufferError):",
             f"        p = {array}.ctypes.data"]
    if desc is not None:
        lines += [f"    {desc}.allocated = p", f"    {desc}.aligned = p"]
    return lines


__all__ = ["FastCall", "build"]
