"""Elementwise losses: float64 NumPy references, PyTorch CPU as the oracle (values and autograd
gradients), central finite differences, hypothesis over shapes/broadcasting/strides/dtypes,
extreme values, bad inputs, SIMD levels and CUDA cases (through the `backend` fixture)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from scipy.special import expit

import fastloss
from fastloss import _C
from conftest import SUPPORTED_ISAS

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss")

# ---------------------------------------------------------------------------------------------
# Float64 NumPy references (per element), straight from the formulas.


def _sp(x):  # softplus
    return np.logaddexp(0.0, x)


def _bce(x, t, c=1.0):
    pos = np.where(c * t == 0, 0.0, c * t * _sp(-x))
    neg = np.where(1 - t == 0, 0.0, (1 - t) * _sp(x))
    return pos + neg


def ref_elements(name, x, t, weight=None, pos_weight=None, **o):
    x = np.asarray(x, np.float64)
    t = np.asarray(t, np.float64)
    with np.errstate(all="ignore"):
        if name == "sigmoid_cross_entropy":
            c = 1.0 if pos_weight is None else np.asarray(pos_weight, np.float64)
            l = _bce(x, t, c)
        elif name == "balanced_sigmoid_cross_entropy":
            beta = o.get("beta")
            beta = np.mean(t == 0) if beta is None else beta
            l = np.where(t == 0, 0, beta * t * _sp(-x)) + np.where(t == 1, 0, (1 - beta) * (1 - t) * _sp(x))
        elif name == "sigmoid_focal_loss":
            alpha, gamma = o.get("alpha", 0.25), o.get("gamma", 2.0)
            p = expit(x)
            pt = p * t + (1 - p) * (1 - t)
            l = _bce(x, t) * (1 - pt) ** gamma
            if alpha >= 0:
                l = l * (alpha * t + (1 - alpha) * (1 - t))
        elif name == "truncated_sigmoid_cross_entropy":
            margin, k = o.get("margin", 0.6), o.get("softness")
            s = expit(x)
            pt = t * s + (1 - t) * (1 - s)
            f = (pt < margin).astype(np.float64) if k is None else expit(k * (margin - pt))
            l = f * _bce(x, t)
        elif name == "hinge_loss":
            y = np.where(t == 0, -1.0, t)
            h = np.maximum(0.0, o.get("margin", 1.0) - y * x)
            l = h ** 2 if o.get("squared") else h
        elif name == "kl_div":
            if o.get("log_target"):
                l = np.where(np.exp(t) == 0, 0.0, np.exp(t) * (t - x))
            else:
                l = np.where(t == 0, 0.0, t * (np.log(np.where(t == 0, 1, t)) - x))
        else:
            r = x - t
            if name == "mse_loss":
                l = r ** 2
            elif name == "l1_loss":
                l = np.abs(r)
            elif name == "huber_loss":
                d = o.get("delta", 1.0)
                l = np.where(np.abs(r) < d, 0.5 * r ** 2, d * (np.abs(r) - 0.5 * d))
            elif name == "smooth_l1_loss":
                b = o.get("beta", 1.0)
                l = np.abs(r) if b == 0 else np.where(np.abs(r) < b, 0.5 * r ** 2 / b, np.abs(r) - 0.5 * b)
            elif name == "log_cosh_loss":
                l = np.logaddexp(r, -r) - np.log(2.0)
            else:
                raise KeyError(name)
    if weight is not None:
        l = l * np.asarray(weight, np.float64)
    return l


def reduce_ref(l, reduction, batch=None):
    if reduction == "none":
        return l
    if reduction == "sum":
        return l.sum()
    if reduction == "batchmean":
        return l.sum() / batch if batch else 0.0
    return l.mean() if l.size else 0.0


# ---------------------------------------------------------------------------------------------
# PyTorch oracles (autograd gives the gradient).


def torch_loss(name, x, t, reduction, weight=None, pos_weight=None, **o):
    """The oracle's loss as a torch tensor: the torch.nn.functional function where one exists,
    else the formula written in torch (torchvision's focal loss, balanced/truncated CE, hinge,
    log-cosh)."""
    red = reduction
    if name == "sigmoid_cross_entropy":
        return F.binary_cross_entropy_with_logits(x, t, weight=weight, pos_weight=pos_weight, reduction=red)
    if name == "kl_div":
        return F.kl_div(x, t, reduction=red, log_target=o.get("log_target", False))
    torch_fn = {"mse_loss": F.mse_loss, "l1_loss": F.l1_loss}
    if name in torch_fn and weight is None:
        return torch_fn[name](x, t, reduction=red)
    if name == "huber_loss" and weight is None:
        return F.huber_loss(x, t, reduction=red, delta=o.get("delta", 1.0))
    if name == "smooth_l1_loss" and weight is None:
        return F.smooth_l1_loss(x, t, reduction=red, beta=o.get("beta", 1.0))
    if name == "sigmoid_focal_loss":  # torchvision.ops.sigmoid_focal_loss, written out
        alpha, gamma = o.get("alpha", 0.25), o.get("gamma", 2.0)
        p = torch.sigmoid(x)
        ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
        p_t = p * t + (1 - p) * (1 - t)
        l = ce * ((1 - p_t) ** gamma)
        if alpha >= 0:
            l = (alpha * t + (1 - alpha) * (1 - t)) * l
    elif name == "balanced_sigmoid_cross_entropy":
        beta = o.get("beta")
        beta = float((t == 0).double().mean()) if beta is None else beta
        l = -(beta * t * F.logsigmoid(x) + (1 - beta) * (1 - t) * F.logsigmoid(-x))
    elif name == "truncated_sigmoid_cross_entropy":
        margin, k = o.get("margin", 0.6), o.get("softness")
        s = torch.sigmoid(x)
        pt = t * s + (1 - t) * (1 - s)
        f = (pt < margin).to(x.dtype).detach() if k is None else torch.sigmoid(k * (margin - pt))
        l = f * F.binary_cross_entropy_with_logits(x, t, reduction="none")
    elif name == "hinge_loss":
        y = torch.where(t == 0, -torch.ones_like(t), t)
        h = torch.clamp(o.get("margin", 1.0) - y * x, min=0)
        l = h ** 2 if o.get("squared") else h
    elif name == "log_cosh_loss":
        l = torch.log(torch.cosh(x - t))
    elif name in ("mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss"):
        l = torch_loss(name, x, t, "none", **o)
    else:
        raise KeyError(name)
    if weight is not None:
        l = l * weight
    return {"none": l, "sum": l.sum(), "mean": l.mean()}[red]


def torch_value_and_grad(name, x, t, reduction, weight=None, pos_weight=None, **o):
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tt = torch.tensor(t, dtype=torch.float64)
    wt = None if weight is None else torch.tensor(weight, dtype=torch.float64)
    pwt = None if pos_weight is None else torch.tensor(pos_weight, dtype=torch.float64)
    l = torch_loss(name, xt, tt, reduction, weight=wt, pos_weight=pwt, **o)
    l.sum().backward()
    return l.detach().numpy(), xt.grad.numpy()


# ---------------------------------------------------------------------------------------------
# Inputs per loss.

SIGMOID = ("sigmoid_cross_entropy", "balanced_sigmoid_cross_entropy", "sigmoid_focal_loss",
           "truncated_sigmoid_cross_entropy")
REGRESSION = ("mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "log_cosh_loss")
ALL = SIGMOID + ("hinge_loss", "kl_div") + REGRESSION
WEIGHTED = ("sigmoid_cross_entropy",) + REGRESSION

# (name, options): every option value the tests sweep.
CASES = [
    ("sigmoid_cross_entropy", {}),
    ("balanced_sigmoid_cross_entropy", {}),
    ("balanced_sigmoid_cross_entropy", {"beta": 0.3}),
    *[("sigmoid_focal_loss", {"alpha": a, "gamma": g}) for a in (0.25, -1.0) for g in (0.0, 0.5, 1.0, 2.0, 5.0)],
    ("truncated_sigmoid_cross_entropy", {}),
    ("truncated_sigmoid_cross_entropy", {"margin": 0.9}),
    ("truncated_sigmoid_cross_entropy", {"margin": 0.7, "softness": 8.0}),
    ("hinge_loss", {}),
    ("hinge_loss", {"margin": 0.5, "squared": True}),
    ("kl_div", {}),
    ("kl_div", {"log_target": True}),
    ("mse_loss", {}),
    ("l1_loss", {}),
    ("huber_loss", {}),
    ("huber_loss", {"delta": 0.3}),
    ("smooth_l1_loss", {}),
    ("smooth_l1_loss", {"beta": 0.25}),
    ("smooth_l1_loss", {"beta": 0.0}),
    ("log_cosh_loss", {}),
]


def case_id(c):
    name, o = c
    return name + ("" if not o else "-" + "-".join(f"{k}={v}" for k, v in o.items()))


def make_inputs(name, shape, rng, o=None, binary=False):
    """(x, t) in float64 for loss `name`."""
    o = o or {}
    if name in SIGMOID:
        x = rng.normal(0, 3, shape)
        if binary or name == "truncated_sigmoid_cross_entropy":
            t = (rng.random(shape) < 0.3).astype(np.float64)
        else:
            t = np.where(rng.random(shape) < 0.3, rng.random(shape), (rng.random(shape) < 0.5).astype(np.float64))
        return x, t
    if name == "hinge_loss":
        x = rng.normal(0, 2, shape)
        t = np.where(rng.random(shape) < 0.5, 1.0, 0.0 if o.get("zero_one") else -1.0)
        return x, t
    if name == "kl_div":
        z = rng.normal(0, 1, shape)
        x = z - np.log(np.exp(z).sum(axis=-1, keepdims=True)) if len(shape) else z
        if o.get("log_target"):  # (zero targets, -inf here, are tested apart: torch gives NaN)
            return x, np.log(rng.random(shape) + 1e-3)
        return x, rng.random(shape) * (rng.random(shape) < 0.8)
    return rng.normal(0, 2, shape), rng.normal(0, 2, shape)


def call(name, x, t, **kw):
    return getattr(fastloss, name)(x, t, **kw)


# ---------------------------------------------------------------------------------------------
# Oracle and reference agreement.


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_torch_and_numpy_float64(case, reduction):
    name, o = case
    rng = np.random.default_rng(len(name) + 7 * len(o))
    x, t = make_inputs(name, (37, 13), rng, o)
    loss, grad = call(name, x, t, reduction=reduction, return_grad=True, **o)
    tl, tg = torch_value_and_grad(name, x, t, reduction, **o)
    np.testing.assert_allclose(loss, tl, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(grad, tg, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(loss, reduce_ref(ref_elements(name, x, t, **o), reduction), rtol=1e-10, atol=1e-13)
    assert grad.dtype == np.float64 and grad.shape == x.shape
    assert loss.shape == (x.shape if reduction == "none" else ())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", WEIGHTED)
def test_weight_broadcasts(name, reduction):
    rng = np.random.default_rng(3)
    x, t = make_inputs(name, (5, 4, 6), rng)
    for wshape in [(6,), (4, 1), (5, 1, 1), (5, 4, 6), ()]:
        w = rng.random(wshape)
        loss, grad = call(name, x, t, weight=w, reduction=reduction, return_grad=True)
        tl, tg = torch_value_and_grad(name, x, t, reduction, weight=np.broadcast_to(w, x.shape).copy())
        np.testing.assert_allclose(loss, tl, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(grad, tg, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_pos_weight_over_last_axis(reduction):
    rng = np.random.default_rng(4)
    x, t = make_inputs("sigmoid_cross_entropy", (20, 7), rng)
    pw = rng.random(7) * 3
    w = rng.random((20, 1))
    loss, grad = fastloss.sigmoid_cross_entropy(x, t, weight=w, pos_weight=pw, reduction=reduction, return_grad=True)
    tl, tg = torch_value_and_grad("sigmoid_cross_entropy", x, t, reduction, weight=np.broadcast_to(w, x.shape).copy(),
                                  pos_weight=pw)
    np.testing.assert_allclose(loss, tl, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(grad, tg, rtol=1e-9, atol=1e-13)


def test_kl_div_batchmean():
    rng = np.random.default_rng(5)
    for o in ({}, {"log_target": True}):
        x, t = make_inputs("kl_div", (6, 9), rng, o)
        loss, grad = fastloss.kl_div(x, t, reduction="batchmean", return_grad=True, **o)
        tl, tg = torch_value_and_grad("kl_div", x, t, "batchmean", **o)
        np.testing.assert_allclose(loss, tl, rtol=1e-12)
        np.testing.assert_allclose(grad, tg, rtol=1e-12)
    # an empty batch is 0 (never NaN)
    loss, grad = fastloss.kl_div(np.zeros((0, 3)), np.zeros((0, 3)), reduction="batchmean", return_grad=True)
    assert float(loss) == 0.0 and grad.shape == (0, 3)


def test_hinge_zero_one_labels_and_integer_labels():
    rng = np.random.default_rng(6)
    x, t = make_inputs("hinge_loss", (50,), rng, {"zero_one": True})
    a = fastloss.hinge_loss(x, t, return_grad=True)
    b = fastloss.hinge_loss(x, np.where(t == 0, -1, 1).astype(np.int8), return_grad=True)
    c = fastloss.hinge_loss(x, t.astype(np.int64), return_grad=True)
    for r in (b, c):
        np.testing.assert_array_equal(a[0], r[0])
        np.testing.assert_array_equal(a[1], r[1])


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_float32_and_float16(case):
    name, o = case
    rng = np.random.default_rng(8)
    x, t = make_inputs(name, (64, 33), rng, o)
    ref = ref_elements(name, x.astype(np.float32).astype(np.float64), t.astype(np.float32).astype(np.float64), **o)
    l32, g32 = call(name, x.astype(np.float32), t.astype(np.float32), reduction="none", return_grad=True, **o)
    assert l32.dtype == np.float32 and g32.dtype == np.float32
    np.testing.assert_allclose(l32, ref, rtol=2e-5, atol=2e-6)
    _, g64 = call(name, x.astype(np.float32).astype(np.float64), t.astype(np.float32).astype(np.float64),
                  reduction="none", return_grad=True, **o)
    np.testing.assert_allclose(g32, g64, rtol=2e-5, atol=2e-6)
    m32 = call(name, x.astype(np.float32), t.astype(np.float32), **o)
    np.testing.assert_allclose(m32, ref.mean(), rtol=1e-5)
    x16, t16 = x.astype(np.float16), t.astype(np.float16)
    l16, g16 = call(name, x16, t16, reduction="none", return_grad=True, **o)
    assert l16.dtype == np.float16 and g16.dtype == np.float16
    ref16 = ref_elements(name, x16.astype(np.float64), t16.astype(np.float64), **o)
    np.testing.assert_allclose(l16.astype(np.float64), ref16, rtol=2e-3, atol=1e-3)


# ---------------------------------------------------------------------------------------------
# Gradients by central differences (float64).


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_grad_finite_differences(case):
    name, o = case
    rng = np.random.default_rng(9)
    x, t = make_inputs(name, (4, 5), rng, o)
    # (random points lie far further than h from the kinks of hinge, L1, Huber and truncation)
    _, g = call(name, x, t, reduction="mean", return_grad=True, **o)
    h = 1e-6
    fd = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        fd[i] = (float(call(name, xp, t, reduction="mean", **o)) - float(call(name, xm, t, reduction="mean", **o))) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# Layouts, dtypes and shapes (hypothesis).


@st.composite
def layouts(draw):
    name = draw(st.sampled_from(ALL))
    ndim = draw(st.integers(0, 4))
    shape = tuple(draw(st.lists(st.integers(0 if ndim else 1, 5), min_size=ndim, max_size=ndim)))
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64]))
    tdtype = draw(st.sampled_from([dtype, np.float64]))
    perm = draw(st.permutations(range(ndim))) if ndim else []
    flip = draw(st.lists(st.booleans(), min_size=ndim, max_size=ndim))
    step = draw(st.sampled_from([1, 2]))
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    wdims = draw(st.integers(-1, ndim))
    seed = draw(st.integers(0, 2 ** 16))
    return name, shape, dtype, tdtype, perm, flip, step, reduction, wdims, seed


def strided(a, perm, flip, step):
    """A view holding a's values with other strides: a stepped slice of a bigger buffer laid out
    in axis order `perm`, with the axes in `flip` reversed (negative strides)."""
    if a.ndim == 0:
        return a
    pshape = tuple(a.shape[p] for p in perm)
    big = np.zeros(tuple(n * step for n in pshape), a.dtype)
    v = np.transpose(big[tuple(slice(None, None, step) for _ in pshape)], np.argsort(perm))
    v = v[tuple(slice(None, None, -1) if f else slice(None) for f in flip)]
    v[...] = a
    return v


@settings(max_examples=60, deadline=None)
@given(layouts())
def test_layouts_match_reference(args):
    name, shape, dtype, tdtype, perm, flip, step, reduction, wdims, seed = args
    rng = np.random.default_rng(seed)
    x, t = make_inputs(name, shape, rng)
    x, t = x.astype(dtype), t.astype(tdtype)
    weight = None
    if name in WEIGHTED and wdims >= 0:
        weight = rng.random(shape[len(shape) - wdims:])
    xs, ts = strided(x, perm, flip, step), strided(t, perm, flip, step)
    kw = {} if weight is None else {"weight": weight}
    loss, grad = call(name, xs, ts, reduction=reduction, return_grad=True, **kw)
    ref = reduce_ref(ref_elements(name, x.astype(np.float64), t.astype(np.float64), weight=weight), reduction)
    tol = {np.float16: 3e-3, np.float32: 2e-5, np.float64: 1e-11}[dtype]
    np.testing.assert_allclose(np.asarray(loss, np.float64), ref, rtol=tol, atol=tol * 10)
    # the gradient of the strided call equals the contiguous call's
    _, g2 = call(name, np.ascontiguousarray(x), np.ascontiguousarray(t), reduction=reduction, return_grad=True, **kw)
    np.testing.assert_allclose(np.asarray(grad, np.float64), np.asarray(g2, np.float64), rtol=tol, atol=tol)
    assert grad.dtype == np.dtype(dtype) and loss.dtype == np.dtype(dtype)


def test_empty_and_scalar_inputs():
    for name in ALL:
        loss, grad = call(name, np.zeros((0, 3)), np.zeros((0, 3)) + (1 if name == "hinge_loss" else 0),
                          return_grad=True)
        assert float(loss) == 0.0 and grad.shape == (0, 3)
        l, g = call(name, np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32), reduction="none",
                    return_grad=True)
        assert l.shape == (0, 3) and l.dtype == np.float32
    x, t = np.float64(0.7), np.float64(1.0)
    loss, grad = fastloss.sigmoid_cross_entropy(x, t, return_grad=True)
    np.testing.assert_allclose(loss, _sp(-0.7))
    assert loss.shape == () and grad.shape == ()
    # lists and Python scalars are accepted where NumPy would accept them
    np.testing.assert_allclose(fastloss.mse_loss([1.0, 2.0], [0.0, 0.0]), 2.5)


def test_big_endian_unaligned_readonly():
    rng = np.random.default_rng(10)
    x, t = rng.normal(size=100), rng.normal(size=100)
    want = fastloss.huber_loss(x, t, return_grad=True)
    got_b = fastloss.huber_loss(x.astype(">f8"), t, return_grad=True)
    buf = np.zeros(100 * 8 + 1, np.uint8)
    xu = buf[1:].view(np.float64)  # misaligned
    xu[...] = x
    tu = t.copy()
    tu.setflags(write=False)
    got_u = fastloss.huber_loss(xu, tu, return_grad=True)
    for got in (got_b, got_u):
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_grad_out_in_place_and_preallocated():
    rng = np.random.default_rng(11)
    for name in ALL:
        x, t = make_inputs(name, (30, 17), rng)
        for dtype in (np.float32, np.float64):
            xd, td = x.astype(dtype), t.astype(dtype)
            loss, grad = call(name, xd, td, return_grad=True)
            buf = np.empty_like(xd)
            l2, g2 = call(name, xd, td, grad_out=buf)
            assert g2 is buf
            np.testing.assert_array_equal(g2, grad)
            xi = xd.copy()
            l3, g3 = call(name, xi, td, grad_out=xi)
            assert g3 is xi
            np.testing.assert_array_equal(g3, grad)
            np.testing.assert_array_equal(l3, loss)
            # strided in place: a transposed view as input and output
            xt = np.asfortranarray(xd)
            l4, g4 = call(name, xt, td, grad_out=xt)
            np.testing.assert_array_equal(g4, grad)


@pytest.mark.parametrize("isa", SUPPORTED_ISAS)
def test_simd_levels_agree(isa):
    before = _C.get_cpu_isa()
    _C.set_cpu_isa(isa)
    try:
        rng = np.random.default_rng(12)
        for name, o in CASES:
            for dtype, tol in ((np.float32, 2e-5), (np.float64, 1e-12)):
                x, t = make_inputs(name, (3, 101), rng, o)
                l, g = call(name, x.astype(dtype), t.astype(dtype), reduction="none", return_grad=True, **o)
                ref = ref_elements(name, x.astype(dtype).astype(np.float64), t.astype(dtype).astype(np.float64), **o)
                np.testing.assert_allclose(l, ref, rtol=tol, atol=tol)
                _, g64 = torch_value_and_grad(name, x.astype(dtype).astype(np.float64),
                                              t.astype(dtype).astype(np.float64), "none", **o)
                np.testing.assert_allclose(g, g64, rtol=tol, atol=tol)
    finally:
        _C.set_cpu_isa(before)


def test_large_call_uses_threads_and_accumulates_in_float64():
    n = 3 * (1 << 20) + 5
    x = np.full(n, 0.1, np.float32)
    t = np.zeros(n, np.float32)
    loss = fastloss.mse_loss(x, t, reduction="sum")
    np.testing.assert_allclose(float(loss), n * float(np.float32(0.1)) ** 2, rtol=1e-6)
    loss, grad = fastloss.l1_loss(x, t, return_grad=True)
    np.testing.assert_allclose(float(loss), float(np.float32(0.1)), rtol=1e-6)
    np.testing.assert_allclose(grad, np.float32(1.0 / n), rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Extreme values.


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_cross_entropy_exact_at_huge_and_infinite_logits(dtype):
    x = np.array([1e9, -1e9, np.inf, -np.inf] * 3, dtype)
    t = np.repeat(np.array([0.0, 0.5, 1.0], dtype), 4)
    l, g = fastloss.sigmoid_cross_entropy(x, t, reduction="none", return_grad=True)
    want = np.where(x > 0, x * (1 - t.astype(np.float64)), -x.astype(np.float64) * t)
    want = np.where(np.isnan(want), 0.0, want)  # inf * 0 -> the term is absent
    np.testing.assert_array_equal(l, want.astype(dtype))
    np.testing.assert_array_equal(g, (x > 0).astype(dtype) - t)
    assert np.all(np.isfinite(fastloss.sigmoid_cross_entropy(x[:2], t[:2], reduction="none")))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 5.0])
def test_focal_finite_at_logit_100(dtype, gamma):
    x = np.array([100, -100, 100, -100, 50, -50], dtype)
    t = np.array([1, 1, 0, 0, 1, 0], dtype)
    for alpha in (0.25, -1.0):
        l, g = fastloss.sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma, reduction="none", return_grad=True)
        assert np.all(np.isfinite(l)) and np.all(np.isfinite(g)), (l, g)
        _, tg = torch_value_and_grad("sigmoid_focal_loss", x.astype(np.float64), t.astype(np.float64), "none",
                                     alpha=alpha, gamma=gamma)
        # (where torch's s - t rounds to 0, ours keeps -exp(-|x|): atol covers it)
        np.testing.assert_allclose(g, np.nan_to_num(tg), rtol=1e-5, atol=1e-20)
        ref = ref_elements("sigmoid_focal_loss", x, t, alpha=alpha, gamma=gamma)
        np.testing.assert_allclose(l, ref, rtol=1e-5, atol=1e-30)


def test_focal_gamma0_equals_sigmoid_cross_entropy():
    rng = np.random.default_rng(13)
    x, t = make_inputs("sigmoid_cross_entropy", (40, 3), rng)
    a = fastloss.sigmoid_focal_loss(x, t, alpha=-1, gamma=0, reduction="none", return_grad=True)
    b = fastloss.sigmoid_cross_entropy(x, t, reduction="none", return_grad=True)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_cosh_finite_for_large_residuals(dtype):
    r = np.array([1e4, -1e4, 1e30, 50.0], dtype)
    l, g = fastloss.log_cosh_loss(r, np.zeros_like(r), reduction="none", return_grad=True)
    np.testing.assert_allclose(l, np.abs(r.astype(np.float64)) - np.log(2), rtol=1e-6)
    np.testing.assert_array_equal(g, np.sign(r))


def test_smooth_l1_beta0_is_exactly_l1():
    rng = np.random.default_rng(14)
    for dtype in (np.float32, np.float64):
        x, t = rng.normal(size=(50, 7)).astype(dtype), rng.normal(size=(50, 7)).astype(dtype)
        t[0, :3] = x[0, :3]  # zero residuals: gradient 0 in both
        for red in ("mean", "sum", "none"):
            a = fastloss.smooth_l1_loss(x, t, beta=0.0, reduction=red, return_grad=True)
            b = fastloss.l1_loss(x, t, reduction=red, return_grad=True)
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])


def test_kl_div_zero_targets():
    x = np.array([-np.inf, -1.0, 0.0, -np.inf])
    t = np.array([0.0, 0.0, 0.5, 0.5])
    l, g = fastloss.kl_div(x, t, reduction="none", return_grad=True)
    np.testing.assert_array_equal(l[:2], [0.0, 0.0])
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(l[2], 0.5 * np.log(0.5))
    assert l[3] == np.inf
    l, g = fastloss.kl_div(x, np.log(t), log_target=True, reduction="none", return_grad=True)
    np.testing.assert_array_equal(l[:2], [0.0, 0.0])
    assert np.all(np.isfinite(g))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_nan_stays_in_its_element(case):
    name, o = case
    rng = np.random.default_rng(15)
    x, t = make_inputs(name, (4, 40), rng, o)
    base_l, base_g = call(name, x, t, reduction="none", return_grad=True, **o)
    x[1, 17] = np.nan
    l, g = call(name, x, t, reduction="none", return_grad=True, **o)
    assert np.isnan(l[1, 17])
    assert np.isnan(g[1, 17]) or name == "kl_div"  # kl_div's gradient -t does not depend on the input
    mask = np.ones(x.shape, bool)
    mask[1, 17] = False
    np.testing.assert_array_equal(l[mask], base_l[mask])
    np.testing.assert_array_equal(g[mask], base_g[mask])
    assert np.isnan(call(name, x, t, reduction="mean", **o))


# ---------------------------------------------------------------------------------------------
# Bad inputs.


@pytest.mark.parametrize("fn, kwargs, arg", [
    ("sigmoid_focal_loss", {"gamma": -0.5}, "gamma"),
    ("huber_loss", {"delta": 0.0}, "delta"),
    ("huber_loss", {"delta": -1.0}, "delta"),
    ("smooth_l1_loss", {"beta": -0.1}, "beta"),
    ("truncated_sigmoid_cross_entropy", {"margin": 1.5}, "margin"),
    ("truncated_sigmoid_cross_entropy", {"margin": -0.1}, "margin"),
    ("truncated_sigmoid_cross_entropy", {"softness": 0.0}, "softness"),
    ("balanced_sigmoid_cross_entropy", {"beta": 1.2}, "beta"),
    ("mse_loss", {"reduction": "avg"}, "reduction"),
    ("mse_loss", {"reduction": "batchmean"}, "batchmean"),
])
def test_bad_options_raise_value_error(fn, kwargs, arg):
    x = np.zeros((3, 2))
    t = np.zeros((3, 2))
    g = x.copy()
    with pytest.raises(ValueError, match=arg):
        getattr(fastloss, fn)(x, t, grad_out=g, **kwargs)
    np.testing.assert_array_equal(g, x)


def test_hinge_bad_labels():
    x = np.linspace(-1, 1, 6).reshape(2, 3)
    with pytest.raises(ValueError, match=r"labels\[1, 0\] = 0.5"):
        fastloss.hinge_loss(x, np.array([[1, -1, 1], [0.5, 1, 1]]))
    xi = x.copy()
    with pytest.raises(ValueError, match="labels mixes -1 and 0"):
        fastloss.hinge_loss(xi, np.array([[1, -1, 1], [0, 1, 1]]), grad_out=xi)
    np.testing.assert_array_equal(xi, x)  # nothing written
    with pytest.raises(ValueError, match="labels"):
        fastloss.hinge_loss(x, np.array([[1, -1, 1], [2, 1, 1]]))


def test_shape_errors_name_the_argument():
    x = np.zeros((4, 3))
    with pytest.raises(ValueError, match="targets must have the shape of logits"):
        fastloss.sigmoid_cross_entropy(x, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="target must have the shape of pred"):
        fastloss.mse_loss(x, np.zeros(3))
    with pytest.raises(ValueError, match="labels must have the shape of scores"):
        fastloss.hinge_loss(x, np.ones((3, 4)))
    with pytest.raises(ValueError, match="weight of shape \\(2,\\) does not broadcast"):
        fastloss.l1_loss(x, x, weight=np.ones(2))
    with pytest.raises(ValueError, match="pos_weight"):
        fastloss.sigmoid_cross_entropy(x, x, pos_weight=np.ones(4))
    with pytest.raises(ValueError, match="grad_out"):
        fastloss.mse_loss(x, x, grad_out=np.zeros((3, 4)))
    with pytest.raises(TypeError, match="grad_out"):
        fastloss.mse_loss(x, x, grad_out=np.zeros((4, 3), np.float32))
    with pytest.raises(TypeError, match="pred"):
        fastloss.mse_loss(np.zeros(3, np.int64), np.zeros(3))


# ---------------------------------------------------------------------------------------------
# CUDA (CuPy arrays; on the emulator without a GPU).


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_backend_matches_cpu(backend, case):
    name, o = case
    rng = np.random.default_rng(16)
    x, t = make_inputs(name, (33, 70), rng, o)
    for dtype, tol in ((np.float32, 1e-5), (np.float64, 1e-10)):
        xd, td = x.astype(dtype), t.astype(dtype)
        for reduction in ("mean", "sum", "none"):
            want = call(name, xd, td, reduction=reduction, return_grad=True, **o)
            got = call(name, backend.asarray(xd), backend.asarray(td), reduction=reduction, return_grad=True, **o)
            np.testing.assert_allclose(backend.to_numpy(got[0]), want[0], rtol=tol, atol=tol)
            np.testing.assert_allclose(backend.to_numpy(got[1]), want[1], rtol=tol, atol=tol)


def test_backend_layouts_weights_float16(backend):
    rng = np.random.default_rng(17)
    x, t = make_inputs("sigmoid_cross_entropy", (40, 12), rng)
    w, pw = rng.random((40, 1)), rng.random(12)
    xs = np.asfortranarray(x)[::-1]
    ts = t[::-1]
    want = fastloss.sigmoid_cross_entropy(xs, ts, weight=w, pos_weight=pw, reduction="none", return_grad=True)
    got = fastloss.sigmoid_cross_entropy(backend.asarray(xs), backend.asarray(ts), weight=backend.asarray(w),
                                         pos_weight=backend.asarray(pw), reduction="none", return_grad=True)
    np.testing.assert_allclose(backend.to_numpy(got[0]), want[0], rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(got[1]), want[1], rtol=1e-12)
    x16 = x.astype(np.float16)
    want = fastloss.mse_loss(x16, t.astype(np.float16), return_grad=True)
    got = fastloss.mse_loss(backend.asarray(x16), backend.asarray(t.astype(np.float16)), return_grad=True)
    assert backend.to_numpy(got[1]).dtype == np.float16
    np.testing.assert_allclose(backend.to_numpy(got[0]).astype(np.float64), float(want[0]), rtol=2e-3)
    np.testing.assert_allclose(backend.to_numpy(got[1]).astype(np.float64), want[1].astype(np.float64), rtol=2e-3,
                               atol=1e-6)
    xi = backend.asarray(x.copy())
    got = fastloss.l1_loss(xi, backend.asarray(t), grad_out=xi)
    np.testing.assert_array_equal(backend.to_numpy(xi), fastloss.l1_loss(x, t, return_grad=True)[1])
    empty = fastloss.mse_loss(backend.asarray(np.zeros((0, 4))), backend.asarray(np.zeros((0, 4))))
    assert float(backend.to_numpy(empty)) == 0.0


def test_backend_statistics_pass(backend):
    rng = np.random.default_rng(18)
    x, t = make_inputs("sigmoid_cross_entropy", (300, 11), rng, binary=True)
    want = fastloss.balanced_sigmoid_cross_entropy(x, t, return_grad=True)
    got = fastloss.balanced_sigmoid_cross_entropy(backend.asarray(x), backend.asarray(t), return_grad=True)
    np.testing.assert_allclose(backend.to_numpy(got[0]), want[0], rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(got[1]), want[1], rtol=1e-12)
    bad = np.ones((300, 11))
    bad[200, 3] = 0.25
    xi = backend.asarray(x.copy())
    with pytest.raises(ValueError, match=r"labels\[200, 3\] = 0.25"):
        fastloss.hinge_loss(xi, backend.asarray(bad), grad_out=xi)
    np.testing.assert_array_equal(backend.to_numpy(xi), x)
    bad[200, 3] = 0
    bad[5, 5] = -1
    with pytest.raises(ValueError, match="mixes -1 and 0"):
        fastloss.hinge_loss(backend.asarray(x), backend.asarray(bad))


def test_argument_types_and_grad_out_overlap():
    x = np.zeros((4, 3))
    with pytest.raises(TypeError, match="gamma"):
        fastloss.sigmoid_focal_loss(x, x, gamma="2")
    with pytest.raises(TypeError, match="squared"):
        fastloss.hinge_loss(x, np.ones((4, 3)), squared="yes")
    with pytest.raises(TypeError, match="targets"):
        fastloss.sigmoid_cross_entropy(x, np.array(["a"] * 12).reshape(4, 3))
    buf = np.zeros(24)
    t = buf[:12].reshape(4, 3)
    with pytest.raises(ValueError, match="grad_out"):
        fastloss.mse_loss(x, t, grad_out=buf[6:18].reshape(4, 3))  # overlaps the target
    with pytest.raises(ValueError, match="reduction"):
        fastloss.kl_div(x, x, reduction="avg")


# --------------------------------------------------------------------------- issue 20
@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "batchmean"])
def test_kl_div_weight(backend, log_target, reduction):
    import torch
    r = np.random.default_rng(2040)
    x = np.log(r.dirichlet(np.ones(5), 6))
    t = r.dirichlet(np.ones(5), 6)
    t[0, 1] = 0.0
    if log_target:
        t = np.log(t)
    for w in (r.uniform(0.5, 2, 5), r.uniform(0.5, 2, (6, 1)), np.array(3.0)):
        loss, g = fastloss.kl_div(backend.asarray(x), backend.asarray(t), log_target=log_target,
                                  weight=backend.asarray(w), reduction=reduction, return_grad=True)
        xt = torch.tensor(x, requires_grad=True)
        per = torch.nn.functional.kl_div(xt, torch.tensor(t), log_target=log_target, reduction="none")
        per = torch.nan_to_num(per) * torch.tensor(np.broadcast_to(w, x.shape).copy())
        want = {"mean": per.mean(), "sum": per.sum(), "none": per, "batchmean": per.sum() / x.shape[0]}[reduction]
        want.sum().backward()
        np.testing.assert_allclose(backend.to_numpy(loss), want.detach().numpy(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(backend.to_numpy(g), xt.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_hinge_loss_weight(backend, squared, reduction):
    import torch
    r = np.random.default_rng(2041)
    s = r.normal(size=(7, 3))
    y = r.integers(0, 2, (7, 3))
    w = r.uniform(0, 2, 3)
    loss, g = fastloss.hinge_loss(backend.asarray(s), backend.asarray(y), squared=squared, weight=backend.asarray(w),
                                  reduction=reduction, return_grad=True)
    st_ = torch.tensor(s, requires_grad=True)
    per = torch.clamp(1.0 - torch.tensor(2.0 * y - 1) * st_, min=0)
    per = (per ** 2 if squared else per) * torch.tensor(w)
    want = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    want.sum().backward()
    np.testing.assert_allclose(backend.to_numpy(loss), want.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(backend.to_numpy(g), st_.grad.numpy(), rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="weight"):
        fastloss.hinge_loss(backend.asarray(s), backend.asarray(y), weight=backend.asarray(np.ones(4)))


def test_bool_targets_and_integer_weight_arrays(backend):
    """docs/elementwise.md: bool targets are accepted; integer (and bool) weight arrays are
    read as float64, like the lists of the same values."""
    r = np.random.default_rng(2042)
    x = r.normal(size=(2, 3))
    t = r.random((2, 3)) < 0.5
    xb = backend.asarray(x)
    for name in ("mse_loss", "l1_loss", "sigmoid_cross_entropy", "hinge_loss"):
        fn = getattr(fastloss, name)
        want = fn(xb, backend.asarray(t.astype(np.float64)), return_grad=True)
        got = fn(xb, backend.asarray(t), return_grad=True)
        np.testing.assert_array_equal(backend.to_numpy(got[0]), backend.to_numpy(want[0]))
        np.testing.assert_array_equal(backend.to_numpy(got[1]), backend.to_numpy(want[1]))
    want = fastloss.mse_loss(xb, xb * 0, weight=[[4], [3]])
    for w in (np.array([[4], [3]]), np.array([[4], [3]], np.uint8), np.array([[4], [3]], np.int16)):
        assert float(backend.to_numpy(fastloss.mse_loss(xb, xb * 0, weight=backend.asarray(w)))) == float(
            backend.to_numpy(want))
    wb = np.array([True, False, True])
    np.testing.assert_array_equal(
        backend.to_numpy(fastloss.huber_loss(xb, xb * 0, weight=backend.asarray(wb), reduction="none")),
        backend.to_numpy(fastloss.huber_loss(xb, xb * 0, weight=wb.astype(np.float64).tolist(), reduction="none")))
    with pytest.raises(TypeError, match="pred"):  # the differentiated input stays float-only
        fastloss.mse_loss(backend.asarray(np.zeros((2, 3), np.int64)), xb)
