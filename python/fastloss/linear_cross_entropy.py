"""Fused linear cross-entropy: a language model's output layer and its loss, without the logits.

The wrapper names the keywords and carries the docstring; the native module reads and checks
the arguments and drives the blocks (csrc/bindings/bind_linear_cross_entropy.cpp).
"""
from __future__ import annotations

from . import _C

__all__ = ["linear_cross_entropy"]


def linear_cross_entropy(hidden, weight, labels, *, bias=None, ignore_index=-100, label_smoothing=0.0, z_loss=0.0,
                         softcap=None, reduction="mean", return_grad=False):
    """Softmax cross-entropy of ``hidden @ weight.T + bias``, never materialising the (N, V) logits.

    With ``z = hidden @ weight.T + bias`` (``torch.nn.Linear`` layout), optionally capped as in
    Gemma 2, ``z = softcap * tanh(z / softcap)``, the value and gradients equal
    ``softmax_cross_entropy(z, labels, ignore_index=..., label_smoothing=..., z_loss=...,
    reduction=...)``: per row, ``lse = log(sum_c exp(z_c))``,
    ``loss = (1 - eps) * (lse - z[y]) + eps / V * sum_c (lse - z_c) + z_loss * lse**2``.
    The rows are processed in blocks (32 MiB of logits by default, see
    docs/linear_cross_entropy.md); each block's logits become their gradient in place and are
    consumed by the gradient products before the next block.

    Args:
        hidden: float array (N, D). NumPy runs on the CPU (NumPy's BLAS for the products),
            CuPy on the GPU (cuBLAS).
        weight: float array (V, D), as ``torch.nn.Linear.weight``.
        labels: integer array (N,), class indices in ``[0, V)`` or ``ignore_index``.
        bias: optional (V,) float array.
        ignore_index: rows with this label count 0 and are left out of the mean.
        label_smoothing: ``eps`` in [0, 1].
        z_loss: coefficient of the ``lse**2`` regulariser (>= 0).
        softcap: None, or a number > 0: logits become ``softcap * tanh(logits / softcap)``.
        reduction: ``"mean"`` (over the non-ignored rows; 0 when every row is ignored),
            ``"sum"`` or ``"none"`` (one value per row, shape (N,)).
        return_grad: also return the gradients.

    Returns:
        ``loss`` (a 0-d array for mean/sum), or ``(loss, (grad_hidden, grad_weight))``, with
        ``grad_bias`` appended when ``bias`` is given. The loss is in the inputs' float dtype
        (float64 if any is, float16 only if all are; float16 is computed in float32); each
        gradient in the dtype of its input.

    Example:
        >>> import numpy as np, fastloss
        >>> h = np.array([[1.0, 0.5], [-0.5, 2.0]], dtype=np.float32)
        >>> w = np.array([[0.5, -1.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
        >>> loss, (gh, gw) = fastloss.linear_cross_entropy(h, w, np.array([1, 2]), return_grad=True)
        >>> round(float(loss), 4), gh.shape, gw.shape
        (0.3861, (2, 2), (3, 2))
    """
    return _C.linear_cross_entropy(hidden, weight, labels, bias, ignore_index, label_smoothing, z_loss, softcap,
                                   reduction, return_grad)
