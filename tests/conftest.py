"""Shared test fixtures: the array backends (NumPy always; CuPy when a GPU is present) and
SIMD levels."""
import numpy as np
import pytest

import fastloss
from fastloss import _C


def _cupy_or_reason():
    if not fastloss.cuda_available():
        why = "no CUDA device on this machine" if _C.cuda_compiled() else "this fastloss build has no CUDA kernels"
        return None, f"CUDA case: {why}"
    try:
        import cupy
    except Exception as e:  # pragma: no cover - depends on the machine
        return None, f"CUDA case: a GPU is present but CuPy is not installed ({type(e).__name__})"
    return cupy, None


def cupy_or_skip():
    """CuPy for a CUDA test case, or a skip with the reason (one rule for every case)."""
    cp, reason = _cupy_or_reason()
    if cp is None:
        pytest.skip(reason)
    return cp


class Backend:
    def __init__(self, name, xp):
        self.name, self.xp = name, xp

    def asarray(self, a):
        return None if a is None else self.xp.asarray(a)

    def to_numpy(self, a):
        if a is None:
            return None
        return a.get() if hasattr(a, "get") else np.asarray(a)

    def __repr__(self):
        return self.name


@pytest.fixture(params=["numpy", "cupy"])
def backend(request):
    if request.param == "numpy":
        return Backend("numpy", np)
    return Backend("cupy", cupy_or_skip())


SUPPORTED_ISAS = [isa for isa in ("avx512", "avx2", "baseline")
                  if ["baseline", "avx2", "avx512"].index(isa) <= ["baseline", "avx2", "avx512"].index(_C.best_cpu_isa())]


@pytest.fixture(params=SUPPORTED_ISAS)
def isa(request):
    """Runs a test under each SIMD level this CPU supports (levels it lacks cannot run here)."""
    before = _C.get_cpu_isa()
    _C.set_cpu_isa(request.param)
    yield request.param
    _C.set_cpu_isa(before)
