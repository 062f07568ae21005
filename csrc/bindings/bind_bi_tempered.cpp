// Python entry points of bi_tempered_logistic_loss, bi_tempered_binary_logistic_loss and
// tempered_softmax: the user's objects arrive as passed (python/fastloss/rowwise.py only names
// the keywords) and are read, checked and allocated here through the array layer.
#include <pybind11/pybind11.h>

#include "array.h"
#include "fastloss/bi_tempered.h"
#include "views.h"

namespace fastloss {
namespace {

void run(Call& call, BiTemperedParams& p) {
  if (call.cuda()) {
    p.stream = call.stream();
    p.workspace = call.workspace(cuda::bi_tempered_workspace_bytes(p.binary ? p.activations.numel()
                                                                            : p.activations.drop_last().numel()));
  }
  py::gil_scoped_release release;
  if (call.cuda()) {
#ifdef FASTLOSS_WITH_CUDA
    cuda::bi_tempered_logistic_loss(p);
#endif
  } else {
    cpu::bi_tempered_logistic_loss(p);
  }
}

void options(BiTemperedParams& p, py::handle t1, py::handle t2, py::handle label_smoothing, py::handle num_iters) {
  p.t1 = snap_temperature(float_arg(t1, "t1"));
  p.t2 = snap_temperature(float_arg(t2, "t2"));
  p.label_smoothing = float_arg(label_smoothing, "label_smoothing");
  p.num_iters = int_arg(num_iters, "num_iters");
}

}  // namespace

void register_bi_tempered(py::module_& m) {
  m.def("bi_tempered_logistic_loss", [](py::handle activations, py::handle labels, py::handle t1, py::handle t2,
                                        py::handle label_smoothing, py::handle num_iters, py::handle axis,
                                        py::handle reduction, py::handle return_grad, py::handle grad_out) {
    Call call({{"activations", activations}, {"labels", labels}, {"grad_out", grad_out}});
    BiTemperedParams p;
    p.reduction = reduction_arg(reduction);
    const TensorView x = call.floats(activations, "activations");
    if (x.ndim < 1) throw_value("activations must have at least one dimension (the class axis)");
    TensorView y = call.numbers(labels, "labels");
    p.soft_labels = is_float(y.dtype);
    if (p.soft_labels) y = call.converted(y, x.dtype);  // probabilities in the activations' dtype
    else if (call.cuda() && y.dtype != DType::i32 && y.dtype != DType::i64) y = call.converted(y, DType::i64);
    const int ax = normalize_axis(int_arg(axis, "axis"), x.ndim, "activations");
    options(p, t1, t2, label_smoothing, num_iters);
    p.activations = x.axis_moved_last(ax);
    p.labels = p.soft_labels && y.ndim == x.ndim ? y.axis_moved_last(ax) : y;
    py::object loss = call.empty(p.reduction == Reduction::none ? shape_of(x, ax) : std::vector<int64_t>{}, x.dtype, &p.loss);
    py::object grad = py::none();
    if (bool_arg(return_grad, "return_grad") || !grad_out.is_none()) {
      TensorView g;
      grad = call.grad_out(grad_out, x, "activations", &g, false);  // in place: through a temporary
      p.grad = g.axis_moved_last(ax);
    }
    check_bi_tempered_params(p);
    run(call, p);
    return loss_and_grad(std::move(loss), std::move(grad));
  });

  m.def("bi_tempered_binary_logistic_loss", [](py::handle activations, py::handle targets, py::handle t1, py::handle t2,
                                               py::handle label_smoothing, py::handle num_iters, py::handle reduction,
                                               py::handle return_grad, py::handle grad_out) {
    Call call({{"activations", activations}, {"targets", targets}, {"grad_out", grad_out}});
    BiTemperedParams p;
    p.binary = true;
    p.reduction = reduction_arg(reduction);
    const TensorView x = call.floats(activations, "activations");
    TensorView t = call.values(targets, "targets");
    options(p, t1, t2, label_smoothing, num_iters);
    p.activations = x;
    p.labels = t;
    p.soft_labels = true;
    if (t.ndim == x.ndim) {
      bool same = true;
      for (int i = 0; i < x.ndim; ++i) same = same && t.shape[i] == x.shape[i];
      if (same) p.labels = call.converted(t, x.dtype);
    }
    py::object loss = call.empty(p.reduction == Reduction::none ? shape_of(x) : std::vector<int64_t>{}, x.dtype, &p.loss);
    py::object grad = py::none();
    if (bool_arg(return_grad, "return_grad") || !grad_out.is_none())
      grad = call.grad_out(grad_out, x, "activations", &p.grad, false);  // in place: through a temporary
    check_bi_tempered_params(p);
    run(call, p);
    return loss_and_grad(std::move(loss), std::move(grad));
  });

  m.def("tempered_softmax", [](py::handle activations, py::handle t, py::handle num_iters, py::handle axis) {
    Call call({{"activations", activations}});
    TemperedSoftmaxParams p;
    const TensorView x = call.floats(activations, "activations");
    if (x.ndim < 1) throw_value("activations must have at least one dimension (the class axis)");
    const int ax = normalize_axis(int_arg(axis, "axis"), x.ndim, "activations");
    p.t = snap_temperature(float_arg(t, "t"));
    p.num_iters = int_arg(num_iters, "num_iters");
    p.activations = x.axis_moved_last(ax);
    TensorView o;
    py::object out = call.empty(shape_of(x), x.dtype, &o);
    p.out = o.axis_moved_last(ax);
    check_tempered_softmax_params(p);
    if (call.cuda()) p.stream = call.stream();
    {
      py::gil_scoped_release release;
      if (call.cuda()) {
#ifdef FASTLOSS_WITH_CUDA
        cuda::tempered_softmax(p);
#endif
      } else {
        cpu::tempered_softmax(p);
      }
    }
    return caller_result(out);
  });
}

}  // namespace fastloss
