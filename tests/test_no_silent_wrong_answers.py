"""Regression tests for the silent wrong answers a differential fuzzer found (issue 19), one test
named after each item, and the documented NaN / inf / empty-row rules of every family checked
against float64 references (scipy, torch, the formulas)."""
import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch

import fastloss
from test_bi_tempered import ref_binary, ref_loss, ref_tempered_softmax


def rng(seed=0):
    return np.random.default_rng(seed)


# --- 1. an in-place gradient over an input that another input is a view of ------------------------

def test_in_place_grad_out_aliasing_the_target_is_computed_correctly(backend):
    x = rng().standard_normal(1 << 16).astype(np.float32)
    want_loss, want_grad = fastloss.mse_loss(x.copy(), x[::-1].copy(), return_grad=True)
    buf = backend.asarray(x)
    loss, grad = fastloss.mse_loss(buf, buf[::-1], grad_out=buf, return_grad=True)
    assert grad is buf
    np.testing.assert_allclose(backend.to_numpy(loss), want_loss, rtol=1e-6)
    np.testing.assert_allclose(backend.to_numpy(buf), want_grad, rtol=1e-6)


@pytest.mark.parametrize("role", ["targets", "weight", "pos_weight"])
def test_in_place_grad_out_aliasing_weight_or_pos_weight(role):
    base = rng(1).uniform(0.1, 0.9, (64, 8)).astype(np.float64)
    x, t, w, pw = base.copy(), rng(2).uniform(0, 1, (64, 8)), rng(3).uniform(0.5, 2, (64, 8)), rng(4).uniform(1, 3, (8,))
    args = dict(targets=t, weight=w, pos_weight=pw)
    views = dict(targets=lambda b: b[::-1], weight=lambda b: b[:, ::-1], pos_weight=lambda b: b[0])
    args_copy = dict(args)
    args_copy[role] = views[role](base).copy()
    want_loss, want_grad = fastloss.sigmoid_cross_entropy(x, args_copy.pop("targets"), return_grad=True, **args_copy)
    args[role] = views[role](x)
    loss, _ = fastloss.sigmoid_cross_entropy(x, args.pop("targets"), grad_out=x, return_grad=True, **args)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-12)
    np.testing.assert_allclose(x, want_grad, rtol=1e-12)


def test_in_place_grad_out_with_probability_labels_viewing_the_logits():
    p = rng(5).dirichlet(np.ones(7), 32)
    want = torch.tensor(p, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(want, torch.tensor(p))
    ref.backward()
    buf = p.copy()
    loss, grad = fastloss.softmax_cross_entropy(buf, buf, grad_out=buf, return_grad=True)
    np.testing.assert_allclose(loss, ref.item(), rtol=1e-12)
    np.testing.assert_allclose(buf, want.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_partial_overlap_of_grad_out_is_still_a_value_error():
    x = rng().standard_normal(100)
    with pytest.raises(ValueError, match="grad_out"):
        fastloss.mse_loss(x[:50], x[50:], grad_out=x[25:75], return_grad=True)


# --- 2. float64 accumulation of long float32 rows -------------------------------------------------

LONG = 1 << 24


def test_float64_row_accumulation_kl_and_js():
    p = rng(6).uniform(0.5, 1.5, LONG).astype(np.float32)
    q = rng(7).uniform(0.5, 1.5, LONG).astype(np.float32)
    want_kl = scipy.stats.entropy(p.astype(np.float64), q.astype(np.float64))
    pk, qk = p / p.sum(dtype=np.float64), q / q.sum(dtype=np.float64)
    m = (pk + qk) / 2
    want_js = 0.5 * (scipy.special.rel_entr(pk, m).sum() + scipy.special.rel_entr(qk, m).sum())
    assert float(fastloss.kl_divergence(p, q)) == pytest.approx(want_kl, rel=1e-5)
    assert float(fastloss.js_divergence(p, q)) == pytest.approx(want_js, rel=1e-5)
    assert float(fastloss.entropy(p)) == pytest.approx(scipy.stats.entropy(p.astype(np.float64)), rel=1e-6)


def test_float64_row_accumulation_l2_and_center_loss():
    x = rng(8).standard_normal((1, LONG)).astype(np.float32)
    t = rng(9).standard_normal((1, LONG)).astype(np.float32)
    want = np.sqrt(((x.astype(np.float64) - t) ** 2).sum())
    assert float(fastloss.l2_loss(x, t)) == pytest.approx(want, rel=1e-6)
    centers = t.copy()
    want_center = 0.5 * ((x.astype(np.float64) - t) ** 2).sum()
    assert float(fastloss.center_loss(x, np.array([0]), centers)) == pytest.approx(want_center, rel=1e-6)


# --- 3, 4. bi-tempered at t1 >= 2 and outside the tempered softmax's support ----------------------

def test_bi_tempered_t1_at_least_2_one_class_is_finite():
    x = np.array([[1.5]])
    for t1 in (2.0, 2.5, 3.0, 4.0):
        for t2 in (0.5, 1.0, 1.5):
            loss = float(fastloss.bi_tempered_logistic_loss(x, np.array([0]), t1=t1, t2=t2))
            assert math.isfinite(loss) and abs(loss) < 1e-6, (t1, t2, loss)


@pytest.mark.parametrize("t1", [2.5, 3.0, 4.0])
@pytest.mark.parametrize("t2", [0.7, 1.0, 1.3])
def test_bi_tempered_t1_above_2_soft_labels_match_reference(t1, t2):
    x = rng(10).standard_normal((6, 5))
    y = rng(11).dirichlet(np.ones(5), 6)  # every class carries label mass: the loss is finite
    want, want_grad = ref_loss(x, y, t1, t2, reduction="none")
    got, grad = fastloss.bi_tempered_logistic_loss(x, y, t1=t1, t2=t2, reduction="none", return_grad=True)
    finite = np.isfinite(want)
    assert finite.any()
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-9)
    ref_grad = ref_loss(x, y, t1, t2, reduction="sum")[1]
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-9, atol=1e-12)


def test_bi_tempered_t1_equal_2_is_the_limit():
    x = rng(12).standard_normal((4, 6))
    y = rng(13).dirichlet(np.ones(6), 4)
    got = fastloss.bi_tempered_logistic_loss(x, y, t1=2.0, t2=1.2, reduction="none")
    lo = ref_loss(x, y, 2.0 - 1e-6, 1.2, reduction="none")[0]
    hi = ref_loss(x, y, 2.0 + 1e-6, 1.2, reduction="none")[0]
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, (lo + hi) / 2, rtol=1e-6)


def test_bi_tempered_t1_at_least_2_one_hot_is_inf_not_nan():
    x = rng(14).standard_normal((3, 4))
    for t1 in (2.0, 3.0):
        got = fastloss.bi_tempered_logistic_loss(x, np.array([0, 1, 2]), t1=t1, t2=1.0, reduction="none")
        assert np.all(got == np.inf), (t1, got)
        f32 = fastloss.bi_tempered_logistic_loss(x.astype(np.float32), np.array([0, 1, 2]), t1=t1, t2=1.0,
                                                 reduction="none")
        assert np.all(f32 == np.inf)


def test_bi_tempered_outside_the_support_is_the_limit():
    # t2 < 1: classes far below the max get tempered probability exactly 0
    x = np.array([[0.0, 10.0, 20.0]])
    for dtype in (np.float64, np.float32):
        small = fastloss.bi_tempered_logistic_loss(x.astype(dtype), np.array([2]), t1=1.5, t2=0.5)
        assert np.isfinite(small) and 0 <= float(small) < 1e-6
        big = fastloss.bi_tempered_logistic_loss(x.astype(dtype), np.array([0]), t1=1.5, t2=0.5)
        assert float(big) == np.inf
        want = ref_loss(x, np.array([2]), 1.5, 0.5)[0]
        assert float(small) == pytest.approx(want, abs=1e-7)
    loss = fastloss.bi_tempered_binary_logistic_loss(np.array([-20.0, 20.0]), np.array([1.0, 1.0]), t1=1.5, t2=0.5,
                                                     reduction="none")
    want = ref_binary(np.array([-20.0, 20.0]), np.array([1.0, 1.0]), 1.5, 0.5, reduction="none")[0]
    assert not np.any(np.isnan(loss))
    assert loss[0] == np.inf and loss[1] == pytest.approx(want[1], abs=1e-9)


# --- 6. a str against a token sequence, as rapidfuzz --------------------------------------------------

def test_edit_distance_str_against_one_character_tokens():
    from rapidfuzz.distance import Levenshtein
    assert Levenshtein.distance("ab", ["a", "b"]) == 0
    assert fastloss.edit_distance(["ab"], [["a", "b"]]).tolist() == [0]
    assert fastloss.edit_distance(["abc"], [["a", "x", "c"]]).tolist() == [1]
    assert fastloss.pairwise_edit_distance(["ab"], [["a", "b"], ["b"]]).tolist() == [[0, 1]]
    assert fastloss.edit_distance(["ab"], [["a", "b"]], normalize=True).tolist() == [0.0]


# --- 7. divergence edge rows ------------------------------------------------------------------------

def test_divergence_empty_and_negative_sum_rows_follow_scipy():
    empty = np.zeros((2, 0))
    np.testing.assert_array_equal(fastloss.entropy(empty), scipy.stats.entropy(empty, axis=-1))
    np.testing.assert_array_equal(fastloss.kl_divergence(empty, empty), scipy.stats.entropy(empty, empty, axis=-1))
    np.testing.assert_array_equal(fastloss.js_divergence(empty, empty), [0.0, 0.0])
    neg = np.array([[-1.0, 0.5], [-1.0, -2.0]])
    pos = np.array([[1.0, 2.0], [1.0, 2.0]])
    np.testing.assert_allclose(fastloss.entropy(neg), scipy.stats.entropy(neg, axis=-1))
    np.testing.assert_allclose(fastloss.kl_divergence(neg, pos), scipy.stats.entropy(neg, pos, axis=-1))


def test_js_divergence_of_identical_rows_is_not_negative():
    p = rng(15).dirichlet(np.ones(37), 500)
    for dtype in (np.float64, np.float32):
        assert np.all(fastloss.js_divergence(p.astype(dtype), p.astype(dtype)) >= 0)


# --- 8. hard-truncated binary cross-entropy with a NaN target ---------------------------------------

def test_truncated_sigmoid_cross_entropy_nan_target_propagates():
    x, t = np.array([0.5, 1.0, -3.0]), np.array([np.nan, 1.0, 0.0])
    loss, grad = fastloss.truncated_sigmoid_cross_entropy(x, t, reduction="none", return_grad=True)
    assert np.isnan(loss[0]) and np.isnan(grad[0])
    assert np.all(np.isfinite(loss[1:])) and np.all(np.isfinite(grad[1:]))


# --- 9. zero-size row dimensions ----------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (0, 0), (2, 0, 3), (0, 2, 3)])
def test_bi_tempered_zero_size_row_dimension(shape):
    x = np.zeros(shape)
    labels = np.zeros(shape[:-1], dtype=np.int64) if shape[-1] else np.zeros(shape[:-1], dtype=np.int64)
    if shape[-1] == 0 and np.prod(shape[:-1]) > 0:
        with pytest.raises(IndexError, match="labels"):  # no class to point at
            fastloss.bi_tempered_logistic_loss(x, labels, t1=0.8, t2=1.2)
    else:
        assert float(fastloss.bi_tempered_logistic_loss(x, labels, t1=0.8, t2=1.2)) == 0.0
    assert fastloss.tempered_softmax(x, 1.3).shape == shape
    y = np.zeros(shape)
    assert fastloss.bi_tempered_logistic_loss(x, y, t1=0.8, t2=1.2, reduction="none").shape == shape[:-1]


# --- 10. smaller ones -------------------------------------------------------------------------------------

@pytest.mark.parametrize("t", [np.nextafter(1.0, 2.0), np.nextafter(1.0, 0.0), 1 + 1e-9, 1 - 1e-12])
def test_tempered_softmax_one_ulp_from_one_sums_to_one(t):
    x = rng(16).standard_normal((5, 9)) * 3
    out = fastloss.tempered_softmax(x, t)
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(out, scipy.special.softmax(x, axis=-1), rtol=1e-6)
    loss = fastloss.bi_tempered_logistic_loss(x, np.arange(5), t1=1.0, t2=t, reduction="none")
    ce = torch.nn.functional.cross_entropy(torch.tensor(x), torch.arange(5), reduction="none").numpy()
    np.testing.assert_allclose(loss, ce, rtol=1e-6)


@pytest.mark.parametrize("where", [0, 1, 4])
def test_tempered_softmax_below_one_nan_poisons_its_row(where):
    x = rng(17).standard_normal((3, 5))
    x[1, where] = np.nan
    out = fastloss.tempered_softmax(x, 0.5)
    assert np.all(np.isnan(out[1]))
    assert np.all(np.isfinite(out[[0, 2]]))
    loss = fastloss.bi_tempered_logistic_loss(x, np.zeros(3, np.int64), t1=0.8, t2=0.5, reduction="none")
    assert np.isnan(loss[1]) and np.all(np.isfinite(loss[[0, 2]]))


def test_edit_distance_hash_error_reaches_the_caller():
    class Broken:
        def __hash__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fastloss.edit_distance([[Broken()]], [[Broken()]])

    class Unhashable:
        __hash__ = None

    with pytest.raises(TypeError, match="hashable"):
        fastloss.edit_distance([[Unhashable()]], [[1]])


def test_large_margin_softmax_huge_beta_is_the_plain_logit():
    x, w = rng(18).standard_normal((6, 4)), rng(19).standard_normal((4, 5))
    y = np.array([0, 1, 2, 3, 4, 0])
    loss, (gx, gw) = fastloss.large_margin_softmax_loss(x, w, y, margin=3, beta=1e308, return_grad=True)
    want, (wx, ww) = fastloss.large_margin_softmax_loss(x, w, y, margin=1, return_grad=True)
    assert np.isfinite(loss)
    np.testing.assert_allclose(loss, want, rtol=1e-12)
    np.testing.assert_allclose(gx, wx, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(gw, ww, rtol=1e-10, atol=1e-14)


# --- issue 20: the tempered softmax's partition sum in float64 ------------------------------------------

def test_tempered_softmax_float32_long_rows_sum_to_one():
    a = np.random.default_rng(1335).standard_normal((100, 50000)).astype(np.float32)
    out = fastloss.tempered_softmax(a, 2.0, num_iters=20)
    assert np.abs(out.sum(-1, dtype=np.float64) - 1).max() < 1e-5


# --- the documented NaN / inf / empty rules of every family, against references ---------------------------

def _torch(f, *arrays, **kw):
    return f(*[torch.tensor(a) for a in arrays], **kw).numpy()


ELEMENTWISE = {
    "mse_loss": lambda x, t: _torch(torch.nn.functional.mse_loss, x, t, reduction="none"),
    "l1_loss": lambda x, t: _torch(torch.nn.functional.l1_loss, x, t, reduction="none"),
    "huber_loss": lambda x, t: _torch(torch.nn.functional.huber_loss, x, t, reduction="none"),
    "smooth_l1_loss": lambda x, t: _torch(torch.nn.functional.smooth_l1_loss, x, t, reduction="none"),
    # the documented limits at +-inf (a zero coefficient drops its infinite softplus), where torch gives NaN
    "sigmoid_cross_entropy": lambda x, t: (np.where(t == 0, 0.0, t * np.logaddexp(0, -x))
                                           + np.where(t == 1, 0.0, (1 - t) * np.logaddexp(0, x))),
    "log_cosh_loss": lambda x, t: np.logaddexp(x - t, t - x) - np.log(2),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_nan_inf_rules_match_reference(name):
    x = np.array([0.3, np.nan, 1e9, -1e9, np.inf, -np.inf, 2.0, 0.1])
    t = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.0, np.nan, 1.0])
    with np.errstate(all="ignore"):
        want = ELEMENTWISE[name](x, t)
    got = getattr(fastloss, name)(x, t, reduction="none")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(want)], want[~np.isnan(want)], rtol=1e-12)
    assert float(getattr(fastloss, name)(np.zeros(0), np.zeros(0))) == 0.0


ROWWISE = ["softmax_cross_entropy", "softmax_focal_loss", "truncated_cross_entropy", "multiclass_hinge_loss"]


@pytest.mark.parametrize("name", ROWWISE)
def test_row_losses_nan_stays_in_its_row_and_empty_batches_are_zero(name):
    x = rng(20).standard_normal((4, 6))
    x[2, 3] = np.nan
    y = np.array([0, 1, 2, 3])
    loss, grad = getattr(fastloss, name)(x, y, reduction="none", return_grad=True)
    if name == "multiclass_hinge_loss":  # torch's rule: a NaN margin counts 0 (max(0, NaN) = 0)
        want = torch.nn.functional.multi_margin_loss(torch.tensor(x), torch.tensor(y), reduction="none").numpy()
        np.testing.assert_allclose(loss, want, rtol=1e-12)
    else:
        assert np.isnan(loss[2])
    assert np.all(np.isfinite(loss[[0, 1, 3]]))
    assert np.all(np.isfinite(grad[[0, 1, 3]]))
    loss, grad = getattr(fastloss, name)(np.zeros((0, 6)), np.zeros(0, np.int64), return_grad=True)
    assert float(loss) == 0.0 and grad.shape == (0, 6)


@pytest.mark.parametrize("name", ["entropy", "kl_divergence", "js_divergence"])
def test_divergence_nan_inf_rules_match_scipy(name):
    p = np.array([[0.2, 0.8], [np.nan, 1.0], [0.0, 1.0], [np.inf, 1.0], [-0.5, 1.0]])
    q = np.array([[0.5, 0.5], [0.5, 0.5], [1.0, 0.0], [0.5, 0.5], [0.5, 0.5]])
    with np.errstate(all="ignore"):
        if name == "entropy":
            want, got = scipy.stats.entropy(p, axis=-1), fastloss.entropy(p)
        elif name == "kl_divergence":
            want, got = scipy.stats.entropy(p, q, axis=-1), fastloss.kl_divergence(p, q)
        else:
            from scipy.spatial.distance import jensenshannon
            want, got = jensenshannon(p, q, axis=-1) ** 2, fastloss.js_divergence(p, q)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-12, atol=1e-15)


# --- issue 20: divergences with gradients and entropy's base ---------------------------------------------

def _torch_divergences(p, q, base=None):
    tp = torch.tensor(p, requires_grad=True)
    tq = torch.tensor(q, requires_grad=True)
    P, Q = tp / tp.sum(-1, keepdim=True), tq / tq.sum(-1, keepdim=True)
    h = torch.special.entr(P).sum(-1) / (math.log(base) if base else 1.0)
    kl = torch.where(P == 0, torch.zeros_like(P), P * torch.log(P / Q)).sum(-1)
    M = (P + Q) / 2
    js = 0.5 * (torch.where(P == 0, 0.0, P * torch.log(P / M)).sum(-1) + torch.where(Q == 0, 0.0, Q * torch.log(Q / M)).sum(-1))
    out = {}
    for name, v in (("entropy", h), ("kl_divergence", kl), ("js_divergence", js)):
        gp, gq = torch.autograd.grad(v.sum(), (tp, tq), allow_unused=True, retain_graph=True)
        out[name] = (v.detach().numpy(), gp.numpy(), None if gq is None else gq.numpy())
    return out


@pytest.mark.parametrize("base", [None, 2.0, 10.0])
def test_divergence_gradients_match_torch_autograd(backend, base):
    p = rng(21).dirichlet(np.ones(9), 7) * 3
    q = rng(22).dirichlet(np.ones(9), 7) * 0.5
    ref = _torch_divergences(p, q, base)
    bp, bq = backend.asarray(p), backend.asarray(q)
    h, g = fastloss.entropy(bp, base=base, return_grad=True)
    np.testing.assert_allclose(backend.to_numpy(h), ref["entropy"][0], rtol=1e-10)
    np.testing.assert_allclose(backend.to_numpy(g), ref["entropy"][1], rtol=1e-9, atol=1e-12)
    for name in ("kl_divergence", "js_divergence"):
        v, (gp, gq) = getattr(fastloss, name)(bp, bq, return_grad=True)
        np.testing.assert_allclose(backend.to_numpy(v), ref[name][0], rtol=1e-10)
        np.testing.assert_allclose(backend.to_numpy(gp), ref[name][1], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(backend.to_numpy(gq), ref[name][2], rtol=1e-9, atol=1e-12)


def test_divergence_gradients_axis_strides_float32_and_in_place():
    p = rng(23).dirichlet(np.ones(6), (4, 5)).transpose(2, 0, 1)  # class axis 0, strided
    q = rng(24).dirichlet(np.ones(6), (4, 5)).transpose(2, 0, 1)
    v, (gp, gq) = fastloss.kl_divergence(p, q, axis=0, return_grad=True)
    w, (hp, hq) = fastloss.kl_divergence(np.ascontiguousarray(np.moveaxis(p, 0, -1)),
                                         np.ascontiguousarray(np.moveaxis(q, 0, -1)), return_grad=True)
    np.testing.assert_array_equal(v, w)
    np.testing.assert_array_equal(np.moveaxis(gp, 0, -1), hp)
    np.testing.assert_array_equal(np.moveaxis(gq, 0, -1), hq)
    v32, (gp32, _) = fastloss.kl_divergence(p.astype(np.float32), q.astype(np.float32), axis=0, return_grad=True)
    assert gp32.dtype == np.float32
    np.testing.assert_allclose(gp32, gp, rtol=1e-4, atol=1e-5)
    buf = np.moveaxis(p, 0, -1).copy()
    h, g = fastloss.entropy(buf.copy(), return_grad=True)
    h2, g2 = fastloss.entropy(buf, return_grad=True, grad_out=buf)
    assert g2 is buf
    np.testing.assert_array_equal(h, h2)
    np.testing.assert_array_equal(g, buf)


def test_divergence_gradient_zero_entries_take_their_limits():
    p, q = np.array([[0.0, 0.5, 0.5]]), np.array([[0.2, 0.3, 0.5]])
    _, g = fastloss.entropy(p, return_grad=True)
    assert g[0, 0] == np.inf and np.all(np.isfinite(g[0, 1:]))
    _, (gp, gq) = fastloss.kl_divergence(p, q, return_grad=True)
    assert gp[0, 0] == -np.inf and np.all(np.isfinite(gq))
    assert gq[0, 0] == pytest.approx(1.0)  # (1 - pk/qk) / sum(q) with pk = 0
    _, (gp, gq) = fastloss.js_divergence(p, np.array([[0.0, 0.4, 0.6]]), return_grad=True)
    assert gp[0, 0] == pytest.approx(0.5 * math.log(2) - 0.5 * float(
        scipy.special.rel_entr(p[0], (p[0] + [0, 0.4, 0.6]) / 2).sum()))
    assert np.all(np.isfinite(gp)) and np.all(np.isfinite(gq))


def test_entropy_base_matches_scipy_and_bad_bases_raise():
    p = rng(25).dirichlet(np.ones(5), 3)
    for base in (2, 10.0, 0.5, np.e):
        np.testing.assert_allclose(fastloss.entropy(p, base=base), scipy.stats.entropy(p, base=base, axis=-1),
                                   rtol=1e-12)
    for bad in (0, -2.0, 1, 1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="base"):
            fastloss.entropy(p, base=bad)
    with pytest.raises(TypeError, match="base"):
        fastloss.entropy(p, base="2")
