"""Performance profiling and tracing utilities for MAX.

Spans are named, nested time ranges recorded into an in-process trace, which
:func:`write_chrome_trace` writes as Chrome trace JSON (``chrome://tracing``, Perfetto) and
:func:`summary` sums up per name. Profiling is off unless ``MODULAR_ENABLE_PROFILING=1`` is
set (or ``MAX_PROFILE_KERNELS`` names a trace file, or :func:`enable_profiling` is called);
while it is off, every span is a no-op that costs one attribute read. While it is on, each
``Model.execute`` is a span too, with the kernels of a model compiled under
``MAX_PROFILE_KERNELS`` nested in it (README, "Profiling").

Three ways to make spans:

1. :class:`Tracer` as a context manager around a block;
2. :func:`traced` as a decorator of a function (synchronous or ``async``);
3. :class:`Tracer`'s ``push``/``pop``/``next`` to open and close spans by hand.

Example:
    >>> from max import profiler
    >>> profiler.enable_profiling()
    >>> with profiler.Tracer("load") as tracer:
    ...     tracer.push("parse")
    ...     tracer.next("compile")
    >>> @profiler.traced
    ... def step() -> int:
    ...     return 1
    >>> step()
    1
    >>> sorted(e["name"] for e in profiler.trace_events() if e["ph"] == "X")
    ['compile', 'load', 'parse', 'step']
    >>> profiler.enable_profiling(False); profiler.reset()
"""

from __future__ import annotations

import functools
import inspect
import time
import warnings
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from max.profiler._trace import (
    ENABLE_ENV,
    STATE,
    chrome_trace,
    env_enabled,
    record,
    reset,
    summary,
    trace_events,
    write_chrome_trace,
)

_FuncType = TypeVar("_FuncType", bound=Callable[..., Any])
_DEFAULT_COLOR = "modular_purple"

try:
    STATE.enabled = env_enabled()
except ValueError as _e:  # importing must not fail; InferenceSession() raises it
    warnings.warn(f"{_e}; profiling stays off", RuntimeWarning, stacklevel=2)


def is_profiling_enabled() -> bool:
    """Whether spans are being recorded."""
    return STATE.enabled


def enable_profiling(enabled: bool = True) -> None:
    """Turns recording on or off for this process (``MODULAR_ENABLE_PROFILING`` sets the
    initial state). Spans open while it changes are closed as they were opened."""
    STATE.enabled = bool(enabled)


class _Span:
    __slots__ = ("message", "color", "start")

    def __init__(self, message: str, color: str) -> None:
        self.message = message
        self.color = color
        self.start = time.monotonic_ns()

    def close(self, exc_type: type[BaseException] | None = None) -> None:
        end = time.monotonic_ns()
        args: dict[str, Any] = {"color": self.color}
        if exc_type is not None:
            args["exception"] = exc_type.__name__
        record("X", self.message, self.start, end - self.start, args=args)


class Trace:
    """One profiling span as a context manager: ``with Trace("step"): ...``.

    Args:
        message: The name of the span.
        color: The color of the span for visualization tools (kept in the event's args).
    """

    __slots__ = ("_message", "_color", "_span")

    def __init__(self, message: str, color: str = _DEFAULT_COLOR) -> None:
        self._message = message
        self._color = color
        self._span: _Span | None = None

    def __enter__(self) -> Trace:
        if STATE.enabled:
            self._span = _Span(self._message, self._color)
        return self

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc_value: BaseException | None, traceback: TracebackType | None) -> None:
        span, self._span = self._span, None
        if span is not None:
            span.close(exc_type)

    def mark(self) -> None:
        """Records an instant event inside the span."""
        if self._span is not None:
            record("i", self._message, time.monotonic_ns(), args={"color": self._color})


class Tracer:
    """A stack-based profiling manager for creating nested profiling spans.

    Usable as a context manager (every span still open is closed on exit) or as a manual
    stack (:meth:`push`, :meth:`pop`, :meth:`next`).

    Args:
        message: The name of the initial profiling span. If None, no initial span is created.
        color: The color of the profiling span for visualization tools.

    Example:
        >>> with Tracer("parent_operation") as tracer:
        ...     tracer.push("child_operation")
        ...     tracer.pop()
    """

    def __init__(self, message: str | None = None, color: str = _DEFAULT_COLOR) -> None:
        self._stack: list[_Span | None] = []
        if message is not None:
            self.push(message, color)

    def __enter__(self) -> Tracer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc_value: BaseException | None, traceback: TracebackType | None) -> None:
        while self._stack:
            self.pop(exc_type, exc_value, traceback)

    def __del__(self) -> None:
        try:
            self.cleanup()
        except Exception:  # noqa: BLE001 - a finalizer must not raise (interpreter teardown)
            pass

    def push(self, message: str | None = None, color: str = _DEFAULT_COLOR) -> None:
        """Pushes a new profiling span onto the stack.

        If profiling is disabled or no message is provided, pushes a None placeholder to
        maintain stack consistency.
        """
        self._stack.append(_Span(message, color) if message is not None and STATE.enabled
                           else None)

    def pop(self, exc_type: type[BaseException] | None = None,
            exc_value: BaseException | None = None,
            traceback: TracebackType | None = None) -> None:
        """Pops the most recently pushed span off the stack and records it.

        Raises:
            IndexError: if no span is open.
        """
        if not self._stack:
            raise IndexError("Tracer.pop: no profiling span is open")
        span = self._stack.pop()
        if span is not None:
            span.close(exc_type)

    def next(self, message: str, color: str = _DEFAULT_COLOR) -> None:
        """Pops the current span and pushes a new one at the same nesting level."""
        self.pop()
        self.push(message, color)

    def mark(self) -> None:
        """Records an instant event (a timestamp) in the current span.

        Raises:
            AssertionError: if the stack is empty.
        """
        assert self._stack, "Tracer.mark: no profiling span is open"
        span = self._stack[-1]
        if span is not None:
            record("i", span.message, time.monotonic_ns(), args={"color": span.color})

    def cleanup(self) -> None:
        """Closes all remaining profiling spans (as on context exit or deletion)."""
        while self._stack:
            self.pop()


def traced(func: _FuncType | None = None, *, message: str | None = None,
           color: str = _DEFAULT_COLOR) -> Any:
    """Decorator for creating a profiling span for each call of a function.

    Works on synchronous and ``async`` functions, bare (``@traced``) or with arguments
    (``@traced(message="inference")``).

    Args:
        func: The function to profile.
        message: The name of the span. If None, uses the function name.
        color: The color of the span for visualization tools.

    Returns:
        The decorated function.
    """

    def decorate(f: _FuncType) -> _FuncType:
        name = message if message is not None else getattr(f, "__name__", repr(f))
        if inspect.iscoroutinefunction(f):
            @functools.wraps(f)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                if not STATE.enabled:
                    return await f(*args, **kwargs)
                span = _Span(name, color)
                try:
                    result = await f(*args, **kwargs)
                except BaseException as e:
                    span.close(type(e))
                    raise
                span.close()
                return result

            return run_async  # type: ignore[return-value]

        @functools.wraps(f)
        def run(*args: Any, **kwargs: Any) -> Any:
            if not STATE.enabled:
                return f(*args, **kwargs)
            span = _Span(name, color)
            try:
                result = f(*args, **kwargs)
            except BaseException as e:
                span.close(type(e))
                raise
            span.close()
            return result

        return run  # type: ignore[return-value]

    if func is not None:
        return decorate(func)
    return decorate


def record_complete(name: str, start_ns: int, duration_ns: int, *, category: str,
                    args: dict[str, Any] | None = None) -> None:
    """Records a span measured elsewhere (``time.monotonic_ns`` clock), e.g. a compiled
    kernel's; a no-op while profiling is off."""
    if STATE.enabled:
        record("X", name, start_ns, duration_ns, category=category, args=args)


def kernel_report() -> str:
    """The kernel tables of the models profiled so far (``MAX_PROFILE_KERNELS``): per kernel,
    its MO ops, scheduled or plain, calls, total ms, mean us and % of the calls' time."""
    from max.runtime.kernel_profile import report

    return report()


__all__ = [
    "ENABLE_ENV",
    "Trace",
    "Tracer",
    "chrome_trace",
    "enable_profiling",
    "is_profiling_enabled",
    "kernel_report",
    "record_complete",
    "reset",
    "summary",
    "trace_events",
    "traced",
    "write_chrome_trace",
]
