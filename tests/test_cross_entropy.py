"""softmax_cross_entropy and nll_loss: NumPy reference, PyTorch oracle, finite differences,
properties, edge cases and errors. The same cases run on CuPy when a GPU is present."""
import itertools
import threading
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastloss
import reference as ref
from conftest import cupy_or_skip

torch = pytest.importorskip("torch", reason="PyTorch CPU is the oracle (pip install torch==2.13.0)")
F = torch.nn.functional

TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-6),
       np.float16: dict(rtol=2e-2, atol=2e-3)}


def rng(seed=0):
    return np.random.default_rng(seed)


def torch_ce(x, y, axis=-1, soft=False, **kw):
    """torch.nn.functional.cross_entropy (loss, grad) in float64, class axis moved to 1."""
    xt = torch.tensor(np.moveaxis(np.asarray(x, np.float64), axis, 1) if x.ndim > 1 else x.astype(np.float64),
                      requires_grad=True)
    yt = torch.tensor(np.moveaxis(y, axis, 1) if soft and y.ndim > 1 else y)
    if "weight" in kw and kw["weight"] is not None:
        kw["weight"] = torch.tensor(np.asarray(kw["weight"], np.float64))
    loss = F.cross_entropy(xt, yt, **kw)
    loss.backward(torch.ones_like(loss))
    g = xt.grad.numpy()
    return loss.detach().numpy(), (np.moveaxis(g, 1, axis) if x.ndim > 1 else g)


# --------------------------------------------------------------------------- oracle: every option
OPTIONS = list(itertools.product(
    [False, True],            # weighted
    [False, True],            # some labels ignored
    [0.0, 0.15],              # label smoothing
    ["mean", "sum", "none"],  # reduction
))


@pytest.mark.parametrize("weighted,ignored,ls,reduction", OPTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_torch_integer_labels(backend, weighted, ignored, ls, reduction, dtype):
    r = rng(1)
    N, C = 37, 11
    x = (r.standard_normal((N, C)) * 3).astype(dtype)
    y = r.integers(0, C, N)
    if ignored:
        y[::4] = -100
    w = r.random(C) + 0.1 if weighted else None
    loss, grad = fastloss.softmax_cross_entropy(backend.asarray(x), backend.asarray(y), weight=backend.asarray(w),
                                                label_smoothing=ls, reduction=reduction, return_grad=True)
    tl, tg = torch_ce(x, y, weight=w, label_smoothing=ls, reduction=reduction)
    assert loss.dtype == dtype and grad.dtype == dtype and grad.shape == x.shape
    np.testing.assert_allclose(backend.to_numpy(loss), tl, **TOL[dtype])
    np.testing.assert_allclose(backend.to_numpy(grad), tg, **TOL[dtype])
    # the float64 reference agrees too
    np.testing.assert_allclose(backend.to_numpy(loss),
                               ref.softmax_cross_entropy(x, y, w, label_smoothing=ls, reduction=reduction), **TOL[dtype])


@pytest.mark.parametrize("weighted,ls,reduction", list(itertools.product([False, True], [0.0, 0.2], ["mean", "sum", "none"])))
def test_matches_torch_probability_labels(backend, weighted, ls, reduction):
    r = rng(2)
    N, C = 23, 7
    x = r.standard_normal((N, C)) * 2
    t = r.random((N, C))
    t /= t.sum(1, keepdims=True)
    t[3] = 0.0
    t[4] = np.eye(C)[2]
    w = r.random(C) + 0.5 if weighted else None
    loss, grad = fastloss.softmax_cross_entropy(backend.asarray(x), backend.asarray(t), weight=backend.asarray(w),
                                                label_smoothing=ls, reduction=reduction, return_grad=True)
    tl, tg = torch_ce(x, t, soft=True, weight=w, label_smoothing=ls, reduction=reduction)
    np.testing.assert_allclose(backend.to_numpy(loss), tl, **TOL[np.float64])
    np.testing.assert_allclose(backend.to_numpy(grad), tg, **TOL[np.float64])


@pytest.mark.parametrize("axis", [1, -3, 2, 3])
def test_class_axis_anywhere(backend, axis):
    """(N, C, H, W) with the class axis at 1 (torch's layout) or anywhere else."""
    r = rng(3)
    shape = [3, 5, 4, 6]
    x = r.standard_normal(shape).astype(np.float32)
    ax = axis % 4
    y = r.integers(0, shape[ax], [n for i, n in enumerate(shape) if i != ax])
    y.flat[::7] = -100
    w = r.random(shape[ax]) + 0.2
    for reduction in ("mean", "none"):
        loss, grad = fastloss.softmax_cross_entropy(backend.asarray(x), backend.asarray(y), weight=backend.asarray(w),
                                                    axis=axis, reduction=reduction, label_smoothing=0.1,
                                                    return_grad=True)
        tl, tg = torch_ce(x, y, axis=ax, weight=w, label_smoothing=0.1, reduction=reduction)
        np.testing.assert_allclose(backend.to_numpy(loss), tl, **TOL[np.float32])
        np.testing.assert_allclose(backend.to_numpy(grad), tg, **TOL[np.float32])


def test_probability_labels_with_class_axis_1(backend):
    r = rng(4)
    x = r.standard_normal((2, 5, 3, 4))
    t = r.random((2, 5, 3, 4))
    t /= t.sum(1, keepdims=True)
    loss, grad = fastloss.softmax_cross_entropy(backend.asarray(x), backend.asarray(t), axis=1, return_grad=True)
    tl, tg = torch_ce(x, t, axis=1, soft=True)
    np.testing.assert_allclose(backend.to_numpy(loss), tl, **TOL[np.float64])
    np.testing.assert_allclose(backend.to_numpy(grad), tg, **TOL[np.float64])


@pytest.mark.parametrize("z", [1e-4, 0.5])
@pytest.mark.parametrize("soft", [False, True])
def test_z_loss_against_reference_and_finite_differences(backend, z, soft):
    r = rng(5)
    N, C = 6, 9
    x = r.standard_normal((N, C)) * 2
    if soft:
        y = r.random((N, C))
        y /= y.sum(1, keepdims=True)
    else:
        y = r.integers(0, C, N)
        y[1] = -100
    w = r.random(C) + 0.3
    kw = dict(weight=w, label_smoothing=0.1, z_loss=z)
    loss, grad = fastloss.softmax_cross_entropy(backend.asarray(x), backend.asarray(y), return_grad=True,
                                                **{k: backend.asarray(v) if isinstance(v, np.ndarray) else v
                                                   for k, v in kw.items()})
    np.testing.assert_allclose(backend.to_numpy(loss), ref.softmax_cross_entropy(x, y, **kw), rtol=1e-12)
    fd = ref.numerical_grad(lambda v: ref.softmax_cross_entropy(v, y, **kw), x)
    np.testing.assert_allclose(backend.to_numpy(grad), fd, rtol=1e-6, atol=1e-8)


def test_finite_differences_every_reduction_and_isa(isa):
    r = rng(6)
    x = r.standard_normal((5, 70)) * 3  # 70: full vectors plus a tail at every SIMD width
    y = r.integers(0, 70, 5)
    w = r.random(70) + 0.5
    for reduction in ("mean", "sum"):
        kw = dict(weight=w, label_smoothing=0.05, reduction=reduction)
        _, grad = fastloss.softmax_cross_entropy(x, y, return_grad=True, **kw)
        fd = ref.numerical_grad(lambda v: ref.softmax_cross_entropy(v, y, **kw), x)
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("C", [1, 2, 15, 16, 17, 255, 511, 512, 513, 1000, 1025, 4099])
def test_row_lengths_around_block_and_vector_boundaries(backend, isa, C):
    r = rng(C)
    x = (r.standard_normal((9, C)) * 4).astype(np.float32)
    y = r.integers(0, C, 9)
    loss, grad = fastloss.softmax_cross_entropy(backend.asarray(x), backend.asarray(y), reduction="none",
                                                return_grad=True)
    tl, tg = torch_ce(x, y, reduction="none")
    np.testing.assert_allclose(backend.to_numpy(loss), tl, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(backend.to_numpy(grad), tg, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("C", [16, 17, 40, 64, 100, 128, 129])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_short_rows_every_option(isa, C, soft, dtype):
    """Rows of 1 to 8 vectors are computed in registers (full and partial last vectors, every
    SIMD level); 129 float32 classes take the block row path. Strided rows give the same bits."""
    r = rng(C)
    N = 21
    x = (r.standard_normal((N, C)) * 3).astype(dtype)
    x[2, 5] = -np.inf
    w = r.random(C) + 0.5
    if soft:
        y = r.random((N, C)).astype(dtype)
        y /= y.sum(1, keepdims=True)
        y[2, 5] = 0.0
    else:
        y = r.integers(0, C, N)
        y[2] = 4
        y[6] = -100
    for kw in (dict(weight=w, label_smoothing=0.1), dict(), dict(weight=w)):
        loss, grad = fastloss.softmax_cross_entropy(x, y, reduction="none", return_grad=True, **kw)
        tl, tg = torch_ce(x, y, soft=soft, reduction="none", **kw)
        # torch turns target 0 times logit -inf into NaN; fastloss leaves that term out
        ok = np.arange(N) != 2 if soft else np.ones(N, bool)
        np.testing.assert_allclose(loss[ok], tl[ok], **TOL[dtype])
        np.testing.assert_allclose(grad[ok], tg[ok], **TOL[dtype])
        strided = np.zeros((N, 2 * C), dtype)
        strided[:, ::2] = x
        l2, g2 = fastloss.softmax_cross_entropy(strided[:, ::2], y, reduction="none", return_grad=True, **kw)
        np.testing.assert_array_equal(l2, loss)
        np.testing.assert_array_equal(g2, grad)
    # z-loss: the gradient against central differences of the reference (float64 only)
    if dtype == np.float64:
        xs, ys = x[:3].copy(), y[:3]
        xs[2, 5] = 0.0
        kw = dict(weight=w, label_smoothing=0.1, z_loss=0.01, reduction="sum")
        _, grad = fastloss.softmax_cross_entropy(xs, ys, return_grad=True, **kw)
        fd = ref.numerical_grad(lambda v: ref.softmax_cross_entropy(v, ys, **kw), xs)
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


def test_large_vocabulary_streamed_gradient():
    """Big enough that the gradient is written with streaming stores; rows misaligned too."""
    r = rng(7)
    N, C = 70, 32003
    x = r.standard_normal((N, C), dtype=np.float32) * 2
    y = r.integers(0, C, N)
    loss, grad = fastloss.softmax_cross_entropy(x, y, return_grad=True)
    tl, tg = torch_ce(x, y)
    np.testing.assert_allclose(loss, tl, rtol=1e-5)
    np.testing.assert_allclose(grad, tg, rtol=1e-4, atol=1e-9)


# --------------------------------------------------------------------------- layouts
def _views(x):
    """Non-contiguous views of a 2-D array with the same values as `x`."""
    yield "transposed", np.ascontiguousarray(x.T).T
    big = np.zeros((x.shape[0] * 2, x.shape[1] * 3), x.dtype)
    big[::2, ::3] = x
    yield "sliced", big[::2, ::3]
    yield "negative", np.ascontiguousarray(x[::-1, ::-1])[::-1, ::-1]
    yield "fortran", np.asfortranarray(x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_strided_views_equal_contiguous(backend, dtype):
    r = rng(8)
    x = (r.standard_normal((13, 40)) * 2).astype(dtype)
    y = r.integers(0, 40, 13)
    y[2] = -100
    want_l, want_g = fastloss.softmax_cross_entropy(backend.asarray(x), backend.asarray(y), return_grad=True,
                                                    reduction="none")
    for name, v in _views(x):
        yv = np.ascontiguousarray(np.broadcast_to(y[:, None], (13, 2)))[:, 0]  # strided labels
        gout = np.zeros((40, 13), dtype).T  # strided gradient buffer
        l, g = fastloss.softmax_cross_entropy(backend.asarray(v) if backend.name == "numpy" else backend.xp.asarray(v),
                                              backend.asarray(yv), return_grad=True, reduction="none",
                                              grad_out=gout if backend.name == "numpy" else None)
        np.testing.assert_array_equal(backend.to_numpy(l), backend.to_numpy(want_l), err_msg=name)
        np.testing.assert_array_equal(backend.to_numpy(g), backend.to_numpy(want_g), err_msg=name)


def test_soft_labels_strided():
    r = rng(9)
    x = r.standard_normal((8, 30))
    t = r.random((8, 30))
    want = fastloss.softmax_cross_entropy(x, t, return_grad=True)
    got = fastloss.softmax_cross_entropy(np.asfortranarray(x), t.T.copy().T[:, :], return_grad=True)
    np.testing.assert_array_equal(want[0], got[0])
    np.testing.assert_array_equal(want[1], got[1])


def test_64bit_offsets():
    """A view whose second row starts 2^31 elements after its first: offsets need 64 bits.
    np.zeros maps untouched pages to the zero page, so this costs almost no memory."""
    C = 64
    try:
        big = np.zeros(2 ** 31 + C, dtype=np.float32)
    except MemoryError:
        pytest.skip("cannot reserve 8 GiB of address space")
    row = rng(10).standard_normal(C).astype(np.float32)
    big[2 ** 31:] = row
    x = np.lib.stride_tricks.as_strided(big, shape=(2, C), strides=(2 ** 31 * 4, 4))
    y = np.array([3, 5])
    loss, grad = fastloss.softmax_cross_entropy(x, y, reduction="none", return_grad=True)
    want_l, want_g = fastloss.softmax_cross_entropy(np.array(x), y, reduction="none", return_grad=True)
    np.testing.assert_array_equal(loss, want_l)
    np.testing.assert_array_equal(grad, want_g)


# --------------------------------------------------------------------------- dtypes
def test_float16_in_float16_out(backend):
    r = rng(11)
    x = (r.standard_normal((20, 33)) * 3).astype(np.float16)
    y = r.integers(0, 33, 20)
    loss, grad = fastloss.softmax_cross_entropy(backend.asarray(x), backend.asarray(y), return_grad=True)
    assert loss.dtype == np.float16 and grad.dtype == np.float16
    tl, tg = torch_ce(x.astype(np.float32), y)
    np.testing.assert_allclose(backend.to_numpy(loss).astype(np.float32), tl, rtol=2e-3)
    np.testing.assert_allclose(backend.to_numpy(grad).astype(np.float32), tg, rtol=1e-2, atol=2e-4)


@pytest.mark.parametrize("label_dtype", [np.int8, np.uint8, np.int16, np.int32, np.int64, np.uint32, np.uint64])
def test_any_integer_label_dtype(backend, label_dtype):
    r = rng(12)
    x = r.standard_normal((10, 7))
    y = r.integers(0, 7, 10)
    want = fastloss.softmax_cross_entropy(x, y)
    got = fastloss.softmax_cross_entropy(backend.asarray(x), backend.asarray(y.astype(label_dtype)))
    np.testing.assert_allclose(backend.to_numpy(got), want, rtol=1e-15)


@pytest.mark.parametrize("fn", ["softmax_cross_entropy", "nll_loss"])
def test_weighted_mean_is_bitwise_reproducible(backend, fn):
    # The "mean" denominator sums float64 class weights over 6000 rows (hundreds of GPU
    # blocks): a fixed summation order gives the same bits on every call. (20000 rows cost CI's
    # emulator 87 s for no more blocks than it needs to show the order.)
    r = rng(13)
    x = backend.asarray(r.standard_normal((6000, 40)))
    y = r.integers(0, 40, 6000)
    y[::9] = -100
    w = backend.asarray(r.random(40) * 1e3 + np.pi)
    runs = [getattr(fastloss, fn)(x, backend.asarray(y), weight=w, return_grad=True) for _ in range(3)]
    for loss, grad in runs[1:]:
        np.testing.assert_array_equal(backend.to_numpy(loss), backend.to_numpy(runs[0][0]))
        np.testing.assert_array_equal(backend.to_numpy(grad), backend.to_numpy(runs[0][1]))


def test_python_lists_are_accepted():
    loss = fastloss.softmax_cross_entropy([[1.0, 2.0, 3.0]], [2])
    assert isinstance(loss, np.ndarray) and loss.dtype == np.float64 and loss.shape == ()
    np.testing.assert_allclose(loss, ref.softmax_cross_entropy(np.array([[1.0, 2.0, 3.0]]), np.array([2])))


# --------------------------------------------------------------------------- edge cases
def test_huge_equal_logits_give_log_C(backend):
    x = np.full((4, 1000), 1e8, np.float32)
    loss, grad = fastloss.softmax_cross_entropy(backend.asarray(x), backend.asarray(np.arange(4)), return_grad=True)
    np.testing.assert_allclose(backend.to_numpy(loss), np.log(1000), rtol=1e-6)
    np.testing.assert_allclose(backend.to_numpy(grad)[:, 10], 1e-3 / 4, rtol=1e-5)


def test_extreme_magnitudes(backend):
    x = np.array([[1e9, -1e9, 0.0], [-1e9, 1e9, 1e9]])
    y = np.array([1, 2])
    loss, grad = fastloss.softmax_cross_entropy(backend.asarray(x), backend.asarray(y), reduction="none",
                                                return_grad=True)
    tl, tg = torch_ce(x, y, reduction="none")
    np.testing.assert_allclose(backend.to_numpy(loss), tl, rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(grad), tg, atol=1e-12)


def test_minus_inf_on_non_target_classes_is_finite(backend, isa):
    x = np.array([[0.5, -np.inf, 2.0, -np.inf], [-np.inf, -np.inf, -np.inf, 1.0]], np.float32)
    x = np.concatenate([x, np.full((2, 3000), -np.inf, np.float32)], axis=1)
    y = np.array([2, 3])
    loss, grad = fastloss.softmax_cross_entropy(backend.asarray(x), backend.asarray(y), reduction="none",
                                                return_grad=True)
    loss, grad = backend.to_numpy(loss), backend.to_numpy(grad)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(loss, [np.log1p(np.exp(-1.5)), 0.0], atol=1e-7)
    assert np.all(grad[:, 4:] == 0)


def test_minus_inf_leading_block():
    """A whole leading block of -inf (the first 2 KiB of the row) before the finite values."""
    x = np.full((1, 5000), -np.inf)
    x[0, 4000:] = np.linspace(-1, 1, 1000)
    loss, grad = fastloss.softmax_cross_entropy(x, np.array([4500]), return_grad=True)
    tl, tg = torch_ce(x, np.array([4500]))
    np.testing.assert_allclose(loss, tl, rtol=1e-12)
    np.testing.assert_allclose(grad, tg, atol=1e-15)


@pytest.mark.parametrize("where", [0, 1, 700, 2999])
def test_nan_poisons_only_its_row(backend, isa, where):
    r = rng(13)
    x = r.standard_normal((3, 3000)).astype(np.float32)
    x[1, where] = np.nan
    if where == 700:
        x[1, :1000] = -np.inf  # the NaN sits in a block whose other values are all -inf
        x[1, 700] = np.nan
    y = np.array([0, 1, 2])
    loss, grad = fastloss.softmax_cross_entropy(backend.asarray(x), backend.asarray(y), reduction="none",
                                                return_grad=True)
    loss, grad = backend.to_numpy(loss), backend.to_numpy(grad)
    assert np.isnan(loss[1]) and np.all(np.isnan(grad[1]))
    assert np.all(np.isfinite(loss[[0, 2]])) and np.all(np.isfinite(grad[[0, 2]]))
    mean = fastloss.softmax_cross_entropy(backend.asarray(x), backend.asarray(y))
    assert np.isnan(backend.to_numpy(mean))


def test_single_class(backend):
    x = np.array([[3.0], [-2.0]])
    loss, grad = fastloss.softmax_cross_entropy(backend.asarray(x), backend.asarray(np.array([0, 0])),
                                                return_grad=True)
    assert backend.to_numpy(loss) == 0.0 and np.all(backend.to_numpy(grad) == 0.0)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_empty_batch(backend, reduction):
    x = np.zeros((0, 5), np.float32)
    loss, grad = fastloss.softmax_cross_entropy(backend.asarray(x), backend.asarray(np.zeros(0, np.int64)),
                                                reduction=reduction, return_grad=True)
    assert grad.shape == (0, 5)
    if reduction == "none":
        assert loss.shape == (0,)
    else:
        assert float(backend.to_numpy(loss)) == 0.0


@pytest.mark.parametrize("ls", [0.0, 0.3])
def test_all_ignored_mean_is_zero_not_nan(backend, ls):
    x = rng(14).standard_normal((4, 6))
    y = np.full(4, -100)
    loss, grad = fastloss.softmax_cross_entropy(backend.asarray(x), backend.asarray(y), label_smoothing=ls,
                                                return_grad=True)
    assert float(backend.to_numpy(loss)) == 0.0
    assert np.all(backend.to_numpy(grad) == 0.0)


def test_custom_ignore_index(backend):
    r = rng(15)
    x = r.standard_normal((10, 4))
    y = r.integers(0, 4, 10)
    y[[1, 5]] = 3
    loss, grad = fastloss.softmax_cross_entropy(backend.asarray(x), backend.asarray(y), ignore_index=3,
                                                return_grad=True)
    tl, tg = torch_ce(x, y, ignore_index=3)
    np.testing.assert_allclose(backend.to_numpy(loss), tl, rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(grad), tg, atol=1e-14)


# --------------------------------------------------------------------------- grad_out
def test_grad_out_preallocated_and_in_place(backend):
    r = rng(16)
    x = r.standard_normal((12, 50)).astype(np.float32)
    y = r.integers(0, 50, 12)
    want_l, want_g = fastloss.softmax_cross_entropy(backend.asarray(x), backend.asarray(y), return_grad=True)
    buf = backend.xp.empty_like(backend.asarray(x))
    l, g = fastloss.softmax_cross_entropy(backend.asarray(x), backend.asarray(y), grad_out=buf)
    assert g is buf
    xin = backend.asarray(x.copy())
    l2, g2 = fastloss.softmax_cross_entropy(xin, backend.asarray(y), grad_out=xin)
    assert g2 is xin
    for got in (g, g2):
        np.testing.assert_array_equal(backend.to_numpy(got), backend.to_numpy(want_g))
    np.testing.assert_array_equal(backend.to_numpy(l2), backend.to_numpy(want_l))


def test_in_place_gradient_allocates_nothing_proportional_to_input():
    r = rng(17)
    N, C = 256, 8192
    x = r.standard_normal((N, C), dtype=np.float32)
    y = r.integers(0, C, N)
    fastloss.softmax_cross_entropy(x, y, grad_out=x)  # warm up
    tracemalloc.start()
    fastloss.softmax_cross_entropy(x, y, grad_out=x)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < x.nbytes / 50, peak


# --------------------------------------------------------------------------- property tests
@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.integers(1, 40), st.integers(0, 3), st.sampled_from([np.float32, np.float64]),
       st.integers(0, 2 ** 31 - 1), st.booleans(), st.sampled_from([0.0, 0.1]), st.booleans())
def test_property_against_reference(ndim, C, axis_pick, dtype, seed, weighted, ls, transpose):
    r = np.random.default_rng(seed)
    shape = list(r.integers(1, 5, ndim))
    axis = axis_pick % ndim
    shape[axis] = C
    x = (r.standard_normal(shape) * 3).astype(dtype)
    if transpose and ndim > 1:
        x = np.ascontiguousarray(x.T).T
    y = r.integers(0, C, [n for i, n in enumerate(shape) if i != axis])
    if y.size:
        y.flat[0] = -100
    w = r.random(C) + 0.1 if weighted else None
    loss, grad = fastloss.softmax_cross_entropy(x, y, weight=w, label_smoothing=ls, axis=axis, return_grad=True)
    np.testing.assert_allclose(loss, ref.softmax_cross_entropy(x, y, w, label_smoothing=ls, axis=axis),
                               rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-6)
    if x.size and dtype == np.float64 and x.size <= 64:
        fd = ref.numerical_grad(lambda v: ref.softmax_cross_entropy(v, y, w, label_smoothing=ls, axis=axis), x)
        np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-7)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3000), st.integers(0, 2 ** 31 - 1), st.floats(0.01, 100))
def test_property_gradient_rows_sum_to_zero(C, seed, scale):
    """Without weights or z-loss each row's gradient sums to zero and the loss is >= 0."""
    r = np.random.default_rng(seed)
    x = (r.standard_normal((3, C)) * scale).astype(np.float32)
    y = r.integers(0, C, 3)
    loss, grad = fastloss.softmax_cross_entropy(x, y, reduction="none", return_grad=True, label_smoothing=0.1)
    assert np.all(loss >= -1e-6)
    np.testing.assert_allclose(grad.astype(np.float64).sum(1), 0, atol=1e-5)


# --------------------------------------------------------------------------- nll_loss
@pytest.mark.parametrize("weighted,ignored,reduction",
                         list(itertools.product([False, True], [False, True], ["mean", "sum", "none"])))
def test_nll_matches_torch(backend, weighted, ignored, reduction):
    r = rng(18)
    N, C = 17, 6
    lp = ref.log_softmax(r.standard_normal((N, C)))
    y = r.integers(0, C, N)
    if ignored:
        y[::3] = -100
    w = r.random(C) + 0.1 if weighted else None
    loss, grad = fastloss.nll_loss(backend.asarray(lp), backend.asarray(y), weight=backend.asarray(w),
                                   reduction=reduction, return_grad=True)
    lt = torch.tensor(lp, requires_grad=True)
    tl = F.nll_loss(lt, torch.tensor(y), weight=None if w is None else torch.tensor(w), reduction=reduction)
    tl.backward(torch.ones_like(tl))
    np.testing.assert_allclose(backend.to_numpy(loss), tl.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(grad), lt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(loss), ref.nll_loss(lp, y, w, reduction=reduction), rtol=1e-12)


def test_nll_class_axis_and_strides(backend):
    r = rng(19)
    lp = ref.log_softmax(r.standard_normal((2, 4, 3, 5)), axis=1)
    y = r.integers(0, 4, (2, 3, 5))
    loss, grad = fastloss.nll_loss(backend.asarray(np.asfortranarray(lp)), backend.asarray(y), axis=1,
                                   return_grad=True)
    lt = torch.tensor(lp, requires_grad=True)
    tl = F.nll_loss(lt, torch.tensor(y))
    tl.backward()
    np.testing.assert_allclose(backend.to_numpy(loss), tl.item(), rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(grad), lt.grad.numpy(), rtol=1e-12)


def test_nll_all_ignored_and_empty(backend):
    lp = np.log(np.full((3, 4), 0.25))
    loss, grad = fastloss.nll_loss(backend.asarray(lp), backend.asarray(np.full(3, -100)), return_grad=True)
    assert float(backend.to_numpy(loss)) == 0.0 and np.all(backend.to_numpy(grad) == 0)
    loss = fastloss.nll_loss(backend.asarray(np.zeros((0, 4))), backend.asarray(np.zeros(0, np.int64)))
    assert float(backend.to_numpy(loss)) == 0.0


# --------------------------------------------------------------------------- errors
def test_error_label_out_of_range_names_position(backend):
    x = np.zeros((2, 3, 4))
    y = np.zeros((2, 3), np.int64)
    y[1, 2] = 4
    with pytest.raises(IndexError, match=r"labels\[1, 2\] = 4.*\[0, 4\)"):
        fastloss.softmax_cross_entropy(backend.asarray(x), backend.asarray(y))
    y[1, 2] = -1
    with pytest.raises(IndexError, match=r"labels\[1, 2\] = -1"):
        fastloss.nll_loss(backend.asarray(x), backend.asarray(y))


@pytest.mark.parametrize("kwargs,exc,pattern", [
    (dict(reduction="avg"), ValueError, "reduction"),
    (dict(label_smoothing=1.5), ValueError, "label_smoothing"),
    (dict(label_smoothing=-0.1), ValueError, "label_smoothing"),
    (dict(z_loss=-1.0), ValueError, "z_loss"),
    (dict(axis=2), ValueError, "axis"),
    (dict(weight=np.ones(3)), ValueError, "weight"),
    (dict(weight=np.array(["a"] * 4)), TypeError, "weight"),  # integer weights are floats (issue 20)
    (dict(grad_out=np.zeros((5, 4), np.float32)), ValueError, "grad_out"),
    (dict(grad_out=np.zeros((3, 4), np.float64)), TypeError, "grad_out"),
    (dict(grad_out=np.broadcast_to(np.zeros(4, np.float32), (3, 4))), ValueError, "grad_out"),
    (dict(ignore_index=1.5), TypeError, "ignore_index"),
])
def test_errors_name_the_argument(kwargs, exc, pattern):
    x = np.zeros((3, 4), np.float32)
    y = np.array([0, 1, 2])
    with pytest.raises(exc, match=pattern):
        fastloss.softmax_cross_entropy(x, y, **kwargs)


def test_errors_on_inputs():
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(TypeError, match="logits"):
        fastloss.softmax_cross_entropy(np.zeros((3, 4), np.int32), np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="logits"):
        fastloss.softmax_cross_entropy("abc", np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="labels"):
        fastloss.softmax_cross_entropy(x, np.array([0, 1]))
    with pytest.raises(ValueError, match="labels"):
        fastloss.softmax_cross_entropy(x, np.zeros((3, 5)))
    # bool labels are 0/1 probabilities (a one-hot mask); shaped like class indices they are a
    # ValueError that says integers were probably meant
    with pytest.raises(ValueError, match="labels.*integer class indices"):
        fastloss.softmax_cross_entropy(x, np.array([True, False, True]))
    onehot = np.eye(4, dtype=bool)[[0, 1, 2]]
    assert float(fastloss.softmax_cross_entropy(x, onehot)) == float(fastloss.softmax_cross_entropy(x, onehot * 1.0))
    with pytest.raises(TypeError, match="labels"):
        fastloss.softmax_cross_entropy(x, np.array(["a", "b", "c"]))
    with pytest.raises(ValueError, match="logits"):
        fastloss.softmax_cross_entropy(np.float32(1.0), np.array(0))
    with pytest.raises(TypeError, match="log_probs"):
        fastloss.nll_loss(np.zeros((3, 4), np.int64), np.array([0, 1, 2]))


def test_mixing_numpy_and_cupy_is_a_type_error(monkeypatch):
    """Checked before anything touches a device, so a stand-in CuPy module is enough here."""
    import sys
    import types

    fake = types.ModuleType("cupy")

    class ndarray:  # noqa: N801 - mimics cupy.ndarray
        shape, dtype = (2, 3), np.dtype(np.float32)

    fake.ndarray = ndarray
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(TypeError, match=r"cannot mix CuPy arrays \(logits\) with NumPy arrays \(labels\)"):
        fastloss.softmax_cross_entropy(ndarray(), np.array([0, 1]))
    with pytest.raises(TypeError, match="cannot mix"):
        fastloss.nll_loss(np.zeros((2, 3)), np.array([0, 1]), weight=ndarray())


# --------------------------------------------------------------------------- threads
def test_thread_count_does_not_change_results():
    r = rng(20)
    x = r.standard_normal((301, 257)).astype(np.float32)
    y = r.integers(0, 257, 301)
    before = fastloss.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3, 7):
            fastloss.set_num_threads(n)
            results.append(fastloss.softmax_cross_entropy(x, y, return_grad=True, reduction="none"))
    finally:
        fastloss.set_num_threads(before)
    for l, g in results[1:]:
        np.testing.assert_array_equal(l, results[0][0])
        np.testing.assert_array_equal(g, results[0][1])
    with pytest.raises(ValueError, match="n must be"):
        fastloss.set_num_threads(0)


def test_concurrent_calls_from_python_threads():
    r = rng(21)
    xs = [r.standard_normal((64, 3000)).astype(np.float32) for _ in range(6)]
    ys = [r.integers(0, 3000, 64) for _ in range(6)]
    want = [fastloss.softmax_cross_entropy(x, y, return_grad=True) for x, y in zip(xs, ys)]
    got = [None] * 6
    barrier = threading.Barrier(6)

    def work(i):
        barrier.wait()
        for _ in range(5):
            got[i] = fastloss.softmax_cross_entropy(xs[i], ys[i], return_grad=True)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (wl, wg), (gl, gg) in zip(want, got):
        np.testing.assert_array_equal(wl, gl)
        np.testing.assert_array_equal(wg, gg)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("soft", [False, True])
def test_segmentation_layout_class_axis_1(backend, isa, dtype, soft):
    """(N, C, H, W) with axis=1 and W longer than a SIMD vector (the lane-per-pixel path), with
    a remainder that goes row by row, ignored pixels, weights, smoothing and z-loss."""
    r = rng(22)
    x = (r.standard_normal((2, 5, 3, 37)) * 3).astype(dtype)
    w = r.random(5) + 0.3
    if soft:
        y = r.random((2, 5, 3, 37))
        y /= y.sum(1, keepdims=True)
    else:
        y = r.integers(0, 5, (2, 3, 37))
        y[0, 1, 3:9] = -100
    for reduction in ("mean", "none"):
        kw = dict(weight=w, label_smoothing=0.1, reduction=reduction)
        loss, grad = fastloss.softmax_cross_entropy(backend.asarray(x), backend.asarray(y.astype(dtype) if soft else y),
                                                    axis=1, return_grad=True, z_loss=0.0,
                                                    **{k: backend.asarray(v) if isinstance(v, np.ndarray) else v
                                                       for k, v in kw.items()})
        tl, tg = torch_ce(x, y, axis=1, soft=soft, **kw)
        np.testing.assert_allclose(backend.to_numpy(loss), tl, **TOL[dtype])
        np.testing.assert_allclose(backend.to_numpy(grad), tg, **TOL[dtype])
        zl = fastloss.softmax_cross_entropy(backend.asarray(x), backend.asarray(y.astype(dtype) if soft else y), axis=1,
                                            z_loss=0.01, **{k: backend.asarray(v) if isinstance(v, np.ndarray) else v
                                                            for k, v in kw.items()})
        np.testing.assert_allclose(backend.to_numpy(zl), ref.softmax_cross_entropy(x, y, axis=1, z_loss=0.01, **kw),
                                   **TOL[dtype])


def test_segmentation_layout_nan_and_minus_inf_pixels():
    x = rng(23).standard_normal((1, 4, 2, 40))
    x[0, :, 0, 5] = np.nan
    x[0, 1:, 1, 7] = -np.inf
    y = np.zeros((1, 2, 40), np.int64)
    y[0, 0, 9] = -100
    x[0, :, 0, 9] = np.nan  # an ignored pixel's NaN stays out of the loss and gradient
    loss, grad = fastloss.softmax_cross_entropy(x, y, axis=1, reduction="none", return_grad=True)
    assert np.isnan(loss[0, 0, 5]) and np.all(np.isnan(grad[0, :, 0, 5]))
    assert loss[0, 0, 9] == 0 and np.all(grad[0, :, 0, 9] == 0)
    assert loss[0, 1, 7] == 0 and np.all(np.isfinite(grad[0, :, 1, 7]))
    mask = np.ones_like(loss, bool)
    mask[0, 0, 5] = False
    assert np.all(np.isfinite(loss[mask]))


def test_zero_classes(backend):
    """C == 0: every label must be ignore_index (anything else is out of range)."""
    x = np.zeros((3, 0))
    loss = fastloss.softmax_cross_entropy(backend.asarray(x), backend.asarray(np.full(3, -100)), reduction="none")
    np.testing.assert_array_equal(backend.to_numpy(loss), np.zeros(3))
    with pytest.raises(IndexError, match=r"labels\[0\] = 0"):
        fastloss.softmax_cross_entropy(backend.asarray(x), backend.asarray(np.zeros(3, np.int64)))


@pytest.mark.parametrize("C", [1, 2, 10, 32, 33])
@pytest.mark.parametrize("soft", [False, True])
def test_few_classes_lane_per_row(backend, isa, C, soft):
    """Few classes: rows go through the softmax a SIMD vector at a time (one per lane), rows
    gathered at their stride; 53 rows leave a remainder that goes row by row."""
    r = rng(24 + C)
    x = (r.standard_normal((53, C)) * 3).astype(np.float32)
    w = r.random(C) + 0.3
    if soft:
        y = r.random((53, C)).astype(np.float32)
    else:
        y = r.integers(0, C, 53)
        y[5:9] = -100
    for view in (x, np.asfortranarray(x), x[::-1]):
        yy = y[::-1] if view is not x and view.base is x else y
        for reduction in ("mean", "none"):
            kw = dict(weight=w, label_smoothing=0.1, reduction=reduction)
            loss, grad = fastloss.softmax_cross_entropy(backend.asarray(view), backend.asarray(yy), return_grad=True,
                                                        **{k: backend.asarray(v) if isinstance(v, np.ndarray) else v
                                                           for k, v in kw.items()})
            tl, tg = torch_ce(np.array(view), np.array(yy), soft=soft, **kw)
            np.testing.assert_allclose(backend.to_numpy(loss), tl, rtol=2e-5, atol=2e-6)
            np.testing.assert_allclose(backend.to_numpy(grad), tg, rtol=2e-5, atol=2e-6)


def test_few_classes_in_place_and_nan_rows():
    r = rng(30)
    x = r.standard_normal((40, 5)).astype(np.float32)
    x[3, 2] = np.nan
    y = r.integers(0, 5, 40)
    y[7] = -100
    x[7] = np.nan  # ignored: stays out of everything
    want_l, want_g = fastloss.softmax_cross_entropy(x, y, reduction="none", return_grad=True)
    assert np.isnan(want_l[3]) and np.all(np.isnan(want_g[3]))
    assert want_l[7] == 0 and np.all(want_g[7] == 0)
    mask = np.ones(40, bool)
    mask[3] = False
    assert np.all(np.isfinite(want_l[mask]))
    xin = x.copy()
    l, g = fastloss.softmax_cross_entropy(xin, y, reduction="none", grad_out=xin)
    np.testing.assert_array_equal(l, want_l)
    np.testing.assert_array_equal(g, want_g)


@pytest.mark.parametrize("C", [16, 17, 32, 40, 100, 127, 128])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_only_short_rows_take_the_same_bits(isa, C, dtype):
    """Loss-only calls on (N, C) rows with integer labels take W rows at a time (their max and
    sum trees as transposed reductions); the loss must be bit-for-bit the loss of the call with
    the gradient and of a strided copy (row by row), including rows past the last full group
    of W, ignored rows, weights and every reduction."""
    r = rng(C + 7)
    N = 75  # groups of 16 (float32) and 8 (float64) lanes plus a remainder
    x = (r.standard_normal((N, C)) * 3).astype(dtype)
    x[3, 1] = 80.0  # a dominant logit
    x[4] = -np.inf
    x[4, 0] = 0.0
    y = r.integers(0, C, N)
    y[[5, 21, 40]] = -100
    y[4] = 0
    strided = np.zeros((N, 2 * C), dtype)
    strided[:, ::2] = x
    w = r.random(C) + 0.5
    for kw in (dict(), dict(weight=w)):
        for reduction in ("none", "sum", "mean"):
            only = fastloss.softmax_cross_entropy(x, y, reduction=reduction, **kw)
            with_grad, _ = fastloss.softmax_cross_entropy(x, y, reduction=reduction, return_grad=True, **kw)
            from_strided = fastloss.softmax_cross_entropy(strided[:, ::2], y, reduction=reduction, **kw)
            np.testing.assert_array_equal(only, with_grad)
            np.testing.assert_array_equal(only, from_strided)
            tl, _ = torch_ce(x, y, reduction=reduction, **kw)
            np.testing.assert_allclose(only, tl, **TOL[dtype])


def test_layouts_that_take_different_simd_paths_agree():
    """A Fortran-ordered (N, C) array runs lane-per-row (rows contiguous), its C-ordered copy
    row by row: different summation orders, the same values to float rounding."""
    r = rng(31)
    x = (r.standard_normal((67, 300)) * 4).astype(np.float32)
    y = r.integers(0, 300, 67)
    w = r.random(300) + 0.5
    want = fastloss.softmax_cross_entropy(x, y, weight=w, label_smoothing=0.1, reduction="none", return_grad=True)
    got = fastloss.softmax_cross_entropy(np.asfortranarray(x), y, weight=w, label_smoothing=0.1, reduction="none",
                                         return_grad=True)
    np.testing.assert_allclose(got[0], want[0], rtol=3e-6)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-9)


# --------------------------------------------------------------------------- CUDA row cache
# Long rows with a gradient are held in shared memory (one block, or a cluster of 2, 4 or 8
# blocks on sm_90) so the logits are read once. A small per-block budget sends rows of a few
# thousand classes down every cluster size: (C, budget in bytes, what float32 rows take).
ROW_CACHE_CASES = [
    (1500, 0, "one block"),
    (1500, 3200, "2 blocks"),
    (3001, 3200, "4 blocks"),
    (3001, 1600, "8 blocks"),
    (3001, 1000, "too long: two-read kernel"),
    (2048, -1, "cache off"),
]


@pytest.fixture
def row_cache_bytes():
    yield fastloss._C._set_cuda_row_cache_bytes
    fastloss._C._set_cuda_row_cache_bytes(0)


class TestCudaRowCache:
    @pytest.mark.parametrize("C,budget,what", ROW_CACHE_CASES)
    @pytest.mark.parametrize("soft", [False, True])
    @pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
    def test_every_option_matches_the_cpu(self, row_cache_bytes, C, budget, what, soft, dtype):
        cp = cupy_or_skip()
        row_cache_bytes(budget)
        r = rng(C + budget)
        N = 7
        x = (r.standard_normal((N, C)) * 3).astype(dtype)
        x[1, :: 7] = -np.inf
        w = (r.random(C) + 0.5).astype(np.float32)
        if soft:
            y = r.random((N, C)).astype(dtype)
            y /= y.sum(1, keepdims=True)
        else:
            y = r.integers(0, C, N)
            y[4] = -100
        kw = dict(weight=w, label_smoothing=0.1, z_loss=1e-3, reduction="none")
        want_l, want_g = fastloss.softmax_cross_entropy(x, y, return_grad=True, **kw)
        got_l, got_g = fastloss.softmax_cross_entropy(cp.asarray(x), cp.asarray(y), return_grad=True,
                                                      **{k: cp.asarray(v) if isinstance(v, np.ndarray) else v
                                                         for k, v in kw.items()})
        tol = {np.float64: dict(rtol=1e-12, atol=1e-15), np.float32: dict(rtol=2e-5, atol=1e-8),
               np.float16: dict(rtol=2e-3, atol=1e-6)}[dtype]
        np.testing.assert_allclose(cp.asnumpy(got_l).astype(np.float64), want_l.astype(np.float64), **tol, err_msg=what)
        np.testing.assert_allclose(cp.asnumpy(got_g).astype(np.float64), want_g.astype(np.float64), **tol, err_msg=what)

    @pytest.mark.parametrize("C,budget,what", ROW_CACHE_CASES)
    def test_the_planned_kernel_runs(self, row_cache_bytes, C, budget, what):
        # A cached launch the GPU refuses falls back to the two-read kernel with the same
        # results, so only the recorded choice shows it. Clusters need sm_90 and sm_90 code.
        cp = cupy_or_skip()
        row_cache_bytes(budget)
        x = cp.asarray(rng(C).standard_normal((5, C)).astype(np.float32))
        fastloss.softmax_cross_entropy(x, cp.asarray(np.arange(5)), return_grad=True)
        planned, launched, clusters = fastloss._C._cuda_last_row_cache_choice()
        K = int(what[0]) if what[0].isdigit() else 1 if what == "one block" else 0
        assert planned == (K if K <= 1 or clusters else 0), (what, planned, clusters)
        assert launched == planned, f"{what}: the GPU refused a launch of {planned}-block clusters"

    @pytest.mark.parametrize("C,budget,what", ROW_CACHE_CASES[:4])
    def test_mean_in_place_strided_and_nan_rows(self, row_cache_bytes, C, budget, what):
        cp = cupy_or_skip()
        row_cache_bytes(budget)
        r = rng(C)
        N = 10
        x = r.standard_normal((N, C)).astype(np.float32)
        x[2, C - 1] = np.nan
        y = r.integers(0, C, N)
        y[5] = -100
        tl, tg = torch_ce(x, y, reduction="none")
        xin = cp.asarray(x)
        loss, g = fastloss.softmax_cross_entropy(xin, cp.asarray(y), reduction="none", grad_out=xin)
        loss, g = cp.asnumpy(loss), cp.asnumpy(g)
        assert np.isnan(loss[2]) and np.all(np.isnan(g[2]))
        ok = np.arange(N) != 2
        np.testing.assert_allclose(loss[ok], tl[ok], rtol=2e-5, err_msg=what)
        np.testing.assert_allclose(g[ok], tg[ok], rtol=2e-5, atol=1e-9, err_msg=what)
        # Strided (every other column of a wider array) and misaligned (rows start 4 bytes past a
        # 16-byte boundary: no vector loads) views, mean reduction.
        x[2, C - 1] = 0.0
        tl, tg = torch_ce(x, y)
        wide = np.zeros((N, 2 * C), np.float32)
        wide[:, 1::2] = x
        flat = cp.asarray(np.concatenate([[0], x.reshape(-1)]).astype(np.float32))
        for view in (cp.asarray(wide)[:, 1::2], flat[1:].reshape(N, C)):
            loss, g = fastloss.softmax_cross_entropy(view, cp.asarray(y), return_grad=True)
            np.testing.assert_allclose(cp.asnumpy(loss), tl, rtol=2e-5, err_msg=what)
            np.testing.assert_allclose(cp.asnumpy(g), tg, rtol=2e-5, atol=1e-9, err_msg=what)


# --------------------------------------------------------------------------- grad_out on nll_loss (issue 20)
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_loss_grad_out(backend, weighted):
    from grad_out_check import check_grad_out
    rng = np.random.default_rng(2020)
    lp = np.log(rng.dirichlet(np.ones(7), size=9))
    y = rng.integers(0, 7, 9)
    y[3] = -100
    kw = dict(weight=rng.random(7) + 0.5) if weighted else {}
    if backend.name == "cupy":
        kw = {k: backend.asarray(v) for k, v in kw.items()}
    check_grad_out(fastloss.nll_loss, [lp, y], kw, backend)
    check_grad_out(fastloss.nll_loss, [np.ascontiguousarray(np.log(rng.dirichlet(np.ones(5), size=(3, 4))).transpose(0, 2, 1)),
                                       rng.integers(0, 5, (3, 4))], dict(kw if not weighted else {}, axis=1,
                                                                        reduction="sum"), backend)


def test_float_class_indices_message_says_integers_were_meant():
    x = np.zeros((8, 5), np.float32)
    with pytest.raises(ValueError, match=r"integer class indices were meant.*astype\(int\)"):
        fastloss.softmax_cross_entropy(x, np.arange(8.0) % 5)
    with pytest.raises(ValueError, match="integer class indices were meant"):
        fastloss.bi_tempered_logistic_loss(x, np.arange(8.0) % 5, t1=0.8, t2=1.2)
    with pytest.raises(ValueError) as e:  # a probability array of another shape: no such hint
        fastloss.softmax_cross_entropy(x, np.zeros((8, 4)))
    assert "integer" not in str(e.value)


def test_torch_tensor_requiring_grad_names_the_fix():
    import torch
    t = torch.zeros(4, 3, requires_grad=True)
    with pytest.raises(TypeError, match=r"logits.*requires grad") as e:
        fastloss.softmax_cross_entropy(t, np.zeros(4, np.int64))
    assert "detach()" in str(e.value) and "fastloss.torch" in str(e.value)


def test_integer_and_bool_weights_are_floats():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 4))
    y = rng.integers(0, 4, 6)
    w = np.array([1, 2, 3, 4])
    want = fastloss.softmax_cross_entropy(x, y, weight=w.astype(np.float64))
    for weight in (w, w.astype(np.int8), w.astype(np.uint16), w.tolist()):
        assert float(fastloss.softmax_cross_entropy(x, y, weight=weight)) == float(want)
    wb = np.array([True, False, True, True])
    assert float(fastloss.softmax_cross_entropy(x, y, weight=wb)) == float(
        fastloss.softmax_cross_entropy(x, y, weight=wb.astype(np.float64)))
