"""ctc_loss: PyTorch as the oracle, brute-force alignment enumeration, finite differences,
property tests, argument errors, and the same cases on CuPy when a GPU is present."""
from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest

import fastloss
from conftest import cupy_or_skip
from fastloss import _C

try:  # the oracle; tests that do not need it (brute force, finite differences, errors) run without
    import torch
    F = torch.nn.functional
except ImportError:  # pragma: no cover
    torch = F = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (the oracle) is not installed")

ISAS = [i for i in ("baseline", "avx2", "avx512")
        if ["baseline", "avx2", "avx512"].index(i) <= ["baseline", "avx2", "avx512"].index(_C.best_cpu_isa())]


@pytest.fixture(params=ISAS)
def isa(request):
    before = _C.get_cpu_isa()
    _C.set_cpu_isa(request.param)
    yield request.param
    _C.set_cpu_isa(before)


# ---------------------------------------------------------------------------------------
# Helpers

def make_batch(rng, T, N, C, S, blank=0, feasible_only=False, zero_len=True, repeats=True):
    """Random logits (T, N, C), padded labels (N, S) avoiding blank, lengths in mixed sizes.
    Some samples have repeated labels, zero-length labels, or are infeasible."""
    x = rng.standard_normal((T, N, C))
    others = np.array([c for c in range(C) if c != blank])
    labels = others[rng.integers(0, len(others), (N, S))]
    if repeats and N > 0 and S >= 2:
        labels[0, 1] = labels[0, 0]  # a repeat (needs an extra blank frame)
    ll = rng.integers(0 if zero_len else min(1, S), S + 1, N)
    il = rng.integers(0, T + 1, N)
    for b in range(N):
        rep = sum(1 for k in range(1, ll[b]) if labels[b, k] == labels[b, k - 1])
        need = ll[b] + rep
        if feasible_only or rng.random() < 0.7:
            if need > T:
                ll[b] = min(ll[b], T // 2)
                rep = sum(1 for k in range(1, ll[b]) if labels[b, k] == labels[b, k - 1])
                need = ll[b] + rep
            il[b] = rng.integers(min(need, T), T + 1)
    if N > 0:
        il[0] = T
    return x, labels, il.astype(np.int64), ll.astype(np.int64)


def _seed(*parts):
    return zlib.crc32(repr(parts).encode())  # stable across processes (hash() is salted)


def log_softmax(x):
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def torch_ctc(logits_tnc, labels, il, ll, *, blank=0, reduction="mean", zero_infinity=False, concat=False):
    """Oracle: torch's loss on log_softmax(logits) and the gradient w.r.t. the logits."""
    if torch is None:
        pytest.skip("PyTorch (the oracle) is not installed")
    xt = torch.tensor(logits_tnc, dtype=torch.float64, requires_grad=True)
    if concat:
        lab = torch.tensor(np.concatenate([labels[b, :ll[b]] for b in range(len(ll))] or [np.zeros(0, np.int64)]),
                           dtype=torch.long)
    else:
        lab = torch.tensor(labels, dtype=torch.long)
    loss = F.ctc_loss(xt.log_softmax(-1), lab, torch.tensor(il), torch.tensor(ll), blank=blank,
                      reduction=reduction, zero_infinity=zero_infinity)
    if loss.numel():
        loss.sum().backward()
        grad = xt.grad.numpy()
    else:
        grad = np.zeros_like(logits_tnc)
    return loss.detach().numpy(), grad


def through_log_softmax(g_lp, lp):
    """Chain the true partial w.r.t. log_probs through log_softmax to the logits."""
    g = np.asarray(g_lp, dtype=np.float64)
    return g - np.exp(lp) * g.sum(-1, keepdims=True)


def concat_labels(labels, ll):
    parts = [labels[b, :ll[b]] for b in range(len(ll))]
    return np.concatenate(parts).astype(labels.dtype) if parts else np.zeros(0, labels.dtype)


def to_layout(a_tnc, layout):
    return a_tnc if layout == "TNC" else np.ascontiguousarray(a_tnc.transpose(1, 0, 2))


def from_layout(a, layout):
    return a if layout == "TNC" else a.transpose(1, 0, 2)


def assert_close(a, b, rtol, atol):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True)


def check_against_torch(x, labels, il, ll, *, blank, reduction, layout, concat, from_logits, dtype,
                        zero_infinity=False, rtol=1e-5, atol=1e-6, xp=np):
    ref_loss, ref_grad = torch_ctc(x, labels, il, ll, blank=blank, reduction=reduction,
                                   zero_infinity=zero_infinity, concat=concat)
    lp = log_softmax(x)
    inp = to_layout((x if from_logits else lp).astype(dtype), layout)
    lab = concat_labels(labels, ll) if concat else labels
    loss, grad = fastloss.ctc_loss(xp.asarray(inp), xp.asarray(lab), xp.asarray(il), xp.asarray(ll), blank=blank,
                                   layout=layout, from_logits=from_logits, zero_infinity=zero_infinity,
                                   reduction=reduction, return_grad=True)
    if xp is not np:
        loss, grad = loss.get(), grad.get()
    assert loss.dtype == np.dtype(dtype) and grad.dtype == np.dtype(dtype)
    assert grad.shape == inp.shape
    assert loss.shape == (() if reduction != "none" else (len(il),))
    g = from_layout(grad.astype(np.float64), layout)
    if not from_logits:
        g = through_log_softmax(g, lp)
    assert_close(loss, ref_loss, rtol, atol)
    assert_close(g, ref_grad, rtol, atol)
    return loss, grad


TOL = {np.float64: (1e-9, 1e-11), np.float32: (2e-4, 2e-5), np.float16: (2e-2, 5e-3)}


# ---------------------------------------------------------------------------------------
# Against PyTorch

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("layout", ["TNC", "NTC"])
@pytest.mark.parametrize("concat", [False, True])
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_torch(reduction, layout, concat, from_logits, dtype):
    rng = np.random.default_rng(_seed(reduction, layout, concat, from_logits, np.dtype(dtype).name))
    x, labels, il, ll = make_batch(rng, T=17, N=6, C=7, S=6, blank=3, feasible_only=True)
    check_against_torch(x, labels, il, ll, blank=3, reduction=reduction, layout=layout, concat=concat,
                        from_logits=from_logits, dtype=dtype, rtol=TOL[dtype][0], atol=TOL[dtype][1])


@pytest.mark.parametrize("blank", [0, 4, 9])
def test_any_blank_every_isa(isa, blank):
    rng = np.random.default_rng(blank)
    x, labels, il, ll = make_batch(rng, T=40, N=9, C=10, S=15, blank=blank, feasible_only=True)
    for dtype in (np.float64, np.float32):
        for fl in (False, True):
            check_against_torch(x, labels, il, ll, blank=blank, reduction="mean", layout="TNC", concat=False,
                                from_logits=fl, dtype=dtype, rtol=TOL[dtype][0], atol=TOL[dtype][1])


@pytest.mark.parametrize("zero_infinity", [False, True])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_infeasible(zero_infinity, reduction):
    rng = np.random.default_rng(7)
    T, N, C = 6, 4, 5
    x = rng.standard_normal((T, N, C))
    labels = np.array([[1, 1, 1, 1], [1, 2, 3, 4], [2, 2, 0, 0], [1, 2, 3, 1]])
    il = np.array([6, 3, 3, 6])  # sample 0 needs 7 frames, sample 1 needs 4, sample 2 needs 3
    ll = np.array([4, 4, 2, 4])
    loss, grad = check_against_torch(x, labels, il, ll, blank=0, reduction=reduction, layout="TNC", concat=False,
                                     from_logits=True, dtype=np.float64, zero_infinity=zero_infinity,
                                     rtol=1e-9, atol=1e-11)
    per = fastloss.ctc_loss(x, labels, il, ll, from_logits=True, zero_infinity=zero_infinity, reduction="none")
    if zero_infinity:
        assert per[0] == 0 and per[1] == 0 and np.isfinite(per).all()
        assert (grad[:, :2] == 0).all()
    else:
        assert np.isinf(per[0]) and np.isinf(per[1]) and per[0] > 0
        if reduction != "none":
            assert np.isinf(loss)
    assert np.isfinite(per[2]) and np.isfinite(per[3])
    assert (grad[il[1]:, 1] == 0).all()  # frames past the input length: zero even when infeasible


def test_zero_lengths():
    rng = np.random.default_rng(3)
    T, N, C = 5, 4, 4
    x = rng.standard_normal((T, N, C))
    labels = np.array([[1, 2], [1, 2], [3, 3], [1, 1]])
    il = np.array([0, 0, 5, 4])
    ll = np.array([0, 2, 0, 0])  # empty/empty (loss 0), empty input with labels (inf), blanks only
    for red in ("none", "mean", "sum"):
        for zi in (False, True):
            check_against_torch(x, labels, il, ll, blank=0, reduction=red, layout="TNC", concat=False,
                                from_logits=True, dtype=np.float64, zero_infinity=zi, rtol=1e-9, atol=1e-11)
    per = fastloss.ctc_loss(x, labels, il, ll, from_logits=True, reduction="none")
    assert per[0] == 0 and np.isinf(per[1])
    # label length 0 counts as 1 in the mean
    m = fastloss.ctc_loss(x[:, 2:], labels[2:], il[2:], ll[2:], from_logits=True)
    np.testing.assert_allclose(m, per[2:].mean(), rtol=1e-12)


def test_empty_batch():
    x = np.zeros((5, 0, 3))
    loss, grad = fastloss.ctc_loss(x, np.zeros((0, 2), np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64),
                                   return_grad=True)
    assert float(loss) == 0.0 and grad.shape == (5, 0, 3)
    assert fastloss.ctc_loss(x, np.zeros(0, np.int64), [], [], reduction="none").shape == (0,)


def test_minus_inf_inputs():
    """-inf logits/log-probs (impossible classes): the loss matches torch; the gradient of the
    feasible samples stays finite (torch's has NaN there) and equals torch's where that is finite."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3, 5))
    x[2, :, 1] = -np.inf
    x[:, 2, 3] = -np.inf  # sample 2 needs class 3: infeasible
    lab, il, ll = np.array([[1, 2], [2, 1], [3, 4]]), np.array([8, 8, 8]), np.array([2, 2, 2])
    ref_loss, ref_grad = torch_ctc(x, lab, il, ll, reduction="none")
    for fl in (True, False):
        inp = x if fl else log_softmax(x)
        loss, grad = fastloss.ctc_loss(inp, lab, il, ll, from_logits=fl, reduction="none", return_grad=True)
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
        assert np.isfinite(grad[:, :2]).all() and np.isnan(grad[:, 2]).all()
        g = grad if fl else through_log_softmax(np.where(np.isinf(inp), 0, grad), np.where(np.isinf(inp), -np.inf, inp))
        ok = np.isfinite(ref_grad)
        np.testing.assert_allclose(g[ok], ref_grad[ok], rtol=1e-9, atol=1e-12)


@needs_torch
def test_unbatched():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((9, 5))
    lab = np.array([1, 3, 3])
    for red in ("none", "mean", "sum"):
        xt = torch.tensor(x, requires_grad=True)
        ref = F.ctc_loss(xt.log_softmax(-1), torch.tensor(lab), torch.tensor(9), torch.tensor(3), reduction=red)
        ref.backward()
        loss, grad = fastloss.ctc_loss(x, lab, 9, 3, from_logits=True, reduction=red, return_grad=True)
        assert loss.shape == () and grad.shape == x.shape
        np.testing.assert_allclose(loss, ref.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_no_frames():
    # T = 0 (torch refuses it): empty labels give 0, others inf
    loss, grad = fastloss.ctc_loss(np.zeros((0, 2, 3)), np.array([[1], [1]]), [0, 0], [0, 1], reduction="none",
                                   return_grad=True)
    assert loss[0] == 0 and np.isinf(loss[1]) and grad.shape == (0, 2, 3)


def test_random_batches_mixed():
    """Random batches with repeats, blank not 0, mixed (sometimes infeasible) lengths."""
    rng = np.random.default_rng(11)
    for trial in range(12):
        T, N, C, S = rng.integers(1, 30), rng.integers(1, 8), rng.integers(2, 12), rng.integers(1, 10)
        blank = int(rng.integers(0, C))
        x, labels, il, ll = make_batch(rng, T, N, C, S, blank=blank)
        for red in ("none", "mean", "sum"):
            check_against_torch(x, labels, il, ll, blank=blank, reduction=red, layout="TNC" if trial % 2 else "NTC",
                                concat=bool(trial % 3 == 0), from_logits=bool(trial % 2), dtype=np.float64,
                                zero_infinity=bool(trial % 4 == 1), rtol=1e-9, atol=1e-11)


def test_long_labels_many_classes():
    rng = np.random.default_rng(5)
    x, labels, il, ll = make_batch(rng, T=120, N=5, C=300, S=50, blank=299, feasible_only=True)
    check_against_torch(x, labels, il, ll, blank=299, reduction="mean", layout="NTC", concat=True, from_logits=True,
                        dtype=np.float32, rtol=TOL[np.float32][0], atol=TOL[np.float32][1])


def test_float16():
    rng = np.random.default_rng(2)
    x, labels, il, ll = make_batch(rng, T=20, N=4, C=6, S=5, feasible_only=True)
    x16 = x.astype(np.float16)
    # the oracle sees the float16-rounded input
    for fl in (False, True):
        inp = x16 if fl else log_softmax(x16.astype(np.float64)).astype(np.float16)
        loss, grad = fastloss.ctc_loss(inp, labels, il, ll, from_logits=fl, return_grad=True, reduction="sum")
        assert loss.dtype == np.float16 and grad.dtype == np.float16
        ref32, g32 = fastloss.ctc_loss(inp.astype(np.float32), labels, il, ll, from_logits=fl, return_grad=True,
                                       reduction="sum")
        np.testing.assert_allclose(loss.astype(np.float32), ref32, rtol=2e-3)
        np.testing.assert_allclose(grad.astype(np.float32), g32, rtol=2e-3, atol=2e-3)
        ref_loss, ref_grad = torch_ctc(x16.astype(np.float64), labels, il, ll, reduction="sum")
        np.testing.assert_allclose(float(loss), ref_loss, rtol=1e-2)


def test_strided_inputs():
    rng = np.random.default_rng(9)
    T, N, C, S = 14, 5, 8, 5
    x, labels, il, ll = make_batch(rng, T, N, C, S, blank=2, feasible_only=True)
    ref_loss, ref_grad = torch_ctc(x, labels, il, ll, blank=2, reduction="none")
    lp = log_softmax(x)
    big = np.zeros((T, 2 * N, 3 * C))
    big[:, ::2, ::3] = lp
    views = {
        "sliced": big[:, ::2, ::3],
        "negative": np.ascontiguousarray(lp[::-1, ::-1, ::-1])[::-1, ::-1, ::-1],
        "fortran": np.asfortranarray(lp),
        "class-reversed": np.ascontiguousarray(lp[:, :, ::-1])[:, :, ::-1],
    }
    lab_big = np.zeros((N, 2 * S), np.int32)
    lab_big[:, ::2] = labels
    for name, v in views.items():
        assert np.array_equal(v, lp), name
        for lab in (labels, lab_big[:, ::2], np.asfortranarray(labels.astype(np.int16))):
            loss, grad = fastloss.ctc_loss(v, lab, il, ll, blank=2, reduction="none", return_grad=True)
            assert_close(loss, ref_loss, 1e-9, 1e-11)
            assert_close(through_log_softmax(grad, lp), ref_grad, 1e-9, 1e-11)
    # NTC given as a transposed view of a TNC array, float32
    loss, grad = fastloss.ctc_loss(lp.astype(np.float32).transpose(1, 0, 2), labels, il, ll, blank=2, layout="NTC",
                                   reduction="none", return_grad=True)
    assert grad.shape == (N, T, C)
    assert_close(loss, ref_loss, 2e-4, 2e-5)
    assert_close(through_log_softmax(grad.transpose(1, 0, 2), lp), ref_grad, 2e-4, 2e-5)
    # concatenated labels as a strided 1-D view, lengths as lists of another int type
    cat = concat_labels(labels, ll)
    cat_big = np.zeros(2 * len(cat), np.uint8)
    cat_big[::2] = cat
    loss = fastloss.ctc_loss(lp, cat_big[::2], list(il), ll.astype(np.int32), blank=2, reduction="none")
    assert_close(loss, ref_loss, 1e-9, 1e-11)


def test_threads_and_isa_agree(isa):
    rng = np.random.default_rng(4)
    x, labels, il, ll = make_batch(rng, T=50, N=7, C=20, S=12, blank=1)
    before = fastloss.get_num_threads()
    try:
        out = []
        for n in (1, 2):
            fastloss.set_num_threads(n)
            out.append(fastloss.ctc_loss(x.astype(np.float32), labels, il, ll, blank=1, from_logits=True,
                                         reduction="none", return_grad=True))
        np.testing.assert_array_equal(out[0][0], out[1][0])
        np.testing.assert_array_equal(out[0][1], out[1][1])
    finally:
        fastloss.set_num_threads(before)


@needs_torch
def test_unnormalised_log_probs_keep_their_value():
    # log_probs that are not normalised: the loss may be negative, as torch's
    lp = np.zeros((5, 1, 4))
    loss = fastloss.ctc_loss(lp, np.array([[1]]), [5], [1], reduction="none")
    ref = F.ctc_loss(torch.zeros(5, 1, 4, dtype=torch.float64), torch.tensor([[1]]), torch.tensor([5]),
                     torch.tensor([1]), reduction="none")
    np.testing.assert_allclose(loss, ref.numpy(), rtol=1e-12)
    assert loss[0] < 0


def test_never_slightly_negative():
    # a certain alignment: probability 1 at every frame, loss exactly 0, never -1e-8
    T, C = 30, 5
    x = np.full((T, 3, C), -60.0, np.float32)
    x[:, :, 0] = 60.0
    for fl in (True, False):
        inp = x if fl else log_softmax(x.astype(np.float64)).astype(np.float32)
        loss = fastloss.ctc_loss(inp, np.zeros((3, 0), np.int64), [T, T, 7], [0, 0, 0], from_logits=fl,
                                 reduction="none")
        assert (loss >= 0).all() and (loss < 1e-5).all()


# ---------------------------------------------------------------------------------------
# Exact references

def brute_force(lp_tc, labels, blank):
    """-log of the sum over every frame labelling that collapses to `labels` (float64)."""
    T, C = lp_tc.shape
    total = -np.inf
    target = tuple(labels)
    for path in itertools.product(range(C), repeat=T):
        out, prev = [], None
        for c in path:
            if c != prev and c != blank:
                out.append(c)
            prev = c
        if tuple(out) == target:
            total = np.logaddexp(total, sum(lp_tc[t, c] for t, c in enumerate(path)))
    return -total


@pytest.mark.parametrize("case", [
    (4, 3, [1, 2], 0), (5, 3, [1, 1], 0), (4, 3, [], 1), (3, 3, [1, 1], 0), (5, 4, [3, 1, 3], 2), (1, 2, [1], 0),
    (6, 3, [2, 0, 2], 1),
])
def test_brute_force(case):
    T, C, lab, blank = case
    rng = np.random.default_rng(T * 100 + C)
    lp = rng.standard_normal((T, 1, C))  # not normalised: the recursion must not assume it
    ref = brute_force(lp[:, 0], lab, blank)
    labels = np.array([lab + [0] * (3 - len(lab))]) if lab else np.zeros((1, 1), np.int64)
    got = fastloss.ctc_loss(lp, labels, [T], [len(lab)], blank=blank, reduction="none")
    if np.isinf(ref):
        assert np.isinf(got[0])
    else:
        np.testing.assert_allclose(got[0], ref, rtol=1e-12)


def finite_diff(f, x, eps=1e-6):
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        xp_, xm = x.copy(), x.copy()
        xp_[i] += eps
        xm[i] -= eps
        g[i] = (f(xp_) - f(xm)) / (2 * eps)
    return g


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("layout", ["TNC", "NTC"])
def test_finite_differences(from_logits, reduction, layout):
    rng = np.random.default_rng(1)
    T, N, C = 6, 3, 4
    x = rng.standard_normal((T, N, C))  # unnormalised: the true partial w.r.t. log_probs
    labels = np.array([[1, 2, 2], [3, 1, 0], [2, 0, 0]])
    il, ll = np.array([6, 5, 4]), np.array([3, 2, 1])
    inp = to_layout(x, layout)

    def f(v):
        return float(fastloss.ctc_loss(v, labels, il, ll, layout=layout, from_logits=from_logits,
                                       reduction=reduction))

    _, g = fastloss.ctc_loss(inp, labels, il, ll, layout=layout, from_logits=from_logits, reduction=reduction,
                             return_grad=True)
    np.testing.assert_allclose(g, finite_diff(f, inp.copy()), rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------------------
# Property test

try:
    from hypothesis import given, settings, strategies as st
except ImportError:  # pragma: no cover
    given = None

if given is not None and torch is not None:
    @settings(max_examples=60, deadline=None)
    @given(T=st.integers(1, 12), N=st.integers(1, 4), C=st.integers(2, 6), S=st.integers(0, 6),
           seed=st.integers(0, 2**31 - 1), layout=st.sampled_from(["TNC", "NTC"]), concat=st.booleans(),
           from_logits=st.booleans(), zero_infinity=st.booleans(),
           reduction=st.sampled_from(["mean", "sum", "none"]))
    def test_property_matches_torch(T, N, C, S, seed, layout, concat, from_logits, zero_infinity, reduction):
        _property_case(T, N, C, S, seed, layout, concat, from_logits, zero_infinity, reduction)
else:  # pragma: no cover
    @pytest.mark.skip(reason="needs hypothesis and PyTorch")
    def test_property_matches_torch():
        pass


def _property_case(T, N, C, S, seed, layout, concat, from_logits, zero_infinity, reduction):
    rng = np.random.default_rng(seed)
    blank = int(rng.integers(0, C))
    if S == 0:
        x = rng.standard_normal((T, N, C))
        labels = np.zeros((N, 0), np.int64)
        il, ll = rng.integers(0, T + 1, N), np.zeros(N, np.int64)
    else:
        x, labels, il, ll = make_batch(rng, max(T, 1), N, C, S, blank=blank)
        x, il = x[:T], np.minimum(il, T)
    check_against_torch(x, labels, il, ll, blank=blank, reduction=reduction, layout=layout, concat=concat,
                        from_logits=from_logits, dtype=np.float64, zero_infinity=zero_infinity,
                        rtol=1e-9, atol=1e-11)


# ---------------------------------------------------------------------------------------
# Bad inputs: raise before any kernel runs, with the argument named

def _ok():
    rng = np.random.default_rng(0)
    x = log_softmax(rng.standard_normal((6, 2, 5)))
    return x, np.array([[1, 2], [3, 4]]), np.array([6, 5]), np.array([2, 1])


@pytest.mark.parametrize("mutate, exc, words", [
    (lambda a: a.update(input_lengths=np.array([7, 5])), ValueError, ["input_lengths[0]", "7"]),
    (lambda a: a.update(input_lengths=np.array([6, -1])), ValueError, ["input_lengths[1]", "-1"]),
    (lambda a: a.update(label_lengths=np.array([3, 1])), ValueError, ["label_lengths[0]", "3"]),
    (lambda a: a.update(label_lengths=np.array([2, -2])), ValueError, ["label_lengths[1]", "-2"]),
    (lambda a: a.update(input_lengths=np.array([6])), ValueError, ["input_lengths"]),
    (lambda a: a.update(label_lengths=np.array([[2, 1]])), ValueError, ["label_lengths"]),
    (lambda a: a.update(labels=np.array([[1, 5], [3, 4]])), IndexError, ["labels[0, 1]", "5"]),
    (lambda a: a.update(labels=np.array([[1, 2], [-1, 4]])), IndexError, ["labels[1, 0]", "-1"]),
    (lambda a: a.update(labels=np.array([[1, 2], [3, 0]]), label_lengths=np.array([2, 2])), ValueError,
     ["labels[1, 1]", "blank"]),
    (lambda a: a.update(labels=np.array([1, 2, 7])), IndexError, ["labels[2]", "7"]),
    (lambda a: a.update(labels=np.array([1, 2])), ValueError, ["label_lengths", "concatenated"]),
    (lambda a: a.update(labels=np.array([[1, 2]])), ValueError, ["labels"]),
    (lambda a: a.update(labels=np.zeros((2, 2, 1), np.int64)), ValueError, ["labels"]),
    (lambda a: a.update(labels=np.array([[1.0, 2.0], [3.0, 4.0]])), TypeError, ["labels"]),
    (lambda a: a.update(blank=5), ValueError, ["blank", "5"]),
    (lambda a: a.update(blank=-1), ValueError, ["blank", "-1"]),
    (lambda a: a.update(log_probs=np.zeros((6,))), ValueError, ["log_probs", "3-D"]),
    (lambda a: a.update(log_probs=np.zeros((6, 2, 5, 1))), ValueError, ["log_probs", "3-D"]),
    (lambda a: a.update(log_probs=np.zeros((6, 2, 5), np.int32)), TypeError, ["log_probs"]),
    (lambda a: a.update(layout="NCT"), ValueError, ["layout"]),
    (lambda a: a.update(reduction="avg"), ValueError, ["reduction"]),
    (lambda a: a.update(input_lengths=np.array([6.0, 5.0])), TypeError, ["input_lengths"]),
    (lambda a: a.update(layout="NTC"), ValueError, ["input_lengths"]),  # (N=6) lengths for N=2
])
def test_bad_inputs(mutate, exc, words):
    x, labels, il, ll = _ok()
    args = dict(log_probs=x, labels=labels, input_lengths=il, label_lengths=ll, blank=0, layout="TNC",
                reduction="mean")
    mutate(args)
    grad_sentinel = None
    with pytest.raises(exc) as info:
        grad_sentinel = fastloss.ctc_loss(args.pop("log_probs"), args.pop("labels"), args.pop("input_lengths"),
                                          args.pop("label_lengths"), return_grad=True, **args)
    assert grad_sentinel is None
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_good_call_after_errors():
    x, labels, il, ll = _ok()
    ref, _ = torch_ctc(x, labels, il, ll)
    np.testing.assert_allclose(fastloss.ctc_loss(x, labels, il, ll), ref, rtol=1e-12)


# ---------------------------------------------------------------------------------------
# CUDA: the same cases on CuPy arrays



class TestCuda:
    @pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
    @pytest.mark.parametrize("layout", ["TNC", "NTC"])
    @pytest.mark.parametrize("concat", [False, True])
    @pytest.mark.parametrize("from_logits", [False, True])
    @pytest.mark.parametrize("dtype", [np.float64, np.float32])
    def test_matches_torch(self, reduction, layout, concat, from_logits, dtype):
        cp = cupy_or_skip()
        rng = np.random.default_rng(_seed(reduction, layout, concat, from_logits))
        x, labels, il, ll = make_batch(rng, T=17, N=6, C=7, S=6, blank=3, feasible_only=True)
        check_against_torch(x, labels, il, ll, blank=3, reduction=reduction, layout=layout, concat=concat,
                            from_logits=from_logits, dtype=dtype, rtol=TOL[dtype][0], atol=TOL[dtype][1], xp=cp)

    @pytest.mark.parametrize("zero_infinity", [False, True])
    def test_random_mixed(self, zero_infinity):
        cp = cupy_or_skip()
        rng = np.random.default_rng(11)
        for trial in range(8):
            T, N, C, S = rng.integers(1, 30), rng.integers(1, 8), rng.integers(2, 12), rng.integers(1, 10)
            blank = int(rng.integers(0, C))
            x, labels, il, ll = make_batch(rng, T, N, C, S, blank=blank)
            check_against_torch(x, labels, il, ll, blank=blank, reduction="none", layout="TNC", concat=trial % 2 == 0,
                                from_logits=bool(trial % 2), dtype=np.float64, zero_infinity=zero_infinity,
                                rtol=1e-9, atol=1e-11, xp=cp)

    def test_long_labels_and_large_classes(self):
        cp = cupy_or_skip()
        rng = np.random.default_rng(5)
        x, labels, il, ll = make_batch(rng, T=900, N=2, C=2000, S=420, blank=7, feasible_only=True)
        check_against_torch(x, labels, il, ll, blank=7, reduction="mean", layout="NTC", concat=False,
                            from_logits=True, dtype=np.float32, rtol=1e-3, atol=1e-5, xp=cp)

    @pytest.mark.parametrize("T,N,C,S,what", [
        (1300, 1, 9, 600, "more extended states (1201) than threads (1024)"),
        (6, 3, 60000, 2, "class table larger than shared memory: working set in the workspace"),
    ])
    def test_working_set_beyond_the_block(self, T, N, C, S, what):
        cp = cupy_or_skip()
        rng = np.random.default_rng(T + C)
        x, labels, il, ll = make_batch(rng, T=T, N=N, C=C, S=S, blank=1, feasible_only=True)
        ll[0], il[0] = S, T  # the longest label sets the block's states
        check_against_torch(x, labels, il, ll, blank=1, reduction="sum", layout="TNC", concat=False,
                            from_logits=True, dtype=np.float64, rtol=1e-9, atol=1e-11, xp=cp)

    def test_same_bits_every_run(self):
        # Few classes and long labels: each class's posterior sums dozens of states, the
        # blank's over a hundred, in a fixed order (no floating-point atomics).
        cp = cupy_or_skip()
        rng = np.random.default_rng(4)
        x, labels, il, ll = make_batch(rng, T=150, N=3, C=4, S=60, blank=2, feasible_only=True)
        args = [cp.asarray(a) for a in (x.astype(np.float32), labels, il, ll)]
        runs = [fastloss.ctc_loss(*args, blank=2, from_logits=True, return_grad=True) for _ in range(3)]
        for loss, grad in runs[1:]:
            np.testing.assert_array_equal(loss.get(), runs[0][0].get())
            np.testing.assert_array_equal(grad.get(), runs[0][1].get())
        check_against_torch(x, labels, il, ll, blank=2, reduction="mean", layout="TNC", concat=False,
                            from_logits=True, dtype=np.float32, rtol=1e-3, atol=1e-5, xp=cp)

    def test_float16_and_strided(self):
        cp = cupy_or_skip()
        rng = np.random.default_rng(2)
        x, labels, il, ll = make_batch(rng, T=20, N=4, C=6, S=5, feasible_only=True)
        x16 = x.astype(np.float16)
        loss, grad = fastloss.ctc_loss(cp.asarray(x16), cp.asarray(labels), cp.asarray(il), cp.asarray(ll),
                                       from_logits=True, return_grad=True, reduction="sum")
        ref, gref = fastloss.ctc_loss(x16, labels, il, ll, from_logits=True, return_grad=True, reduction="sum")
        assert loss.dtype == np.float16
        np.testing.assert_allclose(float(loss), float(ref), rtol=2e-3)
        np.testing.assert_allclose(grad.get().astype(np.float32), gref.astype(np.float32), atol=2e-3)
        big = cp.zeros((20, 8, 12))
        big[:, ::2, ::2] = cp.asarray(x)
        loss = fastloss.ctc_loss(big[:, ::2, ::2], cp.asarray(labels), cp.asarray(il), cp.asarray(ll),
                                 from_logits=True, reduction="none")
        ref = fastloss.ctc_loss(x, labels, il, ll, from_logits=True, reduction="none")
        np.testing.assert_allclose(loss.get(), ref, rtol=1e-10)

    def test_bad_labels_raise(self):
        cp = cupy_or_skip()
        x, labels, il, ll = _ok()
        with pytest.raises(IndexError, match=r"labels\[0, 1\]"):
            fastloss.ctc_loss(cp.asarray(x), cp.asarray(np.array([[1, 9], [3, 4]])), cp.asarray(il), cp.asarray(ll))
        with pytest.raises(ValueError, match="input_lengths"):
            fastloss.ctc_loss(cp.asarray(x), cp.asarray(labels), cp.asarray(np.array([9, 1])), cp.asarray(ll))
        with pytest.raises(TypeError):
            fastloss.ctc_loss(cp.asarray(x), labels, cp.asarray(il), cp.asarray(ll))


# --------------------------------------------------------------------------- grad_out (issue 20)
@pytest.mark.parametrize("layout", ["TNC", "NTC"])
@pytest.mark.parametrize("from_logits", [False, True])
def test_grad_out(backend, layout, from_logits):
    from grad_out_check import check_grad_out
    rng = np.random.default_rng(2023)
    x, labels, il, ll = make_batch(rng, T=9, N=4, C=5, S=3, blank=0, feasible_only=True)
    if layout == "NTC":
        x = np.ascontiguousarray(x.transpose(1, 0, 2))
    check_grad_out(fastloss.ctc_loss, [x, labels, il, ll], dict(layout=layout, from_logits=from_logits), backend,
                   rtol=1e-10, atol=1e-12)
