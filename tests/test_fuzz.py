"""The fuzz harness (tools/fuzz.py, table in fuzz_specs.py): every public function listed, a short
run clean, and the harness's own crash path. The long run: `python3 tools/fuzz.py --seconds 600`."""
import os
import subprocess
import sys

import pytest

import fastloss

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FUZZ = os.path.join(ROOT, "tools", "fuzz.py")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fuzz_specs import NOT_FUZZED, SPECS  # noqa: E402


def run_fuzz(*args, env=None, timeout=600):
    full = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, FUZZ, *args], capture_output=True, text=True, timeout=timeout, env=full)


def test_every_public_function_has_a_fuzz_spec():
    public = [n for n in fastloss.__all__ if n not in NOT_FUZZED and callable(getattr(fastloss, n, None))]
    missing = [n for n in public if n not in SPECS]
    assert not missing, f"add an entry to tests/fuzz_specs.py for {missing}"


def test_short_fuzz_run_is_clean():
    seconds = os.environ.get("FASTLOSS_FUZZ_PYTEST_SECONDS", "20")
    out = run_fuzz("--seconds", seconds, "--seed", "7")
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    assert " 0 failures" in out.stdout


def test_a_crash_fails_the_run_with_its_seed_and_replay():
    out = run_fuzz("--seconds", "10", "--seed", "3", "--only", "get_num_threads",
                   env={"FASTLOSS_FUZZ_SELFTEST_CRASH": "5"})
    assert out.returncode == 1
    assert "crash (SIGSEGV)" in out.stdout
    assert "case (seed 3, index 4)" in out.stdout and "replay: " in out.stdout


def test_replay_runs_one_case():
    case = ('{"f": "ctc_loss", "form": 1, "dims": {"N": 2, "M": 1, "C": 5, "D": 1, "T": 5, "S": 1, "L": 4, '
            '"La": 1, "Lb": 1}, "args": {"log_probs": {"shape": [5, 2, 5], "dtype": "<f4", "layout": "c", '
            '"mode": "normal", "seed": 1, "as": "array"}, "labels": {"shape": [4], "dtype": "<i8", "layout": "c", '
            '"mode": "valid", "seed": 2, "as": "array"}, "input_lengths": {"literal": [5, 5]}, '
            '"label_lengths": {"literal": [4611686018427387904, 4611686018427387904]}}}')
    out = run_fuzz("--replay", case, env={"PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(fastloss.__file__)))})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ctc_loss(" in out.stdout


@pytest.mark.parametrize("name", sorted(SPECS))
def test_spec_builds(name):
    """Each entry's kinds draw and build (a harness bug shows here, not as a fuzz failure)."""
    from hypothesis import HealthCheck, given, settings

    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import fuzz

    if not hasattr(fastloss, name):
        pytest.skip(f"fastloss.{name} is not in this build yet")

    @settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(fuzz.case_strategy([name]))
    def check(case):
        fuzz.build(case)

    check()
