// Python entry point of ctc_loss: arguments read, checked and allocated through the array
// layer; the per-sample lengths are copied to the host (the kernels size their work from them
// and every check runs before the first launch).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <vector>

#include "array.h"
#include "fastloss/ctc.h"
#include "views.h"

namespace fastloss {

namespace {

// Per-sample lengths as host int64: lists, NumPy or CuPy arrays of any integer dtype; a 0-d
// value stands for a batch of one (as PyTorch accepts).
std::vector<int64_t> host_lengths(py::handle x, const char* name, int64_t N) {
  if (x.is_none()) throw_type(std::string(name) + " must be integers, got None");
  py::object obj = py::reinterpret_borrow<py::object>(x);
  const bool was_array = is_cupy_array(obj) || py::isinstance<py::array>(obj);
  if (is_cupy_array(obj)) obj = obj.attr("get")();
  py::array arr = numpy_module().attr("asarray")(obj);
  const char kind = arr.dtype().kind();
  if (kind != 'i' && kind != 'u' && !(arr.size() == 0 && !was_array))
    throw_type(std::string(name) + " must be integers, got " + py::str(arr.dtype()).cast<std::string>());
  if (arr.ndim() > 1)
    throw_value(std::string(name) + " must be 1-D (one length per sample), got shape " +
                py::str(arr.attr("shape")).cast<std::string>());
  const int64_t n = arr.ndim() == 0 ? 1 : static_cast<int64_t>(arr.shape(0));
  if (n != N || (arr.ndim() == 0 && N != 1))
    throw_value(std::string(name) + " must have one entry per sample (N = " + std::to_string(N) + "), got " +
                (arr.ndim() == 0 ? std::string("a scalar") : std::to_string(n)));
  // int64 in native order; a uint64 above INT64_MAX wraps negative and is refused as a length.
  py::array_t<int64_t, py::array::c_style | py::array::forcecast> v(arr.attr("astype")("int64"));
  return std::vector<int64_t>(v.data(), v.data() + n);
}

// (N, T, C) -> (T, N, C): swap the first two axes of a view.
TensorView to_tnc(TensorView v) {
  std::swap(v.shape[0], v.shape[1]);
  std::swap(v.strides[0], v.strides[1]);
  return v;
}

// The view with a new axis of length 1 at `at` (no data moves).
TensorView with_unit_axis(TensorView v, int at) {
  for (int i = v.ndim; i > at; --i) {
    v.shape[i] = v.shape[i - 1];
    v.strides[i] = v.strides[i - 1];
  }
  v.shape[at] = 1;
  v.strides[at] = 0;
  ++v.ndim;
  return v;
}

py::object ctc_call(py::handle log_probs, py::handle labels, py::handle input_lengths, py::handle label_lengths,
                    py::handle blank, py::handle layout_arg, py::handle from_logits, py::handle zero_infinity,
                    py::handle reduction, py::handle return_grad, py::handle grad_out) {
  Call call({{"log_probs", log_probs}, {"labels", labels}, {"input_lengths", input_lengths},
             {"label_lengths", label_lengths}, {"grad_out", grad_out}});
  CtcParams p;
  p.reduction = reduction_arg(reduction);
  const std::string layout = PyUnicode_Check(layout_arg.ptr()) ? str_arg(layout_arg, "layout") : std::string("?");
  if (layout != "TNC" && layout != "NTC")
    throw_value("layout must be 'TNC' or 'NTC', got " + py::repr(layout_arg).cast<std::string>());
  p.blank = int_arg(blank, "blank");
  const TensorView x = call.floats(log_probs, "log_probs");
  const bool unbatched = x.ndim == 2;  // (T, C) with labels (S,) and scalar lengths, as PyTorch
  if (x.ndim != 2 && x.ndim != 3)
    throw_value("log_probs must be 3-D ((T, N, C) for layout 'TNC', (N, T, C) for 'NTC'), got " +
                std::to_string(x.ndim) + " dimensions");
  p.log_probs = unbatched ? with_unit_axis(x, 1) : (layout == "NTC" ? to_tnc(x) : x);
  TensorView y = call.indices(labels, "labels");
  if (call.cuda() && y.dtype != DType::i32 && y.dtype != DType::i64) y = call.converted(y, DType::i64);
  if (unbatched) {
    if (y.ndim != 1) throw_value("labels must be 1-D (S,) for unbatched log_probs (T, C), got " + shape_string(y));
    y = with_unit_axis(y, 0);
  }
  p.labels = y;
  const int64_t N = p.log_probs.shape[1];
  const std::vector<int64_t> il = host_lengths(input_lengths, "input_lengths", N);
  const std::vector<int64_t> ll = host_lengths(label_lengths, "label_lengths", N);
  p.input_lengths = il.data();
  p.label_lengths = ll.data();
  p.from_logits = bool_arg(from_logits, "from_logits");
  p.zero_infinity = bool_arg(zero_infinity, "zero_infinity");

  const bool per_sample = p.reduction == Reduction::none;
  py::object loss = call.empty(per_sample && !unbatched ? std::vector<int64_t>{N} : std::vector<int64_t>{}, x.dtype,
                               &p.loss);
  if (per_sample && unbatched) p.loss = with_unit_axis(p.loss, 0);
  py::object grad = py::none();
  if (bool_arg(return_grad, "return_grad") || !grad_out.is_none()) {
    TensorView g;
    // The kernels read log_probs across time after writing gradient entries: in place goes
    // through a temporary.
    grad = call.grad_out(grad_out, x, "log_probs", &g, false);
    p.grad = unbatched ? with_unit_axis(g, 1) : (layout == "NTC" ? to_tnc(g) : g);
  }
  check_ctc_params(p);
  if (call.cuda()) {
    int64_t smax = 0;
    for (int64_t v : ll) smax = v > smax ? v : smax;
    p.stream = call.stream();
    p.workspace = call.workspace(ctc_workspace_layout(p.log_probs.shape[0], N, p.log_probs.shape[2], smax,
                                                      p.from_logits, x.dtype == DType::f64).total);
  }
  {
    py::gil_scoped_release release;
    if (call.cuda()) {
#ifdef FASTLOSS_WITH_CUDA
      cuda::ctc_loss(p);
#endif
    } else {
      cpu::ctc_loss(p);
    }
  }
  return loss_and_grad(std::move(loss), std::move(grad));
}

}  // namespace

void register_ctc(py::module_& m) { m.def("ctc_loss", &ctc_call); }

}  // namespace fastloss
