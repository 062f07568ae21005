"""Metric-learning losses: fastloss vs the work they cannot avoid and vs PyTorch autograd.

Not part of pytest. One run, float32, CPU, torch.set_num_threads(NTHREADS) and the same thread
count for fastloss; the contenders of each case are interleaved and the minimum over the
repeats is reported (the machine may be shared), with the median in brackets.

  1. large_margin_softmax_loss with both gradients at N=4096, D=512, C=10000, against
     - "3 matmuls + CE": features @ weight, fastloss.softmax_cross_entropy on the logits (in
       place), and the two gradient products (the work L-Softmax cannot avoid), and
     - PyTorch autograd of the same formula (acos, cos(m theta), the blend, cross_entropy).
     The row pass (margin, softmax and gradient over the N x C logits) is also timed alone
     against np.copyto of the logits (its memory floor).
  2. center_loss (with its gradient) + update_centers at N=65536, D=512, K=1000, against
     PyTorch (autograd for the loss, index_add_ + bincount for the update), and against the
     memory floor: np.copyto of the features (center_loss reads them and writes a gradient of
     the same size) plus one read of them (update_centers: x.sum(0)).

    PYTHONPATH=python python3 bench/compare_metric.py [--threads 2] [--repeats 5] [--margin 4]
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

import fastloss
from fastloss import _C


def interleaved(fns, repeats):
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: (min(v), float(np.median(v))) for k, v in times.items()}


def lsoftmax_torch(x, w, y, m, beta=0.0):
    f = x @ w
    idx = torch.arange(x.shape[0])
    fy = f[idx, y]
    a = x.norm(dim=1)
    b = w.norm(dim=0)[y]
    cos = (fy / (a * b)).clamp(-1 + 1e-7, 1 - 1e-7)
    theta = torch.acos(cos)
    k = torch.floor(m * theta / np.pi).clamp(max=m - 1).detach()
    sign = 1 - 2 * torch.remainder(k, 2)
    fpsi = a * b * (sign * torch.cos(m * theta) - 2 * k)
    zy = (beta * fy + fpsi) / (1 + beta)
    z = f.clone()
    z[idx, y] = zy
    return torch.nn.functional.cross_entropy(z, y)


def show(title, res, base):
    print(f"\n{title}")
    for k, (best, med) in res.items():
        print(f"  {k:<34} {best * 1e3:9.1f} ms  [{med * 1e3:8.1f}]   x{res[k][0] / res[base][0]:5.2f} of {base}")


def bench_lsoftmax(args):
    N, D, C, m = 4096, 512, 10000, args.margin
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, D), dtype=np.float32)
    w = (rng.standard_normal((D, C), dtype=np.float32) * 0.05).astype(np.float32)
    y = rng.integers(0, C, N)

    def fastloss_lm():
        fastloss.large_margin_softmax_loss(x, w, y, margin=m, return_grad=True)

    def products_ce():
        f = x @ w
        _, g = fastloss.softmax_cross_entropy(f, y, return_grad=True, grad_out=f)
        g @ w.T
        x.T @ g

    tx = torch.from_numpy(x).requires_grad_(True)
    tw = torch.from_numpy(w).requires_grad_(True)
    ty = torch.from_numpy(y)

    def torch_lm():
        tx.grad = tw.grad = None
        lsoftmax_torch(tx, tw, ty, m).backward()

    # correctness of the comparison: the same loss and gradients
    l, (gx, gw) = fastloss.large_margin_softmax_loss(x, w, y, margin=m, return_grad=True)
    torch_lm()
    tl = lsoftmax_torch(tx, tw, ty, m).item()
    print(f"L-Softmax m={m}: loss fastloss {float(l):.6f} torch {tl:.6f}; "
          f"max |grad_x diff| {np.abs(gx - tx.grad.numpy()).max():.2e}, "
          f"max |grad_w diff| {np.abs(gw - tw.grad.numpy()).max():.2e}")
    res = interleaved({"fastloss large_margin_softmax_loss": fastloss_lm, "3 matmuls + CE (floor)": products_ce,
                       "torch autograd": torch_lm}, args.repeats)
    show(f"large_margin_softmax_loss + both gradients, N={N} D={D} C={C} m={m}, float32", res,
         "3 matmuls + CE (floor)")
    print(f"  torch / fastloss = {res['torch autograd'][0] / res['fastloss large_margin_softmax_loss'][0]:.2f}x")

    # the row pass alone, against a copy of the logits
    logits = x @ w
    work = np.empty_like(logits)

    def row_pass():
        np.copyto(work, logits)  # the pass overwrites its input; the copy is timed separately
        _C._large_margin_softmax_rows(x, w, y, m, work)

    def copy():
        np.copyto(work, logits)

    def ce_rows():
        np.copyto(work, logits)
        fastloss.softmax_cross_entropy(work, y, return_grad=True, grad_out=work)

    res = interleaved({"copy + L-Softmax row pass": row_pass, "copy + softmax_cross_entropy": ce_rows,
                       "np.copyto of the logits": copy}, args.repeats)
    show(f"row pass alone ({N} x {C} logits, {N * C * 4 / 2**20:.0f} MiB)", res, "np.copyto of the logits")
    rp = res["copy + L-Softmax row pass"][0] - res["np.copyto of the logits"][0]
    print(f"  row pass = {rp * 1e3:.1f} ms = x{rp / res['np.copyto of the logits'][0]:.2f} of one copy")


def bench_center(args):
    N, D, K, alpha = 65536, 512, 1000, 0.5
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, D), dtype=np.float32)
    c = rng.standard_normal((K, D), dtype=np.float32)
    y = rng.integers(0, K, N)

    def fastloss_center():
        fastloss.center_loss(x, y, c, return_grad=True)
        fastloss.update_centers(c, x, y, alpha=alpha)

    tx = torch.from_numpy(x).requires_grad_(True)
    tc = torch.from_numpy(c)
    ty = torch.from_numpy(y)

    def torch_center():
        tx.grad = None
        loss = 0.5 * ((tx - tc[ty]) ** 2).sum(1).mean()
        loss.backward()
        with torch.no_grad():
            diff = tc[ty] - tx
            delta = torch.zeros_like(tc).index_add_(0, ty, diff)
            n = torch.bincount(ty, minlength=K).to(tc.dtype)
            tc - alpha * delta / (1 + n)[:, None]

    buf = np.empty_like(x)

    def floor():
        np.copyto(buf, x)
        x.sum(0)

    # correctness of the comparison
    l, g = fastloss.center_loss(x, y, c, return_grad=True)
    new = fastloss.update_centers(c, x, y, alpha=alpha)
    tx.grad = None
    tl = 0.5 * ((tx - tc[ty]) ** 2).sum(1).mean()
    tl.backward()
    with torch.no_grad():
        delta = torch.zeros_like(tc).index_add_(0, ty, tc[ty] - tx)
        tnew = tc - alpha * delta / (1 + torch.bincount(ty, minlength=K).to(tc.dtype))[:, None]
    print(f"\ncenter loss: fastloss {float(l):.4f} torch {tl.item():.4f}; max |grad diff| "
          f"{np.abs(g - tx.grad.numpy()).max():.2e}; max |centers diff| {np.abs(new - tnew.numpy()).max():.2e}")
    res = interleaved({"fastloss center_loss+update": fastloss_center, "torch": torch_center,
                       "copy + read of features (floor)": floor}, args.repeats)
    show(f"center_loss (+grad) + update_centers, N={N} D={D} K={K}, float32", res, "copy + read of features (floor)")
    print(f"  torch / fastloss = {res['torch'][0] / res['fastloss center_loss+update'][0]:.2f}x")
    res = interleaved({"center_loss (+grad)": lambda: fastloss.center_loss(x, y, c, return_grad=True),
                       "np.copyto of features": lambda: np.copyto(buf, x),
                       "np.copy of features (allocates)": lambda: np.copy(x),
                       "update_centers": lambda: fastloss.update_centers(c, x, y, alpha=alpha),
                       "x.sum(0) (one read)": lambda: x.sum(0)}, args.repeats)
    show("each alone", res, "np.copyto of features")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--margin", type=int, default=4)
    ap.add_argument("--only", choices=["lsoftmax", "center"], default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    fastloss.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; threads={args.threads}; "
          f"fastloss SIMD {fastloss.build_info()['simd']}; torch {torch.__version__}; numpy {np.__version__} "
          f"({np.show_config.__module__ and 'BLAS as configured'})")
    if args.only in (None, "lsoftmax"):
        bench_lsoftmax(args)
    if args.only in (None, "center"):
        bench_center(args)


if __name__ == "__main__":
    main()
