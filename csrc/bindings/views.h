// The one place that turns Python objects into kernel arguments. A Python array arrives as
// a descriptor tuple (data pointer, dtype name, shape, strides in bytes) built by
// fastloss/_array.py for NumPy and CuPy alike; None stands for an absent optional array.
#pragma once
#include <pybind11/pybind11.h>

#include <string>

#include "fastloss/runtime.h"
#include "fastloss/tensor.h"

namespace fastloss {
namespace py = pybind11;

TensorView to_view(const py::handle& desc, const char* name);
Reduction to_reduction(const std::string& s);
int normalize_axis(int64_t axis, int ndim, const char* name);

void register_cross_entropy(py::module_& m);
void register_edit_distance(py::module_& m);
void register_ctc(py::module_& m);
void register_elementwise(py::module_& m);
void register_rowwise(py::module_& m);
void register_metric(py::module_& m);

}  // namespace fastloss
