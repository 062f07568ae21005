#!/usr/bin/env python3
"""Elementwise losses: fastloss against PyTorch (forward + backward) and JAX
(`jax.jit(jax.value_and_grad(...))` of the same formula), float32, loss + gradient, in one run.

The memory floor of a fused call is its bytes (pred and target read, gradient written) over
the copy bandwidth, measured with np.copyto moving the same number of bytes; every round
times the copy, fastloss and the peers one after another, and each keeps its best round.

    python bench/compare_elementwise.py                       # the issue's sizes, all peers
    python bench/compare_elementwise.py --log2n 22 --rows 20000 --rounds 3
    python bench/compare_elementwise.py --only mse_loss,sigmoid_focal_loss
"""
import argparse
import os
import platform
import time

import numpy as np

import fastloss
from benchutil import cpu_name

LOG2 = float(np.log(2.0))
REGRESSION = ("mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "log_cosh_loss")
SIGMOID = ("sigmoid_cross_entropy", "sigmoid_focal_loss")


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def torch_formula(name, F, torch):
    def focal(x, t):  # torchvision.ops.sigmoid_focal_loss, mean
        p = torch.sigmoid(x)
        ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
        p_t = p * t + (1 - p) * (1 - t)
        return ((0.25 * t + 0.75 * (1 - t)) * ce * (1 - p_t) ** 2).mean()

    return {
        "mse_loss": lambda x, t: F.mse_loss(x, t),
        "l1_loss": lambda x, t: F.l1_loss(x, t),
        "huber_loss": lambda x, t: F.huber_loss(x, t),
        "smooth_l1_loss": lambda x, t: F.smooth_l1_loss(x, t),
        "log_cosh_loss": lambda x, t: (lambda r: (r + F.softplus(-2 * r) - LOG2).mean())(x - t),
        "sigmoid_cross_entropy": lambda x, t: F.binary_cross_entropy_with_logits(x, t),
        "sigmoid_focal_loss": focal,
    }[name]


def jax_formula(name, jnp):
    def bce(x, t):
        return jnp.maximum(x, 0) - x * t + jnp.log1p(jnp.exp(-jnp.abs(x)))

    def focal(x, t):
        p = 1 / (1 + jnp.exp(-x))
        p_t = p * t + (1 - p) * (1 - t)
        return jnp.mean((0.25 * t + 0.75 * (1 - t)) * bce(x, t) * (1 - p_t) ** 2)

    def huber(x, t, d=1.0):
        a = jnp.abs(x - t)
        return jnp.mean(jnp.where(a < d, 0.5 * (x - t) ** 2, d * (a - 0.5 * d)))

    return {
        "mse_loss": lambda x, t: jnp.mean((x - t) ** 2),
        "l1_loss": lambda x, t: jnp.mean(jnp.abs(x - t)),
        "huber_loss": huber,
        "smooth_l1_loss": huber,  # beta = delta = 1: the same function
        "log_cosh_loss": lambda x, t: jnp.mean(jnp.logaddexp(x - t, t - x) - LOG2),
        "sigmoid_cross_entropy": lambda x, t: jnp.mean(bce(x, t)),
        "sigmoid_focal_loss": focal,
    }[name]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log2n", type=int, default=26, help="regression losses on 2**log2n elements")
    ap.add_argument("--rows", type=int, default=100000, help="sigmoid losses on (rows, --cols)")
    ap.add_argument("--cols", type=int, default=80)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (fastloss uses its default)")
    ap.add_argument("--only", default="", help="comma-separated loss names")
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F
    torch.set_num_threads(args.threads)
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        jax = None
    info = fastloss.build_info()
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; fastloss {fastloss.__version__} simd={info['simd']} "
          f"threads={fastloss.get_num_threads()}; torch {torch.__version__} ({args.threads} threads); "
          f"jax {jax.__version__ if jax else '-'}; float32, loss + gradient, mean reduction, best of "
          f"{args.rounds} alternating rounds\n")
    names = [n for n in REGRESSION + SIGMOID if not args.only or n in args.only.split(",")]
    rng = np.random.default_rng(0)
    header = (f"{'loss':<24}{'elements':>10} {'floor ms':>9} {'fastloss':>9} {'torch':>9} {'jax':>9}"
              f" {'x torch':>8} {'x jax':>7} {'x floor':>8}")
    print(header)
    print("-" * len(header))
    for name in names:
        shape = (1 << args.log2n,) if name in REGRESSION else (args.rows, args.cols)
        x = rng.standard_normal(shape, dtype=np.float32) * (3 if name in SIGMOID else 1)
        t = ((rng.random(shape) < 0.1).astype(np.float32) if name in SIGMOID
             else rng.standard_normal(shape, dtype=np.float32))
        g = np.empty_like(x)
        # The copy floor: np.copyto moving as many bytes (3 arrays' worth: 1.5 read, 1.5 written).
        src = np.ones(x.size * 3 // 2, np.float32)
        dst = np.empty_like(src)
        fn = getattr(fastloss, name)
        xt, tt = torch.from_numpy(x), torch.from_numpy(t)
        tf = torch_formula(name, F, torch)

        def torch_run():
            xg = xt.detach().requires_grad_()
            tf(xg, tt).backward()
            return xg.grad

        if jax:
            jf = jax.jit(jax.value_and_grad(jax_formula(name, jnp)))
            xj, tj = jnp.asarray(x), jnp.asarray(t)
            jax_run = lambda: jax.block_until_ready(jf(xj, tj))  # noqa: E731
            jax_run()
        fl_run = lambda: fn(x, t, grad_out=g)  # noqa: E731
        fl_run()
        torch_run()
        best = {"copy": np.inf, "fastloss": np.inf, "torch": np.inf, "jax": np.inf}
        for _ in range(args.rounds):
            best["copy"] = min(best["copy"], timed(lambda: np.copyto(dst, src)))
            best["fastloss"] = min(best["fastloss"], timed(fl_run))
            best["torch"] = min(best["torch"], timed(torch_run))
            if jax:
                best["jax"] = min(best["jax"], timed(jax_run))
        # correctness of what was timed
        lt = tf(xt.double(), tt.double()).item()
        assert abs(float(fn(x, t)) - lt) <= 1e-4 * abs(lt) + 1e-7, (name, float(fn(x, t)), lt)
        floor = best["copy"]  # same bytes as pred + target read and gradient written
        fl = best["fastloss"]
        print(f"{name:<24}{x.size:>10} {floor * 1e3:9.1f} {fl * 1e3:9.1f} {best['torch'] * 1e3:9.1f} "
              f"{best['jax'] * 1e3:9.1f} {best['torch'] / fl:8.1f} {best['jax'] / fl:7.1f} {fl / floor:8.2f}")
        del src, dst


if __name__ == "__main__":
    main()
