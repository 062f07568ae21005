// jiwer 4's error counts: hits, substitutions, deletions and insertions of each
// reference/hypothesis pair under the alignment jiwer takes from rapidfuzz's
// Levenshtein.opcodes. Among equally short alignments that one is fixed by rapidfuzz's
// procedure, reproduced here step by step:
//   1. the common prefix and suffix are matches;
//   2. a pair whose bit matrix would be large (2 * min(len(ref), 2 * bound + 1) * len(hyp) / 8
//      bytes >= 1 MiB, len(ref) >= 65, len(hyp) >= 10) is split Hirschberg-style at the middle
//      of the hypothesis and the first reference position of least total cost, and each half
//      goes back to step 1 (with its own cost as the bound);
//   3. otherwise Myers/Hyyrö's bit-parallel matrix (vertical deltas VP/VN per hypothesis
//      element, the reference as the pattern) is walked back from the end, preferring at each
//      cell a deletion (VP set), then an insertion (VN set one row up), then the diagonal.
// rapidfuzz restricts steps 2 and 3 to a diagonal band; every cell the walk or the split reads
// with a value that matters lies on an optimal path, where the band's values are exact, so the
// full matrix computed here takes the same decisions.
#include <atomic>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "fastloss/edit_distance.h"

namespace fastloss {
namespace cpu {
namespace {

inline uint64_t mix(uint64_t k) { return (k * 0x9E3779B97F4A7C15ull) ^ (k >> 29); }

// Pattern-match vectors of the reference: key -> `words` 64-bit masks (all-zero for a key
// the reference does not hold).
struct Pattern {
  std::vector<uint64_t> keys;   // open addressing; slot used iff ids[h] != 0
  std::vector<int32_t> ids;     // 1-based row in masks
  std::vector<uint64_t> masks;  // row 0: zeros
  int64_t words = 0;
  uint64_t cap = 0;

  template <class T> void build(const T* p, int64_t m) {
    words = (m + 63) / 64;
    cap = 16;
    while (cap < static_cast<uint64_t>(2 * m + 2)) cap *= 2;
    keys.assign(cap, 0);
    ids.assign(cap, 0);
    masks.assign(static_cast<size_t>(words), 0);
    int32_t next = 1;
    for (int64_t i = 0; i < m; ++i) {
      const uint64_t k = p[i];
      uint64_t h = mix(k) & (cap - 1);
      while (ids[h] && keys[h] != k) h = (h + 1) & (cap - 1);
      if (!ids[h]) {
        keys[h] = k;
        ids[h] = next++;
        masks.resize(static_cast<size_t>(next) * words, 0);
      }
      masks[static_cast<size_t>(ids[h]) * words + i / 64] |= uint64_t(1) << (i % 64);
    }
  }
  const uint64_t* get(uint64_t k) const {
    uint64_t h = mix(k) & (cap - 1);
    while (ids[h]) {
      if (keys[h] == k) return masks.data() + static_cast<size_t>(ids[h]) * words;
      h = (h + 1) & (cap - 1);
    }
    return masks.data();
  }
};

struct Scratch {
  Pattern pm;
  std::vector<uint64_t> pv, mv, vp_m, vn_m;
  std::vector<int64_t> bs;              // per block: D[its last row][current column]
  std::vector<int64_t> lo_m, hi_m;      // per stored column: its first and last block kept
  int64_t width = 0;                    // blocks kept per stored column
  int64_t lo = 0, hi = 0;               // the last column's band of blocks
  std::vector<int64_t> left, right;
};

// Myers' block recurrence over text t (n elements) against the pattern in pm (m elements),
// restricted to Ukkonen's band for the bound k: at column j (1-based) only rows
// [j - k, j + k] can hold a value <= k, so only the blocks covering them are advanced. A
// block entering the band at the bottom starts as the chain "value above + 1 per row" (its
// untouched initial deltas), and the first active block sees +1 from above: both are upper
// bounds of the true values, adjacent values differ by at most 1, and every cell of true
// value <= k is exact. Callers pass k >= the pair's distance, so every cell of an optimal
// path is exact, and a cell next to one of value v whose true value is v +- 1 is pinned to it:
// the walk and the split below read the same decisions as from the full matrix (k >= m + n:
// the full matrix). Keeps each column's band of VP/VN when `store`, else only the last
// column's; bs tracks each block's bottom value, from which scores() rebuilds the column.
template <class TT>
void columns(Scratch& s, int64_t m, const TT* t, int64_t n, int64_t k, bool store, bool reversed) {
  const int64_t words = s.pm.words;
  if (k > m + n) k = m + n;
  s.pv.assign(static_cast<size_t>(words), ~uint64_t(0));
  s.mv.assign(static_cast<size_t>(words), 0);
  s.bs.resize(static_cast<size_t>(words));
  for (int64_t b = 0; b < words; ++b) s.bs[b] = 64 * (b + 1) < m ? 64 * (b + 1) : m;
  const int64_t width = std::min(words, 2 * k / 64 + 2);
  s.width = width;
  if (store) {
    s.vp_m.resize(static_cast<size_t>(n * width));
    s.vn_m.resize(static_cast<size_t>(n * width));
    s.lo_m.resize(static_cast<size_t>(n));
    s.hi_m.resize(static_cast<size_t>(n));
  }
  const int last_bit = static_cast<int>((m - 1) % 64);
  // Bits are rows - 1: column j's band is bits [j - k - 1, j + k - 1].
  int64_t hi = std::min(words - 1, std::max<int64_t>(0, k - 1) / 64);  // blocks touched so far (column 0)
  int64_t lo = 0;
  for (int64_t j = 0; j < n; ++j) {
    const int64_t col = j + 1;
    const int64_t nlo = col - k - 1 > 0 ? (col - k - 1) / 64 : 0;
    int64_t nhi = (col + k - 1) / 64;
    if (nhi > words - 1) nhi = words - 1;
    for (int64_t b = hi + 1; b <= nhi; ++b)  // entering: the chain below the previous column's bottom
      s.bs[b] = s.bs[b - 1] + ((b == words - 1 ? m : 64 * (b + 1)) - 64 * b);
    hi = nhi > hi ? nhi : hi;
    lo = nlo > lo ? nlo : lo;
    if (lo > hi) lo = hi;
    const uint64_t* eqs = s.pm.get(uint64_t(t[reversed ? n - 1 - j : j]));
    uint64_t hp_c = 1, hn_c = 0;
    for (int64_t b = lo; b <= hi; ++b) {
      const uint64_t pvb = s.pv[b], mvb = s.mv[b], eq0 = eqs[b];
      const uint64_t xv = eq0 | mvb;
      const uint64_t eq = eq0 | hn_c;
      const uint64_t xh = (((eq & pvb) + pvb) ^ pvb) | eq;
      const uint64_t ph0 = mvb | ~(xh | pvb);
      const uint64_t mh0 = pvb & xh;
      const uint64_t ph = (ph0 << 1) | hp_c;
      const uint64_t mh = (mh0 << 1) | hn_c;
      if (b == words - 1) {
        s.bs[b] += int64_t((ph0 >> last_bit) & 1) - int64_t((mh0 >> last_bit) & 1);
      } else {
        s.bs[b] += int64_t(ph0 >> 63) - int64_t(mh0 >> 63);
      }
      hp_c = ph0 >> 63;
      hn_c = mh0 >> 63;
      s.pv[b] = mh | ~(xv | ph);
      s.mv[b] = ph & xv;
    }
    if (store) {
      const int64_t cnt = std::min(hi - lo + 1, width);
      s.lo_m[j] = lo;
      s.hi_m[j] = lo + cnt - 1;
      std::memcpy(&s.vp_m[static_cast<size_t>(j * width)], &s.pv[lo], cnt * 8);
      std::memcpy(&s.vn_m[static_cast<size_t>(j * width)], &s.mv[lo], cnt * 8);
    }
  }
  s.lo = lo;
  s.hi = hi;
}

// D[i][n] for i = 0..m from the last column's band (rows outside it: a value no split picks).
void scores(const Scratch& s, int64_t m, int64_t n, std::vector<int64_t>& out) {
  constexpr int64_t kFar = INT64_MAX / 4;
  out.assign(static_cast<size_t>(m + 1), kFar);
  if (n == 0) {
    for (int64_t i = 0; i <= m; ++i) out[i] = i;
    return;
  }
  for (int64_t b = s.lo; b <= s.hi; ++b) {
    const int64_t top = 64 * b, bottom = std::min(m, 64 * (b + 1));
    int64_t v = s.bs[b];
    out[bottom] = v;
    for (int64_t r = bottom; r > top; --r) {  // bit r - 1 is D[r] - D[r - 1]
      const int64_t i = r - 1;
      v -= int64_t((s.pv[i / 64] >> (i % 64)) & 1) - int64_t((s.mv[i / 64] >> (i % 64)) & 1);
      out[r - 1] = v;
    }
  }
  if (s.lo == 0) out[0] = n;
}

// Receives the alignment's steps. Counts only add; ops record positions (a = source,
// b = destination) in the order the walk finds them (backwards within one align()).
struct CountSink {
  EditCounts& c;
  void hit(int64_t, int64_t) { ++c.hits; }
  void sub(int64_t, int64_t) { ++c.substitutions; }
  void del(int64_t, int64_t) { ++c.deletions; }
  void ins(int64_t, int64_t) { ++c.insertions; }
  void dels(int64_t, int64_t, int64_t k) { c.deletions += k; }
  void inss(int64_t, int64_t, int64_t k) { c.insertions += k; }
  void hits(int64_t k) { c.hits += k; }
  void begin() {}
  void end() {}
};

struct OpsSink {
  std::vector<EditOp>& ops;
  size_t mark = 0;
  void hit(int64_t, int64_t) {}
  void sub(int64_t s, int64_t d) { ops.push_back({EditOp::kReplace, s, d}); }
  void del(int64_t s, int64_t d) { ops.push_back({EditOp::kDelete, s, d}); }
  void ins(int64_t s, int64_t d) { ops.push_back({EditOp::kInsert, s, d}); }
  // The leftover deletions (sources s-k..s-1, destination d) or insertions, walked backwards.
  void dels(int64_t s, int64_t d, int64_t k) {
    for (int64_t i = s - 1; i >= s - k; --i) ops.push_back({EditOp::kDelete, i, d});
  }
  void inss(int64_t s, int64_t d, int64_t k) {
    for (int64_t i = d - 1; i >= d - k; --i) ops.push_back({EditOp::kInsert, s, i});
  }
  void hits(int64_t) {}
  void begin() { mark = ops.size(); }
  void end() { std::reverse(ops.begin() + static_cast<std::ptrdiff_t>(mark), ops.end()); }
};

template <class TA, class TB, class Sink>
struct Aligner {
  Scratch& s;
  Sink& out;

  // rapidfuzz's recover_alignment over the full bit matrix (a = reference, b = hypothesis);
  // ao, bo: the positions of a[0], b[0] in the whole pair.
  void align(const TA* a, int64_t m, const TB* b, int64_t n, int64_t k, int64_t ao, int64_t bo) {
    out.begin();
    if (m == 0 || n == 0) {
      out.dels(ao + m, bo + n, m);
      out.inss(ao + m, bo + n, n);
      out.end();
      return;
    }
    s.pm.build(a, m);
    columns(s, m, b, n, k, true, false);
    const int64_t width = s.width;
    // Outside a column's stored band: the chain (VP set, VN clear), never read on a decision.
    auto bit = [&](const std::vector<uint64_t>& v, int64_t row, int64_t col) -> uint64_t {
      const int64_t blk = col / 64;
      if (blk < s.lo_m[row] || blk > s.hi_m[row]) return &v == &s.vp_m ? 1 : 0;
      return (v[static_cast<size_t>(row * width + blk - s.lo_m[row])] >> (col % 64)) & 1;
    };
    int64_t col = m, row = n;
    while (row && col) {
      if (bit(s.vp_m, row - 1, col - 1)) {  // deletion
        --col;
        out.del(ao + col, bo + row);
      } else {
        --row;
        if (row && bit(s.vn_m, row - 1, col - 1)) {  // insertion
          out.ins(ao + col, bo + row);
        } else {  // match or substitution
          --col;
          if (uint64_t(a[col]) != uint64_t(b[row])) out.sub(ao + col, bo + row);
          else out.hit(ao + col, bo + row);
        }
      }
    }
    out.dels(ao + col, bo + row, col);
    out.inss(ao, bo + row, row);
    out.end();
  }

  // rapidfuzz's levenshtein_align_hirschberg with bound `max` (its decisions); k >= the
  // pair's distance bounds the band computed (< 0: unknown, found first when worth it).
  void run(const TA* a, int64_t m, const TB* b, int64_t n, int64_t max, int64_t k, int64_t ao = 0, int64_t bo = 0) {
    int64_t pre = 0;
    while (m && n && uint64_t(a[0]) == uint64_t(b[0])) ++a, ++b, --m, --n, ++pre;
    int64_t suf = 0;
    while (m && n && uint64_t(a[m - 1]) == uint64_t(b[n - 1])) --m, --n, ++suf;
    out.hits(pre + suf);
    ao += pre, bo += pre;
    const int64_t longest = m > n ? m : n;
    if (max > longest) max = longest;
    const int64_t band = m < 2 * max + 1 ? m : 2 * max + 1;
    if (k < 0 || k > longest) {
      k = longest;
      if (m > 64 && n > 64 && m * n > 1 << 20) {  // the banded distance first: a narrow band after
        const SeqRef ra{a, m, static_cast<int32_t>(sizeof(TA))}, rb{b, n, static_cast<int32_t>(sizeof(TB))};
        const int64_t d = edit_distance_pair(ra, rb, EditWeights{}, longest);
        if (d >= 0) k = d;
      }
    }
    if (2 * band * n / 8 < 1024 * 1024 || m < 65 || n < 10) return align(a, m, b, n, k, ao, bo);
    // Split at the hypothesis' middle and the first reference position of least cost.
    const int64_t left_n = n / 2, right_n = n - left_n;
    s.pm.build(a, m);
    columns(s, m, b, left_n, k, false, false);
    scores(s, m, left_n, s.left);
    // The right half: reversed reference against the reversed hypothesis tail.
    std::vector<TA> ra(a, a + m);
    for (int64_t i = 0; i < m / 2; ++i) std::swap(ra[i], ra[m - 1 - i]);
    s.pm.build(ra.data(), m);
    columns(s, m, b + left_n, right_n, k, false, true);
    scores(s, m, right_n, s.right);
    int64_t best = INT64_MAX, mid = 0, ls = 0, rs = 0;
    for (int64_t i = 0; i < m; ++i) {
      const int64_t l = s.left[i + 1], r = s.right[m - i - 1];
      if (l + r < best) best = l + r, mid = i + 1, ls = l, rs = r;
    }
    run(a, mid, b, left_n, ls, ls, ao, bo);
    run(a + mid, m - mid, b + left_n, right_n, rs, rs, ao + mid, bo + left_n);
  }
};

template <class F>
inline void with_kind(int kind, F&& f) {
  switch (kind) {
    case 1: return f(static_cast<const uint8_t*>(nullptr));
    case 2: return f(static_cast<const uint16_t*>(nullptr));
    case 4: return f(static_cast<const uint32_t*>(nullptr));
    default: return f(static_cast<const uint64_t*>(nullptr));
  }
}

template <class Sink>
void pair_align(Scratch& s, const SeqRef& a, const SeqRef& b, Sink& sink) {
  with_kind(a.kind, [&](auto ta) {
    typedef std::remove_cv_t<std::remove_pointer_t<decltype(ta)>> TA;
    with_kind(b.kind, [&](auto tb) {
      typedef std::remove_cv_t<std::remove_pointer_t<decltype(tb)>> TB;
      Aligner<TA, TB, Sink> al{s, sink};
      // rapidfuzz's editops without a score hint: the bound is the longer length.
      al.run(static_cast<const TA*>(a.data), a.len, static_cast<const TB*>(b.data), b.len,
             a.len > b.len ? a.len : b.len, -1);
    });
  });
}

void pair_counts(Scratch& s, const SeqRef& a, const SeqRef& b, EditCounts& c) {
  CountSink sink{c};
  pair_align(s, a, b, sink);
}

// Alignment costs a few times a distance per element: the same thread budget is ample.
constexpr long long kMinElementsPerThread = 4096;

}  // namespace

void edit_counts(EditCountsParams& p) {
  long long work = 0;
  for (int64_t i = 0; i < p.n; ++i) work += p.ref[i].len + p.hyp[i].len;
  const int nt = threads_for(work, kMinElementsPerThread);
  // Pairs in pieces of 64 claimed in turn; integer totals, so their order does not matter.
  std::atomic<int64_t> h{0}, su{0}, de{0}, in{0};
  constexpr int64_t kGrain = 64;
  parallel_tasks((p.n + kGrain - 1) / kGrain, nt, [&](int64_t piece) {
    static thread_local Scratch s;
    int64_t ph = 0, psu = 0, pde = 0, pin = 0;
    const int64_t i1 = (piece + 1) * kGrain < p.n ? (piece + 1) * kGrain : p.n;
    for (int64_t i = piece * kGrain; i < i1; ++i) {
      EditCounts c;
      pair_counts(s, p.ref[i], p.hyp[i], c);
      if (p.out) p.out[i] = c;
      ph += c.hits, psu += c.substitutions, pde += c.deletions, pin += c.insertions;
    }
    h += ph, su += psu, de += pde, in += pin;
  });
  p.total = EditCounts{h.load(), su.load(), de.load(), in.load()};
}

void edit_ops(const SeqRef& a, const SeqRef& b, std::vector<EditOp>& out) {
  static thread_local Scratch s;
  out.clear();
  OpsSink sink{out};
  pair_align(s, a, b, sink);
}

void edit_ops_batch(const SeqRef* a, const SeqRef* b, int64_t n, std::vector<EditOp>* out) {
  long long work = 0;
  for (int64_t i = 0; i < n; ++i) work += a[i].len + b[i].len;
  const int nt = threads_for(work, kMinElementsPerThread);
  constexpr int64_t kGrain = 16;  // pairs per task: lengths vary, so tasks are claimed in turn
  parallel_tasks((n + kGrain - 1) / kGrain, nt, [&](int64_t piece) {
    const int64_t i1 = (piece + 1) * kGrain < n ? (piece + 1) * kGrain : n;
    for (int64_t i = piece * kGrain; i < i1; ++i) edit_ops(a[i], b[i], out[i]);
  });
}

}  // namespace cpu

void edit_opcodes(const std::vector<EditOp>& ops, int64_t la, int64_t lb, std::vector<EditOpcode>& out) {
  // rapidfuzz's Editops.as_opcodes: runs of one tag at consecutive positions merge; the gaps
  // between them are "equal" blocks.
  out.clear();
  int64_t sp = 0, dp = 0;
  size_t i = 0;
  while (i < ops.size()) {
    if (sp < ops[i].src || dp < ops[i].dst) {
      out.push_back({EditOpcode::kEqual, sp, ops[i].src, dp, ops[i].dst});
      sp = ops[i].src;
      dp = ops[i].dst;
    }
    const int64_t s0 = sp, d0 = dp;
    const int32_t tag = ops[i].tag;
    while (i < ops.size() && ops[i].tag == tag && ops[i].src == sp && ops[i].dst == dp) {
      if (tag != EditOp::kInsert) ++sp;
      if (tag != EditOp::kDelete) ++dp;
      ++i;
    }
    out.push_back({tag, s0, sp, d0, dp});
  }
  if (sp < la || dp < lb) out.push_back({EditOpcode::kEqual, sp, la, dp, lb});
}
}  // namespace fastloss