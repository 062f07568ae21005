#!/usr/bin/env python3
"""Row-wise losses: fastloss against their peers in one run (float32, CPU).

Times alternate between the contenders (best of --repeat rounds) so machine noise hits both.
Sections:
  ce:          softmax_cross_entropy (issue 9 shapes), loss only and loss+grad, against PyTorch
               forward and forward+backward (kernel times of tiny calls, without the Python
               layer: bench/bench_cross_entropy.cpp, CrossEntropySmall).
  focal:       softmax_focal_loss and truncated_cross_entropy on (4096, 32000), loss+grad, against
               softmax_cross_entropy on the same input and the memory floor (np.copyto of the
               logits into a gradient-sized buffer: the bytes the fused kernel must move).
  hinge:       multiclass_hinge_loss on (16384, 1000), loss+grad, against softmax_cross_entropy and
               torch multi_margin_loss forward+backward.
  divergence:  entropy and kl_divergence on (10000, 1000) against scipy.stats.entropy, with the
               compute floor (one or two vector logs per element over the SIMD throughput).
  l2:          l2_loss on (16384, 1000), loss+grad, against torch.linalg.vector_norm forward+backward
               and the memory floor (np.copyto of pred and target into a gradient-sized buffer).
  bitempered:  bi_tempered_logistic_loss (t1=0.8, t2=1.2 and t2=1.3, 5 iterations) on (4096, 1000),
               loss+grad, against a vectorised PyTorch implementation of the reference algorithm with
               autograd, and (t2=1.3: general exponents) the compute floor (the kernel's vector exps
               and logs per element over their throughput, measured as NumPy's float32 exp and log).
  dice:        dice_loss (softmax, axis=1, integer labels) on (8, 21, 256, 256), loss+grad, against
               MONAI's DiceLoss formula in PyTorch with autograd, and the memory floor (np.copyto of
               the logits and labels into buffers of their size, on the same threads).

    python bench/compare_rowwise.py [--only ce,focal,hinge,divergence,l2,bitempered,dice] [--repeat 7] [--threads 2]
"""
import argparse
import os
import time

import numpy as np

import fastloss
from benchutil import cpu_name


def timed(fns, repeat):
    """Best time of each function, running them alternately `repeat` times."""
    best = [float("inf")] * len(fns)
    for f in fns:
        f()  # warm up
    for _ in range(repeat):
        for i, f in enumerate(fns):
            n, t0 = 0, time.perf_counter()
            while True:  # at least 20 ms per sample, so tiny calls are timed over many runs
                f()
                n += 1
                dt = time.perf_counter() - t0
                if dt > 0.02:
                    break
            best[i] = min(best[i], dt / n)
    return best


def us(t):
    return f"{t * 1e6:10.1f} us"


def section_ce(args, torch):
    print("\n## softmax_cross_entropy vs PyTorch (loss only / loss+grad; ratio = torch / fastloss)")
    print(f"{'shape':>18} {'fl loss':>12} {'torch fwd':>12} {'ratio':>6} {'fl l+g':>12} {'torch f+b':>12} {'ratio':>6}")
    rng = np.random.default_rng(0)
    for shape, axis in [((8, 10), -1), ((256, 100), -1), ((16384, 10), -1), ((16384, 32), -1), ((16384, 100), -1),
                        ((8192, 1000), -1), ((4096, 32000), -1), ((8, 21, 256, 256), 1)]:
        x = rng.standard_normal(shape).astype(np.float32)
        C = shape[axis]
        lshape = tuple(n for i, n in enumerate(shape) if i != axis % len(shape))
        y = rng.integers(0, C, lshape)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        xg = xt.clone().requires_grad_()
        tax = axis % len(shape)

        def torch_fb():
            loss = torch.nn.functional.cross_entropy(xg if tax == 1 else xg, yt)
            loss.backward()
            xg.grad = None

        t = timed([lambda: fastloss.softmax_cross_entropy(x, y, axis=axis),
                   lambda: torch.nn.functional.cross_entropy(xt, yt),
                   lambda: fastloss.softmax_cross_entropy(x, y, axis=axis, return_grad=True),
                   torch_fb], args.repeat)
        print(f"{str(shape):>18} {us(t[0])} {us(t[1])} {t[1] / t[0]:6.2f} {us(t[2])} {us(t[3])} {t[3] / t[2]:6.2f}")


def section_focal(args):
    print("\n## softmax_focal_loss, truncated_cross_entropy vs softmax_cross_entropy, (4096, 32000) float32, loss+grad")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4096, 32000)).astype(np.float32)
    y = rng.integers(0, 32000, 4096)
    g = np.empty_like(x)
    t = timed([lambda: np.copyto(g, x),
               lambda: fastloss.softmax_cross_entropy(x, y, return_grad=True),
               lambda: fastloss.softmax_focal_loss(x, y, gamma=2.0, return_grad=True),
               lambda: fastloss.truncated_cross_entropy(x, y, margin=0.6, return_grad=True),
               lambda: fastloss.truncated_cross_entropy(x, y, margin=0.6, softness=5.0, return_grad=True)],
              args.repeat)
    names = ["memory floor (np.copyto, same bytes)", "softmax_cross_entropy", "softmax_focal_loss (gamma=2)",
             "truncated_cross_entropy (hard)", "truncated_cross_entropy (softness=5)"]
    for n, v in zip(names, t):
        print(f"{n:>40} {us(v)}  {v / t[1]:5.2f}x CE  {v / t[0]:5.2f}x floor")
    print("  (every loss allocates its gradient, as a caller without grad_out does)")


def section_hinge(args, torch):
    print("\n## multiclass_hinge_loss (weston_watkins) vs softmax_cross_entropy and torch multi_margin_loss, "
          "(16384, 1000) float32, loss+grad")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16384, 1000)).astype(np.float32)
    y = rng.integers(0, 1000, 16384)
    xg = torch.from_numpy(x.copy()).requires_grad_()
    yt = torch.from_numpy(y)

    def torch_fb():
        torch.nn.functional.multi_margin_loss(xg, yt).backward()
        xg.grad = None

    g = np.empty_like(x)
    t = timed([lambda: np.copyto(g, x),
               lambda: fastloss.softmax_cross_entropy(x, y, return_grad=True),
               lambda: fastloss.multiclass_hinge_loss(x, y, return_grad=True),
               lambda: fastloss.multiclass_hinge_loss(x, y, kind="crammer_singer", return_grad=True),
               torch_fb], args.repeat)
    print(f"  memory floor (np.copyto) {us(t[0])}")
    print(f"  softmax_cross_entropy    {us(t[1])}")
    print(f"  weston_watkins           {us(t[2])}  {t[2] / t[1]:5.2f}x CE  torch f+b {us(t[4])}  ratio {t[4] / t[2]:6.1f}")
    print(f"  crammer_singer           {us(t[3])}  {t[3] / t[1]:5.2f}x CE")


def section_divergence(args):
    import scipy.stats
    print("\n## entropy, kl_divergence vs scipy.stats.entropy, (10000, 1000) float32")
    rng = np.random.default_rng(2)
    p = rng.random((10000, 1000)).astype(np.float32)
    q = rng.random((10000, 1000)).astype(np.float32)
    t = timed([lambda: scipy.stats.entropy(p, axis=-1), lambda: fastloss.entropy(p),
               lambda: scipy.stats.entropy(p, q, axis=-1), lambda: fastloss.kl_divergence(p, q),
               lambda: fastloss.js_divergence(p, q)], args.repeat)
    print(f"{'entropy':>16}: scipy {us(t[0])}  fastloss {us(t[1])}  ratio {t[0] / t[1]:6.1f}")
    print(f"{'kl_divergence':>16}: scipy {us(t[2])}  fastloss {us(t[3])}  ratio {t[2] / t[3]:6.1f}")
    print(f"{'js_divergence':>16}: fastloss {us(t[4])}")
    # compute floor: a vector log (~25 instructions incl. a divide) plus a divide per element;
    # measure the log throughput itself with NumPy's float32 log on the same element count
    a = p.ravel()
    o = np.empty_like(a)
    tl = timed([lambda: np.log(a, out=o)], args.repeat)[0]
    print(f"  one float32 log per element (np.log, 1 thread) {us(tl)}; entropy has 1 log/element, KL 1, JS 2; "
          f"fastloss runs {fastloss.get_num_threads()} threads")


def section_l2(args, torch):
    print("\n## l2_loss vs torch.linalg.vector_norm, (16384, 1000) float32, loss+grad")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((16384, 1000)).astype(np.float32)
    y = rng.standard_normal((16384, 1000)).astype(np.float32)
    xg, yt = torch.from_numpy(x.copy()).requires_grad_(), torch.from_numpy(y)

    def torch_fb():
        torch.linalg.vector_norm(xg - yt, dim=-1).mean().backward()
        xg.grad = None

    g = np.empty_like(x)
    # floor: the kernel reads pred and target and writes the gradient (3 array-sized streams);
    # two copies move 4 streams, so half of them is a slight under-estimate of the floor
    t = timed([lambda: (np.copyto(g, x), np.copyto(g, y)),
               lambda: fastloss.l2_loss(x, y, return_grad=True),
               lambda: fastloss.l2_loss(x, y),
               torch_fb], args.repeat)
    print(f"  memory floor (3/4 of two np.copyto) {us(t[0] * 0.75)}")
    print(f"  l2_loss loss+grad        {us(t[1])}  {t[1] / (t[0] * 0.75):5.2f}x floor  torch f+b {us(t[3])}  "
          f"ratio {t[3] / t[1]:6.1f}")
    print(f"  l2_loss loss only        {us(t[2])}")


def torch_bi_tempered(torch, x, y, t1, t2, num_iters):
    """The reference algorithm (google-research tensorflow/loss.py) vectorised in PyTorch; autograd
    differentiates it, iterations included (PyTorch has no custom gradient for it)."""
    def log_t(u, t):
        return torch.log(u) if t == 1 else (u ** (1 - t) - 1) / (1 - t)

    def exp_t(u, t):
        return torch.exp(u) if t == 1 else torch.relu(1 + (1 - t) * u) ** (1 / (1 - t))

    mu = x.max(-1, keepdim=True).values
    a0 = x - mu
    a = a0
    for _ in range(num_iters):  # fixed point (t2 > 1)
        a = a0 * exp_t(a, t2).sum(-1, keepdim=True) ** (1 - t2)
    norm = -log_t(1 / exp_t(a, t2).sum(-1, keepdim=True), t2) + mu
    p = exp_t(x - norm, t2)
    per = y * (log_t(y + 1e-10, t1) - log_t(p, t1)) - (y ** (2 - t1) - p ** (2 - t1)) / (2 - t1)
    return per.sum(-1).mean()


def section_bitempered(args, torch):
    iters = 5
    print(f"\n## bi_tempered_logistic_loss (num_iters={iters}) vs PyTorch autograd of the reference algorithm, "
          "(4096, 1000) float32, loss+grad")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4096, 1000)).astype(np.float32)
    y = rng.integers(0, 1000, 4096)
    onehot = np.eye(1000, dtype=np.float32)[y]
    xg, yt = torch.from_numpy(x.copy()).requires_grad_(), torch.from_numpy(onehot)
    # Throughput of one float32 exp and one log (NumPy's SIMD loops) on an L2-resident block,
    # so the floor is compute, not memory.
    blk = rng.standard_normal(16384).astype(np.float32)
    pos = np.abs(blk) + 0.5
    o = np.empty_like(blk)
    for t1, t2 in [(0.8, 1.2), (0.8, 1.3)]:
        def torch_fb():
            torch_bi_tempered(torch, xg, yt, t1, t2, iters).backward()
            xg.grad = None

        t = timed([lambda: fastloss.bi_tempered_logistic_loss(x, y, t1=t1, t2=t2, num_iters=iters, return_grad=True),
                   lambda: fastloss.bi_tempered_logistic_loss(x, onehot, t1=t1, t2=t2, num_iters=iters,
                                                              return_grad=True),
                   torch_fb,
                   lambda: np.exp(blk, out=o), lambda: np.log(pos, out=o)], args.repeat)
        per_exp, per_log = t[3] / blk.size, t[4] / blk.size
        # The kernel's transcendentals per element with a general exponent 1/(1-t2): each
        # normalisation pass one log and one exp (num_iters + 1 passes), the last pass one log
        # and two exps (p and p^(1-t1)). t2 = 1.2 has 1/(1-t2) = -5 and (1-t1)/(1-t2) = -1:
        # exp_t is a multiply chain and a divide, no transcendental at all.
        n_exp, n_log = iters + 1 + 2, iters + 1 + 1
        floor = x.size * (n_exp * per_exp + n_log * per_log) / fastloss.get_num_threads()
        integral = abs(1 / (1 - t2) - round(1 / (1 - t2))) < 1e-9
        print(f"  t1={t1} t2={t2} ({'integer exponents: no transcendentals' if integral else f'{n_exp} exp + {n_log} log per element'})")
        print(f"    fastloss, integer labels {us(t[0])}  torch f+b {us(t[2])}  ratio {t[2] / t[0]:6.1f}"
              + ("" if integral else f"  {t[0] / floor:5.2f}x compute floor"))
        print(f"    fastloss, one-hot labels {us(t[1])}  ratio {t[2] / t[1]:6.1f}"
              + ("" if integral else f"  {t[1] / floor:5.2f}x compute floor"))
        if not integral:
            print(f"    compute floor {us(floor)} ({per_exp * 1e9:.2f} ns per exp, {per_log * 1e9:.2f} ns per log: "
                  f"NumPy float32 on an L2-resident block, 1 thread, over {fastloss.get_num_threads()} threads)")
def section_dice(args, torch):
    print("\n## dice_loss (softmax, axis=1, integer labels) vs MONAI's formula in PyTorch autograd, "
          "(8, 21, 256, 256) float32, loss+grad")
    from concurrent.futures import ThreadPoolExecutor
    rng = np.random.default_rng(5)
    N, C, H, W = 8, 21, 256, 256
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    y = rng.integers(0, C, (N, H, W))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def monai_fb():  # monai.losses.DiceLoss(softmax=True, to_onehot_y=True), its steps written out
        xg = xt.detach().requires_grad_()
        p = torch.softmax(xg, 1)
        target = torch.zeros(N, C, H, W).scatter_(1, yt[:, None], 1)  # monai.networks.one_hot
        inter = torch.sum(target * p, dim=[2, 3])
        denominator = torch.sum(target, dim=[2, 3]) + torch.sum(p, dim=[2, 3])
        f = 1.0 - (2.0 * inter + 1e-5) / (denominator + 1e-5)
        torch.mean(f).backward()
        return xg.grad

    # floor: the bytes a fused kernel must move: read logits and labels, write the gradient
    # (np.copyto of each into a buffer of its size, split over the same threads)
    g, gy = np.empty_like(x), np.empty_like(y)
    pool = ThreadPoolExecutor(args.threads)
    parts = list(zip(np.array_split(g.reshape(-1), args.threads), np.array_split(x.reshape(-1), args.threads))) + \
        list(zip(np.array_split(gy.reshape(-1), args.threads), np.array_split(y.reshape(-1), args.threads)))

    def floor():
        list(pool.map(lambda ab: np.copyto(*ab), parts))

    fl = lambda: fastloss.dice_loss(x, y, activation="softmax", axis=1, smooth=1e-5, return_grad=True)
    loss, grad = fl()
    np.testing.assert_allclose(grad, monai_fb().numpy(), rtol=1e-3, atol=1e-9)
    t = timed([floor, fl, lambda: fastloss.dice_loss(x, y, activation="softmax", axis=1, smooth=1e-5),
               monai_fb], args.repeat)
    print(f"  memory floor (np.copyto, read x + labels, write grad) {us(t[0])}")
    print(f"  dice_loss loss+grad   {us(t[1])}  {t[1] / t[0]:5.2f}x floor  torch f+b {us(t[3])}  ratio {t[3] / t[1]:6.1f}")
    print(f"  dice_loss loss only   {us(t[2])}  (pass 1: one read of x and labels)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="ce,focal,hinge,divergence,l2,bitempered,dice")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    fastloss.set_num_threads(args.threads)
    print(f"# {cpu_name()}, {os.cpu_count()} CPUs, fastloss {fastloss.build_info().get('simd', '')} "
          f"{fastloss.get_num_threads()} threads")
    only = args.only.split(",")
    if "ce" in only:
        import torch
        torch.set_num_threads(args.threads)
        print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads")
        section_ce(args, torch)
    if "focal" in only:
        section_focal(args)
    if "hinge" in only:
        import torch
        torch.set_num_threads(args.threads)
        section_hinge(args, torch)
    if "divergence" in only:
        section_divergence(args)
    if "l2" in only:
        import torch
        torch.set_num_threads(args.threads)
        section_l2(args, torch)
    if "bitempered" in only:
        import torch
        torch.set_num_threads(args.threads)
        section_bitempered(args, torch)
    if "dice" in only:
        import torch
        torch.set_num_threads(args.threads)
        section_dice(args, torch)


if __name__ == "__main__":
    main()
