"""l2_loss: per-row Euclidean distance, fused with its gradient.

A float64 NumPy reference from the formula, torch.linalg.vector_norm autograd as the oracle,
central finite differences, weight broadcasting, every reduction, layouts (axis, strides),
awkward shapes (C=1, N=0), extreme values, the zero-distance gradient and the bad inputs."""
import numpy as np
import pytest
import torch

import fastloss

from reference import numerical_grad


def rng(seed):
    return np.random.default_rng(seed)


def ref_l2(pred, target, weight=None, axis=-1, reduction="mean"):
    """Loss and gradient in float64: loss_r = w_r ||x_r - t_r||, grad = w (x - t) / ||x - t|| (0 at 0)."""
    x = np.moveaxis(np.asarray(pred, np.float64), axis, -1)
    t = np.moveaxis(np.asarray(target, np.float64), axis, -1)
    shape = x.shape[:-1]
    w = np.ones(shape) if weight is None else np.broadcast_to(np.asarray(weight, np.float64), shape)
    diff = x - t
    d = np.sqrt((diff ** 2).sum(-1))
    loss = w * d
    with np.errstate(invalid="ignore", divide="ignore"):
        g = np.where(d[..., None] > 0, w[..., None] * diff / np.where(d > 0, d, 1)[..., None], 0.0)
    n = int(np.prod(shape))
    if reduction == "none":
        out = loss
    elif reduction == "sum":
        out = loss.sum()
    else:
        out = loss.sum() / n if n else 0.0
        g = g / n if n else g
    return out, np.moveaxis(g, -1, axis)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape,axis", [((7, 5), -1), ((3, 1), -1), ((4, 6, 3), 1), ((5,), 0), ((2, 3, 40), -1),
                                        ((3, 19), 0)])
def test_matches_reference(shape, axis, reduction):
    r = rng(1)
    x, t = r.normal(size=shape), r.normal(size=shape)
    loss, grad = fastloss.l2_loss(x, t, axis=axis, reduction=reduction, return_grad=True)
    want, wgrad = ref_l2(x, t, axis=axis, reduction=reduction)
    np.testing.assert_allclose(loss, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad, wgrad, rtol=1e-12, atol=1e-12)
    assert grad.shape == x.shape and grad.dtype == x.dtype


@pytest.mark.parametrize("weight_shape", [(), (1,), (6,), (4, 1), (4, 6), (1, 6)])
def test_weight_broadcasts_to_rows(weight_shape):
    r = rng(2)
    x, t = r.normal(size=(4, 6, 5)), r.normal(size=(4, 6, 5))
    w = r.uniform(0.5, 2.0, size=weight_shape)
    for reduction in ["mean", "sum", "none"]:
        loss, grad = fastloss.l2_loss(x, t, weight=w, reduction=reduction, return_grad=True)
        want, wgrad = ref_l2(x, t, weight=w, reduction=reduction)
        np.testing.assert_allclose(loss, want, rtol=1e-12)
        np.testing.assert_allclose(grad, wgrad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_torch_autograd(reduction):
    r = rng(3)
    x, t, w = r.normal(size=(6, 4, 9)), r.normal(size=(6, 4, 9)), r.uniform(0.1, 3, size=(9,))
    xt = torch.tensor(x, requires_grad=True)
    d = torch.tensor(w) * torch.linalg.vector_norm(xt - torch.tensor(t), dim=1)
    tl = d.mean() if reduction == "mean" else d.sum()
    tl.backward()
    loss, grad = fastloss.l2_loss(x, t, weight=w, axis=1, reduction=reduction, return_grad=True)
    np.testing.assert_allclose(loss, tl.item(), rtol=1e-12)
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_finite_differences():
    r = rng(4)
    x, t = r.normal(size=(3, 4)), r.normal(size=(3, 4))
    w = np.array([0.5, 1.0, 2.0])
    _, grad = fastloss.l2_loss(x, t, weight=w, return_grad=True)
    num = numerical_grad(lambda z: float(fastloss.l2_loss(z, t, weight=w)), x)
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-8)


def test_zero_distance_row_has_zero_gradient():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    t = np.array([[1.0, 2.0], [0.0, 0.0]])
    loss, grad = fastloss.l2_loss(x, t, reduction="none", return_grad=True)
    np.testing.assert_array_equal(loss, [0.0, 5.0])
    np.testing.assert_array_equal(grad[0], [0.0, 0.0])
    np.testing.assert_allclose(grad[1], [0.6, 0.8])


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 1e-5), (np.float16, 2e-3)])
def test_low_precision(dtype, rtol):
    r = rng(5)
    x, t = r.normal(size=(33, 21)), r.normal(size=(33, 21))
    loss, grad = fastloss.l2_loss(x.astype(dtype), t.astype(dtype), return_grad=True)
    want, wgrad = ref_l2(x.astype(dtype), t.astype(dtype))
    assert loss.dtype == dtype and grad.dtype == dtype
    np.testing.assert_allclose(float(loss), want, rtol=rtol)
    np.testing.assert_allclose(grad.astype(np.float64), wgrad, rtol=rtol * 10, atol=rtol * 1e-2)


def test_layouts_strided_negative_unaligned_bigendian():
    r = rng(6)
    base, tb = r.normal(size=(10, 16)), r.normal(size=(10, 16))
    x, t = base[::2, ::-3], tb[1::2, ::3]
    want, wgrad = ref_l2(x, t, reduction="sum")
    loss, grad = fastloss.l2_loss(x, t, reduction="sum", return_grad=True)
    np.testing.assert_allclose(loss, want, rtol=1e-12)
    np.testing.assert_allclose(grad, wgrad, rtol=1e-12)
    be = np.ascontiguousarray(x).astype(">f8")
    np.testing.assert_allclose(fastloss.l2_loss(be, t, reduction="sum"), want, rtol=1e-12)
    buf = np.zeros(x.size * 8 + 1, np.uint8)[1:].view(np.float64).reshape(x.shape)
    buf[...] = x
    np.testing.assert_allclose(fastloss.l2_loss(buf, t, reduction="sum"), want, rtol=1e-12)


def test_empty():
    x = np.zeros((0, 4))
    loss, grad = fastloss.l2_loss(x, x, return_grad=True)
    assert float(loss) == 0.0 and grad.shape == (0, 4)
    assert float(fastloss.l2_loss(x, x, reduction="sum")) == 0.0
    assert fastloss.l2_loss(x, x, reduction="none").shape == (0,)
    # C = 0: distance 0, gradient empty
    z = np.zeros((3, 0))
    np.testing.assert_array_equal(fastloss.l2_loss(z, z, reduction="none"), [0.0, 0.0, 0.0])


def test_extreme_values():
    big = np.array([[1e300, -1e300], [3e200, 4e200]])
    loss, grad = fastloss.l2_loss(big, np.zeros_like(big), reduction="none", return_grad=True)
    np.testing.assert_allclose(loss, [np.sqrt(2) * 1e300, 5e200], rtol=1e-12)
    assert np.isfinite(grad).all()
    f32 = np.array([[3e30, 4e30]], np.float32)
    np.testing.assert_allclose(fastloss.l2_loss(f32, np.zeros_like(f32)), 5e30, rtol=1e-6)
    inf = np.array([[np.inf, 0.0]])
    assert fastloss.l2_loss(inf, np.zeros_like(inf)) == np.inf
    nan = np.array([[np.nan, 0.0], [1.0, 0.0]])
    out = fastloss.l2_loss(nan, np.zeros_like(nan), reduction="none")
    assert np.isnan(out[0]) and out[1] == 1.0


def test_bad_inputs():
    x = np.zeros((3, 4))
    with pytest.raises(ValueError, match="target"):
        fastloss.l2_loss(x, np.zeros((3, 5)))
    with pytest.raises(ValueError, match="weight"):
        fastloss.l2_loss(x, x, weight=np.ones(4))
    with pytest.raises(ValueError, match="weight"):
        fastloss.l2_loss(x, x, weight=np.ones((2, 3)))
    with pytest.raises(ValueError, match="reduction"):
        fastloss.l2_loss(x, x, reduction="avg")
    with pytest.raises((ValueError, IndexError), match="axis"):
        fastloss.l2_loss(x, x, axis=2)
    with pytest.raises(TypeError, match="pred"):
        fastloss.l2_loss(np.zeros((3, 4), np.bool_), x)
    with pytest.raises(TypeError, match="target"):
        fastloss.l2_loss(x, np.array([["a"] * 4] * 3))
    with pytest.raises(ValueError, match="pred"):
        fastloss.l2_loss(np.float64(1.0), np.float64(1.0))


def test_every_isa_agrees(isa):
    r = rng(7)
    x, t = r.normal(size=(9, 37)).astype(np.float32), r.normal(size=(9, 37)).astype(np.float32)
    loss, grad = fastloss.l2_loss(x, t, reduction="none", return_grad=True)
    want, wgrad = ref_l2(x, t, reduction="none")
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    np.testing.assert_allclose(grad, wgrad, rtol=1e-5, atol=1e-7)


# --- CUDA (csrc/cuda/rowwise.cu; the emulator without a GPU) --------------------------------
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5), (np.float16, 3e-3)])
@pytest.mark.parametrize("shape,axis,weight_shape", [((7, 5), -1, None), ((3, 40), -1, (3,)), ((4, 6, 3), 1, (4, 1)),
                                                     ((5,), 0, None), ((2, 3, 70), -1, (3,))])
def test_backends_agree(backend, dtype, tol, shape, axis, weight_shape):
    r = rng(20)
    x, t = r.normal(size=shape).astype(dtype), r.normal(size=shape)  # target float64: converted
    w = None if weight_shape is None else r.uniform(0.5, 2.0, weight_shape)
    for reduction in ["mean", "sum", "none"]:
        loss, grad = fastloss.l2_loss(backend.asarray(x), backend.asarray(t), weight=backend.asarray(w), axis=axis,
                                      reduction=reduction, return_grad=True)
        assert type(loss) is type(backend.asarray(x)) and loss.dtype == dtype and grad.dtype == dtype
        want, wgrad = ref_l2(x.astype(np.float64), t.astype(dtype).astype(np.float64), weight=w, axis=axis,
                             reduction=reduction)
        np.testing.assert_allclose(backend.to_numpy(loss).astype(np.float64), want, rtol=tol, atol=tol)
        np.testing.assert_allclose(backend.to_numpy(grad).astype(np.float64), wgrad, rtol=tol * 10, atol=tol)


def test_backend_edges(backend):
    # zero distance (gradient 0), overflowing squares, no rows, strided
    x = np.array([[1.0, 2.0], [3e200, 4e200]])
    loss, grad = fastloss.l2_loss(backend.asarray(x), backend.asarray(np.array([[1.0, 2.0], [0.0, 0.0]])),
                                  reduction="none", return_grad=True)
    np.testing.assert_allclose(backend.to_numpy(loss), [0.0, 5e200], rtol=1e-15)
    np.testing.assert_allclose(backend.to_numpy(grad), [[0.0, 0.0], [0.6, 0.8]], rtol=1e-15)
    loss, grad = fastloss.l2_loss(backend.asarray(np.zeros((0, 3))), backend.asarray(np.zeros((0, 3))), return_grad=True)
    assert float(backend.to_numpy(loss)) == 0.0 and grad.shape == (0, 3)
    base = rng(21).normal(size=(6, 8))
    xs = backend.asarray(base)[::2, ::-3]
    want = fastloss.l2_loss(np.ascontiguousarray(base[::2, ::-3]), np.zeros((3, 3)), reduction="none")
    got = fastloss.l2_loss(xs, backend.asarray(np.zeros((3, 3))), reduction="none")
    np.testing.assert_allclose(backend.to_numpy(got), want, rtol=1e-15)


# --------------------------------------------------------------------------- grad_out (issue 20)
@pytest.mark.parametrize("kw", [{}, dict(reduction="none"), dict(axis=0, reduction="sum")])
def test_grad_out(backend, kw):
    from grad_out_check import check_grad_out
    r = np.random.default_rng(2022)
    x, t = r.normal(size=(7, 6)), r.normal(size=(7, 6))
    check_grad_out(fastloss.l2_loss, [x, t], kw, backend)


def test_integer_weight_and_target_arrays():
    r = np.random.default_rng(4)
    x = r.normal(size=(2, 5))
    t = r.integers(-2, 3, (2, 5))
    w = np.array([4, 3])
    want = fastloss.l2_loss(x, t.astype(np.float64), weight=w.astype(np.float64))
    assert float(fastloss.l2_loss(x, t, weight=w)) == float(want)
    assert float(fastloss.l2_loss(x, t.tolist(), weight=[4, 3])) == float(want)
