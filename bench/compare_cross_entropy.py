#!/usr/bin/env python3
"""Softmax cross-entropy: fastloss against PyTorch and NumPy in one run.

Prints the machine, its measured copy bandwidth, the memory floor of the fused kernel
(logits read + gradient written, over that bandwidth), and a table of times and ratios.
PyTorch is optional (its rows are skipped when it is missing). Usage:

    python bench/compare_cross_entropy.py                 # N=4096, C=32000, float32, CPU
    python bench/compare_cross_entropy.py --N 1024 --C 8000 --repeat 5
    python bench/compare_cross_entropy.py --gpu           # CuPy vs PyTorch CUDA (N=8192, C=128000)
"""
import argparse
import os
import platform
import time
import tracemalloc

import numpy as np

import fastloss


def best_time(fn, repeat, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def numpy_ce(x, y):
    """A good NumPy implementation (what a pipeline would write): loss and gradient."""
    m = x.max(axis=1, keepdims=True)
    e = np.exp(x - m)
    s = e.sum(axis=1, keepdims=True)
    lse = (m + np.log(s))[:, 0]
    loss = np.mean(lse - x[np.arange(len(y)), y])
    g = e / s
    g[np.arange(len(y)), y] -= 1
    g /= len(y)
    return loss, g


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run_cpu(args):
    N, C = args.N, args.C
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C), dtype=np.float32)
    y = rng.integers(0, C, N)
    threads = fastloss.get_num_threads()
    info = fastloss.build_info()
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; fastloss {fastloss.__version__} "
          f"simd={info['simd']} threads={threads}; numpy {np.__version__}")
    # Copy bandwidth, counted as bytes read + bytes written (np.copyto, best of many).
    dst = np.empty_like(x)
    t_copy = best_time(lambda: np.copyto(dst, x), max(args.repeat, 10))
    bw = 2 * x.nbytes / t_copy
    floor_grad = 2 * x.nbytes / bw  # logits read + gradient written
    floor_fwd = x.nbytes / bw       # a read-only lower bound: logits read once at copy speed
    print(f"shape N={N} C={C} float32 ({x.nbytes / 1e6:.0f} MB); copy bandwidth {bw / 1e9:.1f} GB/s "
          f"(read+write); floor: loss+grad {floor_grad * 1e3:.1f} ms, loss {floor_fwd * 1e3:.1f} ms\n")

    rows = []
    g = np.empty_like(x)
    t_fwd = best_time(lambda: fastloss.softmax_cross_entropy(x, y), args.repeat)
    t_grad = best_time(lambda: fastloss.softmax_cross_entropy(x, y, grad_out=g), args.repeat)
    t_grad_alloc = best_time(lambda: fastloss.softmax_cross_entropy(x, y, return_grad=True), args.repeat)
    xin = x.copy()
    t_inplace = best_time(lambda: fastloss.softmax_cross_entropy(xin, y, grad_out=xin), args.repeat)
    tracemalloc.start()
    fastloss.softmax_cross_entropy(xin, y, grad_out=xin)
    peak_inplace = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    peers = {}
    try:
        import torch
        import torch.nn.functional as F
        torch.set_num_threads(threads)
        xt = torch.from_numpy(x)
        yt = torch.from_numpy(y)

        def torch_fwd_bwd():
            xg = xt.detach().requires_grad_()
            F.cross_entropy(xg, yt).backward()
            return xg.grad

        with torch.no_grad():
            peers["torch fwd"] = best_time(lambda: F.cross_entropy(xt, yt), args.repeat)
        peers["torch fwd+bwd"] = best_time(torch_fwd_bwd, args.repeat)
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    peers["numpy fwd+grad"] = best_time(lambda: numpy_ce(x, y), max(1, args.repeat // 3))

    def row(name, t, ref=None, floor=None):
        r = f"{name:<38} {t * 1e3:9.1f} ms"
        if ref is not None:
            r += f"   {ref / t:6.1f}x vs {ref_name[name]}"
        if floor is not None:
            r += f"   {t / floor:4.2f}x floor"
        rows.append(r)

    ref_name = {}
    tf = peers.get("torch fwd")
    tb = peers.get("torch fwd+bwd")
    ref_name.update({"fastloss loss": "torch fwd", "fastloss loss+grad (grad_out)": "torch fwd+bwd",
                     "fastloss loss+grad (new grad)": "torch fwd+bwd",
                     "fastloss loss+grad (in place)": "torch fwd+bwd"})
    row("fastloss loss", t_fwd, tf, floor_fwd)
    row("fastloss loss+grad (grad_out)", t_grad, tb, floor_grad)
    row("fastloss loss+grad (new grad)", t_grad_alloc, tb, floor_grad)
    row("fastloss loss+grad (in place)", t_inplace, tb, floor_grad)
    for name, t in peers.items():
        rows.append(f"{name:<38} {t * 1e3:9.1f} ms")
    print("\n".join(rows))
    print(f"\nfastloss loss+grad vs numpy: {peers['numpy fwd+grad'] / t_grad:.1f}x; "
          f"in-place peak allocation: {peak_inplace / 1024:.1f} KiB (input {x.nbytes / 2**20:.0f} MiB)")
    if torch_version:
        print(f"torch {torch_version} with {threads} threads")


def run_gpu(args):
    """fastloss on CuPy vs PyTorch CUDA; each kernel variant against the copy bandwidth."""
    import cupy as cp
    from fastloss import _C

    def cuda_time(fn, repeat):
        fn()
        start, end = cp.cuda.Event(), cp.cuda.Event()
        best = float("inf")
        for _ in range(repeat):
            start.record()
            fn()
            end.record()
            end.synchronize()
            best = min(best, cp.cuda.get_elapsed_time(start, end) / 1e3)
        return best

    shapes = [(args.N, args.C)] if args.N or args.C else [(8192, 128000), (4096, 32000), (16384, 4096), (2048, 256000)]
    probe = cp.empty(1 << 28, cp.float32)  # 1 GiB, several times the L2
    dst = cp.empty_like(probe)
    bw = 2 * probe.nbytes / cuda_time(lambda: cp.copyto(dst, probe), 20)
    del probe, dst
    print(f"GPU {cp.cuda.runtime.getDeviceProperties(0)['name'].decode()}: copy bandwidth {bw / 1e9:.0f} GB/s "
          f"(cp.copyto of 1 GiB, bytes read + written)")
    try:
        import torch
        import torch.nn.functional as F
        if not torch.cuda.is_available():
            print("torch has no CUDA here: no torch column")
            torch = None
    except ImportError:
        torch = None
    print(f"{'N x C, dtype':<24}{'variant':<34}{'ms':>9}{'% copy BW':>11}{'vs torch':>10}")
    for N, C in shapes:
        for dtype in (cp.float32, cp.float16):
            x = cp.random.standard_normal((N, C), dtype=cp.float32).astype(dtype)
            y = cp.random.randint(0, C, N)
            g = cp.empty_like(x)
            t_torch = None
            if torch is not None:
                xt, yt = torch.as_tensor(x, device="cuda"), torch.as_tensor(y, device="cuda")

                def tfb():
                    xg = xt.detach().requires_grad_()
                    F.cross_entropy(xg, yt).backward()

                t_torch = cuda_time(tfb, args.repeat)
            rows = []
            for name, cache, grad in (("loss+grad (row cache)", 0, True), ("loss+grad (two reads)", -1, True),
                                      ("loss only", 0, False)):
                _C._set_cuda_row_cache_bytes(cache)
                fn = (lambda: fastloss.softmax_cross_entropy(x, y, grad_out=g)) if grad else \
                    (lambda: fastloss.softmax_cross_entropy(x, y))
                t = cuda_time(fn, args.repeat)
                moved = x.nbytes * (2 if grad else 1)
                rows.append((name, t, moved / t / bw * 100, t_torch / t if (t_torch and grad) else None))
            _C._set_cuda_row_cache_bytes(0)
            for name, t, pct, ratio in rows:
                print(f"{f'{N} x {C}, {cp.dtype(dtype).name}':<24}{name:<34}{t * 1e3:9.3f}{pct:10.0f}%"
                      f"{'' if ratio is None else f'{ratio:9.1f}x':>10}")
            if t_torch:
                print(f"{'':<24}{'torch CUDA fwd+bwd':<34}{t_torch * 1e3:9.3f}")
            del x, g


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--N", type=int, default=None)
    ap.add_argument("--C", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--gpu", action="store_true")
    args = ap.parse_args()
    if args.gpu:
        run_gpu(args)
    else:
        args.N, args.C = args.N or 4096, args.C or 32000
        run_cpu(args)


if __name__ == "__main__":
    main()
