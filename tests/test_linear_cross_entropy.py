"""linear_cross_entropy: PyTorch (F.linear + F.cross_entropy + autograd, float64) as the oracle
for every option, softmax_cross_entropy on the materialised logits, finite differences, many
blocks and vocabulary chunks (a small block budget), ignore-all batches, N = 1, huge logits,
float16, thread-count independence, the memory bound, argument errors, and CuPy (the emulator
without a GPU)."""
from __future__ import annotations

import itertools
import tracemalloc

import numpy as np
import pytest

import fastloss
from fastloss import _C

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (the oracle) is not installed")


@pytest.fixture
def block_bytes():
    """Sets the block budget for one test (restored after)."""
    before = []

    def set_(n):
        prev = _C._set_linear_cross_entropy_block_bytes(n)
        if not before:
            before.append(prev)

    yield set_
    if before:
        _C._set_linear_cross_entropy_block_bytes(before[0])


def make(N=13, D=6, V=23, seed=0, dtype=np.float64, scale=1.0, ignore=(2, 7)):
    rng = np.random.default_rng(seed)
    h = (rng.standard_normal((N, D)) * scale).astype(dtype)
    w = rng.standard_normal((V, D)).astype(dtype)
    b = rng.standard_normal(V).astype(dtype)
    y = rng.integers(0, V, N)
    for i in ignore:
        if i < N:
            y[i] = -100
    return h, w, b, y


def torch_reference(h, w, y, bias=None, ignore_index=-100, label_smoothing=0.0, z_loss=0.0, softcap=None,
                    reduction="mean"):
    """(loss, grads) in float64 by autograd; z_loss added per counted row as softmax_cross_entropy does."""
    ht = torch.tensor(np.asarray(h, np.float64), requires_grad=True)
    wt = torch.tensor(np.asarray(w, np.float64), requires_grad=True)
    bt = None if bias is None else torch.tensor(np.asarray(bias, np.float64), requires_grad=True)
    yt = torch.tensor(np.asarray(y, np.int64))
    z = F.linear(ht, wt, bt)
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    rows = F.cross_entropy(z, yt, ignore_index=ignore_index, label_smoothing=label_smoothing, reduction="none")
    counted = yt != ignore_index
    if z_loss:
        rows = rows + z_loss * torch.logsumexp(z, 1) ** 2 * counted
    if reduction == "none":
        loss, out = rows, rows.sum()
    else:
        loss = rows.sum()
        if reduction == "mean":
            loss = loss / counted.sum() if counted.any() else loss * 0
        out = loss
    out.backward()
    grads = [ht.grad.numpy(), wt.grad.numpy()] + ([] if bt is None else [bt.grad.numpy()])
    return loss.detach().numpy(), grads


def as_np(backend, a):
    return backend.to_numpy(a)


# ---------------------------------------------------------------------------------------
# The oracle, every option

OPTIONS = list(itertools.product([None, "bias"], [0.0, 0.2], [0.0, 1e-2], [None, 2.5], ["mean", "sum", "none"]))


@needs_torch
@pytest.mark.parametrize("bias,label_smoothing,z_loss,softcap,reduction", OPTIONS)
def test_matches_torch_every_option(bias, label_smoothing, z_loss, softcap, reduction, block_bytes):
    h, w, b, y = make()
    block_bytes(2048)  # 3 rows per block with a softcap, more without; grad_weight in chunks
    kw = dict(label_smoothing=label_smoothing, z_loss=z_loss, softcap=softcap, reduction=reduction)
    bb = b if bias else None
    loss, grads = fastloss.linear_cross_entropy(h, w, y, bias=bb, return_grad=True, **kw)
    ref, rgrads = torch_reference(h, w, y, bias=bb, **kw)
    np.testing.assert_allclose(loss, ref, rtol=1e-12, atol=1e-12)
    assert len(grads) == len(rgrads)
    for g, r in zip(grads, rgrads):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-12)
    # loss only: the same value
    np.testing.assert_allclose(fastloss.linear_cross_entropy(h, w, y, bias=bb, **kw), loss, rtol=1e-14)


@needs_torch
@pytest.mark.parametrize("softcap", [None, 4.0])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_float32_matches_torch(softcap, label_smoothing):
    h, w, b, y = make(N=40, D=16, V=300, dtype=np.float32, seed=3)
    loss, (gh, gw, gb) = fastloss.linear_cross_entropy(h, w, y, bias=b, softcap=softcap,
                                                       label_smoothing=label_smoothing, return_grad=True)
    ref, (rh, rw, rb) = torch_reference(h, w, y, bias=b, softcap=softcap, label_smoothing=label_smoothing)
    assert loss.dtype == np.float32 and gh.dtype == gw.dtype == gb.dtype == np.float32
    np.testing.assert_allclose(loss, ref, rtol=1e-5)
    np.testing.assert_allclose(gh, rh, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gw, rw, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gb, rb, rtol=1e-4, atol=1e-6)


def test_equals_softmax_cross_entropy_of_the_logits(block_bytes):
    h, w, b, y = make(N=29, D=5, V=41, seed=1)
    block_bytes(1500)
    kw = dict(label_smoothing=0.1, z_loss=1e-3, reduction="sum")
    loss, (gh, gw, gb) = fastloss.linear_cross_entropy(h, w, y, bias=b, return_grad=True, **kw)
    ce, g = fastloss.softmax_cross_entropy(h @ w.T + b, y, return_grad=True, **kw)
    np.testing.assert_allclose(loss, ce, rtol=1e-13)
    np.testing.assert_allclose(gh, g @ w, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gw, g.T @ h, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gb, g.sum(0), rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------------------
# Finite differences

@pytest.mark.parametrize("softcap", [None, 1.5])
def test_finite_differences(softcap, block_bytes):
    h, w, b, y = make(N=5, D=3, V=7, seed=2, ignore=(1,))
    block_bytes(256)
    kw = dict(label_smoothing=0.15, z_loss=0.02, softcap=softcap)
    _, (gh, gw, gb) = fastloss.linear_cross_entropy(h, w, y, bias=b, return_grad=True, **kw)

    def num(which):
        args = [h.copy(), w.copy(), b.copy()]
        a = args[which]
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + 1e-6
            fp = float(fastloss.linear_cross_entropy(args[0], args[1], y, bias=args[2], **kw))
            a[idx] = old - 1e-6
            fm = float(fastloss.linear_cross_entropy(args[0], args[1], y, bias=args[2], **kw))
            a[idx] = old
            g[idx] = (fp - fm) / 2e-6
        return g

    for g, which in ((gh, 0), (gw, 1), (gb, 2)):
        np.testing.assert_allclose(g, num(which), rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------------------
# Blocks, edge cases

@pytest.mark.parametrize("budget", [1, 200, 999, 4096, 1 << 30])
def test_block_budget_does_not_change_results(budget, block_bytes):
    """V = 23 is no multiple of any chunk here; a budget below one row still runs (a row a block)."""
    h, w, b, y = make(N=17, D=4, V=23, seed=4)
    kw = dict(bias=b, label_smoothing=0.05, softcap=3.0, return_grad=True)
    block_bytes(1 << 30)
    ref, rg = fastloss.linear_cross_entropy(h, w, y, **kw)
    block_bytes(budget)
    loss, g = fastloss.linear_cross_entropy(h, w, y, **kw)
    np.testing.assert_allclose(loss, ref, rtol=1e-14)
    for a, r in zip(g, rg):
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-15)


def test_plan(block_bytes):
    block_bytes(1000)
    rows, chunk, buffers = _C._linear_cross_entropy_plan(17, 23, 4, 8, True, True)
    assert buffers == 2 and chunk == 1000 // 16 // 32 == 1 and rows == (1000 - 32) // (23 * 8 * 2)
    rows, chunk, buffers = _C._linear_cross_entropy_plan(17, 23, 4, 8, False, True)
    assert buffers == 1 and rows == 1000 // (23 * 8)
    block_bytes(0)  # the default: 32 MiB
    rows, chunk, buffers = _C._linear_cross_entropy_plan(4096, 32768, 1024, 4, True, False)
    assert rows * 32768 * 4 + chunk * 1024 * 4 <= 32 << 20 and (rows, chunk) == (240, 512)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_ignore_all(reduction):
    h, w, b, _ = make()
    y = np.full(h.shape[0], -100)
    loss, (gh, gw, gb) = fastloss.linear_cross_entropy(h, w, y, bias=b, reduction=reduction, return_grad=True,
                                                       z_loss=0.1, label_smoothing=0.3)
    assert np.all(loss == 0) and loss.shape == ((h.shape[0],) if reduction == "none" else ())
    assert not gh.any() and not gw.any() and not gb.any()
    assert gh.shape == h.shape and gw.shape == w.shape and gb.shape == b.shape


@needs_torch
def test_single_row_and_empty():
    h, w, b, y = make(N=1, ignore=())
    loss, g = fastloss.linear_cross_entropy(h, w, y, bias=b, softcap=2.0, return_grad=True)
    ref, rg = torch_reference(h, w, y, bias=b, softcap=2.0)
    np.testing.assert_allclose(loss, ref, rtol=1e-12)
    for a, r in zip(g, rg):
        np.testing.assert_allclose(a, r, rtol=1e-10, atol=1e-14)
    loss, (gh, gw) = fastloss.linear_cross_entropy(np.zeros((0, 3)), np.ones((4, 3)), np.zeros(0, int),
                                                   return_grad=True)
    assert loss == 0 and gh.shape == (0, 3) and not gw.any()
    # no vocabulary: every label must be ignored
    loss = fastloss.linear_cross_entropy(np.ones((2, 3)), np.ones((0, 3)), [-100, -100], reduction="none")
    assert loss.shape == (2,) and not loss.any()
    # D = 0: the logits are the bias
    loss, (gh, gw, gb) = fastloss.linear_cross_entropy(np.ones((2, 0)), np.ones((4, 0)), [1, 3], bias=np.arange(4.0),
                                                       return_grad=True)
    ce, g = fastloss.softmax_cross_entropy(np.tile(np.arange(4.0), (2, 1)), [1, 3], return_grad=True)
    np.testing.assert_allclose(loss, ce, rtol=1e-14)
    np.testing.assert_allclose(gb, g.sum(0), rtol=1e-14)


@needs_torch
@pytest.mark.parametrize("softcap", [None, 30.0])
def test_huge_logits(softcap, block_bytes):
    block_bytes(1024)
    h, w, b, y = make(N=9, D=4, V=19, seed=5, scale=2e3, dtype=np.float32)  # logits ~ 1e4
    loss, g = fastloss.linear_cross_entropy(h, w, y, bias=b, softcap=softcap, label_smoothing=0.1,
                                            return_grad=True)
    ref, rg = torch_reference(h, w, y, bias=b, softcap=softcap, label_smoothing=0.1)
    assert np.isfinite(loss) and all(np.isfinite(a).all() for a in g)
    np.testing.assert_allclose(loss, ref, rtol=1e-4)
    for a, r in zip(g, rg):
        np.testing.assert_allclose(a, r, rtol=1e-3, atol=1e-3 * np.abs(r).max())


def test_float16_inputs():
    h, w, b, y = make(N=20, D=8, V=50, seed=6, dtype=np.float16)
    loss, (gh, gw, gb) = fastloss.linear_cross_entropy(h, w, y, bias=b, softcap=5.0, return_grad=True)
    assert loss.dtype == gh.dtype == gw.dtype == gb.dtype == np.float16
    ref, (rh, rw, rb) = fastloss.linear_cross_entropy(h.astype(np.float32), w.astype(np.float32), y,
                                                      bias=b.astype(np.float32), softcap=5.0, return_grad=True)
    np.testing.assert_allclose(loss.astype(np.float32), ref, rtol=1e-3)
    for a, r in ((gh, rh), (gw, rw), (gb, rb)):
        np.testing.assert_allclose(a.astype(np.float32), r, rtol=1e-2, atol=1e-4)
    # mixed: the loss in the wider dtype, each gradient in its input's dtype
    loss, (gh, gw) = fastloss.linear_cross_entropy(h, w.astype(np.float32), y, return_grad=True)
    assert loss.dtype == np.float32 and gh.dtype == np.float16 and gw.dtype == np.float32


def test_same_bits_for_any_thread_count(block_bytes):
    h, w, b, y = make(N=300, D=24, V=700, seed=7, dtype=np.float32)
    block_bytes(64 << 10)
    before = fastloss.get_num_threads()
    out = []
    try:
        for n in (1, 2, 3):
            fastloss.set_num_threads(n)
            loss, g = fastloss.linear_cross_entropy(h, w, y, bias=b, z_loss=1e-3, softcap=8.0, return_grad=True)
            out.append([loss] + list(g))
    finally:
        fastloss.set_num_threads(before)
    for o in out[1:]:
        for a, r in zip(o, out[0]):
            assert np.array_equal(a, r)


def test_strided_inputs_unchanged_and_same_result(block_bytes):
    block_bytes(700)
    h, w, b, y = make(N=11, D=5, V=17, seed=8)
    hs = np.asfortranarray(h)[::-1]           # reversed, column-major rows
    ws = np.ascontiguousarray(w.T).T          # a transposed (D, V) array
    bs = np.repeat(b, 2)[::2]
    ys = np.repeat(y.astype(np.int32), 3)[::3]
    copies = [a.copy() for a in (hs, ws, bs, ys)]
    loss, g = fastloss.linear_cross_entropy(hs, ws, ys, bias=bs, return_grad=True, softcap=3.0)
    ref, rg = fastloss.linear_cross_entropy(h[::-1].copy(), w, y, bias=b,
                                            return_grad=True, softcap=3.0)
    np.testing.assert_allclose(loss, ref, rtol=1e-14)
    for a, r in zip(g, rg):
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-15)
    for a, c in zip((hs, ws, bs, ys), copies):
        assert np.array_equal(a, c)


def test_memory_stays_within_the_block(block_bytes):
    """NumPy allocations during a call: the outputs, one block of logits and a grad_weight chunk
    (O(N + V) besides), never (N, V): the full logits here would be 8 MB."""
    N, D, V = 1000, 8, 1000
    h, w, b, y = make(N=N, D=D, V=V, seed=9)
    budget = 256 << 10
    block_bytes(budget)
    fastloss.linear_cross_entropy(h[:4], w, y[:4], bias=b, return_grad=True)  # warm-up (imports)
    tracemalloc.start()
    try:
        fastloss.linear_cross_entropy(h, w, y, bias=b, return_grad=True, softcap=5.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    outputs = (N * D + V * D + V) * 8
    assert peak <= outputs + budget + 8 * (4 * N + 4 * V) + (64 << 10), peak


# ---------------------------------------------------------------------------------------
# Errors name the argument

@pytest.mark.parametrize("call,exc,name", [
    (lambda h, w, y: fastloss.linear_cross_entropy(h[0], w, y), ValueError, "hidden"),
    (lambda h, w, y: fastloss.linear_cross_entropy(h, w[:, :2], y), ValueError, "weight"),
    (lambda h, w, y: fastloss.linear_cross_entropy(h, w[0], y), ValueError, "weight"),
    (lambda h, w, y: fastloss.linear_cross_entropy(h, w, y, bias=np.ones(3)), ValueError, "bias"),
    (lambda h, w, y: fastloss.linear_cross_entropy(h, w, y[:2]), ValueError, "labels"),
    (lambda h, w, y: fastloss.linear_cross_entropy(h, w, y.astype(float)), TypeError, "labels"),
    (lambda h, w, y: fastloss.linear_cross_entropy(h.astype(int), w, y), TypeError, "hidden"),
    (lambda h, w, y: fastloss.linear_cross_entropy(h, w.astype(bool), y), TypeError, "weight"),
    (lambda h, w, y: fastloss.linear_cross_entropy(h, w, np.where(y < 0, 0, y) + 23 * (np.arange(len(y)) == 4)),
     IndexError, "labels[4] = "),
    (lambda h, w, y: fastloss.linear_cross_entropy(h, w, np.where(y < 0, -1, y)), IndexError, "labels[2]"),
    (lambda h, w, y: fastloss.linear_cross_entropy(h, w, y, softcap=0.0), ValueError, "softcap"),
    (lambda h, w, y: fastloss.linear_cross_entropy(h, w, y, softcap=-2.0), ValueError, "softcap"),
    (lambda h, w, y: fastloss.linear_cross_entropy(h, w, y, softcap=float("nan")), ValueError, "softcap"),
    (lambda h, w, y: fastloss.linear_cross_entropy(h, w, y, softcap="1"), TypeError, "softcap"),
    (lambda h, w, y: fastloss.linear_cross_entropy(h, w, y, label_smoothing=1.5), ValueError, "label_smoothing"),
    (lambda h, w, y: fastloss.linear_cross_entropy(h, w, y, z_loss=-1.0), ValueError, "z_loss"),
    (lambda h, w, y: fastloss.linear_cross_entropy(h, w, y, reduction="avg"), ValueError, "reduction"),
    (lambda h, w, y: fastloss.linear_cross_entropy(h, w, y, ignore_index=2**70), ValueError, "ignore_index"),
    (lambda h, w, y: fastloss.linear_cross_entropy(h, w, y, return_grad="yes"), TypeError, "return_grad"),
])
def test_errors_name_the_argument(call, exc, name):
    h, w, b, y = make()
    with pytest.raises(exc, match=name.replace("[", r"\[")):
        call(h, w, y)


# ---------------------------------------------------------------------------------------
# CuPy (the emulator without a GPU)

class TestCudaLinearCrossEntropy:
    @pytest.fixture(autouse=True)
    def _cp(self):
        from conftest import cupy_or_skip
        self.cp = cupy_or_skip()

    @pytest.mark.parametrize("softcap,bias", [(None, False), (3.0, True)])
    @pytest.mark.parametrize("reduction", ["mean", "none"])
    def test_matches_numpy(self, softcap, bias, reduction, block_bytes):
        cp = self.cp
        block_bytes(600)  # several blocks and chunks
        for dtype in (np.float32, np.float64):
            h, w, b, y = make(N=9, D=4, V=37, seed=10, dtype=dtype)
            kw = dict(bias=b if bias else None, softcap=softcap, label_smoothing=0.1, z_loss=1e-3, reduction=reduction,
                      return_grad=True)
            ref, rg = fastloss.linear_cross_entropy(h, w, y, **kw)
            kw["bias"] = cp.asarray(b) if bias else None
            loss, g = fastloss.linear_cross_entropy(cp.asarray(h), cp.asarray(w), cp.asarray(y), **kw)
            assert isinstance(loss, cp.ndarray) and all(isinstance(a, cp.ndarray) for a in g)
            tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(cp.asnumpy(loss), ref, **tol)
            for a, r in zip(g, rg):
                np.testing.assert_allclose(cp.asnumpy(a), r, **tol)

    def test_errors(self):
        cp = self.cp
        h, w, b, y = make()
        with pytest.raises(TypeError, match="hidden|weight"):
            fastloss.linear_cross_entropy(h, cp.asarray(w), y)
        with pytest.raises(IndexError, match=r"labels\[0\]"):
            fastloss.linear_cross_entropy(cp.asarray(h), cp.asarray(w), cp.asarray(np.full(len(y), 99)))

    def test_ignore_all_and_float16(self):
        cp = self.cp
        h, w, b, y = make(dtype=np.float16)
        loss, (gh, gw) = fastloss.linear_cross_entropy(cp.asarray(h), cp.asarray(w), cp.asarray(np.full(len(y), -100)),
                                                       return_grad=True)
        assert float(cp.asnumpy(loss)) == 0 and not cp.asnumpy(gw).any() and gh.dtype == np.float16
        loss = fastloss.linear_cross_entropy(cp.asarray(h), cp.asarray(w), cp.asarray(y))
        ref = fastloss.linear_cross_entropy(h, w, y)
        assert loss.dtype == np.float16
        np.testing.assert_allclose(cp.asnumpy(loss).astype(np.float32), ref.astype(np.float32), rtol=1e-3)


def test_docstring_example():
    import doctest
    import importlib

    mod = importlib.import_module("fastloss.linear_cross_entropy")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
