"""Slow, obviously-correct float64 NumPy references."""
import numpy as np


def log_softmax(x, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


def softmax_cross_entropy(logits, labels, weight=None, ignore_index=-100, label_smoothing=0.0, z_loss=0.0,
                          axis=-1, reduction="mean"):
    """Row by row, straight from the formulas in the docstring. Returns float64."""
    x = np.moveaxis(np.asarray(logits, dtype=np.float64), axis, -1)
    C = x.shape[-1]
    rows = x.reshape(-1, C)
    soft = np.asarray(labels).dtype.kind == "f"
    t = np.moveaxis(np.asarray(labels, dtype=np.float64), axis, -1).reshape(-1, C) if soft else \
        np.asarray(labels).reshape(-1)
    w = np.ones(C) if weight is None else np.asarray(weight, dtype=np.float64)
    eps = label_smoothing
    losses, denom = [], 0.0
    for i, row in enumerate(rows):
        lse = np.log(np.sum(np.exp(row - row.max()))) + row.max() if np.isfinite(row.max()) else \
            np.log(np.sum(np.exp(row)))
        if soft:
            tt = (1 - eps) * t[i] + eps / C
            terms = np.where(w * tt == 0, 0.0, w * tt * (lse - row))
            loss = terms.sum() + z_loss * lse ** 2
            denom += 1
        else:
            y = int(t[i])
            if y == ignore_index:
                losses.append(0.0)
                continue
            loss = (1 - eps) * w[y] * (lse - row[y])
            if eps:
                loss += eps / C * np.sum(w * (lse - row))
            loss += z_loss * lse ** 2
            denom += w[y]
        losses.append(loss)
    losses = np.array(losses, dtype=np.float64).reshape(x.shape[:-1])
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / denom if denom != 0 else 0.0


def nll_loss(log_probs, labels, weight=None, ignore_index=-100, axis=-1, reduction="mean"):
    x = np.moveaxis(np.asarray(log_probs, dtype=np.float64), axis, -1)
    C = x.shape[-1]
    rows, y = x.reshape(-1, C), np.asarray(labels).reshape(-1)
    w = np.ones(C) if weight is None else np.asarray(weight, dtype=np.float64)
    losses = np.array([0.0 if yi == ignore_index else -w[yi] * r[yi] for r, yi in zip(rows, y)])
    denom = sum(w[yi] for yi in y if yi != ignore_index)
    if reduction == "none":
        return losses.reshape(x.shape[:-1])
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / denom if denom else 0.0


def numerical_grad(f, x, h=1e-6):
    """Central finite differences of scalar f at float64 array x."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + h
        fp = f(x)
        x[idx] = old - h
        fm = f(x)
        x[idx] = old
        g[idx] = (fp - fm) / (2 * h)
    return g
