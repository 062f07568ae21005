"""error_counts / ErrorCounts against jiwer 4's process_words / process_characters."""
import pickle
import random

import pytest

import fastloss
from fastloss import ErrorCounts

jiwer = pytest.importorskip("jiwer")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402


def jiwer_out(refs, hyps, unit):
    return jiwer.process_words(refs, hyps) if unit == "word" else jiwer.process_characters(refs, hyps)


def check(refs, hyps, unit):
    c = fastloss.error_counts(refs, hyps, unit=unit)
    o = jiwer_out(refs, hyps, unit)
    assert (c.hits, c.substitutions, c.deletions, c.insertions) == \
        (o.hits, o.substitutions, o.deletions, o.insertions), (refs, hyps, unit)
    rate = o.wer if unit == "word" else o.cer
    assert c.error_rate == pytest.approx(rate, abs=1e-12)
    assert type(c.error_rate) is type(rate)  # an int insertion count when every reference is empty
    assert c.error_rate == fastloss.error_rate(refs, hyps, unit=unit)
    if unit == "word":
        assert c.mer == pytest.approx(o.mer, abs=1e-12)
        assert c.wip == pytest.approx(o.wip, abs=1e-12)
        assert c.wil == pytest.approx(o.wil, abs=1e-12)
    return c


# Small alphabets make ties among equally short alignments the rule, not the exception.
SENT = st.text(st.sampled_from("ab \t"), max_size=14)
SENT_WIDE = st.text(st.sampled_from("aé b\u3000x\U0001F600\n"), max_size=10)


class TestAgainstJiwer:
    @settings(max_examples=400, deadline=None)
    @given(st.lists(st.tuples(SENT, SENT), min_size=1, max_size=5), st.sampled_from(["char", "word"]))
    def test_hypothesis_small_alphabet(self, ps, unit):
        check([p[0] for p in ps], [p[1] for p in ps], unit)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.tuples(SENT_WIDE, SENT_WIDE), min_size=1, max_size=4), st.sampled_from(["char", "word"]))
    def test_hypothesis_unicode_and_whitespace(self, ps, unit):
        check([p[0] for p in ps], [p[1] for p in ps], unit)

    @pytest.mark.parametrize("unit", ["char", "word"])
    def test_random_corpus(self, unit):
        rng = random.Random(7)
        words = ["a", "b", "ab", "ba", "c"]
        refs = [" ".join(rng.choice(words) for _ in range(rng.randrange(0, 30))) for _ in range(300)]
        hyps = [" ".join(rng.choice(words) for _ in range(rng.randrange(0, 30))) for _ in range(300)]
        check(refs, hyps, unit)

    @pytest.mark.parametrize("n", [63, 64, 65, 127, 128, 129, 300, 1000])
    def test_multi_word_patterns(self, n):
        # references beyond 64 units: rapidfuzz's block matrix, several 64-bit words
        rng = random.Random(n)
        for _ in range(10):
            r = "".join(rng.choice("abc") for _ in range(n))
            h = "".join(rng.choice("abc") for _ in range(rng.choice([n, n // 2, n + 30, 3, 12])))
            check([r], [h], "char")
            check([" ".join(r)], [" ".join(h)], "word")

    @pytest.mark.parametrize("seed", range(4))
    def test_hirschberg_split(self, seed):
        # len(ref) * len(hyp) >= 4M after trimming: rapidfuzz splits the problem (Hirschberg)
        rng = random.Random(seed)
        n = 2100 + 300 * seed
        r = "".join(rng.choice("abcd"[: 2 + seed % 3]) for _ in range(n))
        if seed % 2:
            h = "".join(rng.choice("abcd"[: 2 + seed % 3]) for _ in range(n - 200))
        else:
            h = "".join(ch if rng.random() > 0.3 else rng.choice("ab") for ch in r)
        check([r], [h], "char")

    def test_empty_references_and_hypotheses(self):
        for refs, hyps in [([""], [""]), ([""], ["a b"]), (["", ""], ["", "x"]), (["a b"], [""]), ([" "], ["  "]),
                           ("", ""), ("", "abc"), ([], []), (["", "a"], ["b", ""])]:
            for unit in ["char", "word"]:
                check(refs, hyps, unit)

    def test_single_strings(self):
        for unit in ["char", "word"]:
            check("the cat sat", "the cat sit down", unit)


class TestErrorCounts:
    def test_shards_add_up(self):
        rng = random.Random(3)
        refs = ["".join(rng.choice("ab ") for _ in range(rng.randrange(0, 20))) for _ in range(100)]
        hyps = ["".join(rng.choice("ab ") for _ in range(rng.randrange(0, 20))) for _ in range(100)]
        for unit in ["char", "word"]:
            whole = fastloss.error_counts(refs, hyps, unit=unit)
            shards = [fastloss.error_counts(refs[i:i + 7], hyps[i:i + 7], unit=unit) for i in range(0, 100, 7)]
            assert sum(shards) == whole
            assert sum(shards, ErrorCounts()) == whole
            total = shards[0]
            for s in shards[1:]:
                total = total + s
            assert total == whole and total.error_rate == whole.error_rate

    def test_pickle_and_repr(self):
        c = fastloss.error_counts(["the cat sat"], ["the cat sit down"], unit="word")
        assert (c.hits, c.substitutions, c.deletions, c.insertions) == (2, 1, 0, 1)
        d = pickle.loads(pickle.dumps(c))
        assert d == c and isinstance(d, ErrorCounts)
        assert repr(c) == "ErrorCounts(hits=2, substitutions=1, deletions=0, insertions=1)"
        assert c.reference_units == 3 and c.hypothesis_units == 4
        assert ErrorCounts() == ErrorCounts(0, 0, 0, 0)
        assert ErrorCounts().error_rate == 0 and ErrorCounts().mer == 0 and ErrorCounts().wip == 1

    def test_add_refuses_other_types(self):
        with pytest.raises(TypeError):
            ErrorCounts() + 1
        with pytest.raises(TypeError):
            ErrorCounts() + (1, 2, 3, 4)

    def test_errors(self):
        with pytest.raises(ValueError, match="unit"):
            fastloss.error_counts("a", "b", unit="token")
        with pytest.raises(ValueError, match="references and hypotheses"):
            fastloss.error_counts(["a", "b"], ["a"])
        with pytest.raises(TypeError, match=r"references\[0\]"):
            fastloss.error_counts([1], ["a"])
        with pytest.raises(TypeError, match="hypotheses"):
            fastloss.error_counts(["a"], 5)
