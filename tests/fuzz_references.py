"""Float64 references for the fuzz harness's differential check (tools/fuzz.py).

`REFERENCES[name](args)` computes what `fastloss.<name>(**args)` should return, in float64 (from
torch autograd, scipy, rapidfuzz or the formulas), or None where the reference does not apply
to these arguments (sizes 0, non-finite inputs: their rules are tested in
test_no_silent_wrong_answers.py). The harness compares a successful call's result with it at
the output dtype's tolerance. A function without an entry is checked against its contiguous
copies only.
"""
from __future__ import annotations

import numpy as np

REDUCE = {"mean": lambda v: v.mean(), "sum": lambda v: v.sum(), "none": lambda v: v}


def _arrays_ok(args, names):
    """Every named argument present as an array is non-empty and finite."""
    for n in names:
        v = args.get(n)
        if v is None:
            continue
        a = np.asarray(v)
        if a.dtype.kind not in "fiub" or a.size == 0 or (a.dtype.kind == "f" and not np.all(np.isfinite(a))):
            return False
    return True


def _torch():
    import torch
    return torch


def _tensor(v, grad=False):
    torch = _torch()
    return torch.tensor(np.asarray(v, dtype=np.float64), requires_grad=grad)


def _loss_and_grad(x, loss, args):
    """fastloss's return for a torch loss of leaf x: loss, or (loss, d(sum of loss)/dx)."""
    want_grad = args.get("return_grad") or args.get("grad_out") is not None
    value = loss.detach().numpy()
    if not want_grad:
        return value
    (g,) = _torch().autograd.grad(loss.sum(), (x,))
    return value, g.numpy()


def _elementwise(per_element, first, second, extra=()):
    """A loss of (first, second) applied per element, times a broadcast weight, then reduced."""
    def ref(args):
        if not _arrays_ok(args, (first, second, "weight") + tuple(extra)):
            return None
        x, t = _tensor(args[first], True), _tensor(args[second])
        if x.shape != t.shape:
            return None
        v = per_element(x, t, args)
        if args.get("weight") is not None:
            v = v * _tensor(args["weight"])
        if v.shape != x.shape:
            return None
        return _loss_and_grad(x, REDUCE[args.get("reduction", "mean")](v), args)
    return ref


def _huber(x, t, args):
    d, r = args.get("delta", 1.0), (x - t).abs()
    return _torch().where(r < d, 0.5 * r * r, d * (r - 0.5 * d))


def _smooth_l1(x, t, args):
    b, r = args.get("beta", 1.0), (x - t).abs()
    return r if b == 0 else _torch().where(r < b, 0.5 * r * r / b, r - 0.5 * b)


def _bce(x, t, args):
    torch = _torch()
    pw = args.get("pos_weight")
    pw = torch.ones(()) if pw is None else _tensor(pw)
    # -(pw t log s(x) + (1 - t) log s(-x)), softplus form: exact for large |x|
    return pw * t * torch.nn.functional.softplus(-x) + (1 - t) * torch.nn.functional.softplus(x)


def _log_cosh(x, t, args):
    torch = _torch()
    r = x - t
    return torch.logaddexp(r, -r) - np.log(2.0)


def softmax_cross_entropy(args):
    torch = _torch()
    if not _arrays_ok(args, ("logits", "labels", "weight")) or args.get("z_loss", 0.0):
        return None
    logits = np.asarray(args["logits"])
    if logits.ndim == 0 or logits.shape[args.get("axis", -1)] == 0:
        return None
    axis = args.get("axis", -1) % logits.ndim
    x = _tensor(logits, True)
    xm = torch.movedim(x, axis, -1).reshape(-1, logits.shape[axis])
    labels = np.asarray(args["labels"])
    weight = None if args.get("weight") is None else _tensor(args["weight"])
    red = args.get("reduction", "mean")
    if labels.dtype.kind == "f":
        y = torch.movedim(_tensor(labels), axis, -1).reshape(xm.shape)
    else:
        ignore = args.get("ignore_index", -100)
        flat = labels.reshape(-1)
        if np.all(flat == ignore):
            return None  # torch's mean is NaN there, fastloss's 0 (the contract's rule)
        y = torch.tensor(flat.astype(np.int64))
    loss = torch.nn.functional.cross_entropy(xm, y, weight=weight, ignore_index=args.get("ignore_index", -100),
                                             label_smoothing=args.get("label_smoothing", 0.0), reduction=red)
    if red == "none":
        shape = list(logits.shape)
        del shape[axis]
        loss = loss.reshape(shape)
    return _loss_and_grad(x, loss, args)


def _divergence(kind):
    def ref(args):
        import scipy.special
        import scipy.stats
        if not _arrays_ok(args, ("p", "q")) or args.get("return_grad"):
            return None
        p = np.asarray(args["p"], np.float64)
        axis = args.get("axis", -1)
        if p.ndim == 0:
            return None
        with np.errstate(all="ignore"):
            if kind == "entropy":
                return scipy.stats.entropy(p, base=args.get("base"), axis=axis)
            q = np.asarray(args["q"], np.float64)
            if kind == "kl":
                return scipy.stats.entropy(p, q, axis=axis)
            pk, qk = p / p.sum(axis, keepdims=True), q / q.sum(axis, keepdims=True)
            m = (pk + qk) / 2
            return np.maximum(0.5 * (scipy.special.rel_entr(pk, m).sum(axis) + scipy.special.rel_entr(qk, m).sum(axis)), 0)
    return ref


def l2_loss(args):
    torch = _torch()
    if not _arrays_ok(args, ("pred", "target", "weight")):
        return None
    x, t = _tensor(args["pred"], True), _tensor(args["target"])
    if x.ndim == 0 or x.shape != t.shape:
        return None
    d = ((x - t) ** 2).sum(-1)
    if not torch.all(d > 0):
        return None  # sqrt's derivative at 0: fastloss defines it as 0
    v = d.sqrt()
    if args.get("weight") is not None:
        v = v * _tensor(args["weight"])
    return _loss_and_grad(x, REDUCE[args.get("reduction", "mean")](v), args)


def center_loss(args):
    if not _arrays_ok(args, ("features", "labels", "centers")):
        return None
    x = _tensor(args["features"], True)
    c = _tensor(args["centers"])
    y = np.asarray(args["labels"]).astype(np.int64)
    if np.any(y < 0) or np.any(y >= c.shape[0]):
        return None
    v = 0.5 * ((x - c[y]) ** 2).sum(-1)
    return _loss_and_grad(x, REDUCE[args.get("reduction", "mean")](v), args)


def edit_distance(args):
    from rapidfuzz.distance import Levenshtein
    a, b = args["a"], args["b"]
    if not (isinstance(a, str) and isinstance(b, str)) and not (
            isinstance(a, list) and isinstance(b, list) and all(isinstance(s, str) for s in a + b)):
        return None
    w = tuple(args.get("weights", (1, 1, 1)))
    norm = args.get("normalize", False)
    cut = args.get("score_cutoff")
    f = Levenshtein.normalized_distance if norm else Levenshtein.distance
    one = (lambda s, t: f(s, t, weights=w, score_cutoff=cut))
    if isinstance(a, str):
        return one(a, b)
    return np.array([one(s, t) for s, t in zip(a, b)], np.float64 if norm else np.int64)


def tempered_softmax(args):
    from test_bi_tempered import ref_tempered_softmax
    x = np.asarray(args["activations"])
    if not _arrays_ok(args, ("activations",)) or x.ndim == 0 or x.shape[args.get("axis", -1)] == 0:
        return None
    return ref_tempered_softmax(x, args["t"], args.get("num_iters", 5), args.get("axis", -1))


REFERENCES = {
    "mse_loss": _elementwise(lambda x, t, a: (x - t) ** 2, "pred", "target"),
    "l1_loss": _elementwise(lambda x, t, a: (x - t).abs(), "pred", "target"),
    "huber_loss": _elementwise(_huber, "pred", "target"),
    "smooth_l1_loss": _elementwise(_smooth_l1, "pred", "target"),
    "log_cosh_loss": _elementwise(_log_cosh, "pred", "target"),
    "sigmoid_cross_entropy": _elementwise(_bce, "logits", "targets", extra=("pos_weight",)),
    "softmax_cross_entropy": softmax_cross_entropy,
    "entropy": _divergence("entropy"),
    "kl_divergence": _divergence("kl"),
    "js_divergence": _divergence("js"),
    "l2_loss": l2_loss,
    "center_loss": center_loss,
    "edit_distance": edit_distance,
    "tempered_softmax": tempered_softmax,
}

# Relative tolerance of a result against its float64 reference, by the result's dtype (float32
# sums of many terms and float16 outputs round; integers must be exact).
TOLERANCE = {2: 5e-3, 4: 2e-4, 8: 1e-8}


def disagreement(out, ref):
    """None if fastloss's result `out` agrees with the float64 reference `ref`, else why not.
    Where the reference is finite, the result must be close (after rounding the reference to the
    result's dtype, so an overflow to inf in float16 agrees); a NaN reference is not judged."""
    if isinstance(ref, tuple):
        if not isinstance(out, tuple) or len(out) != len(ref):
            return f"got {type(out).__name__}, want a tuple of {len(ref)}"
        for i, (o, r) in enumerate(zip(out, ref)):
            why = disagreement(o, r)
            if why:
                return f"[{i}] {why}"
        return None
    o = np.asarray(out)
    r = np.asarray(ref)
    if o.shape != r.shape:
        return f"shape {o.shape}, want {r.shape}"
    if o.dtype.kind in "iu":
        return None if np.array_equal(o, r) else f"{o.ravel()[:5]} vs {r.ravel()[:5]}"
    tol = TOLERANCE.get(o.dtype.itemsize, 1e-8)
    with np.errstate(all="ignore"):
        rr = r.astype(o.dtype).astype(np.float64)
        oo = o.astype(np.float64)
        judged = np.isfinite(r)
        close = (oo == rr) | (np.abs(oo - rr) <= tol * (1 + np.abs(rr)))
    bad = judged & ~close
    if bad.any():
        i = tuple(np.argwhere(bad)[0]) if bad.ndim else ()
        return f"at {list(i)}: {oo[i]!r}, reference {r[i]!r}"
    return None
