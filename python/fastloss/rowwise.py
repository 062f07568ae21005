"""Row-wise losses: softmax focal loss and truncated cross-entropy on the shared row engine (one
fused pass per row, like ``softmax_cross_entropy``), and the divergences of probability rows
(entropy, KL, Jensen-Shannon), and the multiclass hinge losses."""
from __future__ import annotations

import numbers

import numpy as np

from . import _C
from ._array import as_float_array, as_index_array, backend_of, check_grad_out, check_reduction, desc

__all__ = ["softmax_focal_loss", "truncated_cross_entropy", "entropy", "kl_divergence", "js_divergence",
           "multiclass_hinge_loss"]


def _label_rows(logits, labels, axis, ignore_index, reduction, return_grad, extra=None):
    """The arrays shared by the row losses: logits, integer labels, loss and grad outputs."""
    backend = backend_of(logits=logits, labels=labels, **(extra or {}))
    check_reduction(reduction)
    logits = as_float_array(logits, "logits", backend)
    labels = as_index_array(labels, "labels", backend)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an integer, got {axis!r}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"ignore_index must be an integer, got {ignore_index!r}")
    if logits.ndim == 0:
        raise ValueError("logits must have at least one dimension (the class axis)")
    if not -logits.ndim <= axis < logits.ndim:
        raise ValueError(f"axis {axis} is out of range for logits with {logits.ndim} dimensions")
    rows_shape = tuple(n for i, n in enumerate(logits.shape) if i != axis % logits.ndim)
    loss = backend.empty(rows_shape if reduction == "none" else (), logits.dtype)
    grad = check_grad_out(None, logits, backend) if return_grad else None
    return backend, logits, labels, loss, grad


def softmax_focal_loss(logits, labels, *, alpha=None, gamma=2.0, ignore_index=-100, axis=-1, reduction="mean",
                       return_grad=False):
    """Softmax focal loss (Lin et al., 2017), fused with its gradient.

    For a row ``x`` of ``C`` logits (along ``axis``) with integer label ``y`` and
    ``p = softmax(x)``::

        loss = -alpha[y] * (1 - p[y])**gamma * log(p[y])

    computed in log space (``1 - p[y] = -expm1(log p[y])``), so it is finite for logits of
    +-1e4 and any ``gamma >= 0``. ``gamma=0, alpha=None`` is exactly ``softmax_cross_entropy``
    (value and gradient). The gradient is ``A * (p - onehot(y))`` with
    ``A = alpha[y] * (1-p[y])**gamma * (1 - gamma * p[y] * log(p[y]) / (1 - p[y]))``.

    Args:
        logits: float array (..., C, ...), class axis ``axis`` (NumPy; any strides).
        labels: integer array shaped like ``logits`` without the class axis.
        alpha: None (1), a scalar, or a (C,) array of per-class factors. They scale the
            values, never the ``"mean"`` denominator.
        gamma: focusing parameter, ``>= 0`` (``ValueError`` otherwise).
        ignore_index: rows with this label count 0 and are left out of the mean.
        axis: the class axis.
        reduction: ``"mean"`` (over the non-ignored rows; 0 when there are none), ``"sum"``
            or ``"none"`` (one value per row).
        return_grad: also return d(loss)/d(logits).

    Returns:
        ``loss`` or ``(loss, grad)``, in the dtype of ``logits`` (float16 computed in float32).

    Example:
        >>> import numpy as np, fastloss
        >>> x = np.array([[2.0, 0.5, -1.0]])
        >>> round(float(fastloss.softmax_focal_loss(x, np.array([0]), gamma=2.0)), 6)
        0.011093
    """
    scalar = alpha is None or isinstance(alpha, numbers.Real) or (isinstance(alpha, np.ndarray) and alpha.ndim == 0)
    backend, logits, labels, loss, grad = _label_rows(logits, labels, axis, ignore_index, reduction, return_grad,
                                                      None if scalar else {"alpha": alpha})
    alpha_arr, alpha_scalar = None, 1.0
    if scalar:
        alpha_scalar = 1.0 if alpha is None else float(alpha)
    else:
        alpha_arr = as_float_array(alpha, "alpha", backend)
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real):
        raise TypeError(f"gamma must be a number, got {gamma!r}")
    _C.softmax_focal_loss(desc(logits), desc(labels), desc(alpha_arr), alpha_scalar, float(gamma), int(ignore_index),
                          int(axis), reduction, desc(loss), desc(grad), backend.cuda)
    return (loss, grad) if grad is not None else loss


def truncated_cross_entropy(logits, labels, *, margin=0.6, softness=None, axis=-1, ignore_index=-100, reduction="mean",
                            return_grad=False):
    """Truncated softmax cross-entropy: cross-entropy counted only for rows the model gets wrong.

    For a row with integer label ``y``, ``p = softmax(x)``::

        loss = -f * log(p[y]),   f = [p[y] < margin]                   (softness=None)
                                 f = sigmoid(softness * (margin - p[y]))  (softness=K > 0)

    The hard factor is a constant for the gradient (``grad = f * (p - onehot(y))``); the soft
    one is differentiated (``grad = A * (p - onehot(y))``, ``A = f - f*(1-f)*K*p[y]*log p[y]``).
    ``margin=1`` (hard) is cross-entropy. The ``"mean"`` denominator counts every non-ignored
    row, truncated or not.

    Args:
        logits: float array (..., C, ...), class axis ``axis``.
        labels: integer array shaped like ``logits`` without the class axis.
        margin: truncation threshold on ``p[y]`` (finite).
        softness: None for the hard form, else ``K > 0``.
        axis, ignore_index, reduction, return_grad: as in ``softmax_cross_entropy``.

    Example:
        >>> import numpy as np, fastloss
        >>> x = np.array([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
        >>> round(float(fastloss.truncated_cross_entropy(x, np.array([0, 0]), reduction="sum")), 6)
        3.094923
    """
    backend, logits, labels, loss, grad = _label_rows(logits, labels, axis, ignore_index, reduction, return_grad)
    if isinstance(margin, bool) or not isinstance(margin, numbers.Real):
        raise TypeError(f"margin must be a number, got {margin!r}")
    if softness is not None and (isinstance(softness, bool) or not isinstance(softness, numbers.Real)):
        raise TypeError(f"softness must be None or a number, got {softness!r}")
    _C.truncated_cross_entropy(desc(logits), desc(labels), float(margin), softness is not None,
                               0.0 if softness is None else float(softness), int(ignore_index), int(axis), reduction,
                               desc(loss), desc(grad), backend.cuda)
    return (loss, grad) if grad is not None else loss


def _divergence(kind, p, q, axis):
    backend = backend_of(p=p, q=q)
    p = as_float_array(p, "p", backend)
    if q is not None:
        q = as_float_array(q, "q", backend)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an integer, got {axis!r}")
    if p.ndim == 0:
        raise ValueError("p must have at least one dimension (the axis summed over)")
    if not -p.ndim <= axis < p.ndim:
        raise ValueError(f"axis {axis} is out of range for p with {p.ndim} dimensions")
    out = backend.empty(tuple(n for i, n in enumerate(p.shape) if i != axis % p.ndim), p.dtype)
    _C.divergence(kind, desc(p), desc(q), int(axis), desc(out), backend.cuda)
    return out


def entropy(p, *, axis=-1):
    """Shannon entropy (natural log) of each distribution along ``axis``.

    ``p`` is normalised first (``pk = p / sum(p)``), then ``H = -sum(pk * log(pk))`` with
    ``0 * log 0 = 0``; a negative entry gives ``-inf``. Matches ``scipy.stats.entropy(p, axis=axis)``.
    Returns an array shaped like ``p`` without ``axis`` (0-d for 1-D ``p``), in ``p``'s dtype.

    Example:
        >>> import numpy as np, fastloss
        >>> round(float(fastloss.entropy(np.array([0.5, 0.5, 0.0]))), 6)  # log 2
        0.693147
    """
    return _divergence("entropy", p, None, axis)


def kl_divergence(p, q, *, axis=-1):
    """Kullback-Leibler divergence ``sum(pk * log(pk / qk))`` along ``axis``.

    Both inputs are normalised to sum 1 along ``axis`` first; ``pk = 0`` contributes 0,
    ``qk = 0 < pk`` (or a negative entry) gives ``inf``. Matches
    ``scipy.stats.entropy(p, q, axis=axis)``. ``p`` and ``q``: same shape and dtype.

    Example:
        >>> import numpy as np, fastloss
        >>> round(float(fastloss.kl_divergence(np.array([0.5, 0.5]), np.array([0.9, 0.1]))), 6)
        0.510826
    """
    return _divergence("kl", p, q, axis)


def js_divergence(p, q, *, axis=-1):
    """Jensen-Shannon divergence (natural log) along ``axis``:
    ``(KL(pk || m) + KL(qk || m)) / 2`` with ``m = (pk + qk) / 2`` and both inputs normalised to
    sum 1. Equals ``scipy.spatial.distance.jensenshannon(p, q, axis=axis) ** 2``; symmetric,
    between 0 and ``log 2``.

    Example:
        >>> import numpy as np, fastloss
        >>> round(float(fastloss.js_divergence(np.array([1.0, 0.0]), np.array([0.0, 1.0]))), 6)  # log 2
        0.693147
    """
    return _divergence("js", p, q, axis)


def multiclass_hinge_loss(scores, labels, *, margin=1.0, p=1, weight=None, kind="weston_watkins", axis=-1,
                          reduction="mean", return_grad=False):
    """Multiclass hinge loss of a row of ``C`` scores ``s`` (along ``axis``) with integer label ``y``.

    ``kind="weston_watkins"`` (matches ``torch.nn.functional.multi_margin_loss``)::

        loss = w[y] / C * sum_{j != y} max(0, margin - s[y] + s[j])**p

    ``kind="crammer_singer"``::

        loss = w[y] * max(0, margin - s[y] + max_{j != y} s[j])**p

    Args:
        scores: float array (..., C, ...), class axis ``axis``.
        labels: integer array shaped like ``scores`` without the class axis, in ``[0, C)``.
        margin: the margin (finite).
        p: 1 or 2 (``ValueError`` otherwise).
        weight: optional (C,) class weights ``w`` (scale values, not the mean's denominator).
        kind: ``"weston_watkins"`` or ``"crammer_singer"``.
        reduction: ``"mean"`` over rows (as torch), ``"sum"`` or ``"none"``.
        return_grad: also return d(loss)/d(scores) (Crammer-Singer: the subgradient at the first
            best rival).

    Example:
        >>> import numpy as np, fastloss
        >>> s = np.array([[0.1, 0.2, 0.4, 0.8]])
        >>> round(float(fastloss.multiclass_hinge_loss(s, np.array([3]))), 6)  # torch's example
        0.325
    """
    backend = backend_of(scores=scores, labels=labels, weight=weight)
    check_reduction(reduction)
    scores = as_float_array(scores, "scores", backend)
    labels = as_index_array(labels, "labels", backend)
    w = None if weight is None else as_float_array(weight, "weight", backend)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an integer, got {axis!r}")
    if scores.ndim == 0:
        raise ValueError("scores must have at least one dimension (the class axis)")
    if not -scores.ndim <= axis < scores.ndim:
        raise ValueError(f"axis {axis} is out of range for scores with {scores.ndim} dimensions")
    for name, v in (("margin", margin), ("p", p)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"{name} must be a number, got {v!r}")
    if not isinstance(kind, str):
        raise TypeError(f"kind must be a string, got {kind!r}")
    rows_shape = tuple(n for i, n in enumerate(scores.shape) if i != axis % scores.ndim)
    loss = backend.empty(rows_shape if reduction == "none" else (), scores.dtype)
    grad = check_grad_out(None, scores, backend) if return_grad else None
    _C.multiclass_hinge_loss(desc(scores), desc(labels), float(margin), float(p), desc(w), kind, int(axis), reduction,
                             desc(loss), desc(grad), backend.cuda)
    return (loss, grad) if grad is not None else loss
