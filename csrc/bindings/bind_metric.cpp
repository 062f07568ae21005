// Python entry points of the metric-learning losses: large_margin_softmax_loss (in steps around
// the array library's matrix products, see metric.h), center_loss and update_centers.
#include <pybind11/pybind11.h>

#include <string>

#include "fastloss/metric.h"
#include "views.h"

namespace fastloss {

namespace {

// margin: a Python or NumPy integer (not a bool) from 1 to 6; anything else is a ValueError
// naming margin (the range itself is checked again with the other options in C++).
int margin_from(py::handle margin) {
  if (!PyBool_Check(margin.ptr()) && PyIndex_Check(margin.ptr())) {
    const py::object v = py::reinterpret_steal<py::object>(PyNumber_Index(margin.ptr()));
    if (!v) throw py::error_already_set();
    int overflow = 0;
    const long long m = PyLong_AsLongLongAndOverflow(v.ptr(), &overflow);
    if (!overflow && m >= 1 && m <= kMaxLargeMargin) return static_cast<int>(m);
  }
  throw_value("margin must be an integer from 1 to " + std::to_string(kMaxLargeMargin) + ", got " +
              std::string(py::str(py::repr(margin))));
}

LargeMarginParams large_margin_params(py::handle features, py::handle weight, py::handle labels, py::handle margin,
                                      double beta, const std::string& reduction) {
  LargeMarginParams p;
  p.features = to_view(features, "features");
  p.weight = to_view(weight, "weight");
  p.labels = to_view(labels, "labels");
  p.margin = margin_from(margin);
  p.beta = beta;
  p.reduction = to_reduction(reduction);
  return p;
}

void* workspace_ptr(py::handle ws) {
  const TensorView v = to_view(ws, "workspace");
  return is_none(v) ? nullptr : v.data;
}

[[noreturn]] void no_cuda() {
  throw_type("fastloss was built without CUDA; CuPy arrays are not supported by this build");
}

}  // namespace

void register_metric(py::module_& m) {
  // Step 0: every check that does not need the labels' values, before any product is computed.
  m.def(
      "large_margin_softmax_check",
      [](py::handle features, py::handle weight, py::handle labels, py::handle margin, double beta,
         const std::string& reduction) {
        const LargeMarginParams p = large_margin_params(features, weight, labels, margin, beta, reduction);
        check_large_margin_params(p);
        return p.margin;
      },
      py::arg("features"), py::arg("weight"), py::arg("labels"), py::arg("margin"), py::arg("beta"),
      py::arg("reduction"));

  // Step 2: the fused margin + softmax + gradient row pass over logits = features @ weight.
  m.def(
      "large_margin_softmax_rows",
      [](py::handle features, py::handle weight, py::handle labels, py::handle margin, double beta,
         const std::string& reduction, py::handle logits, py::handle loss, bool grad, py::handle row_scale,
         py::handle class_scale, bool cuda, uintptr_t stream, py::handle workspace) {
        LargeMarginParams p = large_margin_params(features, weight, labels, margin, beta, reduction);
        p.logits = to_view(logits, "logits");
        p.loss = to_view(loss, "loss");
        p.grad = grad;
        p.row_scale = to_view(row_scale, "row_scale");
        p.class_scale = to_view(class_scale, "class_scale");
        p.stream = reinterpret_cast<void*>(stream);
        p.workspace = workspace_ptr(workspace);
        check_large_margin_params(p);
        py::gil_scoped_release release;
        if (cuda) {
#ifdef FASTLOSS_WITH_CUDA
          cuda::large_margin_softmax_rows(p);
#else
          no_cuda();
#endif
        } else {
          cpu::large_margin_softmax_rows(p);
        }
      },
      py::arg("features"), py::arg("weight"), py::arg("labels"), py::arg("margin"), py::arg("beta"),
      py::arg("reduction"), py::arg("logits"), py::arg("loss"), py::arg("grad"), py::arg("row_scale"),
      py::arg("class_scale"), py::arg("cuda") = false, py::arg("stream") = 0, py::arg("workspace") = py::none());

  // Step 4: grad_features += r x, grad_weight += w s (the products of step 3 already there).
  m.def(
      "large_margin_softmax_finish",
      [](py::handle features, py::handle weight, py::handle labels, py::handle margin, double beta,
         const std::string& reduction, py::handle row_scale, py::handle class_scale, py::handle grad_features,
         py::handle grad_weight, bool cuda, uintptr_t stream) {
        LargeMarginParams p = large_margin_params(features, weight, labels, margin, beta, reduction);
        p.grad = true;
        p.row_scale = to_view(row_scale, "row_scale");
        p.class_scale = to_view(class_scale, "class_scale");
        p.grad_features = to_view(grad_features, "grad_features");
        p.grad_weight = to_view(grad_weight, "grad_weight");
        p.stream = reinterpret_cast<void*>(stream);
        check_large_margin_params(p);
        auto same = [](const TensorView& a, const TensorView& b) {
          return a.ndim == 2 && a.dtype == b.dtype && a.shape[0] == b.shape[0] && a.shape[1] == b.shape[1];
        };
        if (!same(p.grad_features, p.features) || !same(p.grad_weight, p.weight))
          throw_value("internal: grad_features/grad_weight must be shaped like features/weight");
        py::gil_scoped_release release;
        if (cuda) {
#ifdef FASTLOSS_WITH_CUDA
          cuda::large_margin_softmax_finish(p);
#else
          no_cuda();
#endif
        } else {
          cpu::large_margin_softmax_finish(p);
        }
      },
      py::arg("features"), py::arg("weight"), py::arg("labels"), py::arg("margin"), py::arg("beta"),
      py::arg("reduction"), py::arg("row_scale"), py::arg("class_scale"), py::arg("grad_features"),
      py::arg("grad_weight"), py::arg("cuda") = false, py::arg("stream") = 0);

  m.def(
      "center_loss",
      [](py::handle features, py::handle labels, py::handle centers, const std::string& reduction, py::handle loss,
         py::handle grad, bool cuda, uintptr_t stream, py::handle workspace) {
        CenterLossParams p;
        p.features = to_view(features, "features");
        p.labels = to_view(labels, "labels");
        p.centers = to_view(centers, "centers");
        p.reduction = to_reduction(reduction);
        p.loss = to_view(loss, "loss");
        p.grad = to_view(grad, "grad");
        p.stream = reinterpret_cast<void*>(stream);
        p.workspace = workspace_ptr(workspace);
        check_center_loss_params(p);
        py::gil_scoped_release release;
        if (cuda) {
#ifdef FASTLOSS_WITH_CUDA
          cuda::center_loss(p);
#else
          no_cuda();
#endif
        } else {
          cpu::center_loss(p);
        }
      },
      py::arg("features"), py::arg("labels"), py::arg("centers"), py::arg("reduction"), py::arg("loss"),
      py::arg("grad"), py::arg("cuda") = false, py::arg("stream") = 0, py::arg("workspace") = py::none());

  m.def(
      "update_centers",
      [](py::handle centers, py::handle features, py::handle labels, double alpha, py::handle out, bool cuda,
         uintptr_t stream, py::handle workspace) {
        UpdateCentersParams p;
        p.centers = to_view(centers, "centers");
        p.features = to_view(features, "features");
        p.labels = to_view(labels, "labels");
        p.alpha = alpha;
        p.out = to_view(out, "out");
        p.stream = reinterpret_cast<void*>(stream);
        p.workspace = workspace_ptr(workspace);
        check_update_centers_params(p);
        py::gil_scoped_release release;
        if (cuda) {
#ifdef FASTLOSS_WITH_CUDA
          cuda::update_centers(p);
#else
          no_cuda();
#endif
        } else {
          cpu::update_centers(p);
        }
      },
      py::arg("centers"), py::arg("features"), py::arg("labels"), py::arg("alpha"), py::arg("out"),
      py::arg("cuda") = false, py::arg("stream") = 0, py::arg("workspace") = py::none());

  // Bytes of CUDA workspace per call (0 on a CPU-only build).
  m.def("large_margin_workspace_bytes", [](int64_t N, int64_t C) {
#ifdef FASTLOSS_WITH_CUDA
    return static_cast<int64_t>(cuda::large_margin_workspace_bytes(N, C));
#else
    (void)N, (void)C;
    return int64_t(0);
#endif
  });
  m.def("center_loss_workspace_bytes", [](int64_t N) {
#ifdef FASTLOSS_WITH_CUDA
    return static_cast<int64_t>(cuda::center_loss_workspace_bytes(N));
#else
    (void)N;
    return int64_t(0);
#endif
  });
  m.def("update_centers_workspace_bytes", [](int64_t K) {
#ifdef FASTLOSS_WITH_CUDA
    return static_cast<int64_t>(cuda::update_centers_workspace_bytes(K));
#else
    (void)K;
    return int64_t(0);
#endif
  });
}

}  // namespace fastloss
