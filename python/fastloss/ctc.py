"""Connectionist temporal classification (CTC) loss."""
from __future__ import annotations

import numpy as np

from . import _C
from ._array import as_float_array, as_index_array, backend_of, check_reduction, desc
from .cross_entropy import _device

__all__ = ["ctc_loss"]


def _on_host(x, backend):
    return x.get() if backend.cuda and isinstance(x, backend.xp.ndarray) else x


def _host_lengths(x, name, backend):
    """Per-sample lengths as a host int64 array (CuPy lengths are copied to the host: the
    kernels size their work from them and the checks must run before any launch)."""
    x = _on_host(x, backend)
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu" and not (arr.size == 0 and not isinstance(x, np.ndarray)):
        raise TypeError(f"{name} must be integers, got {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one length per sample), got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def ctc_loss(log_probs, labels, input_lengths, label_lengths, *, blank=0, layout="TNC", from_logits=False,
             zero_infinity=False, reduction="mean", return_grad=False):
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
            ``label_lengths[b] <= S`` for padded labels). Lists are accepted.
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

    Returns:
        ``loss`` (0-d for mean/sum), or ``(loss, grad)``, in the dtype of ``log_probs``
        (float16 is computed in float32).

    Example:
        >>> import numpy as np, fastloss
        >>> lp = np.log(np.full((3, 1, 2), 0.5))
        >>> float(fastloss.ctc_loss(lp, np.array([[1]]), [3], [1], reduction="sum"))  # -log(6/8)
        0.2876820724517809
    """
    backend = backend_of(log_probs=log_probs, labels=labels, input_lengths=input_lengths,
                         label_lengths=label_lengths)
    check_reduction(reduction)
    if layout not in ("TNC", "NTC"):
        raise ValueError(f"layout must be 'TNC' or 'NTC', got {layout!r}")
    if isinstance(blank, bool) or not isinstance(blank, (int, np.integer)):
        raise TypeError(f"blank must be an integer, got {blank!r}")
    log_probs = as_float_array(log_probs, "log_probs", backend)
    unbatched = log_probs.ndim == 2  # (T, C) with labels (S,) and scalar lengths, as torch
    if unbatched:
        log_probs, layout = log_probs[:, None, :], "TNC"
        labels = labels.reshape(1, -1) if hasattr(labels, "reshape") else np.reshape(labels, (1, -1))
        input_lengths = np.reshape(_on_host(input_lengths, backend), (1,))
        label_lengths = np.reshape(_on_host(label_lengths, backend), (1,))
    if log_probs.ndim != 3:
        raise ValueError(f"log_probs must be 3-D ((T, N, C) for layout 'TNC', (N, T, C) for 'NTC'), "
                         f"got shape {log_probs.shape}")
    labels = as_index_array(labels, "labels", backend)
    if backend.cuda and labels.dtype not in (np.int32, np.int64):
        labels = labels.astype(np.int64)
    il = _host_lengths(input_lengths, "input_lengths", backend)
    ll = _host_lengths(label_lengths, "label_lengths", backend)
    N = log_probs.shape[1] if layout == "TNC" else log_probs.shape[0]
    T = log_probs.shape[0] if layout == "TNC" else log_probs.shape[1]
    C = log_probs.shape[2]
    loss = backend.empty((N,) if reduction == "none" else (), log_probs.dtype)
    grad = backend.empty(log_probs.shape, log_probs.dtype) if return_grad else None
    ws = None
    if backend.cuda:
        smax = int(ll.max()) if ll.size and ll.shape[0] == N else 0
        ws = backend.workspace(_C.ctc_workspace_bytes(T, N, C, max(smax, 0), bool(from_logits),
                                                      log_probs.dtype == np.float64))
    with _device(backend):
        _C.ctc_loss(desc(log_probs), desc(labels), desc(il), desc(ll), int(blank), layout, bool(from_logits),
                    bool(zero_infinity), reduction, desc(loss), desc(grad), backend.cuda, backend.stream(),
                    desc(ws))
    if unbatched:
        loss = loss.reshape(())
        grad = grad[:, 0, :] if grad is not None else None
    return (loss, grad) if grad is not None else loss
