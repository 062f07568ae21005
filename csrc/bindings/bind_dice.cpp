// Python entry point of dice_loss: the user's objects arrive as passed (python/fastloss/
// rowwise.py only names the keywords) and are read, checked and allocated here through the
// array layer; the checks and the canonical layout are fastloss/dice.h's.
#include <pybind11/pybind11.h>

#include "array.h"
#include "fastloss/dice.h"
#include "views.h"

namespace fastloss {
namespace {

// A scalar argument (Python or NumPy number, or a 0-d NumPy array) rather than an array.
bool is_scalar(py::handle x) {
  if (py::isinstance<py::float_>(x) || py::isinstance<py::int_>(x)) return true;
  if (py::isinstance(x, numpy_module().attr("generic"))) return true;
  return py::hasattr(x, "ndim") && !is_cupy_array(x) && x.attr("ndim").cast<int>() == 0;
}

}  // namespace

void register_dice(py::module_& m) {
  m.def("dice_loss", [](py::handle inputs, py::handle targets, py::handle activation, py::handle smooth,
                        py::handle squared, py::handle axis, py::handle reduction, py::handle return_grad,
                        py::handle jaccard, py::handle batch, py::handle smooth_nr, py::handle smooth_dr,
                        py::handle include_background, py::handle weight, py::handle grad_out) {
    const bool scalar_weight = weight.is_none() || is_scalar(weight);
    Call call({{"inputs", inputs}, {"targets", targets}, {"weight", scalar_weight ? py::handle(py::none()) : weight},
               {"grad_out", grad_out}});
    DiceParams p;
    p.reduction = reduction_arg(reduction);
    const TensorView x = call.floats(inputs, "inputs");
    TensorView t = call.numbers(targets, "targets");
    if (!scalar_weight) p.weight = call.converted(call.values(weight, "weight"), DType::f64);
    else if (!weight.is_none()) p.weight_scalar = float_arg(py::hasattr(weight, "item") ? weight.attr("item")() : weight, "weight");
    p.jaccard = bool_arg(jaccard, "jaccard");
    p.batch = bool_arg(batch, "batch");
    p.first_class = bool_arg(include_background, "include_background") ? 0 : 1;
    if (activation.is_none()) {
      p.activation = DiceActivation::none;
    } else {
      const std::string a = str_arg(activation, "activation");
      if (a == "sigmoid") p.activation = DiceActivation::sigmoid;
      else if (a == "softmax") p.activation = DiceActivation::softmax;
      else throw_value("activation must be None, 'sigmoid' or 'softmax', got '" + a + "'");
    }
    p.smooth = float_arg(smooth, "smooth");
    p.smooth_nr = smooth_nr.is_none() ? p.smooth : float_arg(smooth_nr, "smooth_nr");
    p.smooth_dr = smooth_dr.is_none() ? p.smooth : float_arg(smooth_dr, "smooth_dr");
    p.squared = bool_arg(squared, "squared");
    const int ax = axis.is_none() ? -1 : normalize_axis(int_arg(axis, "axis"), x.ndim < 1 ? 1 : x.ndim, "inputs");
    if (call.cuda()) {  // the CUDA kernels read float targets in the inputs' dtype, labels as int32/int64
      if (is_float(t.dtype) && t.dtype != x.dtype) t = call.converted(t, x.dtype);
      else if (!is_float(t.dtype) && t.dtype != DType::i32 && t.dtype != DType::i64 && t.dtype != DType::b1)
        t = call.converted(t, DType::i64);
    }
    dice_layout(p, x, t, ax);
    int64_t shape[2];
    int nd = 0;
    dice_loss_shape(p, x, ax, shape, &nd);
    py::object loss = call.empty(p.reduction == Reduction::none ? std::vector<int64_t>(shape, shape + nd)
                                                                : std::vector<int64_t>{},
                                 x.dtype, &p.loss);
    py::object grad = py::none();
    if (bool_arg(return_grad, "return_grad") || !grad_out.is_none()) {
      TensorView g;
      // In place is safe: the sums pass ends before the gradient pass, which reads a
      // position's classes (CPU: a group of positions) before writing their gradients.
      grad = call.grad_out(grad_out, x, "inputs", &g);
      p.grad = dice_canonical_grad(g, ax);
    }
    [[maybe_unused]] void* ws = call.cuda() ? call.workspace(cuda::dice_workspace_bytes(p)) : nullptr;
    {
      py::gil_scoped_release release;
#ifdef FASTLOSS_WITH_CUDA
      if (call.cuda()) cuda::dice_loss(p, call.stream(), ws);
      else cpu::dice_loss(p);
#else
      cpu::dice_loss(p);
#endif
    }
    return loss_and_grad(std::move(loss), std::move(grad));
  });
}

}  // namespace fastloss
