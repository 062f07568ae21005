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

from fuzz_kinds import (
    FLAG, Choice, Floats, FloatOption, GradOut, IntOption, Labels, Lengths, Option, Text, Texts, Tokens, WEIGHTS,
    distance_result, drop_axis, loss_result, pairwise_result, rate_result, returns,
)


class Spec:
    def __init__(self, forms, options=None, returns=None, dims=None):
        self.forms, self.options, self.returns = forms, options or {}, returns
        self.dims = dims or {}  # per-dimension bounds overriding the defaults, e.g. {"C": (1, 40)}


REDUCTION = Choice(["mean", "sum", "none"], bad=["avg", "MEAN", "batchmean"])
AXIS = IntOption([-1, 0, 1, -2], bad=[2, 3, -3, -4])

CE_FORMS = [
    dict(logits=Floats("N C"), labels=Labels("N", high="C", ignore=-100)),
    dict(logits=Floats("N C D"), labels=Labels("N D", high="C", ignore=-100), axis=Option([1], omit=0)),
    dict(logits=Floats("C"), labels=Labels((), high="C")),
    dict(logits=Floats("N C"), labels=Floats("N C", values="probs")),
]


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
                     axis=AXIS, reduction=REDUCTION, return_grad=FLAG),
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
                     from_logits=FLAG, zero_infinity=FLAG, reduction=REDUCTION, return_grad=FLAG),
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
    "error_rate": Spec(
        forms=[dict(references=Texts("N"), hypotheses=Texts("N")), dict(references=Text(), hypotheses=Text())],
        options=dict(unit=Choice(["char", "word"], bad=["chars", "WORD"])),
        returns=rate_result),
    "error_counts": Spec(
        forms=[dict(references=Texts("N"), hypotheses=Texts("N")), dict(references=Text(), hypotheses=Text())],
        options=dict(unit=Choice(["char", "word"], bad=["chars", "WORD"])),
        returns=lambda out, args: None),
    "set_num_threads": Spec(
        forms=[dict(n=Option([1, 2, 3, 1024], bad=[0, -1, 1025, 2**31, 2**63, 2**70, -2**70, True, 1.5, "2", None],
                             omit=0, bad_rate=0.5))],
        returns=returns(type(None))),
    "get_num_threads": Spec(forms=[{}], returns=returns(int)),
    "max_num_threads": Spec(forms=[{}], returns=returns(int)),
    "cuda_available": Spec(forms=[{}], returns=returns(bool)),
    "build_info": Spec(forms=[{}], returns=returns(dict)),
    "l2_loss": Spec(
        forms=[dict(pred=Floats("N C"), target=Floats("N C"))],
        options=dict(weight=Floats("N", values="positive", optional=True), reduction=REDUCTION, return_grad=FLAG),
        returns=loss_result("pred", drop_axis("pred"))),
}

# Names in fastloss.__all__ that are not functions to fuzz.
NOT_FUZZED = {"__version__", "ErrorCounts"}


# --- known failures --------------------------------------------------------------------------
# Open issue items the harness still hits, so that it can guard everything else today. Each
# entry names its item; delete it with the fix (the harness then checks those cases too).
# `skip` entries are not run at all (they crash or trip a sanitizer today).

class Known:
    def __init__(self, item, match, skip=False):
        self.item, self.match, self.skip = item, match, skip


def _arrays(args):
    return [v for v in args.values() if isinstance(v, np.ndarray)]


def _detail(failure, *words):
    return failure is not None and all(w in failure["detail"] for w in words)


KNOWN = [
    # item 5 (array layer): big-endian floats are a TypeError
    Known("10.5 big-endian floats refused",
          lambda f, args, fail: any(a.dtype.kind == "f" and a.dtype.byteorder == ">" for a in _arrays(args))),
    # item 5 (array layer): size-0 arrays, whose strides NumPy reports as 0, called broadcast views
    Known("10.5 size-0 arrays", lambda f, args, fail: any(a.size == 0 for a in _arrays(args))),
    # item 7 (array layer): out-of-range Python ints reach pybind11's int conversion
    Known("10.7 out-of-range int option: pybind11 TypeError",
          lambda f, args, fail: _detail(fail, "incompatible function arguments")),
    # item 8 (array layer): a grad_out that overlaps an input is accepted
    Known("10.8 grad_out overlapping an input",
          lambda f, args, fail: args.get("grad_out") is not None and any(
              a is not args["grad_out"] and np.shares_memory(a, args["grad_out"]) for a in _arrays(args))),
    # items 4/7 (edit distance): weights beyond int64 are pybind11's RuntimeError
    Known("10.4/10.7 edit weights >= 2**63: RuntimeError",
          lambda f, args, fail: "edit" in f and _detail(fail, "RuntimeError", "Unable to cast")),
    # not in issue 10 (edit distance): dtype='bogus' gets NumPy's message
    Known("edit distance: dtype='bogus' -> NumPy's TypeError",
          lambda f, args, fail: "edit" in f and _detail(fail, "not understood")),
    # not in issue 10 (array layer): a ragged list gets NumPy's message, naming no argument
    Known("array layer: ragged list -> NumPy's ValueError", lambda f, args, fail: _detail(fail, "inhomogeneous")),
    # not in issue 10 (edit distance): a None sentence is a TypeError from len()
    Known("edit distance: None in a batch -> 'has no len()'",
          lambda f, args, fail: "edit" in f and _detail(fail, "has no len()")),
]
