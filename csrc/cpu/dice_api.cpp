// Dice loss: argument checks and canonical layout (shared by CPU and CUDA), CPU dispatch.
#include <cmath>
#include <string>

#include "fastloss/dice.h"

namespace fastloss {
namespace {

// Appends a size-1, stride-0 dimension.
void append_unit(TensorView& v, const char* name) {
  if (v.ndim >= kMaxDims)
    throw_value(std::string(name) + " has too many dimensions (at most " + std::to_string(kMaxDims - 1) +
                " here; pass axis= or merge dimensions)");
  v.shape[v.ndim] = 1;
  v.strides[v.ndim] = 0;
  ++v.ndim;
}

// (N, positions..., C): class axis last (or a unit class dim), then at least one position dim.
TensorView canonical(const TensorView& v, int axis, const char* name) {
  TensorView c = axis >= 0 ? v.axis_moved_last(axis) : v;
  if (axis < 0) append_unit(c, name);
  if (c.ndim == 2) {  // (N, C): one position per sample
    append_unit(c, name);
    c.shape[2] = c.shape[1];
    c.strides[2] = c.strides[1];
    c.shape[1] = 1;
    c.strides[1] = 0;
  }
  return c;
}

}  // namespace

void dice_layout(DiceParams& p, const TensorView& x, const TensorView& t, int axis) {
  if (!is_float(x.dtype)) throw_type(std::string("inputs must be float16, float32 or float64, got ") + dtype_name(x.dtype));
  if (x.ndim < 1) throw_value("inputs must have at least one dimension (the samples)");
  if (axis == 0) throw_value("axis must name the class axis, not 0 (the first axis holds the samples)");
  if (axis >= x.ndim) throw_value("axis " + std::to_string(axis) + " is out of range for inputs " + shape_string(x));
  if (!(p.smooth >= 0.0) || std::isinf(p.smooth)) throw_value("smooth must be a finite number >= 0, got " + number_string(p.smooth));
  if (!(p.smooth_nr >= 0.0) || std::isinf(p.smooth_nr))
    throw_value("smooth_nr must be a finite number >= 0, got " + number_string(p.smooth_nr));
  if (!(p.smooth_dr >= 0.0) || std::isinf(p.smooth_dr))
    throw_value("smooth_dr must be a finite number >= 0, got " + number_string(p.smooth_dr));
  if (p.first_class && axis < 0)
    throw_value("include_background=False needs axis (the class axis whose class 0 is left out)");
  // As MONAI: a single class is kept (include_background=False is ignored with one channel).
  if (p.first_class && x.shape[axis] <= 1) p.first_class = 0;
  const int64_t kept = axis < 0 ? 1 : x.shape[axis] - p.first_class;
  if (!is_none(p.weight)) {
    if (p.weight.ndim != 1 || p.weight.shape[0] != kept)
      throw_value("weight must have one entry per class" + std::string(p.first_class ? " after class 0" : "") + " (" +
                  std::to_string(kept) + (axis < 0 ? ", no class axis" : "") + "), got shape " + shape_string(p.weight));
    if (p.weight.dtype != DType::f64) throw_type("internal: dice weight must be read as float64");
  }
  if (p.activation == DiceActivation::softmax && axis < 0)
    throw_value("activation='softmax' needs axis (the class axis the softmax runs over)");
  p.per_class = axis >= 0;
  p.int_targets = !is_float(t.dtype);
  if (t.dtype == DType::b1) throw_type("targets must be float or integer, got bool");
  p.inputs = canonical(x, axis, "inputs");
  if (p.int_targets) {
    if (axis < 0)
      throw_value("integer targets are class labels and need axis (the class axis of inputs); pass float targets "
                  "for masks or probabilities");
    bool same = t.ndim == x.ndim - 1;
    for (int i = 0, k = 0; same && i < x.ndim; ++i)
      if (i != axis) same = t.shape[k++] == x.shape[i];
    if (!same)
      throw_value("integer targets must have the shape of inputs " + shape_string(x) + " without axis " +
                  std::to_string(axis) + ", got " + shape_string(t));
    p.targets = t;
    if (p.targets.ndim == 1) append_unit(p.targets, "targets");
  } else {
    bool same = t.ndim == x.ndim;
    for (int i = 0; same && i < x.ndim; ++i) same = t.shape[i] == x.shape[i];
    if (!same) throw_value("float targets must have the shape of inputs " + shape_string(x) + ", got " + shape_string(t));
    p.targets = canonical(t, axis, "targets");
  }
}

TensorView dice_canonical_grad(const TensorView& g, int axis) { return canonical(g, axis, "inputs"); }

void dice_loss_shape(const DiceParams& p, const TensorView& x, int axis, int64_t* shape, int* ndim) {
  *ndim = 0;
  if (!p.batch) shape[(*ndim)++] = x.shape[0];
  if (axis >= 0) shape[(*ndim)++] = x.shape[axis] - p.first_class;
}

namespace cpu {
void dice_loss(const DiceParams& p) { FASTLOSS_CPU_DISPATCH(dice_loss, p); }
}  // namespace cpu

}  // namespace fastloss
