"""The compile cache and the compiler worker: hits, corrupt entries, crashes, bad files, races."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from max.compiler import driver
from max.compiler.cache import cache_key, compiler_version
from max.compiler.passes.registry import CompilationError
from max.engine import InferenceSession

import graphs


def _write(tmp_path, text, name="g.mlir"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _entries(cache):
    return sorted(p for p in cache.iterdir() if not p.name.startswith("."))


def _works(model, n=3):
    a = np.arange(3 * n, dtype=np.float32).reshape(n, 3)
    np.testing.assert_array_equal(model.execute(a, a)[0].to_numpy(), a + a)


def test_second_load_hits_the_cache(private_cache, tmp_path):
    path = _write(tmp_path, graphs.ADD)
    before = driver.stats.copy()
    _works(InferenceSession().load(path))
    assert driver.stats["compiles"] == before["compiles"] + 1
    _works(InferenceSession().load(path))
    assert driver.stats["compiles"] == before["compiles"] + 1
    assert driver.stats["cache_hits"] == before["cache_hits"] + 1
    (entry,) = _entries(private_cache)
    assert sorted(p.name for p in entry.iterdir()) == ["constants.bin", "meta.json", "meta.sha256",
                                                        "model.so"]
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["entry"] == "_mlir_ciface_mo_graph_add"
    assert meta["inputs"][0]["type"] == '!mo.tensor<f32, ["batch", 3], "cpu:0">'
    assert meta["compiler_version"] == compiler_version()


def test_cache_key_depends_on_everything():
    k = cache_key(b"graph", "cpu", {})
    assert len({k, cache_key(b"graph2", "cpu", {}), cache_key(b"graph", "gpu", {}),
                cache_key(b"graph", "cpu", {"opt_level": 2})}) == 4
    assert k == cache_key(b"graph", "cpu", {})


@pytest.mark.parametrize("damage", [
    "truncate_so", "flip_so", "delete_so", "garbage_meta", "empty_meta", "delete_meta",
    "wrong_hash", "changed_constants", "delete_constants"])
def test_corrupt_entry_is_rebuilt(private_cache, tmp_path, damage):
    path = _write(tmp_path, graphs.ADD)
    _works(InferenceSession().load(path))
    (entry,) = _entries(private_cache)
    so, meta = entry / "model.so", entry / "meta.json"
    if damage == "truncate_so":
        so.write_bytes(so.read_bytes()[:100])
    elif damage == "flip_so":
        data = bytearray(so.read_bytes())
        data[len(data) // 2] ^= 0xFF
        so.write_bytes(bytes(data))
    elif damage == "delete_so":
        so.unlink()
    elif damage == "garbage_meta":
        meta.write_text("{not json")
    elif damage == "empty_meta":
        meta.write_text("")
    elif damage == "delete_meta":
        meta.unlink()
    elif damage == "changed_constants":
        (entry / "constants.bin").write_bytes(b"\x00" * 64)
    elif damage == "delete_constants":
        (entry / "constants.bin").unlink()
    elif damage == "wrong_hash":
        m = json.loads(meta.read_text())
        m["sha256"] = "0" * 64
        meta.write_text(json.dumps(m))
    before = driver.stats["compiles"]
    _works(InferenceSession().load(path), n=5)
    assert driver.stats["compiles"] == before + 1  # rebuilt, never loaded
    (entry2,) = _entries(private_cache)
    assert json.loads((entry2 / "meta.json").read_text())["entry"] == "_mlir_ciface_mo_graph_add"


def test_jit_fallback(private_cache, tmp_path):
    session = InferenceSession()
    session._options = {"force_jit": True}
    model = session.load(_write(tmp_path, graphs.ADD))
    assert model._artifact.kind == "jit"
    assert (model._artifact.path / "model.llvm.mlirbc").is_file()
    _works(model)
    _works(model, n=9)


def test_worker_crash_is_a_runtime_error(private_cache, tmp_path, monkeypatch):
    path = _write(tmp_path, graphs.ADD)
    monkeypatch.setenv(driver.DEBUG_ABORT_ENV, "1")
    with pytest.raises(RuntimeError,
                       match=r"^compiler crashed \(signal 6\) while compiling graph 'add': "):
        InferenceSession().load(path)
    assert _entries(private_cache) == []
    assert not [p for p in private_cache.iterdir() if p.name.startswith(".tmp")]
    monkeypatch.delenv(driver.DEBUG_ABORT_ENV)
    _works(InferenceSession().load(path))  # the parent survived; a new worker compiles


def test_truncated_bytecode(private_cache, tmp_path):
    from max.dialects.mo import make_context
    from mlir import ir

    buf = io.BytesIO()
    ir.Module.parse(graphs.ADD, make_context()).operation.write_bytecode(buf)
    data = buf.getvalue()
    whole = tmp_path / "whole.mlirbc"
    whole.write_bytes(data)
    _works(InferenceSession().load(whole))
    for cut in (len(data) // 2, len(data) - 3, 6):
        bad = tmp_path / f"cut{cut}.mlirbc"
        bad.write_bytes(data[:cut])
        with pytest.raises(RuntimeError, match=r"could not read graph|compiler crashed"):
            InferenceSession().load(bad)
    _works(InferenceSession().load(whole))


@pytest.mark.parametrize("content, match", [
    (b"garbage", r"is not MLIR bytecode \(bad magic number\)"),
    (b"", r"is not MLIR bytecode"),
])
def test_not_bytecode(private_cache, tmp_path, content, match):
    bad = tmp_path / "bad.mlirbc"
    bad.write_bytes(content)
    with pytest.raises(RuntimeError, match=match):
        InferenceSession().load(bad)


def test_bad_text_and_missing_file(private_cache, tmp_path):
    with pytest.raises(RuntimeError, match=r"^could not read graph '.*bad\.mlir': .*parse"):
        InferenceSession().load(_write(tmp_path, "func.func @f( {", "bad.mlir"))
    with pytest.raises(RuntimeError, match=r"^could not read graph .*mo\.graph attribute, found 0"):
        InferenceSession().load(_write(tmp_path, "func.func @f() { return }", "nograph.mlir"))
    with pytest.raises(RuntimeError, match=r"^model file not found: .*nope\.mlirbc$"):
        InferenceSession().load(tmp_path / "nope.mlirbc")


def test_compilation_error(private_cache, tmp_path):
    t = '!mo.tensor<f4E2M1FN, [2], "cpu:0">'
    text = f"""
    func.func @f4(%x: {t}) -> {t} attributes {{mo.graph}} {{
      %0 = "mo.relu"(%x) : ({t}) -> {t}
      return %0 : {t}
    }}
    """
    with pytest.raises(CompilationError, match=r"is not supported on the CPU"):
        InferenceSession().load(_write(tmp_path, text))


def test_concurrent_compiles_in_threads(private_cache, tmp_path):
    path = _write(tmp_path, graphs.ADD)
    before = driver.stats["compiles"]
    results, errors = [], []

    def run():
        try:
            model = InferenceSession().load(path)
            _works(model)
            results.append(model)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 3
    assert driver.stats["compiles"] == before + 1
    assert len(_entries(private_cache)) == 1


def test_concurrent_compiles_in_processes(private_cache, tmp_path):
    path = _write(tmp_path, graphs.ADD)
    script = textwrap.dedent(f"""
        import numpy as np
        from max.engine import InferenceSession
        m = InferenceSession().load({str(path)!r})
        a = np.ones((2, 3), np.float32)
        assert (m.execute(a, a)[0].to_numpy() == 2).all()
        print("ok")
    """)
    env = dict(os.environ, MAX_CACHE_DIR=str(private_cache))
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.strip() == "ok"
    (entry,) = _entries(private_cache)
    assert not [p for p in private_cache.iterdir() if p.name.startswith((".tmp", ".trash"))]
    _works(InferenceSession().load(path))


def test_thread_count_and_environment_are_in_the_key(monkeypatch):
    graph = graphs.ADD.encode()
    monkeypatch.setenv("MAX_CPU_THREADS", "1")
    one = cache_key(graph, "cpu")
    monkeypatch.setenv("MAX_CPU_THREADS", "2")
    two = cache_key(graph, "cpu")
    assert one != two and cache_key(graph, "cpu") == two
    monkeypatch.setattr(sys, "prefix", "/elsewhere/venv")
    assert cache_key(graph, "cpu") != two
