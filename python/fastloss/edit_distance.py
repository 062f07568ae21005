"""Edit distance: batched Levenshtein with (insertion, deletion, substitution) costs,
pairwise distance matrices, and corpus-level character/word error rates."""
from __future__ import annotations

import numbers

import numpy as np

from . import _C
from ._array import as_index_array, backend_of, desc

__all__ = ["edit_distance", "pairwise_edit_distance", "error_rate", "error_counts", "ErrorCounts"]


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
        return _padded(a, b, a_lengths, b_lengths, w, normalize, score_cutoff)
    ta, tb = _is_token_sequence(a), _is_token_sequence(b)
    if (ta or tb) and (ta or _is_empty(a)) and (tb or _is_empty(b)):  # one pair of token sequences
        r = _C.edit_distance([a], [b], w, normalize, score_cutoff)[0]
        return float(r) if normalize else int(r)
    return _C.edit_distance(_batch(a, "a"), _batch(b, "b"), w, normalize, score_cutoff)


def _padded(a, b, a_lengths, b_lengths, w, normalize, score_cutoff=None):
    backend = backend_of(a=a, b=b, a_lengths=a_lengths, b_lengths=b_lengths)
    xp = backend.xp
    a = as_index_array(a, "a", backend)
    b = as_index_array(b, "b", backend)
    for name, x in (("a", a), ("b", b)):
        if x.ndim != 2:
            raise ValueError(f"{name} must be a 2-D padded integer array (batch, length) when lengths are given, "
                             f"got shape {x.shape}")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b must have the same batch size, got {a.shape[0]} and {b.shape[0]}")
    common = np.result_type(a.dtype, b.dtype)
    if common.kind not in "iu":  # uint64 with a signed type
        common = np.dtype(np.int64)
    if backend.cuda and common not in (np.dtype(np.int32), np.dtype(np.int64)):
        common = np.dtype(np.int64) if common.itemsize == 8 else np.dtype(np.int32)
    a = a.astype(common, copy=False)
    b = b.astype(common, copy=False)
    if a.shape[1] > 1 and a.strides[1] != a.itemsize:
        a = xp.ascontiguousarray(a)
    if b.shape[1] > 1 and b.strides[1] != b.itemsize:
        b = xp.ascontiguousarray(b)
    lens = []
    for name, l, x in (("a_lengths", a_lengths, a), ("b_lengths", b_lengths, b)):
        if l is None:
            lens.append(None)
            continue
        l = as_index_array(l, name, backend)
        if l.shape != (x.shape[0],):
            raise ValueError(f"{name} must have shape ({x.shape[0]},) (one length per row), got {l.shape}")
        if backend.cuda and l.dtype != np.int64:
            l = l.astype(np.int64)
        lens.append(l)
    out = backend.empty((a.shape[0],), np.float64 if normalize else np.int64)
    ws = backend.workspace(8)
    if backend.cuda:
        with backend.device:
            _C.edit_distance_padded(desc(a), desc(b), desc(lens[0]), desc(lens[1]), w, normalize, desc(out), True,
                                    backend.stream(), desc(ws), score_cutoff)
    else:
        _C.edit_distance_padded(desc(a), desc(b), desc(lens[0]), desc(lens[1]), w, normalize, desc(out), False, 0,
                                None, score_cutoff)
    return out


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


def error_rate(references, hypotheses, *, unit="char"):
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

    Example:
        >>> import fastloss
        >>> fastloss.error_rate(["the cat sat"], ["the cat sit"], unit="word")
        0.3333333333333333
    """
    edits, ref_units, _ = _C.error_rate_counts(*_sentences(references, hypotheses, unit), unit == "word")
    if ref_units == 0:
        return int(edits)
    return edits / ref_units


def _sentences(references, hypotheses, unit):
    if unit not in ("char", "word"):
        raise ValueError(f"unit must be 'char' or 'word', got {unit!r}")
    refs = [references] if isinstance(references, str) else references
    hyps = [hypotheses] if isinstance(hypotheses, str) else hypotheses
    for name, x in (("references", refs), ("hypotheses", hyps)):
        if not isinstance(x, (list, tuple)):
            raise TypeError(f"{name} must be a str or a list of str, got {type(x).__name__}")
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


def error_counts(references, hypotheses, *, unit="char"):
    """Hits, substitutions, deletions and insertions of a corpus, as jiwer 4's
    ``process_characters`` (``unit="char"``) / ``process_words`` (``unit="word"``).

    Same units and whitespace rules as :func:`error_rate`; among equally short alignments the
    one jiwer takes from ``rapidfuzz.distance.Levenshtein.opcodes``. Computed in C++ on all
    cores (no Python loop over sentences).

    Args:
        references, hypotheses: a ``str`` or equal-length lists of ``str``.
        unit: ``"char"`` or ``"word"``.

    Returns:
        :class:`ErrorCounts`, with ``error_rate``, ``mer``, ``wil``, ``wip``.

    Reference: docs/edit_distance.md.

    Example:
        >>> import fastloss
        >>> c = fastloss.error_counts(["kitten"], ["sitting"])
        >>> (c.hits, c.substitutions, c.deletions, c.insertions)
        (4, 2, 0, 1)
    """
    return ErrorCounts(*_C.error_counts(*_sentences(references, hypotheses, unit), unit == "word"))
