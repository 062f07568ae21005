"""The ``fastloss`` command line.

``fastloss error-rate [--unit char|word] [--json] [--normalize STEP[,STEP...]] [--per-sentence]
[--show-alignment] REFERENCES HYPOTHESES`` reads two UTF-8 text files, one sentence per line
(line i of one against line i of the other), and prints the corpus error rate with its counts
(jiwer 4's rules, see :func:`fastloss.error_counts`). The files are streamed in chunks of lines
through :func:`fastloss.error_counts`, so memory stays bounded whatever their size; on a
terminal a progress line is drawn on stderr. ``--normalize`` applies named normalisation steps
first; ``--per-sentence`` prints one JSON object per sentence, then the corpus line as JSON;
``--show-alignment`` prints jiwer's ``visualize_alignment`` layout before the corpus report.

Exit status: 0 on success; 2 for a usage error, an unreadable or non-UTF-8 file, or files of
different line counts (the message names both files and their counts).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from itertools import islice

from .edit_distance import _NAMED, ErrorCounts, _alignment_text, _summary, error_counts, per_sentence_counts

JSON_KEYS = ("unit", "error_rate", "mer", "wil", "wip", "hits", "substitutions", "deletions", "insertions",
             "reference_units", "sentences")

CHUNK_LINES = 50_000  # ~5 MB of typical text per side in memory at once


class _Fail(Exception):
    """A message for stderr and exit status 2."""


def _lines(f, path, first_line, count):
    """Up to `count` decoded lines of binary file f (split on b"\\n" only; the terminator,
    and a UTF-8 byte-order mark at the very start, removed)."""
    out = []
    for k, raw in enumerate(islice(f, count)):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _Fail(f"{path}: line {first_line + k + 1} is not valid UTF-8 ({e.reason})") from None
        if line.endswith("\n"):
            line = line[:-1]
        if first_line == 0 and k == 0 and line.startswith("\ufeff"):
            line = line[1:]
        out.append(line)
    return out


class _Progress:
    """A one-line progress display on stderr, only when stderr is a terminal."""

    def __init__(self, f, path):
        self.on = sys.stderr.isatty()
        self.f = f
        try:
            self.total = os.path.getsize(path)
        except OSError:
            self.total = 0

    def update(self, lines):
        if not self.on:
            return
        done = self.f.tell() if self.total else 0
        pct = f"{100.0 * done / self.total:5.1f}%" if self.total else "     "
        width = 30
        fill = int(width * done / self.total) if self.total else 0
        sys.stderr.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {pct} {lines:,} lines")
        sys.stderr.flush()

    def close(self):
        if self.on:
            sys.stderr.write("\r" + " " * 60 + "\r")
            sys.stderr.flush()


def _count_rest(f):
    return sum(1 for _ in f)


def corpus_counts(ref_path, hyp_path, unit="char", chunk_lines=CHUNK_LINES, normalize=None, per_sentence=False,
                  show_alignment=False, out=None):
    """(ErrorCounts, sentences) of two files, streamed `chunk_lines` lines at a time; with
    per_sentence / show_alignment, each chunk's lines are written to `out` as they come."""
    total = ErrorCounts()
    n = 0        # sentences counted (lines, less any that remove_empty dropped)
    lines = 0    # lines read
    try:
        with open(ref_path, "rb") as fr, open(hyp_path, "rb") as fh:
            progress = _Progress(fr, ref_path)
            try:
                while True:
                    refs = _lines(fr, ref_path, lines, chunk_lines)
                    hyps = _lines(fh, hyp_path, lines, chunk_lines)
                    if len(refs) != len(hyps):
                        nr = lines + len(refs) + (_count_rest(fr) if len(refs) == chunk_lines else 0)
                        nh = lines + len(hyps) + (_count_rest(fh) if len(hyps) == chunk_lines else 0)
                        raise _Fail(f"{ref_path} has {nr} lines but {hyp_path} has {nh} lines; line i of the "
                                    f"references is compared with line i of the hypotheses, so the counts must match")
                    if not refs:
                        break
                    try:
                        if show_alignment:
                            text, c, k = _alignment_text(refs, hyps, unit, normalize, True, None, first=n + 1)
                            out.write(text)
                        elif per_sentence:
                            c, per = per_sentence_counts(refs, hyps, unit=unit, normalize=normalize)
                            k = len(per)
                            for i, (h, s_, d, ins) in enumerate(per.tolist()):
                                ref_units = h + s_ + d
                                rate = (s_ + d + ins) / ref_units if ref_units else ins
                                out.write(json.dumps({"sentence": n + i + 1, "error_rate": rate, "hits": h,
                                                      "substitutions": s_, "deletions": d, "insertions": ins,
                                                      "reference_units": ref_units}) + "\n")
                        else:
                            c = error_counts(refs, hyps, unit=unit, normalize=normalize)
                            k = len(refs)
                    except ValueError as e:  # remove_empty left different sentence counts
                        raise _Fail(f"lines {lines + 1}-{lines + len(refs)}: {e}") from None
                    total = total + c
                    n += k
                    lines += len(refs)
                    progress.update(lines)
                    if len(refs) < chunk_lines:
                        break
            finally:
                progress.close()
    except OSError as e:
        raise _Fail(f"cannot read {e.filename}: {e.strerror}") from None
    return total, n


def _report(c, n, unit):
    d = {"unit": unit, "error_rate": c.error_rate, "mer": c.mer, "wil": c.wil, "wip": c.wip, "hits": c.hits,
         "substitutions": c.substitutions, "deletions": c.deletions, "insertions": c.insertions,
         "reference_units": c.reference_units, "sentences": n}
    return {k: d[k] for k in JSON_KEYS}


def _text(d):
    name = "WER" if d["unit"] == "word" else "CER"
    units = "words" if d["unit"] == "word" else "characters"
    return (f"{name}: {d['error_rate']:.6g}\n"
            f"hits: {d['hits']}  substitutions: {d['substitutions']}  deletions: {d['deletions']}  "
            f"insertions: {d['insertions']}\n"
            f"reference {units}: {d['reference_units']}  sentences: {d['sentences']}\n"
            f"MER: {d['mer']:.6g}  WIL: {d['wil']:.6g}  WIP: {d['wip']:.6g}")


def _parser():
    p = argparse.ArgumentParser(prog="fastloss", description="fastloss command line tools.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    e = sub.add_parser("error-rate", help="corpus WER / CER of two text files (one sentence per line)",
                       description="Corpus error rate of two UTF-8 text files, line i of REFERENCES against "
                                   "line i of HYPOTHESES, with jiwer 4's counts and measures.")
    e.add_argument("--unit", choices=("char", "word"), default="char",
                   help="char: character error rate (default); word: word error rate")
    e.add_argument("--json", action="store_true", help="print one JSON object (keys: " + ", ".join(JSON_KEYS) + ")")
    e.add_argument("--normalize", metavar="STEP[,STEP...]", default=None,
                   help="normalise both files first, steps in order: " + ", ".join(_NAMED) +
                        " (jiwer's ToLowerCase, RemovePunctuation, RemoveMultipleSpaces, Strip, RemoveEmptyStrings, "
                        "ExpandCommonEnglishContractions)")
    e.add_argument("--per-sentence", action="store_true",
                   help="print one JSON object per sentence with its counts, then the corpus line (as JSON)")
    e.add_argument("--show-alignment", action="store_true",
                   help="print each sentence's alignment (jiwer's visualize_alignment layout) before the report")
    e.add_argument("--chunk-lines", type=int, default=CHUNK_LINES, help=argparse.SUPPRESS)
    e.add_argument("references", metavar="REFERENCES")
    e.add_argument("hypotheses", metavar="HYPOTHESES")
    return p


def main(argv=None):
    """Entry point of the console script and of ``python -m fastloss``; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.chunk_lines < 1:
        print("fastloss error-rate: --chunk-lines must be positive", file=sys.stderr)
        return 2
    normalize = None
    if args.normalize is not None:
        normalize = [x.strip() for x in args.normalize.split(",") if x.strip()]
        bad = [x for x in normalize if x not in _NAMED]
        if bad:
            print(f"fastloss error-rate: --normalize: unknown step {bad[0]!r}; the steps are {', '.join(_NAMED)}",
                  file=sys.stderr)
            return 2
    if args.per_sentence and args.show_alignment:
        print("fastloss error-rate: --per-sentence and --show-alignment are exclusive", file=sys.stderr)
        return 2
    try:
        c, n = corpus_counts(args.references, args.hypotheses, args.unit, args.chunk_lines, normalize,
                             args.per_sentence, args.show_alignment, sys.stdout)
    except _Fail as e:
        print(f"fastloss error-rate: {e}", file=sys.stderr)
        return 2
    if args.show_alignment:
        sys.stdout.write(_summary(c, n, args.unit))
    d = _report(c, n, args.unit)
    print(json.dumps(d) if (args.json or args.per_sentence) else _text(d))
    return 0


if __name__ == "__main__":
    sys.exit(main())
