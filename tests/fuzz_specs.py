"""What the fuzz harness (tools/fuzz.py) calls: one entry per public function.

An entry lists the function's argument kinds (fuzz_kinds.py): `forms` are alternative sets of
positional arguments (with dimension names shared between them), `options` the keyword
arguments (an option the installed function does not take is skipped, so the table may run
ahead of a merge), and `returns` checks a successful result. A new public function is covered
by adding its entry here; test_fuzz.py fails while a name in `fastloss.__all__` has none.

Every call must either return a result that passes `returns`, or raise TypeError, ValueError
or IndexError whose message names one of the function's arguments; never crash, hang, raise
anything else, or change an input (grad_out aside). A call on strided, broadcast, unaligned
or big-endian inputs must behave as on their contiguous native copies.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from fuzz_kinds import (
    FLAG, Choice, Floats, FloatOption, GradOut, IntOption, Labels, Lengths, Option, Text, Texts, Tokens, WEIGHTS,
    distance_result, drop_axis, loss_result, pairwise_result, rate_result, returns,
)


class Spec:
    def __init__(self, forms, options=None, returns=None, dims=None):
        self.forms, self.options, self.returns = forms, options or {}, returns
        self.dims = dims or {}  # per-dimension bounds overriding the defaults, e.g. {"C": (1, 40)}


NORMALIZE = Option([None, ["lowercase", "strip"], ["remove_punctuation", "remove_multiple_spaces"],
                    [{"substitute": {"a": "b"}}, "expand_contractions"]],
                   bad=["bogus", ["lowercase", "nope"], 3, [{"substitute": 5}]])
REDUCTION = Choice(["mean", "sum", "none"], bad=["avg", "MEAN", "batchmean"])
AXIS = IntOption([-1, 0, 1, -2], bad=[2, 3, -3, -4])

CE_FORMS = [
    dict(logits=Floats("N C"), labels=Labels("N", high="C", ignore=-100)),
    dict(logits=Floats("N C D"), labels=Labels("N D", high="C", ignore=-100), axis=Option([1], omit=0)),
    dict(logits=Floats("C"), labels=Labels((), high="C")),
    dict(logits=Floats("N C"), labels=Floats("N C", values="probs")),
]


NAN_ = float("nan")
# A temperature of the bi-tempered functions: required, so never omitted. Its edges: 1 and 2
# exactly and one ulp either side of 1 (where 1/(1-t) blows rounding up), near 0, and 4.
TEMPERATURE = Option(st.one_of(st.floats(0.05, 4.0, allow_nan=False),
                               st.sampled_from([1.0, 2.0, float(np.nextafter(1.0, 2.0)), float(np.nextafter(1.0, 0.0)),
                                                1e-3, 4.0])),
                     bad=[0.0, -1.0, NAN_, float("inf"), "0.5", None], omit=0.0)


def _assert(ok, why):
    assert ok, why


def divergence_result(out, args):
    """entropy / kl_divergence / js_divergence: a float array without the `axis` dimension; with
    return_grad, (values, grad_p) or (values, (grad_p, grad_q)) shaped like the inputs."""
    want = list(np.shape(args["p"]))
    del want[args.get("axis", -1)]
    if args.get("return_grad"):
        _assert(isinstance(out, tuple) and len(out) == 2, f"got {type(out).__name__}, want (values, grads)")
        out, grads = out
        grads = grads if isinstance(grads, tuple) else (grads,)
        for g, name in zip(grads, ("p", "q")):
            _assert(isinstance(g, np.ndarray) and g.shape == np.shape(args[name]), f"grad of {name}: {np.shape(g)}")
    _assert(isinstance(out, np.ndarray) and out.dtype.kind == "f" and list(out.shape) == want,
            f"got {type(out).__name__} {np.shape(out)}, want {want}")


def margin_result(out, args):
    """L-Softmax: loss, or (loss, (grad_features, grad_weight))."""
    want_grad = bool(args.get("return_grad"))
    loss = out[0] if want_grad else out
    shape = (np.shape(args["features"])[0],) if args.get("reduction", "mean") == "none" else ()
    _assert(isinstance(loss, np.ndarray) and loss.shape == shape, f"loss {np.shape(loss)}, want {shape}")
    if want_grad:
        gf, gw = out[1]
        _assert(gf.shape == np.shape(args["features"]) and gw.shape == np.shape(args["weight"]),
                f"grads {gf.shape} {gw.shape}")


def dice_none_shape(args):
    """dice_loss's "none" shape: (N,) or (N, C'), without N with batch (C' = C - 1 without the
    background, when C > 1)."""
    x = np.shape(args["inputs"])
    axis = args.get("axis")
    shape = () if args.get("batch") else x[:1]
    if axis is not None:
        c = x[axis]
        shape += (c - 1 if args.get("include_background") is False and c > 1 else c,)
    return shape


def linear_ce_result(out, args):
    """linear_cross_entropy: loss, or (loss, (grad_hidden, grad_weight[, grad_bias]))."""
    want_grad = bool(args.get("return_grad"))
    loss = out[0] if want_grad else out
    shape = (np.shape(args["hidden"])[0],) if args.get("reduction", "mean") == "none" else ()
    _assert(isinstance(loss, np.ndarray) and loss.shape == shape, f"loss {np.shape(loss)}, want {shape}")
    if want_grad:
        names = ["hidden", "weight"] + (["bias"] if args.get("bias") is not None else [])
        _assert(len(out[1]) == len(names), f"{len(out[1])} gradients, want {len(names)}")
        for g, name in zip(out[1], names):
            _assert(g.shape == np.shape(args[name]), f"grad of {name} {g.shape}, want {np.shape(args[name])}")


def ctc_none_shape(args):
    lp = args["log_probs"]
    if np.ndim(lp) == 2:
        return ()
    return (np.shape(lp)[1 if args.get("layout", "TNC") == "TNC" else 0],)


SPECS = {
    "softmax_cross_entropy": Spec(
        forms=CE_FORMS,
        options=dict(weight=Floats("C", values="positive", optional=True),
                     ignore_index=IntOption([-100, 0, 1, -1]),
                     label_smoothing=FloatOption(0.0, 1.0, bad=[-0.1, 1.5]),
                     z_loss=FloatOption(0.0, 1e-2, bad=[-1.0]),
                     axis=AXIS, reduction=REDUCTION, return_grad=FLAG, grad_out=GradOut("logits")),
        returns=loss_result("logits", drop_axis("logits"))),
    "nll_loss": Spec(
        forms=[{"log_probs" if k == "logits" else k: v for k, v in f.items()} for f in CE_FORMS[:3]],
        options=dict(weight=Floats("C", values="positive", optional=True), ignore_index=IntOption([-100, 0, 1, -1]),
                     axis=AXIS, reduction=REDUCTION, return_grad=FLAG, grad_out=GradOut("log_probs")),
        returns=loss_result("log_probs", drop_axis("log_probs"))),
    "ctc_loss": Spec(
        forms=[
            dict(log_probs=Floats("T N C"), labels=Labels("N S", high="C"), input_lengths=Lengths("N", "T"),
                 label_lengths=Lengths("N", "S")),
            dict(log_probs=Floats("T N C"), labels=Labels("L", high="C"), input_lengths=Lengths("N", "T"),
                 label_lengths=Lengths("N", "sum:labels")),
            dict(log_probs=Floats("N T C"), labels=Labels("N S", high="C"), input_lengths=Lengths("N", "T"),
                 label_lengths=Lengths("N", "S"), layout=Option(["NTC"], omit=0)),
        ],
        options=dict(blank=IntOption([0, 1, 2]), layout=Choice(["TNC"], bad=["tnc", "NCT"]),
                     from_logits=FLAG, zero_infinity=FLAG, reduction=REDUCTION, return_grad=FLAG,
                     grad_out=GradOut("log_probs")),
        returns=loss_result("log_probs", ctc_none_shape),
        dims={"C": (1, 6), "T": (0, 12), "S": (0, 6)}),
    "edit_distance": Spec(
        forms=[
            dict(a=Text(), b=Text()),
            dict(a=Texts("N"), b=Texts("N")),
            dict(a=Tokens("N"), b=Tokens("N")),
            dict(a=Labels("N La", high=5), b=Labels("N Lb", high=5), a_lengths=Lengths("N", "La"),
                 b_lengths=Lengths("N", "Lb")),
        ],
        options=dict(weights=WEIGHTS, normalize=FLAG,
                     score_cutoff=Option([None, 0, 1, 3, 0.5], bad=[-1, 2**70, "x", -0.5, float("nan")])),
        returns=distance_result()),
    "pairwise_edit_distance": Spec(
        forms=[dict(a=Texts("N"), b=Texts("M")), dict(a=Tokens("N"), b=Tokens("M"))],
        options=dict(weights=WEIGHTS, normalize=FLAG,
                     score_cutoff=Option([None, 0, 1, 3, 0.5], bad=[-1, 2**70, "x"]),
                     dtype=Option([None, "int64", "int32", "$np.int64"], bad=["float32", "bogus", 3])),
        returns=pairwise_result),
    "edit_ops": Spec(
        forms=[dict(a=Text(), b=Text()), dict(a=Texts("N"), b=Texts("N")), dict(a=Tokens("N"), b=Tokens("N"))],
        options=dict(opcodes=Option([False, True], bad=["yes", 2])),
        returns=lambda out, args: _assert(isinstance(out, list), f"edit_ops returned {type(out).__name__}")),
    "error_rate": Spec(
        forms=[dict(references=Texts("N"), hypotheses=Texts("N")), dict(references=Text(), hypotheses=Text())],
        options=dict(unit=Choice(["char", "word"], bad=["chars", "WORD"]), normalize=NORMALIZE),
        returns=rate_result),
    "error_counts": Spec(
        forms=[dict(references=Texts("N"), hypotheses=Texts("N")), dict(references=Text(), hypotheses=Text())],
        options=dict(unit=Choice(["char", "word"], bad=["chars", "WORD"]), normalize=NORMALIZE),
        returns=lambda out, args: _assert(min(out.hits, out.substitutions, out.deletions, out.insertions) >= 0,
                                          f"negative count in {out!r}")),
    "visualize_alignment": Spec(
        forms=[dict(references=Texts("N"), hypotheses=Texts("N")), dict(references=Text(), hypotheses=Text())],
        options=dict(unit=Choice(["char", "word"], bad=["chars", "WORD"]), normalize=NORMALIZE,
                     show_measures=FLAG, skip_correct=FLAG),
        returns=lambda out, args: _assert(isinstance(out, str), f"visualize_alignment returned {type(out).__name__}")),
    **{name: Spec(
        forms=[dict(logits=Floats(shape), targets=Floats(shape, values=["probs", "normal", "extreme"]))
               for shape in ("N C", "N", "C")],
        options=dict(extra, reduction=REDUCTION, return_grad=FLAG, grad_out=GradOut("logits")),
        returns=loss_result("logits", lambda a: np.shape(a["logits"])))
       for name, extra in [
           ("sigmoid_cross_entropy", dict(weight=Floats("C", values="positive", optional=True),
                                          pos_weight=Floats("C", values="positive", optional=True))),
           ("balanced_sigmoid_cross_entropy", dict(beta=Option([None, 0.0, 0.3, 1.0], bad=[-0.1, 1.5, NAN_, "x"]))),
           ("sigmoid_focal_loss", dict(alpha=FloatOption(-1.0, 1.0), gamma=FloatOption(0.0, 5.0, bad=[-1.0]))),
           ("truncated_sigmoid_cross_entropy", dict(margin=FloatOption(0.0, 1.0, bad=[-0.5, 2.0]),
                                                    softness=Option([None, 1.0, 10.0], bad=[0.0, -1.0, NAN_]))),
       ]},
    "hinge_loss": Spec(
        forms=[dict(scores=Floats(s), labels=Labels(s, high=2)) for s in ("N", "N C")],
        options=dict(margin=FloatOption(0.0, 2.0), squared=FLAG, weight=Floats("C", values="positive", optional=True),
                     reduction=REDUCTION, return_grad=FLAG, grad_out=GradOut("scores")),
        returns=loss_result("scores", lambda a: np.shape(a["scores"]))),
    "kl_div": Spec(
        forms=[dict(input=Floats(s), target=Floats(s, values=["probs", "normal"])) for s in ("N C", "N")],
        options=dict(log_target=FLAG, weight=Floats("C", values="positive", optional=True),
                     reduction=Choice(["mean", "sum", "none", "batchmean"], bad=["avg"]),
                     return_grad=FLAG, grad_out=GradOut("input")),
        returns=loss_result("input", lambda a: np.shape(a["input"]))),
    **{name: Spec(
        forms=[dict(pred=Floats(s), target=Floats(s)) for s in ("N C", "N", "C")],
        options=dict(extra, weight=Floats("C", values="positive", optional=True), reduction=REDUCTION,
                     return_grad=FLAG, grad_out=GradOut("pred")),
        returns=loss_result("pred", lambda a: np.shape(a["pred"])))
       for name, extra in [("mse_loss", {}), ("l1_loss", {}), ("log_cosh_loss", {}),
                           ("huber_loss", dict(delta=FloatOption(0.01, 3.0, bad=[0.0, -1.0]))),
                           ("smooth_l1_loss", dict(beta=FloatOption(0.0, 3.0, bad=[-1.0])))]},
    "softmax_focal_loss": Spec(
        forms=CE_FORMS[:3],
        options=dict(alpha=Option([None, 0.25, 1.0], bad=[-1.0, "x", NAN_]), gamma=FloatOption(0.0, 5.0, bad=[-1.0]),
                     ignore_index=IntOption([-100, 0, 1]), axis=AXIS, reduction=REDUCTION, return_grad=FLAG,
                     grad_out=GradOut("logits")),
        returns=loss_result("logits", drop_axis("logits"))),
    "truncated_cross_entropy": Spec(
        forms=CE_FORMS[:3],
        options=dict(margin=FloatOption(0.0, 1.0, bad=[-0.5, 2.0]), softness=Option([None, 1.0, 10.0], bad=[0.0, -1.0]),
                     ignore_index=IntOption([-100, 0, 1]), axis=AXIS, reduction=REDUCTION, return_grad=FLAG,
                     grad_out=GradOut("logits")),
        returns=loss_result("logits", drop_axis("logits"))),
    "multiclass_hinge_loss": Spec(
        forms=[{"scores" if k == "logits" else k: v for k, v in f.items()} for f in CE_FORMS[:3]],
        options=dict(margin=FloatOption(0.0, 2.0), p=Option([1, 2], bad=[0, 3, 2**70, 1.5]),
                     weight=Floats("C", values="positive", optional=True),
                     kind=Choice(["weston_watkins", "crammer_singer"], bad=["ww", "WESTON_WATKINS"]),
                     axis=AXIS, reduction=REDUCTION, return_grad=FLAG, grad_out=GradOut("scores")),
        returns=loss_result("scores", drop_axis("scores"))),
    **{name: Spec(
        forms=[dict(p=Floats(s, values=["probs", "positive", "extreme"]),
                    **({} if name == "entropy" else {"q": Floats(s, values=["probs", "positive"])}))
               for s in ("N C", "C", "N C D")],
        options=dict(axis=AXIS, return_grad=FLAG,
                     **({"base": Option([None, 2.0, 10.0, 0.5], bad=[0.0, 1.0, -2.0, "2"])} if name == "entropy" else {})),
        returns=divergence_result)
       for name in ("entropy", "kl_divergence", "js_divergence")},
    "large_margin_softmax_loss": Spec(
        forms=[dict(features=Floats("N D"), weight=Floats("D C"), labels=Labels("N", high="C"))],
        options=dict(margin=Option([1, 2, 3, 4], bad=[0, -1, 1.5, 2**70]),
                     beta=Option(st.one_of(st.floats(0.0, 10.0), st.sampled_from([0.0, 1e300, 1e308])),
                                 bad=[-1.0, float("inf"), NAN_]),
                     reduction=REDUCTION, return_grad=FLAG),
        returns=margin_result),
    "linear_cross_entropy": Spec(
        forms=[dict(hidden=Floats("N D"), weight=Floats("C D"), labels=Labels("N", high="C", ignore=-100))],
        options=dict(bias=Floats("C", optional=True), ignore_index=IntOption([-100, 0, 1, -1]),
                     label_smoothing=FloatOption(0.0, 1.0, bad=[-0.1, 1.5]),
                     z_loss=FloatOption(0.0, 1e-2, bad=[-1.0]),
                     softcap=Option([None, 1.0, 30.0], bad=[0.0, -1.0, NAN_, float("inf"), "1"]),
                     reduction=REDUCTION, return_grad=FLAG),
        returns=linear_ce_result),
    "center_loss": Spec(
        forms=[dict(features=Floats("N D"), labels=Labels("N", high="C"), centers=Floats("C D"))],
        options=dict(reduction=REDUCTION, return_grad=FLAG, grad_out=GradOut("features")),
        returns=loss_result("features", lambda a: (np.shape(a["features"])[0],))),
    "update_centers": Spec(
        forms=[dict(centers=Floats("C D"), features=Floats("N D"), labels=Labels("N", high="C"))],
        options=dict(alpha=FloatOption(0.0, 1.0, bad=[-0.5])),
        returns=lambda out, a: _assert(isinstance(out, np.ndarray) and out.shape == np.shape(a["centers"]),
                                       f"got {type(out).__name__} {np.shape(out)}")),
    "set_num_threads": Spec(
        forms=[dict(n=Option([1, 2, 3, 1024], bad=[0, -1, 1025, 2**31, 2**63, 2**70, -2**70, True, 1.5, "2", None],
                             omit=0, bad_rate=0.5))],
        returns=returns(type(None))),
    "get_num_threads": Spec(forms=[{}], returns=returns(int)),
    "max_num_threads": Spec(forms=[{}], returns=returns(int)),
    "cuda_available": Spec(forms=[{}], returns=returns(bool)),
    "build_info": Spec(forms=[{}], returns=returns(dict)),
    "bi_tempered_logistic_loss": Spec(
        forms=[{"activations" if k == "logits" else k: v for k, v in f.items()} for f in
               [dict(logits=Floats("N C"), labels=Labels("N", high="C")),
                dict(logits=Floats("N C D"), labels=Labels("N D", high="C"), axis=Option([1], omit=0)),
                dict(logits=Floats("C"), labels=Labels((), high="C")),
                CE_FORMS[3]]],
        options=dict(t1=TEMPERATURE, t2=TEMPERATURE, label_smoothing=FloatOption(0.0, 0.5, bad=[-0.1, 1.0]),
                     num_iters=IntOption([1, 5, 20], bad=[0, -1]), axis=AXIS, reduction=REDUCTION, return_grad=FLAG,
                     grad_out=GradOut("activations")),
        returns=loss_result("activations", drop_axis("activations"))),
    "bi_tempered_binary_logistic_loss": Spec(
        forms=[dict(activations=Floats(shape), targets=Floats(shape, values=["probs", "normal", "extreme"]))
               for shape in ("N C", "N", "C")],
        options=dict(t1=TEMPERATURE, t2=TEMPERATURE, label_smoothing=FloatOption(0.0, 0.5, bad=[-0.1, 1.0]),
                     num_iters=IntOption([1, 5, 20], bad=[0, -1]), reduction=REDUCTION, return_grad=FLAG,
                     grad_out=GradOut("activations")),
        returns=loss_result("activations", lambda a: np.shape(a["activations"]))),
    "tempered_softmax": Spec(
        forms=[dict(activations=Floats(s), t=TEMPERATURE) for s in ("N C", "C", "N C D")],
        options=dict(num_iters=IntOption([1, 5, 20], bad=[0, -1]), axis=AXIS),
        returns=lambda out, a: _assert(isinstance(out, np.ndarray) and out.shape == np.shape(a["activations"])
                                       and out.dtype.kind == "f", f"got {type(out).__name__} {np.shape(out)}")),
    "l2_loss": Spec(
        forms=[dict(pred=Floats("N C"), target=Floats("N C"))],
        options=dict(weight=Floats("N", values="positive", optional=True), reduction=REDUCTION, return_grad=FLAG,
                     grad_out=GradOut("pred")),
        returns=loss_result("pred", drop_axis("pred"))),
    "dice_loss": Spec(
        forms=[dict(inputs=Floats("N C"), targets=Floats("N C", values="probs")),
               dict(inputs=Floats("N C D"), targets=Labels("N D", high="C"), axis=Option([1, -2], omit=0))],
        options=dict(activation=Option([None, "sigmoid", "softmax"], bad=["relu", "SIGMOID", 0]),
                     smooth=Option(st.one_of(st.floats(0.0, 2.0), st.just(0.0)), bad=[-1.0, NAN_]), squared=FLAG, reduction=REDUCTION,
                     return_grad=FLAG, jaccard=FLAG, batch=FLAG,
                     smooth_nr=Option([None, 0.0, 1e-5, 1.0], bad=[-1.0, NAN_, "x"]),
                     smooth_dr=Option([None, 0.0, 1e-5, 1.0], bad=[-1.0, float("inf")]),
                     include_background=FLAG, weight=Option([None, 1.0, 0.5, [1.0, 2.0]], bad=["x"]),
                     grad_out=GradOut("inputs")),
        returns=loss_result("inputs", dice_none_shape)),
}

# Names in fastloss.__all__ that are not functions to fuzz.
NOT_FUZZED = {"__version__", "ErrorCounts", "AlignmentChunk"}


# --- known failures --------------------------------------------------------------------------
# Open issue items the harness still hits, so that it can guard everything else today. Each
# entry names its item; delete it with the fix (the harness then checks those cases too).
# `skip` entries are not run at all (they crash or trip a sanitizer today).

class Known:
    """skip: True (never run), "sanitizer" (not run under tools/sanitize.sh), False (run, and
    its failures counted instead of failed)."""

    def __init__(self, item, match, skip=False):
        self.item, self.match, self.skip = item, match, skip


def _arrays(args):
    return [v for v in args.values() if isinstance(v, np.ndarray)]


def _detail(failure, *words):
    return failure is not None and all(w in failure["detail"] for w in words)


# Failures the harness tolerates while they are open: Known(name, predicate, skip=None).
KNOWN = []
