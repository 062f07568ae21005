// Python entry points of the row-wise losses: softmax_focal_loss, truncated_cross_entropy and
// the divergences (entropy, kl_divergence, js_divergence).
#include <pybind11/pybind11.h>

#include "fastloss/rowwise.h"
#include "views.h"

namespace fastloss {
namespace {

// logits (class axis moved last), integer labels and the outputs, as cross-entropy reads them.
CrossEntropyParams label_rows(const py::handle& logits, const py::handle& labels, int64_t ignore_index, int axis,
                              const std::string& reduction, const py::handle& loss, const py::handle& grad) {
  CrossEntropyParams p;
  const TensorView x = to_view(logits, "logits");
  if (x.ndim < 1) throw_value("logits must have at least one dimension (the class axis)");
  axis = normalize_axis(axis, x.ndim, "logits");
  p.logits = x.axis_moved_last(axis);
  p.labels = to_view(labels, "labels");
  p.ignore_index = ignore_index;
  p.reduction = to_reduction(reduction);
  p.loss = to_view(loss, "loss");
  const TensorView g = to_view(grad, "grad_out");
  p.grad = is_none(g) || g.ndim != x.ndim ? g : g.axis_moved_last(axis);
  return p;
}

void no_cuda(bool cuda, const char* name) {
  if (cuda) throw_type(std::string(name) + ": CuPy arrays are not supported yet (no CUDA kernel); pass NumPy arrays");
}

}  // namespace

void register_rowwise(py::module_& m) {
  m.def(
      "softmax_focal_loss",
      [](py::handle logits, py::handle labels, py::handle alpha, double alpha_scalar, double gamma, int64_t ignore_index,
         int axis, const std::string& reduction, py::handle loss, py::handle grad, bool cuda) {
        SoftmaxFocalParams p;
        p.rows = label_rows(logits, labels, ignore_index, axis, reduction, loss, grad);
        p.alpha = to_view(alpha, "alpha");
        p.alpha_scalar = alpha_scalar;
        p.gamma = gamma;
        check_softmax_focal_params(p);
        no_cuda(cuda, "softmax_focal_loss");
        py::gil_scoped_release release;
        cpu::softmax_focal_loss(p);
      },
      py::arg("logits"), py::arg("labels"), py::arg("alpha"), py::arg("alpha_scalar"), py::arg("gamma"),
      py::arg("ignore_index"), py::arg("axis"), py::arg("reduction"), py::arg("loss"), py::arg("grad"),
      py::arg("cuda") = false);

  m.def(
      "truncated_cross_entropy",
      [](py::handle logits, py::handle labels, double margin, bool soft, double softness, int64_t ignore_index, int axis,
         const std::string& reduction, py::handle loss, py::handle grad, bool cuda) {
        TruncatedCrossEntropyParams p;
        p.rows = label_rows(logits, labels, ignore_index, axis, reduction, loss, grad);
        p.margin = margin;
        p.soft = soft;
        p.softness = softness;
        check_truncated_cross_entropy_params(p);
        no_cuda(cuda, "truncated_cross_entropy");
        py::gil_scoped_release release;
        cpu::truncated_cross_entropy(p);
      },
      py::arg("logits"), py::arg("labels"), py::arg("margin"), py::arg("soft"), py::arg("softness"),
      py::arg("ignore_index"), py::arg("axis"), py::arg("reduction"), py::arg("loss"), py::arg("grad"),
      py::arg("cuda") = false);

  // kind: "entropy", "kl" or "js"; q None for entropy; out shaped like p without `axis`.
  m.def(
      "divergence",
      [](const std::string& kind, py::handle p_arr, py::handle q_arr, int axis, py::handle out, bool cuda) {
        DivergenceParams p;
        p.kind = kind == "kl" ? Divergence::kl : kind == "js" ? Divergence::js : Divergence::entropy;
        const TensorView pv = to_view(p_arr, "p");
        if (pv.ndim < 1) throw_value("p must have at least one dimension (the axis summed over)");
        axis = normalize_axis(axis, pv.ndim, "p");
        p.p = pv.axis_moved_last(axis);
        const TensorView qv = to_view(q_arr, "q");
        p.q = is_none(qv) || qv.ndim != pv.ndim ? qv : qv.axis_moved_last(axis);
        p.out = to_view(out, "out");
        check_divergence_params(p);
        no_cuda(cuda, kind == "kl" ? "kl_divergence" : kind == "js" ? "js_divergence" : "entropy");
        py::gil_scoped_release release;
        cpu::divergence(p);
      },
      py::arg("kind"), py::arg("p"), py::arg("q"), py::arg("axis"), py::arg("out"), py::arg("cuda") = false);

  m.def(
      "multiclass_hinge_loss",
      [](py::handle scores, py::handle labels, double margin, double power, py::handle weight, const std::string& kind,
         int axis, const std::string& reduction, py::handle loss, py::handle grad, bool cuda) {
        MulticlassHingeParams p;
        const TensorView x = to_view(scores, "scores");
        if (x.ndim < 1) throw_value("scores must have at least one dimension (the class axis)");
        axis = normalize_axis(axis, x.ndim, "scores");
        p.scores = x.axis_moved_last(axis);
        p.labels = to_view(labels, "labels");
        p.weight = to_view(weight, "weight");
        p.margin = margin;
        p.p = power;
        if (kind != "weston_watkins" && kind != "crammer_singer")
          throw_value("kind must be 'weston_watkins' or 'crammer_singer', got '" + kind + "'");
        p.crammer_singer = kind == "crammer_singer";
        p.reduction = to_reduction(reduction);
        p.loss = to_view(loss, "loss");
        const TensorView g = to_view(grad, "grad_out");
        p.grad = is_none(g) || g.ndim != x.ndim ? g : g.axis_moved_last(axis);
        check_multiclass_hinge_params(p);
        no_cuda(cuda, "multiclass_hinge_loss");
        py::gil_scoped_release release;
        cpu::multiclass_hinge_loss(p);
      },
      py::arg("scores"), py::arg("labels"), py::arg("margin"), py::arg("p"), py::arg("weight"), py::arg("kind"),
      py::arg("axis"), py::arg("reduction"), py::arg("loss"), py::arg("grad"), py::arg("cuda") = false);
}

}  // namespace fastloss
