"""Row-wise losses: softmax focal loss and truncated cross-entropy on the shared row engine (one
fused pass per row, like ``softmax_cross_entropy``), and the divergences of probability rows
(entropy, KL, Jensen-Shannon), and the multiclass hinge losses."""
from __future__ import annotations

from . import _C

__all__ = ["softmax_focal_loss", "truncated_cross_entropy", "entropy", "kl_divergence", "js_divergence",
           "multiclass_hinge_loss", "l2_loss", "dice_loss", "tempered_softmax", "bi_tempered_logistic_loss",
           "bi_tempered_binary_logistic_loss"]


def softmax_focal_loss(logits, labels, *, alpha=None, gamma=2.0, ignore_index=-100, axis=-1, reduction="mean",
                       return_grad=False, grad_out=None):
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
        grad_out: optional preallocated gradient (shape and dtype of ``logits``; ``logits`` itself for
            an in-place gradient; any other overlap with an input is a ValueError); implies
            ``return_grad``.

    Returns:
        ``loss`` or ``(loss, grad)``, in the dtype of ``logits`` (float16 computed in float32).

    Example:
        >>> import numpy as np, fastloss
        >>> x = np.array([[2.0, 0.5, -1.0]])
        >>> round(float(fastloss.softmax_focal_loss(x, np.array([0]), gamma=2.0)), 6)
        0.011093
    """
    return _C.softmax_focal_loss(logits, labels, alpha, gamma, ignore_index, axis, reduction, return_grad, grad_out)


def truncated_cross_entropy(logits, labels, *, margin=0.6, softness=None, axis=-1, ignore_index=-100, reduction="mean",
                            return_grad=False, grad_out=None):
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
        axis, ignore_index, reduction, return_grad, grad_out: as in ``softmax_cross_entropy``
            (``grad_out`` may be ``logits`` itself, for an in-place gradient).

    Example:
        >>> import numpy as np, fastloss
        >>> x = np.array([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
        >>> round(float(fastloss.truncated_cross_entropy(x, np.array([0, 0]), reduction="sum")), 6)
        3.094923
    """
    return _C.truncated_cross_entropy(logits, labels, margin, softness, axis, ignore_index, reduction, return_grad,
                                      grad_out)


def entropy(p, *, base=None, axis=-1, return_grad=False, grad_out=None):
    """Shannon entropy of each distribution along ``axis``.

    ``p`` is normalised first (``pk = p / sum(p)``), then ``H = -sum(pk * log(pk)) / log(base)``
    (natural log when ``base`` is None) with ``0 * log 0 = 0``; a negative entry of ``pk`` gives
    ``-inf``, an empty row 0. Matches ``scipy.stats.entropy(p, base=base, axis=axis)``. Sums are
    accumulated in float64 on the CPU. Returns an array shaped like ``p`` without ``axis`` (0-d
    for 1-D ``p``), in ``p``'s dtype.

    With ``return_grad=True`` returns ``(H, grad)``: ``grad`` is the gradient of ``H.sum()``
    with respect to ``p`` (through the normalisation), ``(-log(pk) - H) / (sum(p) * log(base))``;
    a zero entry takes its limit ``+inf``. ``grad_out`` may name the array to write it into
    (``p`` itself for an in-place gradient).

    Args:
        p: float array (any strides).
        base: None (natural log) or a finite number > 0 other than 1 (``ValueError`` otherwise).
        axis: the axis summed over.

    Example:
        >>> import numpy as np, fastloss
        >>> round(float(fastloss.entropy(np.array([0.5, 0.5, 0.0]))), 6)  # log 2
        0.693147
        >>> round(float(fastloss.entropy(np.array([0.5, 0.5]), base=2)), 6)  # one bit
        1.0
    """
    return _C.entropy(p, base, axis, return_grad, grad_out)


def kl_divergence(p, q, *, axis=-1, return_grad=False):
    """Kullback-Leibler divergence ``sum(pk * log(pk / qk))`` along ``axis``.

    Both inputs are normalised to sum 1 along ``axis`` first; ``pk = 0`` contributes 0,
    ``qk = 0 < pk`` (or a negative entry) gives ``inf``, an empty row 0. Matches
    ``scipy.stats.entropy(p, q, axis=axis)``. ``p`` and ``q``: same shape and dtype.

    With ``return_grad=True`` returns ``(KL, (grad_p, grad_q))``, the gradients of ``KL.sum()``
    through the normalisations: ``grad_p = (log(pk / qk) - KL) / sum(p)`` and
    ``grad_q = (1 - pk / qk) / sum(q)``; a zero ``pk`` takes the limits (``grad_p = -inf``,
    ``pk / qk = 0``).

    Example:
        >>> import numpy as np, fastloss
        >>> round(float(fastloss.kl_divergence(np.array([0.5, 0.5]), np.array([0.9, 0.1]))), 6)
        0.510826
    """
    return _C.kl_divergence(p, q, axis, return_grad)


def js_divergence(p, q, *, axis=-1, return_grad=False):
    """Jensen-Shannon divergence (natural log) along ``axis``:
    ``(KL(pk || m) + KL(qk || m)) / 2`` with ``m = (pk + qk) / 2`` and both inputs normalised to
    sum 1. Equals ``scipy.spatial.distance.jensenshannon(p, q, axis=axis) ** 2``; symmetric,
    between 0 and ``log 2`` (clamped at 0 against rounding).

    With ``return_grad=True`` returns ``(JS, (grad_p, grad_q))``, the gradients of ``JS.sum()``:
    ``grad_p = (log(pk / m) - KL(pk || m)) / (2 sum(p))`` and the same with ``q``; a zero entry
    takes the limit (``-inf``, or ``log 2`` where the other input is 0 too).

    Example:
        >>> import numpy as np, fastloss
        >>> round(float(fastloss.js_divergence(np.array([1.0, 0.0]), np.array([0.0, 1.0]))), 6)  # log 2
        0.693147
    """
    return _C.js_divergence(p, q, axis, return_grad)


def multiclass_hinge_loss(scores, labels, *, margin=1.0, p=1, weight=None, kind="weston_watkins", axis=-1,
                          reduction="mean", return_grad=False, grad_out=None):
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
        grad_out: optional preallocated gradient (shape and dtype of ``scores``; ``scores`` itself for
            an in-place gradient; any other overlap with an input is a ValueError); implies
            ``return_grad``.

    Example:
        >>> import numpy as np, fastloss
        >>> s = np.array([[0.1, 0.2, 0.4, 0.8]])
        >>> round(float(fastloss.multiclass_hinge_loss(s, np.array([3]))), 6)  # torch's example
        0.325
    """
    return _C.multiclass_hinge_loss(scores, labels, margin, p, weight, kind, axis, reduction, return_grad, grad_out)


def l2_loss(pred, target, *, weight=None, axis=-1, reduction="mean", return_grad=False, grad_out=None):
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
        grad_out: optional preallocated gradient (shape and dtype of ``pred``; ``pred`` itself for
            an in-place gradient; any other overlap with an input is a ValueError); implies
            ``return_grad``.

    Returns:
        ``loss`` or ``(loss, grad)``, in the dtype of ``pred`` (float16 computed in float32).

    Example:
        >>> import numpy as np, fastloss
        >>> float(fastloss.l2_loss(np.array([[3.0, 4.0], [0.0, 0.0]]), np.zeros((2, 2)), reduction="sum"))
        5.0
    """
    return _C.l2_loss(pred, target, weight, axis, reduction, return_grad, grad_out)


def dice_loss(inputs, targets, *, activation=None, smooth=1.0, squared=False, axis=None, reduction="mean",
              return_grad=False, jaccard=False, batch=False, smooth_nr=None, smooth_dr=None,
              include_background=True, weight=None, grad_out=None):
    """Dice loss per sample (first axis), and per class when ``axis`` names the class axis.

    With ``p = activation(inputs)`` and targets ``t``, summed over each sample's positions (every
    axis but the first and the class axis)::

        I = sum(p * t),  P = sum(p**k),  T = sum(t**k)
        loss[n, c] = w[c] * (1 - (2 * I + smooth_nr) / (P + T + smooth_dr))
        jaccard:     w[c] * (1 - (2 * I + smooth_nr) / (2 * (P + T - I) + smooth_dr))

    ``k = 2`` if ``squared`` else 1. The options are MONAI's ``DiceLoss`` ones (``squared`` is
    its ``squared_pred``; MONAI's default smoothing is ``1e-5``, fastloss's ``smooth=1.0``).
    An empty prediction of an empty target scores 0; with no smoothing both sums being 0 also
    gives 0 (and a zero gradient), never NaN.

    Args:
        inputs: float array (N, ...): logits for an activation, else probabilities.
        targets: float (or bool) array of ``inputs``' shape (masks or probabilities), or integer
            class labels in ``[0, C)`` shaped like ``inputs`` without ``axis`` (one-hot encoded
            inside the kernel; a label outside is an ``IndexError``). Integer labels need ``axis``.
        activation: ``None``, ``"sigmoid"`` (elementwise) or ``"softmax"`` (over ``axis``;
            needs ``axis``). Applied inside the kernel; the gradient flows through it.
        smooth: finite, >= 0, the default of ``smooth_nr`` and ``smooth_dr``.
        squared: ``k = 2`` (squares in the denominator).
        axis: the class axis (not 0), or ``None`` for one value per sample over all its elements.
        reduction: ``"mean"`` over the values (0 when there are none; weights scale values, not
            the count, as MONAI), ``"sum"`` or ``"none"``: shape ``(N,)`` without ``axis``,
            ``(N, C)`` with it; with ``batch``, ``()`` and ``(C,)``; ``C`` less one without the
            background. MONAI's ``"none"`` keeps trailing spatial 1s: ``(N, C, 1, ...)``, and
            ``(C, 1, ...)`` with ``batch``; ``loss.reshape`` of this one gives it.
        return_grad: also return d(loss)/d(inputs), through the activation.
        jaccard: the Jaccard (IoU) form of the denominator.
        batch: sum ``I``, ``P``, ``T`` over the samples before the ratio (one value per class).
        smooth_nr: added to the numerator (``None``: ``smooth``); finite, >= 0.
        smooth_dr: added to the denominator (``None``: ``smooth``); finite, >= 0.
        include_background: ``False`` leaves class 0 out of the loss (needs ``axis``; the
            softmax still runs over every class; ignored with one class, as MONAI).
        weight: per-class weights ``w``: a scalar or one per class counted (``C``, or ``C - 1``
            without the background), as MONAI's ``weight``; it also scales the gradient.
        grad_out: optional preallocated gradient (shape and dtype of ``inputs``; ``inputs``
            itself for an in-place gradient; any other overlap with an input is a ValueError);
            implies ``return_grad``.

    Returns:
        ``loss`` or ``(loss, grad)``, in the dtype of ``inputs`` (float16 computed in float32).

    Example:
        >>> import numpy as np, fastloss
        >>> p = np.array([[0.0, 1.0, 1.0, 0.0]])
        >>> float(fastloss.dice_loss(p, np.array([[0.0, 1.0, 0.0, 0.0]]), smooth=0.0))  # 1 - 2/3
        0.33333333333333337
        >>> float(fastloss.dice_loss(p, np.array([[0.0, 1.0, 0.0, 0.0]]), smooth=0.0, jaccard=True))  # 1 - 1/2
        0.5
        >>> logits = np.zeros((2, 3, 4, 4), np.float32)       # (N, C, H, W)
        >>> labels = np.zeros((2, 4, 4), np.int64)
        >>> fastloss.dice_loss(logits, labels, activation="softmax", axis=1, reduction="none").shape
        (2, 3)
        >>> fastloss.dice_loss(logits, labels, activation="softmax", axis=1, reduction="none",
        ...                    batch=True, include_background=False).shape
        (2,)
    """
    return _C.dice_loss(inputs, targets, activation, smooth, squared, axis, reduction, return_grad, jaccard, batch,
                        smooth_nr, smooth_dr, include_background, weight, grad_out)




def tempered_softmax(activations, t, *, num_iters=5, axis=-1):
    """Tempered softmax (Amid et al., 2019): the heavy-tailed (``t > 1``) or finite-support
    (``t < 1``) generalisation of the softmax along ``axis``, as google-research's bi-tempered-loss
    reference computes it::

        exp_t(u) = max(1 + (1-t) u, 0) ** (1 / (1-t))         (exp at t = 1)
        p = exp_t(x - norm(x))

    ``norm`` makes each row sum to 1: ``num_iters`` fixed-point steps for ``t > 1``, ``num_iters``
    bisection steps for ``t < 1`` (the reference's algorithms, so the sum is 1 up to their
    convergence: within 1e-5 at ``num_iters=20``), the exact softmax at ``t = 1``.

    Args:
        activations: float array (..., C, ...), class axis ``axis`` (any strides).
        t: temperature, ``> 0`` (``ValueError`` otherwise).
        num_iters: normalisation steps, ``>= 1``.
        axis: the class axis.

    Returns:
        probabilities shaped like ``activations``, in its dtype (float16 computed in float32).

    Example:
        >>> import numpy as np, fastloss
        >>> p = fastloss.tempered_softmax(np.array([[-0.5, 0.1, 2.0]]), 4.0)  # the reference's test
        >>> np.round(p, 4)
        array([[0.3205, 0.3271, 0.3523]])
    """
    return _C.tempered_softmax(activations, t, num_iters, axis)


def bi_tempered_logistic_loss(activations, labels, *, t1, t2, label_smoothing=0.0, num_iters=5, axis=-1,
                              reduction="mean", return_grad=False, grad_out=None):
    """Bi-tempered logistic loss (Amid et al., 2019), fused with its gradient; matches
    google-research's bi-tempered-loss TensorFlow reference (``tensorflow/loss.py``).

    For a row of ``C`` activations ``x`` (along ``axis``) with label distribution ``y`` and
    ``p = tempered_softmax(x, t2, num_iters)``::

        log_t(u) = (u**(1-t) - 1) / (1-t)                      (log at t = 1)
        loss = sum_c y_c (log_t(y_c + 1e-10, t1) - log_t(p_c, t1)) - (y_c**(2-t1) - p_c**(2-t1)) / (2-t1)

    ``t1 < 1`` bounds the loss (robust to label noise), ``t2 > 1`` gives heavy tails. The
    gradient is the reference's analytic one (not the derivative of the normalisation's
    iterations): ``d - escort * sum(d)`` with ``d = (p - y) * p**(t2-t1)`` and
    ``escort = p**t2 / sum(p**t2)``. At ``t1 = t2 = 1`` the loss is exactly softmax
    cross-entropy ``-sum_c y_c log softmax(x)_c`` (as in the reference), and runs that kernel.

    Args:
        activations: float array (..., C, ...), class axis ``axis`` (NumPy or CuPy; any strides).
        labels: probabilities shaped like ``activations``, or integer classes shaped like
            ``activations`` without the class axis (the reference's sparse form), in ``[0, C)``.
        t1, t2: temperatures, ``> 0`` (``ValueError`` otherwise).
        label_smoothing: ``ls`` in ``[0, 1)``: labels become ``(1 - C/(C-1) ls) y + ls/(C-1)``
            (integer labels: their one-hot rows), as the reference smooths; needs ``C >= 2``.
        num_iters: normalisation steps, ``>= 1`` (fixed point for ``t2 > 1``, bisection for ``t2 < 1``).
        axis: the class axis.
        reduction: ``"mean"`` over the rows, ``"sum"`` or ``"none"`` (one value per row).
        return_grad: also return d(loss)/d(activations).
        grad_out: optional preallocated gradient (shape and dtype of ``activations``; ``activations`` itself for
            an in-place gradient; any other overlap with an input is a ValueError); implies
            ``return_grad``.

    Returns:
        ``loss`` or ``(loss, grad)``, in the dtype of ``activations`` (float16 computed in float32).

    Example:
        >>> import numpy as np, fastloss
        >>> x = np.array([[-0.5, 0.1, 2.0], [0.1, 1.5, -5.0], [4.0, -3.0, -6.0]])
        >>> y = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1], [0.2, 0.8, 0.0]])
        >>> np.round(fastloss.bi_tempered_logistic_loss(x, y, t1=0.5, t2=1.5, reduction="none"), 5)
        array([0.02302, 0.18973, 0.93875])
    """
    return _C.bi_tempered_logistic_loss(activations, labels, t1, t2, label_smoothing, num_iters, axis, reduction,
                                        return_grad, grad_out)


def bi_tempered_binary_logistic_loss(activations, targets, *, t1, t2, label_smoothing=0.0, num_iters=5,
                                     reduction="mean", return_grad=False, grad_out=None):
    """Binary bi-tempered logistic loss: each element ``x`` of ``activations`` is the two-class
    row ``[0, x]`` of ``bi_tempered_logistic_loss`` with labels ``[1 - t, t]`` (the reference's
    ``bi_tempered_binary_logistic_loss``). At ``t1 = t2 = 1`` it is the logistic loss
    ``softplus(x) - t x`` (``binary_cross_entropy_with_logits``).

    Args:
        activations: float array of any shape (the logit of class 1).
        targets: float array of the same shape, the probability of class 1.
        t1, t2, label_smoothing, num_iters: as in ``bi_tempered_logistic_loss`` (``C = 2``).
        reduction: ``"mean"`` over the elements, ``"sum"`` or ``"none"`` (shaped like ``activations``).
        return_grad: also return d(loss)/d(activations).
        grad_out: optional preallocated gradient (shape and dtype of ``activations``; ``activations`` itself for
            an in-place gradient; any other overlap with an input is a ValueError); implies
            ``return_grad``.

    Example:
        >>> import numpy as np, fastloss
        >>> fastloss.bi_tempered_binary_logistic_loss(np.zeros(2), np.array([1.0, 0.0]), t1=1.0, t2=1.0,
        ...                                           reduction="none").round(6)  # log 2, the reference's test
        array([0.693147, 0.693147])
    """
    return _C.bi_tempered_binary_logistic_loss(activations, targets, t1, t2, label_smoothing, num_iters, reduction,
                                               return_grad, grad_out)
