// Python entry point of ctc_loss.
#include <pybind11/pybind11.h>

#include <vector>

#include "fastloss/ctc.h"
#include "views.h"

namespace fastloss {

namespace {

// A host int64 length vector from a 1-D descriptor of N values (Python converts to int64).
std::vector<int64_t> host_lengths(const py::handle& desc, const char* name, int64_t N) {
  const TensorView v = to_view(desc, name);
  if (is_none(v)) throw_value(std::string(name) + " is required");
  if (v.dtype != DType::i64) throw_type(std::string(name) + " must arrive as int64");
  if (v.ndim != 1 || v.shape[0] != N)
    throw_value(std::string(name) + " must have one entry per sample (N = " + std::to_string(N) + "), got " +
                std::to_string(v.ndim == 1 ? v.shape[0] : v.numel()) + (v.ndim == 1 ? "" : " in a non-1-D array"));
  std::vector<int64_t> out(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) out[i] = static_cast<const int64_t*>(v.data)[i * v.strides[0]];
  return out;
}

// (N, T, C) -> (T, N, C): swap the first two axes of a view.
TensorView to_tnc(TensorView v, const std::string& layout) {
  if (layout == "NTC" && v.ndim >= 2) {
    std::swap(v.shape[0], v.shape[1]);
    std::swap(v.strides[0], v.strides[1]);
  }
  return v;
}

}  // namespace

void register_ctc(py::module_& m) {
  m.def(
      "ctc_loss",
      [](py::handle log_probs, py::handle labels, py::handle input_lengths, py::handle label_lengths, int64_t blank,
         const std::string& layout, bool from_logits, bool zero_infinity, const std::string& reduction,
         py::handle loss, py::handle grad, bool cuda, uintptr_t stream, py::handle workspace) {
        if (layout != "TNC" && layout != "NTC") throw_value("layout must be 'TNC' or 'NTC', got '" + layout + "'");
        CtcParams p;
        p.log_probs = to_view(log_probs, "log_probs");
        if (p.log_probs.ndim != 3)
          throw_value("log_probs must be 3-D ((T, N, C) for layout 'TNC', (N, T, C) for 'NTC'), got " +
                      std::to_string(p.log_probs.ndim) + " dimensions");
        p.log_probs = to_tnc(p.log_probs, layout);
        const int64_t N = p.log_probs.shape[1];
        p.labels = to_view(labels, "labels");
        const std::vector<int64_t> il = host_lengths(input_lengths, "input_lengths", N);
        const std::vector<int64_t> ll = host_lengths(label_lengths, "label_lengths", N);
        p.input_lengths = il.data();
        p.label_lengths = ll.data();
        p.blank = blank;
        p.from_logits = from_logits;
        p.zero_infinity = zero_infinity;
        p.reduction = to_reduction(reduction);
        p.loss = to_view(loss, "loss");
        const TensorView g = to_view(grad, "grad_out");
        p.grad = is_none(g) ? g : to_tnc(g, layout);
        p.stream = reinterpret_cast<void*>(stream);
        const TensorView ws = to_view(workspace, "workspace");
        p.workspace = is_none(ws) ? nullptr : ws.data;
        check_ctc_params(p);
        py::gil_scoped_release release;
        if (cuda) {
#ifdef FASTLOSS_WITH_CUDA
          cuda::ctc_loss(p);
#else
          throw_type("fastloss was built without CUDA; CuPy arrays are not supported by this build");
#endif
        } else {
          cpu::ctc_loss(p);
        }
      },
      py::arg("log_probs"), py::arg("labels"), py::arg("input_lengths"), py::arg("label_lengths"), py::arg("blank"),
      py::arg("layout"), py::arg("from_logits"), py::arg("zero_infinity"), py::arg("reduction"), py::arg("loss"),
      py::arg("grad"), py::arg("cuda") = false, py::arg("stream") = 0, py::arg("workspace") = py::none());

  // Bytes of device workspace the CUDA ctc_loss needs.
  m.def("ctc_workspace_bytes", [](int64_t T, int64_t N, int64_t C, int64_t max_label_length, bool from_logits,
                                  bool f64) {
    return static_cast<int64_t>(ctc_workspace_layout(T, N, C, max_label_length, from_logits, f64).total);
  });
}

}  // namespace fastloss
