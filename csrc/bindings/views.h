// What every binding file shares: the registration of each family's entry points, and the
// axis rule. Arrays are read through the array layer (array.h).
#pragma once
#include <pybind11/pybind11.h>

#include <string>

#include "fastloss/runtime.h"
#include "fastloss/tensor.h"

namespace fastloss {
namespace py = pybind11;

int normalize_axis(int64_t axis, int ndim, const char* name);

void register_cross_entropy(py::module_& m);
void register_edit_distance(py::module_& m);
void register_ctc(py::module_& m);
void register_elementwise(py::module_& m);
void register_rowwise(py::module_& m);
void register_dice(py::module_& m);
void register_metric(py::module_& m);
#ifdef FASTLOSS_WITH_JAX_FFI
void register_jax_ffi(py::module_& m);  // jax_ffi.cpp: XLA FFI handlers for fastloss.jax
#endif
void register_bi_tempered(py::module_& m);
void register_linear_cross_entropy(py::module_& m);

}  // namespace fastloss
