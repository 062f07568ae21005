"""CTC loss + gradient: fastloss vs torch.nn.functional.ctc_loss (forward + backward).

Not part of pytest. CPU: float32, torch.set_num_threads(NTHREADS) and the same thread count
for fastloss; calls are interleaved and the minimum over many repeats is reported (the
machine may be shared). GPU (--gpu, needs CuPy and torch CUDA): the same cases plus S=400.

    python3 bench/compare_ctc.py [--threads 2] [--repeats 30] [--gpu | --gpu-only] [--warpctc PATH]

after ``python3 -m pip install ".[bench]"`` (README); from a source checkout with a development
build instead, ``PYTHONPATH=python python3 bench/compare_ctc.py``.

--warpctc PATH also times warp-ctc's CPU loss (baidu-research/warp-ctc, not on PyPI) through ctypes.
Build it outside this repository (its code must not enter it), CPU only, with OpenMP, e.g. from a
checkout: `g++ -O3 -std=c++14 -fopenmp -fPIC -shared -I include src/ctc_entrypoint.cpp -o libwarpctc.so`,
then pass the path of libwarpctc.so. warp-ctc applies softmax itself, so it is compared with fastloss
`from_logits=True` on the same array (for log_probs cases too; its costs and gradient are checked first).
"""
from __future__ import annotations

import argparse
import ctypes
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


class WarpCTC:
    """warp-ctc's C API (include/ctc.h) through ctypes: compute_ctc_loss + get_workspace_size, CPU."""

    class Options(ctypes.Structure):
        # struct ctcOptions { ctcComputeLocation loc; union { unsigned num_threads; CUstream stream; };
        #                     int blank_label; } -- the union is 8 bytes; on x86-64 (little-endian)
        # num_threads is its low half, so a uint64 stands in for it (24 bytes, passed in memory).
        _fields_ = [("loc", ctypes.c_int), ("num_threads", ctypes.c_uint64), ("blank_label", ctypes.c_int)]

    def __init__(self, path):
        lib = ctypes.CDLL(os.path.abspath(path))
        P = ctypes.c_void_p
        lib.compute_ctc_loss.argtypes = [P, P, P, P, P, ctypes.c_int, ctypes.c_int, P, P, self.Options]
        lib.compute_ctc_loss.restype = ctypes.c_int
        lib.get_workspace_size.argtypes = [P, P, ctypes.c_int, ctypes.c_int, self.Options,
                                           ctypes.POINTER(ctypes.c_size_t)]
        lib.get_workspace_size.restype = ctypes.c_int
        lib.ctcGetStatusString.argtypes = [ctypes.c_int]
        lib.ctcGetStatusString.restype = ctypes.c_char_p
        self.lib = lib

    def check(self, status, what):
        if status != 0:
            raise RuntimeError(f"warp-ctc {what}: {self.lib.ctcGetStatusString(status).decode()}")

    def prepare(self, x, labels, il, ll, threads, blank=0):
        """Everything a user allocates once: flat int32 labels, lengths, costs, gradient, workspace.
        Returns a closure that runs loss + gradient (no allocation inside) and the output arrays."""
        T, N, C = x.shape
        acts = np.ascontiguousarray(x, dtype=np.float32)
        flat = np.ascontiguousarray(np.concatenate([labels[b, :ll[b]] for b in range(N)]), dtype=np.int32)
        ll32, il32 = np.ascontiguousarray(ll, dtype=np.int32), np.ascontiguousarray(il, dtype=np.int32)
        opts = self.Options(loc=0, num_threads=threads, blank_label=blank)  # CTC_CPU
        size = ctypes.c_size_t(0)
        self.check(self.lib.get_workspace_size(ll32.ctypes.data, il32.ctypes.data, C, N, opts,
                                               ctypes.byref(size)), "get_workspace_size")
        ws = np.empty(max(size.value, 1), dtype=np.uint8)
        costs = np.empty(N, dtype=np.float32)
        grad = np.zeros_like(acts)  # frames past input_lengths are never written: they stay 0
        args = (acts.ctypes.data, grad.ctypes.data, flat.ctypes.data, ll32.ctypes.data, il32.ctypes.data,
                C, N, costs.ctypes.data, ws.ctypes.data, opts)
        keep = (acts, flat, ll32, il32, ws)  # keep the buffers alive with the closure

        def run():
            _ = keep
            self.check(self.lib.compute_ctc_loss(*args), "compute_ctc_loss")
            return costs, grad

        return run, costs, grad


def timeit(fn, sync=None):
    t0 = time.perf_counter()
    fn()
    if sync:
        sync()
    return time.perf_counter() - t0


def bench_cpu(repeats, threads, warp=None):
    torch.set_num_threads(threads)
    fastloss.set_num_threads(threads)
    rows, checks = [], []
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
        if warp is None:
            for _ in range(3):
                run_fast(); run_torch()
            tf, tt = [], []
            for _ in range(repeats):
                tf.append(timeit(run_fast))
                tt.append(timeit(run_torch))
            rows.append((name, min(tf), min(tt), float(np.median(tf)), float(np.median(tt))))
            continue

        # warp-ctc takes unnormalised activations (softmax inside), gradient w.r.t. them, per sample
        # unscaled: the match is fastloss from_logits=True with reduction "sum" (log_probs cases: the
        # same array fed to both as logits; log_softmax of log_probs is the identity).
        run_warp, wcost, wgrad = warp.prepare(x, labels, il, ll, threads)

        def run_fast_logits():
            return fastloss.ctc_loss(x, labels, il, ll, from_logits=True, reduction="sum", return_grad=True)

        run_warp()
        ref, gref = fastloss.ctc_loss(x, labels, il, ll, from_logits=True, reduction="none", return_grad=True)
        # float64 torch reference: both float32 implementations drift from it by ~1e-3 in the gradient
        # (log-space sums over T frames with losses of 500-1200 nats), so the gradient bound is 2e-3
        x64 = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
        l64 = F.ctc_loss(x64.log_softmax(-1), lt, ilt, llt, reduction="none")
        l64.sum().backward()
        g64 = x64.grad.numpy()
        dcost = float(np.max(np.abs(wcost - ref) / np.maximum(np.abs(ref), 1.0)))
        dgrad = float(np.abs(wgrad - gref).max())
        e64 = (float(np.abs(wgrad - g64).max()), float(np.abs(gref - g64).max()))
        checks.append((name, dcost, dgrad) + e64)
        print(f"warp-ctc check, {name}: per-sample cost max rel. diff {dcost:.2e}, gradient max abs. diff "
              f"{dgrad:.2e} (vs float64 torch: warp-ctc {e64[0]:.2e}, fastloss {e64[1]:.2e})")
        assert np.allclose(wcost, ref, rtol=1e-4, atol=1e-4), (wcost, ref)
        assert dgrad < 2e-3 and max(e64) < 2e-3, (dgrad, e64)
        fns = [run_fast, run_torch, run_warp] + ([] if fl else [run_fast_logits])
        for _ in range(3):
            for fn in fns:
                fn()
        ts = [[] for _ in fns]
        for _ in range(repeats):
            for fn, t in zip(fns, ts):
                t.append(timeit(fn))
        tl = ts[0] if fl else ts[3]  # from_logits cases: the timed fastloss call is already that
        rows.append((name, min(ts[0]), min(ts[1]), float(np.median(ts[0])), float(np.median(ts[1])),
                     min(ts[2]), float(np.median(ts[2])), min(tl), float(np.median(tl)), fl))
    return (rows, checks) if warp is not None else rows


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


def print_table_warp(title, rows):
    print(f"\n{title}")
    print("| case | fastloss min (ms) | torch min (ms) | warp-ctc min (ms) | torch/fastloss (min) | "
          "warp-ctc/fastloss (min) | fastloss median | torch median | warp-ctc median | "
          "torch/fastloss (median) | warp-ctc/fastloss (median) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    notes = False
    for name, f, t, fm, tm, w, wm, fl_, flm, is_logits in rows:
        star = "" if is_logits else " *"
        notes |= not is_logits
        print(f"| {name} | {f*1e3:.2f} | {t*1e3:.2f} | {w*1e3:.2f} | {t/f:.1f}x | {w/fl_:.1f}x{star} | "
              f"{fm*1e3:.2f} | {tm*1e3:.2f} | {wm*1e3:.2f} | {tm/fm:.1f}x | {wm/flm:.1f}x{star} |")
    if notes:
        print("\n\\* warp-ctc has no log_probs input (it applies softmax itself): it gets the same array as "
              "activations, and its ratio is against fastloss `from_logits=True, reduction=\"sum\"` on it:")
        for name, f, t, fm, tm, w, wm, fl_, flm, is_logits in rows:
            if not is_logits:
                print(f"  {name}: fastloss from_logits=True min {fl_*1e3:.2f} ms, median {flm*1e3:.2f} ms")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--gpu-only", action="store_true", help="only the GPU comparison")
    ap.add_argument("--warpctc", metavar="PATH", help="libwarpctc.so (CPU build) to time as well")
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
    title = "CPU, float32, loss + gradient (forward + backward)"
    if args.gpu_only:
        print_table("GPU, float32, loss + gradient", bench_gpu(args.repeats))
        return
    if args.warpctc:
        rows, _ = bench_cpu(args.repeats, args.threads, WarpCTC(args.warpctc))
        print(f"warp-ctc: {os.path.abspath(args.warpctc)} (CPU, OpenMP, num_threads={args.threads})")
        print_table_warp(title, rows)
    else:
        print_table(title, bench_cpu(args.repeats, args.threads))
    if args.gpu:
        print_table("GPU, float32, loss + gradient", bench_gpu(args.repeats))


if __name__ == "__main__":
    main()
