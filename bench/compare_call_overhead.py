#!/usr/bin/env python3
"""Fixed per-call cost: small calls of every family against their peers, in one run.

Pipelines call a loss on a small batch, or an edit distance on one pair, millions of times,
so the time of a tiny call (argument handling, output allocation, waking threads) matters as
much as the throughput of a big one. Each row times fastloss and its peer alternately
(best of several rounds of many calls) and prints the ratio peer / fastloss (above 1:
fastloss is faster). Peers that are not installed are skipped, and said so.

    python3 bench/compare_call_overhead.py            # after `pip install .` (+ ".[bench]" for peers)
    python3 bench/compare_call_overhead.py --quick    # fewer rounds
"""
import argparse
import os
import platform
import sys
import time

import numpy as np

import fastloss
from benchutil import cpu_name


def per_call(fn, budget):
    """Seconds per call: calls batched so that one batch takes about `budget` seconds."""
    fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= budget or n >= 1 << 22:
            return dt / n
        n *= 2 if dt < budget / 8 else 1
        if dt >= budget / 8:
            n = max(n, int(n * budget / max(dt, 1e-9)))


def paired(fns, rounds, budget):
    """Best per-call time of each function, measured alternately (the machine's drift hits all)."""
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            best[i] = min(best[i], per_call(fn, budget))
    return best


def fmt(t):
    return f"{t * 1e6:9.2f} us" if t < 1e-3 else f"{t * 1e3:9.3f} ms"


def rows(missing):
    r = np.random.default_rng(0)
    out = []
    try:
        import torch
        torch.set_num_threads(fastloss.get_num_threads())
    except ImportError:
        torch = None
        missing.append("torch (cross-entropy, CTC)")

    for N, C in [(8, 10), (256, 100), (16384, 10), (16384, 32), (16384, 100), (8192, 1000)]:
        x = r.standard_normal((N, C)).astype(np.float32)
        y = r.integers(0, C, N)
        # Default arguments bind this shape's arrays (a closure would see the loop's last ones).
        fl = lambda x=x, y=y: fastloss.softmax_cross_entropy(x, y)  # noqa: E731
        flg = lambda x=x, y=y: fastloss.softmax_cross_entropy(x, y, return_grad=True)  # noqa: E731
        if torch is not None:
            xt, yt = torch.from_numpy(x), torch.from_numpy(y)
            tf = lambda xt=xt, yt=yt: torch.nn.functional.cross_entropy(xt, yt)  # noqa: E731

            def tfb(xt=xt, yt=yt):
                a = xt.detach().requires_grad_()
                torch.nn.functional.cross_entropy(a, yt).backward()
                return a.grad
        else:
            tf = tfb = None
        out.append((f"softmax_cross_entropy ({N}, {C}), loss", fl, "torch cross_entropy", tf))
        out.append((f"softmax_cross_entropy ({N}, {C}), loss + grad", flg, "torch fwd+bwd", tfb))

    T, C, S = 10, 5, 3
    for N in (1, 4):
        lp = np.log(r.dirichlet(np.ones(C), (T, N))).astype(np.float32)
        lab = r.integers(1, C, (N, S))
        il, ll = np.full(N, T), np.full(N, S)
        fl = lambda lp=lp, lab=lab, il=il, ll=ll: fastloss.ctc_loss(lp, lab, il, ll, return_grad=True)  # noqa: E731
        if torch is not None:
            lpt, labt, ilt, llt = (torch.from_numpy(a) for a in (lp, lab, il, ll))

            def tctc(lpt=lpt, labt=labt, ilt=ilt, llt=llt):
                a = lpt.detach().requires_grad_()
                torch.nn.functional.ctc_loss(a, labt, ilt, llt).backward()
                return a.grad
        else:
            tctc = None
        out.append((f"ctc_loss T={T} N={N} C={C} S={S}, loss + grad", fl, "torch fwd+bwd", tctc))

    try:
        from rapidfuzz.distance import Levenshtein
        from rapidfuzz import process
    except ImportError:
        Levenshtein = process = None
        missing.append("rapidfuzz (edit distance)")
    words = ["".join(chr(97 + c) for c in r.integers(0, 6, r.integers(3, 12))) for _ in range(20)]
    a10, b10 = words[:10], words[10:]
    out.append(("edit_distance one pair (kitten, sitting)", lambda: fastloss.edit_distance("kitten", "sitting"),
                "rapidfuzz Levenshtein.distance",
                (lambda: Levenshtein.distance("kitten", "sitting")) if Levenshtein else None))
    out.append(("edit_distance batch of 10 pairs", lambda: fastloss.edit_distance(a10, b10),
                "rapidfuzz cpdist", (lambda: process.cpdist(a10, b10, scorer=Levenshtein.distance)) if process else None))
    out.append(("pairwise_edit_distance 10 x 10", lambda: fastloss.pairwise_edit_distance(a10, b10),
                "rapidfuzz cdist", (lambda: process.cdist(a10, b10, scorer=Levenshtein.distance)) if process else None))

    try:
        import jiwer
    except ImportError:
        jiwer = None
        missing.append("jiwer (error rates)")
    refs = ["the cat sat on the mat", "a quick brown fox"]
    hyps = ["the cat sit on mat", "a quick brown box"]
    out.append(("error_rate WER, 2 sentences", lambda: fastloss.error_rate(refs, hyps, unit="word"), "jiwer wer",
                (lambda: jiwer.wer(refs, hyps)) if jiwer else None))
    out.append(("error_rate CER, 2 sentences", lambda: fastloss.error_rate(refs, hyps, unit="char"), "jiwer cer",
                (lambda: jiwer.cer(refs, hyps)) if jiwer else None))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    args = ap.parse_args()
    rounds, budget = (3, 0.02) if args.quick else (7, 0.05)
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; fastloss {fastloss.__version__} "
          f"({fastloss.build_info()['simd']}, {fastloss.get_num_threads()} threads); numpy {np.__version__}; "
          f"python {platform.python_version()}")
    missing = []
    table = rows(missing)
    if missing:
        print("peers missing (their rows show fastloss alone): " + ", ".join(missing) +
              ' -- install them with: pip install ".[bench]"')
    print()
    head = f"{'call':<52} {'fastloss':>12} {'peer':<32} {'peer time':>12} {'peer/fastloss':>14}"
    print(head)
    print("-" * len(head))
    for name, fl, peer_name, peer in table:
        if peer is None:
            (t,) = paired([fl], rounds, budget)
            print(f"{name:<52} {fmt(t):>12} {'(not installed)':<32} {'':>12} {'':>14}", flush=True)
            continue
        t, tp = paired([fl, peer], rounds, budget)
        print(f"{name:<52} {fmt(t):>12} {peer_name:<32} {fmt(tp):>12} {tp / t:>13.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
