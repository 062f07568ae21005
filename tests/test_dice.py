"""dice_loss: per-sample / per-class Dice loss with the activation and its gradient fused.

A float64 NumPy reference from the formula, MONAI's formula written in torch (autograd) as the
oracle (MONAI itself is not a dependency), central finite differences, every option, layouts
(class axis anywhere, strided, negative strides, float16), awkward shapes (C=1, N=0, no
spatial axes), empty masks, hypothesis over layouts, bad inputs, and the CUDA kernels (the
`backend` fixture: on the emulator without a GPU)."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import fastloss
from reference import numerical_grad


def rng(seed):
    return np.random.default_rng(seed)


def _probs(x, activation, axis):
    if activation == "softmax":
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)
    if activation == "sigmoid":
        return 1 / (1 + np.exp(-x))
    return x


def ref_dice(x, t, activation=None, smooth=1.0, squared=False, axis=None, reduction="mean"):
    """float64 loss from the formula: per (sample, class) with axis, per sample without."""
    x = np.asarray(x, np.float64)
    t = np.asarray(t)
    if t.dtype.kind in "iu":
        ax = axis % x.ndim
        t = np.moveaxis(np.eye(x.shape[ax])[t], -1, ax)
    t = t.astype(np.float64)
    p = _probs(x, activation, axis % x.ndim if axis is not None else None)
    ax = axis % x.ndim if axis is not None else None
    dims = tuple(d for d in range(1, x.ndim) if d != ax)
    k = 2 if squared else 1
    inter, ps, ts = (p * t).sum(dims), (p ** k).sum(dims), (t ** k).sum(dims)
    num, den = 2 * inter + smooth, ps + ts + smooth
    with np.errstate(invalid="ignore", divide="ignore"):
        loss = np.where((den == 0) & (num == 0), 0.0, 1 - num / den)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.mean() if loss.size else 0.0


def monai_torch(x, t, activation=None, smooth=1.0, squared=False, axis=None, reduction="mean"):
    """MONAI DiceLoss's formula in torch (softmax/sigmoid, one_hot, sums over the reduce axes,
    1 - (2 I + smooth_nr) / (P + T + smooth_dr)) with autograd: (loss, grad)."""
    xt = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    ax = axis % xt.ndim if axis is not None else None
    if activation == "softmax":
        p = torch.softmax(xt, ax)
    elif activation == "sigmoid":
        p = torch.sigmoid(xt)
    else:
        p = xt
    t = np.asarray(t)
    if t.dtype.kind in "iu":
        tt = torch.nn.functional.one_hot(torch.tensor(t, dtype=torch.int64), xt.shape[ax]).double().movedim(-1, ax)
    else:
        tt = torch.tensor(t, dtype=torch.float64)
    dims = [d for d in range(1, xt.ndim) if d != ax]
    if squared:
        p2, t2 = p ** 2, tt ** 2
    else:
        p2, t2 = p, tt
    s = (lambda v: v.sum(dims)) if dims else (lambda v: v)
    f = 1.0 - (2.0 * s(p * tt) + smooth) / (s(p2) + s(t2) + smooth)
    out = f.mean() if reduction == "mean" else f.sum() if reduction == "sum" else f
    (out if out.ndim == 0 else out.sum()).backward()
    return out.detach().numpy(), xt.grad.numpy()


def _labels(r, shape, axis):
    ax = axis % len(shape)
    return r.integers(0, shape[ax], tuple(s for i, s in enumerate(shape) if i != ax))


CASES = [  # shape, axis, activation, integer targets
    ((2, 3, 5, 7), 1, "softmax", True),
    ((2, 3, 5, 7), 1, "softmax", False),
    ((3, 4, 33), 1, "sigmoid", False),
    ((3, 4, 33), 1, None, True),
    ((3, 5, 6, 21), -1, "softmax", True),
    ((2, 6, 5, 20), 2, "softmax", False),
    ((4, 9), None, "sigmoid", False),
    ((4, 3, 17), None, None, False),
    ((5, 4), 1, "softmax", True),
    ((5,), None, "sigmoid", False),
    ((2, 1, 8, 8), 1, "sigmoid", True),   # C = 1
    ((2, 21, 9, 40), 1, "softmax", True),  # partial SIMD groups at the line ends
    # class axis last (channels-last, (N, C)): lanes gathered at the row stride
    ((4, 37), 1, "softmax", True),
    ((3, 7, 40), -1, "sigmoid", False),
    ((2, 5, 33), -1, None, True),
    ((2, 3, 4, 19), 3, "softmax", False),
    # (N, C) per class: the row path along the classes (every bucket one element)
    ((6, 45), 1, "sigmoid", False),
    ((3, 20), 1, None, False),
    ((4, 37), 1, "softmax", False),
    ((7, 1, 33, 1), 2, "sigmoid", True),  # unit position dims: the same path
]


@pytest.mark.parametrize("shape,axis,activation,int_t", CASES)
@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_monai_formula(shape, axis, activation, int_t, squared, reduction):
    r = rng(1)
    x = r.normal(size=shape) * 2
    t = _labels(r, shape, axis) if int_t else r.uniform(0, 1, shape)
    for smooth in [1.0, 1e-5]:
        kw = dict(activation=activation, axis=axis, squared=squared, smooth=smooth, reduction=reduction)
        loss, grad = fastloss.dice_loss(x, t, return_grad=True, **kw)
        want, wgrad = monai_torch(x, t, **kw)
        np.testing.assert_allclose(loss, want, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(loss, ref_dice(x, t, **kw), rtol=1e-12, atol=1e-12)
        if reduction != "none":
            np.testing.assert_allclose(grad, wgrad, rtol=1e-10, atol=1e-12)
        assert grad.shape == x.shape and grad.dtype == x.dtype
        if reduction == "none":
            assert loss.shape == (shape[0],) + ((shape[axis],) if axis is not None else ())


@pytest.mark.parametrize("activation,axis", [(None, None), ("sigmoid", 1), ("softmax", 1), ("softmax", -1)])
@pytest.mark.parametrize("squared", [False, True])
def test_finite_differences(activation, axis, squared):
    r = rng(2)
    x = r.normal(size=(2, 3, 4))
    t = r.uniform(0, 1, x.shape) if activation != "softmax" else _labels(r, x.shape, axis)
    if activation is None:
        x = r.uniform(0.05, 1, x.shape)
    for reduction in ["mean", "sum"]:
        kw = dict(activation=activation, axis=axis, squared=squared, smooth=0.5, reduction=reduction)
        _, grad = fastloss.dice_loss(x, t, return_grad=True, **kw)
        num = numerical_grad(lambda z: float(fastloss.dice_loss(z, t, **kw)), x)
        np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-6), (np.float16, 2e-3)])
def test_float32_and_float16(dtype, tol):
    r = rng(3)
    x = r.normal(size=(3, 5, 8, 19)).astype(dtype)
    y = _labels(r, x.shape, 1)
    loss, grad = fastloss.dice_loss(x, y, activation="softmax", axis=1, return_grad=True)
    want, wgrad = monai_torch(x.astype(np.float64), y, activation="softmax", axis=1)
    assert loss.dtype == dtype and grad.dtype == dtype
    np.testing.assert_allclose(float(loss), want, rtol=tol, atol=tol)
    np.testing.assert_allclose(grad.astype(np.float64), wgrad, rtol=tol * 10, atol=tol * np.abs(wgrad).max())


def test_float32_accumulates_in_float64():
    # a long sample: float32 sums would drift; the kernel's go into float64 every few groups
    r = rng(4)
    x = r.normal(size=(1, 2, 1 << 20)).astype(np.float32)
    y = r.integers(0, 2, (1, 1 << 20))
    loss = fastloss.dice_loss(x, y, activation="softmax", axis=1, reduction="none")
    want = ref_dice(x.astype(np.float64), y, activation="softmax", axis=1, reduction="none")
    np.testing.assert_allclose(loss, want, rtol=2e-6)


@pytest.mark.parametrize("squared", [False, True])
def test_empty_prediction_and_target_give_zero(squared):
    x = np.zeros((2, 3, 4))
    t = np.zeros((2, 3, 4))
    for smooth in [1.0, 0.0]:
        loss, grad = fastloss.dice_loss(x, t, smooth=smooth, squared=squared, axis=1, reduction="none",
                                        return_grad=True)
        assert np.array_equal(loss, np.zeros((2, 3))) and not np.isnan(grad).any()
        if smooth == 0.0:  # defined as 0 there (smooth > 0: the formula's own gradient, s / s^2)
            assert np.array_equal(grad, np.zeros_like(x))
    # one empty class among others: 0 for it, the formula for the rest
    x = np.stack([np.zeros((4, 4)), np.full((4, 4), 0.5)])[None]
    t = np.stack([np.zeros((4, 4)), np.ones((4, 4))])[None]
    loss = fastloss.dice_loss(x, t, smooth=0.0, axis=1, reduction="none")
    np.testing.assert_allclose(loss, [[0.0, 1 - 16 / 24]])
    # sigmoid of -inf logits is an empty prediction too
    loss = fastloss.dice_loss(np.full((2, 5), -np.inf), np.zeros((2, 5)), activation="sigmoid", smooth=0.0,
                              reduction="none")
    assert np.array_equal(loss, [0.0, 0.0])


def test_perfect_prediction_is_zero():
    t = (rng(5).uniform(size=(3, 2, 10)) > 0.5).astype(np.float64)
    np.testing.assert_allclose(fastloss.dice_loss(t, t, smooth=0.0, axis=1, reduction="none"),
                               np.where(t.sum(2) > 0, 0.0, 0.0), atol=1e-15)


def test_integer_targets_equal_one_hot_float_targets():
    r = rng(6)
    x = r.normal(size=(3, 4, 5, 6))
    y = _labels(r, x.shape, 1)
    oh = np.moveaxis(np.eye(4)[y], -1, 1)
    for act in [None, "sigmoid", "softmax"]:
        a = fastloss.dice_loss(x, y, activation=act, axis=1, reduction="none", return_grad=True)
        b = fastloss.dice_loss(x, oh, activation=act, axis=1, reduction="none", return_grad=True)
        np.testing.assert_allclose(a[0], b[0], rtol=1e-14)
        np.testing.assert_allclose(a[1], b[1], rtol=1e-13, atol=1e-16)
    for dt in [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.uint64]:
        np.testing.assert_allclose(fastloss.dice_loss(x, y.astype(dt), activation="softmax", axis=1),
                                   fastloss.dice_loss(x, y, activation="softmax", axis=1), rtol=1e-15)


def test_layouts_strided_and_negative_strides():
    r = rng(7)
    base = r.normal(size=(4, 6, 10, 22))
    x = base[::2, :, ::-1, 1:21:2]  # strided, negative strides
    xt = np.moveaxis(x, 1, -1)  # class axis last, a transposed view
    xc = np.ascontiguousarray(xt)
    lab = r.integers(0, 6, (2, 10, 10))
    lab_strided = np.repeat(lab, 2, axis=2)[:, :, ::2]
    for act in ["softmax", "sigmoid", None]:
        a = fastloss.dice_loss(xt, lab_strided, activation=act, axis=-1, reduction="none", return_grad=True)
        b = fastloss.dice_loss(xc, lab, activation=act, axis=-1, reduction="none", return_grad=True)
        np.testing.assert_allclose(a[0], b[0], rtol=1e-13)
        np.testing.assert_allclose(a[1], b[1], rtol=1e-12, atol=1e-16)
        c = fastloss.dice_loss(x, lab, activation=act, axis=1, reduction="none", return_grad=True)  # classes strided
        np.testing.assert_allclose(c[0], b[0], rtol=1e-13)
        np.testing.assert_allclose(c[1], np.moveaxis(b[1], -1, 1), rtol=1e-12, atol=1e-16)


def test_big_endian_and_unaligned():
    r = rng(8)
    x = r.normal(size=(2, 3, 4, 5))
    y = _labels(r, x.shape, 1)
    want = fastloss.dice_loss(x, y, activation="softmax", axis=1, return_grad=True)
    got = fastloss.dice_loss(x.astype(">f8"), y.astype(">i4"), activation="softmax", axis=1, return_grad=True)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-15)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-15)
    buf = np.empty(x.size * 8 + 1, np.uint8)
    xu = buf[1:].view(np.float64).reshape(x.shape)
    xu[...] = x
    got = fastloss.dice_loss(xu, y, activation="softmax", axis=1, return_grad=True)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-15)


def test_awkward_shapes():
    # N = 0
    for red, shape in [("mean", ()), ("sum", ()), ("none", (0, 3))]:
        loss, grad = fastloss.dice_loss(np.zeros((0, 3, 4)), np.zeros((0, 4), np.int64), activation="softmax",
                                        axis=1, reduction=red, return_grad=True)
        assert loss.shape == shape and grad.shape == (0, 3, 4)
        if red != "none":
            assert float(loss) == 0.0
    # no positions: every sum is 0, the loss 0 (smooth / smooth)
    loss = fastloss.dice_loss(np.zeros((2, 3, 0)), np.zeros((2, 3, 0)), axis=1, reduction="none")
    assert np.array_equal(loss, np.zeros((2, 3)))
    # one element per sample
    x = rng(9).normal(size=(6, 1))
    np.testing.assert_allclose(fastloss.dice_loss(x, np.ones((6, 1)), activation="sigmoid", reduction="none"),
                               ref_dice(x, np.ones((6, 1)), "sigmoid", reduction="none"), rtol=1e-14)
    # read-only inputs
    x = rng(9).normal(size=(2, 3, 4))
    x.flags.writeable = False
    fastloss.dice_loss(x, np.zeros((2, 4), np.int64), activation="softmax", axis=1, return_grad=True)


def test_extreme_values():
    x = np.array([[[1e9, -1e9, 0.0], [-1e9, 1e9, 5.0]]])  # (1, 2, 3): classes on axis 1
    loss, grad = fastloss.dice_loss(x, np.array([[0, 1, 0]]), activation="softmax", axis=1, return_grad=True)
    want, wgrad = monai_torch(x, np.array([[0, 1, 0]]), activation="softmax", axis=1)
    np.testing.assert_allclose(loss, want, rtol=1e-12)
    np.testing.assert_allclose(grad, wgrad, rtol=1e-9, atol=1e-15)
    x = np.array([[1e9, -1e9, 30.0, -30.0]])
    for act in ["sigmoid"]:
        loss, grad = fastloss.dice_loss(x, np.array([[1.0, 0.0, 1.0, 0.0]]), activation=act, return_grad=True)
        assert np.isfinite(loss) and np.isfinite(grad).all()
        want, wgrad = monai_torch(x, np.array([[1.0, 0.0, 1.0, 0.0]]), activation=act)
        np.testing.assert_allclose(loss, want, rtol=1e-12)
        # sigmoid'(30) from exp(-30) / (1 + exp(-30))^2: torch's p (1 - p) is off by 1e-3 there
        np.testing.assert_allclose(grad, wgrad, rtol=2e-3, atol=1e-30)
    loss = fastloss.dice_loss(np.array([[np.nan, 1.0]]), np.array([[1.0, 0.0]]))
    assert np.isnan(loss)


@pytest.mark.parametrize("shape,axis", [((3, 5, 97, 131), 1), ((3, 97, 131, 17), -1)])
def test_threads_give_same_bits(shape, axis):
    r = rng(10)
    x = r.normal(size=shape).astype(np.float32)  # samples split across chunks
    y = _labels(r, x.shape, axis)
    before = fastloss.get_num_threads()
    try:
        fastloss.set_num_threads(1)
        a = fastloss.dice_loss(x, y, activation="softmax", axis=axis, reduction="none", return_grad=True)
        fastloss.set_num_threads(3)
        b = fastloss.dice_loss(x, y, activation="softmax", axis=axis, reduction="none", return_grad=True)
    finally:
        fastloss.set_num_threads(before)
    # chunks fixed by the size, combined in chunk order: the same bits for any thread count
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    np.testing.assert_allclose(a[0], ref_dice(x.astype(np.float64), y, "softmax", axis=axis, reduction="none"),
                               rtol=2e-6)


@pytest.mark.parametrize("shape,axis", [((2, 7, 5, 37), 1), ((2, 5, 3, 37), -1)])  # classes strided / contiguous
def test_every_simd_level(isa, shape, axis):
    r = rng(11)
    for dtype in [np.float32, np.float64]:
        x = r.normal(size=shape).astype(dtype)
        y = _labels(r, x.shape, axis)
        for act in [None, "sigmoid", "softmax"]:
            loss, grad = fastloss.dice_loss(x, y, activation=act, axis=axis, squared=True, return_grad=True)
            want, wgrad = monai_torch(x.astype(np.float64), y, activation=act, axis=axis, squared=True)
            tol = 1e-5 if dtype == np.float32 else 1e-12
            np.testing.assert_allclose(loss, want, rtol=tol)
            np.testing.assert_allclose(grad, wgrad, rtol=tol * 10, atol=tol * np.abs(wgrad).max())


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_layouts_property(data):
    ndim = data.draw(st.integers(2, 4))
    shape = list(data.draw(st.lists(st.integers(1, 7), min_size=ndim, max_size=ndim)))
    shape[-1] = data.draw(st.integers(1, 20))  # up to more than a SIMD vector of classes
    shape = tuple(shape)
    axis = data.draw(st.sampled_from([None] + list(range(1, ndim)) + [-1]))
    act = data.draw(st.sampled_from([None, "sigmoid"] + (["softmax"] if axis is not None else [])))
    int_t = axis is not None and data.draw(st.booleans())
    seed = data.draw(st.integers(0, 2**31))
    perm = data.draw(st.permutations(range(ndim)))
    flip = data.draw(st.lists(st.booleans(), min_size=ndim, max_size=ndim))
    r = rng(seed)
    # a transposed, maybe flipped view of a bigger array, with the same values as its copy
    base = r.normal(size=tuple(shape[p] for p in perm))
    x = np.transpose(base, np.argsort(perm))
    x = x[tuple(slice(None, None, -1) if f else slice(None) for f in flip)]
    t = _labels(r, shape, axis) if int_t else r.uniform(0, 1, shape)
    kw = dict(activation=act, axis=axis, squared=data.draw(st.booleans()), reduction="none")
    loss, grad = fastloss.dice_loss(x, t, return_grad=True, **kw)
    loss_c, grad_c = fastloss.dice_loss(np.ascontiguousarray(x), t, return_grad=True, **kw)
    np.testing.assert_allclose(loss, loss_c, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grad, grad_c, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(loss, ref_dice(x, t, **kw), rtol=1e-11, atol=1e-13)


def test_bad_inputs():
    x = np.zeros((2, 3, 4))
    y = np.zeros((2, 4), np.int64)
    cases = [
        (dict(activation="relu", axis=1), ValueError, "activation"),
        (dict(activation=3, axis=1), TypeError, "activation"),
        (dict(activation="softmax"), ValueError, "axis"),
        (dict(smooth=-1.0, axis=1), ValueError, "smooth"),
        (dict(smooth=float("nan"), axis=1), ValueError, "smooth"),
        (dict(smooth=float("inf"), axis=1), ValueError, "smooth"),
        (dict(axis=3), ValueError, "axis"),
        (dict(axis=-4), ValueError, "axis"),
        (dict(axis=0), ValueError, "axis"),
        (dict(axis=1.5), TypeError, "axis"),
        (dict(axis=1, reduction="avg"), ValueError, "reduction"),
        (dict(axis=1, squared="yes"), TypeError, "squared"),
        (dict(axis=1, return_grad=None), TypeError, "return_grad"),
    ]
    for kw, exc, word in cases:
        with pytest.raises(exc, match=word):
            fastloss.dice_loss(x, y, **kw)
    with pytest.raises(ValueError, match="targets"):
        fastloss.dice_loss(x, np.zeros((2, 3), np.int64), axis=1)
    with pytest.raises(ValueError, match="targets"):
        fastloss.dice_loss(x, np.zeros((2, 3, 5)), axis=1)
    with pytest.raises(ValueError, match="targets"):
        fastloss.dice_loss(x, np.zeros((2, 3, 4), np.int64))  # integer labels need axis
    # bool targets are masks (issue 20): read as 0.0 / 1.0
    assert float(fastloss.dice_loss(x, np.zeros((2, 3, 4), bool))) == float(fastloss.dice_loss(x, np.zeros((2, 3, 4))))
    with pytest.raises(TypeError, match="inputs"):
        fastloss.dice_loss(np.zeros((2, 3), np.int64), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="inputs"):
        fastloss.dice_loss(np.float64(1.0), np.float64(1.0))
    for bad in [3, -1]:
        yb = y.copy()
        yb[1, 2] = bad
        with pytest.raises(IndexError, match=rf"targets\[1, 2\] = {bad} is outside \[0, 3\)"):
            fastloss.dice_loss(x, yb, activation="softmax", axis=1, return_grad=True)
    with pytest.raises(IndexError, match=r"targets\[4\] = 7"):
        fastloss.dice_loss(np.zeros((5, 3)), np.array([0, 1, 2, 0, 7]), axis=1)


# --- CUDA (the emulator without a GPU) ----------------------------------------------------
CUDA_CASES = [
    ((2, 3, 5, 7), 1, "softmax", True, np.float32),
    ((2, 3, 5, 7), 1, "softmax", False, np.float64),
    ((3, 4, 9), -1, "sigmoid", False, np.float64),
    ((4, 9), None, None, False, np.float32),
    ((5, 4), 1, "softmax", True, np.float16),
    ((2, 2, 40), 1, "sigmoid", True, np.float64),  # a warp step spanning two samples
]


@pytest.mark.parametrize("shape,axis,activation,int_t,dtype", CUDA_CASES)
def test_backends_agree(backend, shape, axis, activation, int_t, dtype):
    r = rng(12)
    x = (r.normal(size=shape) * 2).astype(dtype)
    t = _labels(r, shape, axis).astype(np.int32 if dtype == np.float32 else np.int64) if int_t \
        else r.uniform(0, 1, shape)
    tol = {np.float64: 1e-12, np.float32: 2e-5, np.float16: 3e-3}[dtype]
    for red in ["mean", "none"]:
        for sq in [False, True]:
            kw = dict(activation=activation, axis=axis, squared=sq, reduction=red)
            loss, grad = fastloss.dice_loss(backend.asarray(x), backend.asarray(t), return_grad=True, **kw)
            assert type(loss) is type(backend.asarray(x)) and loss.dtype == dtype and grad.dtype == dtype
            want, wgrad = monai_torch(x.astype(np.float64), t, **kw)
            np.testing.assert_allclose(backend.to_numpy(loss).astype(np.float64), want, rtol=tol, atol=tol)
            if red == "mean":
                np.testing.assert_allclose(backend.to_numpy(grad).astype(np.float64), wgrad, rtol=tol * 10,
                                           atol=tol * np.abs(wgrad).max())


def test_backend_bad_label_and_empty(backend):
    x = backend.asarray(np.zeros((2, 3, 4)))
    y = np.zeros((2, 4), np.int64)
    y[1, 3] = 5
    with pytest.raises(IndexError, match=r"targets\[1, 3\] = 5"):
        fastloss.dice_loss(x, backend.asarray(y), activation="softmax", axis=1, return_grad=True)
    loss, grad = fastloss.dice_loss(backend.asarray(np.zeros((0, 3, 4))), backend.asarray(np.zeros((0, 4), np.int64)),
                                    activation="softmax", axis=1, return_grad=True)
    assert float(backend.to_numpy(loss)) == 0.0 and grad.shape == (0, 3, 4)
    loss = fastloss.dice_loss(backend.asarray(np.zeros((2, 3, 4))), backend.asarray(np.zeros((2, 3, 4))), smooth=0.0,
                              axis=1, reduction="none")
    assert np.array_equal(backend.to_numpy(loss), np.zeros((2, 3)))


# --------------------------------------------------------------------------- MONAI's options (issue 20)
def monai_options(x, t, axis=1, activation=None, **kw):
    """MONAI's DiceLoss itself (installed with `pip install --no-deps monai`) on (N, C, ...) with
    the class axis `axis` moved to 1: (loss, grad w.r.t. x) from torch autograd."""
    monai_losses = pytest.importorskip("monai.losses")
    xt = torch.tensor(np.moveaxis(np.asarray(x, np.float64), axis, 1), requires_grad=True)
    t = np.asarray(t)
    if t.dtype.kind in "iu":
        tt = torch.tensor(t, dtype=torch.int64).unsqueeze(1)
        kw = dict(kw, to_onehot_y=True)
    else:
        tt = torch.tensor(np.moveaxis(t.astype(np.float64), axis, 1))
    loss_fn = monai_losses.DiceLoss(softmax=activation == "softmax", sigmoid=activation == "sigmoid", **kw)
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = loss_fn(xt, tt)
    out.sum().backward()
    return out.detach().numpy(), np.moveaxis(xt.grad.numpy(), 1, axis)


MONAI_OPTIONS = [
    dict(jaccard=True),
    dict(batch=True),
    dict(include_background=False),
    dict(weight=[0.5, 2.0, 1.0]),
    dict(smooth_nr=0.0, smooth_dr=1e-5),
    dict(smooth_nr=1e-5, smooth_dr=1e-5, squared_pred=True, jaccard=True),
    dict(batch=True, include_background=False, weight=[3.0, 0.25], jaccard=True),
    dict(batch=True, squared_pred=True, smooth_nr=0.5, smooth_dr=2.0),
    dict(include_background=False, weight=2.0, squared_pred=True),
]


@pytest.mark.parametrize("opts", MONAI_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("activation,int_t", [("softmax", True), ("sigmoid", False), (None, False)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_monai_options_match_monai(opts, activation, int_t, reduction):
    r = rng(2030)
    shape = (3, 3, 5, 6)
    x = r.normal(size=shape) * 2
    if activation is None:
        x = r.uniform(0, 1, shape)
    t = _labels(r, shape, 1) if int_t else (r.uniform(size=shape) < 0.4).astype(np.float64)
    want, wgrad = monai_options(x, t, activation=activation, reduction=reduction, **opts)
    kw = {("squared" if k == "squared_pred" else k): v for k, v in opts.items()}
    kw.setdefault("smooth", 1e-5)  # MONAI's default smoothing
    loss, grad = fastloss.dice_loss(x, t, activation=activation, axis=1, reduction=reduction, return_grad=True, **kw)
    if reduction == "none":  # MONAI keeps the spatial axes as 1s
        assert want.shape == loss.shape + (1, 1), (want.shape, loss.shape)
        want = want.reshape(loss.shape)
    # MONAI's squared form takes I as (P + T - sum((p - t)**2)) / 2: its own cancellation, ~1e-9
    rtol = 1e-7 if opts.get("squared_pred") else 1e-12
    np.testing.assert_allclose(loss, want, rtol=rtol, atol=1e-14)
    np.testing.assert_allclose(grad, wgrad, rtol=rtol * 100, atol=1e-13 if rtol < 1e-9 else 1e-9)


@pytest.mark.parametrize("opts", [dict(jaccard=True), dict(batch=True), dict(smooth_nr=0.0, smooth_dr=0.5),
                                  dict(batch=True, jaccard=True, squared=True, weight=3.0)])
def test_monai_options_without_axis(opts):
    """No class axis: one bucket per sample (MONAI with one channel holding everything)."""
    r = rng(2031)
    x, t = r.normal(size=(4, 3, 7)), (r.uniform(size=(4, 3, 7)) < 0.5).astype(np.float64)
    mk = {("squared_pred" if k == "squared" else k): v for k, v in opts.items() if k != "weight"}
    want, wgrad = monai_options(x.reshape(4, 1, 21), t.reshape(4, 1, 21), activation="sigmoid",
                                reduction="none", smooth_nr=mk.pop("smooth_nr", 1.0), smooth_dr=mk.pop("smooth_dr", 1.0),
                                **mk)
    w = opts.get("weight", 1.0)  # MONAI ignores a weight with one channel; fastloss applies it
    loss, grad = fastloss.dice_loss(x, t, activation="sigmoid", reduction="none", return_grad=True, **opts)
    assert loss.shape == (() if opts.get("batch") else (4,))
    rtol = 1e-7 if opts.get("squared") else 1e-12  # MONAI's squared I: see test_monai_options_match_monai
    np.testing.assert_allclose(loss, w * want.reshape(loss.shape), rtol=rtol, atol=1e-14)
    np.testing.assert_allclose(grad, w * wgrad.reshape(grad.shape), rtol=rtol * 100, atol=1e-13 if rtol < 1e-9 else 1e-9)


@pytest.mark.parametrize("opts", [dict(jaccard=True, squared=True), dict(batch=True, include_background=False),
                                  dict(weight=np.array([1, 3, 2]), smooth_nr=0.3, smooth_dr=0.7, jaccard=True)])
@pytest.mark.parametrize("activation", ["softmax", "sigmoid", None])
def test_monai_options_finite_differences(opts, activation):
    r = rng(2032)
    x = r.normal(size=(2, 3, 4)) if activation else r.uniform(0.1, 0.9, (2, 3, 4))
    t = r.uniform(size=(2, 3, 4))
    kw = dict(opts, activation=activation, axis=1, reduction="sum")
    _, g = fastloss.dice_loss(x, t, return_grad=True, **kw)
    num = numerical_grad(lambda z: float(fastloss.dice_loss(z, t, **kw)), x)
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-8)


def test_monai_options_row_path_shape():
    """(N, C) with axis=1: the options leave the one-element-bucket row path for the bucket path.
    MONAI is given (N, C, 1) (with no spatial axis its sums run over every axis)."""
    r = rng(2033)
    x, y = r.normal(size=(6, 4)), r.integers(0, 4, 6)
    for opts in MONAI_OPTIONS[:5]:
        kw = {k: v for k, v in opts.items() if k != "weight"}
        want, wgrad = monai_options(x[..., None], y[..., None], activation="softmax", reduction="mean", **kw)
        wgrad = wgrad[..., 0]
        loss, grad = fastloss.dice_loss(x, y, activation="softmax", axis=1, return_grad=True,
                                        **dict(kw, smooth=1e-5))
        np.testing.assert_allclose(loss, want, rtol=1e-12)
        np.testing.assert_allclose(grad, wgrad, rtol=1e-10, atol=1e-13)


def test_monai_option_errors():
    x, y = np.zeros((2, 3, 4)), np.zeros((2, 4), np.int64)
    for kw, exc, word in [(dict(smooth_nr=-1.0), ValueError, "smooth_nr"), (dict(smooth_dr=np.inf), ValueError, "smooth_dr"),
                          (dict(weight=[1.0, 2.0]), ValueError, "weight"),
                          (dict(weight=[1.0, 2.0, 3.0], include_background=False), ValueError, "weight"),
                          (dict(weight="x"), TypeError, "weight"), (dict(jaccard=None), TypeError, "jaccard"),
                          (dict(batch="yes"), TypeError, "batch"),
                          (dict(include_background=None), TypeError, "include_background")]:
        with pytest.raises(exc, match=word):
            fastloss.dice_loss(x, y, activation="softmax", axis=1, **kw)
    with pytest.raises(ValueError, match="include_background"):
        fastloss.dice_loss(np.zeros((2, 5)), np.zeros((2, 5)), include_background=False)
    # one class: include_background=False is ignored, as MONAI
    a = fastloss.dice_loss(np.ones((2, 1, 3)), np.ones((2, 1, 3)), axis=1, include_background=False, reduction="none")
    assert a.shape == (2, 1)


def test_batch_over_no_sample_and_empty():
    loss = fastloss.dice_loss(np.zeros((0, 3, 4)), np.zeros((0, 4), np.int64), activation="softmax", axis=1,
                              batch=True, reduction="none")
    assert loss.shape == (3,) and np.array_equal(loss, np.zeros(3))
    loss, g = fastloss.dice_loss(np.zeros((0, 3, 4)), np.zeros((0, 3, 4)), batch=True, return_grad=True)
    assert float(loss) == 0.0 and g.shape == (0, 3, 4)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
@pytest.mark.parametrize("shape,axis", [((2, 2), 1), ((2, 2, 3), 1)])
def test_softmax_smooth0_saturated_logits_never_nan(dtype, shape, axis):
    """Issue 19 item 5: softmax over logits like [-50, 50] in float32 with smooth=0 gave a NaN loss
    for the class with p = exp(-100) (a denormal) and NaN gradients for the whole sample; float64
    gives 1 and finite gradients."""
    x = np.zeros(shape)
    x[:, 0], x[:, 1] = -50.0, 50.0
    y = np.ones((shape[0],) + shape[2:], np.int64)
    want, wgrad = fastloss.dice_loss(x, y, activation="softmax", axis=axis, smooth=0.0, reduction="none",
                                     return_grad=True)
    assert np.isfinite(want).all() and np.isfinite(wgrad).all()
    loss, grad = fastloss.dice_loss(x.astype(dtype), y, activation="softmax", axis=axis, smooth=0.0,
                                    reduction="none", return_grad=True)
    assert np.isfinite(loss).all() and np.isfinite(grad).all(), (loss, grad)
    # class 1 is predicted and there: 0; class 0 scores 1, or 0 where the activation rounded
    # exp(-100) to 0 (an empty class)
    assert np.all(loss[:, 1] == 0)
    assert np.all((loss[:, 0] == 1) | (loss[:, 0] == 0))
    np.testing.assert_allclose(grad.astype(np.float64), wgrad, atol=1e-6)
    for red in ("mean", "sum"):
        loss, grad = fastloss.dice_loss(x.astype(dtype), y, activation="softmax", axis=axis, smooth=0.0,
                                        reduction=red, return_grad=True)
        assert np.isfinite(loss) and np.isfinite(grad).all()


def test_grad_out(backend):
    from grad_out_check import check_grad_out
    r = rng(2034)
    x = r.normal(size=(3, 4, 5, 2))
    y = _labels(r, x.shape, 1)
    for kw in [dict(activation="softmax", axis=1), dict(activation="sigmoid", axis=1, jaccard=True, batch=True),
               dict(activation="softmax", axis=1, include_background=False, weight=[1.0, 2.0, 0.5])]:
        check_grad_out(fastloss.dice_loss, [x, y], kw, backend)
    check_grad_out(fastloss.dice_loss, [x, r.uniform(size=x.shape)], dict(activation="sigmoid"), backend)
    xr = r.normal(size=(6, 5))  # the (N, C) row path
    check_grad_out(fastloss.dice_loss, [xr, r.integers(0, 5, 6)], dict(activation="softmax", axis=1), backend)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_backends_agree_monai_options(backend, dtype):
    r = rng(2035)
    x = (r.normal(size=(3, 4, 6, 5)) * 2).astype(dtype)
    y = _labels(r, x.shape, 1)
    tol = {np.float64: 1e-12, np.float32: 2e-5}[dtype]
    for opts in [dict(jaccard=True), dict(batch=True), dict(include_background=False, weight=np.array([1, 2, 3])),
                 dict(batch=True, include_background=False, smooth_nr=0.0, smooth_dr=1e-3, squared=True),
                 dict(weight=0.5, jaccard=True, batch=True)]:
        for red in ("mean", "none"):
            kw = dict(opts, activation="softmax", axis=1, reduction=red)
            want, wgrad = fastloss.dice_loss(x.astype(np.float64), y, return_grad=True, **kw)
            bkw = {k: backend.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
            loss, grad = fastloss.dice_loss(backend.asarray(x), backend.asarray(y), return_grad=True, **bkw)
            assert loss.shape == want.shape and loss.dtype == dtype
            np.testing.assert_allclose(backend.to_numpy(loss).astype(np.float64), want, rtol=tol, atol=tol)
            np.testing.assert_allclose(backend.to_numpy(grad).astype(np.float64), wgrad, rtol=tol * 10,
                                       atol=tol * np.abs(wgrad).max())
