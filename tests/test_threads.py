"""The CPU work-sharing runtime (run_tasks, csrc/cpu/runtime.cpp): the same bits for every thread
count where the docs promise it, concurrent callers, and a pool that survives fork()."""
import multiprocessing as mp
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastloss

THREADS = (1, 2, 3, 7)


def rng(seed):
    return np.random.default_rng(seed)


def per_thread_count(fn):
    """fn() under each thread count of THREADS (results as NumPy arrays)."""
    before = fastloss.get_num_threads()
    out = []
    try:
        for n in THREADS:
            fastloss.set_num_threads(n)
            r = fn()
            out.append(tuple(np.asarray(a) for a in (r if isinstance(r, tuple) else (r,))))
    finally:
        fastloss.set_num_threads(before)
    return out


def assert_same_bits(results):
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a.reshape(-1).view(np.uint8), b.reshape(-1).view(np.uint8))


# Sizes large enough that every count in THREADS wakes that many threads.
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elementwise_engine_same_bits_for_every_thread_count(reduction, dtype):
    r = rng(1)
    x = r.standard_normal(300_001).astype(dtype)
    t = r.standard_normal(300_001).astype(dtype)
    assert_same_bits(per_thread_count(lambda: fastloss.mse_loss(x, t, reduction=reduction, return_grad=True)))
    # strided and broadcast views take the gathering path of the same engine
    xs = r.standard_normal((700, 900)).astype(dtype)[:, ::2]
    w = r.random(450).astype(dtype)
    assert_same_bits(per_thread_count(
        lambda: fastloss.sigmoid_focal_loss(xs, (xs > 0).astype(dtype), reduction=reduction, return_grad=True)))
    assert_same_bits(per_thread_count(
        lambda: fastloss.sigmoid_cross_entropy(xs, (xs > 0.3).astype(dtype), weight=w, reduction=reduction)))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_row_engine_same_bits_for_every_thread_count(reduction):
    r = rng(2)
    x = r.standard_normal((3001, 100)).astype(np.float32)
    y = r.integers(0, 100, 3001)
    y[::17] = -100
    w = r.random(100).astype(np.float32)
    assert_same_bits(per_thread_count(lambda: fastloss.softmax_cross_entropy(
        x, y, weight=w, label_smoothing=0.1, reduction=reduction, return_grad=True)))
    # loss only (the wide-row path), long rows, and a class axis that is not last
    assert_same_bits(per_thread_count(lambda: fastloss.softmax_cross_entropy(x, y, reduction=reduction)))
    xl = r.standard_normal((64, 5000)).astype(np.float32)
    yl = r.integers(0, 5000, 64)
    assert_same_bits(per_thread_count(lambda: fastloss.softmax_cross_entropy(
        xl, yl, reduction=reduction, return_grad=True)))
    xs = r.standard_normal((4, 21, 40, 40)).astype(np.float32)
    ys = r.integers(0, 21, (4, 40, 40))
    assert_same_bits(per_thread_count(lambda: fastloss.softmax_cross_entropy(
        xs, ys, axis=1, reduction=reduction, return_grad=True)))
    lp = np.log(r.dirichlet(np.ones(50), 6000)).astype(np.float64)
    yn = r.integers(0, 50, 6000)
    assert_same_bits(per_thread_count(lambda: fastloss.nll_loss(lp, yn, reduction=reduction, return_grad=True)))


def test_dice_ctc_and_edit_distance_same_bits_for_every_thread_count():
    r = rng(3)
    x = r.standard_normal((4, 5, 64, 64)).astype(np.float32)
    t = r.integers(0, 5, (4, 64, 64))
    assert_same_bits(per_thread_count(lambda: fastloss.dice_loss(
        x, t, activation="softmax", axis=1, return_grad=True)))
    T, N, C, S = 60, 64, 20, 12
    lp = np.log(r.dirichlet(np.ones(C), (T, N))).astype(np.float32)
    labels = r.integers(1, C, (N, S))
    assert_same_bits(per_thread_count(lambda: fastloss.ctc_loss(
        lp, labels, [T] * N, [S] * N, return_grad=True)))
    words = ["".join(r.choice(list("abcdef"), r.integers(0, 70))) for _ in range(3000)]
    other = ["".join(r.choice(list("abcdef"), r.integers(0, 70))) for _ in range(3000)]
    assert_same_bits(per_thread_count(lambda: fastloss.edit_distance(words, other)))


def test_concurrent_callers_share_the_pool():
    r = rng(4)
    x = r.standard_normal(200_000).astype(np.float32)
    t = r.standard_normal(200_000).astype(np.float32)
    want = fastloss.mse_loss(x, t, return_grad=True)
    errors = []

    def call():
        try:
            for _ in range(20):
                got = fastloss.mse_loss(x, t, return_grad=True)
                np.testing.assert_array_equal(got[0], want[0])
                np.testing.assert_array_equal(got[1], want[1])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    before = fastloss.get_num_threads()
    try:
        fastloss.set_num_threads(4)
        threads = [threading.Thread(target=call) for _ in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        fastloss.set_num_threads(before)
    assert not errors, errors[0]


def _child_call(q):
    x = np.arange(300_000, dtype=np.float32) / 1e5
    q.put(float(fastloss.mse_loss(x, x * 0.5, reduction="sum")))


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_pool_works_in_a_forked_child():
    # The parent's workers do not exist in the child: its calls must neither hang nor crash.
    before = fastloss.get_num_threads()
    try:
        fastloss.set_num_threads(4)
        x = np.arange(300_000, dtype=np.float32) / 1e5
        want = float(fastloss.mse_loss(x, x * 0.5, reduction="sum"))  # the pool now has workers
        ctx = mp.get_context("fork")
        q = ctx.Queue()
        p = ctx.Process(target=_child_call, args=(q,))
        p.start()
        got = q.get(timeout=60)
        p.join(60)
    finally:
        fastloss.set_num_threads(before)
    assert p.exitcode == 0
    assert got == want


def test_more_threads_than_work_and_many_threads():
    # More threads asked for than tasks, and a pool far larger than the machine.
    code = ("import numpy as np, fastloss\n"
            "x = np.linspace(-3, 3, 1 << 20).astype(np.float32)\n"
            "fastloss.set_num_threads(1)\n"
            "want = fastloss.mse_loss(x, x[::-1], reduction='sum')\n"
            "fastloss.set_num_threads(64)\n"
            "for _ in range(50):\n"
            "    assert fastloss.mse_loss(x, x[::-1], reduction='sum') == want\n"
            "print('ok')\n")
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
