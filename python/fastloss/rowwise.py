"""Row-wise losses: softmax focal loss and truncated cross-entropy on the shared row engine (one
fused pass per row, like ``softmax_cross_entropy``), and the divergences of probability rows
(entropy, KL, Jensen-Shannon), and the multiclass hinge losses."""
from __future__ import annotations

from . import _C

__all__ = ["softmax_focal_loss", "truncated_cross_entropy", "entropy", "kl_divergence", "js_divergence",
           "multiclass_hinge_loss", "l2_loss"]


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
    return _C.softmax_focal_loss(logits, labels, alpha, gamma, ignore_index, axis, reduction, return_grad)


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
    return _C.truncated_cross_entropy(logits, labels, margin, softness, axis, ignore_index, reduction, return_grad)


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
    return _C.entropy(p, axis)


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
    return _C.kl_divergence(p, q, axis)


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
    return _C.js_divergence(p, q, axis)


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
    return _C.multiclass_hinge_loss(scores, labels, margin, p, weight, kind, axis, reduction, return_grad)


def l2_loss(pred, target, *, weight=None, axis=-1, reduction="mean", return_grad=False):
    """Euclidean (L2) distance between ``pred`` and ``target`` along ``axis``, one per row.

    For a row ``x`` of ``pred`` and ``t`` of ``target`` (along ``axis``) with weight ``w``::

        loss = w * sqrt(sum((x - t)**2))          grad = w * (x - t) / loss_unweighted

    The gradient (w.r.t. ``pred``) of a row at distance 0 is defined as 0 (finite). Huge
    differences whose squares overflow are rescaled, so a finite distance stays finite.

    Args:
        pred: float array (..., C, ...), the summed axis ``axis`` (NumPy; any strides).
        target: float array of ``pred``'s shape.
        weight: None (1), or a float array that broadcasts (NumPy rules, right-aligned) to the
            rows' shape, ``pred.shape`` without ``axis``: one factor per row. It scales the
            values, never the ``"mean"`` denominator.
        axis: the axis summed over.
        reduction: ``"mean"`` over the rows (0 when there are none), ``"sum"`` or ``"none"``
            (one value per row, shaped like ``pred`` without ``axis``).
        return_grad: also return d(loss)/d(pred).

    Returns:
        ``loss`` or ``(loss, grad)``, in the dtype of ``pred`` (float16 computed in float32).

    Example:
        >>> import numpy as np, fastloss
        >>> float(fastloss.l2_loss(np.array([[3.0, 4.0], [0.0, 0.0]]), np.zeros((2, 2)), reduction="sum"))
        5.0
    """
    return _C.l2_loss(pred, target, weight, axis, reduction, return_grad)


def dice_loss(inputs, targets, *, activation=None, smooth=1.0, squared=False, axis=None, reduction="mean",
              return_grad=False):
    """Dice loss per sample (first axis), and per class when ``axis`` names the class axis.

    With ``p = activation(inputs)`` and targets ``t``, summed over each sample's positions (every
    axis but the first and the class axis)::

        loss[n, c] = 1 - (2 * sum(p * t) + smooth) / (sum(p**k) + sum(t**k) + smooth)

    ``k = 2`` if ``squared`` else 1 (MONAI's ``DiceLoss`` with ``smooth_nr = smooth_dr = smooth``
    and ``squared_pred``). An empty prediction of an empty target scores 0; with ``smooth=0``
    both sums being 0 also gives 0 (and a zero gradient), never NaN.

    Args:
        inputs: float array (N, ...): logits for an activation, else probabilities.
        targets: float array of ``inputs``' shape (masks or probabilities), or integer class
            labels in ``[0, C)`` shaped like ``inputs`` without ``axis`` (one-hot encoded inside
            the kernel; a label outside is an ``IndexError``). Integer labels need ``axis``.
        activation: ``None``, ``"sigmoid"`` (elementwise) or ``"softmax"`` (over ``axis``;
            needs ``axis``). Applied inside the kernel; the gradient flows through it.
        smooth: finite, >= 0, added to numerator and denominator.
        squared: ``k = 2`` (squares in the denominator).
        axis: the class axis (not 0), or ``None`` for one value per sample over all its elements.
        reduction: ``"mean"`` over the values (N, or N * C with ``axis``; 0 when there are
            none), ``"sum"`` or ``"none"``: shape ``(N,)`` without ``axis``, ``(N, C)`` with it
            (MONAI's per-class layout, its trailing spatial 1s dropped).
        return_grad: also return d(loss)/d(inputs), through the activation.

    Returns:
        ``loss`` or ``(loss, grad)``, in the dtype of ``inputs`` (float16 computed in float32).

    Example:
        >>> import numpy as np, fastloss
        >>> p = np.array([[0.0, 1.0, 1.0, 0.0]])
        >>> float(fastloss.dice_loss(p, np.array([[0.0, 1.0, 0.0, 0.0]]), smooth=0.0))  # 1 - 2/3
        0.33333333333333337
        >>> logits = np.zeros((2, 3, 4, 4), np.float32)       # (N, C, H, W)
        >>> labels = np.zeros((2, 4, 4), np.int64)
        >>> fastloss.dice_loss(logits, labels, activation="softmax", axis=1, reduction="none").shape
        (2, 3)
    """
    return _C.dice_loss(inputs, targets, activation, smooth, squared, axis, reduction, return_grad)
