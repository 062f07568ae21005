"""Edit-distance throughput: fastloss vs rapidfuzz (batched pairs, pairwise matrix) and jiwer
(corpus error rates). Not part of pytest. Timings are the minimum over repeats, the two
libraries interleaved in the same run (the machine may be shared).

    python3 bench/compare_edit_distance.py [--repeats 7] [--gpu | --gpu-only]
        [--small-only] [--cutoff-only] [--counts-only] [--real-only [--long-pairs N]] [--cli [LINES]]

after ``python3 -m pip install ".[bench]"`` (README); from a source checkout with a development
build instead, ``PYTHONPATH=python python3 bench/compare_edit_distance.py``.

Sections: throughput (batched pairs, pairwise, error_rate); small calls (issue 9: the fixed
cost of one pair, 10 pairs, a 10 x 10 matrix, one sentence); score_cutoff (bounded against
unbounded); error_counts against jiwer's process_words / process_characters; real text (lines
of Python's shipped text files, corrupted at random: dedup with every score_cutoff against
rapidfuzz's cdist, and pairs of 100,000 characters against jiwer and rapidfuzz's editops); and with
--cli the `fastloss error-rate` command line on a generated corpus (time and peak memory).
"""
import argparse
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

import fastloss

ALPHA = "abcdefghijklmnopqrstuvwxyz "


def mutate(rng, s, edits):
    t = list(s)
    for _ in range(edits):
        i = rng.randrange(len(t) + 1)
        op = rng.randrange(3)
        if op == 0:
            t.insert(i, rng.choice(ALPHA))
        elif i < len(t):
            if op == 1:
                del t[i]
            else:
                t[i] = rng.choice(ALPHA)
    return "".join(t)


def make_pairs(n, length, seed=0):
    """n (reference, hypothesis) pairs of `length` characters with ~10% edits."""
    rng = random.Random(seed)
    refs = ["".join(rng.choice(ALPHA) for _ in range(length)) for _ in range(n)]
    hyps = [mutate(rng, r, max(1, length // 10)) for r in refs]
    return refs, hyps


def make_sentences(n, seed=0):
    rng = random.Random(seed)
    vocab = ["".join(rng.choice(ALPHA[:-1]) for _ in range(rng.randrange(2, 9))) for _ in range(5000)]
    refs, hyps = [], []
    for _ in range(n):
        words = [rng.choice(vocab) for _ in range(rng.randrange(5, 25))]
        h = list(words)
        for _ in range(max(1, len(words) // 10)):
            i = rng.randrange(len(h) + 1)
            op = rng.randrange(3)
            if op == 0:
                h.insert(i, rng.choice(vocab))
            elif i < len(h):
                if op == 1:
                    del h[i]
                else:
                    h[i] = rng.choice(vocab)
        refs.append(" ".join(words))
        hyps.append(" ".join(h))
    return refs, hyps


def interleaved(fns, repeats):
    """Min time of each callable, calls interleaved; also returns each result once."""
    best = [float("inf")] * len(fns)
    results = [None] * len(fns)
    for _ in range(repeats):
        for k, f in enumerate(fns):
            t = time.perf_counter()
            r = f()
            best[k] = min(best[k], time.perf_counter() - t)
            results[k] = r
    return best, results


def bench_gpu(repeats):
    """1M padded pairs of 30 tokens (~10% edits) on CuPy against the CPU path on 2 threads (the
    issue's 2-core baseline), on the same machine and input."""
    try:
        import cupy as cp
    except ImportError:
        print("\nGPU: cupy not installed, skipped")
        return
    if not fastloss.cuda_available():
        print("\nGPU: no CUDA device, skipped")
        return
    rng = np.random.default_rng(0)
    n, width = 1_000_000, 30
    print(f"\nGPU {cp.cuda.runtime.getDeviceProperties(0)['name'].decode()}: {n} padded pairs x {width} tokens")
    print(f"| dtype | GPU (ms) | M pairs/s | CPU 2 threads (ms) | GPU / CPU |")
    print(f"| --- | ---: | ---: | ---: | ---: |")
    for dtype in (np.int32, np.int64):
        a = rng.integers(0, 30, size=(n, width)).astype(dtype)
        b = a.copy()
        idx = rng.integers(0, width, size=(n, 3))
        b[np.arange(n)[:, None], idx] = rng.integers(0, 30, size=(n, 3))
        la = np.full(n, width, np.int64)
        lb = rng.integers(width - 3, width + 1, size=n)
        da, db, dla, dlb = map(cp.asarray, (a, b, la, lb))
        fastloss.edit_distance(da, db, a_lengths=dla, b_lengths=dlb)
        cp.cuda.Device().synchronize()
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            fastloss.edit_distance(da, db, a_lengths=dla, b_lengths=dlb)
            cp.cuda.Device().synchronize()
            best = min(best, time.perf_counter() - t)
        threads = fastloss.get_num_threads()
        fastloss.set_num_threads(2)
        cpu_best, cpu = float("inf"), None
        for _ in range(3):
            t = time.perf_counter()
            cpu = fastloss.edit_distance(a, b, a_lengths=la, b_lengths=lb)
            cpu_best = min(cpu_best, time.perf_counter() - t)
        fastloss.set_num_threads(threads)
        assert (cp.asnumpy(fastloss.edit_distance(da, db, a_lengths=dla, b_lengths=dlb)) == cpu).all()
        print(f"| {np.dtype(dtype).name} | {best * 1e3:.2f} | {n / best / 1e6:.0f} | {cpu_best * 1e3:.1f} | "
              f"{cpu_best / best:.1f}x |")


def per_call(fns, repeats, calls):
    """Min over `repeats` samples of the mean time of `calls` calls of each callable, the
    callables interleaved sample by sample."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for k, f in enumerate(fns):
            t = time.perf_counter()
            for _ in range(calls):
                f()
            best[k] = min(best[k], (time.perf_counter() - t) / calls)
    return best


def bench_small(repeats):
    """Issue 9: per-call cost of small inputs, fastloss vs rapidfuzz (and jiwer for one sentence)."""
    import jiwer
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import cdist, cpdist

    a10 = ["kitten", "sitting", "flaw", "lawn", "intention", "execution", "abc", "yabd", "hello", "world"]
    b10 = ["sitting", "kitten", "lawn", "flaw", "execution", "intention", "abd", "abc", "help", "word"]
    cases = [
        ('edit_distance("kitten", "sitting")', "Levenshtein.distance",
         lambda: fastloss.edit_distance("kitten", "sitting"), lambda: Levenshtein.distance("kitten", "sitting"),
         20000, 6.0),
        ("edit_distance, 10 pairs", "cpdist", lambda: fastloss.edit_distance(a10, b10),
         lambda: cpdist(a10, b10, scorer=Levenshtein.distance), 5000, 1.0),
        ("pairwise_edit_distance 10 x 10", "cdist", lambda: fastloss.pairwise_edit_distance(a10, b10),
         lambda: cdist(a10, b10, scorer=Levenshtein.distance), 5000, 1.0),
        ('error_rate("the cat sat", "the cat sit", unit="word")', "jiwer.wer",
         lambda: fastloss.error_rate("the cat sat", "the cat sit", unit="word"),
         lambda: jiwer.wer("the cat sat", "the cat sit"), 2000, None),
        ('error_counts (one sentence, word)', "jiwer.process_words",
         lambda: fastloss.error_counts("the cat sat", "the cat sit", unit="word"),
         lambda: jiwer.process_words("the cat sat", "the cat sit"), 2000, None),
    ]
    print("\nSmall calls (issue 9): microseconds per call, min over samples, interleaved")
    print("| call | peer | fastloss (us) | peer (us) | fastloss / peer | target |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, peer, f, g, calls, target in cases:
        assert np.all(np.asarray(f()) == np.asarray(g())) or peer.startswith("jiwer")
        tf, tg = per_call([f, g], repeats, calls)
        tgt = "" if target is None else f"<= {target:g}x ({'met' if tf / tg <= target else 'MISSED'})"
        print(f"| {name} | {peer} | {tf * 1e6:.2f} | {tg * 1e6:.2f} | {tf / tg:.2f}x | {tgt} |")


def bench_cutoff(repeats, workers):
    """score_cutoff: a bounded search against the same call without a bound (and rapidfuzz's)."""
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import cdist, cpdist

    print("\nscore_cutoff: bounded vs unbounded (ms, min over repeats, interleaved)")
    print("| workload | cutoff | fastloss no cutoff | fastloss cutoff | speed-up from the cutoff | "
          "rapidfuzz cutoff | fastloss / rapidfuzz |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n, length, cutoff in [(2000, 500, 5), (300, 3000, 10), (200000, 30, 2)]:
        a, b = make_pairs(n, length, seed=3)
        rng = random.Random(4)
        b = [x if rng.random() < 0.5 else "".join(rng.sample(x, len(x))) for x in b]  # half far apart
        (t0, t1, tr), (r0, r1, rr) = interleaved([
            lambda: fastloss.edit_distance(a, b),
            lambda: fastloss.edit_distance(a, b, score_cutoff=cutoff),
            lambda: cpdist(a, b, scorer=Levenshtein.distance, score_cutoff=cutoff, workers=workers)], repeats)
        assert (r1 == np.asarray(rr)).all() and (np.minimum(r0, cutoff + 1) == r1).all()
        # the bounded calls are short: more samples against load spikes
        (t1b, trb), _ = interleaved([
            lambda: fastloss.edit_distance(a, b, score_cutoff=cutoff),
            lambda: cpdist(a, b, scorer=Levenshtein.distance, score_cutoff=cutoff, workers=workers)], 5 * repeats)
        t1, tr = min(t1, t1b), min(tr, trb)
        print(f"| edit_distance {n} pairs x {length} chars | {cutoff} | {t0 * 1e3:.2f} | {t1 * 1e3:.2f} | "
              f"{t0 / t1:.2f}x | {tr * 1e3:.2f} | {tr / t1:.2f}x |")
    a, _ = make_pairs(300, 400, seed=5)
    b, _ = make_pairs(300, 400, seed=6)
    b[:100] = [mutate(random.Random(i), x, 8) for i, x in enumerate(a[:100])]
    (t0, t1, tr), (r0, r1, rr) = interleaved([
        lambda: fastloss.pairwise_edit_distance(a, b),
        lambda: fastloss.pairwise_edit_distance(a, b, score_cutoff=20),
        lambda: cdist(a, b, scorer=Levenshtein.distance, score_cutoff=20, workers=workers, dtype=np.int32)], repeats)
    assert (r1 == rr).all()
    (t1b, trb), _ = interleaved([
        lambda: fastloss.pairwise_edit_distance(a, b, score_cutoff=20),
        lambda: cdist(a, b, scorer=Levenshtein.distance, score_cutoff=20, workers=workers, dtype=np.int32)],
        3 * repeats)
    t1, tr = min(t1, t1b), min(tr, trb)
    print(f"| pairwise_edit_distance 300 x 300 x 400 chars | 20 | {t0 * 1e3:.2f} | {t1 * 1e3:.2f} | {t0 / t1:.2f}x | "
          f"{tr * 1e3:.2f} | {tr / t1:.2f}x |")


def real_lines(min_len, max_len, limit, seed=0):
    """Lines of the text files that ship with Python (the license, stdlib sources: code and
    docstrings), min_len..max_len characters, shuffled with a fixed seed."""
    import sysconfig
    from pathlib import Path

    root = Path(sysconfig.get_paths()["stdlib"])
    files = [root / "LICENSE.txt"] + sorted(root.glob("*.py"))
    out = []
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        out += [ln.strip() for ln in text.splitlines() if min_len <= len(ln.strip()) <= max_len]
        if len(out) > 20 * limit:
            break
    rng = random.Random(seed)
    rng.shuffle(out)
    return out[:limit]


def corrupt(rng, line, rate=0.08):
    """Character edits (substitute, delete, insert) at `rate` per character, some non-ASCII."""
    out = []
    for ch in line:
        r = rng.random()
        if r < rate / 3:
            continue
        if r < 2 * rate / 3:
            out.append(rng.choice("aeiouéü€ "))
        elif r < rate:
            out += [ch, rng.choice("aeiou,.")]
        else:
            out.append(ch)
    return "".join(out)


def bench_real(repeats, workers, n_lines=1500, long_pairs=4, long_len=100_000):
    """Real text (issue 24): dedup with pairwise_edit_distance against rapidfuzz's cdist for each
    score_cutoff, and alignments of long lines against jiwer / rapidfuzz."""
    import jiwer
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import cdist

    print(f"\nReal text: lines of Python's shipped text files, corrupted at random (ms, min over repeats)")
    print("| workload | cutoff | fastloss | fastloss no cutoff | rapidfuzz cdist | fastloss / rapidfuzz |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    rng = random.Random(11)
    for lo, hi, wide in [(10, 200, False), (20, 64, False), (65, 200, False), (10, 200, True)]:
        a = real_lines(lo, hi, n_lines, seed=1)
        if wide:
            a = [x.replace("e", "é").replace("o", "ö") for x in a]
        b = [corrupt(rng, x) if rng.random() < 0.5 else y for x, y in zip(a, real_lines(lo, hi, n_lines, seed=2))]
        t_none = None
        for cutoff in (None, 0, 1, 3, 10):
            (tf, tr), (rf, rr) = interleaved([
                lambda: fastloss.pairwise_edit_distance(a, b, score_cutoff=cutoff),
                lambda: cdist(a, b, scorer=Levenshtein.distance, score_cutoff=cutoff, workers=workers,
                              dtype=np.int32)], repeats)
            assert (rf == rr).all()
            t_none = tf if cutoff is None else t_none
            print(f"| pairwise {len(a)} x {len(b)} lines of {lo}-{hi} chars{' (non-ASCII)' if wide else ''} | "
                  f"{cutoff} | {tf * 1e3:.1f} | {t_none * 1e3:.1f} | {tr * 1e3:.1f} | {tr / tf:.2f}x |")
        (tf, tr), (rf, rr) = interleaved([
            lambda: fastloss.pairwise_edit_distance(a, b, normalize=True, score_cutoff=0.1),
            lambda: cdist(a, b, scorer=Levenshtein.normalized_distance, score_cutoff=0.1, workers=workers,
                          dtype=np.float64)], repeats)
        assert np.allclose(rf, rr)
        print(f"| pairwise normalized, lines of {lo}-{hi} | 0.1 | {tf * 1e3:.1f} | | {tr * 1e3:.1f} | "
              f"{tr / tf:.2f}x |")

    # Long lines: the stdlib text joined into pairs of long_len characters, ~2% edits.
    text = " ".join(real_lines(1, 400, 200000, seed=3))
    refs = [text[k * long_len:(k + 1) * long_len] for k in range(long_pairs)]
    refs = [r for r in refs if len(r) == long_len]
    hyps = [corrupt(rng, r, 0.02) for r in refs]
    print(f"\nLong lines: {len(refs)} pairs of {long_len:,} characters, ~2% edits (s)")
    print("| workload | fastloss | baseline | baseline (s) | speed-up |")
    print("| --- | ---: | --- | ---: | ---: |")
    (tf, tj), (c, o) = interleaved([lambda: fastloss.error_counts(refs, hyps),
                                    lambda: jiwer.process_characters(refs, hyps)], 1)
    assert (c.hits, c.substitutions, c.deletions, c.insertions) == \
        (o.hits, o.substitutions, o.deletions, o.insertions)
    print(f"| error_counts (char) | {tf:.2f} | jiwer.process_characters | {tj:.2f} | {tj / tf:.1f}x |")
    (tf, tr), (x, y) = interleaved([lambda: fastloss.edit_ops(refs, hyps),
                                    lambda: [Levenshtein.editops(r, h).as_list() for r, h in zip(refs, hyps)]], 1)
    assert x == y
    print(f"| edit_ops | {tf:.2f} | Levenshtein.editops | {tr:.2f} | {tr / tf:.1f}x |")
    (tf, tj), (r1, r2) = interleaved([lambda: fastloss.error_rate(refs, hyps), lambda: jiwer.cer(refs, hyps)], 1)
    assert abs(r1 - r2) < 1e-12
    print(f"| error_rate (char) | {tf:.2f} | jiwer.cer | {tj:.2f} | {tj / tf:.1f}x |")


def bench_counts(repeats):
    """error_counts against jiwer's process_words / process_characters on 20000 sentence pairs."""
    import jiwer

    refs, hyps = make_sentences(20000)
    print("\nerror_counts, 20000 sentence pairs (ms, min over repeats, interleaved)")
    print("| unit | fastloss.error_counts | jiwer | jiwer (ms) | speed-up | target |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for unit, ref_fn in (("word", jiwer.process_words), ("char", jiwer.process_characters)):
        (tf, tj), (c, o) = interleaved([lambda: fastloss.error_counts(refs, hyps, unit=unit),
                                        lambda: ref_fn(refs, hyps)], max(2, repeats // 3))
        assert (c.hits, c.substitutions, c.deletions, c.insertions) == \
            (o.hits, o.substitutions, o.deletions, o.insertions)
        print(f"| {unit} | {tf * 1e3:.2f} | {ref_fn.__name__} | {tj * 1e3:.2f} | {tj / tf:.1f}x | "
              f">= 10x ({'met' if tj / tf >= 10 else 'MISSED'}) |")


def bench_cli(lines):
    """`python -m fastloss error-rate` on a generated corpus: wall time and the child's peak RSS,
    against the file size (memory is bounded by the chunk, not the corpus)."""
    print(f"\nCommand line on generated corpora (one child process per run)")
    print("| lines | file size (MB each) | unit | wall (s) | peak RSS (MiB) | lines/s |")
    print("| ---: | ---: | --- | ---: | ---: | ---: |")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python") + \
        os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sorted({lines // 10, lines}):
            refs, hyps = make_sentences(min(n, 100000), seed=7)
            rp, hp = os.path.join(tmp, "ref.txt"), os.path.join(tmp, "hyp.txt")
            for path, src in ((rp, refs), (hp, hyps)):
                with open(path, "w", encoding="utf-8") as f:
                    for i in range(n):
                        f.write(src[i % len(src)])
                        f.write("\n")
            for unit in ("word", "char"):
                cmd = [sys.executable, "-c", "import resource, runpy, sys; sys.argv = sys.argv[1:]; "
                       "code = 0\ntry:\n    runpy.run_module('fastloss', run_name='__main__')\n"
                       "except SystemExit as e:\n    code = e.code\n"
                       "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(code)",
                       "fastloss", "error-rate", "--unit", unit, "--json", rp, hp]
                t = time.perf_counter()
                p = subprocess.run(cmd, capture_output=True, text=True, env=env)
                wall = time.perf_counter() - t
                assert p.returncode == 0, p.stderr
                peak = int(p.stderr.strip().splitlines()[-1]) / 1024
                print(f"| {n:,} | {os.path.getsize(rp) / 1e6:.0f} | {unit} | {wall:.2f} | {peak:.0f} | "
                      f"{n / wall:,.0f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--gpu", action="store_true", help="also time 1M padded pairs of 30 tokens on CuPy")
    ap.add_argument("--gpu-only", action="store_true", help="only the GPU comparison")
    ap.add_argument("--single", action="store_true",
                    help="one thread on both sides (fastloss.set_num_threads(1), rapidfuzz workers=1): per-core "
                         "efficiency, less sensitive to other load on a shared machine")
    ap.add_argument("--small-only", action="store_true", help="only the small-call section")
    ap.add_argument("--cutoff-only", action="store_true", help="only the score_cutoff section")
    ap.add_argument("--counts-only", action="store_true", help="only the error_counts section")
    ap.add_argument("--real-only", action="store_true",
                    help="only the real-text section (dedup on Python's shipped text files, long lines)")
    ap.add_argument("--long-pairs", type=int, default=4, help="pairs of 100,000 characters in the real-text section")
    ap.add_argument("--cli", type=int, nargs="?", const=1_000_000, default=0, metavar="LINES",
                    help="also time the command line on a corpus of LINES lines (default 1M) and a tenth of it")
    args = ap.parse_args()
    if args.small_only:
        bench_small(args.repeats)
        return
    if args.cutoff_only:
        bench_cutoff(args.repeats, 1 if args.single else -1)
        return
    if args.counts_only:
        bench_counts(args.repeats)
        return
    if args.real_only:
        bench_real(args.repeats, 1 if args.single else -1, long_pairs=args.long_pairs)
        return
    if args.gpu_only:
        bench_gpu(args.repeats)
        return
    workers = 1 if args.single else -1
    if args.single:
        fastloss.set_num_threads(1)

    import jiwer
    import rapidfuzz
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import cdist, cpdist

    info = fastloss.build_info()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
          f"fastloss simd={info['simd']} threads={fastloss.get_num_threads()}, rapidfuzz {rapidfuzz.__version__}, "
          f"jiwer {getattr(jiwer, '__version__', '4.x')}, numpy {np.__version__}")
    rows = []

    for n, length in [(200000, 30), (20000, 200), (500, 2000)]:
        a, b = make_pairs(n, length)
        (tf, tr), (rf, rr) = interleaved([lambda: fastloss.edit_distance(a, b),
                                          lambda: cpdist(a, b, scorer=Levenshtein.distance, workers=workers)], args.repeats)
        assert (np.asarray(rf) == np.asarray(rr)).all()
        rows.append((f"edit_distance {n} pairs x {length} chars", f"cpdist(workers={workers})", tf, tr, 2.0))

    a, _ = make_pairs(2000, 30, seed=1)
    b, _ = make_pairs(2000, 30, seed=2)
    (tf, tr), (rf, rr) = interleaved([lambda: fastloss.pairwise_edit_distance(a, b),
                                      lambda: cdist(a, b, scorer=Levenshtein.distance, workers=workers, dtype=np.int32)],
                                     args.repeats)
    assert (rf == rr).all()
    rows.append(("pairwise_edit_distance 2000 x 2000 x 30 chars", f"cdist(workers={workers})", tf, tr, 1.5))

    refs, hyps = make_sentences(20000)
    for unit, ref_fn in (("word", jiwer.wer), ("char", jiwer.cer)):
        (tf, tr), (rf, rr) = interleaved([lambda: fastloss.error_rate(refs, hyps, unit=unit),
                                          lambda: ref_fn(refs, hyps)], max(2, args.repeats // 3))
        assert abs(rf - rr) < 1e-12, (rf, rr)
        rows.append((f"error_rate unit={unit} 20000 sentences", f"jiwer.{ref_fn.__name__}", tf, tr, 5.0))

    print()
    print(f"| workload | baseline | fastloss (ms) | baseline (ms) | speed-up | target |")
    print(f"| --- | --- | ---: | ---: | ---: | ---: |")
    for name, base, tf, tr, target in rows:
        ok = "met" if tr / tf >= target else "MISSED"
        print(f"| {name} | {base} | {tf * 1e3:.2f} | {tr * 1e3:.2f} | {tr / tf:.2f}x | >= {target}x ({ok}) |")
    bench_small(args.repeats)
    bench_cutoff(args.repeats, workers)
    bench_counts(args.repeats)
    bench_real(args.repeats, workers, long_pairs=args.long_pairs)
    if args.cli:
        bench_cli(args.cli)
    if args.gpu:
        bench_gpu(args.repeats)


if __name__ == "__main__":
    main()
