"""The cache directory: private, refused when others can write it, a fallback when unusable,
and a size cap with least-recently-used eviction (compiler/cache.py)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from max.compiler import cache, driver
from max.engine import InferenceSession

ADD = """
func.func @{name}(%a: !mo.tensor<f32, ["n", 3], "cpu:0">, %b: !mo.tensor<f32, ["n", 3], "cpu:0">)
    -> !mo.tensor<f32, ["n", 3], "cpu:0"> attributes {{mo.graph}} {{
  %0 = "mo.{op}"(%a, %b) : (!mo.tensor<f32, ["n", 3], "cpu:0">, !mo.tensor<f32, ["n", 3], "cpu:0">)
      -> !mo.tensor<f32, ["n", 3], "cpu:0">
  return %0 : !mo.tensor<f32, ["n", 3], "cpu:0">
}}
"""
NOBODY = 65534


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _graph(tmp_path, name="add", op="add"):
    path = tmp_path / f"{name}.mlir"
    path.write_text(ADD.format(name=name, op=op))
    return path


def _works(model, op=np.add) -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3) + 1
    np.testing.assert_array_equal(model.execute(a, a)[0].to_numpy(), op(a, a))


def _keys(root) -> set[str]:
    return {key for _, _, key in cache.entries(root)}


def test_new_cache_dir_is_private(tmp_path, monkeypatch):
    root = tmp_path / "a" / "b" / "cache"
    monkeypatch.setenv("MAX_CACHE_DIR", str(root))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.cache_dir() == root
        _works(InferenceSession().load(_graph(tmp_path)))
    assert _mode(root) == 0o700
    assert _mode(root / ".locks") == 0o700
    (key,) = _keys(root)
    assert _mode(root / key) == 0o700
    assert {_mode(p) & 0o077 for p in (root / ".locks").iterdir()} == {0}


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777])
def test_cache_dir_others_can_write_is_refused(tmp_path, monkeypatch, mode):
    root = tmp_path / "shared"
    root.mkdir()
    root.chmod(mode)
    monkeypatch.setenv("MAX_CACHE_DIR", str(root))
    with pytest.warns(RuntimeWarning, match=rf"not using compile cache {root}: writable by "
                                            rf"other users \(mode {mode:o}\)") as record:
        fallback = cache.cache_dir()
        _works(InferenceSession().load(_graph(tmp_path)))
        assert cache.cache_dir() == fallback  # the same fallback, no second warning
    assert len([w for w in record if issubclass(w.category, RuntimeWarning)]) == 1
    assert fallback != root and _mode(fallback) == 0o700
    assert list(root.iterdir()) == []  # nothing written where others could swap it
    assert len(_keys(fallback)) == 1


def test_cache_dir_opened_up_later_is_refused(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("MAX_CACHE_DIR", str(root))
    assert cache.cache_dir() == root
    root.chmod(0o775)
    with pytest.warns(RuntimeWarning, match=r"writable by other users \(mode 775\)"):
        assert cache.cache_dir() != root


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give a directory away")
def test_cache_dir_of_another_user_is_refused(tmp_path, monkeypatch):
    root = tmp_path / "theirs"
    root.mkdir(mode=0o700)
    os.chown(root, NOBODY, NOBODY)
    monkeypatch.setenv("MAX_CACHE_DIR", str(root))
    with pytest.warns(RuntimeWarning, match=rf"{root}: owned by uid {NOBODY}, not by this user"):
        fallback = cache.cache_dir()
    assert fallback != root


def test_cache_dir_that_cannot_be_created_falls_back(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("MAX_CACHE_DIR", str(blocker / "cache"))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _works(InferenceSession().load(_graph(tmp_path)))
        _works(InferenceSession().load(_graph(tmp_path, "sub", "sub")), np.subtract)
    messages = [str(w.message) for w in record if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1, messages
    assert messages[0].startswith(f"not using compile cache {blocker / 'cache'}: cannot create it")


_CHILD = textwrap.dedent("""
    import sys, warnings
    import numpy as np
    from max.engine import InferenceSession
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _ in range(2):
            m = InferenceSession().load(sys.argv[1])
            a = np.arange(6, dtype=np.float32).reshape(2, 3)
            assert (m.execute(a, a)[0].to_numpy() == a + a).all()
    print(len(record))
    print(record[0].message if record else "")
""")


def _drop_dac_override() -> None:
    """In the child, before exec: root without the capabilities that bypass file modes."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.mark.parametrize("where", ["cache_dir", "under_cache_dir", "home"])
def test_read_only_cache_dir_warns_once_and_runs(tmp_path, where):
    """A read-only MAX_CACHE_DIR (or HOME): one warning, the model loads and runs.

    Root writes anywhere, so as root the child runs without CAP_DAC_OVERRIDE (file modes
    then hold for it too).
    """
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o700)
    graph = _graph(ro)
    env = {k: v for k, v in os.environ.items() if k != "MAX_CACHE_DIR"}
    env["HOME"] = str(ro)
    wanted = ro / ".cache" / "max-mlir"
    if where == "cache_dir":
        env["MAX_CACHE_DIR"] = str(wanted := ro)
    elif where == "under_cache_dir":
        env["MAX_CACHE_DIR"] = str(wanted := ro / "cache")
    ro.chmod(0o500)
    try:
        r = subprocess.run([sys.executable, "-c", _CHILD, str(graph)], env=env,
                           capture_output=True, text=True, timeout=300,
                           preexec_fn=_drop_dac_override if os.getuid() == 0 else None)
    except subprocess.SubprocessError as e:
        pytest.skip(f"cannot drop root's file-mode override here: {e}")
    finally:
        ro.chmod(0o700)
    assert r.returncode == 0, r.stderr[-3000:]
    count, message = r.stdout.splitlines()
    assert count == "1", r.stdout
    assert message.startswith(f"not using compile cache {wanted}: ")
    assert [p.name for p in ro.iterdir()] == ["add.mlir"]


@pytest.mark.parametrize("text, size", [
    ("", 2 << 30), ("123", 123), ("500M", 500 << 20), ("2G", 2 << 30), ("2g", 2 << 30),
    ("64 KiB", 64 << 10), ("1T", 1 << 40), ("10MB", 10 << 20),
])
def test_cache_size_parsing(monkeypatch, text, size):
    monkeypatch.setenv("MAX_CACHE_SIZE", text)
    assert cache.max_cache_size() == size


@pytest.mark.parametrize("text", ["abc", "0", "-5", "1.5G", "5X", "G"])
def test_bad_cache_size(monkeypatch, tmp_path, text):
    monkeypatch.setenv("MAX_CACHE_SIZE", text)
    message = rf"^MAX_CACHE_SIZE must be a positive size .*got '{text}'$"
    with pytest.raises(ValueError, match=message):
        cache.max_cache_size()
    with pytest.raises(ValueError, match=message):
        driver.compile_graph(_graph(tmp_path).read_text())


def test_eviction_keeps_the_cap_and_the_recently_used(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("MAX_CACHE_DIR", str(root))
    add, sub, mul = (_graph(tmp_path, op, op) for op in ("add", "sub", "mul"))
    model_a = InferenceSession().load(add)
    (key_a,) = _keys(root)
    InferenceSession().load(sub)
    (key_b,) = _keys(root) - {key_a}
    sizes = {key: size for _, size, key in cache.entries(root)}
    # Make B the least recently used by far, then use A (a hit touches it) after both.
    os.utime(root / key_a, (1e9, 1e9))
    os.utime(root / key_b, (1e9 + 1, 1e9 + 1))
    cap = sizes[key_a] + sizes[key_b] + sizes[key_b] // 2  # two entries fit, three do not
    monkeypatch.setenv("MAX_CACHE_SIZE", str(cap))
    _works(InferenceSession().load(add))
    assert os.stat(root / key_a).st_mtime > 1e9 + 1
    model_c = InferenceSession().load(mul)
    keys = _keys(root)
    assert key_a in keys and key_b not in keys and len(keys) == 2
    assert sum(size for _, size, _ in cache.entries(root)) <= cap
    assert not (root / ".locks" / f"{key_b}.lock").exists()
    _works(model_a)
    _works(model_c, np.multiply)  # loaded code does not depend on the entry
    before = driver.stats["compiles"]
    _works(InferenceSession().load(sub), np.subtract)  # evicted: compiled again
    assert driver.stats["compiles"] == before + 1


def test_eviction_spares_the_new_entry_and_locked_ones(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("MAX_CACHE_DIR", str(root))
    for op in ("add", "sub", "mul"):
        InferenceSession().load(_graph(tmp_path, op, op))
    oldest, middle, newest = [key for _, _, key in cache.entries(root)]
    with cache.key_lock(oldest, root):
        assert cache.evict(root, 1, keep=newest) == [middle]
    assert _keys(root) == {oldest, newest}
    assert cache.evict(root, 1, keep=newest) == [oldest]
    assert _keys(root) == {newest}  # over the cap, but the entry just written stays
    assert cache.evict(root, 1, keep=newest) == []
