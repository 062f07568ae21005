// Python entry points of softmax_cross_entropy and nll_loss: the user's objects arrive as
// they were passed (python/fastloss/cross_entropy.py only names the keywords) and are read,
// checked and allocated here, through the array layer.
#include <pybind11/pybind11.h>

#include "array.h"
#include "fastloss/cross_entropy.h"
#include "views.h"

namespace fastloss {

namespace {

py::object cross_entropy_call(bool nll, py::handle logits, py::handle labels, py::handle weight,
                              py::handle ignore_index, py::handle label_smoothing, py::handle z_loss, py::handle axis,
                              py::handle reduction, py::handle return_grad, py::handle grad_out) {
  const char* in = nll ? "log_probs" : "logits";
  Call call({{in, logits}, {"labels", labels}, {"weight", weight}, {"grad_out", grad_out}});
  CrossEntropyParams p;
  p.reduction = reduction_arg(reduction);
  const TensorView x = call.floats(logits, in);
  if (x.ndim < 1) throw_value(std::string(in) + " must have at least one dimension (the class axis)");
  TensorView y = nll ? call.indices(labels, "labels") : call.numbers(labels, "labels");
  p.soft_labels = is_float(y.dtype);
  if (p.soft_labels) {
    y = call.converted(y, x.dtype);  // the kernels read probabilities in the logits' dtype
  } else if (call.cuda() && y.dtype != DType::i32 && y.dtype != DType::i64) {
    y = call.converted(y, DType::i64);  // the CUDA kernels read int32 or int64 labels
  }
  const int ax = normalize_axis(int_arg(axis, "axis"), x.ndim, in);
  p.weight = call.values_or_none(weight, "weight");
  if (!is_none(p.weight) && p.weight.dtype == DType::f16) p.weight = call.converted(p.weight, DType::f32);
  p.ignore_index = int_arg(ignore_index, "ignore_index");
  if (p.soft_labels && p.ignore_index != -100)
    throw_value("ignore_index = " + std::to_string(p.ignore_index) +
                " cannot be used with probability labels (as in PyTorch): leave it at -100 or pass class indices");
  p.label_smoothing = float_arg(label_smoothing, "label_smoothing");
  p.z_loss = float_arg(z_loss, "z_loss");
  const bool want_grad = bool_arg(return_grad, "return_grad") || !grad_out.is_none();

  p.logits = x.axis_moved_last(ax);
  p.labels = p.soft_labels && y.ndim == x.ndim ? y.axis_moved_last(ax) : y;
  py::object loss = call.empty(p.reduction == Reduction::none ? shape_of(x, ax) : std::vector<int64_t>{}, x.dtype, &p.loss);
  py::object grad = py::none();
  if (want_grad) {
    TensorView g;
    // nll's CPU kernel reads a row's one value before clearing its gradient row; the CUDA
    // kernels' order is not relied on for it (a temporary there).
    grad = call.grad_out(grad_out, x, in, &g, !nll || !call.cuda());
    p.grad = g.axis_moved_last(ax);
  }
  check_cross_entropy_params(p, nll);
  if (call.cuda()) {
    p.stream = call.stream();
    p.workspace = call.workspace(64 + 8 * static_cast<size_t>(p.logits.drop_last().numel()));
  }
  {
    py::gil_scoped_release release;
    if (call.cuda()) {
#ifdef FASTLOSS_WITH_CUDA
      nll ? cuda::nll_loss(p) : cuda::softmax_cross_entropy(p);
#endif
    } else {
      nll ? cpu::nll_loss(p) : cpu::softmax_cross_entropy(p);
    }
  }
  return loss_and_grad(std::move(loss), std::move(grad));
}

}  // namespace

void register_cross_entropy(py::module_& m) {
  m.def("softmax_cross_entropy",
        [](py::handle logits, py::handle labels, py::handle weight, py::handle ignore_index, py::handle label_smoothing,
           py::handle z_loss, py::handle axis, py::handle reduction, py::handle return_grad, py::handle grad_out) {
          return cross_entropy_call(false, logits, labels, weight, ignore_index, label_smoothing, z_loss, axis,
                                    reduction, return_grad, grad_out);
        });
  m.def("nll_loss", [](py::handle log_probs, py::handle labels, py::handle weight, py::handle ignore_index,
                       py::handle axis, py::handle reduction, py::handle return_grad, py::handle grad_out) {
    static const py::handle zero = py::float_(0.0).release();
    return cross_entropy_call(true, log_probs, labels, weight, ignore_index, zero, zero, axis, reduction, return_grad,
                              grad_out);
  });

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
}

}  // namespace fastloss
