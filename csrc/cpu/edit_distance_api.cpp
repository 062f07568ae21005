// Argument checks shared by the CPU and CUDA edit-distance entry points, and the CPU dispatch.
#include <string>
#include <vector>

#include "fastloss/edit_distance.h"

namespace fastloss {

void check_edit_weights(const EditWeights& w) {
  if (w.ins < 0 || w.del < 0 || w.sub < 0)
    throw_value("weights must be non-negative (insertion, deletion, substitution), got (" + std::to_string(w.ins) +
                ", " + std::to_string(w.del) + ", " + std::to_string(w.sub) + ")");
}

EditWeights edit_weights_for_normalize(const EditWeights& w) {
  if (w.ins != w.del || w.ins == 0) return w;
  if (w.sub == w.ins) return EditWeights{1, 1, 1};
  if (w.sub / 2 >= w.ins) return EditWeights{1, 1, 2};
  return w;
}

namespace {

void check_lengths(const TensorView& lengths, const char* name, int64_t n, const char* arr) {
  if (is_none(lengths)) return;
  if (is_float(lengths.dtype) || lengths.dtype == DType::b1)
    throw_type(std::string(name) + " must be an integer array, got " + dtype_name(lengths.dtype));
  if (lengths.ndim != 1 || lengths.shape[0] != n)
    throw_value(std::string(name) + " must have shape (" + std::to_string(n) + ",) (one per row of " + arr + ")");
}

int64_t length_at(const TensorView& lengths, int64_t i, int64_t width) {
  if (is_none(lengths)) return width;
  return load_index(lengths, lengths.strides[0] * i);
}

}  // namespace

void check_edit_padded_params(const EditPaddedParams& p) {
  check_edit_weights(p.w);
  for (const auto* t : {&p.a, &p.b}) {
    const char* name = t == &p.a ? "a" : "b";
    if (is_float(t->dtype) || t->dtype == DType::b1)
      throw_type(std::string(name) + " must be an integer array, got " + dtype_name(t->dtype));
    if (t->ndim != 2)
      throw_value(std::string(name) + " must be a 2-D padded array (batch, length), got " + std::to_string(t->ndim) +
                  " dimensions");
  }
  if (p.a.shape[0] != p.b.shape[0])
    throw_value("a and b must have the same batch size, got " + std::to_string(p.a.shape[0]) + " and " +
                std::to_string(p.b.shape[0]));
  if (p.a.dtype != p.b.dtype) throw_type("a and b must have the same dtype");
  check_lengths(p.a_lengths, "a_lengths", p.a.shape[0], "a");
  check_lengths(p.b_lengths, "b_lengths", p.b.shape[0], "b");
}

namespace cpu {

void edit_distance_batch(const EditBatchParams& p) { FASTLOSS_CPU_DISPATCH(edit_distance_batch, p); }
void edit_distance_pairwise(const EditPairwiseParams& p) { FASTLOSS_CPU_DISPATCH(edit_distance_pairwise, p); }
int64_t edit_distance_pair(const SeqRef& a, const SeqRef& b, const EditWeights& w, int64_t k) {
  FASTLOSS_CPU_DISPATCH(edit_distance_pair, a, b, w, k);
}

void edit_distance_padded(const EditPaddedParams& p) {
  check_edit_padded_params(p);
  const int64_t n = p.a.shape[0];
  std::vector<SeqRef> a(n), b(n);
  const int item = dtype_size(p.a.dtype);
  for (const auto* t : {&p.a, &p.b}) {
    const bool is_a = t == &p.a;
    const TensorView& len = is_a ? p.a_lengths : p.b_lengths;
    const int64_t width = t->shape[1];
    if (n > 0 && width > 1 && t->strides[1] != 1)  // size 0: NumPy may report any strides
      throw_value(std::string(is_a ? "a" : "b") + " must be contiguous along its length axis");
    std::vector<SeqRef>& out = is_a ? a : b;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t l = length_at(len, i, width);
      if (l < 0 || l > width)
        throw_value(std::string(is_a ? "a_lengths" : "b_lengths") + "[" + std::to_string(i) + "] = " +
                    std::to_string(l) + " is outside [0, " + std::to_string(width) + "] (the padded width of " +
                    (is_a ? "a" : "b") + ")");
      out[i].data = static_cast<const char*>(t->data) + i * t->strides[0] * item;
      out[i].len = l;
      out[i].kind = item;
    }
  }
  EditBatchParams bp;
  bp.a = a.data();
  bp.b = b.data();
  bp.n = n;
  bp.w = p.w;
  bp.cutoff = p.cutoff;
  bp.overflow = p.overflow;
  if (p.normalize) bp.out_norm = p.out.ptr<double>();
  else bp.out_int = p.out.ptr<int64_t>();
  edit_distance_batch(bp);
}

}  // namespace cpu
}  // namespace fastloss
