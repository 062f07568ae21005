"""The array layer (csrc/bindings/array.cpp): every input a kernel cannot read in place is
converted, valid inputs are never refused, and every rule raises the documented error type
with a message naming the argument. Regression tests for issue 10 items 5-9."""
import numpy as np
import pytest

import fastloss

torch = pytest.importorskip("torch")


def rng(seed):
    return np.random.default_rng(seed)


def unaligned(a):
    """A C-contiguous copy of `a` whose data starts one byte past an aligned address."""
    a = np.ascontiguousarray(a)
    buf = np.zeros(a.nbytes + 1, np.uint8)
    out = buf[1:].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


def ce(x, y, **kw):
    return fastloss.softmax_cross_entropy(x, y, **kw)


# --------------------------------------------------------------------------- item 5: valid inputs
@pytest.mark.parametrize("dtype", ["f4", "f8", "f2"])
def test_big_endian_floats_give_the_native_answer(dtype):
    r = rng(1)
    x = r.standard_normal((7, 5)).astype(dtype)
    y = r.integers(0, 5, 7)
    ref_loss, ref_grad = ce(x, y, return_grad=True, reduction="none")
    loss, grad = ce(x.astype(">" + dtype), y.astype(">i8"), return_grad=True, reduction="none")
    np.testing.assert_array_equal(loss, ref_loss)
    np.testing.assert_array_equal(grad, ref_grad)
    assert grad.dtype == np.dtype(dtype)
    probs = r.dirichlet(np.ones(5), 7).astype(dtype)
    np.testing.assert_array_equal(ce(x, probs.astype(">" + dtype)), ce(x, probs))
    np.testing.assert_array_equal(fastloss.nll_loss(x.astype(">" + dtype), y), fastloss.nll_loss(x, y))


def test_size_zero_arrays():
    x = np.zeros((0, 3), np.float32)
    loss, grad = ce(x, np.zeros(0, np.int64), return_grad=True, grad_out=np.empty_like(x))
    assert float(loss) == 0.0 and grad.shape == (0, 3)
    assert float(fastloss.nll_loss(np.zeros((0, 3)), [])) == 0.0
    assert float(ce(np.zeros((0, 3)), [])) == 0.0
    assert ce(np.zeros((0, 3)), [], reduction="none").shape == (0,)


def test_unaligned_zero_d_label_stays_zero_d():
    y = unaligned(np.array([2], np.int64)).reshape(())
    x = np.array([0.5, -1.0, 2.0], np.float32)
    np.testing.assert_allclose(ce(x, y), ce(x, np.array(2)), rtol=0)


def test_zero_d_lengths_for_a_batch_of_one():
    r = rng(2)
    T, C, S = 12, 5, 3
    lp = np.log(r.dirichlet(np.ones(C), (T, 1)))
    labels = r.integers(1, C, (1, S))
    ref = torch.nn.functional.ctc_loss(torch.from_numpy(lp), torch.from_numpy(labels), torch.tensor(T),
                                       torch.tensor(S), reduction="sum")
    got = fastloss.ctc_loss(lp, labels, np.array(T), np.array(S), reduction="sum")
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="input_lengths"):
        fastloss.ctc_loss(np.concatenate([lp, lp], 1), np.concatenate([labels, labels]), np.array(T), [S, S])


# --------------------------------------------------------------------------- item 6: alignment
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unaligned_inputs_and_outputs(dtype):
    r = rng(3)
    x = r.standard_normal((9, 33)).astype(dtype)
    y = r.integers(0, 33, 9)
    w = r.random(33).astype(dtype)
    ref_loss, ref_grad = ce(x, y, weight=w, return_grad=True, reduction="none")
    g = unaligned(np.zeros_like(x))
    loss, grad = ce(unaligned(x), unaligned(y), weight=unaligned(w), grad_out=g, reduction="none")
    assert grad is g
    np.testing.assert_array_equal(loss, ref_loss)
    np.testing.assert_array_equal(g, ref_grad)
    xu = unaligned(x)
    loss, grad = ce(xu, y, grad_out=xu, reduction="none", weight=w)  # in place, unaligned
    np.testing.assert_array_equal(xu, ref_grad)
    lp = np.log(r.dirichlet(np.ones(6), (10, 2))).astype(dtype)
    labels = r.integers(1, 6, (2, 4))
    ref = fastloss.ctc_loss(lp, labels, [10, 9], [4, 3], return_grad=True)
    got = fastloss.ctc_loss(unaligned(lp), unaligned(labels), unaligned(np.array([10, 9])), [4, 3],
                            return_grad=True)
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])


# --------------------------------------------------------------------------- item 7: integer options
@pytest.mark.parametrize("call,name", [
    (lambda v: ce(np.zeros((2, 3)), [0, 1], ignore_index=v), "ignore_index"),
    (lambda v: fastloss.nll_loss(np.zeros((2, 3)), [0, 1], ignore_index=v), "ignore_index"),
    (lambda v: ce(np.zeros((2, 3)), [0, 1], axis=v), "axis"),
    (lambda v: fastloss.ctc_loss(np.zeros((4, 1, 3)), [[1]], [4], [1], blank=v), "blank"),
])
@pytest.mark.parametrize("value", [2**63, 2**70, -2**70])
def test_out_of_range_ints_are_value_errors(call, name, value):
    with pytest.raises(ValueError, match=name):
        call(value)


@pytest.mark.parametrize("value", [np.int8(-100), np.int64(-100), np.uint16(3)])
def test_numpy_integers_are_ints(value):
    assert np.isfinite(ce(np.zeros((2, 4)), [0, 1], ignore_index=value))


# --------------------------------------------------------------------------- item 8: overlap
def test_grad_out_partially_overlapping_an_input_is_refused():
    buf = np.arange(30, dtype=np.float32).reshape(6, 5) / 10
    before = buf.copy()
    with pytest.raises(ValueError, match="grad_out"):
        ce(buf[:4], [0, 1, 2, 3], grad_out=buf[1:5])
    with pytest.raises(ValueError, match="grad_out overlaps weight"):
        ce(buf[:4].copy(), [0, 1, 2, 3], weight=buf[5], grad_out=buf[2:6])
    probs = np.full((4, 5), 0.2, np.float32)
    with pytest.raises(ValueError, match="grad_out"):
        ce(buf[2:6].copy(), probs, grad_out=probs)  # the labels, not the logits
    np.testing.assert_array_equal(buf, before)


def test_grad_out_interleaved_with_the_input_is_fine():
    r = rng(4)
    buf = r.standard_normal((8, 5)).astype(np.float32)
    x = buf[::2]
    ref = ce(x.copy(), [0, 1, 2, 3], return_grad=True)[1]
    _, g = ce(x, [0, 1, 2, 3], grad_out=buf[1::2])
    np.testing.assert_array_equal(g, ref)


# --------------------------------------------------------------------------- item 9
def test_probability_labels_refuse_a_non_default_ignore_index():
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="ignore_index"):
        ce(x, np.full((2, 3), 1 / 3), ignore_index=1)
    assert np.isfinite(ce(x, np.full((2, 3), 1 / 3), ignore_index=-100))


# --------------------------------------------------------------------------- errors leave arrays alone
def test_an_error_leaves_an_in_place_input_unchanged():
    x = rng(5).standard_normal((4, 3)).astype(np.float32)
    before = x.copy()
    with pytest.raises(IndexError, match="labels"):
        ce(x, [0, 1, 3, 0], grad_out=x)
    np.testing.assert_array_equal(x, before)


def test_option_types():
    x, y = np.zeros((2, 3)), [0, 1]
    with pytest.raises(TypeError, match="label_smoothing"):
        ce(x, y, label_smoothing="0.1")
    with pytest.raises(TypeError, match="return_grad"):
        ce(x, y, return_grad="yes")
    with pytest.raises(ValueError, match="reduction"):
        ce(x, y, reduction=None)
    with pytest.raises(TypeError, match="logits"):
        ce(None, y)
    with pytest.raises(TypeError, match="logits"):
        ce(object(), y)
    with pytest.raises(TypeError, match="logits"):
        ce(np.zeros((2, 3), np.complex64), y)
    with pytest.raises(TypeError, match="grad_out"):
        ce(x, y, grad_out=[[0.0] * 3] * 2)
    with pytest.raises(ValueError, match="read-only"):
        g = np.zeros((2, 3))
        g.flags.writeable = False
        ce(x, y, grad_out=g)


def test_grad_out_overlapping_an_input_the_layer_copied_is_refused():
    """A big-endian or misaligned input is read from a copy; grad_out must still not touch the
    caller's array (unless it is that array itself, for an in-place gradient)."""
    x = rng(6).standard_normal((4, 3)).astype(">f4")
    before = x.copy()
    alias = x.view("<f4")  # x's memory read as native floats
    with pytest.raises(ValueError, match="grad_out overlaps logits"):
        ce(x, [0, 1, 2, 0], grad_out=alias[::-1])
    np.testing.assert_array_equal(x, before)
    xu = unaligned(rng(7).standard_normal((5, 3)).astype(np.float32))
    before = xu.copy()
    with pytest.raises(ValueError, match="grad_out overlaps logits"):
        ce(xu, [0, 1, 2, 0, 1], grad_out=xu[::-1])
    np.testing.assert_array_equal(xu, before)
    _, grad = ce(xu, [0, 1, 2, 0, 1], grad_out=xu)  # the array itself: in place
    assert grad is xu
