"""large_margin_softmax_loss, center_loss, update_centers: float64 references written from the
papers' formulas (L-Softmax with acos, as Liu et al. define psi), finite differences for every
gradient, the margin-1 identity against softmax_cross_entropy and PyTorch, edge cases, argument
errors, and the same cases on CuPy (the emulator without a GPU)."""
from __future__ import annotations

import numpy as np
import pytest

import fastloss
from fastloss import _C

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (the oracle) is not installed")


# ---------------------------------------------------------------------------------------
# References (float64, straight from the papers)

def lsoftmax_reference(x, w, y, m, beta=0.0, reduction="mean"):
    """L-Softmax as written in Liu et al. 2016: theta by acos, k = floor(m theta / pi)."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    f = x @ w
    N = x.shape[0]
    z = f.copy()
    for i in range(N):
        j = y[i]
        a, b = np.linalg.norm(x[i]), np.linalg.norm(w[:, j])
        if m == 1:
            fpsi = f[i, j]
        elif a * b == 0:
            fpsi = 0.0 * a * b
        else:
            theta = np.arccos(np.clip(f[i, j] / (a * b), -1, 1))
            k = min(int(np.floor(m * theta / np.pi)), m - 1)
            fpsi = a * b * ((-1) ** k * np.cos(m * theta) - 2 * k)
        z[i, j] = (beta * f[i, j] + fpsi) / (1 + beta)
    zmax = z.max(1, keepdims=True)
    lse = zmax[:, 0] + np.log(np.exp(z - zmax).sum(1))
    loss = lse - z[np.arange(N), y]
    return {"mean": loss.mean() if N else 0.0, "sum": loss.sum(), "none": loss}[reduction]


def center_loss_reference(x, y, c, reduction="mean"):
    d = np.asarray(x, np.float64) - np.asarray(c, np.float64)[y]
    loss = 0.5 * (d * d).sum(1)
    return {"mean": loss.mean() if len(loss) else 0.0, "sum": loss.sum(), "none": loss}[reduction]


def update_centers_reference(c, x, y, alpha):
    c = np.asarray(c, np.float64).copy()
    x = np.asarray(x, np.float64)
    new = c.copy()
    for j in range(c.shape[0]):
        rows = x[y == j]
        if len(rows):
            new[j] = c[j] - alpha * (c[j] - rows).sum(0) / (1 + len(rows))
    return new


def numerical_grad(f, a, h=1e-6):
    a = np.array(a, np.float64)
    g = np.zeros_like(a)
    it = np.nditer(a, flags=["multi_index"])
    for _ in it:
        idx = it.multi_index
        old = a[idx]
        a[idx] = old + h
        fp = f(a)
        a[idx] = old - h
        fm = f(a)
        a[idx] = old
        g[idx] = (fp - fm) / (2 * h)
    return g


def margin_batch(rng, N, D, C, m, scale=1.0):
    """Features whose angle to their class column sits inside a piece of psi (away from the
    boundaries k*pi/m, where psi' jumps), spread over all m pieces."""
    w = rng.standard_normal((D, C)) * scale
    y = rng.integers(0, C, N)
    x = np.empty((N, D))
    for i in range(N):
        wy = w[:, y[i]] / np.linalg.norm(w[:, y[i]])
        u = rng.standard_normal(D)
        u -= (u @ wy) * wy
        u /= np.linalg.norm(u)
        k = i % m
        theta = (k + 0.2 + 0.6 * rng.random()) * np.pi / m
        x[i] = (np.cos(theta) * wy + np.sin(theta) * u) * rng.uniform(0.5, 2.0) * scale
    return x, w, y


def lsoftmax_torch(x, w, y, m, beta=0.0, reduction="mean"):
    """A PyTorch autograd implementation of the same formula (the usual open-source snippet)."""
    f = x @ w
    idx = torch.arange(x.shape[0])
    fy = f[idx, y]
    a = x.norm(dim=1)
    b = w.norm(dim=0)[y]
    cos = (fy / (a * b)).clamp(-1, 1)
    theta = torch.acos(cos)
    k = torch.floor(m * theta / np.pi).clamp(max=m - 1)
    sign = 1 - 2 * torch.remainder(k, 2)
    fpsi = a * b * (sign * torch.cos(m * theta) - 2 * k)
    zy = (beta * fy + fpsi) / (1 + beta)
    z = f.clone()
    z[idx, y] = zy
    return torch.nn.functional.cross_entropy(z, y, reduction=reduction)


# ---------------------------------------------------------------------------------------
# L-Softmax

@pytest.mark.parametrize("m", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("beta", [0.0, 0.7])
def test_lsoftmax_matches_reference(backend, m, beta):
    rng = np.random.default_rng(10 * m + int(beta * 10))
    x, w, y = margin_batch(rng, 13, 7, 5, m)
    for reduction in ("mean", "sum", "none"):
        loss, (gx, gw) = fastloss.large_margin_softmax_loss(backend.asarray(x), backend.asarray(w), backend.asarray(y),
                                                          margin=m, beta=beta, reduction=reduction, return_grad=True)
        ref = lsoftmax_reference(x, w, y, m, beta, reduction)
        np.testing.assert_allclose(backend.to_numpy(loss), ref, rtol=1e-12, atol=1e-12)
        if reduction == "none":
            continue
        fx = numerical_grad(lambda a: lsoftmax_reference(a, w, y, m, beta, reduction), x)
        fw = numerical_grad(lambda a: lsoftmax_reference(x, a, y, m, beta, reduction), w)
        np.testing.assert_allclose(backend.to_numpy(gx), fx, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(backend.to_numpy(gw), fw, rtol=1e-6, atol=1e-7)


@needs_torch
@pytest.mark.parametrize("m", [2, 4])
def test_lsoftmax_matches_torch_autograd(m):
    rng = np.random.default_rng(m)
    x, w, y = margin_batch(rng, 32, 16, 11, m)
    loss, (gx, gw) = fastloss.large_margin_softmax_loss(x, w, y, margin=m, beta=0.3, return_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    tl = lsoftmax_torch(tx, tw, torch.tensor(y), m, beta=0.3)
    tl.backward()
    np.testing.assert_allclose(loss, tl.item(), rtol=1e-12)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gw, tw.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lsoftmax_margin1_is_softmax_cross_entropy(backend, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 9)).astype(dtype)
    w = rng.standard_normal((9, 30)).astype(dtype)
    y = rng.integers(0, 30, 20)
    xb, wb, yb = backend.asarray(x), backend.asarray(w), backend.asarray(y)
    loss, (gx, gw) = fastloss.large_margin_softmax_loss(xb, wb, yb, margin=1, beta=2.0, return_grad=True)
    logits = xb @ wb
    ce, g = fastloss.softmax_cross_entropy(logits, yb, return_grad=True)
    g = backend.to_numpy(g)
    tol = dict(rtol=2e-6, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(backend.to_numpy(loss), backend.to_numpy(ce), **tol)
    np.testing.assert_allclose(backend.to_numpy(gx), g @ w.T, **tol)
    np.testing.assert_allclose(backend.to_numpy(gw), x.T @ g, **tol)
    if torch is not None:
        tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
        tl = torch.nn.functional.cross_entropy(tx @ tw, torch.tensor(y))
        tl.backward()
        np.testing.assert_allclose(backend.to_numpy(loss), tl.item(), **tol)
        np.testing.assert_allclose(backend.to_numpy(gx), tx.grad.numpy(), **tol)
        np.testing.assert_allclose(backend.to_numpy(gw), tw.grad.numpy(), **tol)


def test_lsoftmax_float32_large_rows(backend, isa):
    """Rows longer than one softmax block (2 KiB) and a class count that is no multiple of the
    vector width, in float32 against the float64 reference."""
    rng = np.random.default_rng(7)
    x, w, y = margin_batch(rng, 9, 24, 1037, 3, scale=0.5)
    loss, (gx, gw) = fastloss.large_margin_softmax_loss(backend.asarray(x.astype(np.float32)),
                                                      backend.asarray(w.astype(np.float32)), backend.asarray(y),
                                                      margin=3, return_grad=True)
    assert loss.dtype == np.float32 and gx.dtype == np.float32 and gw.dtype == np.float32
    np.testing.assert_allclose(backend.to_numpy(loss), lsoftmax_reference(x, w, y, 3), rtol=1e-5)
    l64, (gx64, gw64) = fastloss.large_margin_softmax_loss(x, w, y, margin=3, return_grad=True)
    np.testing.assert_allclose(backend.to_numpy(gx), gx64, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(backend.to_numpy(gw), gw64, rtol=1e-4, atol=1e-6)


def test_lsoftmax_float16_computed_in_float32(backend):
    rng = np.random.default_rng(3)
    x, w, y = margin_batch(rng, 8, 6, 5, 2)
    x16, w16 = x.astype(np.float16), w.astype(np.float16)
    loss, (gx, gw) = fastloss.large_margin_softmax_loss(backend.asarray(x16), backend.asarray(w16), backend.asarray(y),
                                                      return_grad=True)
    assert loss.dtype == np.float16 and gx.dtype == np.float16 and gw.dtype == np.float16
    ref = lsoftmax_reference(x16.astype(np.float64), w16.astype(np.float64), y, 2)
    np.testing.assert_allclose(float(backend.to_numpy(loss)), ref, rtol=2e-3)


def test_lsoftmax_zero_norms_are_finite(backend):
    rng = np.random.default_rng(4)
    x, w, y = margin_batch(rng, 6, 5, 4, 4)
    x[0] = 0.0
    w[:, y[1]] = 0.0
    for m in (2, 4):
        loss, (gx, gw) = fastloss.large_margin_softmax_loss(backend.asarray(x), backend.asarray(w), backend.asarray(y),
                                                          margin=m, reduction="none", return_grad=True)
        for a in (loss, gx, gw):
            assert np.isfinite(backend.to_numpy(a)).all()
        np.testing.assert_allclose(backend.to_numpy(loss), lsoftmax_reference(x, w, y, m, reduction="none"), rtol=1e-12)


def test_lsoftmax_layouts_and_label_dtypes(backend):
    rng = np.random.default_rng(5)
    x, w, y = margin_batch(rng, 10, 6, 7, 3)
    ref = fastloss.large_margin_softmax_loss(x, w, y, margin=3, return_grad=True)
    xt = np.asfortranarray(x)[::-1][::-1]  # Fortran order
    wt = np.ascontiguousarray(w.T).T        # transposed view
    wn = w[:, ::-1].copy()[:, ::-1]         # negative column stride
    for xx, ww, yy in ((xt, wt, y.astype(np.int16)), (x, wn, y.astype(np.uint8)), (x[::1], w, list(y))):
        got = fastloss.large_margin_softmax_loss(backend.asarray(xx), backend.asarray(ww), backend.asarray(yy),
                                               margin=3, return_grad=True)
        np.testing.assert_allclose(backend.to_numpy(got[0]), ref[0], rtol=1e-13)
        np.testing.assert_allclose(backend.to_numpy(got[1][0]), ref[1][0], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(backend.to_numpy(got[1][1]), ref[1][1], rtol=1e-12, atol=1e-15)


def test_lsoftmax_empty_batch(backend):
    x = np.zeros((0, 4))
    w = np.ones((4, 3))
    loss, (gx, gw) = fastloss.large_margin_softmax_loss(backend.asarray(x), backend.asarray(w),
                                                      backend.asarray(np.zeros(0, np.int64)), return_grad=True)
    assert float(backend.to_numpy(loss)) == 0.0 and gx.shape == (0, 4)
    np.testing.assert_array_equal(backend.to_numpy(gw), 0.0)


def test_lsoftmax_beta_large_approaches_softmax():
    rng = np.random.default_rng(6)
    x, w, y = margin_batch(rng, 10, 5, 4, 4)
    plain = fastloss.large_margin_softmax_loss(x, w, y, margin=1)
    big = fastloss.large_margin_softmax_loss(x, w, y, margin=4, beta=1e9)
    np.testing.assert_allclose(big, plain, rtol=1e-6)


@pytest.mark.parametrize("margin", [0, 7, -1, 2.5, 2.0, True, "2", None])
def test_lsoftmax_bad_margin(margin):
    with pytest.raises(ValueError, match="margin"):
        fastloss.large_margin_softmax_loss(np.ones((2, 3)), np.ones((3, 4)), [0, 1], margin=margin)


def test_lsoftmax_numpy_integer_margin():
    a = fastloss.large_margin_softmax_loss(np.eye(3), np.eye(3), [0, 1, 2], margin=np.int64(3))
    b = fastloss.large_margin_softmax_loss(np.eye(3), np.eye(3), [0, 1, 2], margin=3)
    assert a == b


def test_lsoftmax_bad_inputs():
    x, w, y = np.ones((2, 3)), np.ones((3, 4)), np.array([0, 1])
    f = fastloss.large_margin_softmax_loss
    with pytest.raises(ValueError, match="beta"):
        f(x, w, y, beta=-0.5)
    with pytest.raises(ValueError, match="beta"):
        f(x, w, y, beta=float("nan"))
    with pytest.raises(ValueError, match="weight"):
        f(x, np.ones((4, 4)), y)
    with pytest.raises(ValueError, match="features"):
        f(np.ones(3), w, y)
    with pytest.raises(ValueError, match="labels"):
        f(x, w, np.array([0, 1, 2]))
    with pytest.raises(IndexError, match=r"labels\[1\] = 4"):
        f(x, w, np.array([0, 4]))
    with pytest.raises(IndexError, match="labels"):
        f(x, w, np.array([-1, 0]))
    with pytest.raises(TypeError, match="labels"):
        f(x, w, np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="features"):
        f(np.array([["a"]]), w, y)
    with pytest.raises(ValueError, match="reduction"):
        f(x, w, y, reduction="avg")


# ---------------------------------------------------------------------------------------
# Center loss and center update

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_center_loss_matches_reference(backend, isa, reduction, dtype):
    rng = np.random.default_rng(11)
    N, D, K = 37, 45, 6
    x = rng.standard_normal((N, D)).astype(dtype)
    c = rng.standard_normal((K, D)).astype(dtype)
    y = rng.integers(0, K, N)
    loss, g = fastloss.center_loss(backend.asarray(x), backend.asarray(y), backend.asarray(c), reduction=reduction,
                                   return_grad=True)
    assert loss.dtype == dtype and g.dtype == dtype
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(backend.to_numpy(loss), center_loss_reference(x, y, c, reduction), **tol)
    if reduction != "none":
        fx = numerical_grad(lambda a: center_loss_reference(a, y, c, reduction), x.astype(np.float64), h=1e-4)
        np.testing.assert_allclose(backend.to_numpy(g), fx, rtol=1e-4 if dtype == np.float32 else 1e-8, atol=1e-6)


@needs_torch
def test_center_loss_matches_torch():
    rng = np.random.default_rng(12)
    x, c, y = rng.standard_normal((20, 8)), rng.standard_normal((3, 8)), rng.integers(0, 3, 20)
    tx = torch.tensor(x, requires_grad=True)
    tl = 0.5 * ((tx - torch.tensor(c)[torch.tensor(y)]) ** 2).sum(1).mean()
    tl.backward()
    loss, g = fastloss.center_loss(x, y, c, return_grad=True)
    np.testing.assert_allclose(loss, tl.item(), rtol=1e-13)
    np.testing.assert_allclose(g, tx.grad.numpy(), rtol=1e-13)


def test_center_loss_layouts_and_edges(backend):
    rng = np.random.default_rng(13)
    x, c, y = rng.standard_normal((9, 5)), rng.standard_normal((4, 5)), rng.integers(0, 4, 9)
    ref = fastloss.center_loss(x, y, c, reduction="none", return_grad=True)
    got = fastloss.center_loss(backend.asarray(np.asfortranarray(x)), backend.asarray(y.astype(np.uint16)),
                               backend.asarray(c[::-1][::-1]), reduction="none", return_grad=True)
    np.testing.assert_allclose(backend.to_numpy(got[0]), ref[0], rtol=1e-14)
    np.testing.assert_allclose(backend.to_numpy(got[1]), ref[1], rtol=1e-14)
    loss, g = fastloss.center_loss(backend.asarray(np.zeros((0, 5))), backend.asarray(np.zeros(0, np.int64)),
                                   backend.asarray(c), return_grad=True)
    assert float(backend.to_numpy(loss)) == 0.0 and g.shape == (0, 5)
    x16 = x.astype(np.float16)
    l16 = fastloss.center_loss(backend.asarray(x16), backend.asarray(y), backend.asarray(c))
    assert l16.dtype == np.float16
    np.testing.assert_allclose(float(backend.to_numpy(l16)), center_loss_reference(x16, y, c), rtol=2e-3)


def test_center_loss_bad_inputs():
    x, c, y = np.ones((3, 4)), np.ones((2, 4)), np.array([0, 1, 1])
    with pytest.raises(IndexError, match=r"labels\[2\] = 2"):
        fastloss.center_loss(x, np.array([0, 1, 2]), c)
    with pytest.raises(ValueError, match="centers"):
        fastloss.center_loss(x, y, np.ones((2, 5)))
    with pytest.raises(ValueError, match="labels"):
        fastloss.center_loss(x, y[:2], c)
    with pytest.raises(ValueError, match="features"):
        fastloss.center_loss(np.ones(4), y, c)
    with pytest.raises(ValueError, match="reduction"):
        fastloss.center_loss(x, y, c, reduction="avg")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_update_centers_matches_reference(backend, isa, dtype):
    rng = np.random.default_rng(14)
    N, D, K = 50, 70, 9
    x = rng.standard_normal((N, D)).astype(dtype)
    c = rng.standard_normal((K, D)).astype(dtype)
    y = rng.integers(0, K - 2, N)  # the last two classes are absent
    new = fastloss.update_centers(backend.asarray(c), backend.asarray(x), backend.asarray(y), alpha=0.3)
    assert new.dtype == dtype and new.shape == c.shape
    new = backend.to_numpy(new)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(new, update_centers_reference(c, x, y, 0.3), **tol)
    np.testing.assert_array_equal(new[K - 2:], c[K - 2:])  # absent classes: bit-for-bit unchanged


def test_update_centers_deterministic_and_layouts(backend):
    rng = np.random.default_rng(15)
    x, c, y = rng.standard_normal((300, 130)), rng.standard_normal((7, 130)), rng.integers(0, 7, 300)
    before = fastloss.get_num_threads()
    try:
        fastloss.set_num_threads(1)
        one = backend.to_numpy(fastloss.update_centers(backend.asarray(c), backend.asarray(x), backend.asarray(y)))
        fastloss.set_num_threads(max(2, before))
        many = backend.to_numpy(fastloss.update_centers(backend.asarray(c), backend.asarray(x), backend.asarray(y)))
    finally:
        fastloss.set_num_threads(before)
    np.testing.assert_array_equal(one, many)
    strided = fastloss.update_centers(backend.asarray(np.asfortranarray(c)), backend.asarray(x[:, ::-1][:, ::-1]),
                                      backend.asarray(y.astype(np.int32)))
    np.testing.assert_allclose(backend.to_numpy(strided), one, rtol=1e-15)
    same = fastloss.update_centers(backend.asarray(c), backend.asarray(np.zeros((0, 130))),
                                   backend.asarray(np.zeros(0, np.int64)))
    np.testing.assert_array_equal(backend.to_numpy(same), c)


def test_update_centers_bad_inputs():
    c, x, y = np.ones((2, 4)), np.ones((3, 4)), np.array([0, 1, 1])
    with pytest.raises(IndexError, match=r"labels\[0\] = 5"):
        fastloss.update_centers(c, x, np.array([5, 0, 0]))
    with pytest.raises(ValueError, match="alpha"):
        fastloss.update_centers(c, x, y, alpha=-0.1)
    with pytest.raises(ValueError, match="features"):
        fastloss.update_centers(c, np.ones((3, 5)), y)
    with pytest.raises(ValueError, match="labels"):
        fastloss.update_centers(c, x, np.array([[0, 1, 1]]))


# ---------------------------------------------------------------------------------------
# Awkward inputs and properties

def test_lsoftmax_single_class_and_awkward_arrays():
    rng = np.random.default_rng(16)
    x, w, y = margin_batch(rng, 5, 4, 1, 2)
    loss, (gx, gw) = fastloss.large_margin_softmax_loss(x, w, y, margin=2, return_grad=True)
    assert float(loss) == 0.0  # one class: the softmax is 1 whatever the margin
    np.testing.assert_array_equal(gx, 0.0)
    np.testing.assert_array_equal(gw, 0.0)
    x, w, y = margin_batch(rng, 6, 5, 4, 3)
    ref = fastloss.large_margin_softmax_loss(x, w, y, margin=3, return_grad=True)
    xb, wb = x.astype(">f8"), w.astype(">f8")  # big-endian
    xr = x.copy()
    xr.setflags(write=False)  # read-only
    raw = np.zeros(x.size * 8 + 1, np.uint8)[1:].view(np.float64).reshape(x.shape)  # unaligned
    raw[...] = x
    for xx, ww in ((xb, wb), (xr, w), (raw, w)):
        got = fastloss.large_margin_softmax_loss(xx, ww, y, margin=3, return_grad=True)
        np.testing.assert_allclose(got[0], ref[0], rtol=1e-15)
        np.testing.assert_allclose(got[1][0], ref[1][0], rtol=1e-14, atol=1e-16)
        np.testing.assert_allclose(got[1][1], ref[1][1], rtol=1e-14, atol=1e-16)


def test_lsoftmax_extreme_values():
    rng = np.random.default_rng(17)
    x, w, y = margin_batch(rng, 6, 5, 4, 2)
    loss, (gx, gw) = fastloss.large_margin_softmax_loss(x * 1e6, w, y, margin=2, reduction="none", return_grad=True)
    assert np.isfinite(loss).all() and np.isfinite(gx).all() and np.isfinite(gw).all()
    np.testing.assert_allclose(loss, lsoftmax_reference(x * 1e6, w, y, 2, reduction="none"), rtol=1e-9)
    xn = x.copy()
    xn[2, 1] = np.nan
    loss = fastloss.large_margin_softmax_loss(xn, w, y, margin=2, reduction="none")
    assert np.isnan(loss[2]) and np.isfinite(np.delete(loss, 2)).all()


def test_lsoftmax_is_at_least_softmax():
    """psi(theta) <= cos(theta), so the margin can only raise the loss (any margin, any beta)."""
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=40, deadline=None)
    @hypothesis.given(st.integers(1, 6), st.floats(0, 100), st.integers(0, 2**32 - 1), st.integers(1, 6),
                      st.integers(1, 5), st.integers(1, 7))
    def check(m, beta, seed, N, D, C):
        rng = np.random.default_rng(seed)
        x, w, y = rng.standard_normal((N, D)), rng.standard_normal((D, C)), rng.integers(0, C, N)
        lm = fastloss.large_margin_softmax_loss(x, w, y, margin=m, beta=beta, reduction="none")
        ce = fastloss.large_margin_softmax_loss(x, w, y, margin=1, reduction="none")
        assert (lm >= ce - 1e-12 * (1 + np.abs(ce))).all()
        np.testing.assert_allclose(lm, lsoftmax_reference(x, w, y, m, beta, "none"), rtol=1e-9, atol=1e-9)

    check()


def test_center_loss_awkward_arrays_and_extremes():
    rng = np.random.default_rng(18)
    x, c, y = rng.standard_normal((7, 33)), rng.standard_normal((3, 33)), rng.integers(0, 3, 7)
    ref = fastloss.center_loss(x, y, c, reduction="none", return_grad=True)
    xr = x.astype(">f8")
    got = fastloss.center_loss(xr, y, c.astype(">f8"), reduction="none", return_grad=True)
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])
    loss, g = fastloss.center_loss(x * 1e9, y, c, reduction="none", return_grad=True)
    np.testing.assert_allclose(loss, center_loss_reference(x * 1e9, y, c, "none"), rtol=1e-12)
    xi = x.copy()
    xi[0, 0] = np.inf
    loss = fastloss.center_loss(xi, y, c, reduction="none")
    assert np.isinf(loss[0]) and np.isfinite(loss[1:]).all()
    new = fastloss.update_centers(c.astype(">f8"), x, y)
    np.testing.assert_allclose(new, update_centers_reference(c, x, y, 0.5), rtol=1e-14)


# --------------------------------------------------------------------------- grad_out (issue 20)
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_center_loss_grad_out(backend, reduction):
    from grad_out_check import check_grad_out
    rng = np.random.default_rng(2026)
    x, c, y = rng.standard_normal((9, 6)), rng.standard_normal((4, 6)), rng.integers(0, 4, 9)
    check_grad_out(fastloss.center_loss, [x, y, c], dict(reduction=reduction), backend)


def test_center_loss_grad_out_float16_in_place():
    rng = np.random.default_rng(2027)
    x, c, y = rng.standard_normal((5, 8)).astype(np.float16), rng.standard_normal((3, 8)), rng.integers(0, 3, 5)
    loss0, g0 = fastloss.center_loss(x, y, c, return_grad=True)
    xi = x.copy()
    loss, g = fastloss.center_loss(xi, y, c, grad_out=xi)
    assert g is xi and g.dtype == np.float16 and float(loss) == float(loss0)
    np.testing.assert_array_equal(g, g0)
    with pytest.raises(TypeError, match="grad_out"):
        fastloss.center_loss(x, y, c, grad_out=np.zeros((5, 8), np.float32))


@pytest.mark.parametrize("m", [1, 3])
def test_lsoftmax_grad_out_pair(backend, m):
    xp = backend.xp
    rng = np.random.default_rng(2028)
    x, w, y = rng.standard_normal((7, 5)), rng.standard_normal((5, 4)), rng.integers(0, 4, 7)
    X, Wt, Y = backend.asarray(x), backend.asarray(w), backend.asarray(y)
    loss0, (gx0, gw0) = fastloss.large_margin_softmax_loss(X, Wt, Y, margin=m, return_grad=True)
    gx0, gw0 = backend.to_numpy(gx0), backend.to_numpy(gw0)
    bx, bw = xp.full(x.shape, np.nan), xp.full(w.shape, np.nan)
    loss, (gx, gw) = fastloss.large_margin_softmax_loss(X, Wt, Y, margin=m, grad_out=(bx, bw))
    assert gx is bx and gw is bw and float(loss) == float(loss0)
    np.testing.assert_allclose(backend.to_numpy(gx), gx0, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(backend.to_numpy(gw), gw0, rtol=1e-13, atol=1e-15)
    # in place over both inputs
    xi, wi = X.copy(), Wt.copy()
    loss, (gx, gw) = fastloss.large_margin_softmax_loss(xi, wi, Y, margin=m, grad_out=[xi, wi])
    assert gx is xi and gw is wi and float(loss) == float(loss0)
    np.testing.assert_allclose(backend.to_numpy(xi), gx0, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(backend.to_numpy(wi), gw0, rtol=1e-13, atol=1e-15)
    # errors name grad_out and change nothing
    for bad, exc in [((bx,), ValueError), (bx, TypeError), ((bx, None), TypeError),
                     ((xp.zeros((7, 6)), bw), ValueError), ((bx, xp.zeros((5, 4), np.float32)), TypeError),
                     ((X[::-1], bw), ValueError)]:
        before = backend.to_numpy(X).copy()
        with pytest.raises(exc, match="grad_out"):
            fastloss.large_margin_softmax_loss(X, Wt, Y, margin=m, grad_out=bad)
        np.testing.assert_array_equal(backend.to_numpy(X), before)
    shared = xp.zeros(35 + 20)
    with pytest.raises(ValueError, match="grad_out"):  # the two gradients in one buffer, overlapping
        fastloss.large_margin_softmax_loss(X, Wt, Y, margin=m, grad_out=(shared[:35].reshape(7, 5),
                                                                        shared[30:50].reshape(5, 4)))
