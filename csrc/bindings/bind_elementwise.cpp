// Python entry point of the elementwise losses: one function for all eleven, the loss named
// by a string (fastloss/elementwise.py gives each its own signature and docstring).
#include <pybind11/pybind11.h>

#include <string>

#include "fastloss/elementwise.h"
#include "views.h"

namespace fastloss {

namespace {

ElementwiseLoss loss_by_name(const std::string& name) {
#define FASTLOSS_LOOKUP_ENTRY(id, functor) \
  if (name == #id) return ElementwiseLoss::id;
  FASTLOSS_ELEMENTWISE_LOSSES(FASTLOSS_LOOKUP_ENTRY)
#undef FASTLOSS_LOOKUP_ENTRY
  throw_value("unknown elementwise loss '" + name + "'");
}

double opt(const py::dict& o, const char* key, double fallback) {
  return o.contains(key) ? o[key].cast<double>() : fallback;
}

}  // namespace

void register_elementwise(py::module_& m) {
  m.def(
      "elementwise_loss",
      [](const std::string& kind, const std::string& pred_name, const std::string& target_name, py::handle pred,
         py::handle target, py::handle weight, py::handle pos_weight, const py::dict& opts,
         const std::string& reduction, py::handle loss, py::handle grad, bool cuda, uintptr_t stream,
         py::handle workspace) {
        ElementwiseParams p;
        p.kind = loss_by_name(kind);
        p.pred_name = pred_name.c_str();
        p.target_name = target_name.c_str();
        p.pred = to_view(pred, pred_name.c_str());
        p.target = to_view(target, target_name.c_str());
        p.weight = to_view(weight, "weight");
        p.pos_weight = to_view(pos_weight, "pos_weight");
        p.alpha = opt(opts, "alpha", p.alpha);
        p.gamma = opt(opts, "gamma", p.gamma);
        p.margin = opt(opts, "margin", p.margin);
        p.delta = opt(opts, "delta", p.delta);
        if (opts.contains("softness") && !opts["softness"].is_none()) {
          p.soft = true;
          p.softness = opts["softness"].cast<double>();
        }
        if (opts.contains("beta")) {
          if (opts["beta"].is_none()) p.beta_from_targets = true;
          else p.beta = opts["beta"].cast<double>();
        }
        p.log_target = opts.contains("log_target") && opts["log_target"].cast<bool>();
        p.squared = opts.contains("squared") && opts["squared"].cast<bool>();
        if (reduction == "batchmean" && p.kind == ElementwiseLoss::kl_div) {
          p.reduction = Reduction::mean;
          p.batchmean = true;
        } else {
          p.reduction = to_reduction(reduction);
        }
        p.loss = to_view(loss, "loss");
        p.grad = to_view(grad, "grad_out");
        p.stream = reinterpret_cast<void*>(stream);
        p.workspace = is_none(to_view(workspace, "workspace")) ? nullptr : to_view(workspace, "workspace").data;
        py::gil_scoped_release release;
        if (cuda) {
#ifdef FASTLOSS_WITH_CUDA
          cuda::elementwise_loss(p);
#else
          throw_type("fastloss was built without CUDA; CuPy arrays are not supported by this build");
#endif
        } else {
          cpu::elementwise_loss(p);
        }
      },
      py::arg("kind"), py::arg("pred_name"), py::arg("target_name"), py::arg("pred"), py::arg("target"),
      py::arg("weight"), py::arg("pos_weight"), py::arg("opts"), py::arg("reduction"), py::arg("loss"),
      py::arg("grad"), py::arg("cuda") = false, py::arg("stream") = 0, py::arg("workspace") = py::none());

  m.def("elementwise_workspace_bytes", [](int64_t numel) {
#ifdef FASTLOSS_WITH_CUDA
    return static_cast<int64_t>(cuda::elementwise_workspace_bytes(numel));
#else
    (void)numel;
    return int64_t(0);
#endif
  });
}

}  // namespace fastloss
