"""Edit distance: batched Levenshtein with (insertion, deletion, substitution) costs,
pairwise distance matrices, and corpus-level character/word error rates."""
from __future__ import annotations

import numbers
import re
import sys
import unicodedata
from typing import NamedTuple

import numpy as np

from . import _C

__all__ = ["edit_distance", "pairwise_edit_distance", "edit_ops", "error_rate", "error_counts", "ErrorCounts",
           "AlignmentChunk", "visualize_alignment"]


_SEQ = (list, tuple)


def _is_array(x):
    return isinstance(x, np.ndarray) or hasattr(x, "__cuda_array_interface__")


def _is_token_sequence(x):
    """A flat sequence of integer tokens (a single sequence, not a batch)."""
    if isinstance(x, np.ndarray):
        return x.ndim == 1 and x.dtype.kind in "iu"
    return isinstance(x, (list, tuple)) and len(x) > 0 and isinstance(x[0], numbers.Integral) \
        and not isinstance(x[0], bool)


def _is_empty(x):
    return isinstance(x, (list, tuple, np.ndarray)) and len(x) == 0


def _batch(x, name):
    if isinstance(x, str):
        raise TypeError(f"{name} is a str but the other argument is not: pass two strings, or two sequences")
    if isinstance(x, np.ndarray):
        if x.ndim == 1 and x.dtype.kind in "US":
            return x.tolist()
        if x.dtype == object and x.ndim == 1:
            return list(x)
        raise TypeError(f"{name}: a NumPy array must be 2-D integer (padded, with {name}_lengths), "
                        f"got shape {x.shape} dtype {x.dtype}")
    if isinstance(x, (list, tuple)):
        return x
    try:
        return list(x)
    except TypeError:
        raise TypeError(f"{name} must be a str, a sequence of str or of integer sequences, or a 2-D integer "
                        f"array, got {type(x).__name__}") from None


def edit_distance(a, b, *, weights=(1, 1, 1), normalize=False, score_cutoff=None, a_lengths=None, b_lengths=None):
    """Levenshtein distance with (insertion, deletion, substitution) costs.

    ``insertion`` turns ``a`` into ``b`` by inserting an element of ``b``; ``deletion``
    removes an element of ``a`` (rapidfuzz's convention). Matches
    ``rapidfuzz.distance.Levenshtein.distance`` (``normalized_distance`` with
    ``normalize=True``) for every weight triple::

        D[i][j] = min(D[i-1][j] + deletion, D[i][j-1] + insertion,
                      D[i-1][j-1] + (0 if a[i-1] == b[j-1] else substitution))

    Args:
        a, b: two ``str`` (compared by Unicode code point; returns a Python int, or float with
            ``normalize``); two equal-length sequences of ``str`` or of integer (or hashable)
            token sequences (returns an int64 array (N,), one distance per pair); or two padded
            2-D integer arrays (N, La), (N, Lb) with ``a_lengths`` / ``b_lengths`` (NumPy runs on
            the CPU, CuPy on the GPU).
        weights: non-negative integer costs ``(insertion, deletion, substitution)``, each below
            2**63 (a distance that does not fit in int64 is a ``ValueError`` naming weights).
        normalize: divide by the largest possible distance of the pair (0 when that is 0),
            giving float64.
        score_cutoff: rapidfuzz's bound: a distance above it is returned as
            ``score_cutoff + 1`` (a non-negative int); with ``normalize`` a float in [0, 1],
            and a normalized distance above it is returned as 1.0. Small bounds run faster.
        a_lengths, b_lengths: (N,) integer lengths of the padded rows (default: full width).

    Reference: docs/edit_distance.md.

    Example:
        >>> import fastloss
        >>> fastloss.edit_distance("kitten", "sitting")
        3
        >>> fastloss.edit_distance("kitten", "sitting", score_cutoff=1)
        2
        >>> fastloss.edit_distance(["ab", "abc"], ["b", "abd"]).tolist()
        [1, 1]
    """
    if a_lengths is None and b_lengths is None:
        r = _C.edit_distance(a, b, weights, normalize, score_cutoff)
        if r is not NotImplemented:
            return r
    # NumPy arrays, other iterables, padded arrays.
    w, normalize = _C.edit_args(weights, normalize)
    padded = (_is_array(a) and getattr(a, "ndim", 0) == 2) or (_is_array(b) and getattr(b, "ndim", 0) == 2)
    if padded or a_lengths is not None or b_lengths is not None:
        return _C.edit_distance_padded(a, b, a_lengths, b_lengths, w, normalize, score_cutoff)
    ta, tb = _is_token_sequence(a), _is_token_sequence(b)
    if (ta or tb) and (ta or _is_empty(a)) and (tb or _is_empty(b)):  # one pair of token sequences
        r = _C.edit_distance([a], [b], w, normalize, score_cutoff)[0]
        return float(r) if normalize else int(r)
    return _C.edit_distance(_batch(a, "a"), _batch(b, "b"), w, normalize, score_cutoff)


def pairwise_edit_distance(a, b, *, weights=(1, 1, 1), normalize=False, score_cutoff=None, dtype=None):
    """The ``len(a) x len(b)`` matrix of edit distances (like ``rapidfuzz.process.cdist``
    with ``Levenshtein.distance``), written directly into the output array:
    ``out[i, j] = edit_distance(a[i], b[j], ...)``.

    Args:
        a, b: sequences of ``str`` or of integer (or hashable) token sequences.
        weights: ``(insertion, deletion, substitution)`` costs, as in :func:`edit_distance`.
        normalize: normalized distances (float64), as in :func:`edit_distance`.
        score_cutoff: rapidfuzz's bound, as in :func:`edit_distance`.
        dtype: ``int32`` or ``int64`` for the unnormalized matrix; default int32 when every
            distance fits, else int64.

    Reference: docs/edit_distance.md.

    Example:
        >>> import fastloss
        >>> fastloss.pairwise_edit_distance(["ab", "b"], ["a", "ab", "abc"]).tolist()
        [[1, 0, 1], [1, 1, 2]]
    """
    if type(a) not in _SEQ:
        a = _batch(a, "a")
    if type(b) not in _SEQ:
        b = _batch(b, "b")
    return _C.pairwise_edit_distance(a, b, weights, normalize, score_cutoff, dtype)


def edit_ops(a, b, *, opcodes=False):
    """The edit operations of an optimal (unit-cost) alignment turning ``a`` into ``b``, equal
    to ``rapidfuzz.distance.Levenshtein.editops(a, b).as_list()`` (and with ``opcodes=True`` to
    ``Levenshtein.opcodes(a, b).as_list()``), including rapidfuzz's choice among equally
    short alignments.

    Args:
        a, b: two ``str`` (by code point) or two flat integer (or hashable token) sequences: one
            pair; or two equal-length sequences of those: a batch of pairs (the same rules as
            :func:`edit_distance`: a list of ``str`` is a batch, not one sequence of tokens).
        opcodes: return rapidfuzz's opcodes instead of its editops.

    Returns:
        One pair: a list of ``(tag, src_pos, dest_pos)`` tuples, ``tag`` in ``"replace"``
        (``a[src_pos]`` becomes ``b[dest_pos]``), ``"delete"`` (``a[src_pos]`` is removed) and
        ``"insert"`` (``b[dest_pos]`` is inserted before ``a[src_pos]``), in order; with
        ``opcodes=True`` a list of ``(tag, i1, i2, j1, j2)`` tuples covering both sequences
        (``a[i1:i2]`` becomes ``b[j1:j2]``; tags ``"equal"``, ``"replace"``, ``"delete"``,
        ``"insert"``). A batch: a list with one such list per pair. The number of editops is
        ``edit_distance(a, b)``.

    Reference: docs/edit_distance.md.

    Example:
        >>> import fastloss
        >>> fastloss.edit_ops("kitten", "sitting")
        [('replace', 0, 0), ('replace', 4, 4), ('insert', 6, 6)]
        >>> fastloss.edit_ops("ab", "b", opcodes=True)
        [('delete', 0, 1, 0, 0), ('equal', 1, 2, 0, 1)]
        >>> fastloss.edit_ops(["ab", "abc"], ["b", "abd"])
        [[('delete', 0, 0)], [('replace', 2, 2)]]
    """
    if not isinstance(opcodes, (bool, np.bool_)):
        raise TypeError(f"opcodes must be a bool, got {type(opcodes).__name__}")
    opcodes = bool(opcodes)
    r = _C.edit_ops(a, b, opcodes)
    if r is not NotImplemented:
        return r
    ta, tb = _is_token_sequence(a), _is_token_sequence(b)
    if (ta or tb) and (ta or _is_empty(a)) and (tb or _is_empty(b)):  # one pair of token sequences
        return _C.edit_ops([int(v) for v in a], [int(v) for v in b], opcodes) if len(a) and len(b) else \
            _C.edit_ops([[int(v) for v in a]], [[int(v) for v in b]], opcodes)[0]
    return _C.edit_ops(list(_batch(a, "a")), list(_batch(b, "b")), opcodes)


class AlignmentChunk(NamedTuple):
    """One block of a sentence's alignment, as jiwer's ``AlignmentChunk``: ``type`` is
    ``"equal"``, ``"substitute"``, ``"delete"`` or ``"insert"``, and reference units
    ``[ref_start_idx, ref_end_idx)`` align with hypothesis units ``[hyp_start_idx, hyp_end_idx)``."""

    type: str
    ref_start_idx: int
    ref_end_idx: int
    hyp_start_idx: int
    hyp_end_idx: int


# ---------------------------------------------------------------------------------------------
# normalize=: jiwer's transforms, applied to the whole corpus at once where that is exact.

_CONTRACTIONS = (("won't", "will not"), ("can't", "can not"), ("let's", "let us"), ("n't", " not"),
                 ("'re", " are"), ("'s", " is"), ("'d", " would"), ("'ll", " will"), ("'t", " not"),
                 ("'ve", " have"), ("'m", " am"))
_MULTI_SPACE = re.compile(r"\s\s+")
_PUNCT = None
_SEP = "\x00"  # joins the corpus: not whitespace, not punctuation, not a word character, uncased


def _punctuation_table():
    global _PUNCT
    if _PUNCT is None:  # every code point of Unicode category P*, as jiwer's RemovePunctuation
        _PUNCT = dict.fromkeys(i for i in range(sys.maxunicode + 1) if unicodedata.category(chr(i))[0] == "P")
    return _PUNCT


_NAMED = ("lowercase", "remove_punctuation", "remove_multiple_spaces", "strip", "remove_empty", "expand_contractions")


def _normalize_steps(normalize):
    """The checked steps of `normalize`: a list of names, ("substitute", [(regex, value)]) and
    callables."""
    if normalize is None:
        return []
    if callable(normalize):
        return [normalize]
    if isinstance(normalize, (str, dict)):
        normalize = [normalize]
    try:
        items = list(normalize)
    except TypeError:
        raise TypeError(f"normalize must be None, a callable or a sequence of steps, got {type(normalize).__name__}") \
            from None
    steps = []
    for st in items:
        if isinstance(st, str):
            if st not in _NAMED:
                raise ValueError(f"normalize: unknown step {st!r}; the named steps are {', '.join(_NAMED)} "
                                 f"and {{'substitute': {{...}}}}")
            steps.append(st)
        elif isinstance(st, dict) and len(st) == 1 and "substitute" in st:
            mapping = st["substitute"]
            if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                        for k, v in mapping.items()):
                raise TypeError(f"normalize: 'substitute' needs a dict of str -> str, got {mapping!r}")
            steps.append(("substitute", [(re.compile(r"\b{}\b".format(re.escape(k))), v.replace("\\", "\\\\"))
                                         for k, v in mapping.items()], mapping))
        elif callable(st):
            steps.append(st)
        else:
            raise TypeError(f"normalize: a step must be a name, {{'substitute': {{...}}}} or a callable, got {st!r}")
    return steps


def _apply_text(step, text):
    """A string step on `text` (one sentence, or the corpus joined by _SEP)."""
    if step == "lowercase":
        return text.lower()
    if step == "remove_punctuation":
        return text.translate(_punctuation_table())
    if step == "remove_multiple_spaces":
        return _MULTI_SPACE.sub(" ", text)
    if step == "expand_contractions":
        for k, v in _CONTRACTIONS:
            text = text.replace(k, v)
        return text
    if isinstance(step, tuple):  # substitute: jiwer's re.sub(r"\bKEY\b", VALUE) in dict order
        for rx, v in step[1]:
            text = rx.sub(v, text)
        return text
    raise AssertionError(step)


def _normalized(sentences, steps, name):
    """`sentences` (a list of str) after the steps. String steps run on the whole corpus joined
    by a NUL (one C-level pass per step; exact, since NUL is neither whitespace, punctuation, a
    word character nor cased) unless a sentence or a substitution holds a NUL."""
    if not steps:
        return sentences
    for i, x in enumerate(sentences):
        if not isinstance(x, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(x).__name__}")
    out = list(sentences)
    k = 0
    while k < len(steps):
        st = steps[k]
        if callable(st):
            res = []
            for i, x in enumerate(out):
                y = st(x)
                if not isinstance(y, str):
                    raise TypeError(f"normalize: the callable must return a str, got {type(y).__name__} for "
                                    f"{name}[{i}]")
                res.append(y)
            out = res
            k += 1
        elif st == "strip":
            out = [x.strip() for x in out]
            k += 1
        elif st == "remove_empty":  # jiwer's RemoveEmptyStrings: drops the sentence (each side alone)
            out = [x for x in out if x.strip() != ""]
            k += 1
        else:  # a run of text steps, on the joined corpus
            j = k
            while j < len(steps) and not callable(steps[j]) and steps[j] not in ("strip", "remove_empty"):
                j += 1
            run = steps[k:j]
            text = _SEP.join(out)
            if any(_SEP in x for x in out) or any(
                    isinstance(s, tuple) and any(_SEP in a or _SEP in b for a, b in s[2].items()) for s in run):
                for st2 in run:
                    out = [_apply_text(st2, x) for x in out]
            elif out:
                for st2 in run:
                    text = _apply_text(st2, text)
                out = text.split(_SEP)
            k = j
    return out


def error_rate(references, hypotheses, *, unit="char", normalize=None):
    """Corpus-level error rate: total edits over total reference units.

    ``unit="char"`` is the character error rate (CER), ``unit="word"`` the word error rate
    (WER). Matches jiwer 4's ``cer`` / ``wer`` with their default transforms: for CER each
    sentence is ``strip()``-ed and compared by code point (inner spaces count); for WER runs
    of two or more whitespace characters become one space, the ends are stripped and the
    sentence is split on single spaces. When every reference is empty the result is the
    number of inserted units (an int), as in jiwer.

    Args:
        references, hypotheses: a ``str`` or equal-length lists of ``str``.
        unit: ``"char"`` or ``"word"``.
        normalize: text normalisation applied to both sides before the default rules above:
            a sequence of steps run in order, each a name (``"lowercase"``,
            ``"remove_punctuation"``, ``"remove_multiple_spaces"``, ``"strip"``,
            ``"remove_empty"``, ``"expand_contractions"``), ``{"substitute": {word: by}}`` or a
            callable on one string; the numbers equal jiwer's with the same transforms
            (``ToLowerCase``, ``RemovePunctuation``, ``RemoveMultipleSpaces``, ``Strip``,
            ``RemoveEmptyStrings``, ``ExpandCommonEnglishContractions``, ``SubstituteWords``)
            placed before its default ones. See docs/edit_distance.md.

    Example:
        >>> import fastloss
        >>> fastloss.error_rate(["the cat sat"], ["the cat sit"], unit="word")
        0.3333333333333333
        >>> fastloss.error_rate(["The cat, sat."], ["the cat sat"], unit="word",
        ...                     normalize=["lowercase", "remove_punctuation"])
        0.0
    """
    edits, ref_units, _ = _C.error_rate_counts(*_sentences(references, hypotheses, unit, normalize), unit == "word")
    if ref_units == 0:
        return int(edits)
    return edits / ref_units


def _sentences(references, hypotheses, unit, normalize=None):
    if unit not in ("char", "word"):
        raise ValueError(f"unit must be 'char' or 'word', got {unit!r}")
    refs = [references] if isinstance(references, str) else references
    hyps = [hypotheses] if isinstance(hypotheses, str) else hypotheses
    for name, x in (("references", refs), ("hypotheses", hyps)):
        if not isinstance(x, (list, tuple)):
            raise TypeError(f"{name} must be a str or a list of str, got {type(x).__name__}")
    steps = _normalize_steps(normalize)
    if steps:
        refs = _normalized(refs, steps, "references")
        hyps = _normalized(hyps, steps, "hypotheses")
        if len(refs) != len(hyps):
            raise ValueError(f"normalize: after the steps there are {len(refs)} references and {len(hyps)} hypotheses "
                             f"(remove_empty drops empty sentences of each side, as jiwer's RemoveEmptyStrings); "
                             f"the counts must match")
    # jiwer turns an empty list into one empty sentence
    refs = refs if len(refs) else [""]
    hyps = hyps if len(hyps) else [""]
    return refs, hyps


class ErrorCounts:
    """Alignment counts of a corpus: ``hits``, ``substitutions``, ``deletions``, ``insertions``
    (ints, as jiwer 4's ``process_words`` / ``process_characters``), and the measures jiwer
    derives from them. Counts of shards add up (``a + b``, ``sum(shards, ErrorCounts())``);
    instances pickle, so they travel between processes (see the Dask recipe in
    docs/edit_distance.md).

    With H, S, D, I the counts, N = H + S + D reference units and P = H + S + I hypothesis units:
    ``error_rate = (S + D + I) / N``, ``mer = (S + D + I) / (H + S + D + I)``,
    ``wip = (H / N) * (H / P)``, ``wil = 1 - wip``; with N = 0, as jiwer: ``error_rate = I``
    (an int), ``mer`` and ``wip`` are 0 and 1 when P = 0, else 1 and 0; ``wip = 0`` when P = 0.

    Example:
        >>> import fastloss
        >>> c = fastloss.error_counts(["the cat sat"], ["the cat sit down"], unit="word")
        >>> (c.hits, c.substitutions, c.deletions, c.insertions)
        (2, 1, 0, 1)
        >>> c.error_rate
        0.6666666666666666
    """

    __slots__ = ("hits", "substitutions", "deletions", "insertions")

    def __init__(self, hits=0, substitutions=0, deletions=0, insertions=0):
        self.hits = int(hits)
        self.substitutions = int(substitutions)
        self.deletions = int(deletions)
        self.insertions = int(insertions)

    def __add__(self, other):
        if not isinstance(other, ErrorCounts):
            return NotImplemented
        return ErrorCounts(self.hits + other.hits, self.substitutions + other.substitutions,
                           self.deletions + other.deletions, self.insertions + other.insertions)

    def __radd__(self, other):  # sum() starts from 0
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self
        return NotImplemented

    def __eq__(self, other):
        if not isinstance(other, ErrorCounts):
            return NotImplemented
        return self._tuple() == other._tuple()

    def __hash__(self):
        return hash(self._tuple())

    def __reduce__(self):
        return (ErrorCounts, self._tuple())

    def __repr__(self):
        return (f"ErrorCounts(hits={self.hits}, substitutions={self.substitutions}, deletions={self.deletions}, "
                f"insertions={self.insertions})")

    def _tuple(self):
        return (self.hits, self.substitutions, self.deletions, self.insertions)

    @property
    def reference_units(self):
        """H + S + D: words (or characters) in the references."""
        return self.hits + self.substitutions + self.deletions

    @property
    def hypothesis_units(self):
        """H + S + I: words (or characters) in the hypotheses."""
        return self.hits + self.substitutions + self.insertions

    @property
    def error_rate(self):
        """(S + D + I) / N (WER or CER); the insertion count (an int) when N = 0."""
        n = self.reference_units
        if n == 0:
            return self.insertions
        return float(self.substitutions + self.deletions + self.insertions) / float(n)

    @property
    def mer(self):
        """Match error rate (S + D + I) / (H + S + D + I)."""
        if self.reference_units == 0:
            return 0 if self.hypothesis_units == 0 else 1
        e = self.substitutions + self.deletions + self.insertions
        return float(e) / float(self.hits + e)

    @property
    def wip(self):
        """Word information preserved (H / N) * (H / P)."""
        n, p = self.reference_units, self.hypothesis_units
        if n == 0:
            return 1 if p == 0 else 0
        if p == 0:
            return 0
        return (float(self.hits) / n) * (float(self.hits) / p)

    @property
    def wil(self):
        """Word information lost 1 - wip."""
        return 1 - self.wip


def error_counts(references, hypotheses, *, unit="char", normalize=None, return_alignment=False):
    """Hits, substitutions, deletions and insertions of a corpus, as jiwer 4's
    ``process_characters`` (``unit="char"``) / ``process_words`` (``unit="word"``).

    Same units and whitespace rules as :func:`error_rate`; among equally short alignments the
    one jiwer takes from ``rapidfuzz.distance.Levenshtein.opcodes``. Computed in C++ on all
    cores (no Python loop over sentences).

    Args:
        references, hypotheses: a ``str`` or equal-length lists of ``str``.
        unit: ``"char"`` or ``"word"``.
        normalize: text normalisation before the default rules, as in :func:`error_rate`.
        return_alignment: also return each sentence's alignment.

    Returns:
        :class:`ErrorCounts`, with ``error_rate``, ``mer``, ``wil``, ``wip``; with
        ``return_alignment=True`` a pair ``(counts, alignments)``: ``alignments[i]`` is the list of
        :class:`AlignmentChunk` of sentence i, equal (field by field) to jiwer's
        ``process_words(...).alignments[i]`` / ``process_characters``; indices count words (or
        characters) after normalisation and the default rules. :func:`visualize_alignment`
        renders them as jiwer does.

    Reference: docs/edit_distance.md.

    Example:
        >>> import fastloss
        >>> c = fastloss.error_counts(["kitten"], ["sitting"])
        >>> (c.hits, c.substitutions, c.deletions, c.insertions)
        (4, 2, 0, 1)
        >>> c, al = fastloss.error_counts("the cat sat", "the cat sit down", unit="word", return_alignment=True)
        >>> [tuple(ch) for ch in al[0]]
        [('equal', 0, 2, 0, 2), ('insert', 2, 2, 2, 3), ('substitute', 2, 3, 3, 4)]
    """
    if not isinstance(return_alignment, (bool, np.bool_)):
        raise TypeError(f"return_alignment must be a bool, got {type(return_alignment).__name__}")
    refs, hyps = _sentences(references, hypotheses, unit, normalize)
    if not return_alignment:
        return ErrorCounts(*_C.error_counts(refs, hyps, unit == "word"))
    totals, _, chunks = _C.error_counts_detail(refs, hyps, unit == "word", True, AlignmentChunk)
    return ErrorCounts(*totals), chunks


def per_sentence_counts(references, hypotheses, *, unit="char", normalize=None):
    """(corpus ErrorCounts, (n, 4) int64 array of each sentence's hits, substitutions,
    deletions, insertions): the command line's --per-sentence."""
    refs, hyps = _sentences(references, hypotheses, unit, normalize)
    totals, per, _ = _C.error_counts_detail(refs, hyps, unit == "word", False, None)
    return ErrorCounts(*totals), per


def _units(sentences, unit):
    """Each sentence's units under jiwer's default transforms (as the C++ side splits them)."""
    if unit == "char":
        return [list(x.strip()) for x in sentences]
    return [[w for w in _MULTI_SPACE.sub(" ", x).strip().split(" ") if w] for x in sentences]


def visualize_alignment(references, hypotheses, *, unit="word", normalize=None, show_measures=True,
                        skip_correct=True, line_width=None):
    """The alignment of each sentence as text, in the layout of jiwer's ``visualize_alignment``
    (``REF:`` / ``HYP:`` lines with ``S``, ``D``, ``I`` marks under the edits, then a summary):
    equal to ``jiwer.visualize_alignment(jiwer.process_words(references, hypotheses, ...))``
    (``process_characters`` with ``unit="char"``) with the same transforms.

    Args:
        references, hypotheses, unit, normalize: as in :func:`error_counts`.
        show_measures: end with the counts and measures (``=== SUMMARY ===``).
        skip_correct: leave out sentences without errors.
        line_width: wrap each sentence's lines at about this many characters (None: no wrap).

    Returns:
        str.

    Example:
        >>> import fastloss
        >>> print(fastloss.visualize_alignment("the cat sat", "the cat sit down", show_measures=False))
        === SENTENCE 1 ===
        <BLANKLINE>
        REF: the cat ***  sat
        HYP: the cat sit down
                       I    S
        <BLANKLINE>
    """
    body, c, n = _alignment_text(references, hypotheses, unit, normalize, skip_correct, line_width)
    if show_measures:
        return body + _summary(c, n, unit)
    return body[:-1]


def _alignment_text(references, hypotheses, unit, normalize, skip_correct, line_width, first=1):
    """(the sentences' blocks, their ErrorCounts, their number); sentences numbered from `first`."""
    refs, hyps = _sentences(references, hypotheses, unit, normalize)
    totals, _, chunks = _C.error_counts_detail(refs, hyps, unit == "word", True, AlignmentChunk)
    ref_units, hyp_units = _units(refs, unit), _units(hyps, unit)
    words = unit == "word"
    parts = []
    for idx, (gt, hp, ch) in enumerate(zip(ref_units, hyp_units, chunks)):
        if skip_correct and (len(ch) == 0 or (len(ch) == 1 and ch[0].type == "equal")):
            continue
        parts.append(f"=== SENTENCE {idx + first} ===\n\n")
        parts.append(_comparison(gt, hp, ch, words, line_width))
        parts.append("\n")
    return "".join(parts), ErrorCounts(*totals), len(chunks)


def _summary(c, n, unit):
    """jiwer's '=== SUMMARY ===' block."""
    out = "=== SUMMARY ===\n"
    out += f"number of sentences: {n}\n"
    out += f"substitutions={c.substitutions} deletions={c.deletions} insertions={c.insertions} hits={c.hits}\n"
    if unit == "char":
        return out + f"\ncer={c.error_rate * 100:.2f}%\n"
    return out + f"\nmer={c.mer * 100:.2f}%\nwil={c.wil * 100:.2f}%\nwip={c.wip * 100:.2f}%\nwer={c.error_rate * 100:.2f}%\n"


def _comparison(ref, hyp, chunks, spaced, line_width):
    """One sentence's REF/HYP/marks lines, as jiwer lays them out."""
    rs, hs, ops, agg = "REF: ", "HYP: ", "     ", ""
    sep = " " if spaced else ""
    for ch in chunks:
        t = ch.type
        if t == "equal" or t == "substitute":
            r, h = ref[ch.ref_start_idx:ch.ref_end_idx], hyp[ch.hyp_start_idx:ch.hyp_end_idx]
            mark = " " if t == "equal" else "S"
        elif t == "delete":
            r = ref[ch.ref_start_idx:ch.ref_end_idx]
            h, mark = ["*"] * len(r), "D"
        else:
            h = hyp[ch.hyp_start_idx:ch.hyp_end_idx]
            r, mark = ["*"] * len(h), "I"
        for rf, hp in zip(r, h):
            width = max(len(rf), len(hp), 1)
            if line_width is not None and len(rs) + width > line_width:
                agg += (f"{rs[:-1]}\n{hs[:-1]}\n{ops[:-1]}\n\n" if spaced else f"{rs}\n{hs}\n{ops}\n\n")
                rs, hs, ops = "REF: ", "HYP: ", "     "
            if rf == "*":
                rf = "*" * width
            elif hp == "*":
                hp = "*" * width
            rs += f"{rf:>{width}}" + sep
            hs += f"{hp:>{width}}" + sep
            ops += f"{mark:>{width}}" + sep
    if spaced:
        return agg + f"{rs[:-1]}\n{hs[:-1]}\n{ops[:-1]}\n"
    return agg + f"{rs}\n{hs}\n{ops}\n"
