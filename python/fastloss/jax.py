"""fastloss's losses as JAX functions, usable under ``jax.jit`` and ``jax.grad``.

Every function has the name and keywords of the NumPy one (without ``return_grad`` and
``grad_out``) and returns a JAX array. Each is a ``jax.custom_vjp`` whose forward pass runs
the fused kernel once, keeping the gradient it computed, and whose backward pass only scales
that gradient by the incoming cotangent. Labels, lengths, class weights and options are
constants (zero cotangent).

How the kernel is reached: ``softmax_cross_entropy``, ``nll_loss`` and the elementwise
losses on the CPU go through XLA's foreign function interface (C++ handlers registered with
``jax.ffi``, no Python on the call path) when fastloss was built with JAX's FFI headers
(``fastloss.jax.ffi_available()``). Every other case goes through ``jax.pure_callback``: the
arrays are handed to the NumPy function on the host, which costs a round trip through Python
per call, and CUDA arrays are copied to the host.

bfloat16 inputs are computed in float32 and the results returned in bfloat16.

Example:
    >>> import jax, jax.numpy as jnp, fastloss.jax as flj
    >>> logits = jnp.zeros((2, 3))
    >>> loss, grad = jax.value_and_grad(flj.softmax_cross_entropy)(logits, jnp.array([0, 2]))
    >>> round(float(loss), 4), grad.shape
    (1.0986, (2, 3))
"""
from __future__ import annotations

import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np

import fastloss as _fl

from ._frameworks import _TABLE, _expand_shape, _none_shape

__all__ = [entry[0] for entry in _TABLE] + ["ffi_available"]

_BF16 = np.dtype(jnp.bfloat16)


def _host_array(a):
    """A callback's argument as the NumPy function reads it (bfloat16 as float32)."""
    a = np.asarray(a)
    return a.astype(np.float32) if a.dtype == _BF16 else a


def _sum_to(g, shape):
    """g summed down to a broadcast operand's shape."""
    shape = tuple(shape)
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    if lead > 0:
        g = g.sum(axis=tuple(range(lead)))
    dims = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    return g.sum(axis=dims, keepdims=True) if dims else g


def _make(name, arrays, options, rule):
    fn = getattr(_fl, name)
    diff = [a for a, role in arrays if role == "diff"]
    neg = [a for a, role in arrays if role == "neg"]
    array_names = [a for a, _ in arrays]
    option_names = [o for o, _ in options] + ["reduction"]
    np_params = inspect.signature(fn).parameters.values()
    defaults = {p.name: p.default for p in np_params}
    npos = sum(p.kind == p.POSITIONAL_OR_KEYWORD for p in np_params)

    def host(present, opts, out_dtype, want_grad, *values):
        arrs = dict.fromkeys(array_names)
        arrs.update(zip(present, (_host_array(v) for v in values)))
        kw = dict(opts)
        if name == "softmax_focal_loss" and arrs["alpha"] is not None and arrs["alpha"].ndim == 0:
            arrs["alpha"] = float(arrs["alpha"])
        kw.update((a, arrs[a]) for a in array_names[npos:])
        pos = [arrs[a] for a in array_names[:npos]]
        if not want_grad:
            return np.asarray(fn(*pos, **kw)).astype(out_dtype)
        loss, grad = fn(*pos, **kw, return_grad=True)
        grads = grad if isinstance(grad, tuple) else (grad,)
        return (np.asarray(loss).astype(out_dtype),) + tuple(np.asarray(g).astype(out_dtype) for g in grads)

    def wrapper(*args, **kwargs):
        if len(args) > npos:
            raise TypeError(f"{name}() takes {npos} positional arguments but {len(args)} were given")
        bound = dict(zip(array_names, args))
        for k, v in kwargs.items():
            if k not in defaults or k in ("return_grad", "grad_out"):
                raise TypeError(f"{name}() got an unexpected keyword argument {k!r}")
            bound[k] = v
        for k in array_names + option_names:
            if k not in bound:
                if k not in defaults or defaults[k] is inspect.Parameter.empty:
                    raise TypeError(f"{name}() missing required argument {k!r}")
                bound[k] = defaults[k]
        opts = {o: bound[o] for o in option_names}
        present = tuple(a for a in array_names if bound[a] is not None)
        values = [jnp.asarray(bound[a]) for a in present]
        x = values[present.index(diff[0])]
        out_dtype = x.dtype
        if name == "large_margin_softmax_loss":
            out_dtype = jnp.promote_types(x.dtype, values[present.index("weight")].dtype)
        loss_shape = () if opts["reduction"] != "none" else _none_shape(rule, x.shape, opts)
        loss_sds = jax.ShapeDtypeStruct(loss_shape, out_dtype)
        grad_sds = tuple(jax.ShapeDtypeStruct(values[present.index(a)].shape, out_dtype) for a in diff)
        neg_shapes = [values[present.index(a)].shape for a in neg]

        ffi = _ffi_call(name, present, opts, values)

        def forward(vals, want_grad):
            if ffi is not None:
                return ffi(vals, want_grad)
            cb = functools.partial(host, present, opts, np.dtype(out_dtype), want_grad)
            return jax.pure_callback(cb, (loss_sds,) + grad_sds if want_grad else loss_sds, *vals,
                                     vmap_method="sequential")

        @jax.custom_vjp
        def f(*vals):
            return forward(vals, False)

        def f_fwd(*vals):
            loss, *grads = forward(vals, True)
            return loss, tuple(grads)

        def f_bwd(grads, g):
            if opts["reduction"] != "none":
                scale = g
            else:
                shape = _expand_shape(rule, g.shape, x.ndim, opts)
                if shape is None:  # loss elements share inputs: only a uniform cotangent applies (else NaN)
                    flat = g.reshape(-1)
                    scale = jnp.where(jnp.all(flat == flat[0]), flat[0], jnp.nan) if flat.size else g.sum()
                else:
                    scale = g.reshape(shape)
            out = [gr * scale.astype(gr.dtype) for gr in grads]
            result = []
            for a in present:
                role = dict(arrays)[a]
                if role == "diff":
                    result.append(out[diff.index(a)])
                elif role == "neg":
                    result.append(_sum_to(-out[0], neg_shapes[neg.index(a)]).astype(values[present.index(a)].dtype))
                else:
                    result.append(None)
            return tuple(result)

        f.defvjp(f_fwd, f_bwd)
        return f(*values)

    wrapper.__name__ = wrapper.__qualname__ = name
    wrapper.__doc__ = (f"``fastloss.{name}`` as a JAX function (same arguments, without ``return_grad``), "
                       f"usable under jax.jit and jax.grad; gradients flow to {', '.join(diff + neg)}.\n\n"
                       f"See ``fastloss.{name}`` for the formula, shapes and options.")
    return wrapper


# --------------------------------------------------------------------------- XLA FFI
_ffi_registered = None
_REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}  # fastloss::Reduction


def _ffi(target, result_shapes):
    """jax.ffi.ffi_call of one of fastloss's targets (under vmap: one call per batch element)."""
    return jax.ffi.ffi_call(target, result_shapes, vmap_method="sequential")


def ffi_available() -> bool:
    """True when fastloss was built with XLA's FFI headers and its handlers are registered
    (then ``softmax_cross_entropy`` runs inside XLA on the CPU, without a Python callback)."""
    global _ffi_registered
    if _ffi_registered is None:
        targets = getattr(_fl._C, "jax_ffi_targets", None)
        if targets is None:
            _ffi_registered = False
        else:
            for target, capsule in targets().items():
                jax.ffi.register_ffi_target(target, capsule, platform="cpu")
            _ffi_registered = True
    return _ffi_registered


# fastloss::ElementwiseLoss, in its order (csrc/include/fastloss/elementwise.h).
_ELEMENTWISE = ["sigmoid_cross_entropy", "balanced_sigmoid_cross_entropy", "sigmoid_focal_loss",
                "truncated_sigmoid_cross_entropy", "hinge_loss", "kl_div", "mse_loss", "l1_loss", "huber_loss",
                "smooth_l1_loss", "log_cosh_loss"]


def _elementwise_attrs(name, opts):
    """ElementwiseParams' fields from the keywords (as csrc/bindings/bind_elementwise.cpp sets them)."""
    get = opts.get
    reduction = opts["reduction"]
    beta = get("beta")
    return dict(
        kind=np.int32(_ELEMENTWISE.index(name)),
        alpha=np.float64(get("alpha", 0.25)), gamma=np.float64(get("gamma", 2.0)),
        margin=np.float64(get("margin", 1.0)), softness=np.float64(get("softness") or 0.0),
        delta=np.float64(get("delta", 1.0)), beta=np.float64(1.0 if beta is None else beta),
        log_target=np.int32(bool(get("log_target", False))), squared=np.int32(bool(get("squared", False))),
        soft=np.int32(get("softness") is not None), beta_from_targets=np.int32(name == "balanced_sigmoid_cross_entropy"
                                                                                and beta is None),
        batchmean=np.int32(reduction == "batchmean"),
        reduction=np.int32(_REDUCTIONS["mean" if reduction == "batchmean" else reduction]))


def _ffi_call(name, present, opts, values):
    """The forward pass through an FFI handler, or None where only the callback applies:
    softmax_cross_entropy and nll_loss with integer labels, the class axis last and no class
    weights, and the elementwise losses without weights, on the CPU backend."""
    if name in _ELEMENTWISE:
        return _ffi_elementwise(name, present, opts, values)
    nll = name == "nll_loss"
    if name not in ("softmax_cross_entropy", "nll_loss") or present != (("log_probs" if nll else "logits"), "labels"):
        return None
    if not ffi_available():
        return None
    logits, labels = values
    if jax.default_backend() != "cpu" or not jnp.issubdtype(labels.dtype, jnp.integer) or logits.ndim < 1:
        return None
    if opts["axis"] not in (-1, logits.ndim - 1) or opts["reduction"] not in _REDUCTIONS:
        return None
    if logits.dtype not in (jnp.float16, jnp.float32, jnp.float64, jnp.bfloat16):
        return None
    compute = jnp.float32 if logits.dtype == jnp.bfloat16 else logits.dtype  # bfloat16: computed in float32
    loss_shape = logits.shape[:-1] if opts["reduction"] == "none" else ()
    loss_sds = jax.ShapeDtypeStruct(loss_shape, compute)
    grad_sds = jax.ShapeDtypeStruct(logits.shape, compute)
    attrs = dict(ignore_index=np.int64(opts["ignore_index"]),
                 label_smoothing=np.float64(opts.get("label_smoothing", 0.0)),
                 z_loss=np.float64(opts.get("z_loss", 0.0)), reduction=np.int32(_REDUCTIONS[opts["reduction"]]),
                 nll=np.int32(nll))

    def forward(vals, want_grad):
        x, y = vals
        x = x.astype(compute)
        if want_grad:
            out = _ffi("fastloss_cross_entropy_grad", (loss_sds, grad_sds))(x, y, **attrs)
        else:
            out = (_ffi("fastloss_cross_entropy_loss", loss_sds)(x, y, **attrs),)
        out = tuple(o.astype(logits.dtype) for o in out)
        return out if want_grad else out[0]

    return forward


def _ffi_elementwise(name, present, opts, values):
    if len(present) != 2 or not ffi_available() or jax.default_backend() != "cpu":
        return None
    pred, target = values
    if pred.shape != target.shape or pred.dtype not in (jnp.float16, jnp.float32, jnp.float64, jnp.bfloat16):
        return None
    if opts["reduction"] not in _REDUCTIONS and not (name == "kl_div" and opts["reduction"] == "batchmean"):
        return None
    compute = jnp.float32 if pred.dtype == jnp.bfloat16 else pred.dtype
    loss_sds = jax.ShapeDtypeStruct(pred.shape if opts["reduction"] == "none" else (), compute)
    grad_sds = jax.ShapeDtypeStruct(pred.shape, compute)
    attrs = _elementwise_attrs(name, opts)

    def forward(vals, want_grad):
        x, t = (v.astype(compute) for v in vals)  # integer labels and targets: in the prediction's dtype
        if want_grad:
            out = _ffi("fastloss_elementwise_grad", (loss_sds, grad_sds))(x, t, **attrs)
        else:
            out = (_ffi("fastloss_elementwise_loss", loss_sds)(x, t, **attrs),)
        out = tuple(o.astype(pred.dtype) for o in out)
        return out if want_grad else out[0]

    return forward


for _entry in _TABLE:
    globals()[_entry[0]] = _make(*_entry)
del _entry
