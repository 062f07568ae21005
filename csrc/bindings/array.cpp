// The array layer (array.h): NumPy arrays read through NumPy's C structures (no attribute
// lookups on the common path), CuPy arrays through their attributes, everything else through
// np.asarray. Conversions happen only where a kernel could not read the data as it is.
#include "array.h"

#include <pybind11/numpy.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <string>

#include "fastloss/errors.h"

namespace fastloss {
namespace {

namespace pyd = py::detail;

pyd::npy_api& npy() { return pyd::npy_api::get(); }

bool is_numpy(PyObject* o) { return npy().PyArray_Check_(o); }

int64_t PyArray_Size_(PyObject* o) {
  const auto* a = pyd::array_proxy(o);
  int64_t n = 1;
  for (int i = 0; i < a->nd; ++i) n *= a->dimensions[i];
  return n;
}

// The cupy module when the user imported it (fastloss never imports it itself).
PyObject* cupy_module() { return PyDict_GetItemString(PyImport_GetModuleDict(), "cupy"); }

bool is_cupy(PyObject* o) {
  if (Py_TYPE(o) == reinterpret_cast<PyTypeObject*>(npy().PyArray_Type_)) return false;  // plain NumPy: the common case
  PyObject* cp = cupy_module();
  if (!cp) return false;
  PyObject* nd = PyObject_GetAttrString(cp, "ndarray");
  if (!nd) { PyErr_Clear(); return false; }
  const int r = PyType_Check(nd) ? PyObject_IsInstance(o, nd) : 0;
  Py_DECREF(nd);
  if (r < 0) { PyErr_Clear(); return false; }
  return r == 1;
}


py::module_ cupy() { return py::reinterpret_borrow<py::module_>(cupy_module()); }

// NumPy type numbers (stable ABI values) to kernel dtypes; int64 is C long on LP64 Linux.
bool dtype_of_typenum(int num, DType* d) {
  switch (num) {
    case 0: *d = DType::b1; return true;
    case 1: *d = DType::i8; return true;
    case 2: *d = DType::u8; return true;
    case 3: *d = DType::i16; return true;
    case 4: *d = DType::u16; return true;
    case 5: *d = DType::i32; return true;
    case 6: *d = DType::u32; return true;
    case 7: case 9: *d = sizeof(long) == 8 || num == 9 ? DType::i64 : DType::i32; return true;
    case 8: case 10: *d = sizeof(long) == 8 || num == 10 ? DType::u64 : DType::u32; return true;
    case 11: *d = DType::f32; return true;
    case 12: *d = DType::f64; return true;
    case 23: *d = DType::f16; return true;
    default: return false;
  }
}

int typenum_of(DType d) {
  switch (d) {
    case DType::b1: return 0;
    case DType::i8: return 1;
    case DType::u8: return 2;
    case DType::i16: return 3;
    case DType::u16: return 4;
    case DType::i32: return 5;
    case DType::u32: return 6;
    case DType::i64: return 9;
    case DType::u64: return 10;
    case DType::f32: return 11;
    case DType::f64: return 12;
    case DType::f16: return 23;
  }
  return 12;
}

py::dtype np_dtype(DType d) { return py::dtype(typenum_of(d)); }

std::string type_name(py::handle x) { return Py_TYPE(x.ptr())->tp_name; }

// A dtype's name as NumPy prints it ("float32", ">f4", "<U3"), for messages.
std::string dtype_str(py::handle dt) {
  const py::dtype d = py::reinterpret_borrow<py::dtype>(dt);
  const char bo = d.byteorder();
  if (bo == '>' || (bo == '<' && !PY_LITTLE_ENDIAN)) return py::str(d.attr("str")).cast<std::string>();
  return py::str(d.attr("name")).cast<std::string>();
}

[[noreturn]] void wrong_dtype(const char* name, int want, const std::string& got) {
  if (want == 0 || want == 3) throw_type(std::string(name) + " must be float16, float32 or float64, got " + got);
  if (want == 1) throw_type(std::string(name) + " must be an integer array, got " + got);
  throw_type(std::string(name) + " must be integer class indices or float probabilities, got " + got);
}

// want: 0 float, 1 index, 2 either, 3 float value (a weight or target: converted from ints).
bool kind_ok(DType d, int want) {
  if (d == DType::b1) return false;
  if (want == 3) return is_float(d);
  return want == 2 || (want == 0) == is_float(d);
}

// Integer and bool arrays where a float weight or target is read, and bool arrays where
// either kind is (masks, one-hot targets), are converted to float64, as lists of them are.
bool to_float(DType d, int want) { return (want == 3 && !is_float(d)) || (want == 2 && d == DType::b1); }

// Memory a view may touch, [lo, hi) in bytes; empty for size-0 views.
struct Extent { uintptr_t lo = 0, hi = 0; };
Extent extent_of(const TensorView& v) {
  Extent e;
  if (v.numel() == 0 || !v.data) return e;
  const int64_t item = dtype_size(v.dtype);
  int64_t lo = 0, hi = 0;
  for (int i = 0; i < v.ndim; ++i) {
    const int64_t span = v.strides[i] * (v.shape[i] - 1);
    (span < 0 ? lo : hi) += span;
  }
  e.lo = reinterpret_cast<uintptr_t>(v.data) + lo * item;
  e.hi = reinterpret_cast<uintptr_t>(v.data) + hi * item + item;
  return e;
}

bool same_view(const TensorView& a, const TensorView& b) {
  if (a.data != b.data || a.dtype != b.dtype || a.ndim != b.ndim) return false;
  for (int i = 0; i < a.ndim; ++i)
    if (a.shape[i] != b.shape[i] || (a.shape[i] > 1 && a.strides[i] != b.strides[i])) return false;
  return true;
}

void set_dims(TensorView& v, int ndim, const char* name) {
  if (ndim > kMaxDims)
    throw_value(std::string(name) + " has " + std::to_string(ndim) + " dimensions; at most " +
                std::to_string(kMaxDims) + " are supported");
  v.ndim = ndim;
}

// A NumPy array's view, or false when a kernel could not read it in place (byte order,
// alignment, strides that are not whole items): the caller copies it first.
bool numpy_view(PyObject* o, const char* name, TensorView* v, std::string* bad_dtype) {
  auto* a = pyd::array_proxy(o);
  auto* d = pyd::array_descriptor_proxy(a->descr);
  if (!dtype_of_typenum(d->type_num, &v->dtype)) {
    *bad_dtype = dtype_str(a->descr);
    return true;
  }
  if (d->byteorder == (PY_LITTLE_ENDIAN ? '>' : '<')) return false;
  if (!(a->flags & pyd::npy_api::NPY_ARRAY_ALIGNED_)) return false;
  set_dims(*v, a->nd, name);
  const int64_t item = dtype_size(v->dtype);
  for (int i = 0; i < a->nd; ++i) {
    v->shape[i] = a->dimensions[i];
    if (a->strides[i] % item) return false;
    v->strides[i] = a->strides[i] / item;
  }
  v->data = a->data;
  return true;
}

// Two NumPy arrays over the same elements in the same order (the same object, or equal views).
bool same_numpy_array(PyObject* a, PyObject* b) {
  if (a == b) return true;
  const auto *x = pyd::array_proxy(a), *y = pyd::array_proxy(b);
  if (x->data != y->data || x->nd != y->nd) return false;
  for (int i = 0; i < x->nd; ++i)
    if (x->dimensions[i] != y->dimensions[i] || (x->dimensions[i] > 1 && x->strides[i] != y->strides[i])) return false;
  return true;
}

// NumPy's copy of `o`: C-ordered, aligned, native byte order, same shape (0-d stays 0-d).
py::object native_copy(py::handle o) {
  py::object dt = o.attr("dtype").attr("newbyteorder")("=");
  return numpy_module().attr("array")(o, py::arg("dtype") = dt, py::arg("order") = "C", py::arg("copy") = true);
}

}  // namespace

py::module_& numpy_module() {
  static py::module_* np = new py::module_(py::module_::import("numpy"));  // never freed: lives with the process
  return *np;
}

bool is_cupy_array(py::handle x) { return is_cupy(x.ptr()); }

namespace {
thread_local Call* current_call = nullptr;  // the innermost Call alive on this thread

// The library an object with __dlpack__ belongs to: the top package of its type ("torch";
// JAX arrays are jaxlib's type, named "jax" here).
std::string dlpack_library(PyObject* o) {
  py::object mod = py::type::handle_of(py::handle(o)).attr("__module__");
  std::string m = py::str(mod).cast<std::string>();
  m = m.substr(0, m.find('.'));
  return m == "jaxlib" ? "jax" : m;
}
}  // namespace

Call::Call(std::initializer_list<std::pair<const char*, py::handle>> arrays) {
  prev_ = current_call;
  current_call = this;
  try {
    init(arrays);
  } catch (...) {
    current_call = prev_;
    throw;
  }
}

void Call::init(std::initializer_list<std::pair<const char*, py::handle>> arrays) {
  std::string numpy_names, cupy_names, dlpack_names, lib;
  const char* first_cupy = nullptr;
  int device_type = 0;
  int64_t device_id = 0;
  for (const auto& [name, h] : arrays) {
    if (!h || h.is_none()) continue;
    PyObject* o = h.ptr();
    if (is_cupy(o)) {
      cupy_names += (cupy_names.empty() ? "" : ", ") + std::string(name);
      if (!first_cupy) first_cupy = name;
    } else if (is_numpy(o)) {
      numpy_names += (numpy_names.empty() ? "" : ", ") + std::string(name);
    } else if (PyObject_HasAttrString(o, "__dlpack__") && PyObject_HasAttrString(o, "__dlpack_device__")) {
      // A tensor in an autograd graph cannot be exported (and fastloss would cut the graph).
      if (PyObject_HasAttrString(o, "requires_grad") && h.attr("requires_grad").cast<bool>())
        throw_type(std::string(name) + " requires grad: the fastloss functions read arrays, not autograd graphs; use "
                   "fastloss.torch's function of the same name for a differentiable loss, or pass " + name +
                   ".detach()");
      const std::string l = dlpack_library(o);
      if (!lib.empty() && l != lib)
        throw_type("cannot mix " + lib + " arrays (" + dlpack_names + ") with " + l + " arrays (" + name +
                   ") in one call");
      const py::tuple dev = h.attr("__dlpack_device__")();
      const int t = dev[0].cast<int>();
      const int64_t id = dev[1].cast<int64_t>();
      if (!dlpack_names.empty() && (t != device_type || id != device_id))
        throw_value(lib + " arrays on different devices (" + dlpack_names + " and " + name + ")");
      lib = l;
      device_type = t;
      device_id = id;
      dlpack_names += (dlpack_names.empty() ? "" : ", ") + std::string(name);
    } else if (PyObject_HasAttrString(o, "__cuda_array_interface__")) {
      throw_type(std::string(name) + ": only NumPy and CuPy arrays are supported, got " + type_name(h) +
                 " (wrap GPU arrays with cupy.asarray)");
    } else if (!(PyList_Check(o) || PyTuple_Check(o) || PyLong_Check(o) || PyFloat_Check(o) || PyBool_Check(o) ||
                 PyUnicode_Check(o) || PyBytes_Check(o) || PyComplex_Check(o) ||
                 PyObject_HasAttrString(o, "__array__") || PyObject_HasAttrString(o, "__array_interface__") ||
                 PyObject_HasAttrString(o, "dtype"))) {
      throw_type(std::string(name) + ": expected a NumPy or CuPy array, got " + type_name(h));
    }
  }
  if (!lib.empty()) {
    const std::string other = !numpy_names.empty() ? "NumPy arrays (" + numpy_names + ")"
                                                   : "CuPy arrays (" + cupy_names + ")";
    if (!numpy_names.empty() || !cupy_names.empty())
      throw_type("cannot mix " + lib + " arrays (" + dlpack_names + ") with " + other + " in one call");
    init_dlpack(arrays, lib, device_type, device_id);
    return;
  }
  if (!first_cupy) return;
  if (!numpy_names.empty())
    throw_type("cannot mix CuPy arrays (" + cupy_names + ") with NumPy arrays (" + numpy_names + ") in one call");
#ifndef FASTLOSS_WITH_CUDA
  throw_type(std::string(first_cupy) + " is a CuPy array but this fastloss build has no CUDA kernels (rebuild with nvcc "
             "available)");
#else
  int64_t device = -1;
  for (const auto& [name, h] : arrays) {
    if (!h || h.is_none() || !is_cupy(h.ptr())) continue;
    const int64_t id = h.attr("device").attr("id").cast<int64_t>();
    if (device >= 0 && id != device)
      throw_value("CuPy arrays on different devices: " + std::to_string(device) + " and " + std::to_string(id) +
                  " (" + name + ")");
    device = id;
  }
  cuda_ = true;
  py::module_ cp = cupy();
  device_ = cp.attr("cuda").attr("Device")(device);
  device_.attr("__enter__")();
  stream_ = reinterpret_cast<void*>(cp.attr("cuda").attr("get_current_stream")().attr("ptr").cast<uintptr_t>());
#endif
}

// DLPack callers. CPU (kDLCPU = 1, kDLCUDAHost = 3): NumPy views; CUDA (kDLCUDA = 2,
// kDLCUDAManaged = 13): CuPy views on that device, with the CuPy set-up of a CuPy call.
void Call::init_dlpack(std::initializer_list<std::pair<const char*, py::handle>> arrays, const std::string& lib,
                       int device_type, int64_t device_id) {
  py::module_ mod = py::module_::import(lib == "jax" ? "jax.numpy" : lib.c_str());
  if (!py::hasattr(mod, "from_dlpack"))
    throw_type(lib + " arrays are not supported: " + lib + " has no from_dlpack to return the results with");
  lib_ = mod;
  if (device_type == 1 || device_type == 3) return;
  const char* first = "input";
  for (const auto& a : arrays)
    if (a.second && !a.second.is_none()) { first = a.first; break; }
  if (device_type != 2 && device_type != 13)
    throw_type(std::string(first) + ": " + lib + " arrays on DLPack device type " + std::to_string(device_type) +
               " are not supported (CPU and CUDA are)");
#ifndef FASTLOSS_WITH_CUDA
  static_cast<void>(device_id);
  throw_type(std::string(first) + " is a CUDA " + lib + " array but this fastloss build has no CUDA kernels (rebuild "
             "with nvcc available, or move it to the CPU)");
#else
  if (!cupy_module()) {
    try {
      py::module_::import("cupy");
    } catch (py::error_already_set&) {
      throw_type(std::string(first) + " is a CUDA " + lib + " array: fastloss reads CUDA memory through CuPy, which "
                 "is not installed (pip install cupy-cuda13x)");
    }
  }
  cuda_ = true;
  py::module_ cp = cupy();
  device_ = cp.attr("cuda").attr("Device")(device_id);
  device_.attr("__enter__")();
  stream_ = reinterpret_cast<void*>(cp.attr("cuda").attr("get_current_stream")().attr("ptr").cast<uintptr_t>());
#endif
}

py::object Call::native(py::handle x, const char* name) {
  py::object obj = py::reinterpret_borrow<py::object>(x);
  if (!lib_ || is_numpy(x.ptr()) || is_cupy(x.ptr()) || !PyObject_HasAttrString(x.ptr(), "__dlpack__")) return obj;
  const std::string dt = py::str(obj.attr("dtype")).cast<std::string>();
  if (dt == "torch.bfloat16" || dt == "bfloat16") {  // no NumPy dtype: its library converts it to float32
    obj = py::hasattr(obj, "float") ? obj.attr("float")() : obj.attr("astype")("float32");
    bf16_ = true;
  }
  try {
    obj = (cuda_ ? py::object(cupy()) : py::object(numpy_module())).attr("from_dlpack")(obj);
  } catch (py::error_already_set& e) {
    throw_type(std::string(name) + ": cannot be read through DLPack (" + type_name(x) + " of dtype " + dt + "): " +
               e.what());
  }
  keep_.push_back(obj);
  return obj;
}

py::object Call::to_caller(py::object result) const {
  if (bf16_dtype_ && result && !lib_) {  // NumPy bfloat16 inputs: float results back in bfloat16
    if (PyTuple_Check(result.ptr())) {
      const py::tuple t = py::reinterpret_borrow<py::tuple>(result);
      py::tuple out(t.size());
      for (size_t i = 0; i < t.size(); ++i) out[i] = to_caller(t[i]);
      return std::move(out);
    }
    if (is_numpy(result.ptr()) && pyd::array_descriptor_proxy(pyd::array_proxy(result.ptr())->descr)->kind == 'f')
      return result.attr("astype")(bf16_dtype_);
    return result;
  }
  if (!lib_ || !result) return result;
  if (PyTuple_Check(result.ptr())) {
    const py::tuple t = py::reinterpret_borrow<py::tuple>(result);
    py::tuple out(t.size());
    for (size_t i = 0; i < t.size(); ++i) out[i] = to_caller(t[i]);
    return std::move(out);
  }
  if (!(cuda_ ? is_cupy(result.ptr()) : is_numpy(result.ptr()))) return result;  // the user's grad_out, a number
  py::object r = lib_.attr("from_dlpack")(result);
  if (bf16_ && py::str(result.attr("dtype").attr("kind")).cast<std::string>() == "f")
    r = py::hasattr(r, "to") ? r.attr("to")(lib_.attr("bfloat16")) : r.attr("astype")(lib_.attr("bfloat16"));
  return r;
}

py::object caller_result(py::object result) {
  return current_call ? current_call->to_caller(std::move(result)) : result;
}

Call::~Call() {
  current_call = prev_;
  // A grad_out that is misaligned, or in place over an input that another input shares memory
  // with, was computed into a temporary: copy it over on success only (an error leaves the
  // caller's arrays unchanged).
  if (!copy_back_.empty() && std::uncaught_exceptions() == 0) {
    for (auto& [user, temp] : copy_back_) {
      try {
        (cuda_ ? py::object(cupy()) : py::object(numpy_module())).attr("copyto")(user, temp);
      } catch (py::error_already_set& e) {
        e.discard_as_unraisable("fastloss: copying the gradient into grad_out");
      }
    }
  }
  if (device_) {
    try {
      device_.attr("__exit__")(py::none(), py::none(), py::none());
    } catch (py::error_already_set& e) {
      e.discard_as_unraisable("fastloss: leaving the CuPy device");
    }
  }
}

TensorView Call::read(py::handle x, const char* name, int want) {
  if (!x || x.is_none()) throw_type(std::string(name) + " must be an array, got None");
  TensorView v;
  py::object obj = py::reinterpret_borrow<py::object>(x);
  if (cuda_ && is_cupy(obj.ptr())) {
    const py::dtype dt = obj.attr("dtype");
    if (!dtype_of_typenum(dt.num(), &v.dtype)) wrong_dtype(name, want, dtype_str(dt));
    if (to_float(v.dtype, want)) {
      obj = obj.attr("astype")(np_dtype(DType::f64));
      keep_.push_back(obj);
      return read(obj, name, want);
    }
    if (!kind_ok(v.dtype, want)) wrong_dtype(name, want, dtype_str(dt));
    const py::tuple shape = obj.attr("shape"), strides = obj.attr("strides");
    set_dims(v, static_cast<int>(shape.size()), name);
    const int64_t item = dtype_size(v.dtype);
    bool whole = true;
    for (int i = 0; i < v.ndim; ++i) {
      v.shape[i] = shape[i].cast<int64_t>();
      const int64_t sb = strides[i].cast<int64_t>();
      whole = whole && sb % item == 0;
      v.strides[i] = sb / item;
    }
    if (!whole) {  // strides that are not whole items: a C-ordered copy on the device
      obj = cupy().attr("ascontiguousarray")(obj);
      keep_.push_back(obj);
      return read(obj, name, want);
    }
    v.data = reinterpret_cast<void*>(obj.attr("data").attr("ptr").cast<uintptr_t>());
    inputs_.push_back({name, v, obj, py::object()});
    return v;
  }
  if (lib_ && !is_numpy(obj.ptr()) && !is_cupy(obj.ptr()) && PyObject_HasAttrString(obj.ptr(), "__dlpack__"))
    return read(native(obj, name), name, want);
  bool converted = false;
  if (!is_numpy(obj.ptr())) {  // lists, scalars, objects with __array__
    PyObject* arr = npy().PyArray_FromAny_(obj.ptr(), nullptr, 0, 0, 0, nullptr);
    if (!arr) {
      PyErr_Clear();
      if (py::hasattr(obj, "requires_grad") && py::bool_(obj.attr("requires_grad")))  // a torch tensor in a graph
        throw_type(std::string(name) + ": cannot be read as an array (" + type_name(obj) +
                   " that requires grad): pass " + name + ".detach(), or use the fastloss.torch functions, which "
                   "are differentiable");
      throw_type(std::string(name) + ": cannot be read as an array (" + type_name(obj) + ")");
    }
    py::object a = py::reinterpret_steal<py::object>(arr);
    const char kind = pyd::array_descriptor_proxy(pyd::array_proxy(arr)->descr)->kind;
    if ((want == 0 || want == 3) && (kind == 'i' || kind == 'u' || kind == 'b'))  // Python numbers: float64, as NumPy
      a = a.attr("astype")(np_dtype(DType::f64));
    else if (want != 0 && kind == 'f' && PyArray_Size_(arr) == 0)  // an empty list of labels or lengths
      a = a.attr("astype")(np_dtype(DType::i64));
    obj = a;
    converted = true;
  }
  std::string bad;
  py::object original;
  if (!numpy_view(obj.ptr(), name, &v, &bad)) {  // big-endian, misaligned or odd strides: one native copy
    if (!converted) original = obj;
    obj = native_copy(obj);
    converted = true;
    bad.clear();
    numpy_view(obj.ptr(), name, &v, &bad);
  }
  if (bad == "bfloat16" && want != 1) {  // ml_dtypes' NumPy bfloat16 (JAX's): computed in float32, returned as bfloat16
    bf16_dtype_ = obj.attr("dtype");
    py::object f32 = obj.attr("astype")(np_dtype(DType::f32));
    keep_.push_back(f32);
    return read(f32, name, want);
  }
  if (!bad.empty()) wrong_dtype(name, want, bad);
  if (to_float(v.dtype, want)) {
    if (!converted) original = obj;
    obj = obj.attr("astype")(np_dtype(DType::f64));
    converted = true;
    numpy_view(obj.ptr(), name, &v, &bad);
  }
  if (!kind_ok(v.dtype, want)) wrong_dtype(name, want, dtype_name(v.dtype));
  if (cuda_) {  // a list or NumPy-side object in a CuPy call: to the device
    obj = cupy().attr("asarray")(obj);
    keep_.push_back(obj);
    return read(obj, name, want);
  }
  if (converted) keep_.push_back(obj);
  inputs_.push_back({name, v, obj, original});
  return v;
}

TensorView Call::floats(py::handle x, const char* name) { return read(x, name, 0); }
TensorView Call::indices(py::handle x, const char* name) { return read(x, name, 1); }
TensorView Call::numbers(py::handle x, const char* name) { return read(x, name, 2); }
TensorView Call::floats_or_none(py::handle x, const char* name) {
  return x.is_none() ? none_view() : read(x, name, 0);
}
TensorView Call::values(py::handle x, const char* name) { return read(x, name, 3); }
TensorView Call::values_or_none(py::handle x, const char* name) {
  return x.is_none() ? none_view() : read(x, name, 3);
}
TensorView Call::indices_or_none(py::handle x, const char* name) {
  return x.is_none() ? none_view() : read(x, name, 1);
}

TensorView Call::converted(const TensorView& v, DType dtype) {
  if (is_none(v) || v.dtype == dtype) return v;
  for (const Input& in : inputs_) {
    if (!same_view(in.view, v)) continue;
    py::object c = in.object.attr("astype")(np_dtype(dtype));
    keep_.push_back(c);
    const char* name = in.name;
    return read(c, name, is_float(dtype) ? 0 : 1);
  }
  throw_value("internal: converted() of a view that was not read through the call");
}

TensorView Call::c_ordered(const TensorView& v) {
  if (is_none(v)) return v;
  int64_t want = 1;
  bool ordered = true;
  for (int i = v.ndim - 1; i >= 0; --i) {
    ordered = ordered && (v.shape[i] <= 1 || v.strides[i] == want);
    want *= v.shape[i];
  }
  if (ordered) return v;
  for (const Input& in : inputs_) {
    if (!same_view(in.view, v)) continue;
    py::object c = (cuda_ ? py::object(cupy()) : py::object(numpy_module())).attr("ascontiguousarray")(in.object);
    keep_.push_back(c);
    return read(c, in.name, is_float(v.dtype) ? 0 : 1);
  }
  throw_value("internal: c_ordered() of a view that was not read through the call");
}

py::object Call::empty(const std::vector<int64_t>& shape, DType dtype, TensorView* view) {
  py::object out;
  if (cuda_) {
    py::tuple s(shape.size());
    for (size_t i = 0; i < shape.size(); ++i) s[i] = py::int_(shape[i]);
    out = cupy().attr("empty")(s, py::arg("dtype") = np_dtype(dtype));
    view->data = reinterpret_cast<void*>(out.attr("data").attr("ptr").cast<uintptr_t>());
  } else {
    std::vector<py::ssize_t> s(shape.begin(), shape.end());
    py::array a(np_dtype(dtype), s);
    view->data = a.mutable_data();
    out = std::move(a);
  }
  view->dtype = dtype;
  set_dims(*view, static_cast<int>(shape.size()), "output");
  int64_t stride = 1;
  for (int i = view->ndim - 1; i >= 0; --i) {
    view->shape[i] = shape[i];
    view->strides[i] = stride;
    stride *= shape[i] > 1 ? shape[i] : 1;
  }
  return out;
}

py::object Call::grad_out(py::handle user, const TensorView& like, const char* like_name, TensorView* view,
                          bool kernel_in_place) {
  if (!user || user.is_none()) return empty(shape_of(like), like.dtype, view);
  if (lib_ && !is_numpy(user.ptr()) && !is_cupy(user.ptr()) && PyObject_HasAttrString(user.ptr(), "__dlpack__")) {
    // The caller's tensor, written through its NumPy/CuPy view, and returned as itself.
    const std::string dt = py::str(user.attr("dtype")).cast<std::string>();
    if (dt == "torch.bfloat16" || dt == "bfloat16")
      throw_type("grad_out must not be bfloat16 (the gradient is computed in float32, then cast to a new array)");
    py::object view_of_user = native(user, "grad_out");
    grad_out(view_of_user, like, like_name, view, kernel_in_place);
    return py::reinterpret_borrow<py::object>(user);
  }
  bool via_temp = false;
  TensorView g = validate_grad_out(user, like, like_name, &via_temp);
  // A kernel that reads its input after writing some of the gradient cannot run in place:
  // the gradient goes to a temporary, copied over the input when the call succeeds.
  if (!kernel_in_place && same_view(g, like)) via_temp = true;
  if (via_temp) {
    py::object temp = (cuda_ ? py::object(cupy()) : py::object(numpy_module())).attr("empty_like")(user, py::arg("order") = "C");
    copy_back_.emplace_back(py::reinterpret_borrow<py::object>(user), temp);
    if (cuda_) {
      g.data = reinterpret_cast<void*>(temp.attr("data").attr("ptr").cast<uintptr_t>());
      int64_t stride = 1;
      for (int i = g.ndim - 1; i >= 0; --i) {
        g.strides[i] = stride;
        stride *= g.shape[i] > 1 ? g.shape[i] : 1;
      }
    } else {
      std::string bad;
      numpy_view(temp.ptr(), "grad_out", &g, &bad);
    }
  }
  *view = g;
  return py::reinterpret_borrow<py::object>(user);
}

void Call::check_grad_out(py::handle user, const TensorView& like, const char* like_name) {
  if (!user || user.is_none()) return;
  bool via_temp = false;
  validate_grad_out(user, like, like_name, &via_temp);
}

TensorView Call::validate_grad_out(py::handle user, const TensorView& like, const char* like_name, bool* in_place_copy) {
  PyObject* o = user.ptr();
  const bool lib_ok = cuda_ ? is_cupy(o) : (is_numpy(o) && !is_cupy(o));
  if (!lib_ok)
    throw_type(std::string("grad_out must be a ") + (cuda_ ? "CuPy" : "NumPy") + " array like the inputs, got " +
               type_name(user));
  TensorView g;
  *in_place_copy = false;
  if (cuda_) {
    const py::dtype dt = user.attr("dtype");
    if (!dtype_of_typenum(dt.num(), &g.dtype) || g.dtype != like.dtype)
      throw_type(std::string("grad_out must have dtype ") + dtype_name(like.dtype) + ", got " + dtype_str(dt));
    const py::tuple shape = user.attr("shape"), strides = user.attr("strides");
    set_dims(g, static_cast<int>(shape.size()), "grad_out");
    for (int i = 0; i < g.ndim; ++i) {
      g.shape[i] = shape[i].cast<int64_t>();
      g.strides[i] = strides[i].cast<int64_t>() / dtype_size(g.dtype);
    }
    g.data = reinterpret_cast<void*>(user.attr("data").attr("ptr").cast<uintptr_t>());
  } else {
    auto* a = pyd::array_proxy(o);
    std::string bad;
    const bool direct = numpy_view(o, "grad_out", &g, &bad);
    if (!bad.empty() || g.dtype != like.dtype || pyd::array_descriptor_proxy(a->descr)->byteorder == (PY_LITTLE_ENDIAN ? '>' : '<'))
      throw_type(std::string("grad_out must have dtype ") + dtype_name(like.dtype) + ", got " + dtype_str(a->descr));
    if (!(a->flags & pyd::npy_api::NPY_ARRAY_WRITEABLE_)) throw_value("grad_out is read-only");
    if (!direct) {  // misaligned (or odd strides): shape and strides as NumPy has them, data written via a copy
      set_dims(g, a->nd, "grad_out");
      for (int i = 0; i < a->nd; ++i) {
        g.shape[i] = a->dimensions[i];
        g.strides[i] = a->strides[i] / dtype_size(g.dtype);
      }
      g.data = a->data;
      *in_place_copy = true;
    }
  }
  bool same_shape = g.ndim == like.ndim;
  for (int i = 0; same_shape && i < g.ndim; ++i) same_shape = g.shape[i] == like.shape[i];
  if (!same_shape)
    throw_value("grad_out must have shape " + shape_string(like) + " (the shape of " + like_name + "), got " +
                shape_string(g));
  if (g.numel() > 1)
    for (int i = 0; i < g.ndim; ++i)
      if (g.strides[i] == 0 && g.shape[i] > 1) throw_value("grad_out must not be a broadcast view (it has a zero stride)");
  // Overlap: grad_out may be the differentiated input itself, or overlap nothing.
  const Input* like_in = nullptr;  // the differentiated input as the call read it
  for (const Input& in : inputs_)
    if (std::strcmp(in.name, like_name) == 0 && same_view(in.view, like)) like_in = &in;
  const bool in_place = same_view(g, like) ||
                        (like_in && like_in->original && same_numpy_array(user.ptr(), like_in->original.ptr()));
  // Does the kernel read, through input `in`, memory that grad_out shares?
  const Extent ge = extent_of(g);
  auto shares = [&](const Input& in) {
    const Extent ie = extent_of(in.view);
    if (ge.lo >= ie.hi || ie.lo >= ge.hi) return false;
    // Extents meet: NumPy tells exactly whether elements are shared (interleaved views are fine);
    // on the device, meeting extents count as sharing.
    return cuda_ || numpy_module().attr("shares_memory")(user, in.object).cast<bool>();
  };
  bool via_temp = *in_place_copy;
  if (in_place) {
    // The kernel writes the gradient over the input it differentiates; another input that is a
    // view of the same memory (a target x[::-1], probability labels, a weight) would then be read
    // after being overwritten. Such a call computes into a temporary, copied over on success.
    for (const Input& in : inputs_)
      if (&in != like_in && !in.original && shares(in)) via_temp = true;
  } else {
    for (const Input& in : inputs_) {
      // When the kernel reads a copy, the caller's array is what grad_out must not touch.
      const bool overlaps = in.original ? numpy_module().attr("shares_memory")(user, in.original).cast<bool>()
                                        : shares(in);
      if (overlaps)
        throw_value(std::string("grad_out overlaps ") + in.name + " without being " + like_name +
                    " itself: pass " + like_name + " for an in-place gradient, or an array that shares no memory "
                    "with the inputs");
    }
  }
  *in_place_copy = via_temp;
  return g;
}

void* Call::workspace(size_t bytes) {
  if (!cuda_) return nullptr;
  py::object ws = cupy().attr("empty")(py::int_(std::max<size_t>(bytes, 8)), py::arg("dtype") = np_dtype(DType::u8));
  keep_.push_back(ws);
  return reinterpret_cast<void*>(ws.attr("data").attr("ptr").cast<uintptr_t>());
}

// --------------------------------------------------------------------------- scalar options
Reduction reduction_arg(py::handle r, bool allow_batchmean, bool* batchmean) {
  if (batchmean) *batchmean = false;
  if (PyUnicode_Check(r.ptr())) {
    const std::string s = py::str(r).cast<std::string>();
    if (s == "mean") return Reduction::mean;
    if (s == "sum") return Reduction::sum;
    if (s == "none") return Reduction::none;
    if (allow_batchmean && s == "batchmean") {
      if (batchmean) *batchmean = true;
      return Reduction::sum;
    }
  }
  throw_value(std::string("reduction must be one of 'mean', 'sum', 'none'") + (allow_batchmean ? ", 'batchmean'" : "") +
              ", got " + py::repr(r).cast<std::string>());
}

namespace {
bool is_numpy_scalar_of(py::handle x, const char* abstract_type) {
  return py::isinstance(x, numpy_module().attr(abstract_type));
}
}  // namespace

int64_t int_arg(py::handle x, const char* name) {
  PyObject* o = x.ptr();
  if (!PyBool_Check(o) && (PyLong_Check(o) || is_numpy_scalar_of(x, "integer"))) {
    py::object i = py::reinterpret_steal<py::object>(PyNumber_Index(o));
    if (!i) throw py::error_already_set();
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
    if (overflow)
      throw_value(std::string(name) + " = " + py::str(i).cast<std::string>() + " is out of range (a 64-bit integer)");
    return v;
  }
  throw_type(std::string(name) + " must be an integer, got " + py::repr(x).cast<std::string>());
}

double float_arg(py::handle x, const char* name) {
  PyObject* o = x.ptr();
  if (PyFloat_Check(o)) return PyFloat_AS_DOUBLE(o);
  if (PyLong_Check(o) || is_numpy_scalar_of(x, "floating") || is_numpy_scalar_of(x, "integer")) {
    const double v = PyFloat_AsDouble(o);
    if (v == -1.0 && PyErr_Occurred()) {
      PyErr_Clear();
      throw_value(std::string(name) + " = " + py::str(x).cast<std::string>() + " does not fit a float64");
    }
    return v;
  }
  throw_type(std::string(name) + " must be a number, got " + py::repr(x).cast<std::string>());
}

bool bool_arg(py::handle x, const char* name) {
  PyObject* o = x.ptr();
  if (o == Py_True) return true;
  if (o == Py_False) return false;
  if (PyLong_Check(o) || is_numpy_scalar_of(x, "bool_") || is_numpy_scalar_of(x, "integer")) return PyObject_IsTrue(o) == 1;
  throw_type(std::string(name) + " must be a bool, got " + py::repr(x).cast<std::string>());
}

std::string str_arg(py::handle x, const char* name) {
  if (!PyUnicode_Check(x.ptr())) throw_type(std::string(name) + " must be a str, got " + py::repr(x).cast<std::string>());
  return py::str(x).cast<std::string>();
}

py::object loss_and_grad(py::object loss, py::object grad) {
  if (!grad || grad.is_none()) return caller_result(std::move(loss));
  return caller_result(py::make_tuple(std::move(loss), std::move(grad)));
}

std::vector<int64_t> shape_of(const TensorView& v, int skip_axis) {
  std::vector<int64_t> s;
  for (int i = 0; i < v.ndim; ++i)
    if (i != skip_axis) s.push_back(v.shape[i]);
  return s;
}

}  // namespace fastloss
