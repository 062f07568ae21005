"""Fixed per-call cost of ctc_loss on tiny batches, against torch.nn.functional.ctc_loss, and
the time per lattice cell (a large call on 1 thread) behind the CTC kernel's thread threshold
(kMinWorkPerThread in csrc/cpu/ctc.cpp, with OpenMP's fork/join cost timed in C++). Timings alternate fastloss / torch in one run; the
minimum of the repeats is reported.

    PYTHONPATH=python python3 bench/ctc_call_overhead.py
"""
import os
import time

import numpy as np
import torch

import fastloss

torch.set_num_threads(1)


def best(fn, reps=5, inner=200):
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        out.append((time.perf_counter() - t0) / inner)
    return min(out)


def inputs(T, N, C, S, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, N, C)).astype(np.float32)
    lp = x - np.log(np.exp(x).sum(-1, keepdims=True))
    labels = rng.integers(1, C, (N, S))
    return lp, labels, np.full(N, T), np.full(N, S)


def main():
    print(f"machine: {os.cpu_count()} cores; fastloss {fastloss.build_info()['simd']}, torch {torch.__version__} "
          f"(1 thread)")
    print("tiny calls, T=10, C=5, S=2, return_grad (fastloss) vs loss+backward (torch):")
    for N in (1, 2, 3, 4):
        lp, labels, il, ll = inputs(10, N, 5, 2)
        tl = torch.tensor(lp, requires_grad=True)
        tlab, til, tll = torch.tensor(labels), torch.tensor(il), torch.tensor(ll)

        def fl():
            fastloss.ctc_loss(lp, labels, il, ll, return_grad=True)

        def fl_loss():
            fastloss.ctc_loss(lp, labels, il, ll)

        def th():
            loss = torch.nn.functional.ctc_loss(tl, tlab, til, tll)
            loss.backward()
            tl.grad = None

        def th_loss():
            with torch.no_grad():
                torch.nn.functional.ctc_loss(tl, tlab, til, tll)

        res = {}
        for _ in range(2):  # alternate
            for name, f in (("fl", fl), ("th", th), ("fl_loss", fl_loss), ("th_loss", th_loss)):
                res[name] = min(res.get(name, 1e9), best(f))
        print(f"  N={N}: fastloss {res['fl']*1e6:6.1f} us (loss only {res['fl_loss']*1e6:5.1f}), torch "
              f"{res['th']*1e6:6.1f} us (loss only {res['th_loss']*1e6:5.1f}); ratio torch/fastloss "
              f"{res['th']/res['fl']:.2f} ({res['th_loss']/res['fl_loss']:.2f} loss only)")

    # Time per cell: one thread, a large call.
    T, N, C, S = 200, 16, 30, 40
    lp, labels, il, ll = inputs(T, N, C, S)
    fastloss.set_num_threads(1)
    tc = best(lambda: fastloss.ctc_loss(lp, labels, il, ll, return_grad=True), reps=5, inner=5)
    cells = N * T * (2 * S + 1 + C)
    fastloss.set_num_threads(2)
    print(f"large call (T={T}, N={N}, C={C}, S={S}) on 1 thread: {tc*1e3:.2f} ms, {tc/cells*1e9:.2f} ns per cell")
    print("fork/join: time an empty 2-thread `#pragma omp parallel` in C++ (the kernels no longer wake "
          "threads for tiny calls); kMinWorkPerThread = fork/join / per-cell time")
