"""max.profiler: Tracer / traced / Trace semantics, the Chrome trace JSON, the switches."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import subprocess
import sys

import pytest

from max import profiler

EPS_US = 0.002  # ts and dur are rounded to the nanosecond: containment up to that


@pytest.fixture
def on():
    profiler.reset()
    profiler.enable_profiling()
    yield
    profiler.enable_profiling(False)
    profiler.reset()


def _spans(trace: dict | None = None) -> list[dict]:
    trace = trace if trace is not None else profiler.chrome_trace()
    return [e for e in trace["traceEvents"] if e["ph"] == "X"]


def _inside(child: dict, parent: dict) -> bool:
    return (parent["ts"] - EPS_US <= child["ts"]
            and child["ts"] + child["dur"] <= parent["ts"] + parent["dur"] + EPS_US)


def test_signatures_are_the_references():
    sig = inspect.signature
    assert str(sig(profiler.Tracer)) == "(message: 'str | None' = None, color: 'str' = " \
                                        "'modular_purple') -> 'None'"
    assert list(sig(profiler.Tracer.push).parameters) == ["self", "message", "color"]
    assert sig(profiler.Tracer.push).parameters["message"].default is None
    assert list(sig(profiler.Tracer.pop).parameters) == ["self", "exc_type", "exc_value",
                                                          "traceback"]
    assert sig(profiler.Tracer.next).parameters["message"].default is inspect.Parameter.empty
    assert sig(profiler.Tracer.next).parameters["color"].default == "modular_purple"
    params = sig(profiler.traced).parameters
    assert list(params) == ["func", "message", "color"]
    assert params["message"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["func"].default is None and params["color"].default == "modular_purple"


def test_nested_spans_make_valid_chrome_json(on, tmp_path):
    with profiler.Tracer("parent", color="red") as tracer:
        tracer.push("child")
        tracer.push("grandchild")
        tracer.mark()
        tracer.pop()
        tracer.next("sibling")
        # left open: the context exit closes it
    path = profiler.write_chrome_trace(tmp_path / "t.json")
    trace = json.loads(path.read_text())
    events = trace["traceEvents"]
    spans = {e["name"]: e for e in _spans(trace)}
    assert set(spans) == {"parent", "child", "grandchild", "sibling"}
    for e in spans.values():
        assert e["dur"] >= 0 and e["pid"] == os.getpid() and isinstance(e["tid"], int)
        assert e["cat"] == "span" and e["args"]["color"] in ("red", "modular_purple")
    assert spans["parent"]["args"]["color"] == "red"
    assert _inside(spans["grandchild"], spans["child"])
    assert _inside(spans["child"], spans["parent"]) and _inside(spans["sibling"], spans["parent"])
    assert spans["sibling"]["ts"] >= spans["child"]["ts"] + spans["child"]["dur"] - EPS_US
    marks = [e for e in events if e["ph"] == "i"]
    assert [m["name"] for m in marks] == ["grandchild"]
    assert _inside({"ts": marks[0]["ts"], "dur": 0}, spans["grandchild"])
    names = [e for e in events if e["ph"] == "M"]
    assert names and names[0]["name"] == "thread_name"


def test_traced_sync_async_and_errors(on):
    @profiler.traced
    def plain(x: int) -> int:
        """Doc."""
        return x + 1

    @profiler.traced(message="renamed", color="blue")
    async def coroutine() -> str:
        with profiler.Tracer("inside"):
            await asyncio.sleep(0)
        return "done"

    @profiler.traced
    def fails() -> None:
        raise KeyError("x")

    assert plain(1) == 2 and plain.__name__ == "plain" and plain.__doc__ == "Doc."
    assert inspect.iscoroutinefunction(coroutine)
    assert asyncio.run(coroutine()) == "done"
    with pytest.raises(KeyError):
        fails()
    spans = {e["name"]: e for e in _spans()}
    assert set(spans) == {"plain", "renamed", "inside", "fails"}
    assert spans["renamed"]["args"]["color"] == "blue"
    assert _inside(spans["inside"], spans["renamed"])
    assert spans["fails"]["args"]["exception"] == "KeyError"


def test_trace_context_manager_and_exceptions(on):
    with pytest.raises(ValueError), profiler.Trace("outer"), profiler.Tracer("inner"):
        raise ValueError("boom")
    spans = {e["name"]: e for e in _spans()}
    assert spans["outer"]["args"]["exception"] == "ValueError"
    assert spans["inner"]["args"]["exception"] == "ValueError"
    assert _inside(spans["inner"], spans["outer"])


def test_disabled_records_nothing_and_keeps_the_stack():
    profiler.reset()
    profiler.enable_profiling(False)
    assert not profiler.is_profiling_enabled()
    tracer = profiler.Tracer("a")
    tracer.push("b")
    tracer.mark()  # the stack holds placeholders: no assertion
    tracer.next("c")
    tracer.cleanup()

    @profiler.traced
    def f() -> int:
        return 3

    assert f() == 3
    with profiler.Trace("t") as t:
        t.mark()
    assert profiler.trace_events() == []


def test_stack_errors(on):
    tracer = profiler.Tracer()
    with pytest.raises(AssertionError):
        tracer.mark()
    with pytest.raises(IndexError, match="no profiling span is open"):
        tracer.pop()
    tracer.push()  # no message: a placeholder, no span
    tracer.pop()
    assert _spans() == []


def test_cleanup_and_deletion_close_open_spans(on):
    tracer = profiler.Tracer("a")
    tracer.push("b")
    tracer.cleanup()
    assert sorted(e["name"] for e in _spans()) == ["a", "b"]
    profiler.reset()
    tracer = profiler.Tracer("dropped")
    del tracer
    assert [e["name"] for e in _spans()] == ["dropped"]


def test_summary_counts_spans(on):
    for _ in range(3):
        with profiler.Tracer("step"):
            pass
    with profiler.Tracer("once"):
        pass
    text = profiler.summary()
    lines = {line.split()[0]: line.split() for line in text.splitlines()[1:]}
    assert lines["step"][2] == "3" and lines["once"][2] == "1"
    assert float(lines["step"][3]) >= 0


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items()
            if k not in ("MODULAR_ENABLE_PROFILING", "MAX_PROFILE_KERNELS")}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full, timeout=120)


def test_environment_switch():
    code = "from max import profiler; print(profiler.is_profiling_enabled())"
    assert _run(code).stdout.strip() == "False"
    assert _run(code, MODULAR_ENABLE_PROFILING="1").stdout.strip() == "True"
    r = _run(code, MODULAR_ENABLE_PROFILING="maybe")
    assert r.stdout.strip() == "False" and "MODULAR_ENABLE_PROFILING" in r.stderr
    r = _run("from max.engine import InferenceSession; InferenceSession()",
             MODULAR_ENABLE_PROFILING="maybe")
    assert r.returncode != 0
    assert "ValueError: MODULAR_ENABLE_PROFILING must be 1 or 0" in r.stderr
