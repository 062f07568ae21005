// The Python extension module fastloss._C: runtime queries, error translation, and the
// registration of each loss family's entry points.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <omp.h>

#include <string>

#include "fastloss/errors.h"
#include "fastloss/runtime.h"
#include "views.h"

namespace fastloss {
namespace cuda {
#ifdef FASTLOSS_WITH_CUDA
int device_count();
std::string runtime_version();
int driver_version();
#endif
}  // namespace cuda

int normalize_axis(int64_t axis, int ndim, const char* name) {
  if (axis < -ndim || axis >= ndim)
    throw_value(std::string("axis ") + std::to_string(axis) + " is out of range for " + name + " with " + std::to_string(ndim) + " dimensions");
  return static_cast<int>(axis < 0 ? axis + ndim : axis);
}

namespace {

py::dict build_info() {
  py::dict d;
  d["compiler"] = FASTLOSS_COMPILER_STRING;
  d["simd"] = isa_name(cpu_isa());
  d["simd_best"] = isa_name(best_supported_isa());
#if defined(__x86_64__) || defined(__i386__)
  d["simd_compiled"] = py::make_tuple("avx512", "avx2", "baseline");
#else
  d["simd_compiled"] = py::make_tuple("baseline");  // portable vector code only
#endif
  d["openmp"] = std::to_string(_OPENMP);
  d["num_threads"] = num_threads();
#ifdef FASTLOSS_WITH_CUDA
  d["cuda"] = true;
  d["cuda_version"] = FASTLOSS_CUDA_VERSION_STRING;
  d["cuda_architectures"] = FASTLOSS_CUDA_ARCHS_STRING;
  d["cuda_runtime"] = cuda::runtime_version() + " (static)";
  d["cuda_driver"] = cuda::driver_version();
  d["cuda_devices"] = cuda::device_count();
#else
  d["cuda"] = false;
  d["cuda_version"] = py::none();
#endif
  return d;
}

}  // namespace
}  // namespace fastloss

PYBIND11_MODULE(_C, m) {
  using namespace fastloss;
  m.doc() = "fastloss native kernels (CPU: OpenMP + SIMD; CUDA when compiled with nvcc)";

  static py::exception<Error> base(m, "NativeError", PyExc_RuntimeError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      switch (e.kind()) {
        case ErrorKind::value: PyErr_SetString(PyExc_ValueError, e.what()); return;
        case ErrorKind::type: PyErr_SetString(PyExc_TypeError, e.what()); return;
        case ErrorKind::index: PyErr_SetString(PyExc_IndexError, e.what()); return;
        default: PyErr_SetString(PyExc_RuntimeError, e.what()); return;
      }
    }
  });

  m.def(
      "set_num_threads",
      [](py::handle n) {
        // Any integer (Python or NumPy), but not bool; one beyond 64 bits is out of range
        // like any other value above the cap (a ValueError, not a conversion TypeError).
        if (PyBool_Check(n.ptr()) || !PyIndex_Check(n.ptr()))
          throw_type("set_num_threads: n must be an int, got " + std::string(py::repr(n)));
        const py::int_ i = py::reinterpret_steal<py::int_>(PyNumber_Index(n.ptr()));
        if (!i) throw py::error_already_set();
        int overflow = 0;
        const long long v = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
        if (overflow)
          throw_value("set_num_threads: n must be an integer in [1, " + std::to_string(max_num_threads()) +
                      "], got " + std::string(py::str(i)));
        set_num_threads(v);
      },
      py::arg("n"));
  m.def("max_num_threads", &max_num_threads);
  m.def("environment_warnings", &environment_warnings);
  m.def("get_num_threads", &num_threads);
  m.def("set_cpu_isa", [](const std::string& s) {
    if (s == "avx512") set_cpu_isa(Isa::avx512);
    else if (s == "avx2") set_cpu_isa(Isa::avx2);
    else if (s == "baseline") set_cpu_isa(Isa::baseline);
    else throw_value("isa must be 'avx512', 'avx2' or 'baseline', got '" + s + "'");
  });
  m.def("get_cpu_isa", []() { return std::string(isa_name(cpu_isa())); });
  m.def("best_cpu_isa", []() { return std::string(isa_name(best_supported_isa())); });
  m.def("build_info", &build_info);
  m.def("cuda_compiled", []() {
#ifdef FASTLOSS_WITH_CUDA
    return true;
#else
    return false;
#endif
  });
  m.def("cuda_device_count", []() {
#ifdef FASTLOSS_WITH_CUDA
    return cuda::device_count();
#else
    return 0;
#endif
  });

  register_cross_entropy(m);
  register_edit_distance(m);
  register_ctc(m);
  register_elementwise(m);
  register_rowwise(m);
  register_dice(m);
  register_metric(m);
  register_bi_tempered(m);
  register_linear_cross_entropy(m);
#ifdef FASTLOSS_WITH_JAX_FFI
  register_jax_ffi(m);
#endif
}
