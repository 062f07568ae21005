// Python entry points of softmax_cross_entropy and nll_loss.
#include <pybind11/pybind11.h>

#include "fastloss/cross_entropy.h"
#include "views.h"

namespace fastloss {

namespace {

CrossEntropyParams make_params(const py::handle& logits, const py::handle& labels, bool soft, const py::handle& weight,
                               int64_t ignore_index, double label_smoothing, double z_loss, int axis,
                               const std::string& reduction, const py::handle& loss, const py::handle& grad,
                               bool nll) {
  const char* in = nll ? "log_probs" : "logits";
  CrossEntropyParams p;
  TensorView x = to_view(logits, in);
  if (x.ndim < 1) throw_value(std::string(in) + " must have at least one dimension (the class axis)");
  axis = normalize_axis(axis, x.ndim, in);
  p.logits = x.axis_moved_last(axis);
  TensorView y = to_view(labels, "labels");
  p.soft_labels = soft;
  p.labels = soft && y.ndim == x.ndim ? y.axis_moved_last(axis) : y;
  p.weight = to_view(weight, "weight");
  p.ignore_index = ignore_index;
  p.label_smoothing = label_smoothing;
  p.z_loss = z_loss;
  p.reduction = to_reduction(reduction);
  p.loss = to_view(loss, "loss");
  TensorView g = to_view(grad, "grad_out");
  p.grad = is_none(g) ? g : (g.ndim == x.ndim ? g.axis_moved_last(axis) : g);
  check_cross_entropy_params(p, nll);
  return p;
}

void run(const CrossEntropyParams& p, bool cuda, bool nll) {
  py::gil_scoped_release release;
  if (cuda) {
#ifdef FASTLOSS_WITH_CUDA
    nll ? cuda::nll_loss(p) : cuda::softmax_cross_entropy(p);
#else
    throw_type("fastloss was built without CUDA; CuPy arrays are not supported by this build");
#endif
  } else {
    nll ? cpu::nll_loss(p) : cpu::softmax_cross_entropy(p);
  }
}

}  // namespace

void register_cross_entropy(py::module_& m) {
  m.def(
      "softmax_cross_entropy",
      [](py::handle logits, py::handle labels, bool soft, py::handle weight, int64_t ignore_index, double ls, double z,
         int axis, const std::string& reduction, py::handle loss, py::handle grad, bool cuda, uintptr_t stream,
         py::handle workspace) {
        CrossEntropyParams p = make_params(logits, labels, soft, weight, ignore_index, ls, z, axis, reduction, loss, grad, false);
        p.stream = reinterpret_cast<void*>(stream);
        p.workspace = is_none(to_view(workspace, "workspace")) ? nullptr : to_view(workspace, "workspace").data;
        run(p, cuda, false);
      },
      py::arg("logits"), py::arg("labels"), py::arg("soft"), py::arg("weight"), py::arg("ignore_index"),
      py::arg("label_smoothing"), py::arg("z_loss"), py::arg("axis"), py::arg("reduction"), py::arg("loss"),
      py::arg("grad"), py::arg("cuda") = false, py::arg("stream") = 0, py::arg("workspace") = py::none());

  m.def(
      "nll_loss",
      [](py::handle log_probs, py::handle labels, py::handle weight, int64_t ignore_index, int axis,
         const std::string& reduction, py::handle loss, py::handle grad, bool cuda, uintptr_t stream,
         py::handle workspace) {
        CrossEntropyParams p = make_params(log_probs, labels, false, weight, ignore_index, 0.0, 0.0, axis, reduction, loss, grad, true);
        p.stream = reinterpret_cast<void*>(stream);
        p.workspace = is_none(to_view(workspace, "workspace")) ? nullptr : to_view(workspace, "workspace").data;
        run(p, cuda, true);
      },
      py::arg("log_probs"), py::arg("labels"), py::arg("weight"), py::arg("ignore_index"), py::arg("axis"),
      py::arg("reduction"), py::arg("loss"), py::arg("grad"), py::arg("cuda") = false, py::arg("stream") = 0,
      py::arg("workspace") = py::none());

  // Test hook: the per-block shared-memory budget of the CUDA row cache (so small rows take
  // every cluster size); 0 restores the default, negative turns it off.
  m.def("_set_cuda_row_cache_bytes", [](int64_t bytes) {
#ifdef FASTLOSS_WITH_CUDA
    cuda::set_row_cache_bytes(bytes);
#else
    (void)bytes;
#endif
  });

  // Test hook: (planned, launched, clusters) of the last long-row CUDA call with a gradient.
  m.def("_cuda_last_row_cache_choice", []() {
#ifdef FASTLOSS_WITH_CUDA
    const cuda::RowCacheChoice c = cuda::last_row_cache_choice();
    return py::make_tuple(c.planned, c.launched, c.clusters);
#else
    return py::make_tuple(-1, -1, false);
#endif
  });

  // Bytes of device workspace the CUDA cross-entropy needs (a header plus one double per row).
  m.def("cross_entropy_workspace_bytes", [](int64_t rows) { return int64_t(64) + 8 * rows; });
}

}  // namespace fastloss
