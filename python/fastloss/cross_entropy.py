"""Softmax cross-entropy and negative log-likelihood."""
from __future__ import annotations

import numpy as np

from . import _C
from ._array import (as_float_array, as_index_array, backend_of, check_grad_out, check_reduction, desc)

__all__ = ["softmax_cross_entropy", "nll_loss"]


def _labels_and_kind(labels, logits, backend):
    """Integer class indices, or float probabilities shaped like logits."""
    xp = backend.xp
    arr = labels if isinstance(labels, xp.ndarray) else np.asarray(labels)
    if arr.dtype.kind == "f":
        t = as_float_array(labels, "labels", backend)
        if t.dtype != logits.dtype:
            t = t.astype(logits.dtype)
        return t, True
    y = as_index_array(labels, "labels", backend)
    if backend.cuda and y.dtype not in (np.int32, np.int64):
        y = y.astype(np.int64)
    return y, False


def _weight(weight, backend):
    if weight is None:
        return None
    w = as_float_array(weight, "weight", backend)
    # the CUDA kernels read float32/float64 weights; float16 weights are widened (C values)
    if w.dtype == np.float16:
        w = w.astype(np.float32)
    return w


def _outputs(logits, axis, reduction, return_grad, grad_out, backend):
    rows_shape = tuple(n for i, n in enumerate(logits.shape) if i != axis % max(logits.ndim, 1))
    loss = backend.empty(rows_shape if reduction == "none" else (), logits.dtype)
    grad = check_grad_out(grad_out, logits, backend) if (return_grad or grad_out is not None) else None
    return loss, grad, rows_shape


def softmax_cross_entropy(logits, labels, *, weight=None, ignore_index=-100, label_smoothing=0.0, z_loss=0.0,
                          axis=-1, reduction="mean", return_grad=False, grad_out=None):
    """Softmax cross-entropy, fused with its gradient.

    For a row ``x`` of ``C`` logits (along ``axis``), ``lse = log(sum_c exp(x_c))`` and integer
    label ``y``::

        loss = (1 - eps) * w[y] * (lse - x[y]) + eps / C * sum_c w[c] * (lse - x[c]) + z_loss * lse**2

    with ``eps = label_smoothing`` and ``w = weight`` (ones if None). With probability labels
    ``t`` (float, shaped like ``logits``) the loss is ``sum_c w[c] * t'[c] * (lse - x[c])`` with
    ``t' = (1 - eps) * t + eps / C``. Matches ``torch.nn.functional.cross_entropy`` for every
    combination of ``weight``, ``ignore_index``, ``label_smoothing`` and ``reduction``.

    Args:
        logits: float array (..., C, ...), class axis ``axis``. NumPy runs on the CPU, CuPy on
            the GPU.
        labels: integer array shaped like ``logits`` without the class axis (any integer dtype),
            or float probabilities shaped like ``logits``.
        weight: optional (C,) class weights.
        ignore_index: integer labels equal to this contribute 0 to the loss and gradient and
            are left out of the mean.
        label_smoothing: ``eps`` in [0, 1].
        z_loss: coefficient of the ``lse**2`` regulariser (per counted row, unweighted,
            reduced with the cross-entropy's denominator).
        axis: the class axis.
        reduction: ``"mean"`` (divides by the sum of ``w[y]`` over non-ignored rows, as
            PyTorch; by the row count for probability labels), ``"sum"`` or ``"none"`` (one
            value per row, shape of ``labels``). A mean over no counted row is 0.
        return_grad: also return d(loss)/d(logits).
        grad_out: optional preallocated gradient array (may be ``logits`` itself, for an
            in-place gradient); implies ``return_grad``.

    Returns:
        ``loss`` (0-d array for mean/sum), or ``(loss, grad)``. Same array library and dtype
        as ``logits`` (float16 is computed in float32).

    Example:
        >>> import numpy as np, fastloss
        >>> logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]], dtype=np.float32)
        >>> loss, grad = fastloss.softmax_cross_entropy(logits, np.array([0, 2]), return_grad=True)
        >>> round(float(loss), 4)
        0.1681
    """
    backend = backend_of(logits=logits, labels=labels, weight=weight, grad_out=grad_out)
    check_reduction(reduction)
    logits = as_float_array(logits, "logits", backend)
    if logits.ndim == 0:
        raise ValueError("logits must have at least one dimension (the class axis)")
    labels, soft = _labels_and_kind(labels, logits, backend)
    _check_axis(axis, logits.ndim, "logits")
    w = _weight(weight, backend)
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"ignore_index must be an integer, got {ignore_index!r}")
    loss, grad, rows_shape = _outputs(logits, axis, reduction, return_grad, grad_out, backend)
    rows = int(np.prod(rows_shape)) if rows_shape else 1
    with _device(backend):
        workspace = backend.workspace(_C.cross_entropy_workspace_bytes(rows))  # alive until the call returns
        _C.softmax_cross_entropy(desc(logits), desc(labels), soft, desc(w), int(ignore_index), float(label_smoothing),
                                 float(z_loss), int(axis), reduction, desc(loss), desc(grad), backend.cuda,
                                 backend.stream(), desc(workspace))
    return (loss, grad) if grad is not None else loss


def nll_loss(log_probs, labels, *, weight=None, ignore_index=-100, axis=-1, reduction="mean", return_grad=False):
    """Negative log-likelihood of integer labels: ``loss = -w[y] * log_probs[y]`` per row.

    Matches ``torch.nn.functional.nll_loss``: ``log_probs`` (..., C, ...) with class axis
    ``axis``, ``labels`` integer without the class axis, optional ``weight`` (C,), rows whose
    label is ``ignore_index`` count 0 and are left out of the mean, whose denominator is the
    sum of ``w[y]`` (0 when nothing counts). With ``return_grad`` returns ``(loss, grad)``,
    ``grad = -w[y] / denominator`` at the label and 0 elsewhere.

    Example:
        >>> import numpy as np, fastloss
        >>> lp = np.log(np.array([[0.5, 0.25, 0.25]]))
        >>> float(fastloss.nll_loss(lp, np.array([1])))  # -log(0.25)
        1.3862943611198906
    """
    backend = backend_of(log_probs=log_probs, labels=labels, weight=weight)
    check_reduction(reduction)
    log_probs = as_float_array(log_probs, "log_probs", backend)
    if log_probs.ndim == 0:
        raise ValueError("log_probs must have at least one dimension (the class axis)")
    labels = as_index_array(labels, "labels", backend)
    if backend.cuda and labels.dtype != np.int64:
        labels = labels.astype(np.int64)
    _check_axis(axis, log_probs.ndim, "log_probs")
    w = _weight(weight, backend)
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"ignore_index must be an integer, got {ignore_index!r}")
    loss, grad, rows_shape = _outputs(log_probs, axis, reduction, return_grad, None, backend)
    rows = int(np.prod(rows_shape)) if rows_shape else 1
    with _device(backend):
        workspace = backend.workspace(_C.cross_entropy_workspace_bytes(rows))  # alive until the call returns
        _C.nll_loss(desc(log_probs), desc(labels), desc(w), int(ignore_index), int(axis), reduction, desc(loss),
                    desc(grad), backend.cuda, backend.stream(), desc(workspace))
    return (loss, grad) if grad is not None else loss


def _check_axis(axis, ndim, name):
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an integer, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for {name} with {ndim} dimensions")


class _NoDevice:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _device(backend):
    return backend.device if backend.cuda else _NoDevice()
