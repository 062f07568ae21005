"""A fake CuPy for the CUDA-emulation harness: host NumPy arrays dressed as device arrays."""
import numpy as np


class _Dev:
    id = 0


class _Data:
    def __init__(self, a):
        self.ptr = a.__array_interface__["data"][0]


class ndarray(np.ndarray):
    @property
    def device(self):
        return _Dev()

    @property
    def data(self):
        return _Data(self)

    def get(self):
        return np.array(self.view(np.ndarray))


def _wrap(a):
    return np.asarray(a).view(ndarray)


def asarray(a, dtype=None):
    if isinstance(a, ndarray) and dtype is None:
        return a
    return _wrap(np.array(a.view(np.ndarray) if isinstance(a, ndarray) else a, dtype=dtype))


def empty(shape, dtype=np.float64):
    return _wrap(np.full(shape, np.nan, dtype=dtype) if np.dtype(dtype).kind == "f" else np.empty(shape, dtype))


def empty_like(a, dtype=None, order="K"):
    return empty(a.shape, dtype or a.dtype)


def full(shape, fill_value, dtype=None):
    return _wrap(np.full(shape, fill_value, dtype))


def shares_memory(a, b, max_work=None):
    return bool(np.shares_memory(a, b))


def may_share_memory(a, b, max_work=None):
    return bool(np.may_share_memory(a, b))


def zeros(shape, dtype=np.float64):
    return _wrap(np.zeros(shape, dtype))


def asnumpy(a):
    return a.get()


class _Stream:
    ptr = 0


class _Device:
    def __init__(self, i=0):
        self.id = i

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def synchronize(self):
        pass


class _Event:
    def record(self):
        import time
        self.t = time.perf_counter()

    def synchronize(self):
        pass


class _Runtime:
    @staticmethod
    def getDeviceProperties(i):
        return {"name": b"emulated GPU (CPU threads)"}


class cuda:
    Device = _Device
    Event = _Event
    runtime = _Runtime

    @staticmethod
    def get_current_stream():
        return _Stream()

    @staticmethod
    def get_elapsed_time(start, end):
        return (end.t - start.t) * 1e3


class random:
    _rng = np.random.default_rng(0)

    @staticmethod
    def standard_normal(shape, dtype=np.float64):
        return _wrap(random._rng.standard_normal(shape).astype(dtype))

    @staticmethod
    def randint(low, high, size=None):
        return _wrap(random._rng.integers(low, high, size))


def copyto(dst, src):
    np.copyto(dst, src)


dtype = np.dtype

# NumPy's ufuncs and matmul keep the subclass, so they serve as CuPy's (linear_cross_entropy's
# products and softcap run through these).
from numpy import add, divide, matmul, multiply, subtract, tanh  # noqa: E402,F401


from numpy import (bool_, float16, float32, float64, int8, int16, int32, int64,  # noqa: E402,F401
                   uint8, uint16, uint32, uint64)
