"""Connectionist temporal classification (CTC) loss.

The wrapper names the keywords and carries the docstring; arguments are read and checked in
the native module (csrc/bindings/bind_ctc.cpp).
"""
from __future__ import annotations

from . import _C

__all__ = ["ctc_loss"]


def ctc_loss(log_probs, labels, input_lengths, label_lengths, *, blank=0, layout="TNC", from_logits=False,
             zero_infinity=False, reduction="mean", return_grad=False, grad_out=None):
    """CTC loss with its gradient, from one forward and one backward sweep per sample.

    Matches ``torch.nn.functional.ctc_loss``. For sample ``b`` the loss is
    ``-log sum_{paths} prod_t p[t, b, path_t]`` over all alignments of its first
    ``label_lengths[b]`` labels to its first ``input_lengths[b]`` frames (blanks between and
    around the labels, repeats collapsed).

    Args:
        log_probs: float array (T, N, C) for ``layout="TNC"`` (PyTorch's), (N, T, C) for
            ``"NTC"``, or unbatched (T, C) with labels (S,) and scalar lengths (as PyTorch); log-probabilities, or unnormalised logits with ``from_logits=True``
            (log-softmax over C is then applied inside). Any strides. NumPy runs on the CPU,
            CuPy on the GPU.
        labels: integers, padded (N, S) or the concatenation of all samples' labels (1-D).
            Labels must be in [0, C) and differ from ``blank``.
        input_lengths, label_lengths: (N,) integers (``0 <= input_lengths[b] <= T``,
            ``label_lengths[b] <= S`` for padded labels). Lists are accepted, and a 0-d value
            for a batch of one (as PyTorch).
        blank: the blank class, in [0, C).
        from_logits: input is logits; the gradient is then w.r.t. the logits,
            ``softmax - posterior`` (times the reduction's scale).
        zero_infinity: impossible alignments give loss 0 and a zero gradient instead of inf
            (and a NaN gradient, as PyTorch).
        reduction: ``"mean"`` (each loss divided by ``max(label_length, 1)``, then averaged
            over the batch), ``"sum"`` or ``"none"`` (shape (N,)).
        return_grad: also return the gradient, same shape/dtype/layout as ``log_probs``:
            the true partial derivative w.r.t. ``log_probs`` (``-posterior``; rows past
            ``input_lengths`` are 0), or w.r.t. the logits with ``from_logits``.
        grad_out: optional preallocated gradient (shape and dtype of ``log_probs``; ``log_probs`` itself for
            an in-place gradient; any other overlap with an input is a ValueError); implies
            ``return_grad``.

    Returns:
        ``loss`` (0-d for mean/sum), or ``(loss, grad)``, in the dtype of ``log_probs``
        (float16 is computed in float32).

    Example:
        >>> import numpy as np, fastloss
        >>> lp = np.log(np.full((3, 1, 2), 0.5))
        >>> float(fastloss.ctc_loss(lp, np.array([[1]]), [3], [1], reduction="sum"))  # -log(6/8)
        0.2876820724517809
    """
    return _C.ctc_loss(log_probs, labels, input_lengths, label_lengths, blank, layout, from_logits, zero_infinity,
                       reduction, return_grad, grad_out)
