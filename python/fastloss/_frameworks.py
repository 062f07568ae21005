"""The losses fastloss.torch and fastloss.jax register, described once.

Neither framework is imported here.
"""
from __future__ import annotations

# How a "none" loss element maps onto the first differentiable input, for the backward pass:
#   "elem"  the loss has the input's shape (elementwise losses)
#   "row"   one value per row along the class axis (option "axis")
#   "ctc"   one value per sequence of (T, N, C) or (N, T, C) log-probabilities ("layout")
#   "first" one value per sample along axis 0
#   None    the elements share inputs (weight matrices, a softmax over dice classes): only a
#           grad_output with one value everywhere (loss.sum(), loss.mean()) can be applied
#
# Each entry: name, array inputs as (name, role), options as (name, schema type), rule.
# Roles: "diff" (a fused gradient of the kernel), "neg" (minus the first input's gradient:
# losses of pred - target), "const" (labels, lengths, targets), "opt" (optional const array).
_F = "float"
_TABLE = [
    ("softmax_cross_entropy", [("logits", "diff"), ("labels", "const"), ("weight", "opt")],
     [("ignore_index", "int"), ("label_smoothing", _F), ("z_loss", _F), ("axis", "int")], "row"),
    ("nll_loss", [("log_probs", "diff"), ("labels", "const"), ("weight", "opt")],
     [("ignore_index", "int"), ("axis", "int")], "row"),
    ("ctc_loss", [("log_probs", "diff"), ("labels", "const"), ("input_lengths", "const"), ("label_lengths", "const")],
     [("blank", "int"), ("layout", "str"), ("from_logits", "bool"), ("zero_infinity", "bool")], "ctc"),
    ("sigmoid_cross_entropy", [("logits", "diff"), ("targets", "const"), ("weight", "opt"), ("pos_weight", "opt")],
     [], "elem"),
    ("balanced_sigmoid_cross_entropy", [("logits", "diff"), ("targets", "const")], [("beta", "float?")], "elem"),
    ("sigmoid_focal_loss", [("logits", "diff"), ("targets", "const")], [("alpha", _F), ("gamma", _F)], "elem"),
    ("truncated_sigmoid_cross_entropy", [("logits", "diff"), ("targets", "const")],
     [("margin", _F), ("softness", "float?")], "elem"),
    ("hinge_loss", [("scores", "diff"), ("labels", "const")], [("margin", _F), ("squared", "bool")], "elem"),
    ("kl_div", [("input", "diff"), ("target", "const")], [("log_target", "bool")], "elem"),
    ("mse_loss", [("pred", "diff"), ("target", "neg"), ("weight", "opt")], [], "elem"),
    ("l1_loss", [("pred", "diff"), ("target", "neg"), ("weight", "opt")], [], "elem"),
    ("huber_loss", [("pred", "diff"), ("target", "neg"), ("weight", "opt")], [("delta", _F)], "elem"),
    ("smooth_l1_loss", [("pred", "diff"), ("target", "neg"), ("weight", "opt")], [("beta", _F)], "elem"),
    ("log_cosh_loss", [("pred", "diff"), ("target", "neg"), ("weight", "opt")], [], "elem"),
    ("softmax_focal_loss", [("logits", "diff"), ("labels", "const"), ("alpha", "opt")],
     [("gamma", _F), ("ignore_index", "int"), ("axis", "int")], "row"),
    ("truncated_cross_entropy", [("logits", "diff"), ("labels", "const")],
     [("margin", _F), ("softness", "float?"), ("axis", "int"), ("ignore_index", "int")], "row"),
    ("multiclass_hinge_loss", [("scores", "diff"), ("labels", "const"), ("weight", "opt")],
     [("margin", _F), ("p", "int"), ("kind", "str"), ("axis", "int")], "row"),
    ("l2_loss", [("pred", "diff"), ("target", "neg"), ("weight", "opt")], [("axis", "int")], "row"),
    ("dice_loss", [("inputs", "diff"), ("targets", "const")],
     [("activation", "str?"), ("smooth", _F), ("squared", "bool"), ("axis", "int?")], "dice"),
    ("bi_tempered_logistic_loss", [("activations", "diff"), ("labels", "const")],
     [("t1", _F), ("t2", _F), ("label_smoothing", _F), ("num_iters", "int"), ("axis", "int")], "row"),
    ("bi_tempered_binary_logistic_loss", [("activations", "diff"), ("targets", "const")],
     [("t1", _F), ("t2", _F), ("label_smoothing", _F), ("num_iters", "int")], "elem"),
    ("large_margin_softmax_loss", [("features", "diff"), ("weight", "diff"), ("labels", "const")],
     [("margin", "int"), ("beta", _F)], None),
    ("center_loss", [("features", "diff"), ("labels", "const"), ("centers", "const")], [], "first"),
]



def _none_shape(rule, shape, opts):
    """The shape of a reduction="none" loss whose first differentiable input has `shape`."""
    shape, ndim = tuple(shape), len(shape)
    if rule == "elem":
        return shape
    if rule == "row":
        axis = opts["axis"] % ndim
        return tuple(s for i, s in enumerate(shape) if i != axis)
    if rule == "ctc":
        return (shape[1] if opts["layout"] == "TNC" else shape[0],)
    if rule == "dice" and opts["axis"] is not None:
        return (shape[0], shape[opts["axis"] % ndim])
    return (shape[0],)


def _expand_shape(rule, loss_shape, ndim, opts):
    """The shape a "none" loss's incoming gradient takes to broadcast against its input (ndim
    dimensions); None when loss elements share inputs (their gradients cannot be separated)."""
    loss_shape = tuple(loss_shape)
    if rule == "elem":
        return loss_shape
    if rule == "row":
        axis = opts["axis"] % ndim
        return loss_shape[:axis] + (1,) + loss_shape[axis:]
    if rule == "ctc":
        return (1, -1, 1) if opts["layout"] == "TNC" else (-1, 1, 1)
    if rule == "first" or (rule == "dice" and opts["axis"] is None):
        return (-1,) + (1,) * (ndim - 1)
    return None
