"""Bi-tempered logistic loss, its binary form and the tempered softmax.

A float64 NumPy reference written from google-research's bi-tempered-loss algorithm
(tensorflow/loss.py: fixed point for t2 > 1, bisection for t2 < 1, exact softmax at t2 = 1, the
custom analytic gradient), the reference's own test values (tensorflow/loss_test.py, computed in
float32 by TensorFlow: compared within its assertAllClose tolerance, 1e-6), softmax
cross-entropy (fastloss and torch) at t1 = t2 = 1, finite differences where the normalisation has
converged, hypothesis over axes and strides, edge shapes, extreme values and bad inputs. The CUDA
kernels run the same cases through the `backend` fixture (and the emulator)."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import fastloss

from reference import numerical_grad


def rng(seed):
    return np.random.default_rng(seed)


# --- reference (float64, row by row, from the algorithm) -----------------------------------------

def exp_t(u, t):
    return np.exp(u) if t == 1 else np.maximum(1 + (1 - t) * u, 0) ** (1 / (1 - t))


def log_t(u, t):
    with np.errstate(divide="ignore"):
        return np.log(u) if t == 1 else (u ** (1 - t) - 1) / (1 - t)


def ref_normalization(a, t, num_iters):
    """norm of one row a (1-D) so that sum exp_t(a - norm, t) = 1, as the reference iterates."""
    mu = a.max()
    a0 = a - mu
    if t == 1:
        return mu + np.log(np.exp(a0).sum())
    if t > 1:
        cur = a0
        for _ in range(num_iters):
            cur = a0 * exp_t(cur, t).sum() ** (1 - t)
        return -log_t(1 / exp_t(cur, t).sum(), t) + mu
    eff = float((a0 > -1 / (1 - t)).sum())
    lower, upper = 0.0, -log_t(1 / eff, t)
    for _ in range(num_iters):
        mid = (upper + lower) / 2
        if exp_t(a0 - mid, t).sum() < 1:
            upper = mid
        else:
            lower = mid
    return (upper + lower) / 2 + mu


def ref_tempered_softmax(x, t, num_iters=5, axis=-1):
    rows = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    out = np.array([exp_t(r - ref_normalization(r, t, num_iters), t) for r in rows.reshape(-1, rows.shape[-1])])
    return np.moveaxis(out.reshape(rows.shape), -1, axis)


def smooth(y, ls, C):
    return y if ls == 0 else (1 - C / (C - 1) * ls) * y + ls / (C - 1)


def ref_row(x, y, t1, t2, num_iters):
    """Loss and gradient of one row with (already smoothed) label distribution y."""
    if t1 == 1 and t2 == 1:
        lp = x - x.max() - np.log(np.exp(x - x.max()).sum())
        return -(y * lp).sum(), np.exp(lp) * y.sum() - y
    p = exp_t(x - ref_normalization(x, t2, num_iters), t2)
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = np.where(y == 0, 0.0, y * (log_t(y + 1e-10, t1) - log_t(p, t1)))  # 0 * log_t(0) = 0
        loss = (cross - (y ** (2 - t1) - p ** (2 - t1)) / (2 - t1)).sum()
        forget = np.where(p > 0, p ** (t2 - t1), 1.0 if t1 == t2 else 0.0)
    d = (p - y) * forget
    escorts = p ** t2 / (p ** t2).sum()
    return loss, d - escorts * d.sum()


def ref_loss(x, labels, t1, t2, label_smoothing=0.0, num_iters=5, axis=-1, reduction="mean"):
    x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    C = x.shape[-1]
    rows = x.reshape(-1, C)
    labels = np.asarray(labels)
    if labels.dtype.kind == "f":
        ys = np.moveaxis(labels.astype(np.float64), axis, -1).reshape(-1, C)
    else:
        ys = np.eye(C)[labels.reshape(-1)]
    losses, grads = [], []
    for r, y in zip(rows, ys):
        l, g = ref_row(r, smooth(y, label_smoothing, C), t1, t2, num_iters)
        losses.append(l)
        grads.append(g)
    losses = np.array(losses).reshape(x.shape[:-1])
    grads = np.array(grads).reshape(x.shape)
    n = max(rows.shape[0], 1)
    if reduction == "mean":
        loss, grads = losses.mean() if rows.shape[0] else 0.0, grads / n
    elif reduction == "sum":
        loss = losses.sum()
    else:
        loss = losses
    return loss, np.moveaxis(grads, -1, axis)


def ref_binary(x, t, t1, t2, label_smoothing=0.0, num_iters=5, reduction="mean"):
    x = np.asarray(x, np.float64)
    t = np.asarray(t, np.float64)
    rows = np.stack([np.zeros(x.size), x.reshape(-1)], -1)
    ys = np.stack([1 - t.reshape(-1), t.reshape(-1)], -1)
    loss, g = ref_loss(rows, ys, t1, t2, label_smoothing, num_iters, reduction=reduction)
    if reduction == "none":
        loss = loss.reshape(x.shape)
    return loss, g[:, 1].reshape(x.shape)


def _np(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)


TEMPS = [(0.8, 1.2), (0.5, 1.5), (0.5, 0.8), (0.9, 0.7), (0.7, 1.0), (1.0, 1.3), (1.0, 0.8), (1.3, 1.3), (0.3, 4.0)]


# --- the reference's own test values (tensorflow/loss_test.py) ----------------------------------

X3 = [[-0.5, 0.1, 2.0], [0.1, 1.5, -5.0], [4.0, -3.0, -6.0]]


def test_reference_loss_values(backend):
    x = backend.asarray(np.array(X3))
    y = backend.asarray(np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1], [0.2, 0.8, 0.0]]))
    got = fastloss.bi_tempered_logistic_loss(x, y, t1=0.5, t2=1.5, reduction="none")
    np.testing.assert_allclose(_np(got), [0.02301914, 0.18972909, 0.93874922], atol=1e-6, rtol=1e-6)
    got = fastloss.bi_tempered_logistic_loss(x, y, t1=0.5, t2=0.8, num_iters=20, reduction="none")
    np.testing.assert_allclose(_np(got), [0.21646356, 0.41836615, 1.33997854], atol=1e-6, rtol=1e-6)


def test_reference_label_smoothing_and_sparse_labels(backend):
    x = backend.asarray(np.array(X3))
    want = [0.76652711, 0.08627685, 1.35443510]
    for labels in (np.eye(3), np.array([0, 1, 2])):
        got = fastloss.bi_tempered_logistic_loss(x, backend.asarray(labels), t1=0.5, t2=1.5, label_smoothing=0.1,
                                                 reduction="none")
        np.testing.assert_allclose(_np(got), want, atol=1e-5)


def test_reference_dynamic_temperatures(backend):
    x = backend.asarray(np.array([[-0.5, 0.1, 2.0]]))
    y = backend.asarray(np.array([[0.2, 0.5, 0.3]]))
    for t1, t2, want in zip([1.0, 0.9, 0.8, 0.7], [1.0, 1.1, 1.2, 1.3], [1.6583576, 0.45677936, 0.34298314, 0.26295574]):
        got = fastloss.bi_tempered_logistic_loss(x, y, t1=t1, t2=t2, num_iters=5, reduction="none")
        np.testing.assert_allclose(_np(got), [want], atol=1e-5)


def test_reference_sparse_equals_one_hot():
    x = np.array([[-0.5, 0.1, 2.0], [0.1, 1.5, -5.0], [4.0, -3.0, -6.0], [-1.5, 0.7, 5.2]])
    y = np.array([0, 2, 1, 0])
    for reduction in ("none", "mean"):
        a = fastloss.bi_tempered_logistic_loss(x, y, t1=0.5, t2=1.5, reduction=reduction, return_grad=True)
        b = fastloss.bi_tempered_logistic_loss(x, np.eye(3)[y], t1=0.5, t2=1.5, reduction=reduction, return_grad=True)
        np.testing.assert_allclose(a[0], b[0], rtol=1e-14)
        np.testing.assert_allclose(a[1], b[1], rtol=1e-14, atol=1e-17)
    x3 = x.reshape(2, 2, 3)
    got = fastloss.bi_tempered_logistic_loss(x3, y.reshape(2, 2), t1=0.5, t2=1.5, reduction="none")
    np.testing.assert_allclose(got, fastloss.bi_tempered_logistic_loss(x, y, t1=0.5, t2=1.5, reduction="none").reshape(2, 2),
                               rtol=1e-15)


def test_reference_tempered_softmax(backend):
    x = backend.asarray(np.array(X3))
    np.testing.assert_allclose(_np(fastloss.tempered_softmax(x, 1.0)), torch.softmax(torch.tensor(X3, dtype=torch.float64), -1).numpy(),
                               rtol=1e-12)
    want = [[0.3205458, 0.32714278, 0.3523402], [0.3430056, 0.36491093, 0.29220778],
            [0.41369352, 0.30534995, 0.28299212]]
    np.testing.assert_allclose(_np(fastloss.tempered_softmax(x, 4.0)), want, atol=1e-6)


def test_reference_binary_logistic(backend):
    got = fastloss.bi_tempered_binary_logistic_loss(backend.asarray(np.zeros(2)), backend.asarray(np.array([1.0, 0.0])),
                                                    t1=1.0, t2=1.0, reduction="none")
    np.testing.assert_allclose(_np(got), [0.69314718, 0.69314718], atol=1e-8)


@pytest.mark.parametrize("t", [0.1, 0.5, 0.99, 1.0, 1.01, 2.0, 4.0])
def test_tempered_softmax_rows_sum_to_one(t):
    """As the reference's test_normalization (num_iters=20): within 1e-5."""
    x = rng(1).standard_normal((50, 5000))
    for dtype in (np.float64, np.float32):
        p = fastloss.tempered_softmax(x.astype(dtype), t, num_iters=20)
        np.testing.assert_allclose(p.astype(np.float64).sum(-1), 1.0, atol=1e-5)
        assert np.all(p >= 0)


# --- against the float64 reference ---------------------------------------------------------------

@pytest.mark.parametrize("t1,t2", TEMPS)
@pytest.mark.parametrize("C", [1, 2, 3, 17, 100, 1000])
def test_matches_reference(t1, t2, C):
    r = rng(C)
    x = r.standard_normal((13, C)) * 3
    soft = r.dirichlet(np.ones(C), 13)
    soft[0] = 0
    soft[0, 0] = 1
    ints = r.integers(0, C, 13)
    for labels in (soft, ints):
        for ls in (0.0, 0.1) if C > 1 else (0.0,):
            for num_iters in (1, 5):
                for reduction in ("mean", "sum", "none"):
                    loss, grad = fastloss.bi_tempered_logistic_loss(x, labels, t1=t1, t2=t2, label_smoothing=ls,
                                                                    num_iters=num_iters, reduction=reduction,
                                                                    return_grad=True)
                    wl, wg = ref_loss(x, labels, t1, t2, ls, num_iters, reduction=reduction)
                    np.testing.assert_allclose(loss, wl, rtol=1e-10, atol=1e-12)
                    np.testing.assert_allclose(grad, wg, rtol=1e-9, atol=1e-12)
                    only = fastloss.bi_tempered_logistic_loss(x, labels, t1=t1, t2=t2, label_smoothing=ls,
                                                              num_iters=num_iters, reduction=reduction)
                    np.testing.assert_array_equal(only, loss)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_low_precision(dtype):
    r = rng(5)
    x = (r.standard_normal((21, 300)) * 2).astype(dtype)
    y = r.integers(0, 300, 21)
    for t1, t2 in [(0.8, 1.2), (0.5, 0.8), (0.7, 1.0)]:
        loss, grad = fastloss.bi_tempered_logistic_loss(x, y, t1=t1, t2=t2, return_grad=True)
        assert loss.dtype == dtype and grad.dtype == dtype
        wl, wg = ref_loss(x, y, t1, t2)
        tol = 2e-5 if dtype == np.float32 else 2e-3
        np.testing.assert_allclose(float(loss), wl, rtol=tol * 10)
        np.testing.assert_allclose(grad.astype(np.float64), wg, rtol=tol * 10, atol=tol * np.abs(wg).max())
        p = fastloss.tempered_softmax(x, t2)
        assert p.dtype == dtype
        np.testing.assert_allclose(p.astype(np.float64), ref_tempered_softmax(x, t2), rtol=tol * 10, atol=tol * 1e-2)


def test_isa_levels_agree(isa):
    r = rng(6)
    x = r.standard_normal((9, 77)).astype(np.float32)
    y = r.integers(0, 77, 9)
    loss, grad = fastloss.bi_tempered_logistic_loss(x, y, t1=0.8, t2=1.2, return_grad=True)
    wl, wg = ref_loss(x, y, 0.8, 1.2)
    np.testing.assert_allclose(loss, wl, rtol=2e-5)
    np.testing.assert_allclose(grad, wg, rtol=2e-4, atol=1e-7)


@pytest.mark.parametrize("t1,t2", [(0.8, 1.2), (0.5, 0.8), (0.7, 1.0), (1.0, 1.4)])
def test_gradient_is_the_derivative_once_converged(t1, t2):
    """The analytic gradient is the derivative of the loss with the exact normalisation, which
    enough iterations reach (bisection: 2^-60 of the bracket; fixed point: geometric)."""
    r = rng(7)
    x = r.standard_normal((4, 6))
    y = r.dirichlet(np.ones(6), 4)
    f = lambda z: float(fastloss.bi_tempered_logistic_loss(z, y, t1=t1, t2=t2, num_iters=60))
    _, g = fastloss.bi_tempered_logistic_loss(x, y, t1=t1, t2=t2, num_iters=60, return_grad=True)
    np.testing.assert_allclose(g, numerical_grad(f, x), rtol=1e-5, atol=1e-8)


def test_binary_matches_reference(backend):
    r = rng(8)
    x = r.standard_normal((5, 7)) * 3
    t = r.random((5, 7))
    t[0] = 1.0
    t[1] = 0.0
    for t1, t2 in TEMPS + [(1.0, 1.0)]:
        for ls in (0.0, 0.2):
            for reduction in ("mean", "sum", "none"):
                loss, grad = fastloss.bi_tempered_binary_logistic_loss(backend.asarray(x), backend.asarray(t), t1=t1,
                                                                       t2=t2, label_smoothing=ls, reduction=reduction,
                                                                       return_grad=True)
                wl, wg = ref_binary(x, t, t1, t2, ls, reduction=reduction)
                np.testing.assert_allclose(_np(loss), wl, rtol=1e-10, atol=1e-12)
                np.testing.assert_allclose(_np(grad), wg, rtol=1e-9, atol=1e-12)


def test_binary_at_t1_t2_one_is_logistic_loss():
    r = rng(9)
    x = r.standard_normal(40) * 5
    x[:3] = [1e4, -1e4, 0.0]
    t = r.random(40)
    loss, grad = fastloss.bi_tempered_binary_logistic_loss(x, t, t1=1.0, t2=1.0, return_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    want = torch.nn.functional.binary_cross_entropy_with_logits(xt, torch.tensor(t))
    want.backward()
    np.testing.assert_allclose(loss, want.item(), rtol=1e-13)
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-12, atol=1e-17)


# --- t1 = t2 = 1: softmax cross-entropy ------------------------------------------------------------

@pytest.mark.parametrize("shape,axis", [((33, 10), -1), ((9, 40), 1), ((5, 3000), -1), ((2, 21, 5, 7), 1), ((17, 5), 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_t1_t2_one_is_cross_entropy_exactly(shape, axis, dtype):
    r = rng(10)
    x = (r.standard_normal(shape) * 4).astype(dtype)
    C = shape[axis]
    lshape = tuple(n for i, n in enumerate(shape) if i != axis % len(shape))
    y = r.integers(0, C, lshape)
    soft = np.moveaxis(r.dirichlet(np.ones(C), lshape), -1, axis % len(shape)).astype(dtype)
    for labels in (y, soft):
        for reduction in ("mean", "sum", "none"):
            bl, bg = fastloss.bi_tempered_logistic_loss(x, labels, t1=1.0, t2=1.0, axis=axis, reduction=reduction,
                                                        return_grad=True)
            cl, cg = fastloss.softmax_cross_entropy(x, labels, axis=axis, reduction=reduction, return_grad=True)
            np.testing.assert_array_equal(bl, cl)
            np.testing.assert_array_equal(bg, cg)
    # with smoothing: the reference's (1 - C/(C-1) ls) y + ls/(C-1) is torch's with eps = C ls/(C-1)
    ls = 0.1
    xt = torch.tensor(np.moveaxis(x, axis, -1).reshape(-1, C).astype(np.float64), requires_grad=True)
    want = torch.nn.functional.cross_entropy(xt, torch.tensor(y.reshape(-1)), label_smoothing=C * ls / (C - 1))
    want.backward()
    loss, grad = fastloss.bi_tempered_logistic_loss(x.astype(np.float64), y, t1=1.0, t2=1.0, label_smoothing=ls,
                                                    axis=axis, return_grad=True)
    np.testing.assert_allclose(loss, want.item(), rtol=1e-12)
    np.testing.assert_allclose(np.moveaxis(grad, axis, -1).reshape(-1, C), xt.grad.numpy(), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(loss, ref_loss(x, y, 1.0, 1.0, ls, axis=axis)[0], rtol=1e-5 if dtype == np.float32 else 1e-12)


# --- layouts ------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_layouts_give_the_same_bits(dtype):
    r = rng(11)
    for C in (5, 40, 700):
        x = (r.standard_normal((19, C)) * 2).astype(dtype)
        y = r.integers(0, C, 19)
        soft = r.dirichlet(np.ones(C), 19).astype(dtype)
        for labels in (y, soft):
            want = fastloss.bi_tempered_logistic_loss(x, labels, t1=0.8, t2=1.2, reduction="none", return_grad=True)
            big = np.zeros((38, 3 * C), dtype)
            big[::2, ::3] = x
            views = {"transposed": np.ascontiguousarray(x.T).T, "negative": np.ascontiguousarray(x[::-1, ::-1])[::-1, ::-1],
                     "sliced": big[::2, ::3]}
            for name, v in views.items():
                got = fastloss.bi_tempered_logistic_loss(v, labels, t1=0.8, t2=1.2, reduction="none", return_grad=True)
                np.testing.assert_array_equal(got[0], want[0], err_msg=name)
                np.testing.assert_array_equal(got[1], want[1], err_msg=name)
            np.testing.assert_array_equal(fastloss.tempered_softmax(views["negative"], 0.6),
                                          fastloss.tempered_softmax(x, 0.6))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(0, 3), st.integers(1, 30), st.booleans(), st.booleans(),
       st.sampled_from(TEMPS), st.integers(0, 2**31))
def test_hypothesis_axes_and_strides(ndim, axis_pick, C, flip, soft, temps, seed):
    r = rng(seed)
    t1, t2 = temps
    shape = list(r.integers(1, 5, ndim))
    axis = axis_pick % ndim
    shape[axis] = C
    x = r.standard_normal(shape) * 3
    if flip:
        x = x[..., ::-1]
    lshape = tuple(n for i, n in enumerate(x.shape) if i != axis)
    labels = np.moveaxis(r.dirichlet(np.ones(C), lshape), -1, axis) if soft else r.integers(0, C, lshape)
    loss, grad = fastloss.bi_tempered_logistic_loss(x, labels, t1=t1, t2=t2, axis=axis, return_grad=True)
    wl, wg = ref_loss(x, labels, t1, t2, axis=axis)
    np.testing.assert_allclose(loss, wl, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grad, wg, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(fastloss.tempered_softmax(x, t2, axis=axis), ref_tempered_softmax(x, t2, axis=axis),
                               rtol=1e-10, atol=1e-14)
    bl, bg = fastloss.bi_tempered_binary_logistic_loss(x, np.abs(np.tanh(x)), t1=t1, t2=t2, return_grad=True)
    wl, wg = ref_binary(x, np.abs(np.tanh(x)), t1, t2)
    np.testing.assert_allclose(bl, wl, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(bg, wg, rtol=1e-8, atol=1e-12)


# --- edges --------------------------------------------------------------------------------------

def test_empty_and_one_class(backend):
    for reduction in ("mean", "sum", "none"):
        loss, grad = fastloss.bi_tempered_logistic_loss(backend.asarray(np.zeros((0, 4))),
                                                        backend.asarray(np.zeros(0, np.int64)), t1=0.8, t2=1.2,
                                                        reduction=reduction, return_grad=True)
        assert _np(loss).shape == ((0,) if reduction == "none" else ()) and _np(grad).shape == (0, 4)
        if reduction != "none":
            assert float(_np(loss)) == 0.0
        loss, grad = fastloss.bi_tempered_binary_logistic_loss(backend.asarray(np.zeros(0)), backend.asarray(np.zeros(0)),
                                                               t1=0.8, t2=1.2, reduction=reduction, return_grad=True)
        assert _np(grad).shape == (0,)
    assert _np(fastloss.tempered_softmax(backend.asarray(np.zeros((0, 3))), 2.0)).shape == (0, 3)
    # C = 1: p = 1 whatever the activation, so the loss is (about) 0 and the gradient 0
    x = backend.asarray(np.array([[3.0], [-2.0]]))
    for t1, t2 in [(0.8, 1.2), (0.5, 0.8), (1.0, 1.0)]:
        loss, grad = fastloss.bi_tempered_logistic_loss(x, backend.asarray(np.zeros(2, np.int64)), t1=t1, t2=t2,
                                                        reduction="none", return_grad=True)
        np.testing.assert_allclose(_np(loss), 0.0, atol=1e-9)
        np.testing.assert_allclose(_np(grad), 0.0, atol=1e-12)
        np.testing.assert_allclose(_np(fastloss.tempered_softmax(x, t2)), 1.0, rtol=1e-12)
    # C = 0 rows: loss 0
    loss = fastloss.bi_tempered_logistic_loss(np.zeros((3, 0)), np.zeros((3, 0)), t1=0.8, t2=1.2, reduction="none")
    np.testing.assert_array_equal(loss, np.zeros(3))


@pytest.mark.parametrize("t1,t2", [(0.8, 1.2), (0.5, 0.8), (0.7, 1.0), (0.5, 4.0), (0.9, 0.2)])
def test_extreme_activations_are_finite(t1, t2):
    x = np.array([[1e9, 0.0, -1e9], [-1e9, 1e9, 0.0], [1e4, 1e4, 1e4], [-1e9, -1e9, -1e9]])
    y = np.array([0, 0, 2, 1])
    for dtype in (np.float64, np.float32):
        loss, grad = fastloss.bi_tempered_logistic_loss(x.astype(dtype), y, t1=t1, t2=t2, reduction="none",
                                                        return_grad=True)
        assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad)), (loss, grad)
        assert np.all(np.isfinite(fastloss.tempered_softmax(x.astype(dtype), t2)))
    wl, wg = ref_loss(x, y, t1, t2, reduction="none")
    loss, grad = fastloss.bi_tempered_logistic_loss(x, y, t1=t1, t2=t2, reduction="none", return_grad=True)
    np.testing.assert_allclose(loss, wl, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(grad, wg, rtol=1e-9, atol=1e-9)


def test_nan_propagates():
    x = np.array([[np.nan, 0.0, 1.0], [0.0, 1.0, 2.0]])
    for t2 in (0.8, 1.0, 1.2):
        loss = fastloss.bi_tempered_logistic_loss(x, np.array([1, 1]), t1=0.8, t2=t2, reduction="none")
        assert np.isnan(loss[0]) and np.isfinite(loss[1])


def test_constant_shift_is_vacuous():
    """As the reference's test_constant_shift."""
    r = rng(12)
    x = r.standard_normal((3, 3))
    y = np.array([[0.2, 0.3, 0.5], [0.4, 0.4, 0.2], [0.7, 0.2, 0.1]])
    for t2 in (0.8, 1.2):
        a = fastloss.bi_tempered_logistic_loss(x, y, t1=0.5, t2=t2, reduction="none")
        b = fastloss.bi_tempered_logistic_loss(x + r.standard_normal((3, 1)), y, t1=0.5, t2=t2, reduction="none")
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_inputs_unchanged_lists_and_big_endian():
    r = rng(13)
    x = r.standard_normal((6, 9)).astype(np.float32)
    y = r.integers(0, 9, 6)
    x.flags.writeable = False
    xc = x.copy()
    want = fastloss.bi_tempered_logistic_loss(x, y, t1=0.8, t2=1.2, return_grad=True)
    np.testing.assert_array_equal(x, xc)
    big = x.byteswap().view(x.dtype.newbyteorder(">"))
    got = fastloss.bi_tempered_logistic_loss(big, y, t1=0.8, t2=1.2, return_grad=True)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_allclose(fastloss.tempered_softmax([[1.0, 2.0]], 1.0), [[0.26894142, 0.73105858]])
    np.testing.assert_allclose(fastloss.bi_tempered_logistic_loss([[1.0, 2.0]], [1], t1=1.0, t2=1.0), 0.31326169)


# --- bad inputs ---------------------------------------------------------------------------------

def test_bad_inputs(backend):
    x = backend.asarray(np.zeros((4, 3)))
    y = backend.asarray(np.array([0, 1, 2, 0]))
    bt = fastloss.bi_tempered_logistic_loss
    for t1, t2, name in [(0.0, 1.2, "t1"), (-1.0, 1.2, "t1"), (0.8, 0.0, "t2"), (0.8, -0.5, "t2"),
                         (float("nan"), 1.2, "t1"), (0.8, float("inf"), "t2")]:
        with pytest.raises(ValueError, match=name):
            bt(x, y, t1=t1, t2=t2)
        with pytest.raises(ValueError, match=name):
            fastloss.bi_tempered_binary_logistic_loss(x, x, t1=t1, t2=t2)
    with pytest.raises(ValueError, match="num_iters"):
        bt(x, y, t1=0.8, t2=1.2, num_iters=0)
    with pytest.raises(ValueError, match="num_iters"):
        fastloss.tempered_softmax(x, 1.5, num_iters=-1)
    with pytest.raises(ValueError, match="t must"):
        fastloss.tempered_softmax(x, 0.0)
    with pytest.raises(TypeError, match="num_iters"):
        bt(x, y, t1=0.8, t2=1.2, num_iters=2.5)
    with pytest.raises(TypeError, match="t1"):
        bt(x, y, t1="0.8", t2=1.2)
    for ls in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="label_smoothing"):
            bt(x, y, t1=0.8, t2=1.2, label_smoothing=ls)
    with pytest.raises(ValueError, match="label_smoothing"):
        bt(backend.asarray(np.zeros((4, 1))), backend.asarray(np.zeros(4, np.int64)), t1=0.8, t2=1.2, label_smoothing=0.1)
    with pytest.raises(IndexError, match=r"labels\[2\] = 3"):
        bt(x, backend.asarray(np.array([0, 1, 3, 0])), t1=0.8, t2=1.2, return_grad=True)
    with pytest.raises(IndexError, match=r"labels\[1\] = -1"):
        bt(x, backend.asarray(np.array([0, -1, 0, 0])), t1=0.5, t2=0.8)
    with pytest.raises(ValueError, match="labels"):
        bt(x, backend.asarray(np.array([0, 1, 2])), t1=0.8, t2=1.2)
    with pytest.raises(ValueError, match="labels"):
        bt(x, backend.asarray(np.zeros((4, 2))), t1=0.8, t2=1.2)
    with pytest.raises(ValueError, match="targets"):
        fastloss.bi_tempered_binary_logistic_loss(x, backend.asarray(np.zeros(4)), t1=0.8, t2=1.2)
    # integer targets are read as floats (issue 20; contract section 7), like lists of them
    assert float(backend.to_numpy(fastloss.bi_tempered_binary_logistic_loss(
        x, backend.asarray(np.zeros((4, 3), np.int64)), t1=0.8, t2=1.2))) == float(backend.to_numpy(
            fastloss.bi_tempered_binary_logistic_loss(x, backend.asarray(np.zeros((4, 3))), t1=0.8, t2=1.2)))
    if backend.name == "numpy":
        with pytest.raises(TypeError, match="targets"):
            fastloss.bi_tempered_binary_logistic_loss(x, np.array([["a"] * 3] * 4), t1=0.8, t2=1.2)
    with pytest.raises(TypeError, match="activations"):
        bt(backend.asarray(np.zeros((4, 3), np.int32)), y, t1=0.8, t2=1.2)
    with pytest.raises(ValueError, match="reduction"):
        bt(x, y, t1=0.8, t2=1.2, reduction="avg")
    with pytest.raises(ValueError, match="axis"):
        bt(x, y, t1=0.8, t2=1.2, axis=2)
    with pytest.raises(ValueError, match="axis"):
        fastloss.tempered_softmax(x, 2.0, axis=-3)
    with pytest.raises(ValueError, match="activations"):
        fastloss.tempered_softmax(backend.asarray(np.float64(1.0)), 2.0)
    with pytest.raises(TypeError):
        bt(x, y, 0.8, 1.2)  # t1, t2 are keyword-only


def test_mixing_libraries_is_a_type_error():
    from conftest import cupy_or_skip
    cp = cupy_or_skip()
    with pytest.raises(TypeError, match="labels"):
        fastloss.bi_tempered_logistic_loss(cp.zeros((2, 3)), np.zeros(2, np.int64), t1=0.8, t2=1.2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("shape,axis", [((6, 5), -1), ((5, 70), -1), ((3, 4, 6), 1)])
def test_cupy_matches_cpu(backend, dtype, shape, axis):
    """The CUDA kernels against the CPU ones (backend numpy: the CPU against itself)."""
    r = rng(14)
    x = (r.standard_normal(shape) * 2).astype(dtype)
    C = shape[axis]
    lshape = tuple(n for i, n in enumerate(shape) if i != axis % len(shape))
    ints = r.integers(0, C, lshape).astype(np.int32)
    soft = np.moveaxis(r.dirichlet(np.ones(C), lshape), -1, axis % len(shape)).astype(dtype)
    tol = {np.float64: 1e-10, np.float32: 2e-5, np.float16: 3e-3}[dtype]
    for t1, t2 in [(0.8, 1.2), (0.5, 0.8), (0.7, 1.0), (1.0, 1.0)]:
        for labels in (ints, soft):
            for reduction in ("mean", "none"):
                want = fastloss.bi_tempered_logistic_loss(x, labels, t1=t1, t2=t2, label_smoothing=0.05, axis=axis,
                                                          reduction=reduction, return_grad=True)
                got = fastloss.bi_tempered_logistic_loss(backend.asarray(x), backend.asarray(labels), t1=t1, t2=t2,
                                                         label_smoothing=0.05, axis=axis, reduction=reduction,
                                                         return_grad=True)
                for g, w in zip(got, want):
                    assert _np(g).dtype == w.dtype and _np(g).shape == w.shape
                    np.testing.assert_allclose(_np(g).astype(np.float64), w.astype(np.float64), rtol=tol, atol=tol)
        np.testing.assert_allclose(_np(fastloss.tempered_softmax(backend.asarray(x), t2, axis=axis)).astype(np.float64),
                                   fastloss.tempered_softmax(x, t2, axis=axis).astype(np.float64), rtol=tol, atol=tol)
    if axis != -1:
        return
    xs = backend.asarray(x)[..., ::-1]  # a negative class stride
    np.testing.assert_allclose(_np(fastloss.bi_tempered_logistic_loss(xs, backend.asarray(ints), t1=0.8, t2=1.2)),
                               fastloss.bi_tempered_logistic_loss(x[..., ::-1], ints, t1=0.8, t2=1.2), rtol=tol, atol=tol)


# --------------------------------------------------------------------------- grad_out (issue 20)
@pytest.mark.parametrize("soft", [False, True])
def test_grad_out(backend, soft):
    from grad_out_check import check_grad_out
    rng = np.random.default_rng(2024)
    x = rng.normal(size=(6, 5)) * 3
    y = rng.dirichlet(np.ones(5), 6) if soft else rng.integers(0, 5, 6)
    check_grad_out(fastloss.bi_tempered_logistic_loss, [x, y], dict(t1=0.7, t2=1.3, num_iters=8), backend)
    check_grad_out(fastloss.bi_tempered_logistic_loss, [np.ascontiguousarray(x.T), y if soft is False else
                                                        np.ascontiguousarray(y.T)],
                   dict(t1=0.7, t2=1.3, axis=0, reduction="none"), backend)


def test_binary_grad_out(backend):
    from grad_out_check import check_grad_out
    rng = np.random.default_rng(2025)
    x = rng.normal(size=(4, 7)) * 2
    t = (rng.random((4, 7)) < 0.4).astype(np.float64)
    check_grad_out(fastloss.bi_tempered_binary_logistic_loss, [x, t], dict(t1=0.5, t2=2.0), backend)


def test_binary_bool_and_integer_targets():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(3, 4))
    t = rng.random((3, 4)) < 0.5
    want = fastloss.bi_tempered_binary_logistic_loss(x, t.astype(np.float64), t1=0.8, t2=1.2)
    for tt in (t, t.astype(np.int32)):
        assert float(fastloss.bi_tempered_binary_logistic_loss(x, tt, t1=0.8, t2=1.2)) == float(want)
