"""Row-engine losses: softmax_focal_loss and truncated_cross_entropy.

Float64 NumPy references written from the formulas, PyTorch autograd as the oracle for the
gradients, the cross-entropy identities (gamma=0 focal and margin-1 truncation), finite
differences, every row path (lanes for C < 16 and the (N, C, H, W) layout, short rows in
registers, 2 KiB blocks), layouts, extreme logits and the bad inputs."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import fastloss

from reference import log_softmax, numerical_grad


def rng(seed):
    return np.random.default_rng(seed)


# --- references (float64, straight from the formulas) ------------------------------------------

def _rows(x, labels, axis):
    x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    C = x.shape[-1]
    return x.reshape(-1, C), np.asarray(labels).reshape(-1), x.shape[:-1]


def _reduce(per_row, counted, reduction, shape):
    if reduction == "none":
        return per_row.reshape(shape)
    total = per_row.sum()
    return total / counted if reduction == "mean" and counted else (0.0 if reduction == "mean" else total)


def ref_focal(x, labels, alpha=None, gamma=2.0, ignore_index=-100, axis=-1, reduction="mean"):
    """Loss and gradient: loss = -a (1-p)^g log p; dloss/dlog p = -a f (1 - g p log p / (1-p))."""
    rows, y, shape = _rows(x, labels, axis)
    N, C = rows.shape
    lp = log_softmax(rows)
    loss, g = np.zeros(N), np.zeros((N, C))
    counted = 0
    for i in range(N):
        if y[i] == ignore_index:
            continue
        counted += 1
        a = 1.0 if alpha is None else (float(alpha) if np.ndim(alpha) == 0 else float(np.asarray(alpha)[y[i]]))
        l = lp[i, y[i]]
        q = -np.expm1(l)
        f = q ** gamma
        loss[i] = -a * f * l
        ratio = l / q if q > 0 else -1.0
        A = a * f * (1 - gamma * np.exp(l) * ratio)
        g[i] = A * np.exp(lp[i])
        g[i, y[i]] -= A
    if reduction == "mean":
        g = g / counted if counted else g * 0
    return _reduce(loss, counted, reduction, shape), np.moveaxis(g.reshape(shape + (C,)), -1, axis)


def ref_truncated(x, labels, margin=0.6, softness=None, ignore_index=-100, axis=-1, reduction="mean"):
    rows, y, shape = _rows(x, labels, axis)
    N, C = rows.shape
    lp = log_softmax(rows)
    loss, g = np.zeros(N), np.zeros((N, C))
    counted = 0
    for i in range(N):
        if y[i] == ignore_index:
            continue
        counted += 1
        l = lp[i, y[i]]
        p = np.exp(l)
        if softness is None:
            f = float(p < margin)
            A = f
        else:
            f = 1 / (1 + np.exp(-softness * (margin - p)))
            A = f - f * (1 - f) * softness * p * l
        loss[i] = -f * l
        g[i] = A * np.exp(lp[i])
        g[i, y[i]] -= A
    if reduction == "mean":
        g = g / counted if counted else g * 0
    return _reduce(loss, counted, reduction, shape), np.moveaxis(g.reshape(shape + (C,)), -1, axis)


def torch_focal(x, labels, alpha=None, gamma=2.0, ignore_index=-100, reduction="mean"):
    """The oracle for the gradient: autograd of the formula (2-D, float64)."""
    xt = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    yt = torch.tensor(np.asarray(labels))
    keep = yt != ignore_index
    lp = torch.log_softmax(xt, -1)[keep].gather(1, yt[keep][:, None])[:, 0]
    a = torch.ones_like(lp) if alpha is None else (
        torch.full_like(lp, float(alpha)) if np.ndim(alpha) == 0 else torch.tensor(np.asarray(alpha, np.float64))[yt[keep]])
    per = -a * (-torch.expm1(lp)) ** gamma * lp
    loss = per.sum() / max(int(keep.sum()), 1) if reduction == "mean" else per.sum()
    loss.backward()
    return loss.item(), xt.grad.numpy()


def _tol(dtype):
    return dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-11)


# C values that take each row path: lanes (< 16), short rows (<= 8 vectors), 2 KiB blocks.
CLASSES = [1, 3, 10, 17, 40, 100, 300, 1000]


# --- softmax_focal_loss ------------------------------------------------------------------------

@pytest.mark.parametrize("C", CLASSES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 3.7])
def test_focal_matches_reference(C, dtype, gamma):
    r = rng(C)
    x = (r.standard_normal((37, C)) * 3).astype(dtype)
    y = r.integers(0, C, 37)
    y[5] = -100
    alpha = r.random(C) + 0.5
    for a in (None, 0.25, alpha):
        for reduction in ("mean", "sum", "none"):
            loss, grad = fastloss.softmax_focal_loss(x, y, alpha=a, gamma=gamma, reduction=reduction, return_grad=True)
            want_l, want_g = ref_focal(x, y, a, gamma, reduction=reduction)
            assert loss.dtype == dtype and grad.dtype == dtype and grad.shape == x.shape
            np.testing.assert_allclose(loss, want_l, **_tol(dtype))
            np.testing.assert_allclose(grad, want_g, **_tol(dtype))
            only = fastloss.softmax_focal_loss(x, y, alpha=a, gamma=gamma, reduction=reduction)
            np.testing.assert_array_equal(only, loss)  # loss-only takes the same path


@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0])
def test_focal_gradient_matches_torch_autograd(gamma):
    r = rng(3)
    x = r.standard_normal((20, 7)) * 2
    y = r.integers(0, 7, 20)
    y[0] = -100
    alpha = r.random(7)
    for a in (None, 0.5, alpha):
        for reduction in ("mean", "sum"):
            loss, grad = fastloss.softmax_focal_loss(x, y, alpha=a, gamma=gamma, reduction=reduction, return_grad=True)
            want_l, want_g = torch_focal(x, y, a, gamma, reduction=reduction)
            np.testing.assert_allclose(loss, want_l, rtol=1e-12)
            np.testing.assert_allclose(grad, want_g, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("shape,axis", [((33, 10), -1), ((9, 40), 1), ((5, 300), -1), ((2, 21, 5, 7), 1),
                                        ((3, 4, 18), 1), ((17, 5), 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_focal_gamma0_is_cross_entropy_exactly(shape, axis, dtype):
    r = rng(11)
    x = (r.standard_normal(shape) * 4).astype(dtype)
    C = shape[axis]
    lshape = tuple(n for i, n in enumerate(shape) if i != axis % len(shape))
    y = r.integers(0, C, lshape)
    y.flat[0] = -100
    for reduction in ("mean", "sum", "none"):
        fl, fg = fastloss.softmax_focal_loss(x, y, gamma=0.0, axis=axis, reduction=reduction, return_grad=True)
        cl, cg = fastloss.softmax_cross_entropy(x, y, axis=axis, reduction=reduction, return_grad=True)
        np.testing.assert_array_equal(fl, cl)
        np.testing.assert_array_equal(fg, cg)


def test_focal_finite_differences():
    r = rng(5)
    x = r.standard_normal((6, 9))
    y = r.integers(0, 9, 6)
    alpha = r.random(9) + 0.1
    for gamma in (0.0, 0.7, 2.0):
        _, g = fastloss.softmax_focal_loss(x, y, alpha=alpha, gamma=gamma, return_grad=True)
        num = numerical_grad(lambda z: float(fastloss.softmax_focal_loss(z, y, alpha=alpha, gamma=gamma)), x)
        np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("C", [3, 40, 3000])
@pytest.mark.parametrize("gamma", [0.0, 0.3, 2.0, 5.0])
def test_focal_extreme_logits_finite(C, gamma):
    x = np.zeros((4, C), np.float32)
    x[0, 0] = 1e4       # label 0 certain: p = 1, loss 0
    x[1, 1] = 1e4       # label 0 impossible: p ~ exp(-1e4)
    x[2] = -1e4
    x[2, 2 % C] = 1e4
    x[3] = 1e4          # flat
    y = np.array([0, 0, 1 % C, 0])
    loss, grad = fastloss.softmax_focal_loss(x, y, gamma=gamma, reduction="none", return_grad=True)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    assert loss[0] == 0 and np.all(grad[0] == 0)
    want_l, want_g = ref_focal(x, y, None, gamma, reduction="none")
    np.testing.assert_allclose(loss, want_l, rtol=1e-5)
    np.testing.assert_allclose(grad, want_g.astype(np.float32), rtol=1e-5, atol=1e-6)


def test_focal_nan_and_inf_propagate():
    x = np.array([[np.nan, 0.0, 1.0], [np.inf, 0.0, 1.0], [-np.inf, 0.0, 1.0]])
    loss = fastloss.softmax_focal_loss(x, np.array([1, 1, 1]), reduction="none")
    assert np.isnan(loss[0]) and np.isnan(loss[1])
    np.testing.assert_allclose(loss[2], ref_focal(x[2:], [1], reduction="none")[0], rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_layouts_give_the_same_bits(dtype):
    """Short rows give the same bits on every layout (the lane path sums in the short-row order);
    long rows in the lane layout take a different path, equal to rounding."""
    r = rng(8)
    for C in (5, 40, 700):
        x = (r.standard_normal((19, C)) * 2).astype(dtype)
        y = r.integers(0, C, 19)
        y[2] = -100
        want = fastloss.softmax_focal_loss(x, y, gamma=1.5, reduction="none", return_grad=True)
        views = {"transposed": np.ascontiguousarray(x.T).T, "negative": np.ascontiguousarray(x[::-1, ::-1])[::-1, ::-1]}
        big = np.zeros((38, 3 * C), dtype)
        big[::2, ::3] = x
        views["sliced"] = big[::2, ::3]
        for name, v in views.items():
            got = fastloss.softmax_focal_loss(v, y[::-1].copy()[::-1], gamma=1.5, reduction="none", return_grad=True)
            tol = dict(rtol=0, atol=0) if dtype != np.float16 else dict(rtol=1e-3, atol=1e-4)
            if C > 128 and dtype != np.float16:
                tol = dict(rtol=2e-6, atol=1e-9) if dtype == np.float32 else dict(rtol=1e-14, atol=1e-18)
            np.testing.assert_allclose(got[0].astype(np.float64), want[0].astype(np.float64), err_msg=name, **tol)
            np.testing.assert_allclose(got[1].astype(np.float64), want[1].astype(np.float64), err_msg=name, **tol)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(0, 3), st.integers(1, 40), st.booleans(), st.integers(0, 2**31))
def test_hypothesis_axes_and_shapes(ndim, axis_pick, C, flip, seed):
    r = rng(seed)
    shape = list(r.integers(1, 6, ndim))
    axis = axis_pick % ndim
    shape[axis] = C
    x = r.standard_normal(shape) * 3
    if flip:
        x = x[..., ::-1]
        C = x.shape[axis]
    lshape = tuple(n for i, n in enumerate(x.shape) if i != axis)
    y = r.integers(0, C, lshape)
    loss, grad = fastloss.softmax_focal_loss(x, y, gamma=2.0, axis=axis, return_grad=True)
    want_l, want_g = ref_focal(x, y, gamma=2.0, axis=axis)
    np.testing.assert_allclose(loss, want_l, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grad, want_g, rtol=1e-9, atol=1e-12)
    tl, tg = fastloss.truncated_cross_entropy(x, y, margin=0.5, softness=3.0, axis=axis, return_grad=True)
    wl, wg = ref_truncated(x, y, 0.5, 3.0, axis=axis)
    np.testing.assert_allclose(tl, wl, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(tg, wg, rtol=1e-9, atol=1e-12)


def test_empty_and_all_ignored():
    x = np.zeros((0, 5), np.float32)
    loss, grad = fastloss.softmax_focal_loss(x, np.zeros(0, np.int64), return_grad=True)
    assert float(loss) == 0 and grad.shape == (0, 5)
    x = np.ones((4, 5))
    loss, grad = fastloss.truncated_cross_entropy(x, np.full(4, -100), return_grad=True)
    assert float(loss) == 0 and np.all(grad == 0)
    loss = fastloss.softmax_focal_loss(x, np.full(4, -100), reduction="none")
    assert np.all(loss == 0)
    loss, grad = fastloss.softmax_focal_loss(np.ones((3, 1)), np.zeros(3, np.int32), return_grad=True)  # C = 1
    assert float(loss) == 0 and np.all(grad == 0)


def test_isa_levels_agree(isa):
    r = rng(21)
    for C in (7, 50, 3000):
        x = r.standard_normal((23, C)).astype(np.float32)
        y = r.integers(0, C, 23)
        loss, grad = fastloss.softmax_focal_loss(x, y, gamma=2.0, return_grad=True)
        want_l, want_g = ref_focal(x, y, gamma=2.0)
        np.testing.assert_allclose(loss, want_l, rtol=2e-5)
        np.testing.assert_allclose(grad, want_g, rtol=2e-4, atol=1e-7)


def test_float16_and_label_dtypes():
    r = rng(4)
    x = r.standard_normal((30, 12)).astype(np.float16)
    y = r.integers(0, 12, 30)
    want_l, want_g = ref_focal(x, y)
    for dt in (np.int8, np.uint8, np.int16, np.int32, np.uint64):
        loss, grad = fastloss.softmax_focal_loss(x, y.astype(dt), return_grad=True)
        assert loss.dtype == np.float16 and grad.dtype == np.float16
        np.testing.assert_allclose(float(loss), want_l, rtol=2e-3)
        np.testing.assert_allclose(grad.astype(np.float64), want_g, atol=2e-4)


# --- truncated_cross_entropy -------------------------------------------------------------------

@pytest.mark.parametrize("C", CLASSES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_truncated_matches_reference(C, dtype):
    r = rng(100 + C)
    x = (r.standard_normal((41, C)) * 3).astype(dtype)
    y = r.integers(0, C, 41)
    y[3] = -100
    for margin, softness in ((0.6, None), (0.3, None), (0.6, 5.0), (0.9, 0.5)):
        for reduction in ("mean", "sum", "none"):
            loss, grad = fastloss.truncated_cross_entropy(x, y, margin=margin, softness=softness, reduction=reduction,
                                                          return_grad=True)
            want_l, want_g = ref_truncated(x, y, margin, softness, reduction=reduction)
            np.testing.assert_allclose(loss, want_l, **_tol(dtype))
            np.testing.assert_allclose(grad, want_g, **_tol(dtype))


def test_truncated_margin_one_is_cross_entropy():
    r = rng(6)
    for C in (4, 40, 3000):
        x = r.standard_normal((25, C)) * 2
        y = r.integers(0, C, 25)
        y[1] = -100
        tl, tg = fastloss.truncated_cross_entropy(x, y, margin=1.0, return_grad=True)
        cl, cg = fastloss.softmax_cross_entropy(x, y, return_grad=True)
        np.testing.assert_allclose(tl, cl, rtol=1e-13)
        np.testing.assert_allclose(tg, cg, rtol=1e-12, atol=1e-16)
        tor = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(y), ignore_index=-100)
        np.testing.assert_allclose(tl, tor.item(), rtol=1e-12)


def test_truncated_counts_truncated_rows_in_the_mean():
    x = np.array([[5.0, 0.0], [0.0, 5.0]])  # row 0 right (p ~ 0.993, truncated), row 1 wrong
    y = np.array([0, 0])
    loss = fastloss.truncated_cross_entropy(x, y, margin=0.6)
    np.testing.assert_allclose(loss, -log_softmax(x)[1, 0] / 2, rtol=1e-14)


def test_truncated_finite_differences_soft():
    r = rng(7)
    x = r.standard_normal((5, 6))
    y = r.integers(0, 6, 5)
    _, g = fastloss.truncated_cross_entropy(x, y, margin=0.4, softness=4.0, return_grad=True)
    num = numerical_grad(lambda z: float(fastloss.truncated_cross_entropy(z, y, margin=0.4, softness=4.0)), x)
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-9)


def test_truncated_soft_gradient_matches_torch():
    r = rng(9)
    x = r.standard_normal((12, 5)) * 2
    y = r.integers(0, 5, 12)
    xt = torch.tensor(x, requires_grad=True)
    lp = torch.log_softmax(xt, -1).gather(1, torch.tensor(y)[:, None])[:, 0]
    (torch.sigmoid(3.0 * (0.5 - lp.exp())) * -lp).mean().backward()
    loss, grad = fastloss.truncated_cross_entropy(x, y, margin=0.5, softness=3.0, return_grad=True)
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_truncated_extremes():
    x = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]], np.float32)
    for softness in (None, 10.0):
        loss, grad = fastloss.truncated_cross_entropy(x, np.array([0, 0]), softness=softness, reduction="none",
                                                      return_grad=True)
        assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
        f = 1.0 if softness is None else 1 / (1 + np.exp(-softness * 0.6))  # p_y = 0
        np.testing.assert_allclose(loss[1], 2e4 * f, rtol=1e-6)


# --- bad inputs ---------------------------------------------------------------------------------

def test_bad_inputs():
    x = np.zeros((4, 3), np.float32)
    y = np.array([0, 1, 2, 0])
    with pytest.raises(ValueError, match="gamma"):
        fastloss.softmax_focal_loss(x, y, gamma=-0.5)
    with pytest.raises(ValueError, match="gamma"):
        fastloss.softmax_focal_loss(x, y, gamma=float("nan"))
    with pytest.raises(TypeError, match="gamma"):
        fastloss.softmax_focal_loss(x, y, gamma="2")
    with pytest.raises(ValueError, match="alpha"):
        fastloss.softmax_focal_loss(x, y, alpha=np.ones(4))
    # integer per-class weights are read as floats (issue 20)
    assert float(fastloss.softmax_focal_loss(x, y, alpha=np.ones(3, np.int32))) == float(
        fastloss.softmax_focal_loss(x, y, alpha=np.ones(3)))
    with pytest.raises(TypeError, match="alpha"):
        fastloss.softmax_focal_loss(x, y, alpha=np.array(["a", "b", "c"]))
    with pytest.raises(IndexError, match=r"labels\[2\] = 3"):
        fastloss.softmax_focal_loss(x, np.array([0, 1, 3, 0]))
    with pytest.raises(IndexError, match="labels"):
        fastloss.truncated_cross_entropy(x, np.array([0, -1, 0, 0]))
    with pytest.raises(TypeError, match="labels"):
        fastloss.softmax_focal_loss(x, y.astype(np.float32))
    with pytest.raises(ValueError, match="labels"):
        fastloss.softmax_focal_loss(x, y[:3])
    with pytest.raises(ValueError, match="reduction"):
        fastloss.truncated_cross_entropy(x, y, reduction="avg")
    with pytest.raises(ValueError, match="axis"):
        fastloss.softmax_focal_loss(x, y, axis=2)
    with pytest.raises(ValueError, match="softness"):
        fastloss.truncated_cross_entropy(x, y, softness=0.0)
    with pytest.raises(ValueError, match="margin"):
        fastloss.truncated_cross_entropy(x, y, margin=float("inf"))
    with pytest.raises(TypeError, match="logits"):
        fastloss.softmax_focal_loss(x.astype(np.int32), y)
    with pytest.raises(TypeError, match="ignore_index"):
        fastloss.softmax_focal_loss(x, y, ignore_index=1.5)


def test_inputs_unchanged_and_readonly_ok():
    r = rng(2)
    x = r.standard_normal((8, 20)).astype(np.float32)
    y = r.integers(0, 20, 8)
    x.flags.writeable = False
    xc = x.copy()
    fastloss.softmax_focal_loss(x, y, return_grad=True)
    fastloss.truncated_cross_entropy(x, y, return_grad=True)
    np.testing.assert_array_equal(x, xc)
    odd = np.frombuffer(b"\0" + x.tobytes(), np.float32, offset=1).reshape(x.shape)  # unaligned
    np.testing.assert_array_equal(fastloss.truncated_cross_entropy(odd, y), fastloss.truncated_cross_entropy(x, y))


# --- divergences: scipy is the oracle ----------------------------------------------------------

import scipy.spatial.distance  # noqa: E402
import scipy.stats  # noqa: E402


def _probs(r, shape, zeros=True, dtype=np.float64):
    a = r.random(shape) ** 3
    if zeros:
        a[r.random(shape) < 0.2] = 0.0
    return a.astype(dtype)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # scipy on rows summing to 0 (C = 1)
@pytest.mark.parametrize("C", [1, 2, 7, 16, 33, 1000])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_divergences_match_scipy(C, dtype):
    r = rng(C)
    p = _probs(r, (23, C), dtype=dtype)
    q = _probs(r, (23, C), zeros=False, dtype=dtype) + dtype(1e-3)
    p[0] = 0
    p[0, 0] = 1  # a one-hot row
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    h = fastloss.entropy(p)
    assert h.dtype == dtype and h.shape == (23,)
    np.testing.assert_allclose(h, scipy.stats.entropy(p.astype(np.float64), axis=-1), **tol)
    np.testing.assert_allclose(fastloss.kl_divergence(p, q), scipy.stats.entropy(p.astype(np.float64), q, axis=-1), **tol)
    js = scipy.spatial.distance.jensenshannon(p.astype(np.float64), q.astype(np.float64), axis=-1) ** 2
    np.testing.assert_allclose(fastloss.js_divergence(p, q), js, **tol)
    np.testing.assert_allclose(fastloss.js_divergence(q, p), js, **tol)  # symmetric


def test_divergence_edge_rules():
    p = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.2, 0.8, 0.0], [0.0, 0.0, 0.0], [-0.1, 0.6, 0.5],
                  [np.nan, 0.5, 0.5]])
    q = np.array([[0.5, 0.0, 0.5], [0.0, 1.0, 0.0], [0.2, 0.8, 0.0], [0.3, 0.3, 0.4], [0.3, 0.3, 0.4],
                  [0.3, 0.3, 0.4]])
    with np.errstate(all="ignore"):
        want_h = scipy.stats.entropy(p, axis=-1)
        want_kl = scipy.stats.entropy(p, q, axis=-1)
        want_js = scipy.spatial.distance.jensenshannon(p, q, axis=-1) ** 2
    np.testing.assert_allclose(fastloss.entropy(p), want_h, rtol=1e-14)
    np.testing.assert_allclose(fastloss.kl_divergence(p, q), want_kl, rtol=1e-14)
    np.testing.assert_allclose(fastloss.js_divergence(p[:4], q[:4]), want_js[:4], rtol=1e-14)
    assert fastloss.kl_divergence(p[0], q[0]) == np.inf  # q = 0 < p
    assert fastloss.kl_divergence(p[2], q[2]) == 0.0  # 0 log 0 = 0 on both sides
    assert np.isnan(fastloss.entropy(p[3]))  # an all-zero row normalises to NaN, as in scipy
    np.testing.assert_allclose(fastloss.js_divergence(p[1], q[1]), np.log(2), rtol=1e-15)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_divergence_axes_and_layouts(axis):
    r = rng(31)
    p = _probs(r, (4, 9, 6))
    q = _probs(r, (4, 9, 6), zeros=False) + 1e-3
    np.testing.assert_allclose(fastloss.entropy(p, axis=axis), scipy.stats.entropy(p, axis=axis), rtol=1e-12)
    np.testing.assert_allclose(fastloss.kl_divergence(p, q, axis=axis), scipy.stats.entropy(p, q, axis=axis),
                               rtol=1e-12)
    pv = np.ascontiguousarray(p[::-1, :, ::-1].transpose(2, 1, 0)).transpose(2, 1, 0)[::-1, :, ::-1]
    np.testing.assert_array_equal(fastloss.js_divergence(pv, q, axis=axis), fastloss.js_divergence(p, q, axis=axis))
    np.testing.assert_allclose(fastloss.entropy(p.astype(np.float16), axis=axis),
                               scipy.stats.entropy(p.astype(np.float16).astype(np.float64), axis=axis), rtol=2e-3)


def test_divergence_lists_scalars_and_empty():
    np.testing.assert_allclose(fastloss.entropy([0.25, 0.25, 0.5]), scipy.stats.entropy([0.25, 0.25, 0.5]))
    assert fastloss.entropy(np.zeros((0, 4))).shape == (0,)
    assert fastloss.kl_divergence(np.ones((3, 0)), np.ones((3, 0))).shape == (3,)


def test_divergence_bad_inputs():
    p = np.full((3, 4), 0.25)
    with pytest.raises(ValueError, match="q"):
        fastloss.kl_divergence(p, p[:, :3])
    with pytest.raises(TypeError, match="q"):
        fastloss.js_divergence(p, p.astype(np.float32))
    with pytest.raises(TypeError, match="p"):
        fastloss.entropy(np.ones((2, 2), np.int64))
    with pytest.raises(ValueError, match="axis"):
        fastloss.entropy(p, axis=3)
    with pytest.raises(ValueError, match="p"):
        fastloss.entropy(np.float64(1.0))


def test_big_endian():
    r = rng(2)
    x = r.standard_normal((8, 20)).astype(np.float32)
    y = r.integers(0, 20, 8)
    big = x.byteswap().view(x.dtype.newbyteorder(">"))
    np.testing.assert_array_equal(fastloss.softmax_focal_loss(big, y), fastloss.softmax_focal_loss(x, y))
    np.testing.assert_array_equal(fastloss.entropy(np.abs(big)), fastloss.entropy(np.abs(x)))


# --- multiclass_hinge_loss: torch multi_margin_loss is the oracle for Weston-Watkins --------------

def torch_multi_margin(x, y, p, margin, weight, reduction):
    xt = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    wt = None if weight is None else torch.tensor(np.asarray(weight, np.float64))
    loss = torch.nn.functional.multi_margin_loss(xt, torch.tensor(y), p=p, margin=margin, weight=wt,
                                                 reduction=reduction)
    (loss.sum() if reduction == "none" else loss).backward()
    return loss.detach().numpy(), xt.grad.numpy()


def ref_crammer_singer(x, y, p, margin, weight):
    x = np.asarray(x, np.float64)
    N, C = x.shape
    w = np.ones(C) if weight is None else np.asarray(weight, np.float64)
    loss, g = np.zeros(N), np.zeros((N, C))
    for i in range(N):
        others = [j for j in range(C) if j != y[i]]
        if not others:
            continue
        js = max(others, key=lambda j: (x[i, j], -j))
        z = margin - x[i, y[i]] + x[i, js]
        h = max(z, 0.0)
        loss[i] = w[y[i]] * h ** p
        if h > 0:
            d = w[y[i]] * (2 * h if p == 2 else 1.0)
            g[i, js], g[i, y[i]] = d, -d
    return loss, g


@pytest.mark.parametrize("C", [1, 2, 5, 16, 40, 1000])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [1, 2])
def test_weston_watkins_matches_torch(C, dtype, p):
    r = rng(C + p)
    x = (r.standard_normal((29, C))).astype(dtype)
    y = r.integers(0, C, 29)
    weight = r.random(C) + 0.5
    for w in (None, weight):
        for margin in (1.0, 0.3):
            for reduction in ("mean", "sum", "none"):
                loss, grad = fastloss.multiclass_hinge_loss(x, y, margin=margin, p=p, weight=w, reduction=reduction,
                                                            return_grad=True)
                want_l, want_g = torch_multi_margin(x, y, p, margin, w, reduction)
                np.testing.assert_allclose(loss, want_l, **_tol(dtype))
                np.testing.assert_allclose(grad, want_g, **_tol(dtype))


@pytest.mark.parametrize("C", [1, 3, 40, 700])
@pytest.mark.parametrize("p", [1, 2])
def test_crammer_singer_matches_reference(C, p):
    r = rng(50 + C)
    x = r.standard_normal((31, C))
    x[0, :] = 0.5  # ties: the first rival takes the gradient
    y = r.integers(0, C, 31)
    weight = r.random(C) + 0.5
    for w in (None, weight):
        loss, grad = fastloss.multiclass_hinge_loss(x, y, p=p, weight=w, kind="crammer_singer", reduction="none",
                                                    return_grad=True)
        want_l, want_g = ref_crammer_singer(x, y, p, 1.0, w)
        np.testing.assert_allclose(loss, want_l, rtol=1e-14)
        np.testing.assert_allclose(grad, want_g, rtol=1e-14)
        mean, gm = fastloss.multiclass_hinge_loss(x, y, p=p, weight=w, kind="crammer_singer", return_grad=True)
        np.testing.assert_allclose(mean, want_l.mean(), rtol=1e-13)
        np.testing.assert_allclose(gm, want_g / 31, rtol=1e-13)


@pytest.mark.parametrize("kind", ["weston_watkins", "crammer_singer"])
def test_hinge_streamed_gradient(kind):
    """A gradient of 8 MiB or more is streamed past the cache from an aligned vector on (rows of
    1003 doubles start at every alignment); the label's entry rides in its vector."""
    r = rng(77)
    x = r.standard_normal((1100, 1003))
    y = r.integers(0, 1003, 1100)
    loss, grad = fastloss.multiclass_hinge_loss(x, y, kind=kind, reduction="sum", return_grad=True)
    if kind == "weston_watkins":
        want_l, want_g = torch_multi_margin(x, y, 1, 1.0, None, "sum")
    else:
        want_l, want_g = ref_crammer_singer(x, y, 1, 1.0, None)
        want_l = want_l.sum()
    np.testing.assert_allclose(loss, want_l, rtol=1e-12)
    np.testing.assert_allclose(grad, want_g, rtol=1e-12, atol=1e-15)


def test_hinge_finite_differences_axis_and_layouts():
    r = rng(12)
    x = r.standard_normal((3, 6, 5)) * 2  # classes on axis 1
    y = r.integers(0, 6, (3, 5))
    for kind in ("weston_watkins", "crammer_singer"):
        _, g = fastloss.multiclass_hinge_loss(x, y, p=2, kind=kind, axis=1, return_grad=True)
        num = numerical_grad(lambda z: float(fastloss.multiclass_hinge_loss(z, y, p=2, kind=kind, axis=1)), x)
        np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-8)
        xt = np.ascontiguousarray(x.transpose(2, 0, 1)).transpose(1, 2, 0)
        np.testing.assert_array_equal(fastloss.multiclass_hinge_loss(xt, y, kind=kind, axis=1, reduction="none"),
                                      fastloss.multiclass_hinge_loss(x, y, kind=kind, axis=1, reduction="none"))
    want = torch.nn.functional.multi_margin_loss(torch.tensor(np.moveaxis(x, 1, -1).reshape(-1, 6)),
                                                 torch.tensor(y.reshape(-1)))
    np.testing.assert_allclose(fastloss.multiclass_hinge_loss(x, y, axis=1), want.item(), rtol=1e-14)


def test_hinge_edges_and_errors():
    assert float(fastloss.multiclass_hinge_loss(np.zeros((0, 3)), np.zeros(0, np.int64))) == 0.0
    x = np.zeros((2, 3), np.float32)
    y = np.array([0, 2])
    np.testing.assert_allclose(fastloss.multiclass_hinge_loss(x, y), 2 / 3, rtol=1e-6)  # torch: (1+1)/3
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        fastloss.multiclass_hinge_loss(x, y, p=3)
    with pytest.raises(ValueError, match="kind"):
        fastloss.multiclass_hinge_loss(x, y, kind="hinge")
    with pytest.raises(IndexError, match=r"labels\[1\] = 3"):
        fastloss.multiclass_hinge_loss(x, np.array([0, 3]))
    with pytest.raises(ValueError, match="weight"):
        fastloss.multiclass_hinge_loss(x, y, weight=np.ones(2))
    with pytest.raises(TypeError, match="labels"):
        fastloss.multiclass_hinge_loss(x, y.astype(np.float64))
    with pytest.raises(ValueError, match="labels"):
        fastloss.multiclass_hinge_loss(x, y[:1])
    with pytest.raises(ValueError, match="margin"):
        fastloss.multiclass_hinge_loss(x, y, margin=float("nan"))
    xf = x.astype(np.float16)
    loss, g = fastloss.multiclass_hinge_loss(xf, y, return_grad=True)
    assert loss.dtype == np.float16 and g.dtype == np.float16


# --------------------------------------------------------------------------- grad_out (issue 20)
@pytest.mark.parametrize("name,kw", [
    ("softmax_focal_loss", dict(gamma=2.0)),
    ("softmax_focal_loss", dict(gamma=1.5, alpha=np.array([0.5, 1.0, 2.0, 1.0, 0.25]), reduction="sum")),
    ("truncated_cross_entropy", dict(margin=0.5)),
    ("truncated_cross_entropy", dict(margin=0.7, softness=10.0, reduction="none")),
    ("multiclass_hinge_loss", dict(p=2, weight=np.arange(1.0, 6.0))),
    ("multiclass_hinge_loss", dict(kind="crammer_singer", reduction="none")),
])
def test_grad_out(backend, name, kw):
    from grad_out_check import check_grad_out
    rng = np.random.default_rng(2021)
    x = rng.normal(size=(11, 5)) * 2
    y = rng.integers(0, 5, 11)
    if backend.name == "cupy":
        kw = {k: backend.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    check_grad_out(getattr(fastloss, name), [x, y], kw, backend)
    # class axis 1 of a 3-D input
    x3 = rng.normal(size=(3, 5, 4))
    check_grad_out(getattr(fastloss, name), [x3, rng.integers(0, 5, (3, 4))], dict(kw, axis=1), backend)


def test_grad_out_float32_in_place_matches_fresh():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(64, 300)).astype(np.float32)
    y = rng.integers(0, 300, 64)
    for name in ("softmax_focal_loss", "truncated_cross_entropy", "multiclass_hinge_loss"):
        loss0, g0 = getattr(fastloss, name)(x, y, return_grad=True)
        xi = x.copy()
        loss, g = getattr(fastloss, name)(xi, y, grad_out=xi)
        assert g is xi and float(loss) == float(loss0)
        np.testing.assert_array_equal(g, g0)
