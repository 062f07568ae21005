// One text column of Myers/Hyyrö's bit-parallel unit-cost Levenshtein for a pattern of at
// most 64 elements, shared by the CPU and CUDA kernels. `static inline`: every translation
// unit (each SIMD level included) keeps its own copy, so no copy built for one instruction
// set can be merged into another.
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define FASTLOSS_HOST_DEVICE __host__ __device__
#else
#define FASTLOSS_HOST_DEVICE
#endif

namespace fastloss {

// Vertical deltas (+1 in pv, -1 in mv) of the pattern's column, and D[m][j].
struct MyersColumn {
  uint64_t pv, mv;
  int64_t score;
};

static inline FASTLOSS_HOST_DEVICE MyersColumn myers_start(int64_t m) { return {~uint64_t(0), 0, m}; }

// Advances by one text element whose match mask over the pattern is `eq`; last = 1 << (m-1).
static inline FASTLOSS_HOST_DEVICE void myers_step(MyersColumn& c, uint64_t eq, uint64_t last) {
  const uint64_t xv = eq | c.mv;
  const uint64_t xh = (((eq & c.pv) + c.pv) ^ c.pv) | eq;
  uint64_t ph = c.mv | ~(xh | c.pv);
  uint64_t mh = c.pv & xh;
  c.score += (ph & last) != 0;
  c.score -= (mh & last) != 0;
  ph = (ph << 1) | 1;
  mh <<= 1;
  c.pv = mh | ~(xv | ph);
  c.mv = ph & xv;
}

}  // namespace fastloss
