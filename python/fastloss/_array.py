"""The array layer: one place that turns user inputs into kernel arguments.

NumPy arrays (and Python lists/scalars) run on the CPU kernels; CuPy arrays run on the CUDA
kernels on CuPy's current device and stream. Kernels receive *descriptors*
``(data_pointer, dtype_name, shape, strides_in_bytes)``, so any strides (transposed, sliced,
negative) reach C++ without a copy.
"""
from __future__ import annotations

import sys

import numpy as np

from . import _C

FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
REDUCTIONS = ("mean", "sum", "none")


def _cupy():
    return sys.modules.get("cupy")


def is_cupy(x) -> bool:
    cp = _cupy()
    return cp is not None and isinstance(x, cp.ndarray)


class Backend:
    """Where a call runs: ``xp`` is numpy or cupy; ``cuda`` tells the kernels which side."""

    def __init__(self, xp, cuda: bool, device=None):
        self.xp = xp
        self.cuda = cuda
        self.device = device

    def stream(self) -> int:
        return _cupy().cuda.get_current_stream().ptr if self.cuda else 0

    def empty(self, shape, dtype):
        return self.xp.empty(shape, dtype=dtype)

    def workspace(self, nbytes: int):
        return self.xp.empty(max(int(nbytes), 8), dtype=np.uint8) if self.cuda else None


def backend_of(**arrays) -> Backend:
    """The backend of the array arguments (None entries ignored). Mixing NumPy and CuPy
    arrays is a TypeError naming both arguments; anything that is not a CuPy array is treated
    as NumPy input (lists and scalars included)."""
    numpy_names, cupy_names = [], []
    for name, a in arrays.items():
        if a is None:
            continue
        if is_cupy(a):
            cupy_names.append(name)
        elif isinstance(a, np.ndarray) or np.isscalar(a) or isinstance(a, (list, tuple)):
            numpy_names.append(name)
        elif hasattr(a, "__cuda_array_interface__"):
            raise TypeError(f"{name}: only NumPy and CuPy arrays are supported, got {type(a).__name__} "
                            "(wrap GPU arrays with cupy.asarray)")
        elif hasattr(a, "__array__") or hasattr(a, "__array_interface__"):
            numpy_names.append(name)
        else:
            raise TypeError(f"{name}: expected a NumPy or CuPy array, got {type(a).__name__}")
    if cupy_names and any(isinstance(arrays[n], np.ndarray) for n in numpy_names):
        mixed = [n for n in numpy_names if isinstance(arrays[n], np.ndarray)]
        raise TypeError(f"cannot mix CuPy arrays ({', '.join(cupy_names)}) with NumPy arrays "
                        f"({', '.join(mixed)}) in one call")
    if cupy_names:
        if not _C.cuda_compiled():
            raise TypeError(f"{cupy_names[0]} is a CuPy array but this fastloss build has no CUDA "
                            "kernels (rebuild with nvcc available)")
        cp = _cupy()
        devices = {arrays[n].device.id for n in cupy_names}
        if len(devices) > 1:
            raise ValueError(f"CuPy arrays on different devices: {sorted(devices)}")
        return Backend(cp, True, cp.cuda.Device(devices.pop()))
    return Backend(np, False)


def as_float_array(x, name: str, backend: Backend):
    """x as an array of the backend with a float dtype (float16/32/64); integer arrays are
    a TypeError, Python numbers and lists become float64."""
    xp = backend.xp
    if not isinstance(x, xp.ndarray):
        arr = np.asarray(x)
        if arr.dtype.kind in "iub" and not isinstance(x, np.ndarray):
            arr = arr.astype(np.float64)
        x = arr if xp is np else xp.asarray(arr)
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float16, float32 or float64, got {x.dtype}")
    return _native(x, name)


def as_index_array(x, name: str, backend: Backend):
    """x as an integer array of the backend (any integer dtype; bool is rejected)."""
    xp = backend.xp
    if not isinstance(x, xp.ndarray):
        x = np.asarray(x)
        x = x if xp is np else xp.asarray(x)
    if x.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array, got {x.dtype}")
    return _native(x, name)


def _native(x, name):
    if x.dtype.byteorder not in "=|" and x.dtype.itemsize > 1:
        x = x.astype(x.dtype.newbyteorder("="))
    if isinstance(x, np.ndarray) and not x.flags.aligned:
        x = np.ascontiguousarray(x)
    return x


def desc(x):
    """Descriptor tuple for the kernels (None passes through)."""
    if x is None:
        return None
    if isinstance(x, np.ndarray):
        ptr = x.__array_interface__["data"][0]
    else:
        ptr = x.data.ptr
    return (ptr, x.dtype.name, x.shape, x.strides)


def check_reduction(reduction, allowed=REDUCTIONS):
    if reduction not in allowed:
        raise ValueError(f"reduction must be one of {', '.join(repr(r) for r in allowed)}, got {reduction!r}")


def check_grad_out(grad_out, like, backend: Backend):
    """Validates a preallocated gradient buffer: same library, shape, dtype; writable; no
    overlapping elements (a broadcast view would make the result depend on write order)."""
    if grad_out is None:
        return backend.empty(like.shape, like.dtype)
    if is_cupy(grad_out) != backend.cuda or not isinstance(grad_out, backend.xp.ndarray):
        raise TypeError(f"grad_out must be a {'CuPy' if backend.cuda else 'NumPy'} array like the inputs, "
                        f"got {type(grad_out).__name__}")
    if grad_out.shape != like.shape:
        raise ValueError(f"grad_out must have shape {like.shape}, got {grad_out.shape}")
    if grad_out.dtype != like.dtype:
        raise TypeError(f"grad_out must have dtype {like.dtype}, got {grad_out.dtype}")
    if not backend.cuda and not grad_out.flags.writeable:
        raise ValueError("grad_out is read-only")
    if any(s == 0 and n > 1 for s, n in zip(grad_out.strides, grad_out.shape)):
        raise ValueError("grad_out must not be a broadcast view (it has a zero stride)")
    return grad_out

