// Python entry points of the eleven elementwise losses: the user's objects arrive as passed
// (python/fastloss/elementwise.py names the keywords) and are read, checked and allocated
// here through the array layer; one call path serves every loss, each entry point only reads
// its own options.
#include <pybind11/pybind11.h>

#include <string>

#include "array.h"
#include "fastloss/elementwise.h"
#include "views.h"

namespace fastloss {

namespace {

struct Inputs {
  py::handle pred, target, weight, pos_weight, reduction, return_grad, grad_out;
};

// Reads the arrays, allocates the outputs, runs the loss. `options` sets p's options from
// the Python arguments (before any array is read, so a bad option fails first).
template <class Options>
py::object elementwise_call(ElementwiseLoss kind, const char* xn, const char* tn, const Inputs& in, Options options) {
  Call call({{xn, in.pred}, {tn, in.target}, {"weight", in.weight}, {"pos_weight", in.pos_weight},
             {"grad_out", in.grad_out}});
  ElementwiseParams p;
  p.kind = kind;
  p.pred_name = xn;
  p.target_name = tn;
  p.reduction = reduction_arg(in.reduction, kind == ElementwiseLoss::kl_div, &p.batchmean);
  if (p.batchmean) p.reduction = Reduction::mean;  // the engine's mean, over shape[0]
  options(p);
  const bool want_grad = bool_arg(in.return_grad, "return_grad") || !in.grad_out.is_none();
  p.pred = call.floats(in.pred, xn);
  p.target = call.numbers(in.target, tn);
  if (!is_float(p.target.dtype)) p.target = call.converted(p.target, p.pred.dtype);  // integer labels
  p.weight = call.values_or_none(in.weight, "weight");
  p.pos_weight = call.values_or_none(in.pos_weight, "pos_weight");
  py::object loss = call.empty(p.reduction == Reduction::none ? shape_of(p.pred) : std::vector<int64_t>{},
                               p.pred.dtype, &p.loss);
  py::object grad = want_grad ? call.grad_out(in.grad_out, p.pred, xn, &p.grad) : py::none();
  if (call.cuda()) {
    p.stream = call.stream();
    p.workspace = call.workspace(
#ifdef FASTLOSS_WITH_CUDA
        cuda::elementwise_workspace_bytes(p.pred.numel())
#else
        0
#endif
    );
  }
  {
    py::gil_scoped_release release;
    if (call.cuda()) {
#ifdef FASTLOSS_WITH_CUDA
      cuda::elementwise_loss(p);
#endif
    } else {
      cpu::elementwise_loss(p);
    }
  }
  return loss_and_grad(std::move(loss), std::move(grad));
}

const auto no_options = [](ElementwiseParams&) {};

}  // namespace

void register_elementwise(py::module_& m) {
  using L = ElementwiseLoss;
  m.def("sigmoid_cross_entropy", [](py::handle x, py::handle t, py::handle weight, py::handle pos_weight,
                                    py::handle reduction, py::handle return_grad, py::handle grad_out) {
    return elementwise_call(L::sigmoid_cross_entropy, "logits", "targets",
                            {x, t, weight, pos_weight, reduction, return_grad, grad_out}, no_options);
  });
  m.def("balanced_sigmoid_cross_entropy", [](py::handle x, py::handle t, py::handle beta, py::handle reduction,
                                             py::handle return_grad, py::handle grad_out) {
    return elementwise_call(L::balanced_sigmoid_cross_entropy, "logits", "targets",
                            {x, t, py::none(), py::none(), reduction, return_grad, grad_out}, [&](ElementwiseParams& p) {
                              p.beta_from_targets = beta.is_none();
                              if (!beta.is_none()) p.beta = float_arg(beta, "beta");
                            });
  });
  m.def("sigmoid_focal_loss", [](py::handle x, py::handle t, py::handle alpha, py::handle gamma, py::handle reduction,
                                 py::handle return_grad, py::handle grad_out) {
    return elementwise_call(L::sigmoid_focal_loss, "logits", "targets",
                            {x, t, py::none(), py::none(), reduction, return_grad, grad_out}, [&](ElementwiseParams& p) {
                              p.alpha = float_arg(alpha, "alpha");
                              p.gamma = float_arg(gamma, "gamma");
                            });
  });
  m.def("truncated_sigmoid_cross_entropy", [](py::handle x, py::handle t, py::handle margin, py::handle softness,
                                              py::handle reduction, py::handle return_grad, py::handle grad_out) {
    return elementwise_call(L::truncated_sigmoid_cross_entropy, "logits", "targets",
                            {x, t, py::none(), py::none(), reduction, return_grad, grad_out}, [&](ElementwiseParams& p) {
                              p.margin = float_arg(margin, "margin");
                              p.soft = !softness.is_none();
                              if (p.soft) p.softness = float_arg(softness, "softness");
                            });
  });
  m.def("hinge_loss", [](py::handle x, py::handle t, py::handle margin, py::handle squared, py::handle weight,
                         py::handle reduction, py::handle return_grad, py::handle grad_out) {
    return elementwise_call(L::hinge_loss, "scores", "labels",
                            {x, t, weight, py::none(), reduction, return_grad, grad_out}, [&](ElementwiseParams& p) {
                              p.margin = float_arg(margin, "margin");
                              p.squared = bool_arg(squared, "squared");
                            });
  });
  m.def("kl_div", [](py::handle x, py::handle t, py::handle log_target, py::handle weight, py::handle reduction,
                     py::handle return_grad, py::handle grad_out) {
    return elementwise_call(L::kl_div, "input", "target",
                            {x, t, weight, py::none(), reduction, return_grad, grad_out},
                            [&](ElementwiseParams& p) { p.log_target = bool_arg(log_target, "log_target"); });
  });
  // The regression losses: (pred, target, weight, [option,] reduction, return_grad, grad_out).
  auto regression = [&m](const char* name, L kind) {
    m.def(name, [kind](py::handle x, py::handle t, py::handle weight, py::handle reduction, py::handle return_grad,
                       py::handle grad_out) {
      return elementwise_call(kind, "pred", "target", {x, t, weight, py::none(), reduction, return_grad, grad_out},
                              no_options);
    });
  };
  regression("mse_loss", L::mse_loss);
  regression("l1_loss", L::l1_loss);
  regression("log_cosh_loss", L::log_cosh_loss);
  m.def("huber_loss", [](py::handle x, py::handle t, py::handle weight, py::handle delta, py::handle reduction,
                         py::handle return_grad, py::handle grad_out) {
    return elementwise_call(L::huber_loss, "pred", "target", {x, t, weight, py::none(), reduction, return_grad, grad_out},
                            [&](ElementwiseParams& p) { p.delta = float_arg(delta, "delta"); });
  });
  m.def("smooth_l1_loss", [](py::handle x, py::handle t, py::handle weight, py::handle beta, py::handle reduction,
                             py::handle return_grad, py::handle grad_out) {
    return elementwise_call(L::smooth_l1_loss, "pred", "target",
                            {x, t, weight, py::none(), reduction, return_grad, grad_out},
                            [&](ElementwiseParams& p) { p.beta = float_arg(beta, "beta"); });
  });
}

}  // namespace fastloss
