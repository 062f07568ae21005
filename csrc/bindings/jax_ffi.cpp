// XLA FFI handlers for fastloss.jax (built when CMake finds jaxlib's FFI headers): XLA calls
// them directly inside a jitted computation, with no Python on the call path. Each reads
// XLA's row-major buffers as TensorViews and runs the same CPU kernel the NumPy call runs.
// fastloss.jax registers them (jax.ffi.register_ffi_target) from the capsules that
// jax_ffi_targets() returns. Empty unless FASTLOSS_WITH_JAX_FFI (CMake defines it with the
// include path; builds that compile every binding, like tools/cuda_emu, skip it).
#ifdef FASTLOSS_WITH_JAX_FFI
#include <pybind11/pybind11.h>

#include <exception>
#include <string>

#include "fastloss/cross_entropy.h"
#include "fastloss/elementwise.h"
#include "xla/ffi/api/ffi.h"

namespace fastloss {
namespace {
namespace ffi = xla::ffi;
namespace py = pybind11;

bool dtype_of(ffi::DataType t, DType* d) {
  switch (t) {
    case ffi::DataType::F16: *d = DType::f16; return true;
    case ffi::DataType::F32: *d = DType::f32; return true;
    case ffi::DataType::F64: *d = DType::f64; return true;
    case ffi::DataType::S8: *d = DType::i8; return true;
    case ffi::DataType::S16: *d = DType::i16; return true;
    case ffi::DataType::S32: *d = DType::i32; return true;
    case ffi::DataType::S64: *d = DType::i64; return true;
    case ffi::DataType::U8: *d = DType::u8; return true;
    case ffi::DataType::U16: *d = DType::u16; return true;
    case ffi::DataType::U32: *d = DType::u32; return true;
    case ffi::DataType::U64: *d = DType::u64; return true;
    default: return false;
  }
}

// XLA's buffers are dense and row-major (the default layout ffi_call asks for).
TensorView view_of(const ffi::AnyBuffer& b, const char* name) {
  TensorView v;
  if (!dtype_of(b.element_type(), &v.dtype)) throw_type(std::string(name) + ": unsupported dtype");
  const auto dims = b.dimensions();
  v.ndim = static_cast<int>(dims.size());
  if (v.ndim > kMaxDims) throw_value(std::string(name) + " has too many dimensions");
  int64_t stride = 1;
  for (int i = v.ndim - 1; i >= 0; --i) {
    v.shape[i] = dims[i];
    v.strides[i] = stride;
    stride *= dims[i] > 1 ? dims[i] : 1;
  }
  v.data = b.untyped_data();
  return v;
}

// softmax_cross_entropy, or nll_loss (nll = 1; label_smoothing and z_loss are then 0).
ffi::Error cross_entropy(ffi::AnyBuffer logits, ffi::AnyBuffer labels, ffi::AnyBuffer* loss, ffi::AnyBuffer* grad,
                         int64_t ignore_index, double label_smoothing, double z_loss, int32_t reduction, int32_t nll) {
  try {
    CrossEntropyParams p;
    p.logits = view_of(logits, "logits");
    p.labels = view_of(labels, "labels");
    p.ignore_index = ignore_index;
    p.label_smoothing = label_smoothing;
    p.z_loss = z_loss;
    p.reduction = static_cast<Reduction>(reduction);
    p.loss = view_of(*loss, "loss");
    if (grad) p.grad = view_of(*grad, "grad");
    check_cross_entropy_params(p, nll != 0);
    nll ? cpu::nll_loss(p) : cpu::softmax_cross_entropy(p);
  } catch (const std::exception& e) {
    return ffi::Error(ffi::ErrorCode::kInvalidArgument,
                      std::string(nll ? "fastloss.jax.nll_loss: " : "fastloss.jax.softmax_cross_entropy: ") + e.what());
  }
  return ffi::Error::Success();
}

ffi::Error cross_entropy_loss(ffi::AnyBuffer logits, ffi::AnyBuffer labels, ffi::Result<ffi::AnyBuffer> loss,
                              int64_t ignore_index, double label_smoothing, double z_loss, int32_t reduction,
                              int32_t nll) {
  return cross_entropy(logits, labels, &*loss, nullptr, ignore_index, label_smoothing, z_loss, reduction, nll);
}

ffi::Error cross_entropy_grad(ffi::AnyBuffer logits, ffi::AnyBuffer labels, ffi::Result<ffi::AnyBuffer> loss,
                              ffi::Result<ffi::AnyBuffer> grad, int64_t ignore_index, double label_smoothing,
                              double z_loss, int32_t reduction, int32_t nll) {
  return cross_entropy(logits, labels, &*loss, &*grad, ignore_index, label_smoothing, z_loss, reduction, nll);
}

// The eleven elementwise losses (pred and target of one shape, no weights): `kind` is the
// ElementwiseLoss enum value, the options are ElementwiseParams' fields.
ffi::Error elementwise(ffi::AnyBuffer pred, ffi::AnyBuffer target, ffi::AnyBuffer* loss, ffi::AnyBuffer* grad,
                       ffi::Dictionary attrs) {
  try {
    ElementwiseParams p;
    const auto i32 = [&](const char* k) {
      auto r = attrs.get<int32_t>(k);
      if (!r.has_value()) throw_value(std::string("internal: no int32 attribute ") + k);
      return r.value();
    };
    const auto f64 = [&](const char* k) {
      auto r = attrs.get<double>(k);
      if (!r.has_value()) throw_value(std::string("internal: no float64 attribute ") + k);
      return r.value();
    };
    p.kind = static_cast<ElementwiseLoss>(i32("kind"));
    p.pred = view_of(pred, "pred");
    p.target = view_of(target, "target");
    p.alpha = f64("alpha");
    p.gamma = f64("gamma");
    p.margin = f64("margin");
    p.softness = f64("softness");
    p.delta = f64("delta");
    p.beta = f64("beta");
    p.log_target = i32("log_target");
    p.squared = i32("squared");
    p.soft = i32("soft");
    p.beta_from_targets = i32("beta_from_targets");
    p.batchmean = i32("batchmean");
    p.reduction = static_cast<Reduction>(i32("reduction"));
    p.loss = view_of(*loss, "loss");
    if (grad) p.grad = view_of(*grad, "grad");
    cpu::elementwise_loss(p);
  } catch (const std::exception& e) {
    return ffi::Error(ffi::ErrorCode::kInvalidArgument, std::string("fastloss.jax: ") + e.what());
  }
  return ffi::Error::Success();
}

ffi::Error elementwise_loss(ffi::AnyBuffer pred, ffi::AnyBuffer target, ffi::Result<ffi::AnyBuffer> loss,
                            ffi::Dictionary attrs) {
  return elementwise(pred, target, &*loss, nullptr, std::move(attrs));
}

ffi::Error elementwise_grad(ffi::AnyBuffer pred, ffi::AnyBuffer target, ffi::Result<ffi::AnyBuffer> loss,
                            ffi::Result<ffi::AnyBuffer> grad, ffi::Dictionary attrs) {
  return elementwise(pred, target, &*loss, &*grad, std::move(attrs));
}

}  // namespace
}  // namespace fastloss

XLA_FFI_DEFINE_HANDLER_SYMBOL(fastloss_ffi_elementwise_loss, fastloss::elementwise_loss,
                              xla::ffi::Ffi::Bind()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .Ret<xla::ffi::AnyBuffer>()
                                  .Attrs());
XLA_FFI_DEFINE_HANDLER_SYMBOL(fastloss_ffi_elementwise_grad, fastloss::elementwise_grad,
                              xla::ffi::Ffi::Bind()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .Ret<xla::ffi::AnyBuffer>()
                                  .Ret<xla::ffi::AnyBuffer>()
                                  .Attrs());
XLA_FFI_DEFINE_HANDLER_SYMBOL(fastloss_ffi_cross_entropy_loss, fastloss::cross_entropy_loss,
                              xla::ffi::Ffi::Bind()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .Ret<xla::ffi::AnyBuffer>()
                                  .Attr<int64_t>("ignore_index")
                                  .Attr<double>("label_smoothing")
                                  .Attr<double>("z_loss")
                                  .Attr<int32_t>("reduction")
                                  .Attr<int32_t>("nll"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(fastloss_ffi_cross_entropy_grad, fastloss::cross_entropy_grad,
                              xla::ffi::Ffi::Bind()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .Ret<xla::ffi::AnyBuffer>()
                                  .Ret<xla::ffi::AnyBuffer>()
                                  .Attr<int64_t>("ignore_index")
                                  .Attr<double>("label_smoothing")
                                  .Attr<double>("z_loss")
                                  .Attr<int32_t>("reduction")
                                  .Attr<int32_t>("nll"));

namespace fastloss {
void register_jax_ffi(pybind11::module_& m) {
  m.def("jax_ffi_targets", [] {
    py::dict d;
    d["fastloss_cross_entropy_loss"] = py::capsule(reinterpret_cast<void*>(&fastloss_ffi_cross_entropy_loss));
    d["fastloss_cross_entropy_grad"] = py::capsule(reinterpret_cast<void*>(&fastloss_ffi_cross_entropy_grad));
    d["fastloss_elementwise_loss"] = py::capsule(reinterpret_cast<void*>(&fastloss_ffi_elementwise_loss));
    d["fastloss_elementwise_grad"] = py::capsule(reinterpret_cast<void*>(&fastloss_ffi_elementwise_grad));
    return d;
  }, "The XLA FFI handlers fastloss.jax registers, by target name (PyCapsules).");
}
}  // namespace fastloss
#endif  // FASTLOSS_WITH_JAX_FFI
