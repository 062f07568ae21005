#!/usr/bin/env python3
"""fastloss inside PyTorch and JAX training steps, against the frameworks' own losses.

Rows (float32, CPU, every library on the same thread count):
  * torch: loss + gradient through ``fastloss.torch.softmax_cross_entropy`` (forward and
    backward) against ``torch.nn.functional.cross_entropy`` forward + backward, at
    (4096, 32000) and (256, 100); ratio = torch time / fastloss time (above 1: fastloss faster).
  * bridge: what ``fastloss.torch`` adds per call over the raw NumPy call with
    ``return_grad=True`` on the same arrays, at (256, 100).
  * jax: jitted ``jax.value_and_grad`` of ``fastloss.jax.softmax_cross_entropy`` against the
    jitted optax ``softmax_cross_entropy_with_integer_labels`` (mean), same shapes.

    python3 bench/compare_frameworks.py [--threads 2] [--quick]
"""
import argparse
import os
import sys
import time

import numpy as np

import fastloss
from benchutil import cpu_name


def best_time(fn, rounds, min_time):
    """Best seconds per call over `rounds` rounds of at least `min_time` seconds each."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= min_time:
                break
        best = min(best, dt / n)
    return best


def fmt(t):
    return f"{t * 1e6:9.1f} us" if t < 1e-3 else f"{t * 1e3:9.2f} ms"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    args = ap.parse_args(argv)
    rounds, min_time = (3, 0.1) if args.quick else (7, 0.3)
    fastloss.set_num_threads(args.threads)
    print(f"# {cpu_name()}, {args.threads} threads, float32, fastloss {fastloss.__version__}")
    shapes = [(4096, 32000), (256, 100)]
    rng = np.random.default_rng(0)
    data = {s: (rng.standard_normal(s, dtype=np.float32), rng.integers(0, s[1], s[0])) for s in shapes}

    try:
        import torch
        import torch.nn.functional as F

        import fastloss.torch as flt
    except ImportError as e:
        print(f"torch rows skipped: {e}")
    else:
        torch.set_num_threads(args.threads)
        for s in shapes:
            x = torch.from_numpy(data[s][0]).requires_grad_()
            y = torch.from_numpy(data[s][1])

            def ours():
                x.grad = None
                flt.softmax_cross_entropy(x, y).backward()

            def theirs():
                x.grad = None
                F.cross_entropy(x, y).backward()

            a, b = best_time(ours, rounds, min_time), best_time(theirs, rounds, min_time)
            print(f"torch   fwd+bwd {str(s):>14}  fastloss.torch {fmt(a)}  F.cross_entropy {fmt(b)}  ratio {b / a:6.2f}")
        s = (256, 100)
        xn, yn = data[s]
        x = torch.from_numpy(xn).requires_grad_()
        y = torch.from_numpy(yn)

        def bridge():
            flt.softmax_cross_entropy(x, y).backward()
            x.grad = None

        def raw():
            fastloss.softmax_cross_entropy(xn, yn, return_grad=True)

        a, b = best_time(bridge, rounds, min_time), best_time(raw, rounds, min_time)
        print(f"bridge  per call {str(s):>13}  fastloss.torch fwd+bwd {fmt(a)}  NumPy call {fmt(b)}  "
              f"overhead {(a - b) * 1e6:7.1f} us")
        xt = torch.from_numpy(xn)
        c = best_time(lambda: fastloss.softmax_cross_entropy(xt, y, return_grad=True), rounds, min_time)
        print(f"bridge  plain call with torch tensors {fmt(c)}  overhead over NumPy {(c - b) * 1e6:7.1f} us")

    try:
        os.environ.setdefault("XLA_FLAGS", f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={args.threads}")
        import jax
        import jax.numpy as jnp
        import optax

        import fastloss.jax as flj
    except ImportError as e:
        print(f"jax rows skipped: {e}")
    else:
        ours = jax.jit(jax.value_and_grad(lambda x, y: flj.softmax_cross_entropy(x, y)))
        theirs = jax.jit(jax.value_and_grad(lambda x, y: optax.softmax_cross_entropy_with_integer_labels(x, y).mean()))
        path = "FFI" if flj.ffi_available() else "pure_callback"
        for s in shapes:
            x, y = jnp.asarray(data[s][0]), jnp.asarray(data[s][1])
            a = best_time(lambda: jax.block_until_ready(ours(x, y)), rounds, min_time)
            b = best_time(lambda: jax.block_until_ready(theirs(x, y)), rounds, min_time)
            print(f"jax     value_and_grad {str(s):>8}  fastloss.jax ({path}) {fmt(a)}  optax {fmt(b)}  ratio {b / a:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
