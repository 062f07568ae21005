// Edit distance (Levenshtein with insertion/deletion/substitution costs): batched pairs,
// pairwise matrices, and the padded-array form shared with CUDA.
//
// Sequences reach the kernels as SeqRef: a pointer to `len` unsigned elements of `kind`
// bytes (1, 2 or 4 for Python str data read zero-copy by code point, 8 for int64 tokens,
// or any width for a contiguous row of an integer array). Two elements are equal when their
// values are equal after zero-extension to 64 bits.
#pragma once
#include <cstdint>
#include <vector>

#include "fastloss/runtime.h"
#include "fastloss/tensor.h"

#ifdef __CUDACC__
#define FASTLOSS_EDIT_HD __host__ __device__
#else
#define FASTLOSS_EDIT_HD
#endif

namespace fastloss {

struct SeqRef {
  const void* data = nullptr;
  int64_t len = 0;
  int32_t kind = 1;  // bytes per element: 1, 2, 4 or 8
};

// (insertion, deletion, substitution) costs, as rapidfuzz: insertion turns a into b by
// inserting an element of b, deletion removes an element of a.
struct EditWeights {
  int64_t ins = 1, del = 1, sub = 1;
};

// The largest distance a pair of lengths can have (rapidfuzz's levenshtein_maximum).
FASTLOSS_EDIT_HD inline int64_t edit_distance_maximum(int64_t la, int64_t lb, const EditWeights& w) {
  int64_t m = la * w.del + lb * w.ins;
  const int64_t alt = la >= lb ? lb * w.sub + (la - lb) * w.del : la * w.sub + (lb - la) * w.ins;
  return alt < m ? alt : m;
}

// rapidfuzz's score_cutoff. Unnormalized: a distance above `dist` is reported as dist + 1
// (INT64_MAX: no bound). Normalized: a normalized distance above `norm` (in [0, 1]) is
// reported as 1.0; the pair's integer bound is then ceil(maximum * norm), as rapidfuzz.
struct EditCutoff {
  int64_t dist = INT64_MAX;
  double norm = 1.0;
};

// One distance per pair (a[i], b[i]); writes out_int[i] (if non-null) and, with normalize,
// out_norm[i] = distance / maximum (0 when the maximum is 0). A distance that does not fit in
// int64 sets *overflow (the binding raises a ValueError naming weights).
struct EditBatchParams {
  const SeqRef* a = nullptr;
  const SeqRef* b = nullptr;
  int64_t n = 0;
  EditWeights w;
  EditCutoff cutoff;
  int64_t* out_int = nullptr;
  double* out_norm = nullptr;
  int* overflow = nullptr;
};

// Hits, substitutions, deletions and insertions of one reference/hypothesis pair.
struct EditCounts {
  int64_t hits = 0, substitutions = 0, deletions = 0, insertions = 0;
};

// jiwer 4's counts (rapidfuzz's Levenshtein.opcodes alignment) of each pair (ref[i], hyp[i]),
// summed into `total` (out, when non-null, gets the per-pair counts).
struct EditCountsParams {
  const SeqRef* ref = nullptr;
  const SeqRef* hyp = nullptr;
  int64_t n = 0;
  EditCounts* out = nullptr;
  EditCounts total;
};

// One step of rapidfuzz's Levenshtein.editops: replace a[src] by b[dst], delete a[src]
// (dst: where it would have been in b), or insert b[dst] before a[src].
struct EditOp {
  enum : int32_t { kReplace = 0, kDelete = 1, kInsert = 2 };
  int32_t tag;
  int64_t src, dst;
};

// rapidfuzz's Levenshtein.opcodes: a[src_begin:src_end] -> b[dst_begin:dst_end].
struct EditOpcode {
  enum : int32_t { kReplace = 0, kDelete = 1, kInsert = 2, kEqual = 3 };
  int32_t tag;
  int64_t src_begin, src_end, dst_begin, dst_end;
};

// The opcodes of an editops list of a pair of lengths (la, lb).
void edit_opcodes(const std::vector<EditOp>& ops, int64_t la, int64_t lb, std::vector<EditOpcode>& out);

// The (na, nb) matrix; `out` is int32, int64 or float64 (normalized), any strides.
struct EditPairwiseParams {
  const SeqRef* a = nullptr;
  int64_t na = 0;
  const SeqRef* b = nullptr;
  int64_t nb = 0;
  EditWeights w;
  bool normalize = false;
  EditCutoff cutoff;
  TensorView out;
  int* overflow = nullptr;
};

// Padded integer arrays (N, La), (N, Lb) with lengths (N,) each (none: the full width);
// out (N,) int64, or float64 with normalize. CUDA: stream and an 8-byte device workspace.
struct EditPaddedParams {
  TensorView a, b;
  TensorView a_lengths = none_view(), b_lengths = none_view();
  EditWeights w;
  bool normalize = false;
  EditCutoff cutoff;
  TensorView out;
  int* overflow = nullptr;  // CPU: set when a distance does not fit in int64
  void* stream = nullptr;
  void* workspace = nullptr;
};

// Shared argument checks (throw fastloss::Error naming the argument).
void check_edit_weights(const EditWeights& w);
void check_edit_padded_params(const EditPaddedParams& p);

// With normalize, (k, k, k) and (k, k, >= 2k) give the same normalized distances as (1, 1, 1)
// and (1, 1, 2): computing with those keeps huge weights exact.
EditWeights edit_weights_for_normalize(const EditWeights& w);

// The largest possible distance of a pair, without int64 overflow.
inline double edit_distance_maximum_f(int64_t la, int64_t lb, const EditWeights& w) {
  const __int128 m = __int128(la) * w.del + __int128(lb) * w.ins;
  const __int128 alt = la >= lb ? __int128(lb) * w.sub + __int128(la - lb) * w.del
                                : __int128(la) * w.sub + __int128(lb - la) * w.ins;
  return static_cast<double>(alt < m ? alt : m);
}

namespace cpu {
void edit_distance_batch(const EditBatchParams& p);
void edit_distance_pairwise(const EditPairwiseParams& p);
// One pair, on the calling thread (no threads woken, scratch kept per thread): the distance
// if it is <= k, else -1; -2 if it does not fit in int64.
int64_t edit_distance_pair(const SeqRef& a, const SeqRef& b, const EditWeights& w, int64_t k);
void edit_counts(EditCountsParams& p);
// rapidfuzz's Levenshtein.editops of one pair (a = source), in order; the batch form runs
// the pairs on all cores (out: n vectors).
void edit_ops(const SeqRef& a, const SeqRef& b, std::vector<EditOp>& out);
void edit_ops_batch(const SeqRef* a, const SeqRef* b, int64_t n, std::vector<EditOp>* out);
// Padded arrays: builds SeqRefs for the rows (validating the lengths) and runs the batch.
void edit_distance_padded(const EditPaddedParams& p);
}  // namespace cpu

namespace cuda {
void edit_distance_padded(const EditPaddedParams& p);
}  // namespace cuda

}  // namespace fastloss

FASTLOSS_CPU_KERNEL_DECL(void, edit_distance_batch, (const ::fastloss::EditBatchParams&))
FASTLOSS_CPU_KERNEL_DECL(void, edit_distance_pairwise, (const ::fastloss::EditPairwiseParams&))
FASTLOSS_CPU_KERNEL_DECL(int64_t, edit_distance_pair,
                         (const ::fastloss::SeqRef&, const ::fastloss::SeqRef&, const ::fastloss::EditWeights&, int64_t))
