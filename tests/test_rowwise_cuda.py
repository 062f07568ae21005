"""CUDA row-wise losses (csrc/cuda/rowwise.cu) against the CPU kernels, which test_rowwise.py
checks against the references: every loss and option, float16/32/64, warp rows (C <= 1024)
and block rows, strided and axis layouts, label dtypes, ignore_index, bad labels."""
import numpy as np
import pytest

import fastloss
from conftest import cupy_or_skip

TOL = {np.float64: 1e-10, np.float32: 2e-5, np.float16: 2e-3}


def _close(got, want, dtype):
    got = got.get() if hasattr(got, "get") else np.asarray(got)
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64), rtol=TOL[dtype],
                               atol=TOL[dtype])


def _same(fn, args_np, kwargs, dtype, cp):
    """fn on NumPy and on CuPy copies of the same arrays: same loss (and gradient)."""
    want = fn(*args_np, **kwargs)
    got = fn(*[cp.asarray(a) if isinstance(a, np.ndarray) else a for a in args_np],
             **{k: cp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()})
    if isinstance(want, tuple):
        for g, w in zip(got, want):
            assert isinstance(g, cp.ndarray) and g.dtype == w.dtype and g.shape == w.shape
            _close(g, w, dtype)
    else:
        assert isinstance(got, cp.ndarray) and got.dtype == want.dtype and got.shape == want.shape
        _close(got, want, dtype)


def _logits(r, shape, dtype):
    return (r.standard_normal(shape) * 3).astype(dtype)


LAYOUTS = [((6, 5), -1), ((3, 1500), -1), ((3, 4, 6), 1), ((2, 5, 3, 4), 1)]  # 1500: a block per row


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("shape,axis", LAYOUTS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_focal_and_truncated_match_cpu(dtype, shape, axis, reduction):
    cp = cupy_or_skip()
    r = np.random.default_rng(0)
    x = _logits(r, shape, dtype)
    C = shape[axis]
    lshape = tuple(s for i, s in enumerate(shape) if i != axis % len(shape))
    y = r.integers(0, C, lshape)
    y.flat[0] = -100  # one ignored row
    alpha = r.uniform(0.2, 1, C).astype(np.float32)
    for kw in [dict(gamma=2.0), dict(gamma=0.0), dict(gamma=0.5, alpha=0.25), dict(gamma=1.5, alpha=alpha)]:
        _same(fastloss.softmax_focal_loss, (x, y), dict(axis=axis, reduction=reduction, return_grad=True, **kw), dtype, cp)
    for kw in [dict(margin=0.6), dict(margin=1.0), dict(margin=0.3, softness=10.0)]:
        _same(fastloss.truncated_cross_entropy, (x, y), dict(axis=axis, reduction=reduction, return_grad=True, **kw),
              dtype, cp)
    _same(fastloss.softmax_focal_loss, (x, y.astype(np.int32)), dict(axis=axis, reduction=reduction), dtype, cp)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("shape,axis", LAYOUTS)
def test_hinge_matches_cpu(dtype, shape, axis):
    cp = cupy_or_skip()
    r = np.random.default_rng(1)
    x = _logits(r, shape, dtype) * 0.3
    C = shape[axis]
    lshape = tuple(s for i, s in enumerate(shape) if i != axis % len(shape))
    y = r.integers(0, C, lshape)
    w = r.uniform(0.5, 2, C)
    for kind in ["weston_watkins", "crammer_singer"]:
        for p in [1, 2]:
            for reduction in ["mean", "sum", "none"]:
                _same(fastloss.multiclass_hinge_loss, (x, y),
                      dict(kind=kind, p=p, axis=axis, reduction=reduction, return_grad=True), dtype, cp)
            _same(fastloss.multiclass_hinge_loss, (x, y), dict(kind=kind, p=p, weight=w, margin=0.5, axis=axis,
                                                              return_grad=True), dtype, cp)


def test_hinge_crammer_singer_ties_pick_the_first_rival():
    cp = cupy_or_skip()
    x = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0]])
    y = np.array([0, 3])
    _same(fastloss.multiclass_hinge_loss, (x, y), dict(kind="crammer_singer", return_grad=True), np.float64, cp)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("shape,axis", LAYOUTS)
def test_divergences_match_cpu(dtype, shape, axis):
    cp = cupy_or_skip()
    r = np.random.default_rng(2)
    p = r.uniform(0, 1, shape)
    q = r.uniform(0, 1, shape)
    p[p < 0.1] = 0  # 0 log 0 = 0
    p, q = p.astype(dtype), q.astype(dtype)
    _same(fastloss.entropy, (p,), dict(axis=axis), dtype, cp)
    _same(fastloss.kl_divergence, (p, q), dict(axis=axis), dtype, cp)
    _same(fastloss.js_divergence, (p, q), dict(axis=axis), dtype, cp)


def test_strided_inputs_and_outputs():
    cp = cupy_or_skip()
    r = np.random.default_rng(3)
    xb = cp.asarray(_logits(r, (10, 40), np.float32))
    x = xb[::2, ::-3]  # negative class stride
    y = cp.asarray(r.integers(0, x.shape[1], 10))[::2]
    xn, yn = cp.asnumpy(x), cp.asnumpy(y)
    for fn, kw in [(fastloss.softmax_focal_loss, {}), (fastloss.truncated_cross_entropy, {}),
                   (fastloss.multiclass_hinge_loss, dict(kind="crammer_singer"))]:
        lg, gg = fn(x, y, return_grad=True, reduction="none", **kw)
        ln, gn = fn(xn, yn, return_grad=True, reduction="none", **kw)
        _close(lg, ln, np.float32)
        _close(gg, gn, np.float32)
    p = cp.asarray(np.abs(cp.asnumpy(xb)))[1::2, ::-3]
    _close(fastloss.js_divergence(p, p[::-1]), fastloss.js_divergence(cp.asnumpy(p), cp.asnumpy(p[::-1])), np.float32)


def test_empty_and_all_ignored():
    cp = cupy_or_skip()
    for red in ["mean", "sum", "none"]:
        x = np.zeros((0, 4), np.float32)
        y = np.zeros(0, np.int64)
        _same(fastloss.softmax_focal_loss, (x, y), dict(reduction=red, return_grad=True), np.float32, cp)
        _same(fastloss.multiclass_hinge_loss, (x, y), dict(reduction=red, return_grad=True), np.float32, cp)
        x = np.ones((3, 4), np.float32)
        y = np.full(3, -100)
        _same(fastloss.truncated_cross_entropy, (x, y), dict(reduction=red, return_grad=True), np.float32, cp)


def test_bad_labels_raise_index_error():
    cp = cupy_or_skip()
    x = cp.zeros((4, 3), cp.float32)
    y = cp.asarray([0, 1, 3, 2])
    for fn in [fastloss.softmax_focal_loss, fastloss.truncated_cross_entropy, fastloss.multiclass_hinge_loss]:
        with pytest.raises(IndexError, match=r"labels\[2\] = 3"):
            fn(x, y, return_grad=True)
    with pytest.raises(IndexError, match="labels"):
        fastloss.multiclass_hinge_loss(x, cp.asarray([0, 1, -100, 2]))


def test_mixing_libraries_is_a_type_error():
    cp = cupy_or_skip()
    with pytest.raises(TypeError, match="q"):
        fastloss.kl_divergence(cp.asarray(np.ones((2, 3))), np.ones((2, 3)))
