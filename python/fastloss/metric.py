"""Metric-learning losses: large-margin softmax (L-Softmax), center loss and the center update.

The wrappers name the keywords and carry the docstrings; arguments are read and checked in the
native module (csrc/bindings/bind_metric.cpp), which also sends L-Softmax's matrix products to
the array library (NumPy's BLAS, cuBLAS through CuPy).
"""
from __future__ import annotations

from . import _C

__all__ = ["large_margin_softmax_loss", "center_loss", "update_centers"]


def large_margin_softmax_loss(features, weight, labels, *, margin=2, beta=0.0, reduction="mean", return_grad=False,
                              grad_out=None):
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
        grad_out: optional pair ``(grad_features, grad_weight)`` of preallocated arrays
            (shapes and dtype of the returned gradients; they may be ``features`` and
            ``weight`` themselves); implies ``return_grad``.

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
    return _C.large_margin_softmax_loss(features, weight, labels, margin, beta, reduction, return_grad, grad_out)



def center_loss(features, labels, centers, *, reduction="mean", return_grad=False, grad_out=None):
    """Center loss (Wen et al., ECCV 2016): ``loss_i = 0.5 * ||x_i - c_{y_i}||**2``.

    Args:
        features: float array (N, D). NumPy runs on the CPU, CuPy on the GPU.
        labels: integer array (N,), values in [0, K).
        centers: float array (K, D), one center per class (held constant: the gradient is
            w.r.t. ``features`` only; centers move by :func:`update_centers`).
        reduction: ``"mean"`` (over the N rows), ``"sum"`` or ``"none"`` (shape (N,)).
        return_grad: also return d(loss)/d(features) = ``(x_i - c_{y_i})`` times 1/N for the
            mean.
        grad_out: optional preallocated gradient (shape and dtype of ``features``; ``features`` itself for
            an in-place gradient; any other overlap with an input is a ValueError); implies
            ``return_grad``.

    Returns:
        ``loss`` (0-d for mean/sum), or ``(loss, grad)``, in the dtype of ``features``
        (float16 is computed in float32).

    Example:
        >>> import numpy as np, fastloss
        >>> x = np.array([[1.0, 2.0], [3.0, 4.0]]); c = np.zeros((2, 2))
        >>> float(fastloss.center_loss(x, [0, 1], c))  # (0.5*5 + 0.5*25) / 2
        7.5
    """
    return _C.center_loss(features, labels, centers, reduction, return_grad, grad_out)



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
    return _C.update_centers(centers, features, labels, alpha)
