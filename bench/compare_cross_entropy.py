#!/usr/bin/env python3
"""Softmax cross-entropy: fastloss against PyTorch and NumPy in one run, with the memory floor.

After ``python3 -m pip install ".[bench]"`` (see README), from the repository root:

    python3 bench/compare_cross_entropy.py                 # N=4096, C=32000, float32, CPU
    python3 bench/compare_cross_entropy.py --N 1024 --C 8000 --repeat 5
    python3 bench/compare_cross_entropy.py --shapes 65536x10 16384x100 8192x1000   # loss+grad vs torch per shape
    python3 bench/compare_cross_entropy.py --gpu           # CuPy vs PyTorch CUDA (N=8192, C=128000)

(From a source checkout with a development build instead: ``PYTHONPATH=python python3 bench/...``.)

CPU: prints the machine and a table of each call's time, its ratio to PyTorch and to the
memory floor. The floor is NumPy moving the bytes the kernel must move (loss + grad:
``np.copyto`` reading the logits and writing as many bytes; loss only: ``np.add.reduce``
reading them), split over as many threads as fastloss uses and timed in the same loop as
every kernel call, so the ratio compares the two under the same load. PyTorch is optional (its
rows are skipped when it is missing).
"""
import argparse
import os
import time
import tracemalloc

import numpy as np

import fastloss
from benchutil import cpu_name


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


def run_cpu(args):
    from concurrent.futures import ThreadPoolExecutor

    N, C = args.N, args.C
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C), dtype=np.float32)
    y = rng.integers(0, C, N)
    threads = fastloss.get_num_threads()
    info = fastloss.build_info()
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs; fastloss {fastloss.__version__} "
          f"SIMD {info['simd']}, {threads} threads; NumPy {np.__version__}")
    print(f"N={N} C={C} float32: logits {x.nbytes / 2**20:.0f} MiB; fastest of {args.repeat} calls, "
          f"all rows called in turn in one loop", flush=True)

    # The floors, over `threads` contiguous parts (NumPy releases the GIL): np.copyto reads the
    # logits and writes as many bytes (loss + grad); np.add.reduce only reads them (loss only).
    pool = ThreadPoolExecutor(threads)
    flat = x.reshape(-1)
    dst = np.empty_like(flat)

    def copy_floor():
        parts = list(zip(np.array_split(dst, threads), np.array_split(flat, threads)))
        return lambda: list(pool.map(lambda p: np.copyto(*p), parts))

    def read_floor():  # a sum reads every byte once and writes nothing (memory-bound)
        parts = np.array_split(flat, threads)
        return lambda: list(pool.map(np.add.reduce, parts))

    g = np.empty_like(x)
    xin = x.copy()
    fns = {
        "fastloss loss": lambda: fastloss.softmax_cross_entropy(x, y),
        "fastloss loss+grad (grad_out=g)": lambda: fastloss.softmax_cross_entropy(x, y, grad_out=g),
        "fastloss loss+grad (in place)": lambda: fastloss.softmax_cross_entropy(xin, y, grad_out=xin),
        "fastloss loss+grad (new array)": lambda: fastloss.softmax_cross_entropy(x, y, return_grad=True),
        "floor: read logits": read_floor(),
        "floor: read logits + write grad": copy_floor(),
    }
    torch_version = None
    try:
        import torch
        import torch.nn.functional as F
        torch.set_num_threads(threads)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def torch_fwd_bwd():
            xg = xt.detach().requires_grad_()
            F.cross_entropy(xg, yt).backward()
            return xg.grad

        def torch_fwd():
            with torch.no_grad():
                return F.cross_entropy(xt, yt)

        fns["torch fwd"] = torch_fwd
        fns["torch fwd+bwd"] = torch_fwd_bwd
        torch_version = torch.__version__
    except ImportError:
        print('PyTorch is not installed: no torch rows (python3 -m pip install ".[bench]" adds it)')
    slow = {"numpy loss+grad": lambda: numpy_ce(x, y)}

    best = {k: float("inf") for k in list(fns) + list(slow)}
    for k, fn in {**fns, **slow}.items():  # warm-up: page faults, thread start
        fn()
    for r in range(args.repeat):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
        if r < max(1, args.repeat // 3):  # NumPy is slow: fewer calls
            t0 = time.perf_counter()
            slow["numpy loss+grad"]()
            best["numpy loss+grad"] = min(best["numpy loss+grad"], time.perf_counter() - t0)
    tracemalloc.start()
    fastloss.softmax_cross_entropy(xin, y, grad_out=xin)
    peak_inplace = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    read_floor, rw_floor = best["floor: read logits"], best["floor: read logits + write grad"]
    rows = [("fastloss loss", "torch fwd", read_floor),
            ("fastloss loss+grad (grad_out=g)", "torch fwd+bwd", rw_floor),
            ("fastloss loss+grad (in place)", "torch fwd+bwd", rw_floor),
            ("fastloss loss+grad (new array)", "torch fwd+bwd", rw_floor)]
    print(f"\n{'call':<34}{'time (ms)':>11}{'vs floor':>10}{'speed-up vs torch':>19}")
    for name, peer, floor in rows:
        t = best[name]
        vs_torch = f"{best[peer] / t:.1f}x" if peer in best else ""
        print(f"{name:<34}{t * 1e3:>11.1f}{t / floor:>9.2f}x{vs_torch:>19}")
    for name in ("torch fwd", "torch fwd+bwd", "numpy loss+grad", "floor: read logits", "floor: read logits + write grad"):
        if name in best:
            print(f"{name:<34}{best[name] * 1e3:>11.1f}")
    moved = 2 * x.nbytes
    print(f"\nbandwidth of the floors ({threads} threads): read {x.nbytes / read_floor / 1e9:.1f} GB/s, "
          f"copy {moved / rw_floor / 1e9:.1f} GB/s (bytes read + written)")
    print(f"fastloss loss+grad vs NumPy: {best['numpy loss+grad'] / best['fastloss loss+grad (grad_out=g)']:.1f}x; "
          f"in-place call's peak Python allocation: {peak_inplace / 2**10:.1f} KiB (logits {x.nbytes / 2**20:.0f} MiB)")
    if torch_version:
        print(f"torch {torch_version} with {threads} threads")


def run_shapes(args):
    """loss + grad (grad_out=) against torch fwd+bwd for each N x C shape, called in turn."""
    import torch
    import torch.nn.functional as F
    threads = fastloss.get_num_threads()
    torch.set_num_threads(threads)
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs; fastloss SIMD {fastloss.build_info()['simd']}, "
          f"{threads} threads; torch {torch.__version__}; fastest of {args.repeat} calls each")
    print(f"{'N x C':<14}{'fastloss (ms)':>15}{'torch (ms)':>12}{'speed-up':>10}")
    rng = np.random.default_rng(0)
    for shape in args.shapes:
        N, C = (int(v) for v in shape.lower().split("x"))
        x = rng.standard_normal((N, C), dtype=np.float32)
        y = rng.integers(0, C, N)
        g = np.empty_like(x)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def torch_fwd_bwd():
            xg = xt.detach().requires_grad_()
            F.cross_entropy(xg, yt).backward()

        fns = [lambda: fastloss.softmax_cross_entropy(x, y, grad_out=g), torch_fwd_bwd]
        best = [float("inf")] * 2
        for fn in fns:
            fn()
        for _ in range(args.repeat):
            for k, fn in enumerate(fns):
                t0 = time.perf_counter()
                fn()
                best[k] = min(best[k], time.perf_counter() - t0)
        print(f"{f'{N} x {C}':<14}{best[0] * 1e3:>15.2f}{best[1] * 1e3:>12.2f}{best[1] / best[0]:>9.1f}x", flush=True)


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
    ap.add_argument("--shapes", nargs="+", metavar="NxC", help="only loss+grad vs torch fwd+bwd at these shapes")
    args = ap.parse_args()
    if args.shapes:
        run_shapes(args)
    elif args.gpu:
        run_gpu(args)
    else:
        args.N, args.C = args.N or 4096, args.C or 32000
        run_cpu(args)


if __name__ == "__main__":
    main()
