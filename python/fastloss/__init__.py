"""fastloss: fast loss functions and their gradients for NumPy (CPU) and CuPy (CUDA).

Every loss takes ``return_grad=False``; with ``True`` it returns ``(loss, grad)`` computed in
the same fused pass. Each function's docstring has its formula and an example; the API
reference, with the rules every function follows (dtypes, strides, reductions, errors,
threads), is the ``docs/`` folder of the repository: ``docs/README.md`` is its index.
"""
from __future__ import annotations

from . import _C
from .cross_entropy import nll_loss, softmax_cross_entropy
from .edit_distance import edit_distance, error_rate, pairwise_edit_distance
from .ctc import ctc_loss

__version__ = "0.1.0"

__all__ = [
    "__version__", "build_info", "cuda_available", "get_num_threads", "set_num_threads",
    "softmax_cross_entropy", "nll_loss",
    "edit_distance", "pairwise_edit_distance", "error_rate",
    "ctc_loss",
]


def set_num_threads(n: int) -> None:
    """Threads used by the CPU kernels (default: all cores, or ``FASTLOSS_NUM_THREADS``)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {n!r}")
    _C.set_num_threads(n)


def get_num_threads() -> int:
    """Threads the CPU kernels use."""
    return _C.get_num_threads()


def cuda_available() -> bool:
    """True when fastloss was compiled with CUDA *and* a CUDA device is present."""
    return bool(_C.cuda_compiled() and _C.cuda_device_count() > 0)


def build_info() -> dict:
    """Compiler, CUDA version and architectures, SIMD level in use, OpenMP, threads."""
    info = dict(_C.build_info())
    info["version"] = __version__
    info["cuda_available"] = cuda_available()
    return info
