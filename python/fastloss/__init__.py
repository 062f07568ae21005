"""fastloss: fast loss functions and their gradients for NumPy (CPU) and CuPy (CUDA).

Every loss takes ``return_grad=False``; with ``True`` it returns ``(loss, grad)`` computed in
the same fused pass. Each function's docstring has its formula and an example; the API
reference, with the rules every function follows (dtypes, strides, reductions, errors,
threads), is the ``docs/`` folder of the repository: ``docs/README.md`` is its index.
"""
from __future__ import annotations

from . import _C
from .cross_entropy import nll_loss, softmax_cross_entropy
from .edit_distance import (AlignmentChunk, ErrorCounts, edit_distance, edit_ops, error_counts, error_rate,
                            pairwise_edit_distance, visualize_alignment)
from .ctc import ctc_loss
from .elementwise import (balanced_sigmoid_cross_entropy, huber_loss, hinge_loss, kl_div, l1_loss, log_cosh_loss,
                          mse_loss, sigmoid_cross_entropy, sigmoid_focal_loss, smooth_l1_loss,
                          truncated_sigmoid_cross_entropy)
from .rowwise import (entropy, js_divergence, kl_divergence, multiclass_hinge_loss, softmax_focal_loss,
                      truncated_cross_entropy)
from .rowwise import dice_loss, l2_loss
from .rowwise import bi_tempered_binary_logistic_loss, bi_tempered_logistic_loss, tempered_softmax
from .metric import center_loss, large_margin_softmax_loss, update_centers
from .linear_cross_entropy import linear_cross_entropy

__version__ = "0.1.0"

# FASTLOSS_NUM_THREADS / FASTLOSS_ISA values the native module could not use (it fell back to
# the default): tell the user once, at import.
for _message in _C.environment_warnings():
    import warnings

    warnings.warn(_message, RuntimeWarning, stacklevel=2)

__all__ = [
    "__version__", "build_info", "cuda_available", "get_num_threads", "set_num_threads", "max_num_threads",
    "softmax_cross_entropy", "nll_loss",
    "edit_distance", "pairwise_edit_distance", "edit_ops", "error_rate", "error_counts", "ErrorCounts",
    "AlignmentChunk", "visualize_alignment",
    "ctc_loss",
    "sigmoid_cross_entropy", "balanced_sigmoid_cross_entropy", "sigmoid_focal_loss",
    "truncated_sigmoid_cross_entropy", "hinge_loss", "kl_div",
    "mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "log_cosh_loss",
    "softmax_focal_loss", "truncated_cross_entropy", "entropy", "kl_divergence", "js_divergence",
    "multiclass_hinge_loss",
    "l2_loss", "dice_loss",
    "tempered_softmax", "bi_tempered_logistic_loss", "bi_tempered_binary_logistic_loss",
    "large_margin_softmax_loss", "center_loss", "update_centers",
    "linear_cross_entropy",
]


def set_num_threads(n: int) -> None:
    """Threads used by the CPU kernels (default: all cores, or ``FASTLOSS_NUM_THREADS``).

    ``n`` is an integer in ``[1, max_num_threads()]``: 1024, or the processor count on a
    machine with more (more threads than hardware threads never help a kernel). Outside that
    range: ``ValueError``; a bool, float or other non-integer: ``TypeError``. An invalid
    ``FASTLOSS_NUM_THREADS`` warns at import and leaves the default.

    Example:
        >>> import fastloss
        >>> before = fastloss.get_num_threads()
        >>> fastloss.set_num_threads(2); fastloss.get_num_threads()
        2
        >>> fastloss.set_num_threads(before)
    """
    _C.set_num_threads(n)


def max_num_threads() -> int:
    """The largest value ``set_num_threads`` accepts (1024, or the processor count if larger)."""
    return _C.max_num_threads()


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
