"""Metric-learning losses: large-margin softmax (L-Softmax), center loss and the center update."""
from __future__ import annotations

import numpy as np

from . import _C
from ._array import as_float_array, as_index_array, backend_of, desc
from .cross_entropy import _device

__all__ = ["large_margin_softmax_loss", "center_loss", "update_centers"]


def _compute_dtype(*arrays):
    """The result dtype of the float inputs, and the dtype the kernels compute in (float16 is
    computed in float32)."""
    out = np.result_type(*(a.dtype for a in arrays))
    return out, (np.dtype(np.float32) if out == np.float16 else out)


def _labels(labels, backend):
    y = as_index_array(labels, "labels", backend)
    # the CUDA kernels read int64 labels (any integer dtype on the CPU)
    return y.astype(np.int64) if backend.cuda and y.dtype != np.int64 else y


def large_margin_softmax_loss(features, weight, labels, *, margin=2, beta=0.0, reduction="mean", return_grad=False):
    """Large-margin softmax loss (L-Softmax, Liu et al., ICML 2016), with both gradients.

    With ``f = features @ weight`` and, for row ``i`` with label ``y``, ``cos(theta) =
    f[i, y] / (|x_i| |w_y|)`` (``x_i`` a row of ``features``, ``w_y`` a column of ``weight``)::

        psi(theta) = (-1)**k * cos(m*theta) - 2*k   for theta in [k*pi/m, (k+1)*pi/m]
        z[i, y]    = (beta * f[i, y] + |x_i| |w_y| psi(theta)) / (1 + beta)
        z[i, j]    = f[i, j]  (j != y)
        loss_i     = logsumexp(z[i]) - z[i, y]

    ``cos(m*theta)`` is the Chebyshev polynomial ``T_m(cos theta)`` and ``k`` comes from
    comparing ``cos(theta)`` with ``cos(j*pi/m)``: no ``acos``. ``margin=1`` is softmax
    cross-entropy on ``features @ weight`` (value and both gradients). A zero-norm row of
    ``features`` or column of ``weight`` takes ``cos(theta) = 0``; values and gradients stay
    finite. The three matrix products run in the array library (NumPy's BLAS, cuBLAS through
    CuPy); the margin, softmax and gradient pass over the logits is one fused kernel.

    Args:
        features: float array (N, D). NumPy runs on the CPU, CuPy on the GPU.
        weight: float array (D, C).
        labels: integer array (N,), values in [0, C).
        margin: the integer ``m``, 1 to 6.
        beta: the annealing weight, ``>= 0`` (large ``beta`` approaches plain softmax).
        reduction: ``"mean"`` (over the N rows), ``"sum"`` or ``"none"`` (shape (N,)).
        return_grad: also return ``(grad_features, grad_weight)``, d(loss)/d(features) and
            d(loss)/d(weight), shaped like the inputs.

    Returns:
        ``loss`` (0-d for mean/sum), or ``(loss, (grad_features, grad_weight))``, in the
        result dtype of ``features`` and ``weight`` (float16 is computed in float32).

    Example:
        >>> import numpy as np, fastloss
        >>> x = np.array([[1.0, 0.0], [0.0, 2.0]]); w = np.array([[1.0, 0.0], [0.0, 1.0]])
        >>> loss, (gx, gw) = fastloss.large_margin_softmax_loss(x, w, [0, 1], margin=2, return_grad=True)
        >>> round(float(loss), 4)
        0.2201
    """
    backend = backend_of(features=features, weight=weight, labels=labels)
    x = as_float_array(features, "features", backend)
    w = as_float_array(weight, "weight", backend)
    y = _labels(labels, backend)
    out_dtype, dt = _compute_dtype(x, w)
    x, w = x.astype(dt, copy=False), w.astype(dt, copy=False)
    m = _C.large_margin_softmax_check(desc(x), desc(w), desc(y), margin, beta, reduction)
    beta = float(beta)
    N, C = x.shape[0], w.shape[1]
    with _device(backend):
        logits = x @ w  # BLAS; becomes the logits' gradient in place
        loss = backend.empty((N,) if reduction == "none" else (), dt)
        rs = backend.empty((N,), np.float64) if return_grad else None
        cs = backend.empty((C,), np.float64) if return_grad else None
        ws = backend.workspace(_C.large_margin_workspace_bytes(N, C))
        _C.large_margin_softmax_rows(desc(x), desc(w), desc(y), m, beta, reduction, desc(logits), desc(loss),
                                     bool(return_grad), desc(rs), desc(cs), backend.cuda, backend.stream(), desc(ws))
        if not return_grad:
            return loss.astype(out_dtype, copy=False)
        grad_x = logits @ w.T
        grad_w = x.T @ logits
        _C.large_margin_softmax_finish(desc(x), desc(w), desc(y), m, beta, reduction, desc(rs), desc(cs),
                                       desc(grad_x), desc(grad_w), backend.cuda, backend.stream())
    cast = (lambda a: a.astype(out_dtype, copy=False))
    return cast(loss), (cast(grad_x), cast(grad_w))


def center_loss(features, labels, centers, *, reduction="mean", return_grad=False):
    """Center loss (Wen et al., ECCV 2016): ``loss_i = 0.5 * ||x_i - c_{y_i}||**2``.

    Args:
        features: float array (N, D). NumPy runs on the CPU, CuPy on the GPU.
        labels: integer array (N,), values in [0, K).
        centers: float array (K, D), one center per class (held constant: the gradient is
            w.r.t. ``features`` only; centers move by :func:`update_centers`).
        reduction: ``"mean"`` (over the N rows), ``"sum"`` or ``"none"`` (shape (N,)).
        return_grad: also return d(loss)/d(features) = ``(x_i - c_{y_i})`` times 1/N for the
            mean.

    Returns:
        ``loss`` (0-d for mean/sum), or ``(loss, grad)``, in the dtype of ``features``
        (float16 is computed in float32).

    Example:
        >>> import numpy as np, fastloss
        >>> x = np.array([[1.0, 2.0], [3.0, 4.0]]); c = np.zeros((2, 2))
        >>> float(fastloss.center_loss(x, [0, 1], c))  # (0.5*5 + 0.5*25) / 2
        7.5
    """
    backend = backend_of(features=features, labels=labels, centers=centers)
    x = as_float_array(features, "features", backend)
    c = as_float_array(centers, "centers", backend)
    y = _labels(labels, backend)
    out_dtype, dt = _compute_dtype(x)
    x, c = x.astype(dt, copy=False), c.astype(dt, copy=False)
    N = x.shape[0] if x.ndim else 0
    with _device(backend):
        loss = backend.empty((N,) if reduction == "none" else (), dt)
        grad = backend.empty(x.shape, dt) if return_grad else None
        ws = backend.workspace(_C.center_loss_workspace_bytes(N))
        _C.center_loss(desc(x), desc(y), desc(c), reduction, desc(loss), desc(grad), backend.cuda, backend.stream(),
                       desc(ws))
    loss = loss.astype(out_dtype, copy=False)
    return (loss, grad.astype(out_dtype, copy=False)) if return_grad else loss


def update_centers(centers, features, labels, *, alpha=0.5):
    """The center update of Wen et al. (ECCV 2016), returned as a new array::

        c_j <- c_j - alpha * sum_{y_i = j} (c_j - x_i) / (1 + n_j)

    with ``n_j`` the number of rows labelled ``j``; classes absent from the batch are
    unchanged. Deterministic: the sums run in row order on the CPU and on CUDA.

    Args:
        centers: float array (K, D). NumPy runs on the CPU, CuPy on the GPU.
        features: float array (N, D).
        labels: integer array (N,), values in [0, K).
        alpha: the center learning rate, a finite number ``>= 0``.

    Returns:
        The updated centers, (K, D), in the dtype of ``centers`` (float16 computed in float32).

    Example:
        >>> import numpy as np, fastloss
        >>> c = np.zeros((2, 2)); x = np.array([[2.0, 2.0], [4.0, 0.0]])
        >>> fastloss.update_centers(c, x, [0, 0], alpha=0.5)  # c_0 += 0.5 * (6, 2) / 3
        array([[1.        , 0.33333333],
               [0.        , 0.        ]])
    """
    backend = backend_of(centers=centers, features=features, labels=labels)
    c = as_float_array(centers, "centers", backend)
    x = as_float_array(features, "features", backend)
    y = _labels(labels, backend)
    out_dtype, dt = _compute_dtype(c)
    c, x = c.astype(dt, copy=False), x.astype(dt, copy=False)
    K = c.shape[0] if c.ndim else 0
    with _device(backend):
        out = backend.empty(c.shape, dt)
        ws = backend.workspace(_C.update_centers_workspace_bytes(K))
        _C.update_centers(desc(c), desc(x), desc(y), alpha, desc(out), backend.cuda, backend.stream(), desc(ws))
    return out.astype(out_dtype, copy=False)
