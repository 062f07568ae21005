"""The fuzz harness's vocabulary: argument kinds and result checks (see fuzz_specs.py).

A kind has a hypothesis `strategy(dims)` that draws a *recipe* (plain JSON data: shape,
dtype, layout, value mode, seed, or a literal) and a `build(recipe, dims, built)` that turns
the recipe into the argument, deterministically. A case is printed as JSON before it runs, so
a crash is replayed from its line alone (`python tools/fuzz.py --replay 'CASE-JSON'`).
Each kind mostly draws valid values and sometimes invalid ones (`bad`): wrong dtypes and
types, wrong shapes, out-of-range ints (2**63, 2**70, -2**70), bad option values.
"""
from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

NAN, INF = float("nan"), float("inf")
HUGE_INTS = [2**31, 2**62, 2**63 - 1, 2**63, 2**64, 2**70, -2**63 - 1, -2**70]
FLOAT_DTYPES = ["<f2", "<f4", "<f8", ">f4", ">f8", "=f4"]
INT_DTYPES = ["<i1", "<i2", "<i4", "<i8", "<u1", "<u2", "<u4", "<u8", ">i4", ">i8", ">u8"]
BAD_ARRAY_DTYPES = ["|b1", "O", "<c8", "<U3", "<M8[s]"]
# Views that must give the contiguous copy's answer: transposed, sliced (step 2), negative
# strides, a zero stride (broadcast), an unaligned start, Fortran order.
LAYOUTS = ["c", "c", "c", "transposed", "sliced", "negative", "broadcast", "unaligned", "fortran"]


def _p(prob):
    """True with probability ~prob (hypothesis still explores both sides)."""
    return st.integers(0, 999).map(lambda v: v < prob * 1000)


class Kind:
    positional = False
    bad_rate = 0.15

    def strategy(self, dims):
        raise NotImplementedError

    def build(self, r, dims, built):
        raise NotImplementedError


# --- arrays --------------------------------------------------------------------------------

def _shape(spec, dims):
    return [dims[s] if isinstance(s, str) else s for s in spec.split()] if isinstance(spec, str) else list(spec)


def _bad_shape(shape):
    """A shape one mutation away: a dimension more, one less, or one size off by one."""
    return st.sampled_from(["add", "drop", "grow", "shrink"]).map(lambda m: _mutate_shape(shape, m))


def _mutate_shape(shape, how):
    s = list(shape)
    if how == "add":
        return s + [2]
    if how == "drop":
        return s[:-1]
    if not s:
        return [1]
    if how == "grow":
        s[-1] += 1
    else:
        s[-1] = max(s[-1] - 1, 0)
    return s


def layout_view(values, layout, seed):
    """An array equal to `values` (or, for "broadcast", a broadcast of part of it) with the
    given memory layout."""
    v = np.asarray(values)
    if layout == "transposed" and v.ndim >= 2:
        return np.ascontiguousarray(v.T).T
    if layout == "fortran":
        return np.asfortranarray(v)
    if layout == "sliced" and v.ndim >= 1:
        base = np.zeros(v.shape[:-1] + (2 * v.shape[-1] + 1,), v.dtype)
        base[..., 1::2] = v
        return base[..., 1::2]
    if layout == "negative" and v.ndim >= 1:
        return np.ascontiguousarray(v[::-1])[::-1]
    if layout == "broadcast" and v.ndim >= 1 and v.size:
        axis = seed % v.ndim
        part = np.take(v, [0], axis=axis)
        return np.broadcast_to(part, v.shape)
    if layout == "unaligned" and v.dtype.itemsize > 1:
        raw = np.zeros(v.nbytes + 1, np.uint8)[1:]
        out = raw.view(v.dtype).reshape(v.shape)
        out[...] = v
        return out
    return np.ascontiguousarray(v)


class Array(Kind):
    """An array of `shape` (dimension names or ints) and one of `dtypes`; also lists, and
    0-d/None/str/object values as bad variants. `values(rng, shape, mode, dims)` fills it."""

    positional = True
    modes = ["normal"]
    dtypes = FLOAT_DTYPES
    bad_dtypes = BAD_ARRAY_DTYPES

    def __init__(self, shape, values=None, optional=False, bad_rate=None):
        self.shape, self.optional = shape, optional
        if values is not None:
            self.modes = [values] if isinstance(values, str) else values
        if bad_rate is not None:
            self.bad_rate = bad_rate

    def strategy(self, dims):
        shape = _shape(self.shape, dims)
        good = st.fixed_dictionaries({
            "shape": st.just(shape), "dtype": st.sampled_from(self.dtypes), "layout": st.sampled_from(LAYOUTS),
            "mode": st.sampled_from(self.modes), "seed": st.integers(0, 2**16),
            "as": st.sampled_from(["array"] * 12 + ["list"])})
        bad = st.one_of(
            st.fixed_dictionaries({"shape": _bad_shape(shape), "dtype": st.sampled_from(self.dtypes),
                                   "layout": st.just("c"), "mode": st.sampled_from(self.modes),
                                   "seed": st.integers(0, 2**16), "as": st.just("array")}),
            st.fixed_dictionaries({"shape": st.just(shape), "dtype": st.sampled_from(self.bad_dtypes),
                                   "layout": st.sampled_from(LAYOUTS), "mode": st.sampled_from(self.modes),
                                   "seed": st.integers(0, 2**16), "as": st.just("array")}),
            st.sampled_from([{"literal": None}, {"literal": "abc"}, {"literal": 3}, {"literal": [[1.0], [2.0, 3.0]]},
                             {"literal": {"a": 1}}]))
        ok = st.one_of(good, st.just({"omit": True})) if self.optional else good
        return _p(self.bad_rate).flatmap(lambda b: bad if b else ok)

    def values(self, rng, shape, mode, dims, built):
        raise NotImplementedError

    def build(self, r, dims, built):
        if "literal" in r:
            return r["literal"]
        rng = np.random.default_rng(r["seed"])
        vals = self.values(rng, r["shape"], r["mode"], dims, built)
        dt = np.dtype(r["dtype"])
        with np.errstate(all="ignore"):
            if dt.kind in "OUM":
                arr = vals.astype(np.int64).astype(dt) if dt.kind == "M" else vals.astype(dt)
            elif dt.kind in "iu" and vals.dtype.kind == "f":
                arr = np.nan_to_num(vals, nan=0, posinf=2**62, neginf=-2**62).astype(np.int64).astype(dt)
            else:
                arr = vals.astype(dt)
        if r["as"] == "list":
            return arr.tolist()
        if dt.kind in "OUM":
            return arr
        return layout_view(arr, r["layout"], r["seed"])


class Floats(Array):
    """Floats; modes: normal, extreme (±1e9, ±inf, NaN, 0, denormals), probs (rows sum to 1
    along the last axis), positive."""

    modes = ["normal", "normal", "extreme", "mixed"]
    dtypes = FLOAT_DTYPES
    bad_dtypes = BAD_ARRAY_DTYPES + ["<i4", "<i8", "<u1"]

    def values(self, rng, shape, mode, dims, built):
        shape = tuple(shape)
        x = np.asarray(rng.standard_normal(shape) * 3)  # an array even for shape ()
        if mode == "extreme":
            x = rng.choice(np.array([1e9, -1e9, INF, -INF, NAN, 0.0, 1e-310, 65504.0, -3e38]), size=shape)
        elif mode == "mixed":
            mask = rng.random(shape) < 0.2
            x[mask] = rng.choice(np.array([1e9, -1e9, INF, -INF, NAN]), size=int(mask.sum()))
        elif mode == "probs":
            x = np.asarray(rng.random(shape))
            if x.ndim:
                x /= np.maximum(x.sum(-1, keepdims=True), 1e-12)
        elif mode == "positive":
            x = np.asarray(rng.random(shape) + 0.1)
        return x


class Labels(Array):
    """Integers in [0, high) (high: a dimension name or an int); modes: valid, edge, bad (one
    entry out of range, huge or negative), ignore (some equal to `ignore`)."""

    modes = ["valid", "valid", "valid", "edge", "bad", "ignore"]
    dtypes = INT_DTYPES
    bad_dtypes = BAD_ARRAY_DTYPES + ["<f4", "<f8"]

    def __init__(self, shape, high, ignore=None, **kw):
        super().__init__(shape, **kw)
        self.high, self.ignore = high, ignore

    def values(self, rng, shape, mode, dims, built):
        high = dims[self.high] if isinstance(self.high, str) else self.high
        shape = tuple(shape)
        x = np.asarray(rng.integers(0, max(high, 1), size=shape), dtype=np.int64)
        if x.size and mode == "edge":
            x.flat[0], x.flat[-1] = 0, max(high - 1, 0)
        elif x.size and mode == "bad":
            x.flat[rng.integers(0, x.size)] = rng.choice([-1, high, high + 7, 2**40, -2**40, 2**62])
        elif x.size and mode == "ignore" and self.ignore is not None:
            x[rng.random(shape) < 0.4] = self.ignore
        return x


class Lengths(Kind):
    """Per-sample lengths: `n` entries in [0, high] (a dimension name, or "sum:ARG" to split
    ARG's length exactly, for concatenated CTC labels). A list, tuple or integer array."""

    positional = True

    def __init__(self, n, high, optional=False):
        self.n, self.high, self.optional = n, high, optional

    def strategy(self, dims):
        good = st.fixed_dictionaries({"seed": st.integers(0, 2**16), "mode": st.sampled_from(["random", "full"]),
                                      "as": st.sampled_from(["list", "array", "tuple"]),
                                      "dtype": st.sampled_from(["<i8", "<i4", "<u2", ">i8"])})
        bad = st.one_of(
            st.fixed_dictionaries({"seed": st.integers(0, 2**16), "mode": st.just("random"),
                                   "as": st.sampled_from(["list", "array"]), "dtype": st.just("<i8"),
                                   "set": st.sampled_from([-1, 1, 2**62, 2**63 - 1] + HUGE_INTS + [1.5, None, True])}),
            st.fixed_dictionaries({"seed": st.integers(0, 2**16), "mode": st.sampled_from(["short", "long"]),
                                   "as": st.just("list"), "dtype": st.just("<i8")}),
            st.sampled_from([{"literal": None}, {"literal": "3"}, {"literal": 2.5}, {"literal": [[1, 2]]}]))
        return _p(self.bad_rate).flatmap(lambda b: bad if b else good)

    def build(self, r, dims, built):
        if "literal" in r:
            return r["literal"]
        rng = np.random.default_rng(r["seed"])
        n = dims[self.n] + {"short": -1, "long": 1}.get(r["mode"], 0)
        n = max(n, 0)
        if isinstance(self.high, str) and self.high.startswith("sum:"):
            src = built.get(self.high[4:])
            total = len(src) if hasattr(src, "__len__") else 0
            cuts = np.sort(rng.integers(0, total + 1, size=max(n - 1, 0)))
            vals = np.diff(np.concatenate([[0], cuts, [total]])).tolist() if n else []
        else:
            high = dims[self.high] if isinstance(self.high, str) else self.high
            vals = ([high] * n) if r["mode"] == "full" else rng.integers(0, high + 1, size=n).tolist()
        if "set" in r and n:
            vals[int(rng.integers(0, n))] = r["set"]
            if not all(isinstance(v, int) and not isinstance(v, bool) and -2**63 <= v < 2**63 for v in vals):
                return vals  # only a list can carry these
        if r["as"] == "list":
            return vals
        if r["as"] == "tuple":
            return tuple(vals)
        with np.errstate(all="ignore"):
            return np.array(vals, dtype=np.int64).astype(r["dtype"])


class GradOut(Kind):
    """`grad_out` for the input `of`: None, a fresh array, the input itself (in place), or a
    wrong one (dtype, shape, broadcast, read-only, partial overlap with the input, a list)."""

    GOOD = ["none", "none", "fresh", "inplace", "strided", "alias"]
    BAD = ["wrong_dtype", "wrong_shape", "broadcast", "readonly", "overlap", "list", "f16_for_f32"]

    def __init__(self, of):
        self.of = of

    def strategy(self, dims):
        return _p(0.2).flatmap(lambda b: st.sampled_from(self.BAD if b else self.GOOD)).map(lambda m: {"mode": m})

    def build(self, r, dims, built):
        x, m = built.get(self.of), r["mode"]
        if m == "none" or not isinstance(x, np.ndarray) or x.dtype.kind != "f":
            return None if m in ("none", "fresh", "strided") else (x if m == "inplace" else [0.0])
        native = x.dtype.newbyteorder("=")
        if m == "fresh":
            return np.empty(x.shape, native)
        if m == "strided":
            return layout_view(np.zeros(x.shape, native), "negative" if x.ndim else "c", 0)
        if m == "inplace":
            return x
        if m == "alias":
            # in place, with another float input turned into a view of the same memory (a target
            # x[::-1], a per-class weight x[-1]): the call must still give the copies' answer
            for k, v in built.items():
                if k == self.of or not isinstance(v, np.ndarray) or v.dtype != x.dtype or x.ndim == 0:
                    continue
                if v.shape == x.shape:
                    built[k] = x[::-1]
                    break
                if v.shape == x.shape[1:] and x.shape[0] > 0:
                    built[k] = x[-1]
                    break
            return x
        if m == "wrong_dtype":
            return np.empty(x.shape, np.float64 if native != np.float64 else np.float32)
        if m == "f16_for_f32":
            return np.empty(x.shape, np.float16 if native != np.float16 else np.float32)
        if m == "wrong_shape":
            return np.empty(tuple(_mutate_shape(list(x.shape), "grow")), native)
        if m == "broadcast":
            return np.broadcast_to(np.zeros((1,) * x.ndim, native), x.shape) if x.ndim else np.zeros((), native)
        if m == "readonly":
            g = np.empty(x.shape, native)
            g.flags.writeable = False
            return g
        if m == "overlap":  # the input's memory in another order: neither x itself nor disjoint
            return x[::-1] if x.ndim and x.shape[0] > 1 else np.empty(x.shape, native)
        return x.tolist()


class Option(Kind):
    """A keyword option: `valid` values (or a strategy), `bad` values; omitted sometimes."""

    def __init__(self, valid, bad=(), omit=0.3, bad_rate=0.15):
        self.valid, self.bad, self.omit, self.bad_rate = valid, list(bad), omit, bad_rate

    def strategy(self, dims):
        good = self.valid if isinstance(self.valid, st.SearchStrategy) else st.sampled_from(list(self.valid))
        good = good.map(lambda v: {"v": v})
        if self.bad:
            pick = _p(self.bad_rate).flatmap(lambda b: st.sampled_from(self.bad).map(lambda v: {"v": v}) if b else good)
        else:
            pick = good
        return _p(self.omit).flatmap(lambda o: st.just({"omit": True}) if o else pick)

    def build(self, r, dims, built):
        return special(r["v"])


# Values a JSON recipe cannot hold, written "$name" in option lists.
SPECIAL = {"np.True_": np.True_, "np.int64": np.int64, "np.int32": np.int32, "b'mean'": b"mean", "b'abc'": b"abc"}


def special(v):
    return SPECIAL[v[1:]] if isinstance(v, str) and v.startswith("$") else v


def IntOption(valid, bad=()):
    """An integer option; the bad side always has the out-of-range ints and wrong types."""
    return Option(valid, list(bad) + HUGE_INTS + [1.5, "1", None])


def FloatOption(lo, hi, bad=()):
    return Option(st.floats(lo, hi, allow_nan=False), list(bad) + [NAN, INF, -INF, "0.1", None, 10**400])


FLAG = Option([False, True], bad=[None, "yes", 2, "$np.True_"], omit=0.4, bad_rate=0.05)


def Choice(values, bad=()):
    return Option(list(values), list(bad) + [None, 0, "", "$b'mean'"])


class Text(Kind):
    """A str, sometimes with astral code points, combining marks or whitespace runs."""

    positional = True
    ALPHABET = st.sampled_from(list("abcab  \t\n") + ["\u00e9", "e\u0301", "\U0001F600", "\x00", "\uffff"])

    def strategy(self, dims):
        good = st.lists(self.ALPHABET, max_size=12).map(lambda cs: {"v": "".join(cs)})
        bad = st.sampled_from([{"v": None}, {"v": 3}, {"v": "$b'abc'"}, {"v": ["a"]}])
        return _p(0.1).flatmap(lambda b: bad if b else good)

    def build(self, r, dims, built):
        return special(r["v"])


class Texts(Kind):
    """A list (or tuple) of `n` strings."""

    positional = True

    def __init__(self, n):
        self.n = n

    def strategy(self, dims):
        n = dims[self.n]
        sentence = st.lists(Text.ALPHABET, max_size=10).map("".join)
        good = st.fixed_dictionaries({"v": st.lists(sentence, min_size=n, max_size=n),
                                      "as": st.sampled_from(["list", "list", "tuple"])})
        bad = st.one_of(
            st.lists(st.text(max_size=4), min_size=n + 1, max_size=n + 1).map(lambda v: {"v": v, "as": "list"}),
            st.just({"v": [None] * n, "as": "list"}), st.just({"v": [3] * n, "as": "list"}))
        return _p(0.1).flatmap(lambda b: bad if b else good)

    def build(self, r, dims, built):
        return tuple(r["v"]) if r["as"] == "tuple" else list(r["v"])


class Tokens(Kind):
    """A list of `n` integer token sequences (lists, tuples or 1-D integer arrays); bad:
    tokens beyond int64, floats, None."""

    positional = True

    def __init__(self, n):
        self.n = n

    def strategy(self, dims):
        n = dims[self.n]
        tok = st.one_of(st.integers(-3, 5), st.sampled_from([2**63 - 1, -2**63, 0]))
        seq = st.lists(tok, max_size=10)
        good = st.fixed_dictionaries({"v": st.lists(seq, min_size=n, max_size=n),
                                      "as": st.sampled_from(["list", "tuple", "array"])})
        bad_tok = st.sampled_from([2**63, 2**70, -2**70, 1.5, None, "x", True])
        bad = st.fixed_dictionaries({"v": st.lists(st.lists(st.one_of(tok, bad_tok), min_size=1, max_size=5),
                                                   min_size=n, max_size=n), "as": st.just("list")})
        return _p(0.1).flatmap(lambda b: bad if b else good)

    def build(self, r, dims, built):
        if r["as"] == "tuple":
            return [tuple(s) for s in r["v"]]
        if r["as"] == "array":
            return [np.array(s, dtype=np.int64) for s in r["v"]]
        return [list(s) for s in r["v"]]


WEIGHTS = Option(st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 5)).map(list),
                 bad=[[1, 1], [1, 1, 1, 1], [-1, 1, 1], [1.5, 1, 1], [2**63, 1, 1], [2**70, 1, 1], [2**63 - 1, 1, 1],
                      [2**62, 2**62, 2**62], [1, -2**70, 1], "abc", None, [True, 1, 1]])


# --- result checks ---------------------------------------------------------------------------

def _float_dtype_of(x):
    if isinstance(x, np.ndarray) and x.dtype.kind == "f":
        return np.dtype(x.dtype.newbyteorder("="))
    return np.dtype(np.float64)


def loss_result(first, none_shape):
    """A loss: a NumPy 0-d array (mean/sum) or `none_shape(args)` (none), in the float dtype of
    `first` (float64 for lists); with return_grad/grad_out, `(loss, grad)` with grad shaped and
    typed like `first` (and `grad is grad_out` when one was given)."""

    def check(out, args):
        want_grad = bool(args.get("return_grad")) or args.get("grad_out") is not None
        loss, grad = (out if want_grad else (out, None))
        x = args[first]
        dt = _float_dtype_of(x)
        assert isinstance(loss, np.ndarray), f"loss is {type(loss).__name__}, not a NumPy array"
        assert loss.dtype == dt, f"loss dtype {loss.dtype}, want {dt}"
        shape = tuple(none_shape(args)) if args.get("reduction", "mean") == "none" else ()
        assert loss.shape == shape, f"loss shape {loss.shape}, want {shape}"
        if want_grad:
            assert isinstance(grad, np.ndarray), f"grad is {type(grad).__name__}"
            assert grad.shape == np.shape(x) and grad.dtype == dt, f"grad {grad.shape} {grad.dtype}, want like {first}"
            if args.get("grad_out") is not None:
                assert grad is args["grad_out"], "grad is not the grad_out array"
    return check


def drop_axis(name, axis_arg="axis"):
    def shape(args):
        s = list(np.shape(args[name]))
        ax = args.get(axis_arg, -1)
        del s[ax]
        return s
    return shape


def distance_result(args_count=2):
    """edit_distance: a Python int/float for one pair (two str, or two bytes: sequences of integer
    tokens, as rapidfuzz reads them), else an (N,) int64/float64 array."""

    def check(out, args):
        norm = bool(args.get("normalize"))
        a, b = args["a"], args["b"]

        def tokens(x):  # a flat sequence of integer tokens
            return isinstance(x, (list, tuple)) and len(x) > 0 and isinstance(x[0], (int, np.integer)) \
                and not isinstance(x[0], bool)

        def empty(x):
            return isinstance(x, (list, tuple)) and len(x) == 0
        # one pair of integer token sequences, as edit_distance reads them
        single_tokens = (tokens(a) or tokens(b)) and (tokens(a) or empty(a)) and (tokens(b) or empty(b))
        if isinstance(a, (str, bytes)) or single_tokens:
            assert isinstance(out, (float if norm else int)) and not isinstance(out, bool), f"got {out!r}"
            if norm:
                assert 0.0 <= out <= 1.0 or math.isnan(out), out
            else:
                assert out >= 0, out
            return
        assert isinstance(out, np.ndarray) and out.ndim == 1, f"got {type(out).__name__}"
        assert out.dtype == (np.float64 if norm else np.int64), out.dtype
        assert (out >= 0).all(), out
        if norm:
            assert (out <= 1).all(), out
    return check


def pairwise_result(out, args):
    norm = bool(args.get("normalize"))
    assert isinstance(out, np.ndarray) and out.shape == (len(args["a"]), len(args["b"])), f"got {np.shape(out)}"
    assert out.dtype in ((np.float64,) if norm else (np.int32, np.int64)), out.dtype
    assert (out >= 0).all(), out


def rate_result(out, args):
    assert isinstance(out, (int, float)) and not isinstance(out, bool), f"got {out!r}"
    assert out >= 0 or math.isnan(out), out


def returns(type_):
    def check(out, args):
        assert isinstance(out, type_), f"got {type(out).__name__}, want {type_}"
    return check
