"""edit_ops against rapidfuzz's Levenshtein.editops / opcodes; error_counts(normalize=...,
return_alignment=True) and visualize_alignment against jiwer 4, on hypothesis cases and on real
text (lines of the files that ship with Python, corrupted at random with a fixed seed)."""
import random
import re
import sysconfig
from pathlib import Path

import numpy as np
import pytest

import fastloss

rapidfuzz = pytest.importorskip("rapidfuzz")
jiwer = pytest.importorskip("jiwer")
from hypothesis import given, settings, strategies as st  # noqa: E402
from rapidfuzz.distance import Levenshtein  # noqa: E402


def real_lines(limit=400, min_len=1, max_len=400):
    """Lines of the license and of a few stdlib modules' source (docstrings and code)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for name in ("LICENSE.txt", "textwrap.py", "argparse.py", "difflib.py", "string.py"):
        p = root / name
        if p.exists():
            out += [ln for ln in p.read_text(encoding="utf-8", errors="replace").splitlines()
                    if min_len <= len(ln) <= max_len]
    return out[:limit]


def corrupt(line, rng, rate=0.1):
    """Character and word edits at random: substitutions, deletions, insertions, case, swaps."""
    words = line.split(" ")
    out = []
    for w in words:
        r = rng.random()
        if r < rate / 3:
            continue
        if r < rate / 2:
            out.append(w.upper())
        elif r < rate:
            chars = list(w)
            for _ in range(rng.randrange(1, 3)):
                k = rng.randrange(0, len(chars) + 1)
                op = rng.randrange(3)
                if op == 0 and chars and k < len(chars):
                    chars[k] = rng.choice("aeiouxyz,.'é")
                elif op == 1 and chars and k < len(chars):
                    del chars[k]
                else:
                    chars.insert(k, rng.choice("aeiou !?'"))
            out.append("".join(chars))
        else:
            out.append(w)
        if rng.random() < rate / 4:
            out.append(rng.choice(["the", "a", "can't", "it's", "--", "  "]))
    return " ".join(out)


def corpus(seed=0, **kw):
    rng = random.Random(seed)
    refs = real_lines(**kw)
    return refs, [corrupt(x, rng) for x in refs]


# ---------------------------------------------------------------------------------------------
# edit_ops


def rf_ops(a, b, opcodes=False):
    return (Levenshtein.opcodes(a, b) if opcodes else Levenshtein.editops(a, b)).as_list()


SMALL = st.text(st.sampled_from("ab"), max_size=20)
WIDE = st.text(st.sampled_from("aé\u3000\U0001F600b"), max_size=12)
TOKENS = st.lists(st.integers(0, 3), max_size=20)


class TestEditOps:
    @settings(max_examples=400, deadline=None)
    @given(st.one_of(st.tuples(SMALL, SMALL), st.tuples(WIDE, WIDE)), st.booleans())
    def test_strings_hypothesis(self, pair, opcodes):
        a, b = pair
        assert fastloss.edit_ops(a, b, opcodes=opcodes) == rf_ops(a, b, opcodes)

    @settings(max_examples=300, deadline=None)
    @given(TOKENS, TOKENS, st.booleans())
    def test_tokens_hypothesis(self, a, b, opcodes):
        assert fastloss.edit_ops(a, b, opcodes=opcodes) == rf_ops(a, b, opcodes)

    def test_examples(self):
        assert fastloss.edit_ops("kitten", "sitting") == [("replace", 0, 0), ("replace", 4, 4), ("insert", 6, 6)]
        assert fastloss.edit_ops("", "") == []
        assert fastloss.edit_ops("", "", opcodes=True) == rf_ops("", "", True)
        assert fastloss.edit_ops("abc", "", opcodes=True) == rf_ops("abc", "", True)
        assert fastloss.edit_ops([], [1, 2]) == rf_ops([], [1, 2])
        assert fastloss.edit_ops(np.array([1, 2, 3]), np.array([2, 3])) == rf_ops([1, 2, 3], [2, 3])

    @pytest.mark.parametrize("n", [63, 64, 65, 130, 700])
    def test_multi_word_patterns(self, n):
        rng = random.Random(n)
        a = "".join(rng.choice("abc") for _ in range(n))
        b = "".join(rng.choice("abc") for _ in range(n + rng.randrange(-5, 6)))
        for op in (False, True):
            assert fastloss.edit_ops(a, b, opcodes=op) == rf_ops(a, b, op)

    def test_long_pair_split(self):
        """Pairs large enough for rapidfuzz's Hirschberg split (several levels)."""
        rng = random.Random(3)
        a = "".join(rng.choice("abcd") for _ in range(3500))
        b = list(a)
        for _ in range(600):
            k = rng.randrange(len(b))
            b[k] = rng.choice("abcd") if rng.random() < 0.5 else ""
        b = "".join(b)
        assert fastloss.edit_ops(a, b) == rf_ops(a, b)
        assert fastloss.edit_ops(a, b, opcodes=True) == rf_ops(a, b, True)

    def test_real_text_and_batch(self):
        refs, hyps = corpus(seed=1)
        want = [rf_ops(a, b) for a, b in zip(refs, hyps)]
        assert fastloss.edit_ops(refs, hyps) == want
        assert fastloss.edit_ops(tuple(refs), tuple(hyps), opcodes=True) == [rf_ops(a, b, True)
                                                                              for a, b in zip(refs, hyps)]
        # token sequences (words) in a batch
        ta = [x.split() for x in refs]
        tb = [x.split() for x in hyps]
        assert fastloss.edit_ops(ta, tb) == [rf_ops(a, b) for a, b in zip(ta, tb)]
        for a, b in zip(refs, hyps):
            assert len(fastloss.edit_ops(a, b)) == fastloss.edit_distance(a, b)

    def test_errors(self):
        with pytest.raises(TypeError, match="opcodes"):
            fastloss.edit_ops("a", "b", opcodes="yes")
        with pytest.raises(ValueError, match="a and b"):
            fastloss.edit_ops(["a", "b"], ["a"])
        with pytest.raises(TypeError, match="a is a str"):
            fastloss.edit_ops("a", ["a"])


# ---------------------------------------------------------------------------------------------
# normalize=


JIWER_STEPS = {
    "lowercase": jiwer.ToLowerCase, "remove_punctuation": jiwer.RemovePunctuation,
    "remove_multiple_spaces": jiwer.RemoveMultipleSpaces, "strip": jiwer.Strip,
    "remove_empty": jiwer.RemoveEmptyStrings, "expand_contractions": jiwer.ExpandCommonEnglishContractions,
}


def jiwer_transform(steps, unit):
    ts = []
    for s in steps:
        if isinstance(s, dict):
            ts.append(jiwer.SubstituteWords(s["substitute"]))
        elif callable(s):
            class F(jiwer.AbstractTransform):
                def process_string(self, x, f=s):
                    return f(x)
            ts.append(F())
        else:
            ts.append(JIWER_STEPS[s]())
    if unit == "word":
        ts += [jiwer.RemoveMultipleSpaces(), jiwer.Strip(), jiwer.ReduceToListOfListOfWords()]
    else:
        ts += [jiwer.Strip(), jiwer.ReduceToListOfListOfChars()]
    return jiwer.Compose(ts)


def jiwer_process(refs, hyps, unit, steps):
    t = jiwer_transform(steps, unit)
    f = jiwer.process_words if unit == "word" else jiwer.process_characters
    return f(refs, hyps, reference_transform=t, hypothesis_transform=t)


def check(refs, hyps, unit, steps):
    o = jiwer_process(refs, hyps, unit, steps)
    c, al = fastloss.error_counts(refs, hyps, unit=unit, normalize=steps, return_alignment=True)
    assert (c.hits, c.substitutions, c.deletions, c.insertions) == (o.hits, o.substitutions, o.deletions,
                                                                    o.insertions)
    assert c == fastloss.error_counts(refs, hyps, unit=unit, normalize=steps)
    rate = o.wer if unit == "word" else o.cer
    assert fastloss.error_rate(refs, hyps, unit=unit, normalize=steps) == pytest.approx(rate, abs=1e-12)
    got = [[tuple(ch) for ch in s] for s in al]
    want = [[(ch.type, ch.ref_start_idx, ch.ref_end_idx, ch.hyp_start_idx, ch.hyp_end_idx) for ch in s]
            for s in o.alignments]
    assert got == want
    for show in (True, False):
        assert fastloss.visualize_alignment(refs, hyps, unit=unit, normalize=steps, show_measures=show) == \
            jiwer.visualize_alignment(o, show_measures=show)


ALL_STEPS = ["lowercase", "remove_punctuation", "remove_multiple_spaces", "strip", "expand_contractions",
             {"substitute": {"the": "a", "Python": "snake", "can": "may"}}]


class TestNormalize:
    @pytest.mark.parametrize("unit", ["word", "char"])
    @pytest.mark.parametrize("steps", [
        [], ["lowercase"], ["remove_punctuation"], ["lowercase", "remove_punctuation", "remove_multiple_spaces",
                                                    "strip"],
        ALL_STEPS, ALL_STEPS[::-1], ["expand_contractions", "remove_punctuation"],
        [{"substitute": {"license": "LICENCE", "of": ""}}, "remove_multiple_spaces"],
        [str.upper, "strip"],
    ])
    def test_real_text(self, unit, steps):
        refs, hyps = corpus(seed=2, limit=300)
        check(refs, hyps, unit, steps)

    def test_remove_empty(self):
        refs = ["a b", "  ", "", "c d"]
        hyps = ["a", "", "x y", "c"]
        # jiwer drops empty sentences on each side alone: here 2 and 3 remain -> error both ways
        with pytest.raises(ValueError, match="normalize"):
            fastloss.error_counts(refs, hyps, normalize=["remove_empty"])
        with pytest.raises(ValueError):
            jiwer_process(refs, hyps, "word", ["remove_empty"])
        refs2, hyps2 = ["a b", " ", "c d"], ["a", "\t", "c"]
        for unit in ("word", "char"):
            check(refs2, hyps2, unit, ["remove_empty"])

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.tuples(st.text(st.sampled_from("aB ,.'\t\x00sntÉ"), max_size=14),
                              st.text(st.sampled_from("ab ,.'\t\x00snt"), max_size=14)), min_size=1, max_size=4),
           st.lists(st.sampled_from(ALL_STEPS + [{"substitute": {"a": "b b", "'s": "x"}}]), max_size=4),
           st.sampled_from(["word", "char"]))
    def test_hypothesis(self, pairs, steps, unit):
        check([p[0] for p in pairs], [p[1] for p in pairs], unit, steps)

    def test_str_inputs_and_callable(self):
        check("The Cat, sat.", "the cat sat", "word", ["lowercase", "remove_punctuation"])
        assert fastloss.error_rate("ABC", "abc", normalize=str.lower) == 0.0

    def test_errors(self):
        with pytest.raises(ValueError, match="normalize"):
            fastloss.error_rate(["a"], ["a"], normalize=["lowercase", "bogus"])
        with pytest.raises(TypeError, match="normalize"):
            fastloss.error_rate(["a"], ["a"], normalize=3)
        with pytest.raises(TypeError, match="normalize"):
            fastloss.error_rate(["a"], ["a"], normalize=[{"substitute": 5}])
        with pytest.raises(TypeError, match="normalize"):
            fastloss.error_rate(["a"], ["a"], normalize=lambda s: 3)
        with pytest.raises(TypeError, match="return_alignment"):
            fastloss.error_counts(["a"], ["a"], return_alignment="yes")


class TestAlignment:
    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.tuples(st.text(st.sampled_from("ab \t"), max_size=14),
                              st.text(st.sampled_from("ab \t"), max_size=14)), min_size=1, max_size=5),
           st.sampled_from(["word", "char"]))
    def test_hypothesis(self, pairs, unit):
        check([p[0] for p in pairs], [p[1] for p in pairs], unit, [])

    def test_empty_inputs(self):
        for unit in ("word", "char"):
            check([], [], unit, [])
            check([""], ["a b"], unit, [])
            check(["a b"], [""], unit, [])

    def test_line_width_and_skip_correct(self):
        refs, hyps = corpus(seed=4, limit=40)
        for unit in ("word", "char"):
            o = jiwer_process(refs, hyps, unit, [])
            for lw in (20, 60):
                for skip in (True, False):
                    assert fastloss.visualize_alignment(refs, hyps, unit=unit, line_width=lw, skip_correct=skip) == \
                        jiwer.visualize_alignment(o, line_width=lw, skip_correct=skip)

    def test_chunk_type(self):
        _, al = fastloss.error_counts("a b", "a c", unit="word", return_alignment=True)
        ch = al[0][1]
        assert isinstance(ch, fastloss.AlignmentChunk)
        assert (ch.type, ch.ref_start_idx, ch.ref_end_idx, ch.hyp_start_idx, ch.hyp_end_idx) == ("substitute", 1, 2,
                                                                                                 1, 2)


class TestLongPairs:
    """Pairs of thousands of elements: the distance first, then the alignment over Ukkonen's band
    inside rapidfuzz's Hirschberg split; same counts and tie choice as the full matrix."""

    @staticmethod
    def pair(n, err, alpha, seed):
        rng = random.Random(seed)
        a = "".join(rng.choice(alpha) for _ in range(n))
        b = list(a)
        for _ in range(int(n * err)):
            k = rng.randrange(len(b))
            r = rng.random()
            b[k] = rng.choice(alpha) if r < 0.4 else ("" if r < 0.7 else b[k] + rng.choice(alpha))
        return a, "".join(b)

    @pytest.mark.parametrize("n,err,alpha", [(3000, 0.01, "ab"), (8000, 0.05, "abc"), (20000, 0.002, "abcd"),
                                             (5000, 0.5, "ab"), (12000, 0.1, "abcdefgh "), (4000, 0.02, "aé€😀")])
    def test_against_rapidfuzz_and_jiwer(self, n, err, alpha):
        a, b = self.pair(n, err, alpha, n)
        assert fastloss.edit_ops(a, b) == rf_ops(a, b)
        o = jiwer.process_characters(a, b)
        c, al = fastloss.error_counts(a, b, return_alignment=True)
        assert (c.hits, c.substitutions, c.deletions, c.insertions) == (o.hits, o.substitutions, o.deletions,
                                                                        o.insertions)
        assert [tuple(x) for x in al[0]] == [(ch.type, ch.ref_start_idx, ch.ref_end_idx, ch.hyp_start_idx,
                                              ch.hyp_end_idx) for ch in o.alignments[0]]
        assert fastloss.error_rate(a, b) == pytest.approx(o.cer, abs=1e-12)

    def test_word_tokens(self):
        a, b = self.pair(15000, 0.05, "abcdefg  ", 9)
        o = jiwer.process_words(a, b)
        c = fastloss.error_counts(a, b, unit="word")
        assert (c.hits, c.substitutions, c.deletions, c.insertions) == (o.hits, o.substitutions, o.deletions,
                                                                        o.insertions)

    def test_batch_of_long_and_short(self):
        pairs = [self.pair(n, e, "abc", n) for n, e in [(3000, 0.03), (10, 0.3), (6000, 0.01), (0, 0)]]
        refs, hyps = [p[0] for p in pairs], [p[1] for p in pairs]
        assert fastloss.edit_ops(refs, hyps) == [rf_ops(a, b) for a, b in pairs]


class TestPairwiseRealText:
    """pairwise_edit_distance on real lines of 10-200 characters against rapidfuzz's cdist, for
    every cutoff (rows past 64 elements take the per-row block table with Ukkonen's band)."""

    @pytest.mark.parametrize("cutoff", [None, 0, 1, 3, 10, 70])
    @pytest.mark.parametrize("wide", [False, True])
    def test_against_cdist(self, cutoff, wide):
        from rapidfuzz.process import cdist
        refs, hyps = corpus(seed=6, limit=160, min_len=10, max_len=200)
        if wide:  # non-ASCII rows: 2- and 4-byte code points
            refs = [x.replace("e", "é").replace("a", "😀") for x in refs]
            hyps = [x.replace("e", "é") for x in hyps]
        refs += hyps[:20]  # near and exact duplicates
        got = fastloss.pairwise_edit_distance(refs, hyps, score_cutoff=cutoff)
        want = cdist(refs, hyps, scorer=Levenshtein.distance, score_cutoff=cutoff, dtype=np.int64)
        np.testing.assert_array_equal(got, want)

    @pytest.mark.parametrize("cutoff", [None, 0.0, 0.05, 0.2, 1.0])
    def test_normalized_cutoff(self, cutoff):
        from rapidfuzz.process import cdist
        refs, hyps = corpus(seed=8, limit=120, min_len=10, max_len=200)
        got = fastloss.pairwise_edit_distance(refs, hyps, normalize=True, score_cutoff=cutoff)
        want = cdist(refs, hyps, scorer=Levenshtein.normalized_distance, score_cutoff=cutoff, dtype=np.float64)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)

    def test_token_rows(self):
        from rapidfuzz.process import cdist
        rng = random.Random(2)
        a = [[rng.randrange(5) for _ in range(rng.randrange(0, 150))] for _ in range(40)]
        b = [[rng.randrange(5) for _ in range(rng.randrange(0, 150))] for _ in range(30)]
        for cutoff in (None, 3, 40):
            np.testing.assert_array_equal(fastloss.pairwise_edit_distance(a, b, score_cutoff=cutoff),
                                          cdist(a, b, scorer=Levenshtein.distance, score_cutoff=cutoff,
                                                dtype=np.int64))
