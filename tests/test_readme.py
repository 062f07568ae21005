"""The README is true: its Python blocks run top to bottom in one namespace, as a reader pastes
them, and CI runs the README's test command."""
import pathlib
import re

import pytest

from conftest import _cupy_or_reason

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(lang):
    return re.findall(r"^```" + lang + r"\n(.*?)^```", README, flags=re.S | re.M)


def uses_cupy(code):
    return re.search(r"^\s*import cupy", code, re.M) is not None


def run(codes):
    namespace = {"__name__": "readme"}
    for k, code in codes:
        exec(compile(code, f"README.md (python block {k + 1})", "exec"), namespace)
    return namespace


def test_numpy_blocks_run_top_to_bottom():
    run([(k, c) for k, c in enumerate(blocks("python")) if not uses_cupy(c)])


def test_gpu_block_runs_after_the_others():
    """The CuPy block uses the arrays the blocks before it made: it must still find them intact.
    On a GPU machine only: the name keeps it out of the emulator's selection (tools/cuda_emu runs
    "TestCuda or cupy"), where a (1024, 32000) call is slow and adds nothing to the kernels'
    own TestCuda cases."""
    codes = list(enumerate(blocks("python")))
    assert any(uses_cupy(c) for _, c in codes)
    cp, reason = _cupy_or_reason()
    if cp is None:
        pytest.skip(f"the README's CuPy block needs a GPU; {reason}")
    run(codes)


def test_ci_runs_the_readme_test_command():
    commands = [line for b in blocks("bash") for line in b.splitlines() if "pytest" in line]
    assert len(commands) == 1, commands
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert commands[0] in ci, f".ci/run does not run the README's test command: {commands[0]}"


def test_main_job_command_installs_what_it_compares_against():
    commands = [line for b in blocks("bash") for line in b.splitlines() if "bench/main.py" in line]
    assert len(commands) == 1 and '".[bench]"' in commands[0], commands
