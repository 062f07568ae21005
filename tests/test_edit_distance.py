"""edit_distance / pairwise_edit_distance / error_rate against rapidfuzz, jiwer and a plain DP."""
import random

import numpy as np
import pytest

import fastloss
from conftest import cupy_or_skip
from fastloss import _C

rapidfuzz = pytest.importorskip("rapidfuzz")
from rapidfuzz.distance import Levenshtein  # noqa: E402
from rapidfuzz.process import cdist  # noqa: E402

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

WEIGHTS = [(1, 1, 1), (1, 1, 2), (2, 1, 1), (1, 2, 3), (0, 1, 1), (3, 3, 1), (1, 1, 0), (2, 2, 2), (2, 2, 5),
           (0, 0, 3), (1, 0, 1), (5, 3, 9)]
ALPHABETS = ["ab", "abcdefghij", "aé€b", "x\U0001F600\U0001F601\U00010348", "".join(chr(c) for c in range(200, 300))]


def dp_reference(a, b, w=(1, 1, 1)):
    ins, dele, sub = w
    prev = [j * ins for j in range(len(b) + 1)]
    for i in range(1, len(a) + 1):
        cur = [i * dele] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cur[j] = min(prev[j] + dele, cur[j - 1] + ins, prev[j - 1] + (0 if a[i - 1] == b[j - 1] else sub))
        prev = cur
    return prev[-1]


def rand_str(rng, n, alphabet):
    return "".join(rng.choice(alphabet) for _ in range(n))


def mutate(rng, s, alphabet, edits):
    t = list(s)
    for _ in range(edits):
        i = rng.randrange(len(t) + 1)
        op = rng.randrange(3)
        if op == 0:
            t.insert(i, rng.choice(alphabet))
        elif i < len(t):
            if op == 1:
                del t[i]
            else:
                t[i] = rng.choice(alphabet)
    return "".join(t)


def mutate_list(rng, t, edits):
    t = list(t)
    for _ in range(edits):
        i = rng.randrange(len(t) + 1)
        op = rng.randrange(3)
        if op == 0:
            t.insert(i, rng.randrange(-3, 300))
        elif i < len(t):
            if op == 1:
                del t[i]
            else:
                t[i] = rng.randrange(-3, 300)
    return t


def pairs(seed, count, lengths, related=0.5):
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        alpha = rng.choice(ALPHABETS)
        a = rand_str(rng, rng.choice(lengths), alpha)
        b = mutate(rng, a, alpha, rng.randrange(0, len(a) // 5 + 2)) if rng.random() < related \
            else rand_str(rng, rng.choice(lengths), alpha)
        out.append((a, b))
    return out


@pytest.fixture(params=["avx512", "avx2", "baseline"])
def isa(request):
    best = _C.best_cpu_isa()
    order = ["baseline", "avx2", "avx512"]
    if order.index(request.param) > order.index(best):
        pytest.skip(f"CPU lacks {request.param}")
    old = _C.get_cpu_isa()
    _C.set_cpu_isa(request.param)
    yield request.param
    _C.set_cpu_isa(old)


# ---------------------------------------------------------------------------------------
class TestStrings:
    def test_examples(self):
        assert fastloss.edit_distance("kitten", "sitting") == 3
        assert fastloss.edit_distance("", "") == 0
        assert fastloss.edit_distance("", "abc") == 3
        assert fastloss.edit_distance("abc", "", weights=(1, 4, 1)) == 12
        assert isinstance(fastloss.edit_distance("a", "b"), int)
        assert fastloss.edit_distance("", "", normalize=True) == 0.0
        assert isinstance(fastloss.edit_distance("a", "b", normalize=True), float)

    def test_dp_reference_agrees_with_rapidfuzz(self):
        for a, b in pairs(0, 200, [0, 1, 3, 8, 15]):
            for w in WEIGHTS:
                assert dp_reference(a, b, w) == Levenshtein.distance(a, b, weights=w)

    @pytest.mark.parametrize("w", WEIGHTS)
    def test_random_vs_rapidfuzz(self, w, isa):
        ps = pairs(hash(w) & 0xFFFF, 300, [0, 1, 2, 5, 17, 31, 63, 64, 65, 100, 128, 129, 200])
        a, b = [p[0] for p in ps], [p[1] for p in ps]
        got = fastloss.edit_distance(a, b, weights=w)
        exp = [Levenshtein.distance(x, y, weights=w) for x, y in ps]
        assert got.dtype == np.int64 and got.tolist() == exp
        gotn = fastloss.edit_distance(a, b, weights=w, normalize=True)
        expn = [Levenshtein.normalized_distance(x, y, weights=w) for x, y in ps]
        assert gotn.dtype == np.float64
        np.testing.assert_allclose(gotn, expn, rtol=0, atol=1e-15)
        for x, y in ps[:20]:
            assert fastloss.edit_distance(x, y, weights=w) == Levenshtein.distance(x, y, weights=w)

    @pytest.mark.parametrize("n", [63, 64, 65, 128, 129, 1000])
    def test_boundary_lengths(self, n, isa):
        rng = random.Random(n)
        for alpha in ALPHABETS:
            for _ in range(5):
                a = rand_str(rng, n, alpha)
                for b in (mutate(rng, a, alpha, rng.randrange(1, 12)), rand_str(rng, rng.choice([n - 1, n, n + 1, 3]), alpha),
                          a[:-1], a + "x", "q" + a[1:]):
                    assert fastloss.edit_distance(a, b) == Levenshtein.distance(a, b)
                    assert fastloss.edit_distance(b, a) == Levenshtein.distance(b, a)

    @pytest.mark.parametrize("w", [(1, 1, 1), (1, 1, 2), (2, 2, 2), (2, 1, 1), (1, 1, 0)])
    def test_length_5000(self, w):
        rng = random.Random(5000)
        for alpha in ["abcdefgh", "x\U0001F600\U0001F601é"]:
            a = rand_str(rng, 5000, alpha)
            for b in (mutate(rng, a, alpha, 300), rand_str(rng, 4800, alpha), mutate(rng, a, alpha, 2)):
                assert fastloss.edit_distance(a, b, weights=w) == Levenshtein.distance(a, b, weights=w)

    def test_band_growth(self):
        # close pairs, far pairs and shifted pairs exercise every band width and the full fallback
        rng = random.Random(7)
        for n in (100, 300, 700, 2000):
            a = rand_str(rng, n, "abcd")
            for b in (a[50:] + a[:50], a[::-1], mutate(rng, a, "abcd", n // 3), "z" * 10 + a, a[: n // 2]):
                assert fastloss.edit_distance(a, b) == Levenshtein.distance(a, b)

    def test_mixed_width_strings(self):
        # 1-, 2- and 4-byte str kinds in one pair compare by code point
        a = ["abc", "aé", "a\U0001F600", "\u20ac" * 70, "é" * 65]
        b = ["a\U0001F600c", "a\u20ac", "ab", "\u20ac" * 69 + "é", "e" * 64]
        assert fastloss.edit_distance(a, b).tolist() == [Levenshtein.distance(x, y) for x, y in zip(a, b)]

    @pytest.mark.parametrize("alpha", ["abcdefghijklmnopqrstuvwxyz ", "ab", "aé€b", "x\U0001F600\U0001F601é",
                                       "".join(chr(c) for c in range(200, 300))])
    def test_close_pairs_diagonal_band(self, alpha, isa):
        # close pairs of 65..1000 elements: the one-word diagonal band (exact up to a distance of
        # 62/63), around its bound, and pairs where it gives up and the block algorithm takes over
        rng = random.Random(len(alpha))
        a, b = [], []
        for n in (65, 66, 100, 127, 128, 129, 200, 500, 1000):
            for edits in (1, 3, 10, 25, 40, 55, 60, 62, 63, 64, 66, 70, 90):
                x = rand_str(rng, n, alpha)
                y = mutate(rng, x, alpha, edits)
                a += [x, y]
                b += [y, x]
            x = rand_str(rng, n, alpha)
            for y in ("q" * 63 + x, "q" * 64 + x, x[:-62], x[31:] + "z" * 31, x[32:] + "z" * 33, x[::-1]):
                a += [x, y]
                b += [y, x]
        got = fastloss.edit_distance(a, b).tolist()
        exp = [Levenshtein.distance(x, y) for x, y in zip(a, b)]
        assert got == exp
        assert any(60 <= e <= 66 for e in exp)

    def test_band_mixed_widths_and_tokens(self):
        # patterns whose keys are all < 256 in a wider str kind or as integer tokens, against texts
        # with keys >= 256 (the band's sliding table), and wide patterns (the block table)
        rng = random.Random(17)
        a, b = [], []
        for n in (70, 150, 300):
            for edits in (2, 20, 61, 80):
                x = rand_str(rng, n, "abcdé")
                y = mutate(rng, x, "abcdé\u20ac\U0001F600", edits)
                a += ["\u20ac" + x + "\U0001F600", "\u20ac" + y, x, y]
                b += ["\U0001F600" + y + "\u20ac", x + "\u20ac", "\U0001F600" + y, x]
        got = fastloss.edit_distance(a, b).tolist()
        assert got == [Levenshtein.distance(x, y) for x, y in zip(a, b)]
        ta = [[ord(c) for c in x] for x in a] + [[rng.randrange(-3, 300) for _ in range(100)] for _ in range(20)]
        tb = [[ord(c) for c in y] for y in b] + [mutate_list(rng, t, 15) for t in ta[len(a):]]
        ta += [[rng.randrange(0, 5) for _ in range(120)]]
        tb += [ta[-1][:50] + [-1, 2**40] + ta[-1][50:]]
        got = fastloss.edit_distance(ta, tb).tolist()
        assert got == [Levenshtein.distance(x, y) for x, y in zip(ta, tb)]

    @settings(max_examples=300, deadline=None)
    @given(st.text(alphabet="abc\U0001F600é", max_size=90), st.text(alphabet="abc\U0001F600é", max_size=90),
           st.sampled_from(WEIGHTS))
    def test_hypothesis(self, a, b, w):
        assert fastloss.edit_distance(a, b, weights=w) == Levenshtein.distance(a, b, weights=w)
        assert fastloss.edit_distance(a, b, weights=w, normalize=True) == pytest.approx(
            Levenshtein.normalized_distance(a, b, weights=w), abs=1e-15)

    @settings(max_examples=100, deadline=None)
    @given(st.lists(st.integers(-3, 3), max_size=40), st.lists(st.integers(-3, 3), max_size=40))
    def test_hypothesis_dp(self, a, b):
        assert fastloss.edit_distance(a, b) == dp_reference(a, b) if (a or b) else True
        assert fastloss.edit_distance([a], [b], weights=(1, 2, 3))[0] == dp_reference(a, b, (1, 2, 3))


class TestSequences:
    def test_integer_sequences(self):
        rng = random.Random(3)
        a = [[rng.randrange(-5, 5) for _ in range(rng.randrange(0, 150))] for _ in range(100)]
        b = [[rng.randrange(-5, 5) for _ in range(rng.randrange(0, 150))] for _ in range(100)]
        a[0], b[0] = [2**62, -(2**63)], [2**62, 2**63 - 1]
        for w in WEIGHTS[:6]:
            got = fastloss.edit_distance(a, b, weights=w)
            assert got.tolist() == [Levenshtein.distance(x, y, weights=w) for x, y in zip(a, b)]

    def test_single_token_sequences_give_scalar(self):
        assert fastloss.edit_distance([1, 2, 3], [1, 3]) == 1
        assert fastloss.edit_distance(np.array([1, 2, 3]), np.array([3])) == 2
        assert fastloss.edit_distance((5,), (5, 5), normalize=True) == 0.5

    def test_word_lists(self):
        a = [["the", "cat", "sat"], ["a", "b"], [], ["x"] * 70]
        b = [["the", "dog", "sat", "down"], ["b", "a"], ["z"], ["x"] * 69 + ["y"]]
        assert fastloss.edit_distance(a, b).tolist() == [Levenshtein.distance(x, y) for x, y in zip(a, b)]

    def test_tuples_and_numpy_string_arrays(self):
        a = np.array(["abc", "de"])
        assert fastloss.edit_distance(a, ("abd", "")).tolist() == [1, 2]

    def test_empty_batch(self):
        out = fastloss.edit_distance([], [])
        assert out.shape == (0,) and out.dtype == np.int64

    def test_threads_agree(self):
        ps = pairs(11, 2000, [5, 30, 70, 200])
        a, b = [p[0] for p in ps], [p[1] for p in ps]
        full = fastloss.edit_distance(a, b)
        old = fastloss.get_num_threads()
        try:
            fastloss.set_num_threads(1)
            one = fastloss.edit_distance(a, b)
        finally:
            fastloss.set_num_threads(old)
        assert (full == one).all()


class TestBatchLanes:
    """The batched path's SIMD lanes: batches of >= 32 pairs, 1-byte str pairs with unit costs,
    the shorter side of 1..64 characters, the longer < 256 (32- and 64-bit lanes, groups sorted
    by text length)."""

    LATIN = "ab\x00\x7f\x80\xe9\xff "

    def lane_pairs(self, seed, count, alpha):
        rng = random.Random(seed)
        a, b = [], []
        for _ in range(count):
            m = rng.randrange(0, 65)
            x = rand_str(rng, m, alpha)
            r = rng.random()
            if r < 0.4:
                y = mutate(rng, x, alpha, rng.randrange(0, 12))
            elif r < 0.7:
                y = rand_str(rng, rng.randrange(0, 70), alpha)
            elif r < 0.85:
                y = x + rand_str(rng, rng.randrange(0, 200), alpha)  # long texts, up to 255 and beyond
            else:
                y = rand_str(rng, rng.randrange(250, 260), alpha)
            if rng.random() < 0.5:
                x, y = y, x
            a.append(x)
            b.append(y)
        return a, b

    @pytest.mark.parametrize("alpha", ["ab", "abcdefghijklmnopqrstuvwxyz ", LATIN])
    def test_mixed_lengths_0_to_64(self, alpha, isa):
        a, b = self.lane_pairs(len(alpha), 3000, alpha)
        exp = [Levenshtein.distance(x, y) for x, y in zip(a, b)]
        assert fastloss.edit_distance(a, b).tolist() == exp
        expn = [Levenshtein.normalized_distance(x, y) for x, y in zip(a, b)]
        np.testing.assert_allclose(fastloss.edit_distance(a, b, normalize=True), expn, rtol=0, atol=1e-15)
        assert fastloss.edit_distance(a, b, weights=(3, 3, 3)).tolist() == [3 * e for e in exp]

    @pytest.mark.parametrize("count", [1, 7, 31, 32, 33, 39, 47, 48, 49, 65, 100, 129])
    def test_partial_groups(self, count, isa):
        # batches smaller than a chunk (below 32 pairs: no lanes), last groups not filled, every
        # pattern length at the 32/64 edges
        rng = random.Random(count)
        a, b = [], []
        for k in range(count):
            m = [1, 31, 32, 33, 63, 64, 65][k % 7]
            x = rand_str(rng, m, "abcd")
            a.append(x)
            b.append(mutate(rng, x, "abcd", k % 5) if k % 3 else rand_str(rng, rng.randrange(0, 256), "abcd"))
        assert fastloss.edit_distance(a, b).tolist() == [Levenshtein.distance(x, y) for x, y in zip(a, b)]
        assert fastloss.edit_distance(b, a).tolist() == [Levenshtein.distance(y, x) for x, y in zip(a, b)]

    @pytest.mark.parametrize("w", [(1, 1, 2), (2, 1, 1), (1, 1, 0), (0, 0, 1), (0, 1, 1), (2, 2, 5), (0, 0, 0)])
    def test_other_weights_skip_lanes(self, w, isa):
        a, b = self.lane_pairs(99, 600, "abcde")
        assert fastloss.edit_distance(a, b, weights=w).tolist() == \
            [Levenshtein.distance(x, y, weights=w) for x, y in zip(a, b)]

    def test_mixed_kinds_in_one_batch(self, isa):
        # 1-byte pairs take the lanes, pairs with a wider str or token lists the per-pair path
        rng = random.Random(5)
        a, b = [], []
        for k in range(500):
            x = rand_str(rng, rng.randrange(0, 60), "abcé")
            y = mutate(rng, x, "abcé\u20ac" if k % 4 == 0 else "abcé", rng.randrange(0, 6))
            a.append(x)
            b.append(y)
        a[3], b[3] = [1, 2, 3], [1, 3]
        a[4], b[4] = "\U0001F600abc", "abc"
        exp = [Levenshtein.distance(x, y) for x, y in zip(a, b)]
        assert fastloss.edit_distance(a, b).tolist() == exp

    def test_conversion_blocks(self):
        # the conversion's arena: strings and token lists spread over several blocks, one string
        # larger than a block, reused by a second call of another size
        rng = random.Random(8)
        big = "x" * 3_000_000
        a = [rand_str(rng, rng.randrange(0, 40), "abc") for _ in range(60000)]
        b = [mutate(rng, x, "abc", 2) for x in a]
        a[100], b[100] = big, big[:-1] + "y"
        a[30000], b[30000] = "q" + big, big
        a[200], b[200] = list(range(50)), list(range(1, 51))
        exp = [Levenshtein.distance(x, y) for x, y in zip(a, b)]
        for _ in range(2):
            assert fastloss.edit_distance(a, b).tolist() == exp
            assert fastloss.edit_distance(a[:1000], b[:1000]).tolist() == exp[:1000]

    def test_threads_agree_on_lanes(self):
        a, b = self.lane_pairs(7, 20000, "abcdefgh")
        full = fastloss.edit_distance(a, b)
        old = fastloss.get_num_threads()
        try:
            fastloss.set_num_threads(1)
            one = fastloss.edit_distance(a, b)
        finally:
            fastloss.set_num_threads(old)
        assert (full == one).all()
        assert full.tolist() == [Levenshtein.distance(x, y) for x, y in zip(a, b)]


class TestPadded:
    def make(self, rng, n, wa, wb, dtype=np.int64):
        a = rng.integers(0, 4, size=(n, wa)).astype(dtype)
        b = rng.integers(0, 4, size=(n, wb)).astype(dtype)
        la = rng.integers(0, wa + 1, size=n)
        lb = rng.integers(0, wb + 1, size=n)
        return a, b, la, lb

    def expected(self, a, b, la, lb, w=(1, 1, 1), norm=False):
        f = Levenshtein.normalized_distance if norm else Levenshtein.distance
        return [f(list(a[i, :la[i]]), list(b[i, :lb[i]]), weights=w) for i in range(len(a))]

    @pytest.mark.parametrize("w", WEIGHTS[:7])
    def test_padded_with_lengths(self, w):
        rng = np.random.default_rng(0)
        a, b, la, lb = self.make(rng, 200, 70, 140)
        got = fastloss.edit_distance(a, b, a_lengths=la, b_lengths=lb, weights=w)
        assert got.dtype == np.int64 and got.tolist() == self.expected(a, b, la, lb, w)
        gotn = fastloss.edit_distance(a, b, a_lengths=la, b_lengths=lb, weights=w, normalize=True)
        np.testing.assert_allclose(gotn, self.expected(a, b, la, lb, w, True), atol=1e-15)

    @pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int32, np.uint32, np.int64, np.uint64])
    def test_dtypes_and_default_lengths(self, dtype):
        rng = np.random.default_rng(1)
        a, b, la, lb = self.make(rng, 50, 30, 33, dtype)
        if np.dtype(dtype).kind == "i":
            a[0, :3] = -1
            b[0, :3] = -1
        full = fastloss.edit_distance(a, b)
        assert full.tolist() == self.expected(a, b, [30] * 50, [33] * 50)
        mixed = fastloss.edit_distance(a, b.astype(np.int64), a_lengths=la.astype(np.int32), b_lengths=lb)
        assert mixed.tolist() == self.expected(a, b, la, lb)

    def test_strided_views(self):
        rng = np.random.default_rng(2)
        a, b, la, lb = self.make(rng, 40, 50, 50)
        at = np.asfortranarray(a)  # column-major: inner stride is not 1
        bs = np.concatenate([b, b], axis=1)[:, ::2]
        neg = a[::-1]
        assert fastloss.edit_distance(at, bs, a_lengths=la, b_lengths=lb).tolist() == self.expected(a, bs, la, lb)
        assert fastloss.edit_distance(neg, b, a_lengths=la[::-1][::-1], b_lengths=lb).tolist() == \
            self.expected(neg, b, la, lb)


class TestPairwise:
    @pytest.mark.parametrize("w", WEIGHTS)
    def test_vs_cdist(self, w, isa):
        rng = random.Random(5)
        a = [rand_str(rng, rng.choice([0, 1, 5, 20, 32, 33, 40, 64, 65, 90]), rng.choice(ALPHABETS)) for _ in range(60)]
        b = [rand_str(rng, rng.choice([0, 1, 5, 20, 32, 33, 40, 64, 65, 90]), rng.choice(ALPHABETS)) for _ in range(45)]
        got = fastloss.pairwise_edit_distance(a, b, weights=w)
        exp = cdist(a, b, scorer=Levenshtein.distance, scorer_kwargs={"weights": w}, dtype=np.int64)
        assert got.shape == (60, 45) and (got == exp).all()
        gotn = fastloss.pairwise_edit_distance(a, b, weights=w, normalize=True)
        expn = cdist(a, b, scorer=Levenshtein.normalized_distance, scorer_kwargs={"weights": w})
        assert gotn.dtype == np.float64
        np.testing.assert_allclose(gotn, expn, atol=1e-6)  # cdist returns float32

    def test_dtype_and_shapes(self):
        a, b = ["abc", "b"], ["a", "ab", "abc"]
        assert fastloss.pairwise_edit_distance(a, b).dtype == np.int32
        assert fastloss.pairwise_edit_distance(a, b, dtype=np.int64).dtype == np.int64
        assert fastloss.pairwise_edit_distance([], b).shape == (0, 3)
        assert fastloss.pairwise_edit_distance(a, []).shape == (2, 0)

    def test_many_rows_and_token_lists(self):
        rng = random.Random(9)
        a = [[rng.randrange(3) for _ in range(rng.randrange(0, 70))] for _ in range(300)]
        b = [[rng.randrange(3) for _ in range(rng.randrange(0, 70))] for _ in range(7)]
        exp = cdist(a, b, scorer=Levenshtein.distance, dtype=np.int64)
        assert (fastloss.pairwise_edit_distance(a, b) == exp).all()


class TestErrorRate:
    jiwer = pytest.importorskip("jiwer")

    SENTS = ["the cat sat on the mat", "", "   ", "a", "hello  world", " leading and trailing ",
             "tab\tinside", "tab \t run", "new\nline", "x\u00a0y", "unicode \U0001F600 word", "double  space  s",
             "the cat", "cat the", "the the the", "\t\t", "a b c d e f g"]

    def test_vs_jiwer(self):
        rng = random.Random(4)
        for _ in range(200):
            n = rng.randrange(1, 6)
            refs = [rng.choice(self.SENTS) for _ in range(n)]
            hyps = [rng.choice(self.SENTS) for _ in range(n)]
            for unit, f in (("word", self.jiwer.wer), ("char", self.jiwer.cer)):
                exp = f(refs, hyps)
                got = fastloss.error_rate(refs, hyps, unit=unit)
                assert got == pytest.approx(exp, abs=1e-12), (refs, hyps, unit)
                assert type(got) is type(exp)

    def test_single_strings_and_empty(self):
        j = self.jiwer
        for r, h in [("", ""), ("", "a b"), ("abc", "abd"), ("hello world", "hello")]:
            assert fastloss.error_rate(r, h, unit="word") == j.wer(r, h)
            assert fastloss.error_rate(r, h, unit="char") == j.cer(r, h)
        assert fastloss.error_rate([], []) == j.cer([], [])
        assert fastloss.error_rate(["", ""], ["x", "y z"], unit="word") == j.wer(["", ""], ["x", "y z"]) == 3

    def test_random_corpus(self):
        rng = random.Random(8)
        words = ["alpha", "beta", "gamma", "délta", "\U0001F600", "a", "bb"]
        refs = [" ".join(rng.choice(words) for _ in range(rng.randrange(0, 12))) for _ in range(300)]
        hyps = [mutate(rng, r, "ab \t", rng.randrange(0, 4)) for r in refs]
        assert fastloss.error_rate(refs, hyps, unit="word") == pytest.approx(self.jiwer.wer(refs, hyps), abs=1e-12)
        assert fastloss.error_rate(refs, hyps, unit="char") == pytest.approx(self.jiwer.cer(refs, hyps), abs=1e-12)


class TestErrors:
    def test_negative_weights(self):
        with pytest.raises(ValueError, match="weights"):
            fastloss.edit_distance("a", "b", weights=(1, -1, 1))
        with pytest.raises(ValueError, match="weights"):
            fastloss.pairwise_edit_distance(["a"], ["b"], weights=(-1, 1, 1))
        with pytest.raises(ValueError, match="weights"):
            _C.edit_distance_batch(["a"], ["b"], (0, 0, -2), None, None)

    def test_bad_weight_types(self):
        with pytest.raises(TypeError, match="weights"):
            fastloss.edit_distance("a", "b", weights=(1, 1))
        with pytest.raises(TypeError, match="weights"):
            fastloss.edit_distance("a", "b", weights=(1.5, 1, 1))
        with pytest.raises(TypeError, match="weights"):
            fastloss.edit_distance("a", "b", weights=3)

    def test_mismatched_batches(self):
        with pytest.raises(ValueError, match="a and b"):
            fastloss.edit_distance(["a", "b"], ["a"])
        with pytest.raises(ValueError, match="batch size"):
            fastloss.edit_distance(np.zeros((2, 3), np.int64), np.zeros((3, 3), np.int64))
        with pytest.raises(ValueError, match="references and hypotheses"):
            fastloss.error_rate(["a", "b"], ["a"])

    def test_lengths_beyond_width(self):
        a = np.zeros((3, 4), np.int64)
        with pytest.raises(ValueError, match=r"a_lengths\[1\] = 5"):
            fastloss.edit_distance(a, a, a_lengths=[4, 5, 0], b_lengths=[1, 1, 1])
        with pytest.raises(ValueError, match=r"b_lengths\[2\] = -1"):
            fastloss.edit_distance(a, a, a_lengths=[4, 4, 0], b_lengths=[1, 1, -1])
        with pytest.raises(ValueError, match="a_lengths"):
            fastloss.edit_distance(a, a, a_lengths=[1, 2])

    def test_wrong_types(self):
        with pytest.raises(TypeError, match="b"):
            fastloss.edit_distance("abc", ["abc"])
        with pytest.raises(TypeError, match=r"a\[1\]"):
            fastloss.edit_distance(["a", 3], ["a", "b"])
        with pytest.raises(TypeError, match=r"b\[0\]\[1\]"):
            fastloss.edit_distance([[1, 2]], [[1, [2]]])
        with pytest.raises(TypeError, match="a must be an integer array"):
            fastloss.edit_distance(np.zeros((2, 2)), np.zeros((2, 2)))
        with pytest.raises(TypeError, match="a_lengths"):
            fastloss.edit_distance(np.zeros((2, 2), np.int32), np.zeros((2, 2), np.int32), a_lengths=[1.0, 2.0])
        with pytest.raises(TypeError, match="normalize"):
            fastloss.edit_distance("a", "b", normalize="yes")
        with pytest.raises(TypeError, match="dtype"):
            fastloss.pairwise_edit_distance(["a"], ["b"], dtype=np.float32)
        with pytest.raises(TypeError, match=r"references\[0\]"):
            fastloss.error_rate([1], ["a"])
        with pytest.raises(TypeError, match="hypotheses"):
            fastloss.error_rate(["a"], 5)
        with pytest.raises(ValueError, match="unit"):
            fastloss.error_rate("a", "b", unit="token")




class TestCuda:
    @pytest.mark.parametrize("w", [(1, 1, 1), (1, 1, 2), (2, 1, 1), (1, 2, 3), (0, 1, 1), (1, 1, 0)])
    @pytest.mark.parametrize("width", [(30, 40), (64, 64), (70, 130)])
    def test_padded_vs_cpu(self, w, width):
        cp = cupy_or_skip()
        rng = np.random.default_rng(0)
        a = rng.integers(0, 5, size=(500, width[0]))
        b = rng.integers(0, 5, size=(500, width[1]))
        la = rng.integers(0, width[0] + 1, size=500)
        lb = rng.integers(0, width[1] + 1, size=500)
        exp = fastloss.edit_distance(a, b, a_lengths=la, b_lengths=lb, weights=w)
        got = fastloss.edit_distance(cp.asarray(a), cp.asarray(b), a_lengths=cp.asarray(la), b_lengths=cp.asarray(lb),
                                     weights=w)
        assert isinstance(got, cp.ndarray)
        assert (cp.asnumpy(got) == exp).all()
        gotn = fastloss.edit_distance(cp.asarray(a, dtype=cp.int32), cp.asarray(b, dtype=cp.int32),
                                      a_lengths=cp.asarray(la), b_lengths=cp.asarray(lb), weights=w, normalize=True)
        np.testing.assert_allclose(cp.asnumpy(gotn), fastloss.edit_distance(a, b, a_lengths=la, b_lengths=lb,
                                                                            weights=w, normalize=True), atol=1e-15)

    @pytest.mark.parametrize("w", [(1, 1, 1), (1, 2, 3)])
    def test_padded_score_cutoff_and_huge_weights(self, w):
        cp = cupy_or_skip()
        rng = np.random.default_rng(1)
        a = rng.integers(0, 4, size=(200, 20))
        b = rng.integers(0, 4, size=(200, 70))
        lb = rng.integers(0, 71, size=200)
        for c in [0, 3, 10]:
            exp = fastloss.edit_distance(a, b, b_lengths=lb, weights=w, score_cutoff=c)
            got = fastloss.edit_distance(cp.asarray(a), cp.asarray(b), b_lengths=cp.asarray(lb), weights=w,
                                         score_cutoff=c)
            assert (cp.asnumpy(got) == exp).all()
        expn = fastloss.edit_distance(a, b, b_lengths=lb, weights=w, normalize=True, score_cutoff=0.3)
        gotn = fastloss.edit_distance(cp.asarray(a), cp.asarray(b), b_lengths=cp.asarray(lb), weights=w,
                                      normalize=True, score_cutoff=0.3)
        np.testing.assert_allclose(cp.asnumpy(gotn), expn, atol=1e-15)
        with pytest.raises(ValueError, match="weights"):
            fastloss.edit_distance(cp.asarray(a), cp.asarray(b), weights=(2**62, 1, 1))

    def test_bad_lengths_and_mixing(self):
        cp = cupy_or_skip()
        a = cp.zeros((4, 3), cp.int64)
        with pytest.raises(ValueError, match=r"b_lengths\[2\] = 9"):
            fastloss.edit_distance(a, a, b_lengths=cp.asarray([1, 1, 9, 1]))
        with pytest.raises(TypeError, match="mix"):
            fastloss.edit_distance(a, np.zeros((4, 3), np.int64))


def test_pairwise_int32_that_cannot_hold_the_distances_is_refused():
    with pytest.raises(ValueError, match="dtype int32"):
        fastloss.pairwise_edit_distance(["ab"], ["a"], weights=(2**30, 2**30, 2**30), dtype=np.int32)
    out = fastloss.pairwise_edit_distance(["ab"], ["a"], weights=(2**30, 2**30, 2**30))
    assert out.dtype == np.int64 and out[0, 0] == 2**30


# ---------------------------------------------------------------------------------------
# score_cutoff (rapidfuzz's): every weight triple, every path (single pair, SIMD lanes,
# pairwise lanes, banded/blocked long strings, token sequences, padded arrays).
CUTOFFS = [0, 1, 2, 3, 5, 8, 40, 70, 200]
NORM_CUTOFFS = [0.0, 0.1, 0.25, 0.5, 0.99, 1.0]


def rf_dist(a, b, w, cutoff, normalize):
    if normalize:
        return Levenshtein.normalized_distance(a, b, weights=w, score_cutoff=cutoff)
    return Levenshtein.distance(a, b, weights=w, score_cutoff=cutoff)


class TestScoreCutoff:
    @pytest.mark.parametrize("w", WEIGHTS)
    def test_single_pairs_every_weight(self, w):
        for a, b in pairs(11, 120, [0, 1, 3, 8, 30, 64, 65, 100, 300]):
            for c in CUTOFFS:
                assert fastloss.edit_distance(a, b, weights=w, score_cutoff=c) == rf_dist(a, b, w, c, False), (a, b, c)
            for c in NORM_CUTOFFS:
                got = fastloss.edit_distance(a, b, weights=w, normalize=True, score_cutoff=c)
                assert got == pytest.approx(rf_dist(a, b, w, c, True), abs=1e-12), (a, b, c)

    @pytest.mark.parametrize("w", [(1, 1, 1), (2, 2, 2), (1, 1, 2), (1, 2, 3)])
    def test_batches_and_pairwise(self, isa, w):
        ps = pairs(12, 300, [0, 1, 5, 20, 33, 60, 64, 90, 200])
        a, b = [p[0] for p in ps], [p[1] for p in ps]
        for c in [0, 2, 7, 30]:
            got = fastloss.edit_distance(a, b, weights=w, score_cutoff=c)
            assert got.tolist() == [rf_dist(x, y, w, c, False) for x, y in ps]
            pw = fastloss.pairwise_edit_distance(a[:40], b[:30], weights=w, score_cutoff=c)
            np.testing.assert_array_equal(pw, cdist(a[:40], b[:30], scorer=Levenshtein.distance,
                                                    scorer_kwargs={"weights": w}, score_cutoff=c))
        for c in [0.0, 0.2, 0.6]:
            got = fastloss.edit_distance(a, b, weights=w, normalize=True, score_cutoff=c)
            np.testing.assert_allclose(got, [rf_dist(x, y, w, c, True) for x, y in ps], atol=1e-12)
            pw = fastloss.pairwise_edit_distance(a[:40], b[:30], weights=w, normalize=True, score_cutoff=c)
            np.testing.assert_allclose(pw, cdist(a[:40], b[:30], scorer=Levenshtein.normalized_distance,
                                                 scorer_kwargs={"weights": w}, score_cutoff=c), atol=1e-12)

    def test_long_strings_near_the_band(self):
        rng = random.Random(5)
        for n in [65, 130, 700, 3000]:
            for edits in [0, 1, 30, 62, 63, 64, 130, 400]:
                a = rand_str(rng, n, "abcd")
                b = mutate(rng, a, "abcd", edits)
                for c in [0, 1, 10, 61, 62, 63, 64, 100, 125, 500]:
                    assert fastloss.edit_distance(a, b, score_cutoff=c) == Levenshtein.distance(a, b, score_cutoff=c)
                    assert fastloss.edit_distance(a, b, weights=(3, 3, 3), score_cutoff=c) == \
                        Levenshtein.distance(a, b, weights=(3, 3, 3), score_cutoff=c)

    def test_tokens_and_padded(self):
        rng = np.random.default_rng(3)
        a = rng.integers(0, 4, size=(50, 12))
        b = rng.integers(0, 4, size=(50, 9))
        la = rng.integers(0, 13, size=50)
        lb = rng.integers(0, 10, size=50)
        for w in [(1, 1, 1), (1, 2, 3)]:
            for c in [0, 3]:
                exp = [Levenshtein.distance(list(a[i, :la[i]]), list(b[i, :lb[i]]), weights=w, score_cutoff=c)
                       for i in range(50)]
                got = fastloss.edit_distance(a, b, a_lengths=la, b_lengths=lb, weights=w, score_cutoff=c)
                assert got.tolist() == exp
                toks = fastloss.edit_distance([a[i, :la[i]].tolist() for i in range(50)],
                                              [b[i, :lb[i]].tolist() for i in range(50)], weights=w, score_cutoff=c)
                assert toks.tolist() == exp
                assert fastloss.edit_distance(a[0].tolist(), b[0].tolist(), weights=w, score_cutoff=c) == \
                    Levenshtein.distance(list(a[0]), list(b[0]), weights=w, score_cutoff=c)

    @settings(max_examples=300, deadline=None)
    @given(st.text("abc", max_size=12), st.text("abc", max_size=12), st.sampled_from(WEIGHTS),
           st.integers(0, 30), st.floats(0, 1))
    def test_hypothesis(self, a, b, w, c, cn):
        assert fastloss.edit_distance(a, b, weights=w, score_cutoff=c) == rf_dist(a, b, w, c, False)
        assert fastloss.edit_distance(a, b, weights=w, normalize=True, score_cutoff=cn) == \
            pytest.approx(rf_dist(a, b, w, cn, True), abs=1e-12)

    def test_numpy_scalars(self):
        assert fastloss.edit_distance("kitten", "sitting", score_cutoff=np.int32(1)) == 2
        assert fastloss.edit_distance("kitten", "sitting", normalize=True, score_cutoff=np.float32(0.25)) == 1.0
        assert fastloss.edit_distance("kitten", "sitting", normalize=np.bool_(True), score_cutoff=np.float64(0.5)) == \
            pytest.approx(3 / 7)

    def test_huge_cutoff_is_no_bound(self):
        assert fastloss.edit_distance("kitten", "sitting", score_cutoff=2**63 - 1) == 3
        assert fastloss.edit_distance("kitten", "sitting", score_cutoff=2**80) == 3

    def test_bad_cutoffs(self):
        with pytest.raises(ValueError, match="score_cutoff"):
            fastloss.edit_distance("a", "b", score_cutoff=-1)
        with pytest.raises(TypeError, match="score_cutoff"):
            fastloss.edit_distance("a", "b", score_cutoff=0.5)
        with pytest.raises(TypeError, match="score_cutoff"):
            fastloss.edit_distance("a", "b", score_cutoff=True)
        with pytest.raises(ValueError, match="score_cutoff"):
            fastloss.edit_distance("a", "b", normalize=True, score_cutoff=1.5)
        with pytest.raises(ValueError, match="score_cutoff"):
            fastloss.pairwise_edit_distance(["a"], ["b"], normalize=True, score_cutoff=float("nan"))
        with pytest.raises(TypeError, match="score_cutoff"):
            fastloss.pairwise_edit_distance(["a"], ["b"], normalize=True, score_cutoff="0.5")


# ---------------------------------------------------------------------------------------
# Issue 10: conversion that runs Python code, and weights beyond int64.
class TestRobustness:
    def test_hash_that_clears_the_outer_list(self):
        class T:
            def __hash__(self):
                a.clear()
                return 1

        a = [[T(), 1], [object(), 2], [object(), 3]]
        out = fastloss.edit_distance(a, [[1], [2], [3]])
        assert out.tolist() == [1, 1, 1]  # the lists as they were when the call began

    def test_hash_that_clears_the_inner_list(self):
        class T:
            def __hash__(self):
                a[0].clear()
                a.clear()
                return 1

        a = [[T(), 1, 2, 3], [4]]
        b = [[1, 2, 3], [4]]
        assert fastloss.edit_distance(a, b).tolist() == [1, 0]
        a = [[T(), 1, 2, 3], [4]]
        b = [[1, 2, 3], [4]]
        assert fastloss.pairwise_edit_distance(a, b).tolist() == [[1, 4], [3, 0]]

    def test_eq_and_index_that_mutate(self):
        class S(str):
            def __hash__(self):
                a.clear()
                return str.__hash__(self)

            def __eq__(self, other):
                a.clear()
                return str.__eq__(self, other)

        a = [[S("x"), "y"], ["z"]]
        b = [["x", "y"], ["z"]]
        assert fastloss.edit_distance(a, b).tolist() == [0, 0]

    def test_weights_beyond_int64_arithmetic(self):
        assert fastloss.edit_distance("abc", "xyz", weights=(2**63 - 1, 1, 1)) == 3
        assert fastloss.edit_distance("abc", "xyz", weights=(2**63 - 1, 1, 1), normalize=True) == \
            Levenshtein.normalized_distance("abc", "xyz", weights=(2**63 - 1, 1, 1))
        assert fastloss.edit_distance("abc", "xyz", weights=(2**62,) * 3, normalize=True) == 1.0
        assert fastloss.edit_distance("abcd", "abd", weights=(2**62,) * 3) == 2**62
        with pytest.raises(ValueError, match="weights"):
            fastloss.edit_distance("abc", "xyz", weights=(2**62,) * 3)
        with pytest.raises(ValueError, match="weights"):
            fastloss.edit_distance(["abc"] * 40, ["xyz"] * 40, weights=(2**62,) * 3)
        with pytest.raises(ValueError, match="weights"):
            fastloss.pairwise_edit_distance(["abc"], ["xyz"], weights=(2**62,) * 3)
        with pytest.raises(ValueError, match="weights"):
            fastloss.edit_distance("abcdef", "x", weights=(1, 2**62, 2**62 + 1))
        # Exact where it fits, for every path: the generic DP saturates instead of wrapping.
        big = 2**61
        for a, b in [("abc", "xyz"), ("ab", "abcd"), ("abcd", "b"), ("a" * 70, "b" * 70)]:
            for w in [(big, 1, 1), (1, big, 1), (1, 1, big), (big, big, 1)]:
                exp = Levenshtein.distance(a, b, weights=w)
                if exp < 2**63:
                    assert fastloss.edit_distance(a, b, weights=w) == exp, (a, b, w)
                    assert fastloss.edit_distance([a], [b], weights=w).tolist() == [exp]
        assert fastloss.edit_distance("abc", "xyz", weights=(2**63 - 1, 1, 1), score_cutoff=2) == 3

    def test_size_0_padded_arrays(self):
        out = fastloss.edit_distance(np.zeros((0, 4), np.int64), np.zeros((0, 3), np.int64))
        assert out.shape == (0,) and out.dtype == np.int64

    def test_weights_beyond_int64_are_value_errors(self):
        for w in [(2**63, 1, 1), (1, 2**70, 1), (1, 1, -2**63 - 1)]:
            with pytest.raises(ValueError, match="weights"):
                fastloss.edit_distance("abc", "xyz", weights=w)
            with pytest.raises(ValueError, match="weights"):
                fastloss.pairwise_edit_distance(["abc"], ["xyz"], weights=w)
            with pytest.raises(ValueError, match="weights"):
                fastloss.edit_distance(np.zeros((2, 2), np.int64), np.zeros((2, 2), np.int64), weights=w)
        assert fastloss.edit_distance("ab", "b", weights=(np.int64(2), np.uint8(3), 1)) == 3


def test_docstrings_and_reference_page():
    import doctest
    import importlib
    import os

    mod = importlib.import_module("fastloss.edit_distance")

    failed, _ = doctest.testmod(mod, verbose=False)
    assert failed == 0
    page = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "edit_distance.md")
    text = open(page, encoding="utf-8").read()
    for name in mod.__all__ + ["fastloss error-rate", "score_cutoff", "dask"]:
        assert name in text, name
    # the page's Python examples give the results it shows
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text.replace("\n```", "\n\n```"), {"np": np}, "docs/edit_distance.md", page, 0)
    runner = doctest.DocTestRunner()
    runner.run(test)
    assert runner.failures == 0
