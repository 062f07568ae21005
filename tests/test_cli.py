"""The fastloss command line: `fastloss error-rate` (python -m fastloss and fastloss.cli.main)."""
import json
import os
import random
import subprocess
import sys


import pytest

import fastloss
from fastloss import cli

jiwer = pytest.importorskip("jiwer")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Child processes import fastloss from where this process did (a development tree's python/
# folder, or site-packages after `pip install`).
PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastloss.__file__)))


def run(*args):
    env = dict(os.environ, PYTHONPATH=PKG_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "fastloss", *args], capture_output=True, text=True, env=env)


def corpus(tmp_path, n=200, seed=0, crlf=False, final_newline=True):
    rng = random.Random(seed)
    words = ["the", "cat", "sat", "on", "a", "mat", "é", "\u4e2d\u6587"]
    refs = [" ".join(rng.choice(words) for _ in range(rng.randrange(0, 12))) for _ in range(n)]
    hyps = [" ".join(rng.choice(words) for _ in range(rng.randrange(0, 12))) for _ in range(n)]
    if not final_newline:  # an empty last line without a terminator is no line at all
        refs[-1] += " x"
        hyps[-1] += " x"
    end = "\r\n" if crlf else "\n"
    r, h = tmp_path / "ref.txt", tmp_path / "hyp.txt"
    r.write_bytes((end.join(refs) + (end if final_newline else "")).encode("utf-8"))
    h.write_bytes((end.join(hyps) + (end if final_newline else "")).encode("utf-8"))
    return str(r), str(h), refs, hyps


@pytest.mark.parametrize("unit", ["char", "word"])
def test_json_matches_jiwer(tmp_path, unit):
    r, h, refs, hyps = corpus(tmp_path)
    p = run("error-rate", "--unit", unit, "--json", r, h)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""  # no progress display when stderr is not a terminal
    d = json.loads(p.stdout)
    assert list(d) == ["unit", "error_rate", "mer", "wil", "wip", "hits", "substitutions", "deletions", "insertions",
                       "reference_units", "sentences"]
    o = jiwer.process_words(refs, hyps) if unit == "word" else jiwer.process_characters(refs, hyps)
    assert (d["hits"], d["substitutions"], d["deletions"], d["insertions"]) == \
        (o.hits, o.substitutions, o.deletions, o.insertions)
    assert d["error_rate"] == pytest.approx(o.wer if unit == "word" else o.cer, abs=1e-12)
    assert d["sentences"] == len(refs) and d["unit"] == unit
    assert d["reference_units"] == o.hits + o.substitutions + o.deletions
    c = fastloss.error_counts(refs, hyps, unit=unit)
    assert (d["mer"], d["wil"], d["wip"]) == pytest.approx((c.mer, c.wil, c.wip), abs=1e-12)


def test_text_output_and_default_unit(tmp_path):
    r, h, refs, hyps = corpus(tmp_path)
    p = run("error-rate", r, h)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("CER: ")
    assert f"sentences: {len(refs)}" in p.stdout
    assert float(p.stdout.split()[1]) == pytest.approx(jiwer.cer(refs, hyps), rel=1e-5)


@pytest.mark.parametrize("chunk", [1, 3, 64, 10**6])
@pytest.mark.parametrize("crlf,final", [(False, True), (True, True), (False, False)])
def test_chunks_line_endings_give_the_same_counts(tmp_path, chunk, crlf, final):
    r, h, refs, hyps = corpus(tmp_path, n=50, seed=1, crlf=crlf, final_newline=final)
    assert cli.main(["error-rate", "--unit", "word", "--json", "--chunk-lines", str(chunk), r, h]) == 0
    c = fastloss.error_counts(refs, hyps, unit="word")
    exp = cli._report(c, len(refs), "word")
    out = cli.corpus_counts(r, h, "word", chunk)
    assert out == (c, len(refs))
    assert exp["sentences"] == 50


def test_mismatched_line_counts_exit_2(tmp_path):
    r = tmp_path / "refs.txt"
    h = tmp_path / "hyps.txt"
    r.write_text("a\nb\nc\n", encoding="utf-8")
    h.write_text("a\nb\n", encoding="utf-8")
    p = run("error-rate", str(r), str(h))
    assert p.returncode == 2
    assert str(r) in p.stderr and str(h) in p.stderr and "3 lines" in p.stderr and "2 lines" in p.stderr
    assert p.stdout == ""
    # the longer file's count is exact even when it runs past a chunk
    for chunk in ["1", "2", "5"]:
        p = run("error-rate", "--chunk-lines", chunk, str(h), str(r))
        assert p.returncode == 2 and "has 2 lines" in p.stderr and "has 3 lines" in p.stderr, p.stderr


def test_bad_files_and_usage(tmp_path):
    r = tmp_path / "r.txt"
    r.write_text("a\n", encoding="utf-8")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\n\xff\xfe\n")
    p = run("error-rate", str(r), str(tmp_path / "missing.txt"))
    assert p.returncode == 2 and "missing.txt" in p.stderr
    p = run("error-rate", str(bad), str(bad))
    assert p.returncode == 2 and "line 2" in p.stderr and "UTF-8" in p.stderr
    assert run("error-rate", "--unit", "token", str(r), str(r)).returncode == 2
    assert run("error-rate", str(r)).returncode == 2
    assert run().returncode == 2


def test_empty_files_and_bom(tmp_path):
    r, h = tmp_path / "r.txt", tmp_path / "h.txt"
    r.write_bytes(b"")
    h.write_bytes(b"")
    d = json.loads(run("error-rate", "--json", str(r), str(h)).stdout)
    assert d["sentences"] == 0 and d["error_rate"] == 0 and d["hits"] == 0
    r.write_bytes("\ufeffab\n".encode("utf-8"))
    h.write_bytes(b"ab\n")
    d = json.loads(run("error-rate", "--json", str(r), str(h)).stdout)
    assert d["error_rate"] == 0 and d["hits"] == 2


def test_console_script_is_declared():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        meta = tomllib.load(f)
    assert meta["project"]["scripts"]["fastloss"] == "fastloss.cli:main"


def test_progress_only_on_a_terminal(tmp_path):
    pty = pytest.importorskip("pty")
    r, h, refs, hyps = corpus(tmp_path, n=30)
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONPATH=PKG_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-m", "fastloss", "error-rate", "--json", "--chunk-lines", "7", r, h],
                       stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    drawn = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        drawn += chunk
    os.close(master)
    assert p.returncode == 0
    assert b"lines" in drawn and b"%" in drawn  # the progress line went to the terminal
    assert json.loads(p.stdout)["sentences"] == 30  # and never to stdout


class TestNormalizeAlignmentPerSentence:
    """--normalize, --per-sentence and --show-alignment against jiwer (through cli.main)."""

    STEPS = ["lowercase", "remove_punctuation", "remove_multiple_spaces", "strip"]
    JIWER = [jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip()]

    def files(self, tmp_path):
        rng = random.Random(5)
        words = ["The", "cat,", "sat", "on", "a", "mat.", "É", "it's"]
        refs = [" ".join(rng.choice(words) for _ in range(rng.randrange(0, 9))) for _ in range(120)]
        hyps = [" ".join(rng.choice(words) for _ in range(rng.randrange(0, 9))) for _ in range(120)]
        r, h = tmp_path / "r.txt", tmp_path / "h.txt"
        r.write_text("\n".join(refs) + "\n", encoding="utf-8")
        h.write_text("\n".join(hyps) + "\n", encoding="utf-8")
        return str(r), str(h), refs, hyps

    def jiwer_out(self, refs, hyps, unit, steps=True):
        tail = ([jiwer.RemoveMultipleSpaces(), jiwer.Strip(), jiwer.ReduceToListOfListOfWords()] if unit == "word"
                else [jiwer.Strip(), jiwer.ReduceToListOfListOfChars()])
        t = jiwer.Compose((self.JIWER if steps else []) + tail)
        f = jiwer.process_words if unit == "word" else jiwer.process_characters
        return f(refs, hyps, reference_transform=t, hypothesis_transform=t)

    @pytest.mark.parametrize("unit", ["word", "char"])
    def test_normalize(self, tmp_path, capsys, unit):
        r, h, refs, hyps = self.files(tmp_path)
        assert cli.main(["error-rate", "--unit", unit, "--json", "--normalize", ",".join(self.STEPS), r, h]) == 0
        d = json.loads(capsys.readouterr().out)
        o = self.jiwer_out(refs, hyps, unit)
        assert (d["hits"], d["substitutions"], d["deletions"], d["insertions"]) == \
            (o.hits, o.substitutions, o.deletions, o.insertions)

    @pytest.mark.parametrize("unit", ["word", "char"])
    def test_per_sentence(self, tmp_path, capsys, unit):
        r, h, refs, hyps = self.files(tmp_path)
        assert cli.main(["error-rate", "--unit", unit, "--per-sentence", "--chunk-lines", "50", r, h]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == len(refs) + 1
        for i, (line, a, b) in enumerate(zip(lines, refs, hyps)):
            d = json.loads(line)
            o = self.jiwer_out([a], [b], unit, steps=False)
            assert d["sentence"] == i + 1
            assert (d["hits"], d["substitutions"], d["deletions"], d["insertions"]) == \
                (o.hits, o.substitutions, o.deletions, o.insertions)
        total = json.loads(lines[-1])
        c = fastloss.error_counts(refs, hyps, unit=unit)
        assert total["hits"] == c.hits and total["sentences"] == len(refs)

    @pytest.mark.parametrize("unit", ["word", "char"])
    def test_show_alignment(self, tmp_path, capsys, unit):
        r, h, refs, hyps = self.files(tmp_path)
        assert cli.main(["error-rate", "--unit", unit, "--show-alignment", "--normalize", ",".join(self.STEPS),
                         "--chunk-lines", "37", r, h]) == 0
        out = capsys.readouterr().out
        want = jiwer.visualize_alignment(self.jiwer_out(refs, hyps, unit), show_measures=True)
        assert out.startswith(want)

    def test_bad_step(self, tmp_path, capsys):
        r, h, _, _ = self.files(tmp_path)
        assert cli.main(["error-rate", "--normalize", "lowercase,bogus", r, h]) == 2
        assert "--normalize" in capsys.readouterr().err
