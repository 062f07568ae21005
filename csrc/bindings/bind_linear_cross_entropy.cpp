// Python entry point of linear_cross_entropy: the loss of logits = hidden @ weight.T + bias
// without the (N, V) logits. The rows are cut into blocks (plan_linear_cross_entropy); for
// each block
//   1. logits = hidden[block] @ weight.T (+ bias, softcap) into one reused (rows, V) buffer,
//      by the call's array library (NumPy's matmul: its BLAS; CuPy's: cuBLAS);
//   2. the softmax cross-entropy row engine turns the buffer into the loss of each row and,
//      in place, d(sum of losses)/d(logits) (the softcap's derivative applied after);
//   3. grad_hidden[block] = G @ weight and grad_weight += G.T @ hidden[block] consume that
//      gradient block before the next block overwrites it (grad_bias += column sums of G).
// The "mean" scale (1 / counted rows, counted once for the whole batch) is applied to the
// finished gradients. float16 is computed in float32 and returned as float16.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <utility>

#include "array.h"
#include "fastloss/cross_entropy.h"
#include "fastloss/linear_cross_entropy.h"
#include "views.h"

namespace fastloss {

namespace {

int64_t g_block_bytes = kLinearCrossEntropyBlockBytes;  // test hook: _set_linear_cross_entropy_block_bytes

// Results in float64 when any float input is, else float32, float16 only when all are.
DType result_dtype(DType a, DType b, const TensorView& bias) {
  const bool f64 = a == DType::f64 || b == DType::f64 || (!is_none(bias) && bias.dtype == DType::f64);
  const bool f32 = a == DType::f32 || b == DType::f32 || (!is_none(bias) && bias.dtype == DType::f32);
  return f64 ? DType::f64 : f32 ? DType::f32 : DType::f16;
}

py::object cast_to(py::object a, DType want, DType have) {
  return want == have ? std::move(a) : a.attr("astype")(dtype_name(want));
}

py::slice rows(int64_t a, int64_t b) { return py::slice(static_cast<py::ssize_t>(a), static_cast<py::ssize_t>(b), 1); }

// A view of rows [r0, r0 + n) of a view whose first axis is the row axis.
TensorView row_range(TensorView v, int64_t r0, int64_t n) {
  if (v.data) v.data = static_cast<char*>(v.data) + r0 * v.strides[0] * dtype_size(v.dtype);
  v.shape[0] = n;
  return v;
}

// The labels as a host int64 view (CuPy labels are copied to the host once: the check and
// the mean's denominator need them there).
TensorView host_labels(const Call& call, py::handle labels, const TensorView& y, py::object* keep) {
  if (!call.cuda()) return y;
  *keep = numpy_module().attr("ascontiguousarray")(py::module_::import("cupy").attr("asnumpy")(labels), "int64");
  const py::array a = py::reinterpret_borrow<py::array>(*keep);
  TensorView v;
  v.data = const_cast<void*>(a.data());
  v.dtype = DType::i64;
  v.ndim = 1;
  v.shape[0] = a.ndim() == 1 ? a.shape(0) : 0;
  v.strides[0] = 1;
  return v;
}

// NumPy's floating-point warnings off for the call (inf or NaN inputs make the products and
// the softcap warn; the loss reports them as values, like every other fastloss function).
class NumpyQuiet {
 public:
  explicit NumpyQuiet(bool on) {
    if (on) {
      state_ = numpy_module().attr("errstate")(py::arg("all") = "ignore");
      state_.attr("__enter__")();
    }
  }
  ~NumpyQuiet() {
    if (!state_) return;
    try {
      state_.attr("__exit__")(py::none(), py::none(), py::none());
    } catch (...) {  // never throw from a destructor
    }
  }

 private:
  py::object state_;
};

py::object linear_ce_call(py::handle hidden, py::handle weight, py::handle labels, py::handle bias,
                          py::handle ignore_index, py::handle label_smoothing, py::handle z_loss, py::handle softcap,
                          py::handle reduction, py::handle return_grad) {
  Call call({{"hidden", hidden}, {"weight", weight}, {"labels", labels}, {"bias", bias}});
  LinearCrossEntropyParams p;
  p.hidden = call.floats(hidden, "hidden");
  p.weight = call.floats(weight, "weight");
  p.bias = call.floats_or_none(bias, "bias");
  p.labels = call.indices(labels, "labels");
  p.ignore_index = int_arg(ignore_index, "ignore_index");
  p.label_smoothing = float_arg(label_smoothing, "label_smoothing");
  p.z_loss = float_arg(z_loss, "z_loss");
  p.has_softcap = !softcap.is_none();
  if (p.has_softcap) p.softcap = float_arg(softcap, "softcap");
  p.reduction = reduction_arg(reduction);
  const bool grad = bool_arg(return_grad, "return_grad");
  check_linear_cross_entropy_params(p);

  const int64_t N = p.hidden.shape[0], D = p.hidden.shape[1], V = p.weight.shape[0];
  py::object host_keep;
  const int64_t counted = count_linear_cross_entropy_labels(host_labels(call, labels, p.labels, &host_keep), V,
                                                            p.ignore_index);
  const DType out = result_dtype(p.hidden.dtype, p.weight.dtype, p.bias);
  const DType dt = out == DType::f16 ? DType::f32 : out;
  const bool has_bias = !is_none(p.bias);
  const bool reduce_none = p.reduction == Reduction::none;

  py::object xp = call.cuda() ? py::module_::import("cupy") : py::object(numpy_module());
  auto zeros = [&](std::vector<int64_t> shape, DType d) {
    py::tuple s(shape.size());
    for (size_t i = 0; i < shape.size(); ++i) s[i] = shape[i];
    return xp.attr("zeros")(s, dtype_name(d));
  };
  // Results in the caller's library (torch tensors in, torch tensors out).
  auto finish = [&](py::object loss, py::object gh, py::object gw, py::object gb) -> py::object {
    if (!grad) return caller_result(std::move(loss));
    py::tuple g(has_bias ? 3 : 2);
    g[0] = cast_to(std::move(gh), p.hidden.dtype, dt);
    g[1] = cast_to(std::move(gw), p.weight.dtype, dt);
    if (has_bias) g[2] = cast_to(std::move(gb), p.bias.dtype, dt);
    return caller_result(py::make_tuple(std::move(loss), std::move(g)));
  };
  // Nothing counts (no rows, or every label ignored): zero loss and zero gradients, no products.
  if (counted == 0) {
    py::object loss = reduce_none ? zeros({N}, out) : zeros({}, out);
    return finish(std::move(loss), zeros({N, D}, dt), zeros({V, D}, dt), has_bias ? zeros({V}, dt) : py::object(py::none()));
  }

  const NumpyQuiet quiet(!call.cuda());
  // The operands in the compute dtype (float16 inputs: one float32 copy each).
  auto operand = [&](py::handle x) { return xp.attr("asarray")(x).attr("astype")(dtype_name(dt), py::arg("copy") = false); };
  const py::object X = operand(hidden), W = operand(weight), B = has_bias ? operand(bias) : py::object(py::none());
  const py::object WT = W.attr("T");
  const py::object matmul = xp.attr("matmul"), add = xp.attr("add"), multiply = xp.attr("multiply");

  const LinearCrossEntropyPlan plan = plan_linear_cross_entropy(N, V, D, dtype_size(dt), grad, p.has_softcap, g_block_bytes);
  const int64_t R = plan.rows;
  TensorView lbuf_v, loss_v, unused;
  py::object lbuf = call.empty({R, V}, dt, &lbuf_v);          // the logits block, then its gradient
  py::object tbuf = plan.buffers > 1 ? call.empty({R, V}, dt, &unused) : py::object(py::none());  // tanh(logits / softcap)
  py::object loss_rows = call.empty({N}, dt, &loss_v);        // each row's loss (summed in order at the end)
  TensorView y = p.labels;
  if (call.cuda() && y.dtype != DType::i32 && y.dtype != DType::i64) y = call.converted(y, DType::i64);
  py::object gh, gw, gb = py::none(), tmp = py::none();
  if (grad) {
    gh = call.empty({N, D}, dt, &unused);
    gw = call.empty({V, D}, dt, &unused);
    if (N > R) tmp = call.empty({plan.vocab_chunk, D}, dt, &unused);
  }
  void* workspace = call.cuda() ? call.workspace(64 + 8 * static_cast<size_t>(R)) : nullptr;
  const py::float_ cap(p.softcap);

  for (int64_t r0 = 0; r0 < N; r0 += R) {
    const int64_t n = N - r0 < R ? N - r0 : R;
    const py::object Hb = X[rows(r0, r0 + n)];
    const py::object L = n == R ? lbuf : py::object(lbuf[rows(0, n)]);
    const py::object T = plan.buffers > 1 ? (n == R ? tbuf : py::object(tbuf[rows(0, n)])) : py::object(py::none());
    matmul(Hb, WT, py::arg("out") = L);
    if (has_bias) add(L, B, py::arg("out") = L);
    if (p.has_softcap) {  // softcap * tanh(logits / softcap), as Gemma 2
      const py::object t = grad ? T : L;
      xp.attr("divide")(L, cap, py::arg("out") = t);
      xp.attr("tanh")(t, py::arg("out") = t);
      multiply(t, cap, py::arg("out") = L);
    }
    CrossEntropyParams cp;
    cp.logits = row_range(lbuf_v, 0, n);
    cp.labels = row_range(y, r0, n);
    cp.ignore_index = p.ignore_index;
    cp.label_smoothing = p.label_smoothing;
    cp.z_loss = p.z_loss;
    cp.reduction = Reduction::none;
    cp.loss = row_range(loss_v, r0, n);
    cp.grad = grad ? cp.logits : none_view();  // in place: the block becomes its gradient
    cp.stream = call.stream();
    cp.workspace = workspace;
    check_cross_entropy_params(cp, false);
    {
      py::gil_scoped_release release;
#ifdef FASTLOSS_WITH_CUDA
      if (call.cuda()) cuda::softmax_cross_entropy(cp);
      else
#endif
        cpu::softmax_cross_entropy(cp);
    }
    if (!grad) continue;
    if (p.has_softcap) {  // d/dz softcap * tanh(z / softcap) = 1 - tanh^2
      multiply(T, T, py::arg("out") = T);
      xp.attr("subtract")(1, T, py::arg("out") = T);
      multiply(L, T, py::arg("out") = L);
    }
    matmul(L, W, py::arg("out") = py::object(gh[rows(r0, r0 + n)]));
    if (r0 == 0) {
      matmul(L.attr("T"), Hb, py::arg("out") = gw);
      if (has_bias) gb = L.attr("sum")(py::arg("axis") = 0);
      continue;
    }
    // grad_weight += G.T @ hidden[block], a chunk of the vocabulary at a time (no (V, D) copy)
    for (int64_t v0 = 0; v0 < V; v0 += plan.vocab_chunk) {
      const int64_t v1 = V - v0 < plan.vocab_chunk ? V : v0 + plan.vocab_chunk;
      const py::object part = v1 - v0 == plan.vocab_chunk ? tmp : py::object(tmp[rows(0, v1 - v0)]);
      const py::object cols = L[py::make_tuple(rows(0, n), rows(v0, v1))];
      matmul(cols.attr("T"), Hb, py::arg("out") = part);
      const py::object dst = py::object(gw[rows(v0, v1)]);
      add(dst, part, py::arg("out") = dst);
    }
    if (has_bias) add(gb, L.attr("sum")(py::arg("axis") = 0), py::arg("out") = gb);
  }

  const double scale = p.reduction == Reduction::mean ? 1.0 / static_cast<double>(counted) : 1.0;
  py::object loss;
  if (reduce_none) {
    loss = cast_to(std::move(loss_rows), out, dt);
  } else {  // rows summed in float64, in row order: the same bits for any thread count
    py::object total = loss_rows.attr("sum")(py::arg("dtype") = "float64");
    if (scale != 1.0) total = total.attr("__mul__")(py::float_(scale));
    loss = xp.attr("asarray")(total).attr("astype")(dtype_name(out));
  }
  if (grad && scale != 1.0) {
    const py::float_ s(scale);
    multiply(gh, s, py::arg("out") = gh);
    multiply(gw, s, py::arg("out") = gw);
    if (has_bias) multiply(gb, s, py::arg("out") = gb);
  }
  return finish(std::move(loss), std::move(gh), std::move(gw), std::move(gb));
}

}  // namespace

void register_linear_cross_entropy(py::module_& m) {
  m.def("linear_cross_entropy", [](py::handle hidden, py::handle weight, py::handle labels, py::handle bias,
                                   py::handle ignore_index, py::handle label_smoothing, py::handle z_loss,
                                   py::handle softcap, py::handle reduction, py::handle return_grad) {
    return linear_ce_call(hidden, weight, labels, bias, ignore_index, label_smoothing, z_loss, softcap, reduction,
                          return_grad);
  });
  // Test hook: the block budget in bytes (small values force many blocks and vocabulary
  // chunks); 0 restores the default. Returns the previous value.
  m.def("_set_linear_cross_entropy_block_bytes", [](int64_t bytes) {
    const int64_t before = g_block_bytes;
    g_block_bytes = bytes > 0 ? bytes : kLinearCrossEntropyBlockBytes;
    return before;
  });
  // The plan of a call (rows per block, vocabulary chunk, buffers), for tests and docs.
  m.def("_linear_cross_entropy_plan", [](int64_t N, int64_t V, int64_t D, int item, bool grad, bool softcap) {
    const LinearCrossEntropyPlan pl = plan_linear_cross_entropy(N, V, D, item, grad, softcap, g_block_bytes);
    return py::make_tuple(pl.rows, pl.vocab_chunk, pl.buffers);
  });
}

}  // namespace fastloss
