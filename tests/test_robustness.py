"""Robustness regressions (issue 10): bounded thread counts, environment variables that warn
instead of being ignored, and CTC length arithmetic that cannot overflow or over-read."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastloss
from fastloss import _C


def run_python(code, **env):
    """Runs `code` in a fresh interpreter with extra environment variables; returns it done."""
    full = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120)


# --- set_num_threads -------------------------------------------------------------------

CAP = fastloss.max_num_threads()


def test_thread_cap_is_documented_value():
    # 1024, or the processors this process may run on (OpenMP's count) when there are more
    assert CAP == max(1024, len(os.sched_getaffinity(0)))


@pytest.mark.parametrize("n", [0, -1, CAP + 1, 100_000, 2**31 - 1, 2**31, 2**63, 2**70, -2**70])
def test_set_num_threads_out_of_range_is_value_error(n):
    before = fastloss.get_num_threads()
    with pytest.raises(ValueError, match=r"n must be an integer in \[1, %d\], got %d" % (CAP, n)):
        fastloss.set_num_threads(n)
    assert fastloss.get_num_threads() == before


@pytest.mark.parametrize("n", [True, False, 1.0, 2.5, "3", None, np.float64(2)])
def test_set_num_threads_non_integer_is_type_error(n):
    with pytest.raises(TypeError, match="n must be an int"):
        fastloss.set_num_threads(n)


def test_set_num_threads_takes_numpy_integers():
    before = fastloss.get_num_threads()
    try:
        fastloss.set_num_threads(np.int64(3))
        assert fastloss.get_num_threads() == 3
        fastloss.set_num_threads(np.uint8(1))
        assert fastloss.get_num_threads() == 1
    finally:
        fastloss.set_num_threads(before)


def test_a_call_at_the_cap_works():
    # In a child: libgomp keeps the team's threads for the life of the process.
    # softmax_cross_entropy wakes every thread it is given, whatever the size.
    code = (
        "import numpy as np, fastloss\n"
        "fastloss.set_num_threads(fastloss.max_num_threads())\n"
        "x = np.random.default_rng(0).standard_normal((5000, 7)).astype(np.float32)\n"
        "y = np.arange(5000) % 7\n"
        "got = fastloss.softmax_cross_entropy(x, y, reduction='sum')\n"
        "fastloss.set_num_threads(1)\n"
        "want = fastloss.softmax_cross_entropy(x, y, reduction='sum')\n"
        "assert abs(float(got) - float(want)) <= 1e-3 * abs(float(want)), (got, want)\n"
        "lp = np.log(np.full((6, 40, 4), 0.25))\n"
        "fastloss.set_num_threads(fastloss.max_num_threads())\n"
        "fastloss.ctc_loss(lp, np.ones((40, 2), np.int64), [6] * 40, [2] * 40)\n"
        "print('ok')\n")
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# --- environment variables ---------------------------------------------------------------

REPORT = "import fastloss; print(fastloss.get_num_threads(), fastloss.build_info()['simd'])"


@pytest.mark.parametrize("value", ["abc", "0", "-3", "2.5", "4x", str(CAP + 1), "99999999999999999999999"])
def test_bad_num_threads_variable_warns_and_uses_default(value):
    default = run_python(REPORT, FASTLOSS_NUM_THREADS="").stdout.split()[0]
    out = run_python("import warnings; warnings.simplefilter('always'); " + REPORT, FASTLOSS_NUM_THREADS=value)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == default
    assert "RuntimeWarning" in out.stderr and "FASTLOSS_NUM_THREADS" in out.stderr and value in out.stderr


@pytest.mark.parametrize("value,want", [("3", "3"), (" 2 ", "2"), ("+1", "1")])
def test_good_num_threads_variable(value, want):
    out = run_python(REPORT, FASTLOSS_NUM_THREADS=value)
    assert out.returncode == 0 and out.stdout.split()[0] == want
    assert "Warning" not in out.stderr


def test_num_threads_variable_at_the_cap():
    out = run_python(REPORT, FASTLOSS_NUM_THREADS=str(CAP))
    assert out.stdout.split()[0] == str(CAP) and "Warning" not in out.stderr


@pytest.mark.parametrize("value", ["bogus", "AVX2", "sse4"])
def test_unknown_isa_variable_warns_and_uses_best(value):
    out = run_python(REPORT, FASTLOSS_ISA=value)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[1] == _C.best_cpu_isa()
    assert "RuntimeWarning" in out.stderr and "FASTLOSS_ISA" in out.stderr and value in out.stderr


def test_isa_variable_above_the_cpu_warns():
    levels = ["baseline", "avx2", "avx512"]
    best = _C.best_cpu_isa()
    if best == "avx512":
        pytest.skip("this CPU runs every level")
    above = levels[levels.index(best) + 1]
    out = run_python(REPORT, FASTLOSS_ISA=above)
    assert out.stdout.split()[1] == best
    assert "FASTLOSS_ISA" in out.stderr and "above" in out.stderr


def test_every_supported_isa_variable_is_taken_silently():
    levels = ["baseline", "avx2", "avx512"]
    for isa in levels[:levels.index(_C.best_cpu_isa()) + 1]:
        out = run_python(REPORT, FASTLOSS_ISA=isa)
        assert out.stdout.split()[1] == isa and "Warning" not in out.stderr


# --- ctc_loss: label_lengths arithmetic (item 3) ----------------------------------------

def ctc_inputs(T=6, N=2, C=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, N, C))
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


@pytest.mark.parametrize("lengths", [[2**62, 2**62], [2**63 - 1, 1], [1, 2**63 - 1], [3, 2]])
def test_ctc_label_lengths_sum_beyond_labels(lengths):
    """The sum overflowed int64 and passed the check, then the label check read past the
    labels (ASan: heap-buffer-overflow in check_ctc_labels_host)."""
    labels = np.array([1, 2, 3, 3])
    with pytest.raises(ValueError, match=r"label_lengths\[:\d\] sum to more than the concatenated labels hold \(4\)"):
        fastloss.ctc_loss(ctc_inputs(T=5), labels, [5, 5], lengths)


def test_ctc_label_lengths_sum_exactly_the_labels():
    got = fastloss.ctc_loss(ctc_inputs(T=5), np.array([1, 2, 3, 3]), [5, 5], [2, 2], reduction="none")
    want = fastloss.ctc_loss(ctc_inputs(T=5), np.array([[1, 2], [3, 3]]), [5, 5], [2, 2], reduction="none")
    np.testing.assert_array_equal(got, want)


STRIDE0 = """
import numpy as np, fastloss, time
lp = np.log(np.full((5, 1, 3), 1 / 3))
t0 = time.time()
{body}
assert time.time() - t0 < 20, time.time() - t0
print("ok")
"""


def run_bounded(body):
    """Runs `body` in a child with a deadline: these calls used to loop 2**62 times."""
    try:
        out = subprocess.run([sys.executable, "-c", STRIDE0.format(body=body)], capture_output=True, text=True,
                             timeout=60, env=dict(os.environ, FASTLOSS_NUM_THREADS="2"))
    except subprocess.TimeoutExpired:
        pytest.fail("ctc_loss on a broadcast label view did not finish within 60 s")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


def test_ctc_broadcast_labels_longer_than_input_are_infeasible_quickly():
    run_bounded(
        "lab = np.broadcast_to(np.int64(1), (2**40,))\n"
        "loss, g = fastloss.ctc_loss(lp, lab, [5], [2**40], reduction='none', return_grad=True)\n"
        "assert np.isinf(loss).all() and np.isnan(g).all()\n"
        "loss, g = fastloss.ctc_loss(lp, lab, [5], [2**40], reduction='none', return_grad=True, zero_infinity=True)\n"
        "assert (loss == 0).all() and (g == 0).all()\n"
        "pad = np.broadcast_to(np.int64(2), (1, 2**40))\n"
        "assert np.isinf(fastloss.ctc_loss(lp, pad, [5], [2**40])).all()\n"
        "assert np.isinf(fastloss.ctc_loss(lp, pad, [0], [2**40])).all()\n")


def test_ctc_broadcast_labels_are_checked_once():
    run_bounded(
        "import pytest\n"
        "lab = np.broadcast_to(np.int64(7), (2**40,))\n"
        "with pytest.raises(IndexError, match=r'labels\\[0\\] .* = 7 is outside'):\n"
        "    fastloss.ctc_loss(lp, lab, [5], [2**40])\n"
        "lab = np.broadcast_to(np.int64(0), (1, 2**40))\n"
        "with pytest.raises(ValueError, match='equals blank'):\n"
        "    fastloss.ctc_loss(lp, lab, [5], [2**40])\n")


def test_ctc_broadcast_labels_of_2_62():
    run_bounded(
        "import pytest\n"
        "lab = np.broadcast_to(np.int8(1), (2**62,))  # int8: NumPy refuses 2**65 bytes even as a view\n"
        "with pytest.raises(ValueError, match='label_lengths up to 4611686018427387904'):\n"
        "    fastloss.ctc_loss(lp, lab, [5], [2**62])\n")


def test_ctc_short_broadcast_labels_match_a_copy():
    x = ctc_inputs(T=7, N=3, C=4)
    lab = np.broadcast_to(np.int64(2), (3, 3))
    got = fastloss.ctc_loss(x, lab, [7, 6, 5], [3, 2, 1], reduction="none", return_grad=True)
    want = fastloss.ctc_loss(x, lab.copy(), [7, 6, 5], [3, 2, 1], reduction="none", return_grad=True)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("zero_infinity", [False, True])
def test_ctc_more_labels_than_frames_matches_torch(zero_infinity):
    """Samples with more labels than frames skip the lattice; loss and gradient are still
    PyTorch's (through log_softmax: fastloss's log_probs gradient is the true partial)."""
    torch = pytest.importorskip("torch")
    x = ctc_inputs(T=4, N=3, C=5)
    labels = np.array([[1, 2, 3, 4, 1], [1, 2, 0, 0, 0], [2, 3, 4, 1, 2]])
    il, ll = [4, 4, 2], [5, 2, 3]
    loss, grad = fastloss.ctc_loss(x, labels, il, ll, zero_infinity=zero_infinity, reduction="none",
                                   return_grad=True, from_logits=True)
    xt = torch.tensor(x, requires_grad=True)
    want = torch.nn.functional.ctc_loss(torch.log_softmax(xt, -1), torch.tensor(labels), torch.tensor(il),
                                        torch.tensor(ll), reduction="none", zero_infinity=zero_infinity)
    want.sum().backward()
    np.testing.assert_allclose(loss, want.detach().numpy(), rtol=1e-12)
    if zero_infinity:
        np.testing.assert_allclose(grad, xt.grad.numpy(), atol=1e-12)
    else:  # the feasible sample's gradient; the infeasible ones are NaN on their frames, 0 past them
        np.testing.assert_allclose(grad[:, 1], xt.grad.numpy()[:, 1], atol=1e-12)
        assert np.isnan(grad[:4, 0]).all() and np.isnan(grad[:2, 2]).all() and (grad[2:, 2] == 0).all()


def test_ctc_working_set_beyond_64_bits_is_value_error():
    # T = 2**40 frames (a broadcast view) with labels of 2**22: T * (2S+1) * N * 8 > 2**63
    lp = np.broadcast_to(np.float32(-1.0), (2**40, 1, 3))
    lab = np.ones(2**22, np.int64)
    with pytest.raises(ValueError, match="label_lengths up to 4194304 with log_probs of"):
        fastloss.ctc_loss(lp, lab, [2**40], [2**22])


def test_ctc_lengths_overflow_on_every_backend(backend):
    xp = backend.xp
    x = xp.asarray(ctc_inputs(T=5))
    with pytest.raises(ValueError, match="label_lengths"):
        fastloss.ctc_loss(x, xp.asarray(np.array([1, 2, 3, 3])), [5, 5], [2**62, 2**62])
    with pytest.raises(ValueError, match="label_lengths"):
        fastloss.ctc_loss(x, xp.asarray(np.array([1, 2, 3, 3])), [5, 5], [3, 2])


def test_ctc_broadcast_labels_on_every_backend(backend):
    xp = backend.xp
    if not hasattr(xp, "broadcast_to"):
        pytest.skip("the CuPy stand-in of tools/cuda_emu has no broadcast_to (real CuPy does)")
    x = xp.asarray(ctc_inputs(T=7, N=3, C=4))
    lab = xp.broadcast_to(xp.asarray(np.int64(2)), (3, 3))
    got = fastloss.ctc_loss(x, lab, [7, 6, 5], [3, 2, 1], reduction="none", return_grad=True)
    want = fastloss.ctc_loss(x, xp.ascontiguousarray(lab), [7, 6, 5], [3, 2, 1], reduction="none", return_grad=True)
    np.testing.assert_allclose(backend.to_numpy(got[0]), backend.to_numpy(want[0]), rtol=1e-6)
    np.testing.assert_allclose(backend.to_numpy(got[1]), backend.to_numpy(want[1]), rtol=1e-6, atol=1e-7)
    flat = xp.broadcast_to(xp.asarray(np.int64(9)), (6,))
    with pytest.raises(IndexError, match=r"labels\[0\] \(sample 0, label 0\) = 9"):
        fastloss.ctc_loss(x, flat, [7, 6, 5], [3, 2, 1])
