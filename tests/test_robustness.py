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
