#!/usr/bin/env python3
"""fastloss's headline comparison: every loss family against the peers installed, in one run.

    python3 -m pip install ".[bench]"      # fastloss and the peers it is compared with
    python3 bench/main.py                   # ~1-2 minutes on 2 cores; writes bench/out/fastloss-speedups.png

From a source checkout with a development build (no ``pip install``), run it as
``PYTHONPATH=python python3 bench/main.py``. Options: ``--family cross-entropy`` (repeatable)
runs one table, ``--repeats N`` sets the calls per measurement, ``--out DIR`` the folder of the
chart (default ``bench/out``, which git ignores), ``--chart PATH`` / ``--no-chart``.

What it measures: CPU, float32, all cores on both sides (``torch.set_num_threads``, rapidfuzz
``workers=-1``; JAX uses its own pool). Every row is the fastest of several calls; fastloss, the
peers and the floor are called in turn within one loop. That evens out slow drifts, not
contention: on a busy machine (other processes on the cores) each library loses a different
share of its threads' time, the ratios move far from the quiet figures (one run under load gave
671x for the bi-tempered row instead of 32x), and the script warns when the load average is
high. Quote figures from a quiet machine. Speed-up = peer time / fastloss time. Where a kernel is bound by
memory, "vs floor" is its time over that of a NumPy copy moving the same bytes on the same
number of threads (timed in the same loop): 1.00x is as fast as memory allows. Each peer's
result is checked against fastloss's before its row is printed.

Adding a family: write a ``setup`` function that builds the inputs and returns a ``Case``
(the fastloss call, the peer calls, optionally a floor), and append a ``Workload`` to
``WORKLOADS`` with a family name; a family gets its own table (title in ``FAMILIES``) and its
own colour in the chart. A peer is named by its import name in ``PEERS``; a missing one is
listed at the top with the command that installs it, and its rows are skipped.

GPU comparisons (CuPy against PyTorch CUDA) are in the per-family scripts:
``python3 bench/compare_cross_entropy.py --gpu``, ``bench/compare_ctc.py --gpu``,
``bench/compare_edit_distance.py --gpu``.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

import fastloss
from benchutil import cpu_name

INSTALL_PEERS = 'python3 -m pip install ".[bench]"'

# import name -> (label, pip requirement). The order is the order of the rows.
PEERS = {
    "torch": ("PyTorch", "torch==2.13.0"),
    "jax": ("JAX", "jax[cpu]"),
    "rapidfuzz": ("rapidfuzz", "rapidfuzz"),
    "jiwer": ("jiwer", "jiwer"),
}

FAMILIES = {
    "cross-entropy": "Softmax cross-entropy (softmax_cross_entropy, linear_cross_entropy)",
    "ctc": "CTC loss (ctc_loss)",
    "edit-distance": "Edit distance (edit_distance, pairwise_edit_distance)",
    "error-rate": "Corpus error rate (error_rate)",
    "elementwise": "Elementwise losses (mse_loss, sigmoid_focal_loss, ...)",
    "row-wise": "Row-wise losses (multiclass_hinge_loss, softmax_focal_loss, dice_loss, bi_tempered_logistic_loss, ...)",
    "metric": "Metric learning (center_loss, update_centers)",
}


@dataclass
class Case:
    """One workload, ready to time: each callable runs one complete call and returns its result."""
    fastloss: Callable
    peers: dict = field(default_factory=dict)  # row label -> callable
    floor: Optional[Callable] = None           # moves the bytes the kernel must move
    rtol: float = 1e-4                         # for checking the peers' values against fastloss


@dataclass
class Workload:
    family: str
    name: str
    setup: Callable[["Env"], Case]


class Env:
    """What a setup function needs: the thread count, the installed peers and a thread pool."""

    def __init__(self, threads: int, wanted: set):
        self.threads = threads
        self.pool = ThreadPoolExecutor(threads) if threads > 1 else None
        self.available = {name for name in PEERS if importlib.util.find_spec(name) is not None}
        self.missing = [name for name in PEERS if name in wanted and name not in self.available]
        self._modules = {}

    def peer(self, name: str):
        """The peer's module, or None when it is not installed."""
        if name not in self.available:
            return None
        if name not in self._modules:
            mod = importlib.import_module(name)
            if name == "torch":
                mod.set_num_threads(self.threads)
            self._modules[name] = mod
        return self._modules[name]

    def _split(self, fn, *arrays) -> Callable:
        """fn over `threads` contiguous parts of the flattened arrays, one part per thread
        (NumPy releases the GIL in copies and reductions)."""
        parts = list(zip(*(np.array_split(a, self.threads) for a in arrays)))
        if self.pool is None:
            return lambda: fn(*arrays)
        return lambda: list(self.pool.map(lambda p: fn(*p), parts))

    def copy_floor(self, src: np.ndarray) -> Callable:
        """Read `src` and write as many bytes: the floor of a kernel that reads its input and
        writes a gradient of the same size."""
        flat = np.ascontiguousarray(src).reshape(-1)
        return self._split(np.copyto, np.empty_like(flat), flat)

    def binary_floor(self, a: np.ndarray, b: np.ndarray) -> Callable:
        """Read `a` and `b` and write as many bytes as `a`: the floor of an elementwise loss
        that reads its prediction and target and writes a gradient."""
        a, b = np.ascontiguousarray(a).reshape(-1), np.ascontiguousarray(b).reshape(-1)
        return self._split(lambda x, y, out: np.subtract(x, y, out=out), a, b, np.empty_like(a))

    def read_floor(self, src: np.ndarray) -> Callable:
        """Read `src` once (a sum: memory-bound, it writes nothing): the floor of a kernel that
        only reads its input."""
        return self._split(np.add.reduce, np.ascontiguousarray(src).reshape(-1))


# --------------------------------------------------------------------------- cross-entropy

def numpy_cross_entropy(x, y):
    """What a pipeline would write in NumPy: mean loss and its gradient."""
    m = x.max(axis=1, keepdims=True)
    e = np.exp(x - m)
    s = e.sum(axis=1, keepdims=True)
    loss = np.mean((m + np.log(s))[:, 0] - x[np.arange(len(y)), y])
    g = e / s
    g[np.arange(len(y)), y] -= 1
    g /= len(y)
    return loss, g


def cross_entropy_case(env: Env, shape, axis=-1, grad=True, floor=False, numpy_peer=False) -> Case:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    C = shape[axis]
    y = rng.integers(0, C, shape[:axis % len(shape)] + shape[axis % len(shape) + 1:])
    g = np.empty_like(x)
    if grad:
        case = Case(lambda: fastloss.softmax_cross_entropy(x, y, axis=axis, grad_out=g)[0])
    else:
        case = Case(lambda: fastloss.softmax_cross_entropy(x, y, axis=axis))
    if floor:  # loss + grad: read the logits, write the gradient; loss only: read the logits
        case.floor = env.copy_floor(x) if grad else env.read_floor(x)
    torch = env.peer("torch")
    if torch is not None:
        F = torch.nn.functional
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        dim = axis % len(shape)
        # torch puts the class axis at dim 1
        xt = xt if dim == 1 else xt.movedim(dim, 1)

        def torch_fwd_bwd():
            xg = xt.detach().requires_grad_()
            loss = F.cross_entropy(xg, yt)
            loss.backward()
            return loss

        def torch_fwd():
            with torch.no_grad():
                return F.cross_entropy(xt, yt)

        case.peers["PyTorch fwd+bwd" if grad else "PyTorch fwd"] = torch_fwd_bwd if grad else torch_fwd
    jax = env.peer("jax")
    if jax is not None:
        jnp = jax.numpy

        def jax_loss(xj, yj):
            lse = jax.nn.logsumexp(xj, axis=axis)
            picked = jnp.take_along_axis(xj, jnp.expand_dims(yj, axis), axis=axis).squeeze(axis)
            return jnp.mean(lse - picked)

        fn = jax.jit(jax.value_and_grad(jax_loss) if grad else jax_loss)
        xj, yj = jax.device_put(x), jax.device_put(y.astype(np.int32))
        case.peers["JAX jit value_and_grad" if grad else "JAX jit"] = \
            (lambda: jax.block_until_ready(fn(xj, yj))[0]) if grad else (lambda: jax.block_until_ready(fn(xj, yj)))
    if numpy_peer and grad and x.ndim == 2:
        case.peers["NumPy (max, exp, sum, divide)"] = lambda: numpy_cross_entropy(x, y)[0]
    return case


# --------------------------------------------------------------------------- CTC

def linear_ce_case(env: Env, N, D, V) -> Case:
    """linear_cross_entropy (loss + the three gradients' products, no (N, V) logits) against
    PyTorch's unfused F.linear + F.cross_entropy forward and backward."""
    rng = np.random.default_rng(0)
    h = rng.standard_normal((N, D), dtype=np.float32)
    w = (rng.standard_normal((V, D), dtype=np.float32) * 0.05).astype(np.float32)
    y = rng.integers(0, V, N)
    case = Case(lambda: fastloss.linear_cross_entropy(h, w, y, return_grad=True)[0], rtol=1e-3)
    torch = env.peer("torch")
    if torch is not None:
        F = torch.nn.functional
        ht, wt, yt = torch.from_numpy(h), torch.from_numpy(w), torch.from_numpy(y)

        def torch_fwd_bwd():
            hg, wg = ht.detach().requires_grad_(), wt.detach().requires_grad_()
            loss = F.cross_entropy(F.linear(hg, wg), yt)
            loss.backward()
            return loss
        case.peers["PyTorch F.linear + F.cross_entropy, autograd"] = torch_fwd_bwd
    return case


def ctc_case(env: Env, T, N, C, S, from_logits) -> Case:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, N, C)).astype(np.float32)
    if not from_logits:
        x = (x - np.log(np.exp(x.astype(np.float64)).sum(-1, keepdims=True))).astype(np.float32)
    labels = rng.integers(1, C, (N, S))
    il = rng.integers(int(T * 0.8), T + 1, N)
    ll = rng.integers(max(1, S // 2), S + 1, N)
    case = Case(lambda: fastloss.ctc_loss(x, labels, il, ll, from_logits=from_logits, return_grad=True)[0],
                rtol=1e-3)
    torch = env.peer("torch")
    if torch is not None:
        F = torch.nn.functional
        xt = torch.from_numpy(x)
        lt, ilt, llt = torch.from_numpy(labels), torch.from_numpy(il), torch.from_numpy(ll)

        def torch_fwd_bwd():
            xg = xt.detach().requires_grad_()
            loss = F.ctc_loss(xg.log_softmax(-1) if from_logits else xg, lt, ilt, llt)
            loss.backward()
            return loss

        case.peers["PyTorch fwd+bwd" + (" (log_softmax)" if from_logits else "")] = torch_fwd_bwd
    return case


# --------------------------------------------------------------------------- edit distance

ALPHABET = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz ", np.uint8)


def random_strings(rng, n, length):
    text = ALPHABET[rng.integers(0, len(ALPHABET), n * length)].tobytes().decode("ascii")
    return [text[i * length:(i + 1) * length] for i in range(n)]


def mutate(rng, strings, fraction=0.1):
    """Each string with ~`fraction` of its characters edited (substituted, deleted, inserted)."""
    out = []
    for s in strings:
        k = max(1, int(len(s) * fraction))
        pos = rng.integers(0, len(s), k)
        ops = rng.integers(0, 3, k)
        chars = ALPHABET[rng.integers(0, len(ALPHABET), k)].tobytes().decode("ascii")
        t = list(s)
        for p, op, c in sorted(zip(pos.tolist(), ops.tolist(), chars), reverse=True):
            if op == 2:
                t.insert(p, c)
            elif p < len(t):  # a deletion at the same position may have shortened t
                if op == 0:
                    t[p] = c
                else:
                    del t[p]
        out.append("".join(t))
    return out


def edit_distance_case(env: Env, n, length) -> Case:
    rng = np.random.default_rng(0)
    a = random_strings(rng, n, length)
    b = mutate(rng, a)
    case = Case(lambda: fastloss.edit_distance(a, b), rtol=0)
    rf = env.peer("rapidfuzz")
    if rf is not None:
        from rapidfuzz.distance import Levenshtein
        from rapidfuzz.process import cpdist
        case.peers["rapidfuzz cpdist"] = lambda: cpdist(a, b, scorer=Levenshtein.distance, workers=-1)
    return case


def pairwise_case(env: Env, n, length) -> Case:
    rng = np.random.default_rng(1)
    a, b = random_strings(rng, n, length), random_strings(rng, n, length)
    case = Case(lambda: fastloss.pairwise_edit_distance(a, b), rtol=0)
    if env.peer("rapidfuzz") is not None:
        from rapidfuzz.distance import Levenshtein
        from rapidfuzz.process import cdist
        case.peers["rapidfuzz cdist"] = lambda: cdist(a, b, scorer=Levenshtein.distance, workers=-1,
                                                      dtype=np.int32)
    return case


# --------------------------------------------------------------------------- error rate

def random_sentences(n, seed=0):
    """n (reference, hypothesis) pairs of 5-24 words from a 5000-word vocabulary, ~10% edited."""
    rng = np.random.default_rng(seed)
    vocab = [w for w in random_strings(rng, 5000, 8)]
    vocab = [w.replace(" ", "")[: rng.integers(2, 9)] or "a" for w in vocab]
    refs, hyps = [], []
    for _ in range(n):
        words = [vocab[i] for i in rng.integers(0, len(vocab), rng.integers(5, 25))]
        hyp = list(words)
        for _ in range(max(1, len(words) // 10)):
            p, op = int(rng.integers(0, len(hyp))), int(rng.integers(0, 3))
            if op == 0:
                hyp[p] = vocab[int(rng.integers(0, len(vocab)))]
            elif op == 1 and len(hyp) > 1:
                del hyp[p]
            else:
                hyp.insert(p, vocab[int(rng.integers(0, len(vocab)))])
        refs.append(" ".join(words))
        hyps.append(" ".join(hyp))
    return refs, hyps


_SENTENCES = {}


def error_rate_case(env: Env, n, unit) -> Case:
    if n not in _SENTENCES:
        _SENTENCES[n] = random_sentences(n)
    refs, hyps = _SENTENCES[n]
    case = Case(lambda: fastloss.error_rate(refs, hyps, unit=unit), rtol=1e-12)
    jiwer = env.peer("jiwer")
    if jiwer is not None:
        fn = jiwer.wer if unit == "word" else jiwer.cer
        case.peers[f"jiwer.{fn.__name__}"] = lambda: fn(refs, hyps)
    return case


# --------------------------------------------------------------------------- elementwise

def mse_case(env: Env, n) -> Case:
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)
    case = Case(lambda: fastloss.mse_loss(x, t, return_grad=True)[0], floor=env.binary_floor(x, t), rtol=1e-3)
    torch = env.peer("torch")
    if torch is not None:
        xt, tt = torch.from_numpy(x), torch.from_numpy(t)

        def torch_fwd_bwd():
            xg = xt.detach().requires_grad_()
            loss = torch.nn.functional.mse_loss(xg, tt)
            loss.backward()
            return loss
        case.peers["PyTorch fwd+bwd"] = torch_fwd_bwd
    jax = env.peer("jax")
    if jax is not None:
        fn = jax.jit(jax.value_and_grad(lambda a, b: jax.numpy.mean((a - b) ** 2)))
        xj, tj = jax.device_put(x), jax.device_put(t)
        case.peers["JAX jit value_and_grad"] = lambda: jax.block_until_ready(fn(xj, tj))[0]
    return case


def focal_case(env: Env, shape) -> Case:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    t = (rng.random(shape) < 0.1).astype(np.float32)
    case = Case(lambda: fastloss.sigmoid_focal_loss(x, t, return_grad=True)[0], floor=env.binary_floor(x, t),
                rtol=1e-3)
    torch = env.peer("torch")
    if torch is not None:
        F = torch.nn.functional
        xt, tt = torch.from_numpy(x), torch.from_numpy(t)

        def torch_fwd_bwd():  # torchvision's sigmoid_focal_loss, mean reduction
            xg = xt.detach().requires_grad_()
            p = torch.sigmoid(xg)
            ce = F.binary_cross_entropy_with_logits(xg, tt, reduction="none")
            p_t = p * tt + (1 - p) * (1 - tt)
            loss = (ce * (1 - p_t) ** 2 * (0.25 * tt + 0.75 * (1 - tt))).mean()
            loss.backward()
            return loss
        case.peers["PyTorch fwd+bwd (torchvision)"] = torch_fwd_bwd
    return case


# --------------------------------------------------------------------------- row-wise

def hinge_case(env: Env, shape) -> Case:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    y = rng.integers(0, shape[1], shape[0])
    case = Case(lambda: fastloss.multiclass_hinge_loss(x, y, return_grad=True)[0], rtol=1e-3)
    torch = env.peer("torch")
    if torch is not None:
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def torch_fwd_bwd():
            xg = xt.detach().requires_grad_()
            loss = torch.nn.functional.multi_margin_loss(xg, yt)
            loss.backward()
            return loss
        case.peers["PyTorch multi_margin_loss"] = torch_fwd_bwd
    return case


def softmax_focal_case(env: Env, shape) -> Case:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    y = rng.integers(0, shape[1], shape[0])
    case = Case(lambda: fastloss.softmax_focal_loss(x, y, gamma=2.0, return_grad=True)[0], floor=env.copy_floor(x),
                rtol=1e-3)
    torch = env.peer("torch")
    if torch is not None:
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def torch_fwd_bwd():
            xg = xt.detach().requires_grad_()
            logp = torch.log_softmax(xg, -1).gather(1, yt[:, None])[:, 0]
            loss = (-(1 - logp.exp()) ** 2 * logp).mean()
            loss.backward()
            return loss
        case.peers["PyTorch autograd fwd+bwd"] = torch_fwd_bwd
    return case


def bi_tempered_case(env: Env, shape) -> Case:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    y = rng.integers(0, shape[1], shape[0])
    case = Case(lambda: fastloss.bi_tempered_logistic_loss(x, y, t1=0.8, t2=1.2, return_grad=True)[0], rtol=1e-3)
    torch = env.peer("torch")
    if torch is not None:
        from compare_rowwise import torch_bi_tempered  # the reference algorithm in PyTorch
        xt, yt = torch.from_numpy(x), torch.from_numpy(np.eye(shape[1], dtype=np.float32)[y])

        def torch_fwd_bwd():
            xg = xt.detach().requires_grad_()
            loss = torch_bi_tempered(torch, xg, yt, 0.8, 1.2, 5)
            loss.backward()
            return loss
        case.peers["PyTorch autograd fwd+bwd"] = torch_fwd_bwd
    return case


def dice_case(env: Env, shape) -> Case:
    rng = np.random.default_rng(0)
    N, C, H, W = shape
    x = rng.standard_normal(shape, dtype=np.float32)
    y = rng.integers(0, C, (N, H, W))
    case = Case(lambda: fastloss.dice_loss(x, y, activation="softmax", axis=1, smooth=1e-5, return_grad=True)[0],
                floor=env.copy_floor(x), rtol=1e-3)
    torch = env.peer("torch")
    if torch is not None:
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def torch_fwd_bwd():  # monai.losses.DiceLoss(softmax=True, to_onehot_y=True), written out
            xg = xt.detach().requires_grad_()
            p = torch.softmax(xg, 1)
            target = torch.zeros(shape).scatter_(1, yt[:, None], 1)
            inter = torch.sum(target * p, dim=[2, 3])
            den = torch.sum(target, dim=[2, 3]) + torch.sum(p, dim=[2, 3])
            loss = torch.mean(1.0 - (2.0 * inter + 1e-5) / (den + 1e-5))
            loss.backward()
            return loss
        case.peers["PyTorch autograd (MONAI's formula)"] = torch_fwd_bwd
    return case


# --------------------------------------------------------------------------- metric learning

def center_case(env: Env, N, D, K) -> Case:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, D), dtype=np.float32)
    c = rng.standard_normal((K, D), dtype=np.float32)
    y = rng.integers(0, K, N)

    def fl():
        loss, _ = fastloss.center_loss(x, y, c, return_grad=True)
        fastloss.update_centers(c, x, y, alpha=0.5)
        return loss
    case = Case(fl, rtol=1e-3)
    torch = env.peer("torch")
    if torch is not None:
        xt, ct, yt = torch.from_numpy(x), torch.from_numpy(c), torch.from_numpy(y)

        def torch_fwd_bwd():
            xg = xt.detach().requires_grad_()
            diff = xg - ct[yt]
            loss = 0.5 * (diff * diff).sum(1).mean()
            loss.backward()
            with torch.no_grad():  # the paper's update: c_j -= alpha * sum(c_j - x_i) / (1 + n_j)
                delta = torch.zeros_like(ct).index_add_(0, yt, ct[yt] - xt)
                n = torch.bincount(yt, minlength=ct.shape[0]).to(ct.dtype)
                updated = ct - 0.5 * delta / (1 + n)[:, None]
            return loss, updated
        case.peers["PyTorch autograd + update"] = lambda: torch_fwd_bwd()[0]
    return case


# --------------------------------------------------------------------------- the table of workloads

WORKLOADS = [
    Workload("cross-entropy", "N=4096 C=32000, loss + grad (grad_out=)",
             lambda env: cross_entropy_case(env, (4096, 32000), floor=True, numpy_peer=True)),
    Workload("cross-entropy", "N=4096 C=32000, loss only",
             lambda env: cross_entropy_case(env, (4096, 32000), grad=False, floor=True)),
    Workload("cross-entropy", "(8, 21, 256, 256) axis=1, loss + grad",
             lambda env: cross_entropy_case(env, (8, 21, 256, 256), axis=1, floor=True)),
    Workload("cross-entropy", "N=16384 C=100, loss + grad",
             lambda env: cross_entropy_case(env, (16384, 100))),
    Workload("cross-entropy", "linear_cross_entropy N=1024 D=512 V=16384, loss + 3 grads",
             lambda env: linear_ce_case(env, 1024, 512, 16384)),
    Workload("ctc", "T=200 N=32 C=40 S=60, loss + grad",
             lambda env: ctc_case(env, 200, 32, 40, 60, False)),
    Workload("ctc", "T=150 N=64 C=5000 S=20, from_logits, loss + grad",
             lambda env: ctc_case(env, 150, 64, 5000, 20, True)),
    Workload("edit-distance", "edit_distance, 200000 pairs x 30 chars",
             lambda env: edit_distance_case(env, 200000, 30)),
    Workload("edit-distance", "edit_distance, 20000 pairs x 200 chars",
             lambda env: edit_distance_case(env, 20000, 200)),
    Workload("edit-distance", "pairwise_edit_distance, 2000 x 2000 x 30 chars",
             lambda env: pairwise_case(env, 2000, 30)),
    Workload("error-rate", "WER (unit='word'), 20000 sentences",
             lambda env: error_rate_case(env, 20000, "word")),
    Workload("error-rate", "CER (unit='char'), 20000 sentences",
             lambda env: error_rate_case(env, 20000, "char")),
    Workload("elementwise", "mse_loss, 2^24 elements, loss + grad",
             lambda env: mse_case(env, 1 << 24)),
    Workload("elementwise", "sigmoid_focal_loss (100000, 80), loss + grad",
             lambda env: focal_case(env, (100000, 80))),
    Workload("row-wise", "multiclass_hinge_loss (16384, 1000), loss + grad",
             lambda env: hinge_case(env, (16384, 1000))),
    Workload("row-wise", "softmax_focal_loss (4096, 32000), loss + grad",
             lambda env: softmax_focal_case(env, (4096, 32000))),
    Workload("row-wise", "bi_tempered_logistic_loss (1024, 1000) t1=0.8 t2=1.2, loss + grad",
             lambda env: bi_tempered_case(env, (1024, 1000))),
    Workload("row-wise", "dice_loss softmax (8, 21, 256, 256) axis=1, loss + grad",
             lambda env: dice_case(env, (8, 21, 256, 256))),
    Workload("metric", "center_loss + update_centers (65536, 512), 1000 classes",
             lambda env: center_case(env, 65536, 512, 1000)),
]

# Which peers each family is compared with (for the "missing" line).
FAMILY_PEERS = {"cross-entropy": ("torch", "jax"), "ctc": ("torch",), "edit-distance": ("rapidfuzz",),
                "error-rate": ("jiwer",), "elementwise": ("torch", "jax"), "row-wise": ("torch",),
                "metric": ("torch",)}


# --------------------------------------------------------------------------- measuring and printing

def measure(fns: dict, repeats: int, budget_s: float):
    """Fastest call of each callable, calling them in turn (one round = one call each) so that
    load from elsewhere hits all of them alike. A callable slower than `budget_s` in total stops
    after 3 calls. Returns the times and the result of each callable's untimed first call
    (the warm-up: first-touch page faults, JIT compilation, thread start)."""
    first = {k: fn() for k, fn in fns.items()}
    best = {k: float("inf") for k in fns}
    spent = {k: 0.0 for k in fns}
    calls = {k: 0 for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            if calls[k] >= 3 and spent[k] > budget_s:
                continue
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            best[k] = min(best[k], dt)
            spent[k] += dt
            calls[k] += 1
    return best, first


def to_numpy(r):
    if hasattr(r, "detach"):
        r = r.detach().numpy()
    return np.asarray(r, dtype=np.float64)


def ms(t: float) -> str:
    v = t * 1e3
    return f"{v:.0f} ms" if v >= 100 else f"{v:.1f} ms" if v >= 10 else f"{v:.2f} ms"


COLUMNS = [("workload", 50, "<"), ("fastloss", 9, ">"), ("vs floor", 9, ">"), ("peer", 30, "<"),
           ("peer time", 10, ">"), ("speed-up", 9, ">")]


def row(*cells) -> str:
    return "  ".join(f"{c:{align}{w}}" for c, (_, w, align) in zip(cells, COLUMNS)).rstrip()


def load_note(threads: int) -> Optional[str]:
    """A warning when the 1-minute load average says other processes compete for the cores."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    cpus = os.cpu_count() or 1
    if load < 0.5 * cpus:
        return None
    return (f"WARNING: load average {load:.1f} on {cpus} logical CPUs: other processes are using the cores. "
            f"Each library loses a different share of its {threads} threads' time, so these times are slower and "
            f"the ratios can be far from a quiet machine's (bench/RESULTS.md has quiet figures); rerun when the "
            f"machine is idle before quoting them.")


def chart(results, path, threads):
    """Horizontal bars of the speed-ups (log scale), one per (workload, peer), grouped by family;
    each bar is labelled with both absolute times."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    bars = [(fam, f"{name}\nvs {peer}", tp / tf, tf, tp) for fam, name, peer, tf, tp in results]
    fams = list(dict.fromkeys(b[0] for b in bars))
    colours = dict(zip(fams, plt.get_cmap("tab10").colors))
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(bars) + 1.6))
    ys = np.arange(len(bars))[::-1]
    ax.barh(ys, [b[2] for b in bars], color=[colours[b[0]] for b in bars], height=0.7)
    ax.set_yticks(ys, [b[1] for b in bars], fontsize=8)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    for y, (_, _, s, tf, tp) in zip(ys, bars):
        ax.text(s * 1.04, y, (f"{s:.0f}x" if s >= 100 else f"{s:.1f}x") + f"  ({ms(tf)} vs {ms(tp)})",
                va="center", fontsize=7)
    ax.set_xlim(min(0.5, min(b[2] for b in bars) / 1.5), max(b[2] for b in bars) * 12)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.set_xlabel("speed-up: peer time / fastloss time (log scale; right of the line = fastloss faster); "
                  "labels: speed-up (fastloss time vs peer time)", fontsize=8)
    ax.set_title(f"fastloss {fastloss.__version__} against its peers, CPU float32, {threads} threads, "
                 f"{cpu_name()}", fontsize=10, pad=14 + 14 * -(-len(fams) // 4))  # room for the legend rows
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[f]) for f in fams]
    # At most four entries a row: one row of seven clipped the last ("Metric learning").
    ax.legend(handles, [FAMILIES.get(f, f).split(" (")[0] for f in fams], fontsize=8, frameon=False,
              loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(4, len(fams)))
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")  # the figure grows to hold the legend and labels
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", action="append", choices=list(FAMILIES), help="only this table (repeatable)")
    ap.add_argument("--repeats", type=int, default=9, help="calls per measurement (default 9)")
    ap.add_argument("--budget", type=float, default=1.5,
                    help="seconds a slow peer may take per row before it stops at 3 calls (default 1.5)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out"),
                    help="folder of the chart (default: bench/out, ignored by git)")
    ap.add_argument("--chart", default=None,
                    help="PNG chart of the speed-ups (default: OUT/fastloss-speedups.png)")
    ap.add_argument("--no-chart", action="store_true")
    args = ap.parse_args(argv)

    families = args.family or list(FAMILIES)
    workloads = [w for w in WORKLOADS if w.family in families]
    threads = fastloss.get_num_threads()
    wanted = {p for f in families for p in FAMILY_PEERS.get(f, ())}
    env = Env(threads, wanted)
    tty = sys.stdout.isatty()
    info = fastloss.build_info()
    versions = ", ".join(f"{PEERS[p][0]} {importlib.metadata.version(p)}" for p in PEERS
                         if p in wanted and p in env.available)
    print(f"fastloss {fastloss.__version__} (SIMD {info['simd']}, {threads} threads) on {cpu_name()}, "
          f"{os.cpu_count()} logical CPUs; NumPy {np.__version__}", flush=True)
    print(f"peers: {versions or 'none'}", flush=True)
    no_chart = not args.no_chart and importlib.util.find_spec("matplotlib") is None
    if env.missing or no_chart:
        names = [f"{PEERS[p][0]} (its rows are skipped)" for p in env.missing] + (["matplotlib (no chart)"] if no_chart else [])
        reqs = [PEERS[p][1] for p in env.missing] + (["matplotlib"] if no_chart else [])
        reqs = " ".join(f'"{r}"' if any(c in r for c in "[]=<>") else r for r in reqs)
        print(f"missing: {', '.join(names)}; add them with {INSTALL_PEERS} (or: python3 -m pip install {reqs})",
              flush=True)
    busy = load_note(threads)
    if busy:
        print(busy, flush=True)
    print(f"float32 on the CPU; times are the fastest of up to {args.repeats} calls, fastloss and the "
          f"peers called in turn; speed-up = peer time / fastloss time. {len(workloads)} workloads, "
          f"each row printed when measured.", flush=True)

    results = []  # (family, workload, peer, fastloss time, peer time)
    family = None
    start = time.perf_counter()
    for i, w in enumerate(workloads, 1):
        if w.family != family:
            family = w.family
            print(f"\n{FAMILIES.get(family, family)}", flush=True)
            print(row(*(name for name, _, _ in COLUMNS)))
            print(row(*("-" * width for _, width, _ in COLUMNS)), flush=True)
        if tty:
            print(f"  [{i}/{len(workloads)}] preparing {w.name} ...", end="\r", flush=True)
        case = w.setup(env)
        fns = {"fastloss": case.fastloss, **case.peers}
        if case.floor is not None:
            fns["floor"] = case.floor
        if tty:
            print(f"  [{i}/{len(workloads)}] measuring {w.name} ...   ", end="\r", flush=True)
        best, first = measure(fns, args.repeats, args.budget)
        want = to_numpy(first["fastloss"])
        bad = [p for p in case.peers
               if not np.allclose(to_numpy(first[p]), want, rtol=case.rtol, atol=case.rtol * 1e-2)]
        if tty:
            print(" " * 100, end="\r")
        tf = best["fastloss"]
        floor = f"{tf / best['floor']:.2f}x" if case.floor is not None else ""
        if not case.peers:
            print(row(w.name, ms(tf), floor, "(no peer installed)", "", ""), flush=True)
        for k, peer in enumerate(case.peers):
            tp = best[peer]
            results.append((w.family, w.name, peer, tf, tp))
            note = "  VALUES DIFFER" if peer in bad else ""
            print(row(w.name if k == 0 else "", ms(tf) if k == 0 else "", floor if k == 0 else "",
                      peer, ms(tp), f"{tp / tf:.1f}x") + note, flush=True)
        del case, fns
    print(f"\nmeasured in {time.perf_counter() - start:.0f} s.")
    if "cross-entropy" in families:
        print(f"\"vs floor\": fastloss time over NumPy moving the bytes the kernel must move, on {threads} threads "
              f"(loss + grad: np.copyto reading the logits and writing as many bytes; loss only: np.add.reduce "
              f"reading them); 1.00x is as fast as memory allows.")

    busy_after = load_note(threads)
    if busy_after and not busy:
        print(busy_after, flush=True)

    if args.no_chart or no_chart or not results:
        return
    path = args.chart or os.path.join(args.out, "fastloss-speedups.png")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    chart(results, path, threads)
    print(f"chart of the speed-ups (and the times): {os.path.abspath(path)}")


if __name__ == "__main__":
    main()
