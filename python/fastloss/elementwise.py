"""Elementwise losses: each output element depends on one prediction and one target.

All eleven run on one engine (``csrc/cpu/elementwise.cpp``, ``csrc/cuda/elementwise.cu``):
loss and gradient in one pass, any strides, float16/32/64, ``weight`` broadcast to the
prediction's shape, reductions accumulated in float64 on the CPU. ``"mean"`` divides by the
element count (weights scale values, never the denominator); ``"none"`` returns one value per
element. With ``return_grad=True`` a function returns ``(loss, grad)``, ``grad`` the derivative
of the (reduced; summed for ``"none"``) loss with respect to the first argument; ``grad_out``
may name a preallocated gradient array, the first argument itself included (in place).
"""
from __future__ import annotations

from . import _C

__all__ = [
    "sigmoid_cross_entropy", "balanced_sigmoid_cross_entropy", "sigmoid_focal_loss",
    "truncated_sigmoid_cross_entropy", "hinge_loss", "kl_div",
    "mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "log_cosh_loss",
]


def sigmoid_cross_entropy(logits, targets, *, weight=None, pos_weight=None, reduction="mean", return_grad=False,
                          grad_out=None):
    """Binary cross-entropy on logits, fused with its gradient.

    With ``s = sigmoid(x)``, ``c = pos_weight`` (1 if None) and ``w = weight`` (1 if None)::

        loss = w * (c * t * softplus(-x) + (1 - t) * softplus(x))
        dloss/dx = w * ((1 - t) * s - c * t * (1 - s))

    Matches ``torch.nn.functional.binary_cross_entropy_with_logits``; exact for logits of
    magnitude 1e9 and for +-inf (a term whose coefficient is 0 counts 0, never 0 * inf).

    Args:
        logits: float array, any shape. NumPy runs on the CPU, CuPy on the GPU.
        targets: values in [0, 1], shape of ``logits``.
        weight: optional, broadcasts to the shape of ``logits``.
        pos_weight: optional weight of the positive term, broadcasts to the shape of
            ``logits`` (usually one per class, shape ``(C,)`` for the last axis).
        reduction: ``"mean"`` (over all elements), ``"sum"`` or ``"none"``.
        return_grad: also return d(loss)/d(logits).
        grad_out: optional preallocated gradient (may be ``logits`` itself).

    Returns:
        ``loss`` (0-d for mean/sum), or ``(loss, grad)``, in ``logits``' array library and dtype.

    Example:
        >>> import numpy as np, fastloss
        >>> x = np.array([0.0, 2.0, -1.0]); t = np.array([0.0, 1.0, 1.0])
        >>> round(float(fastloss.sigmoid_cross_entropy(x, t)), 4)
        0.7111
    """
    return _C.sigmoid_cross_entropy(logits, targets, weight, pos_weight, reduction, return_grad, grad_out)


def balanced_sigmoid_cross_entropy(logits, targets, *, beta=None, reduction="mean", return_grad=False,
                                   grad_out=None):
    """Class-balanced binary cross-entropy (HED):
    ``loss = -(beta * t * log s + (1 - beta) * (1 - t) * log(1 - s))``, ``s = sigmoid(x)``.

    ``beta=None`` takes the fraction of negatives (``t == 0``) in the whole call, computed in
    a first pass and held constant for the gradient ``beta * t * (s - 1) + (1 - beta) * (1 - t) * s``.
    An explicit ``beta`` must be in [0, 1]. Arguments as for ``sigmoid_cross_entropy``.

    Example:
        >>> import numpy as np, fastloss
        >>> x = np.array([0.0, 0.0, 0.0, 0.0]); t = np.array([0.0, 0.0, 0.0, 1.0])
        >>> round(float(fastloss.balanced_sigmoid_cross_entropy(x, t)), 4)  # beta = 0.75: (3 * 0.25 + 0.75) * log 2 / 4
        0.2599
    """
    return _C.balanced_sigmoid_cross_entropy(logits, targets, beta, reduction, return_grad, grad_out)


def sigmoid_focal_loss(logits, targets, *, alpha=0.25, gamma=2.0, reduction="mean", return_grad=False,
                       grad_out=None):
    """Focal loss (RetinaNet), as ``torchvision.ops.sigmoid_focal_loss``:

        p_t = s * t + (1 - s) * (1 - t),  s = sigmoid(x)
        loss = alpha_t * (1 - p_t) ** gamma * BCE_with_logits(x, t)
        alpha_t = alpha * t + (1 - alpha) * (1 - t)   (1 when alpha < 0)

    Computed in log space from one ``exp(-|x|)``: value and gradient are finite at logits of
    +-100 for any ``gamma >= 0`` (``gamma < 0`` is a ValueError). ``gamma=0, alpha<0`` equals
    ``sigmoid_cross_entropy``. Default reduction ``"mean"`` (torchvision's is ``"none"``).

    Example:
        >>> import numpy as np, fastloss
        >>> x = np.array([3.0, -2.0]); t = np.array([1.0, 0.0])
        >>> round(float(fastloss.sigmoid_focal_loss(x, t, reduction="sum")), 6)
        0.00138
    """
    return _C.sigmoid_focal_loss(logits, targets, alpha, gamma, reduction, return_grad, grad_out)


def truncated_sigmoid_cross_entropy(logits, targets, *, margin=0.6, softness=None, reduction="mean",
                                    return_grad=False, grad_out=None):
    """Binary cross-entropy counted only where ``p_t < margin``, ``p_t = s`` for ``t = 1`` and
    ``1 - s`` for ``t = 0`` (``t * s + (1 - t) * (1 - s)`` in general).

    Hard truncation (``softness=None``): the factor ``[p_t < margin]`` is a constant for the
    gradient. With ``softness=K > 0`` the factor is ``sigmoid(K * (margin - p_t))`` and the
    gradient flows through it. ``margin`` must be in [0, 1]. ``"mean"`` divides by every
    element, truncated or not.

    Example:
        >>> import numpy as np, fastloss
        >>> x = np.array([3.0, -0.5]); t = np.array([1.0, 1.0])
        >>> round(float(fastloss.truncated_sigmoid_cross_entropy(x, t, reduction="sum")), 4)  # first is confident
        0.9741
    """
    return _C.truncated_sigmoid_cross_entropy(logits, targets, margin, softness, reduction, return_grad, grad_out)


def hinge_loss(scores, labels, *, margin=1.0, squared=False, weight=None, reduction="mean", return_grad=False,
               grad_out=None):
    """Binary hinge loss ``w * max(0, margin - y * s)`` (squared if ``squared``).

    ``labels`` in {-1, +1} or {0, 1} (0 means -1), integer, bool or float; an array mixing -1
    and 0, or holding any other value, is a ValueError naming the first offending position.
    Gradient ``-w * y`` (``-2 * w * y * max(0, margin - y * s)`` squared) where the margin is
    violated. ``weight`` (optional) broadcasts to ``scores``' shape and scales each element, as
    in the regression losses (``"mean"`` still divides by the element count).

    Example:
        >>> import numpy as np, fastloss
        >>> float(fastloss.hinge_loss(np.array([0.5, 2.0, -1.0]), np.array([1, 1, 0]), reduction="sum"))
        0.5
    """
    return _C.hinge_loss(scores, labels, margin, squared, weight, reduction, return_grad, grad_out)


def kl_div(input, target, *, log_target=False, weight=None, reduction="mean", return_grad=False, grad_out=None):
    """Kullback-Leibler divergence as ``torch.nn.functional.kl_div`` (``input`` holds
    log-probabilities): ``loss = t * (log t - input)``, or ``exp(t) * (t - input)`` with
    ``log_target``. A zero target (``-inf`` with ``log_target``) contributes 0 and gradient
    ``-t`` = 0. ``reduction`` also takes ``"batchmean"`` (sum / ``input.shape[0]``); ``"mean"``
    divides by the element count, as PyTorch. ``weight`` (optional) broadcasts to ``input``'s
    shape and scales each element's loss and gradient, as in the regression losses (never the
    denominator).

    Example:
        >>> import numpy as np, fastloss
        >>> logq = np.log(np.array([[0.5, 0.5]])); p = np.array([[1.0, 0.0]])
        >>> round(float(fastloss.kl_div(logq, p, reduction="batchmean")), 6)  # log 2
        0.693147
    """
    return _C.kl_div(input, target, log_target, weight, reduction, return_grad, grad_out)


def mse_loss(pred, target, *, weight=None, reduction="mean", return_grad=False, grad_out=None):
    """Squared error ``w * (pred - target)**2``, as ``torch.nn.functional.mse_loss``; gradient
    ``2 * w * (pred - target)`` (divided by the element count for ``"mean"``). ``weight``
    broadcasts to ``pred``'s shape.

    Example:
        >>> import numpy as np, fastloss
        >>> float(fastloss.mse_loss(np.array([1.0, 2.0]), np.array([0.0, 0.0])))
        2.5
    """
    return _C.mse_loss(pred, target, weight, reduction, return_grad, grad_out)


def l1_loss(pred, target, *, weight=None, reduction="mean", return_grad=False, grad_out=None):
    """Absolute error ``w * |pred - target|``, as ``torch.nn.functional.l1_loss`` (``"sum"`` is
    the L1 norm); gradient ``w * sign(pred - target)``, 0 where they are equal.

    Example:
        >>> import numpy as np, fastloss
        >>> float(fastloss.l1_loss(np.array([1.0, -2.0]), np.array([0.0, 0.0]), reduction="sum"))
        3.0
    """
    return _C.l1_loss(pred, target, weight, reduction, return_grad, grad_out)


def huber_loss(pred, target, *, weight=None, delta=1.0, reduction="mean", return_grad=False, grad_out=None):
    """Huber loss, as ``torch.nn.functional.huber_loss``: with ``r = pred - target``,
    ``0.5 * r**2`` where ``|r| < delta``, else ``delta * (|r| - 0.5 * delta)``; gradient
    ``clip(r, -delta, delta)``. ``delta <= 0`` is a ValueError.

    Example:
        >>> import numpy as np, fastloss
        >>> float(fastloss.huber_loss(np.array([0.5, 3.0]), np.array([0.0, 0.0]), reduction="sum"))
        2.625
    """
    return _C.huber_loss(pred, target, weight, delta, reduction, return_grad, grad_out)


def smooth_l1_loss(pred, target, *, weight=None, beta=1.0, reduction="mean", return_grad=False, grad_out=None):
    """Smooth L1, as ``torch.nn.functional.smooth_l1_loss``: ``0.5 * r**2 / beta`` where
    ``|r| < beta``, else ``|r| - 0.5 * beta``; ``beta=0`` is exactly ``l1_loss``, ``beta < 0``
    a ValueError.

    Example:
        >>> import numpy as np, fastloss
        >>> float(fastloss.smooth_l1_loss(np.array([0.5, 3.0]), np.array([0.0, 0.0]), reduction="sum"))
        2.625
    """
    return _C.smooth_l1_loss(pred, target, weight, beta, reduction, return_grad, grad_out)


def log_cosh_loss(pred, target, *, weight=None, reduction="mean", return_grad=False, grad_out=None):
    """``log(cosh(pred - target))``, computed as ``|r| + log1p(exp(-2|r|)) - log 2``: finite
    for any finite residual (about ``|r| - log 2`` for large ones); gradient ``tanh(r)``.

    Example:
        >>> import numpy as np, fastloss
        >>> round(float(fastloss.log_cosh_loss(np.array([1e4]), np.array([0.0]))), 4)
        9999.3069
    """
    return _C.log_cosh_loss(pred, target, weight, reduction, return_grad, grad_out)
