// Python entry points of the metric-learning losses, through the array layer:
// large_margin_softmax_loss (the three matrix products go back to the call's array library,
// NumPy's BLAS or cuBLAS through CuPy, around the fused row pass; see metric.h), center_loss
// and update_centers. float16 is computed in float32 and returned as float16.
#include <pybind11/pybind11.h>

#include <string>
#include <utility>

#include "array.h"
#include "fastloss/metric.h"
#include "views.h"

namespace fastloss {

namespace {

// margin: a Python or NumPy integer (not a bool) from 1 to 6; anything else is a ValueError
// naming margin (the contract makes "not a positive integer" a domain error, not a type error).
int margin_arg(py::handle margin) {
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

// The dtype results come back in (float16 only when every float input is float16), and the
// one the kernels compute in (float32 for float16).
DType result_dtype(DType a, DType b) {
  if (a == DType::f64 || b == DType::f64) return DType::f64;
  if (a == DType::f32 || b == DType::f32) return DType::f32;
  return DType::f16;
}
DType compute_dtype(DType out) { return out == DType::f16 ? DType::f32 : out; }

// The CUDA kernels read int64 labels; the CPU kernels any integer dtype.
TensorView labels_for_kernel(Call& call, TensorView y) {
  return call.cuda() && y.dtype != DType::i64 ? call.converted(y, DType::i64) : y;
}

// An input as an array of the call's library in dtype `dt`, for the matrix products (lists
// become arrays; nothing is copied when it already is one of that dtype).
py::object operand(Call& call, py::handle x, DType dt, const char* name) {
  py::object xp = call.cuda() ? py::module_::import("cupy") : py::object(numpy_module());
  return xp.attr("asarray")(call.native(x, name)).attr("astype")(dtype_name(dt), py::arg("copy") = false);
}

py::object cast_to(py::object a, DType out, DType dt) {
  return out == dt ? std::move(a) : a.attr("astype")(dtype_name(out));
}

// A gradient computed in a new array, copied into the caller's checked grad_out.
void copy_into(const Call& call, py::handle user, py::handle value) {
  py::object xp = call.cuda() ? py::module_::import("cupy") : py::object(numpy_module());
  xp.attr("copyto")(user, value);
}

template <class F> void run_released(F&& f) {
  py::gil_scoped_release release;
  f();
}

// grad_out of large_margin_softmax_loss: None or a pair (grad_features, grad_weight).
std::pair<py::object, py::object> grad_pair(py::handle grad_out) {
  if (grad_out.is_none()) return {py::none(), py::none()};
  if (!py::isinstance<py::tuple>(grad_out) && !py::isinstance<py::list>(grad_out))
    throw_type("grad_out must be a pair (grad_features, grad_weight), got " + std::string(Py_TYPE(grad_out.ptr())->tp_name));
  const py::sequence s = py::reinterpret_borrow<py::sequence>(grad_out);
  if (s.size() != 2)
    throw_value("grad_out must be a pair (grad_features, grad_weight), got " + std::to_string(s.size()) + " items");
  if (py::object(s[0]).is_none() || py::object(s[1]).is_none())
    throw_type("grad_out must be a pair of arrays (grad_features, grad_weight), got None in it");
  return {s[0], s[1]};
}

// The two gradient arrays of one call must not share memory with each other (on CUDA by
// their address ranges: exact sharing would need a kernel and a synchronisation).
void check_disjoint(const Call& call, py::handle a, py::handle b) {
  if (a.is_none() || b.is_none()) return;
  py::object xp = call.cuda() ? py::module_::import("cupy") : py::object(numpy_module());
  if (xp.attr(call.cuda() ? "may_share_memory" : "shares_memory")(a, b).cast<bool>())
    throw_value("grad_out: grad_features and grad_weight share memory; pass two separate arrays");
}

py::object large_margin_call(py::handle features, py::handle weight, py::handle labels, py::handle margin,
                             py::handle beta, py::handle reduction, py::handle return_grad, py::handle grad_out) {
  const auto [gf_user, gw_user] = grad_pair(grad_out);
  Call call({{"features", features}, {"weight", weight}, {"labels", labels}, {"grad_out", gf_user},
             {"grad_out", gw_user}});
  const TensorView xv = call.floats(features, "features"), wv = call.floats(weight, "weight");
  LargeMarginParams p;
  p.labels = labels_for_kernel(call, call.indices(labels, "labels"));
  p.margin = margin_arg(margin);
  p.beta = float_arg(beta, "beta");
  p.reduction = reduction_arg(reduction);
  const bool grad = bool_arg(return_grad, "return_grad") || !grad_out.is_none();
  const DType out = result_dtype(xv.dtype, wv.dtype), dt = compute_dtype(out);
  // The gradients come from matrix products and are copied into grad_out at the end (after
  // both are computed, so grad_out may be features and weight themselves); checked now.
  {
    TensorView lf = xv, lw = wv;
    lf.dtype = lw.dtype = out;
    call.check_grad_out(gf_user, lf, "features");
    call.check_grad_out(gw_user, lw, "weight");
    check_disjoint(call, gf_user, gw_user);
  }
  const py::object X = operand(call, features, dt, "features"), W = operand(call, weight, dt, "weight");
  p.features = call.floats(X, "features");
  p.weight = call.floats(W, "weight");
  check_large_margin_params(p);  // before any product

  const int64_t N = p.features.shape[0], C = p.weight.shape[1];
  py::object logits = X.attr("__matmul__")(W);  // BLAS / cuBLAS; becomes the logits' gradient in place
  p.logits = call.floats(logits, "logits");
  py::object loss = call.empty(p.reduction == Reduction::none ? std::vector<int64_t>{N} : std::vector<int64_t>{}, dt,
                               &p.loss);
  p.grad = grad;
  py::object rs, cs;
  if (grad) {
    rs = call.empty({N}, DType::f64, &p.row_scale);
    cs = call.empty({C}, DType::f64, &p.class_scale);
  }
#ifdef FASTLOSS_WITH_CUDA
  if (call.cuda()) {
    p.stream = call.stream();
    p.workspace = call.workspace(cuda::large_margin_workspace_bytes(N, C));
  }
#endif
  check_large_margin_params(p);
  run_released([&] {
#ifdef FASTLOSS_WITH_CUDA
    if (call.cuda()) return cuda::large_margin_softmax_rows(p);
#endif
    cpu::large_margin_softmax_rows(p);
  });
  if (!grad) return caller_result(cast_to(std::move(loss), out, dt));

  py::object gx = logits.attr("__matmul__")(W.attr("T"));
  py::object gw = X.attr("T").attr("__matmul__")(logits);
  p.grad_features = call.floats(gx, "grad_features");
  p.grad_weight = call.floats(gw, "grad_weight");
  run_released([&] {
#ifdef FASTLOSS_WITH_CUDA
    if (call.cuda()) return cuda::large_margin_softmax_finish(p);
#endif
    cpu::large_margin_softmax_finish(p);
  });
  gx = cast_to(std::move(gx), out, dt);
  gw = cast_to(std::move(gw), out, dt);
  if (!gf_user.is_none()) {
    copy_into(call, gf_user, gx);
    copy_into(call, gw_user, gw);
    return caller_result(py::make_tuple(cast_to(std::move(loss), out, dt), py::make_tuple(gf_user, gw_user)));
  }
  return caller_result(py::make_tuple(cast_to(std::move(loss), out, dt), py::make_tuple(std::move(gx), std::move(gw))));
}

py::object center_loss_call(py::handle features, py::handle labels, py::handle centers, py::handle reduction,
                            py::handle return_grad, py::handle grad_out) {
  Call call({{"features", features}, {"labels", labels}, {"centers", centers}, {"grad_out", grad_out}});
  const TensorView xv = call.floats(features, "features");
  const TensorView cv = call.floats(centers, "centers");
  CenterLossParams p;
  p.labels = labels_for_kernel(call, call.indices(labels, "labels"));
  p.reduction = reduction_arg(reduction);
  const bool grad = bool_arg(return_grad, "return_grad") || !grad_out.is_none();
  const DType out = xv.dtype, dt = compute_dtype(out);
  call.check_grad_out(grad_out, xv, "features");
  p.features = call.converted(xv, dt);
  p.centers = call.converted(cv, dt);  // the centers take the features' dtype
  check_center_loss_params(p);
  const int64_t N = p.features.shape[0];
  py::object loss = call.empty(p.reduction == Reduction::none ? std::vector<int64_t>{N} : std::vector<int64_t>{}, dt,
                               &p.loss);
  // float16 computes in float32 and is copied into grad_out; the others are written straight
  // into it. The CPU kernel reads each element before writing its gradient (in place is
  // fine); the CUDA kernel gets a temporary.
  const bool direct = out == dt;
  py::object g = grad ? call.grad_out(direct ? grad_out : py::handle(py::none()), p.features, "features", &p.grad,
                                      !call.cuda())
                      : py::none();
#ifdef FASTLOSS_WITH_CUDA
  if (call.cuda()) {
    p.stream = call.stream();
    p.workspace = call.workspace(cuda::center_loss_workspace_bytes(N));
  }
#endif
  run_released([&] {
#ifdef FASTLOSS_WITH_CUDA
    if (call.cuda()) return cuda::center_loss(p);
#endif
    cpu::center_loss(p);
  });
  if (grad && !direct && !grad_out.is_none()) {
    copy_into(call, grad_out, cast_to(std::move(g), out, dt));
    g = py::reinterpret_borrow<py::object>(grad_out);
  } else if (grad) {
    g = cast_to(std::move(g), out, dt);
  }
  return loss_and_grad(cast_to(std::move(loss), out, dt), grad ? g : py::none());
}

py::object update_centers_call(py::handle centers, py::handle features, py::handle labels, py::handle alpha) {
  Call call({{"centers", centers}, {"features", features}, {"labels", labels}});
  const TensorView cv = call.floats(centers, "centers");
  const TensorView xv = call.floats(features, "features");
  UpdateCentersParams p;
  p.labels = labels_for_kernel(call, call.indices(labels, "labels"));
  p.alpha = float_arg(alpha, "alpha");
  const DType out = cv.dtype, dt = compute_dtype(out);
  p.centers = call.converted(cv, dt);
  p.features = call.converted(xv, dt);  // the features take the centers' dtype
  check_update_centers_params(p);
  py::object result = call.empty({p.centers.shape[0], p.centers.shape[1]}, dt, &p.out);
#ifdef FASTLOSS_WITH_CUDA
  if (call.cuda()) {
    p.stream = call.stream();
    p.workspace = call.workspace(cuda::update_centers_workspace_bytes(p.centers.shape[0]));
  }
#endif
  run_released([&] {
#ifdef FASTLOSS_WITH_CUDA
    if (call.cuda()) return cuda::update_centers(p);
#endif
    cpu::update_centers(p);
  });
  return caller_result(cast_to(std::move(result), out, dt));
}

}  // namespace

void register_metric(py::module_& m) {
  m.def("large_margin_softmax_loss", &large_margin_call, py::arg("features"), py::arg("weight"), py::arg("labels"),
        py::arg("margin"), py::arg("beta"), py::arg("reduction"), py::arg("return_grad"), py::arg("grad_out"));
  m.def("center_loss", &center_loss_call, py::arg("features"), py::arg("labels"), py::arg("centers"),
        py::arg("reduction"), py::arg("return_grad"), py::arg("grad_out"));
  m.def("update_centers", &update_centers_call, py::arg("centers"), py::arg("features"), py::arg("labels"),
        py::arg("alpha"));
  // Test and benchmark hook: the L-Softmax row pass alone over given logits (overwritten by
  // their gradient); returns (loss, row_scale, class_scale).
  m.def("_large_margin_softmax_rows", [](py::handle features, py::handle weight, py::handle labels, py::handle margin,
                                          py::handle logits) {
    Call call({{"features", features}, {"weight", weight}, {"labels", labels}, {"logits", logits}});
    LargeMarginParams p;
    p.features = call.floats(features, "features");
    p.weight = call.floats(weight, "weight");
    p.labels = labels_for_kernel(call, call.indices(labels, "labels"));
    p.margin = margin_arg(margin);
    p.logits = call.floats(logits, "logits");
    p.grad = true;
    const int64_t N = p.features.shape[0], C = p.weight.shape[1];
    py::object loss = call.empty({}, p.features.dtype, &p.loss);
    py::object rs = call.empty({N}, DType::f64, &p.row_scale), cs = call.empty({C}, DType::f64, &p.class_scale);
    check_large_margin_params(p);
    if (call.cuda()) throw_value("_large_margin_softmax_rows is a CPU benchmark hook");
    run_released([&] { cpu::large_margin_softmax_rows(p); });
    return py::make_tuple(loss, rs, cs);
  });
}

}  // namespace fastloss
