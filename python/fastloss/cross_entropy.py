"""Softmax cross-entropy and negative log-likelihood.

The wrappers name the keywords and carry the docstrings; every argument goes to the native
module as passed, where it is read, checked and allocated (csrc/bindings/array.h).
"""
from __future__ import annotations

from . import _C

__all__ = ["softmax_cross_entropy", "nll_loss"]


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
            are left out of the mean. Probability labels take only the default (-100), as in
            PyTorch; any other value is a ValueError.
        label_smoothing: ``eps`` in [0, 1].
        z_loss: coefficient of the ``lse**2`` regulariser (per counted row, unweighted,
            reduced with the cross-entropy's denominator).
        axis: the class axis.
        reduction: ``"mean"`` (divides by the sum of ``w[y]`` over non-ignored rows, as
            PyTorch; by the row count for probability labels), ``"sum"`` or ``"none"`` (one
            value per row, shape of ``labels``). A mean over no counted row is 0.
        return_grad: also return d(loss)/d(logits).
        grad_out: optional preallocated gradient array (may be ``logits`` itself, for an
            in-place gradient; any other overlap with an input is a ValueError); implies
            ``return_grad``.

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
    return _C.softmax_cross_entropy(logits, labels, weight, ignore_index, label_smoothing, z_loss, axis, reduction,
                                    return_grad, grad_out)


def nll_loss(log_probs, labels, *, weight=None, ignore_index=-100, axis=-1, reduction="mean", return_grad=False,
             grad_out=None):
    """Negative log-likelihood of integer labels: ``loss = -w[y] * log_probs[y]`` per row.

    Matches ``torch.nn.functional.nll_loss``: ``log_probs`` (..., C, ...) with class axis
    ``axis``, ``labels`` integer without the class axis, optional ``weight`` (C,), rows whose
    label is ``ignore_index`` count 0 and are left out of the mean, whose denominator is the
    sum of ``w[y]`` (0 when nothing counts). With ``return_grad`` returns ``(loss, grad)``,
    ``grad = -w[y] / denominator`` at the label and 0 elsewhere. ``grad_out`` names a
    preallocated gradient (``log_probs`` itself for an in-place one; any other overlap with an
    input is a ValueError) and implies ``return_grad``.

    Example:
        >>> import numpy as np, fastloss
        >>> lp = np.log(np.array([[0.5, 0.25, 0.25]]))
        >>> float(fastloss.nll_loss(lp, np.array([1])))  # -log(0.25)
        1.3862943611198906
    """
    return _C.nll_loss(log_probs, labels, weight, ignore_index, axis, reduction, return_grad, grad_out)
