"""CTC loss + gradient: fastloss vs torch.nn.functional.ctc_loss (forward + backward).

Not part of pytest. CPU: float32, torch.set_num_threads(NTHREADS) and the same thread count
for fastloss; calls are interleaved and the minimum over many repeats is reported (the
machine may be shared). GPU (--gpu, needs CuPy and torch CUDA): the same cases plus S=400.

    PYTHONPATH=python python3 bench/compare_ctc.py [--threads 2] [--repeats 30] [--gpu]
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F

import fastloss

# (name, T, N, C, S, from_logits)
CASES = [
    ("T=200 N=32 C=40 S=60 (log_probs)", 200, 32, 40, 60, False),
    ("T=150 N=64 C=5000 S=20 (from_logits)", 150, 64, 5000, 20, True),
]
GPU_EXTRA = [("T=1000 N=32 C=40 S=400 (log_probs)", 1000, 32, 40, 400, False)]


def make_case(T, N, C, S, from_logits, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, N, C)).astype(np.float32)
    if not from_logits:
        x = (x - np.log(np.exp(x.astype(np.float64)).sum(-1, keepdims=True))).astype(np.float32)
    labels = rng.integers(1, C, (N, S)).astype(np.int64)
    il = rng.integers(int(T * 0.8), T + 1, N).astype(np.int64)
    il[0] = T
    ll = rng.integers(max(1, S // 2), S + 1, N).astype(np.int64)
    ll[0] = S
    return x, labels, il, ll


def timeit(fn, sync=None):
    t0 = time.perf_counter()
    fn()
    if sync:
        sync()
    return time.perf_counter() - t0


def bench_cpu(repeats, threads):
    torch.set_num_threads(threads)
    fastloss.set_num_threads(threads)
    rows = []
    for name, T, N, C, S, fl in CASES:
        x, labels, il, ll = make_case(T, N, C, S, fl)
        xt = torch.from_numpy(x).requires_grad_(True)
        lt, ilt, llt = torch.from_numpy(labels), torch.from_numpy(il), torch.from_numpy(ll)

        def run_fast():
            return fastloss.ctc_loss(x, labels, il, ll, from_logits=fl, return_grad=True)

        def run_torch():
            xt.grad = None
            lp = xt.log_softmax(-1) if fl else xt
            loss = F.ctc_loss(lp, lt, ilt, llt)
            loss.backward()
            return loss

        # correctness guard for the numbers we publish
        a, g = run_fast()
        b = run_torch()
        gt = xt.grad.numpy()
        if not fl:  # torch's gradient w.r.t. normalised log_probs is exp(lp)*sum - posterior
            g = g - np.exp(x) * g.sum(-1, keepdims=True)
        b = float(b.detach())
        assert abs(float(a) - b) <= 1e-3 * max(1.0, abs(b)), (float(a), b)
        assert np.abs(g - gt).max() < 1e-5, np.abs(g - gt).max()
        for _ in range(3):
            run_fast(); run_torch()
        tf, tt = [], []
        for _ in range(repeats):
            tf.append(timeit(run_fast))
            tt.append(timeit(run_torch))
        rows.append((name, min(tf), min(tt), float(np.median(tf)), float(np.median(tt))))
    return rows


def bench_gpu(repeats):
    import cupy as cp
    rows = []
    for name, T, N, C, S, fl in CASES + GPU_EXTRA:
        x, labels, il, ll = make_case(T, N, C, S, fl)
        xc, lc = cp.asarray(x), cp.asarray(labels)
        xt = torch.from_numpy(x).cuda().requires_grad_(True)
        lt, ilt, llt = torch.from_numpy(labels).cuda(), torch.from_numpy(il), torch.from_numpy(ll)
        ilc, llc = il, ll  # lengths are host data for fastloss (as for torch's CUDA kernel)

        def run_fast():
            return fastloss.ctc_loss(xc, lc, cp.asarray(ilc), cp.asarray(llc), from_logits=fl, return_grad=True)

        def run_torch():
            xt.grad = None
            lp = xt.log_softmax(-1) if fl else xt
            F.ctc_loss(lp, lt, ilt, llt).backward()

        for _ in range(3):
            run_fast(); run_torch()
        cp.cuda.Device().synchronize(); torch.cuda.synchronize()
        tf, tt = [], []
        for _ in range(repeats):
            tf.append(timeit(run_fast, cp.cuda.Device().synchronize))
            tt.append(timeit(run_torch, torch.cuda.synchronize))
        rows.append((name, min(tf), min(tt), float(np.median(tf)), float(np.median(tt))))
    return rows


def print_table(title, rows):
    print(f"\n{title}")
    print(f"| case | fastloss min (ms) | torch min (ms) | speed-up (min) | fastloss median | torch median | speed-up (median) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, f, t, fm, tm in rows:
        print(f"| {name} | {f*1e3:.2f} | {t*1e3:.2f} | {t/f:.1f}x | {fm*1e3:.2f} | {tm*1e3:.2f} | {tm/fm:.1f}x |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--gpu", action="store_true")
    args = ap.parse_args()
    info = fastloss.build_info()
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except Exception:
        pass
    print(f"CPU: {cpu}, {os.cpu_count()} logical cores, threads={args.threads}; fastloss SIMD {info['simd']}, "
          f"compiler {info['compiler']}; torch {torch.__version__}; numpy {np.__version__}")
    print_table("CPU, float32, loss + gradient (forward + backward)", bench_cpu(args.repeats, args.threads))
    if args.gpu:
        print_table("GPU, float32, loss + gradient", bench_gpu(args.repeats))


if __name__ == "__main__":
    main()
