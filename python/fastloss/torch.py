"""fastloss's losses as differentiable PyTorch operators.

Every function has the name and keywords of the NumPy one (without ``return_grad`` and
``grad_out``: autograd asks for the gradient) and returns a ``torch.Tensor`` on the inputs'
device. Each is a custom operator (``torch.ops.fastloss.<name>``, made with
``torch.library.custom_op``) with an autograd formula and a fake-tensor implementation, so it
runs in eager mode and under ``torch.compile(fullgraph=True)`` without graph breaks.

The forward pass runs the fused kernel once and, when a differentiable input requires grad,
keeps the gradient it computed; the backward pass only scales it by the incoming gradient
(a scalar for ``"mean"``/``"sum"``, one value per loss element for ``"none"``). Labels,
lengths, class weights and other integer or option inputs are constants. Second derivatives
are not available (a ``RuntimeError`` says so).

Example:
    >>> import torch, fastloss.torch as flt
    >>> logits = torch.randn(4, 10, requires_grad=True)
    >>> loss = flt.softmax_cross_entropy(logits, torch.tensor([1, 0, 9, 3]))
    >>> loss.backward()
    >>> logits.grad.shape
    torch.Size([4, 10])
"""
from __future__ import annotations

import inspect

import torch

import fastloss as _fl

from ._frameworks import _TABLE, _expand_shape, _none_shape

__all__ = [entry[0] for entry in _TABLE]


def _sum_to(g, shape):
    """g summed down to a broadcast operand's shape."""
    if tuple(g.shape) == tuple(shape):
        return g
    lead = g.dim() - len(shape)
    g = g.sum(dim=tuple(range(lead))) if lead > 0 else g
    dims = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    return g.sum(dim=dims, keepdim=True) if dims else g


def _make(name, arrays, options, rule):
    fn = getattr(_fl, name)
    diff = [a for a, role in arrays if role == "diff"]
    neg = [a for a, role in arrays if role == "neg"]
    array_names = [a for a, _ in arrays]
    option_names = [o for o, _ in options] + ["reduction"]
    params = []
    for a, role in arrays:
        params.append(("Tensor? " if role == "opt" else "Tensor ") + a)
    params += [f"{t} {o}" for o, t in options] + ["str reduction", "bool need_grad"]
    outs = ", ".join(["Tensor"] * (1 + len(diff)))
    schema = f"({', '.join(params)}) -> ({outs})"
    n_in = len(arrays)
    np_params = inspect.signature(fn).parameters.values()
    defaults = {p.name: p.default for p in np_params}
    npos = sum(p.kind == p.POSITIONAL_OR_KEYWORD for p in np_params)

    def split(args):
        return dict(zip(array_names, args[:n_in])), dict(zip(option_names, args[n_in:n_in + len(option_names)]))

    def impl(*args):
        arrs, opts = split(args)
        # Below autograd the inputs may still carry requires_grad: the array layer reads
        # detached views (no copy) of them.
        arrs = {k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in arrs.items()}
        need_grad = args[-1]
        kw = dict(opts)
        if name == "softmax_focal_loss" and arrs["alpha"] is not None and arrs["alpha"].dim() == 0:
            arrs["alpha"] = float(arrs["alpha"])  # a scalar alpha
        for a in array_names[npos:]:
            kw[a] = arrs[a]
        pos = [arrs[a] for a in array_names[:npos]]
        x = arrs[diff[0]]
        if not need_grad:
            loss = fn(*pos, **kw)
            return (loss,) + tuple(x.new_empty(0) for _ in diff)
        loss, grad = fn(*pos, **kw, return_grad=True)
        grads = tuple(grad) if isinstance(grad, tuple) else (grad,)
        return (loss,) + grads

    op = torch.library.custom_op(f"fastloss::{name}", impl, mutates_args=(), schema=schema)

    @op.register_fake
    def _fake(*args):
        arrs, opts = split(args)
        need_grad = args[-1]
        x = arrs[diff[0]]
        dtype = x.dtype
        if name == "large_margin_softmax_loss":
            dtype = torch.promote_types(x.dtype, arrs["weight"].dtype)
        shape = () if opts["reduction"] != "none" else _none_shape(rule, x.shape, opts)
        loss = x.new_empty(shape, dtype=dtype)
        grads = tuple(arrs[a].new_empty(arrs[a].shape, dtype=dtype) if need_grad else x.new_empty(0) for a in diff)
        return (loss,) + grads

    def setup_context(ctx, inputs, output):
        arrs, opts = split(inputs)
        ctx.opts = opts
        ctx.x_ndim = arrs[diff[0]].dim()
        ctx.x_numel = arrs[diff[0]].numel()
        ctx.neg_shapes = [tuple(arrs[a].shape) for a in neg]
        ctx.save_for_backward(*output[1:])

    def backward(ctx, *grad_outputs):
        if torch.is_grad_enabled():
            raise RuntimeError(f"fastloss.torch.{name}: second derivatives are not supported (the backward pass "
                               "scales the gradient the fused kernel computed; it has no derivative of its own)")
        g = grad_outputs[0]
        grads = ctx.saved_tensors
        if ctx.x_numel and grads[0].numel() == 0:
            raise RuntimeError(f"fastloss.torch.{name}: the gradient was not computed in the forward pass (no "
                               "input required grad then)")
        if ctx.opts["reduction"] != "none":
            scale = g
        else:
            shape = _expand_shape(rule, g.shape, ctx.x_ndim, ctx.opts)
            scale = None if shape is None else g.reshape(shape)
            if scale is None:
                flat = g.reshape(-1)
                if flat.numel() and not bool((flat == flat[0]).all()):
                    raise RuntimeError(f"fastloss.torch.{name}: with reduction='none' only a gradient equal for "
                                       "every loss element (loss.sum(), loss.mean()) can be applied; use "
                                       "reduction='sum' and weight the loss instead")
                scale = flat[0] if flat.numel() else g.sum()
        out = [grad * scale.to(grad.dtype) for grad in grads]
        result = []
        for a, role in arrays:
            if role == "diff":
                result.append(out[diff.index(a)])
            elif role == "neg":
                result.append(_sum_to(-out[0], ctx.neg_shapes[neg.index(a)]))
            else:
                result.append(None)
        return tuple(result) + (None,) * (len(option_names) + 1)

    op.register_autograd(backward, setup_context=setup_context)


    def wrapper(*args, **kwargs):
        bound = dict(zip(array_names, args))
        if len(args) > npos:
            raise TypeError(f"{name}() takes {npos} positional arguments but {len(args)} were given")
        for k, v in kwargs.items():
            if k not in defaults or k in ("return_grad", "grad_out"):
                raise TypeError(f"{name}() got an unexpected keyword argument {k!r}")
            bound[k] = v
        for k in array_names + option_names:
            if k not in bound:
                if k not in defaults or defaults[k] is inspect.Parameter.empty:
                    raise TypeError(f"{name}() missing required argument {k!r}")
                bound[k] = defaults[k]
        ref = bound[diff[0]]
        if not isinstance(ref, torch.Tensor):
            raise TypeError(f"{diff[0]} must be a torch.Tensor, got {type(ref).__name__}")
        vals = []
        for a, role in arrays:
            v = bound[a]
            if v is not None and not isinstance(v, torch.Tensor):
                v = torch.as_tensor(v, device=ref.device)  # lists of labels or lengths, scalar alpha
            if v is not None and role in ("const", "opt") and v.requires_grad:
                v = v.detach()  # a constant of the loss: no gradient flows to it
            vals.append(v)
        for o, t in options:
            v = bound[o]
            if t.startswith("float") and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            vals.append(v)
        vals.append(bound["reduction"])
        need_grad = torch.is_grad_enabled() and any(
            vals[i] is not None and vals[i].requires_grad
            for i, (_, role) in enumerate(arrays) if role in ("diff", "neg"))
        return op(*vals, need_grad)[0]

    wrapper.__name__ = wrapper.__qualname__ = name
    wrapper.__doc__ = (f"Differentiable ``fastloss.{name}`` for torch tensors (same arguments, without "
                       f"``return_grad``); gradients flow to {', '.join(diff + neg)}.\n\n"
                       f"See ``fastloss.{name}`` for the formula, shapes and options.")
    wrapper.op = op
    return wrapper


for _entry in _TABLE:
    globals()[_entry[0]] = _make(*_entry)
del _entry
