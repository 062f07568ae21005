"""One check of the `grad_out=` contract (CONTRACT.md sections 1 and 7) for any loss whose first
argument is differentiated: a preallocated gradient, the input itself (in place), a strided
one, `grad_out` without `return_grad`, and the errors (shape, dtype, read-only, partial
overlap), each naming grad_out and leaving the caller's arrays unchanged."""
import numpy as np
import pytest


def check_grad_out(fn, args, kwargs=None, backend=None, rtol=1e-12, atol=1e-15):
    """fn(*args, **kwargs) with args[0] the differentiated float array (NumPy; moved to the
    backend's library here). The gradient through every grad_out form equals the fresh one."""
    kwargs = dict(kwargs or {})
    xp = backend.xp if backend is not None else np
    to_np = backend.to_numpy if backend is not None else np.asarray
    dev = [xp.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
    x = dev[0]
    rest = dev[1:]
    loss0, g0 = fn(x, *rest, return_grad=True, **kwargs)
    loss0, g0 = to_np(loss0), to_np(g0)

    def same(loss, g):
        np.testing.assert_allclose(to_np(loss), loss0, rtol=rtol, atol=atol)
        np.testing.assert_allclose(to_np(g), g0, rtol=rtol, atol=atol)

    # a preallocated array; grad_out alone implies return_grad (as softmax_cross_entropy)
    buf = xp.full(x.shape, np.nan, x.dtype)
    loss, g = fn(x, *rest, grad_out=buf, **kwargs)
    assert g is buf
    same(loss, g)
    loss, g = fn(x, *rest, return_grad=True, grad_out=buf, **kwargs)
    assert g is buf
    same(loss, g)
    # in place: the input itself
    xi = x.copy()
    loss, g = fn(xi, *rest, grad_out=xi, **kwargs)
    assert g is xi
    same(loss, g)
    # a strided (transposed / reversed) preallocated array
    if x.ndim >= 1 and x.size:
        big = xp.full(x.shape[::-1], np.nan, x.dtype)
        strided = big.T if x.ndim > 1 else big[::-1]
        loss, g = fn(x, *rest, grad_out=strided, **kwargs)
        assert g is strided
        same(loss, g)

    # errors name grad_out; nothing the caller passed changes
    before = to_np(x).copy()
    wrong_shape = xp.zeros(tuple(x.shape) + (2,), x.dtype)
    with pytest.raises(ValueError, match="grad_out"):
        fn(x, *rest, grad_out=wrong_shape, **kwargs)
    other = np.float32 if x.dtype == np.float64 else np.float64
    with pytest.raises(TypeError, match="grad_out"):
        fn(x, *rest, grad_out=xp.zeros(x.shape, other), **kwargs)
    if x.ndim >= 1 and x.shape[0] > 1:
        with pytest.raises(ValueError, match="grad_out"):
            fn(x, *rest, grad_out=x[::-1], **kwargs)  # x's memory in another order: a partial overlap
    if xp is np:
        ro = np.zeros(x.shape, x.dtype)
        ro.flags.writeable = False
        with pytest.raises(ValueError, match="grad_out"):
            fn(x, *rest, grad_out=ro, **kwargs)
    with pytest.raises(ValueError, match="reduction"):  # an in-place call that fails leaves x as it was
        fn(x, *rest, grad_out=x, **dict(kwargs, reduction="avg"))
    np.testing.assert_array_equal(to_np(x), before)
    return loss0, g0
