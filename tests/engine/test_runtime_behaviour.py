"""Executing many times: memory stays flat; two threads on one model both get right answers."""

from __future__ import annotations

import os
import threading

import numpy as np

import graphs


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_memory_is_flat_over_10000_calls(load):
    model = load(graphs.ADD)
    a = np.ones((8, 3), np.float32)
    for _ in range(1000):
        model.execute(a, a)
    before = _rss()
    for _ in range(10_000):
        model.execute(a, a)
    growth = _rss() - before
    assert growth < 4 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB over 10,000 calls"


def test_two_threads_one_model(load):
    model = load(graphs.ADD)
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def worker(n: int) -> None:
        rng = np.random.default_rng(n)
        a = rng.random((n, 3), np.float32)
        b = rng.random((n, 3), np.float32)
        want = a + b
        start.wait()
        try:
            for _ in range(3000):
                (out,) = model.execute(a, b)
                got = out.to_numpy()
                if got.shape != want.shape or not np.array_equal(got, want):
                    raise AssertionError(f"thread {n}: wrong result")
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in (5, 11)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
