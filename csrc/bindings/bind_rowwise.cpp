// Python entry points of the row-wise losses: softmax_focal_loss, truncated_cross_entropy,
// multiclass_hinge_loss and the divergences (entropy, kl_divergence, js_divergence). The
// user's objects arrive as passed (python/fastloss/rowwise.py only names the keywords) and are
// read, checked and allocated here through the array layer.
#include <pybind11/pybind11.h>

#include "array.h"
#include "fastloss/rowwise.h"
#include "views.h"

namespace fastloss {
namespace {

// Losses with no CUDA kernel yet (l2_loss on main uses it).
[[maybe_unused]] void cpu_only(const Call& call, const char* name) {
  if (call.cuda()) throw_type(std::string(name) + ": CuPy arrays are not supported yet (no CUDA kernel); pass NumPy arrays");
}

// The CUDA kernel in a CUDA build (call.cuda() is never true in a CPU-only one).
#ifdef FASTLOSS_WITH_CUDA
#define FASTLOSS_ROWWISE_CUDA(expr) expr
#else
#define FASTLOSS_ROWWISE_CUDA(expr) throw_type("this build has no CUDA kernels")
#endif

// CUDA label rows: the stream and the device workspace (per-row losses, the label flag).
void gpu_stream(Call& call, CrossEntropyParams& p) {
  if (!call.cuda()) return;
  p.stream = call.stream();
  p.workspace = call.workspace(cuda::rowwise_workspace_bytes(p.logits.drop_last().numel()));
}

// A scalar argument (Python or NumPy number, or a 0-d array) rather than an array.
bool is_scalar(py::handle x) {
  if (py::isinstance<py::float_>(x) || py::isinstance<py::int_>(x)) return true;
  if (py::isinstance(x, numpy_module().attr("generic"))) return true;
  return py::hasattr(x, "ndim") && !is_cupy_array(x) && x.attr("ndim").cast<int>() == 0;
}

// logits (class axis moved last), integer labels and the outputs, as cross-entropy reads them.
struct LabelRows {
  CrossEntropyParams p;
  py::object loss, grad = py::none();
};
LabelRows label_rows(Call& call, py::handle logits, py::handle labels, py::handle ignore_index, py::handle axis,
                     py::handle reduction, py::handle return_grad, py::handle grad_out) {
  LabelRows r;
  r.p.reduction = reduction_arg(reduction);
  const TensorView x = call.floats(logits, "logits");
  if (x.ndim < 1) throw_value("logits must have at least one dimension (the class axis)");
  r.p.labels = call.indices(labels, "labels");
  const int ax = normalize_axis(int_arg(axis, "axis"), x.ndim, "logits");
  r.p.ignore_index = int_arg(ignore_index, "ignore_index");
  r.p.logits = x.axis_moved_last(ax);
  r.loss = call.empty(r.p.reduction == Reduction::none ? shape_of(x, ax) : std::vector<int64_t>{}, x.dtype, &r.p.loss);
  if (bool_arg(return_grad, "return_grad") || !grad_out.is_none()) {
    TensorView g;
    // The CPU row engine reads each element before writing its gradient (cross-entropy's
    // in-place path); the CUDA kernels get a temporary.
    r.grad = call.grad_out(grad_out, x, "logits", &g, !call.cuda());
    r.p.grad = g.axis_moved_last(ax);
  }
  return r;
}

// entropy (q None) or the two-input divergences: the values, or (values, grad_p) for entropy and
// (values, (grad_p, grad_q)) for KL and JS with return_grad.
py::object divergence_call(Divergence kind, py::handle p_arr, py::handle q_arr, py::handle base, py::handle axis,
                           py::handle return_grad, py::handle grad_out) {
  Call call({{"p", p_arr}, {"q", q_arr}, {"grad_out", grad_out}});
  DivergenceParams p;
  p.kind = kind;
  const TensorView pv = call.floats(p_arr, "p");
  if (pv.ndim < 1) throw_value("p must have at least one dimension (the axis summed over)");
  const TensorView qv = kind == Divergence::entropy ? none_view() : call.floats(q_arr, "q");
  const int ax = normalize_axis(int_arg(axis, "axis"), pv.ndim, "p");
  p.p = pv.axis_moved_last(ax);
  p.q = is_none(qv) || qv.ndim != pv.ndim ? qv : qv.axis_moved_last(ax);
  if (!base.is_none()) {
    p.base_given = true;
    p.base = float_arg(base, "base");
  }
  py::object out = call.empty(shape_of(pv, ax), pv.dtype, &p.out);
  check_divergence_params(p);
  const bool want_grad = bool_arg(return_grad, "return_grad") || !grad_out.is_none();
  py::object gp = py::none(), gq = py::none();
  if (want_grad) {
    TensorView g;
    gp = call.grad_out(grad_out, pv, "p", &g);
    p.grad_p = g.axis_moved_last(ax);
    if (kind != Divergence::entropy) {
      gq = call.grad_out(py::none(), qv, "q", &g);
      p.grad_q = g.axis_moved_last(ax);
    }
  }
  {
    py::gil_scoped_release release;
    if (call.cuda()) FASTLOSS_ROWWISE_CUDA(cuda::divergence(p, call.stream()));
    else cpu::divergence(p);
  }
  if (!want_grad) return caller_result(out);
  return caller_result(py::make_tuple(out, kind == Divergence::entropy ? gp : py::object(py::make_tuple(gp, gq))));
}

}  // namespace

void register_rowwise(py::module_& m) {
  m.def("softmax_focal_loss", [](py::handle logits, py::handle labels, py::handle alpha, py::handle gamma,
                                 py::handle ignore_index, py::handle axis, py::handle reduction, py::handle return_grad,
                                 py::handle grad_out) {
    const bool scalar_alpha = alpha.is_none() || is_scalar(alpha);
    Call call({{"logits", logits}, {"labels", labels}, {"alpha", scalar_alpha ? py::handle(py::none()) : alpha},
               {"grad_out", grad_out}});
    SoftmaxFocalParams p;
    // alpha is read before the gradient so that grad_out's overlap check sees it
    if (!scalar_alpha) p.alpha = call.values(alpha, "alpha");
    LabelRows r = label_rows(call, logits, labels, ignore_index, axis, reduction, return_grad, grad_out);
    p.rows = r.p;
    if (alpha.is_none()) p.alpha_scalar = 1.0;
    else if (scalar_alpha) p.alpha_scalar = float_arg(py::hasattr(alpha, "item") ? alpha.attr("item")() : alpha, "alpha");
    p.gamma = float_arg(gamma, "gamma");
    check_softmax_focal_params(p);
    gpu_stream(call, p.rows);
    {
      py::gil_scoped_release release;
      if (call.cuda()) FASTLOSS_ROWWISE_CUDA(cuda::softmax_focal_loss(p));
      else cpu::softmax_focal_loss(p);
    }
    return loss_and_grad(std::move(r.loss), std::move(r.grad));
  });

  m.def("truncated_cross_entropy", [](py::handle logits, py::handle labels, py::handle margin, py::handle softness,
                                      py::handle axis, py::handle ignore_index, py::handle reduction,
                                      py::handle return_grad, py::handle grad_out) {
    Call call({{"logits", logits}, {"labels", labels}, {"grad_out", grad_out}});
    TruncatedCrossEntropyParams p;
    LabelRows r = label_rows(call, logits, labels, ignore_index, axis, reduction, return_grad, grad_out);
    p.rows = r.p;
    p.margin = float_arg(margin, "margin");
    p.soft = !softness.is_none();
    p.softness = p.soft ? float_arg(softness, "softness") : 0.0;
    check_truncated_cross_entropy_params(p);
    gpu_stream(call, p.rows);
    {
      py::gil_scoped_release release;
      if (call.cuda()) FASTLOSS_ROWWISE_CUDA(cuda::truncated_cross_entropy(p));
      else cpu::truncated_cross_entropy(p);
    }
    return loss_and_grad(std::move(r.loss), std::move(r.grad));
  });

  m.def("multiclass_hinge_loss", [](py::handle scores, py::handle labels, py::handle margin, py::handle power,
                                    py::handle weight, py::handle kind, py::handle axis, py::handle reduction,
                                    py::handle return_grad, py::handle grad_out) {
    Call call({{"scores", scores}, {"labels", labels}, {"weight", weight}, {"grad_out", grad_out}});
    MulticlassHingeParams p;
    p.reduction = reduction_arg(reduction);
    const TensorView x = call.floats(scores, "scores");
    if (x.ndim < 1) throw_value("scores must have at least one dimension (the class axis)");
    p.labels = call.indices(labels, "labels");
    p.weight = call.values_or_none(weight, "weight");
    const int ax = normalize_axis(int_arg(axis, "axis"), x.ndim, "scores");
    p.margin = float_arg(margin, "margin");
    p.p = float_arg(power, "p");
    const std::string k = str_arg(kind, "kind");
    if (k != "weston_watkins" && k != "crammer_singer")
      throw_value("kind must be 'weston_watkins' or 'crammer_singer', got '" + k + "'");
    p.crammer_singer = k == "crammer_singer";
    p.scores = x.axis_moved_last(ax);
    py::object loss = call.empty(p.reduction == Reduction::none ? shape_of(x, ax) : std::vector<int64_t>{}, x.dtype, &p.loss);
    py::object grad = py::none();
    if (bool_arg(return_grad, "return_grad") || !grad_out.is_none()) {
      TensorView g;
      grad = call.grad_out(grad_out, x, "scores", &g, false);  // in place: through a temporary
      p.grad = g.axis_moved_last(ax);
    }
    check_multiclass_hinge_params(p);
    [[maybe_unused]] void* ws = call.cuda() ? call.workspace(cuda::rowwise_workspace_bytes(p.scores.drop_last().numel())) : nullptr;
    {
      py::gil_scoped_release release;
      if (call.cuda()) FASTLOSS_ROWWISE_CUDA(cuda::multiclass_hinge_loss(p, call.stream(), ws));
      else cpu::multiclass_hinge_loss(p);
    }
    return loss_and_grad(std::move(loss), std::move(grad));
  });

  m.def("entropy", [](py::handle p, py::handle base, py::handle axis, py::handle return_grad, py::handle grad_out) {
    return divergence_call(Divergence::entropy, p, py::none(), base, axis, return_grad, grad_out);
  });
  m.def("kl_divergence", [](py::handle p, py::handle q, py::handle axis, py::handle return_grad) {
    return divergence_call(Divergence::kl, p, q, py::none(), axis, return_grad, py::none());
  });
  m.def("js_divergence", [](py::handle p, py::handle q, py::handle axis, py::handle return_grad) {
    return divergence_call(Divergence::js, p, q, py::none(), axis, return_grad, py::none());
  });

  // --- l2_loss ---
  m.def("l2_loss", [](py::handle pred, py::handle target, py::handle weight, py::handle axis, py::handle reduction,
                      py::handle return_grad, py::handle grad_out) {
    Call call({{"pred", pred}, {"target", target}, {"weight", weight}, {"grad_out", grad_out}});
    L2LossParams p;
    p.reduction = reduction_arg(reduction);
    const TensorView x = call.floats(pred, "pred");
    if (x.ndim < 1) throw_value("pred must have at least one dimension (the axis summed over)");
    TensorView t = call.values(target, "target");
    if (call.cuda() && t.dtype != x.dtype) t = call.converted(t, x.dtype);  // the CUDA kernel reads pred's dtype
    p.weight = call.values_or_none(weight, "weight");
    const int ax = normalize_axis(int_arg(axis, "axis"), x.ndim, "pred");
    p.pred = x.axis_moved_last(ax);
    p.target = t.ndim == x.ndim ? t.axis_moved_last(ax) : t;
    py::object loss = call.empty(p.reduction == Reduction::none ? shape_of(x, ax) : std::vector<int64_t>{}, x.dtype, &p.loss);
    py::object grad = py::none();
    if (bool_arg(return_grad, "return_grad") || !grad_out.is_none()) {
      TensorView g;
      grad = call.grad_out(grad_out, x, "pred", &g, false);  // in place: through a temporary
      p.grad = g.axis_moved_last(ax);
    }
    check_l2_loss_params(p);
    [[maybe_unused]] void* ws = call.cuda() ? call.workspace(cuda::rowwise_workspace_bytes(p.pred.drop_last().numel())) : nullptr;
    {
      py::gil_scoped_release release;
      if (call.cuda()) FASTLOSS_ROWWISE_CUDA(cuda::l2_loss(p, call.stream(), ws));
      else cpu::l2_loss(p);
    }
    return loss_and_grad(std::move(loss), std::move(grad));
  });
}

}  // namespace fastloss
