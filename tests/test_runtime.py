"""Package-level behaviour: version, build info, threads, SIMD dispatch, CUDA detection."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastloss
from fastloss import _C


def test_version_and_build_info():
    assert fastloss.__version__ == "0.1.0"
    info = fastloss.build_info()
    for key in ("compiler", "simd", "openmp", "cuda", "cuda_version", "num_threads", "cuda_available"):
        assert key in info
    assert info["simd"] in ("avx512", "avx2", "baseline")
    assert info["cuda_available"] == fastloss.cuda_available()
    if info["cuda"]:
        assert info["cuda_version"] and info["cuda_architectures"]
    else:
        assert info["cuda_version"] is None


def test_cuda_available_tells_the_truth():
    """Compiled with CUDA *and* a device present: no device here means False, and importing
    (which links the CUDA runtime statically) must not have failed."""
    assert fastloss.cuda_available() == (_C.cuda_compiled() and _C.cuda_device_count() > 0)


def test_set_num_threads_validation():
    with pytest.raises(ValueError, match="n must be"):
        fastloss.set_num_threads(-2)
    with pytest.raises(TypeError):
        fastloss.set_num_threads(1.5)
    before = fastloss.get_num_threads()
    fastloss.set_num_threads(3)
    assert fastloss.get_num_threads() == 3
    fastloss.set_num_threads(before)


def test_environment_variables_are_read_at_import():
    code = ("import fastloss; print(fastloss.get_num_threads(), fastloss.build_info()['simd'])")
    env = dict(os.environ, FASTLOSS_NUM_THREADS="3", FASTLOSS_ISA="baseline")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["3", "baseline"]


def test_every_simd_level_gives_close_results(isa):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 333)).astype(np.float32) * 5
    y = rng.integers(0, 333, 50)
    _C.set_cpu_isa("baseline")
    want = fastloss.softmax_cross_entropy(x, y, return_grad=True, reduction="none")
    _C.set_cpu_isa(isa)
    got = fastloss.softmax_cross_entropy(x, y, return_grad=True, reduction="none")
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-9)


def test_set_cpu_isa_rejects_unknown_level():
    with pytest.raises(ValueError, match="isa"):
        _C.set_cpu_isa("sse9")


def test_unsupported_array_types():
    class Weird:
        pass

    with pytest.raises(TypeError, match="logits"):
        fastloss.softmax_cross_entropy(Weird(), [0])


@pytest.mark.parametrize("module", ["cross_entropy", "ctc", "edit_distance"])
def test_docstring_examples(module):
    import doctest
    import importlib

    mod = importlib.import_module(f"fastloss.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
