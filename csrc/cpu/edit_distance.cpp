// Edit distance on the CPU (compiled once per SIMD level).
//
// Per pair, after trimming the common prefix and suffix:
//   * unit costs (ins == del == sub, times that cost): Myers/Hyyrö bit-parallel Levenshtein,
//     the shorter sequence as the pattern; one 64-bit word for patterns of <= 64 elements;
//     beyond, first Hyyrö's diagonal band in one word (exact for distances <= 62, lengths
//     differing by <= 63), then Myers' block algorithm (one word per 64 pattern elements,
//     carries between words) with Ukkonen's band (only the words that can still reach a
//     distance <= the bound), widened until the result fits;
//   * ins == del, sub >= ins + del: InDel distance (m + n - 2 LCS) times the cost, the LCS by
//     the Allison-Dix / Hyyrö bit-parallel recurrence;
//   * any other costs: the plain dynamic program (one row of int64).
// Batches of >= 32 pairs with unit costs: pairs of 1-byte elements (latin-1 str), the shorter
// side of <= 64 elements and the longer < 256, are packed several per SIMD register (32-bit
// lanes for patterns of <= 32, 64-bit for <= 64), grouped by text length, each lane's match
// masks taken by byte compares of its pattern held in a register (no table to build or
// clear), untrimmed (the lanes cost about the same either way, and the trimming loops' exits
// mispredict).
// Pairwise matrices with unit costs: rows of <= 32 (<= 64) elements are packed several per
// SIMD register (32-bit / 64-bit lanes), their pattern tables built once per group of rows,
// and advanced together over each column sequence; longer rows and other costs go pair by
// pair as above. Threads split (row group, column block) tiles.
#include <type_traits>

#include "fastloss/cpu_kernel.h"
#include "fastloss/myers.h"
#include "fastloss/edit_distance.h"

namespace fastloss {
namespace cpu {
namespace FASTLOSS_ISA {
namespace {

inline int popcount64(uint64_t x) { return __builtin_popcountll(x); }

inline uint64_t hash64(uint64_t k) { return (k * 0x9E3779B97F4A7C15ull) ^ (k >> 29); }

// ---------------------------------------------------------------------------------------
// Pattern tables. Keys below 256 index a direct table; others go to an open-addressing
// hash table (key 0 marks an empty slot: such keys are >= 256). Tables are left all-zero
// after each use by clearing exactly the entries that were set.

// One word: key -> 64-bit mask of the positions where the pattern has that key.
struct WordTable {
  uint64_t* ascii;  // 256
  uint64_t* hkeys;  // 128
  uint64_t* hvals;  // 128
  bool any_hash = false;

  uint64_t* slot_for(uint64_t k, bool insert) {
    uint64_t i = hash64(k) & 127;
    while (true) {
      if (hkeys[i] == k) return &hvals[i];
      if (hkeys[i] == 0) {
        if (!insert) return nullptr;
        hkeys[i] = k;
        return &hvals[i];
      }
      i = (i + 1) & 127;
    }
  }
  template <class T> void build(const T* p, int64_t m) {
    for (int64_t i = 0; i < m; ++i) {
      const uint64_t k = p[i];
      if (k < 256) ascii[k] |= uint64_t(1) << i;
      else { any_hash = true; *slot_for(k, true) |= uint64_t(1) << i; }
    }
  }
  inline uint64_t get(uint64_t k) {
    if (k < 256) return ascii[k];
    if (!any_hash) return 0;
    const uint64_t* s = slot_for(k, false);
    return s ? *s : 0;
  }
  template <class T> void clear(const T* p, int64_t m) {
    for (int64_t i = 0; i < m; ++i) {
      const uint64_t k = p[i];
      if (k < 256) ascii[k] = 0;
    }
    if (any_hash) {
      for (int i = 0; i < 128; ++i) hkeys[i] = 0, hvals[i] = 0;
      any_hash = false;
    }
  }
};

// Many words: key -> slot (1-based; 0 = absent) -> `words` masks.
struct BlockTable {
  int32_t* ascii;  // 256 slots
  uint64_t* hkeys;
  int32_t* hslots;
  int64_t hcap = 0;  // power of two, > 2 * distinct keys
  // Per slot: a zero word, `words` masks, a zero word (stride = words + 2), so that a 64-bit
  // window starting anywhere in [-64, m) reads zeros outside the pattern.
  uint64_t* masks = nullptr;
  int64_t words = 0, stride = 0, nslots = 0;

  int32_t find(uint64_t k) const {
    if (k < 256) return ascii[k];
    if (!hcap) return 0;
    uint64_t i = hash64(k) & (hcap - 1);
    while (hkeys[i]) {
      if (hkeys[i] == k) return hslots[i];
      i = (i + 1) & (hcap - 1);
    }
    return 0;
  }
  const uint64_t* get(uint64_t k) const { return masks + find(k) * stride + 1; }
  // Bits [pos, pos + 64) of the key's pattern mask (pos >= -64; zeros outside [0, m)).
  uint64_t window(uint64_t k, int64_t pos) const {
    const uint64_t* w = masks + find(k) * stride;
    const uint64_t q = static_cast<uint64_t>(pos + 64);
    const uint64_t off = q & 63;
    const uint64_t* x = w + (q >> 6);
    return (x[0] >> off) | ((x[1] << 1) << (63 - off));
  }
};

// Per-thread work space.
struct Work {
  ScratchBuffer wt_ascii, wt_keys, wt_vals;
  ScratchBuffer bt_ascii, bt_keys, bt_slots, bt_masks;
  ScratchBuffer vp, vn, row, slide_buf;
  WordTable wt;
  BlockTable bt;
  // The band's sliding table for patterns of keys < 256: per key, the position (plus
  // slide_base) of the window top when its 64-bit mask was last updated, and that mask.
  // Entries of earlier pairs are left behind: slide_base grows past them, so they read 0.
  struct Slide { int64_t pos; uint64_t bits; };
  Slide* slide;
  int64_t slide_base = 0;

  Work() {
    wt.ascii = wt_ascii.get<uint64_t>(256);
    wt.hkeys = wt_keys.get<uint64_t>(128);
    wt.hvals = wt_vals.get<uint64_t>(128);
    std::memset(wt.ascii, 0, 256 * 8);
    std::memset(wt.hkeys, 0, 128 * 8);
    std::memset(wt.hvals, 0, 128 * 8);
    bt.ascii = bt_ascii.get<int32_t>(256);
    std::memset(bt.ascii, 0, 256 * 4);
    slide = slide_buf.get<Slide>(256);
    for (int i = 0; i < 256; ++i) slide[i].pos = -(int64_t(1) << 62), slide[i].bits = 0;
  }

  // Builds the block table of pattern p (m elements); clear_block() undoes it.
  template <class T> void build_block(const T* p, int64_t m) {
    const int64_t words = (m + 63) / 64;
    int64_t nonascii = 0;
    for (int64_t i = 0; i < m; ++i) nonascii += uint64_t(p[i]) >= 256;
    int64_t cap = 0;
    if (nonascii) {
      cap = 16;
      while (cap < 2 * nonascii + 2) cap *= 2;
      bt.hkeys = bt_keys.get<uint64_t>(cap);
      bt.hslots = bt_slots.get<int32_t>(cap);
      std::memset(bt.hkeys, 0, cap * 8);
    }
    bt.hcap = cap;
    bt.words = words;
    // Assign slots.
    int32_t next = 1;
    for (int64_t i = 0; i < m; ++i) {
      const uint64_t k = p[i];
      if (k < 256) {
        if (!bt.ascii[k]) bt.ascii[k] = next++;
      } else {
        uint64_t h = hash64(k) & (cap - 1);
        while (bt.hkeys[h] && bt.hkeys[h] != k) h = (h + 1) & (cap - 1);
        if (!bt.hkeys[h]) { bt.hkeys[h] = k; bt.hslots[h] = next++; }
      }
    }
    bt.nslots = next;
    bt.stride = words + 2;
    bt.masks = bt_masks.get<uint64_t>(next * bt.stride);
    std::memset(bt.masks, 0, next * bt.stride * 8);
    for (int64_t i = 0; i < m; ++i) bt.masks[bt.find(p[i]) * bt.stride + 1 + i / 64] |= uint64_t(1) << (i % 64);
  }
  template <class T> void clear_block(const T* p, int64_t m) {
    for (int64_t i = 0; i < m; ++i)
      if (uint64_t(p[i]) < 256) bt.ascii[p[i]] = 0;
    bt.hcap = 0;
  }
};

// The calling thread's work space, built once (its tables start, and are left, all-zero).
inline Work& thread_work() {
  static thread_local Work w;
  return w;
}

// ---------------------------------------------------------------------------------------
// Unit-cost Levenshtein, pattern P (m >= 1 elements) in the word table, text T.
template <class TT>
inline int64_t myers_word(WordTable& pm, int64_t m, const TT* t, int64_t n) {
  MyersColumn col = myers_start(m);
  const uint64_t last = uint64_t(1) << (m - 1);
  for (int64_t j = 0; j < n; ++j) myers_step(col, pm.get(t[j]), last);
  return col.score;
}

// Myers' block algorithm (one word per 64 pattern rows, the horizontal delta carried from
// word to word) restricted to Ukkonen's band for a bound k: at column j only rows
// [j - k, j + k] can hold a value <= k, so only the words covering them are advanced. Words
// below enter the band as the chain "value above + 1 per row" and words above leave it (the
// first active word then sees +1 from above): both give upper bounds of the true values,
// and every cell whose true value is <= k depends only on such cells, so a result <= k is
// exact; a result > k means the distance exceeds k. k >= m + n gives the full matrix.
template <class TT>
int64_t myers_block(Work& w, int64_t m, const TT* t, int64_t n, int64_t k) {
  const BlockTable& bt = w.bt;
  const int64_t words = bt.words;
  uint64_t* pv = w.vp.get<uint64_t>(words);
  uint64_t* mv = w.vn.get<uint64_t>(words);
  for (int64_t b = 0; b < words; ++b) pv[b] = ~uint64_t(0), mv[b] = 0;
  const uint64_t top_m = uint64_t(1) << ((m - 1) % 64);
  auto rows_in = [&](int64_t b) { return (b + 1) * 64 < m ? int64_t(64) : m - b * 64; };
  // Only the last active word's bottom row is scored: a word entering the band starts from
  // that value plus its row count (the chain), and the last word of all gives the result.
  int64_t last = 0, score = rows_in(0);
  for (int64_t j = 0; j < n; ++j) {
    const int64_t col = j + 1;
    const int64_t lo = col - k - 1;
    const int64_t first = lo > 0 ? lo / 64 : 0;
    int64_t want = (col + k - 1) / 64;
    if (want > words - 1) want = words - 1;
    while (last < want) score += rows_in(++last);
    const uint64_t* eqs = bt.get(t[j]);
    uint64_t hp_c = 1, hn_c = 0;
    for (int64_t b = first; b < last; ++b) {
      const uint64_t pvb = pv[b], mvb = mv[b];
      const uint64_t eq0 = eqs[b];
      const uint64_t xv = eq0 | mvb;
      const uint64_t eq = eq0 | hn_c;
      const uint64_t xh = (((eq & pvb) + pvb) ^ pvb) | eq;
      const uint64_t ph0 = mvb | ~(xh | pvb);
      const uint64_t mh0 = pvb & xh;
      const uint64_t ph = (ph0 << 1) | hp_c;
      const uint64_t mh = (mh0 << 1) | hn_c;
      hp_c = ph0 >> 63;
      hn_c = mh0 >> 63;
      pv[b] = mh | ~(xv | ph);
      mv[b] = ph & xv;
    }
    const uint64_t hib = last == words - 1 ? top_m : (uint64_t(1) << 63);
    const uint64_t pvb = pv[last], mvb = mv[last];
    const uint64_t eq0 = eqs[last];
    const uint64_t xv = eq0 | mvb;
    const uint64_t eq = eq0 | hn_c;
    const uint64_t xh = (((eq & pvb) + pvb) ^ pvb) | eq;
    const uint64_t ph0 = mvb | ~(xh | pvb);
    const uint64_t mh0 = pvb & xh;
    score += (ph0 & hib) != 0;
    score -= (mh0 & hib) != 0;
    const uint64_t ph = (ph0 << 1) | hp_c;
    const uint64_t mh = (mh0 << 1) | hn_c;
    pv[last] = mh | ~(xv | ph);
    mv[last] = ph & xv;
  }
  return score;
}

// Hyyrö's banded bit-parallel Levenshtein: one 64-bit word holds a diagonal band of the
// matrix (pattern P of m rows, text T of n >= m columns, n - m <= 63) and slides down one row
// per column. Bit b of column j is row i = j - dhi + b: the band spans the diagonals
// d = j - i in [-kl, dhi], dhi = (n - m) + kl, kl = (63 - (n - m)) / 2, i.e. every cell with
// |d| + |n - m - d| <= bound = (n - m) + 2 kl (62 or 63), which holds every cell of every path
// of cost <= bound. Rows <= 0 are the boundary extended upwards (D[i][j] = j - i: vertical
// delta -1, no matches) and rows > m have no matches, so no start-up or end phase is needed;
// a row entering the band at the bottom gets vertical delta +1 and the row leaving it at the
// top horizontal delta +1, both upper bounds, so a result <= bound is exact. The distance is
// followed along diagonal n - m (bit kl), where it never decreases: returns -1 as soon as it
// exceeds the bound (the distance is then > bound).
//
// The Eq window of column j (pattern elements j - dhi .. j - dhi + 63) comes from `eq`:
// BandBlock reads it from the block table; BandSlide (patterns of keys < 256) keeps per key
// the mask as of its last update and shifts it lazily (no table built or cleared per pair).
struct BandBlock {
  const BlockTable& bt;
  int64_t dhi = 0;
  void start(int64_t d) { dhi = d; }
  template <class TT> uint64_t operator()(int64_t j, TT c) const { return bt.window(c, j - dhi); }
};

template <class TP>
struct BandSlide {
  Work::Slide* tab;
  int64_t base, m;
  const TP* p;
  int64_t dhi = 0;
  static uint64_t shr(uint64_t x, int64_t s) { return s < 64 ? x >> s : 0; }
  // Window top (bit 63) at column j: pattern element j - dhi + 63; absolute: + base.
  void insert(int64_t top) {
    Work::Slide& e = tab[p[top]];
    e.bits = shr(e.bits, base + top - e.pos) | (uint64_t(1) << 63);
    e.pos = base + top;
  }
  void start(int64_t d) {
    dhi = d;
    const int64_t t0 = 63 - dhi;
    for (int64_t i = 0; i < t0 && i < m; ++i) insert(i);
  }
  template <class TT> uint64_t operator()(int64_t j, TT c) {
    const int64_t top = j - dhi + 63;
    if (top < m) insert(top);
    if (sizeof(TT) > 1 && uint64_t(c) >= 256) return 0;
    const Work::Slide& e = tab[c];
    return shr(e.bits, base + top - e.pos);
  }
};

template <class TT, class Eq>
int64_t myers_band(Eq& eq, int64_t m, const TT* t, int64_t n, int64_t k) {
  const int64_t delta = n - m;
  const int64_t kl = (63 - delta) / 2;
  const int64_t dhi = delta + kl;
  const int64_t bound = delta + 2 * kl < k ? delta + 2 * kl : k;  // stop early past the caller's bound
  eq.start(dhi);
  uint64_t vn = dhi >= 63 ? ~uint64_t(0) : ((uint64_t(1) << (dhi + 1)) - 1);  // rows <= 0
  uint64_t vp = ~vn;
  const uint64_t sbit = uint64_t(1) << kl;
  const uint64_t top = uint64_t(1) << 63;
  int64_t score = delta;  // D[-delta][0] on the extended boundary
  for (int64_t j = 0; j < n; ++j) {
    vp = (vp >> 1) | top;
    vn >>= 1;
    const uint64_t x = eq(j, t[j]);
    const uint64_t d0 = (((x & vp) + vp) ^ vp) | x | vn;
    const uint64_t hp = vn | ~(d0 | vp);
    const uint64_t hn = vp & d0;
    score += (d0 & sbit) == 0;
    if (score > bound) return -1;
    const uint64_t hp1 = (hp << 1) | 1;
    vp = (hn << 1) | ~(d0 | hp1);
    vn = hp1 & d0;
  }
  return score;
}

// LCS length, pattern in the word table (m <= 64).
template <class TT>
inline int64_t lcs_word(WordTable& pm, int64_t m, const TT* t, int64_t n) {
  uint64_t s = ~uint64_t(0);
  for (int64_t j = 0; j < n; ++j) {
    const uint64_t u = s & pm.get(t[j]);
    s = (s + u) | (s - u);
  }
  const uint64_t mask = m == 64 ? ~uint64_t(0) : ((uint64_t(1) << m) - 1);
  return popcount64(~s & mask);
}

template <class TT>
int64_t lcs_block(Work& w, int64_t m, const TT* t, int64_t n) {
  const BlockTable& bt = w.bt;
  const int64_t words = bt.words;
  uint64_t* s = w.vp.get<uint64_t>(words);
  for (int64_t b = 0; b < words; ++b) s[b] = ~uint64_t(0);
  for (int64_t j = 0; j < n; ++j) {
    const uint64_t* eqs = bt.get(t[j]);
    uint64_t carry = 0;
    for (int64_t b = 0; b < words; ++b) {
      const uint64_t sb = s[b], u = sb & eqs[b];
      const uint64_t x = sb + u;
      const uint64_t sum = x + carry;
      const uint64_t c = (x < sb) | (sum < x);
      s[b] = sum | (sb - u);
      carry = c;
    }
  }
  int64_t lcs = 0;
  for (int64_t b = 0; b < words; ++b) {
    const int64_t bits = m - b * 64 >= 64 ? 64 : m - b * 64;
    const uint64_t mask = bits == 64 ? ~uint64_t(0) : ((uint64_t(1) << bits) - 1);
    lcs += popcount64(~s[b] & mask);
  }
  return lcs;
}

// Generic weights: the plain dynamic program (a along rows: deleting a[i] costs del;
// b along columns: inserting b[j] costs ins). Sat: additions saturate at INT64_MAX (weights so
// large that a cell could overflow): a path whose true cost fits is still computed exactly,
// so a result below INT64_MAX is exact.
inline int64_t sat_add(int64_t x, int64_t y) {
  int64_t r;
  return __builtin_add_overflow(x, y, &r) ? INT64_MAX : r;
}

template <bool Sat, class TA, class TB>
int64_t generic_dp(Work& w, const TA* a, int64_t m, const TB* b, int64_t n, const EditWeights& c) {
  auto add = [](int64_t x, int64_t y) { return Sat ? sat_add(x, y) : x + y; };
  int64_t* row = w.row.get<int64_t>(n + 1);
  row[0] = 0;
  for (int64_t j = 1; j <= n; ++j) row[j] = add(row[j - 1], c.ins);
  for (int64_t i = 1; i <= m; ++i) {
    int64_t diag = row[0];
    row[0] = add(row[0], c.del);
    const uint64_t ai = a[i - 1];
    for (int64_t j = 1; j <= n; ++j) {
      const int64_t up = row[j];
      int64_t v = add(up, c.del);
      const int64_t left = add(row[j - 1], c.ins);
      v = left < v ? left : v;
      const int64_t d = add(diag, ai == uint64_t(b[j - 1]) ? 0 : c.sub);
      v = d < v ? d : v;
      diag = up;
      row[j] = v;
    }
  }
  return row[n];
}

// Unit-cost Levenshtein of pattern p (shorter, m >= 1) against text t: exact when <= k,
// otherwise some value > k (k: the caller's score_cutoff in units; a small k runs a narrow
// band, which is what makes bounded searches fast).
template <class TP, class TT>
int64_t uniform(Work& w, const TP* p, int64_t m, const TT* t, int64_t n, int64_t k = INT64_MAX) {
  if (n - m > k) return k + 1;  // the length difference alone exceeds the bound
  if (m <= 64) {
    w.wt.build(p, m);
    const int64_t d = myers_word(w.wt, m, t, n);
    w.wt.clear(p, m);
    return d;
  }
  // Most pairs compared in practice are close: first the one-word diagonal band (exact up to
  // a distance of 62), then block bands of growing width, then the full matrix.
  int64_t d = -1;
  if (n - m <= 63) {
    uint64_t keys = 0;
    if (sizeof(TP) > 1)
      for (int64_t i = 0; i < m; ++i) keys |= uint64_t(p[i]);
    if (keys < 256) {
      BandSlide<TP> eq{w.slide, w.slide_base, m, p};
      d = myers_band(eq, m, t, n, k);
      w.slide_base += m + 64;
      if (d >= 0) return d;
      if (k <= 62) return k + 1;  // the band is exact up to 62 >= k
      w.build_block(p, m);
    } else {
      w.build_block(p, m);
      BandBlock eq{w.bt};
      d = myers_band(eq, m, t, n, k);
      if (d < 0 && k <= 62) {
        w.clear_block(p, m);
        return k + 1;
      }
    }
  } else {
    w.build_block(p, m);
  }
  int64_t k0 = (n - m) + (m / 8 > 24 ? m / 8 : 24);
  if (n - m <= 63 && k0 < 124) k0 = 124;
  for (int64_t kb = k0 < k ? k0 : k; d < 0; kb = kb < k / 3 ? kb * 3 : k) {
    if (kb >= n + m || (2 * kb) / 64 + 2 >= w.bt.words) {
      d = myers_block(w, m, t, n, n + m);
    } else {
      const int64_t r = myers_block(w, m, t, n, kb);
      if (r <= kb) d = r;
      else if (kb >= k) d = k + 1;  // the distance exceeds the caller's bound
    }
  }
  w.clear_block(p, m);
  return d;
}

template <class TP, class TT>
int64_t lcs(Work& w, const TP* p, int64_t m, const TT* t, int64_t n) {
  if (m <= 64) {
    w.wt.build(p, m);
    const int64_t l = lcs_word(w.wt, m, t, n);
    w.wt.clear(p, m);
    return l;
  }
  w.build_block(p, m);
  const int64_t l = lcs_block(w, m, t, n);
  w.clear_block(p, m);
  return l;
}

// Sentinels of pair_distance: the distance exceeds the bound; it does not fit in int64.
constexpr int64_t kOver = -1, kOverflow = -2;

// Over the bound k, or (no bound) beyond int64.
inline int64_t over(int64_t k) { return k == INT64_MAX ? kOverflow : kOver; }

// units * cost, checked against the bound k (k == INT64_MAX: no bound, so a product that
// does not fit is an overflow; otherwise it is merely over k).
inline int64_t bounded(int64_t units, int64_t cost, int64_t k) {
  int64_t r;
  if (__builtin_mul_overflow(units, cost, &r)) return over(k);
  return r <= k ? r : kOver;
}

// The distance if it is <= k, else kOver; kOverflow when it does not fit in int64.
template <class TA, class TB>
int64_t pair_distance(Work& w, const TA* a, int64_t m, const TB* b, int64_t n, const EditWeights& c,
                      int64_t k = INT64_MAX) {
  if (c.ins == 0 && c.del == 0) return 0;
  // Common prefix and suffix cost nothing for any weights.
  while (m && n && uint64_t(a[0]) == uint64_t(b[0])) ++a, ++b, --m, --n;
  while (m && n && uint64_t(a[m - 1]) == uint64_t(b[n - 1])) --m, --n;
  if (m == 0) return bounded(n, c.ins, k);
  if (n == 0) return bounded(m, c.del, k);
  // Lower bound: the length difference must be inserted or deleted.
  if (bounded(m > n ? m - n : n - m, m > n ? c.del : c.ins, k) < 0) return over(k);
  if (c.ins == c.del) {
    const int64_t ku = k / c.ins;  // the bound in units of the common cost
    if (c.sub == c.ins) {
      const int64_t u = m <= n ? uniform(w, a, m, b, n, ku) : uniform(w, b, n, a, m, ku);
      return u > ku ? over(k) : bounded(u, c.ins, k);
    }
    if (c.sub / 2 >= c.ins) {  // sub >= ins + del: no substitutions, InDel distance
      const int64_t l = m <= n ? lcs(w, a, m, b, n) : lcs(w, b, n, a, m);
      return bounded(m + n - 2 * l, c.ins, k);
    }
  }
  // Every cell is at most i * del + j * ins: saturate only when that could overflow.
  const int64_t wmax = c.ins > c.del ? (c.ins > c.sub ? c.ins : c.sub) : (c.del > c.sub ? c.del : c.sub);
  const bool sat = __int128(m + n) * wmax >= __int128(INT64_MAX);
  const int64_t d = sat ? generic_dp<true>(w, a, m, b, n, c) : generic_dp<false>(w, a, m, b, n, c);
  if (d == INT64_MAX) return over(k);
  return d <= k ? d : kOver;
}

// Calls f with a typed null pointer for the element width of `kind`.
template <class F>
inline auto with_kind(int kind, F&& f) {
  switch (kind) {
    case 1: return f(static_cast<const uint8_t*>(nullptr));
    case 2: return f(static_cast<const uint16_t*>(nullptr));
    case 4: return f(static_cast<const uint32_t*>(nullptr));
    default: return f(static_cast<const uint64_t*>(nullptr));
  }
}

inline int64_t distance(Work& w, const SeqRef& a, const SeqRef& b, const EditWeights& c, int64_t k = INT64_MAX) {
  return with_kind(a.kind, [&](auto ta) {
    typedef std::remove_cv_t<std::remove_pointer_t<decltype(ta)>> TA;
    return with_kind(b.kind, [&](auto tb) {
      typedef std::remove_cv_t<std::remove_pointer_t<decltype(tb)>> TB;
      return pair_distance(w, static_cast<const TA*>(a.data), a.len, static_cast<const TB*>(b.data), b.len, c, k);
    });
  });
}

// The integer bound of a pair under the cutoff (rapidfuzz: ceil(maximum * norm) when
// normalized), and the value stored for a result d of pair_distance under that bound.
inline int64_t pair_bound(const EditCutoff& cut, bool normalize, int64_t la, int64_t lb, const EditWeights& c) {
  if (!normalize) return cut.dist;
  const double k = std::ceil(edit_distance_maximum_f(la, lb, c) * cut.norm);
  return k < 9.2e18 ? static_cast<int64_t>(k) : INT64_MAX;
}

inline int64_t final_int(int64_t d, const EditCutoff& cut, int* overflow) {
  if (d >= 0) return d;
  if (d == kOver) return cut.dist + 1;
  if (overflow) __atomic_store_n(overflow, 1, __ATOMIC_RELAXED);
  return 0;
}

inline double final_norm(int64_t d, const EditCutoff& cut, int64_t la, int64_t lb, const EditWeights& c,
                         int* overflow) {
  if (d == kOver) return 1.0;
  if (d == kOverflow) {
    if (overflow) __atomic_store_n(overflow, 1, __ATOMIC_RELAXED);
    return 0.0;
  }
  const double mx = edit_distance_maximum_f(la, lb, c);
  const double nd = mx > 0 ? static_cast<double>(d) / mx : 0.0;
  return nd <= cut.norm ? nd : 1.0;
}

// Thread budget, measured on the 2-core dev machine: the batched kernel runs ~1 ns per
// sequence element (200000 pairs x 30 + 30 chars in ~11.5 ms on one thread, bench/RESULTS.md)
// and an empty 2-thread OpenMP region costs a few us on an idle machine (libgomp; measured
// 230-770 us while the machine was shared by a load of ~450), so a thread pays off from
// ~4096 elements (a + b lengths summed) of work at the least; below that a call (one pair,
// 10 pairs, a 10 x 10 matrix) stays on the calling thread.
constexpr long long kMinElementsPerThread = 4096;

// ---------------------------------------------------------------------------------------
// Pairwise: a row's pattern table built once, every column scanned.

// d: a result of pair_distance (or a sentinel) under the pair's bound.
inline void store_out(const EditPairwiseParams& p, int64_t i, int64_t j, int64_t d, int64_t la, int64_t lb) {
  const TensorView& out = p.out;
  const int64_t off = i * out.strides[0] + j * out.strides[1];
  if (p.normalize) {
    out.ptr<double>()[off] = final_norm(d, p.cutoff, la, lb, p.w, p.overflow);
    return;
  }
  d = final_int(d, p.cutoff, p.overflow);
  if (out.dtype == DType::i32) out.ptr<int32_t>()[off] = static_cast<int32_t>(d);
  else if (out.dtype == DType::i32) out.ptr<int32_t>()[off] = static_cast<int32_t>(d);
  else out.ptr<int64_t>()[off] = d;
}

// SIMD lanes: L patterns of <= B bits (B = 32 or 64) advanced together over one text.
template <class U> struct Lanes {
  typedef U V __attribute__((vector_size(kVecBytes)));
  static constexpr int L = kVecBytes / sizeof(U);
};

// ---------------------------------------------------------------------------------------
// Batched pairs in SIMD lanes: pairs of 1-byte elements with unit costs whose shorter side
// has 1..B elements (B = 8 * sizeof(U)) and whose longer side has < 256, L = kVecBytes /
// sizeof(U) per register. A thread takes a chunk of pairs (64..1024), sorts the packable ones by text
// length (so the lanes of a group end together) and runs each group of L through Myers'
// recurrence in parallel lanes; a lane whose text has ended stops scoring (a per-lane column
// bound). Other pairs of the chunk go through pair_distance's per-pair path.
struct LaneItem {
  const uint8_t* p;  // pattern (shorter side)
  const uint8_t* t;  // text
  int32_t m, n;
  int64_t idx;       // pair index
};

// A pattern of up to NB (32 or 64) bytes in registers; match(c) has bit i set where
// p[i] == c. Bits at and above the pattern's length may be set as well (text elements equal
// to the zero padding): harmless, since rows above m - 1 never influence row m - 1 in the
// recurrence.
template <int NB> struct BytePattern;
#if defined(__AVX512BW__)
template <> struct BytePattern<32> {
  __m256i v;
  void set(const uint8_t* p, int m) { v = _mm256_maskz_loadu_epi8(_bzhi_u32(~0u, m), p); }
  uint32_t match(uint8_t c) const { return _mm256_cmpeq_epi8_mask(v, _mm256_set1_epi8(static_cast<char>(c))); }
};
template <> struct BytePattern<64> {
  __m512i v;
  void set(const uint8_t* p, int m) { v = _mm512_maskz_loadu_epi8(_bzhi_u64(~uint64_t(0), m), p); }
  uint64_t match(uint8_t c) const { return _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(static_cast<char>(c))); }
};
#else
template <int NB> struct BytePattern {
#if defined(__AVX2__)
  typedef __m256i R;
  static R cmp(R a, uint8_t c) { return _mm256_cmpeq_epi8(a, _mm256_set1_epi8(static_cast<char>(c))); }
  static uint32_t bits(R a) { return static_cast<uint32_t>(_mm256_movemask_epi8(a)); }
#elif defined(FASTLOSS_X86)
  typedef __m128i R;
  static R cmp(R a, uint8_t c) { return _mm_cmpeq_epi8(a, _mm_set1_epi8(static_cast<char>(c))); }
  static uint32_t bits(R a) { return static_cast<uint32_t>(_mm_movemask_epi8(a)); }
#else  // portable: 16 byte lanes compared, the top bit of each gathered into a 16-bit mask
  typedef uint8_t R __attribute__((vector_size(16)));
  static R cmp(R a, uint8_t c) { return (R)(a == c); }
  static uint32_t bits(R a) {
    uint32_t m = 0;
    for (int i = 0; i < 16; ++i) m |= uint32_t(a[i] >> 7) << i;
    return m;
  }
#endif
  static constexpr int W = sizeof(R), P = NB / W;
  R v[P];
  void set(const uint8_t* p, int m) {  // a zero-padded copy (no read past the sequence)
    alignas(64) uint8_t buf[NB];
    std::memset(buf, 0, NB);
    std::memcpy(buf, p, m);
    for (int k = 0; k < P; ++k) std::memcpy(&v[k], buf + k * W, W);
  }
  uint64_t match(uint8_t c) const {
    uint64_t r = 0;
    for (int k = 0; k < P; ++k) r |= uint64_t(bits(cmp(v[k], c))) << (k * W);
    return r;
  }
};
#endif

template <class U>
struct BatchLanes {
  typedef typename Lanes<U>::V V;
  static constexpr int L = Lanes<U>::L;
  static constexpr int B = 8 * sizeof(U);
  ScratchBuffer eq_buf;  // [256][L]: per text column, each lane's match mask (allocated on first use)

  static V vload(const U* q) {
    V v;
    std::memcpy(&v, q, sizeof(V));
    return v;
  }

  // Distances of it[0..count) (count <= L) into res.
  void run(const LaneItem* it, int count, int64_t* res) {
    U* eqb = eq_buf.get<U>(256 * L);
    U mv_[L], lv_[L], nv_[L];
    int32_t nmax = 0;
    for (int r = 0; r < count; ++r) nmax = it[r].n > nmax ? it[r].n : nmax;
    for (int r = 0; r < L; ++r) {
      int32_t j = 0;
      if (r < count) {
        const LaneItem& x = it[r];
        BytePattern<B> pat;
        pat.set(x.p, x.m);
        for (; j < x.n; ++j) eqb[j * L + r] = static_cast<U>(pat.match(x.t[j]));
        mv_[r] = static_cast<U>(x.m);
        lv_[r] = U(U(1) << (x.m - 1));
        nv_[r] = static_cast<U>(x.n);
      } else {
        mv_[r] = 0, lv_[r] = 0, nv_[r] = 0;
      }
      for (; j < nmax; ++j) eqb[j * L + r] = 0;
    }
    V score = vload(mv_), lastv = vload(lv_), nv = vload(nv_);
    V pv = V{} - 1, mv = V{}, jv = V{};
    const V one = V{} + 1;
    for (int32_t j = 0; j < nmax; ++j) {
      const V eq = vload(eqb + j * L);
      const V xv = eq | mv;
      const V xh = (((eq & pv) + pv) ^ pv) | eq;
      V ph = mv | ~(xh | pv);
      V mh = pv & xh;
      const V act = (V)(jv < nv);  // all ones while the lane's text lasts
      score -= (V)((ph & lastv) != 0) & act;
      score += (V)((mh & lastv) != 0) & act;
      ph = (ph << 1) | one;
      mh = mh << 1;
      pv = mh | ~(xv | ph);
      mv = ph & xv;
      jv += one;
    }
    for (int r = 0; r < count; ++r) res[r] = static_cast<int64_t>(score[r]);
  }
};

// Common prefix and suffix of two byte strings, compared 8 bytes at a time.
inline void trim_bytes(const uint8_t*& a, int64_t& m, const uint8_t*& b, int64_t& n) {
  const int64_t k = m < n ? m : n;
  int64_t i = 0;
  while (i + 8 <= k) {
    uint64_t x, y;
    std::memcpy(&x, a + i, 8);
    std::memcpy(&y, b + i, 8);
    if (x != y) break;
    i += 8;
  }
  while (i < k && a[i] == b[i]) ++i;
  a += i, b += i, m -= i, n -= i;
  const int64_t k2 = k - i;
  int64_t s = 0;
  while (s + 8 <= k2) {
    uint64_t x, y;
    std::memcpy(&x, a + m - s - 8, 8);
    std::memcpy(&y, b + n - s - 8, 8);
    if (x != y) break;
    s += 8;
  }
  while (s < k2 && a[m - 1 - s] == b[n - 1 - s]) ++s;
  m -= s, n -= s;
}

inline int64_t batch_bound(const EditBatchParams& p, int64_t i) {
  return pair_bound(p.cutoff, p.out_norm != nullptr, p.a[i].len, p.b[i].len, p.w);
}

// d: a result of pair_distance (or a sentinel) under batch_bound(p, i).
inline void emit(const EditBatchParams& p, int64_t i, int64_t d) {
  if (p.out_int) p.out_int[i] = final_int(d, p.cutoff, p.overflow);
  if (p.out_norm) p.out_norm[i] = final_norm(d, p.cutoff, p.a[i].len, p.b[i].len, p.w, p.overflow);
}

// Sorts items by text length (counting sort into `sorted`) and runs them L at a time.
template <class U>
void run_lanes(BatchLanes<U>& bl, const LaneItem* items, int64_t count, LaneItem* sorted, int64_t* pos,
               const EditBatchParams& p) {
  constexpr int L = BatchLanes<U>::L;
  for (int k = 0; k < 256; ++k) pos[k] = 0;
  for (int64_t i = 0; i < count; ++i) ++pos[items[i].n];
  int64_t at = 0;
  for (int k = 0; k < 256; ++k) {
    const int64_t c = pos[k];
    pos[k] = at;
    at += c;
  }
  for (int64_t i = 0; i < count; ++i) sorted[pos[items[i].n]++] = items[i];
  int64_t res[L];
  for (int64_t g = 0; g < count; g += L) {
    const int cnt = static_cast<int>(count - g < L ? count - g : L);
    bl.run(sorted + g, cnt, res);
    for (int r = 0; r < cnt; ++r) {
      const int64_t i = sorted[g + r].idx;
      emit(p, i, bounded(res[r], p.w.ins, batch_bound(p, i)));
    }
  }
}

// Group of up to L rows of `a` (all unit-cost, 1..B elements) against every column of b.
// Table: for each distinct key of the group, L lane masks; key -> row via a small map.
template <class U>
struct LaneGroup {
  typedef typename Lanes<U>::V V;
  static constexpr int L = Lanes<U>::L;
  ScratchBuffer tab_buf, keys_buf, rows_buf, ids_buf;
  static constexpr int32_t zero_row = 256;
  U* tab = nullptr;       // (nrows) x L
  uint64_t* hkeys = nullptr;
  int32_t* hrows = nullptr;
  int64_t hcap = 0, nrows = 0;
  U last_bit[L];
  int64_t len[L];


  // Rows 0..255 are the keys below 256 themselves; other keys get rows from 256 on, and a
  // key absent from the group maps to row 0 when it is >= 256 (row 0 is then all-zero).
  inline int32_t find(uint64_t k) const {
    if (k < 256) return static_cast<int32_t>(k);
    if (!hcap) return zero_row;
    uint64_t h = hash64(k) & (hcap - 1);
    while (hkeys[h]) {
      if (hkeys[h] == k) return hrows[h];
      h = (h + 1) & (hcap - 1);
    }
    return zero_row;
  }

  template <class T> int32_t insert(uint64_t k) {
    if (k < 256) return static_cast<int32_t>(k);
    uint64_t h = hash64(k) & (hcap - 1);
    while (hkeys[h] && hkeys[h] != k) h = (h + 1) & (hcap - 1);
    if (!hkeys[h]) { hkeys[h] = k; hrows[h] = static_cast<int32_t>(nrows++); }
    return hrows[h];
  }

  // rows: the group's SeqRefs (count <= L, each len in 1..8*sizeof(U)).
  void build(const SeqRef* rows, int count) {
    int64_t total = 0;
    for (int r = 0; r < count; ++r) total += rows[r].len;
    hcap = 16;
    while (hcap < 2 * total + 2) hcap *= 2;
    hkeys = keys_buf.get<uint64_t>(hcap);
    hrows = rows_buf.get<int32_t>(hcap);
    std::memset(hkeys, 0, hcap * 8);
    nrows = 257;  // rows 0..255: keys < 256; row 256: all-zero (absent keys >= 256)
    tab = tab_buf.get<U>((total + 257) * L);
    std::memset(tab, 0, (total + 257) * L * sizeof(U));
    for (int r = 0; r < L; ++r) {
      len[r] = r < count ? rows[r].len : 0;
      last_bit[r] = len[r] ? U(U(1) << (len[r] - 1)) : U(0);
    }
    for (int r = 0; r < count; ++r) {
      with_kind(rows[r].kind, [&](auto tp) {
        typedef std::remove_cv_t<std::remove_pointer_t<decltype(tp)>> T;
        const T* p = static_cast<const T*>(rows[r].data);
        for (int64_t i = 0; i < rows[r].len; ++i) {
          const int32_t row = insert<T>(p[i]);
          tab[row * L + r] |= U(U(1) << i);
        }
        return 0;
      });
    }
  }
  void clear(const SeqRef*, int) { hcap = 0; }

  // Distances of every lane's pattern to text t (n elements): out[r].
  template <class TT> void run(const TT* t, int64_t n, int64_t* out) {
    V pv = V{} - 1, mv = V{}, score, lastv;
    for (int r = 0; r < L; ++r) score[r] = static_cast<U>(len[r]), lastv[r] = last_bit[r];
    const V one = V{} + 1;
    for (int64_t j = 0; j < n; ++j) {
      V eq;
      std::memcpy(&eq, tab + static_cast<int64_t>(find(t[j])) * L, sizeof(V));
      const V xv = eq | mv;
      const V xh = (((eq & pv) + pv) ^ pv) | eq;
      V ph = mv | ~(xh | pv);
      V mh = pv & xh;
      // (x & last) != 0 is -1 (all ones) in a true lane.
      score -= (V)((ph & lastv) != 0);
      score += (V)((mh & lastv) != 0);
      ph = (ph << 1) | one;
      mh = mh << 1;
      pv = mh | ~(xv | ph);
      mv = ph & xv;
    }
    for (int r = 0; r < L; ++r) out[r] = static_cast<int64_t>(score[r]);
  }
};

template <class U>
void pairwise_lanes(const EditPairwiseParams& p, const int64_t* rows, int64_t nrows_sel) {
  constexpr int L = Lanes<U>::L;
  const int64_t groups = (nrows_sel + L - 1) / L;
  // Tiles: (group, column block); columns split when there are few groups.
  long long work = 0;
  for (int64_t r = 0; r < nrows_sel; ++r) work += p.a[rows[r]].len;
  for (int64_t j = 0; j < p.nb; ++j) work += p.b[j].len * groups;
  const int nt = threads_for(work, kMinElementsPerThread);
  int64_t col_block = p.nb;
  if (groups < 4 * nt) {
    const int64_t want = (4 * nt + groups - 1) / groups;
    col_block = (p.nb + want - 1) / want;
    if (col_block < 64) col_block = 64;
  }
  const int64_t cblocks = (p.nb + col_block - 1) / col_block;
  const int64_t tiles = groups * cblocks;
  Claim claim(tiles, 1);
  parallel_parts(nt, [&](int, int) {
    static thread_local LaneGroup<U> lg;
    static thread_local ScratchBuffer refs_buf;
    SeqRef* refs = refs_buf.get<SeqRef>(L);
    int64_t cur_group = -1;
    int count = 0;
    int64_t res[L];
    for (int64_t tile, end; claim.take(&tile, &end);) {
      const int64_t g = tile / cblocks, cb = tile % cblocks;
      if (g != cur_group) {
        if (cur_group >= 0) lg.clear(refs, count);
        count = static_cast<int>(nrows_sel - g * L < L ? nrows_sel - g * L : L);
        for (int r = 0; r < count; ++r) refs[r] = p.a[rows[g * L + r]];
        lg.build(refs, count);
        cur_group = g;
      }
      const int64_t j1 = (cb + 1) * col_block < p.nb ? (cb + 1) * col_block : p.nb;
      for (int64_t j = cb * col_block; j < j1; ++j) {
        const SeqRef& b = p.b[j];
        with_kind(b.kind, [&](auto tp) {
          typedef std::remove_cv_t<std::remove_pointer_t<decltype(tp)>> T;
          lg.run(static_cast<const T*>(b.data), b.len, res);
          return 0;
        });
        for (int r = 0; r < count; ++r)
          store_out(p, rows[g * L + r], j,
                    bounded(res[r], p.w.ins, pair_bound(p.cutoff, p.normalize, refs[r].len, b.len, p.w)), refs[r].len,
                    b.len);
      }
    }
    if (cur_group >= 0) lg.clear(refs, count);
  });
}

// Unit costs, rows of more than 64 elements (or none): each row's block table is built once
// per tile of columns, and every column runs Myers' block algorithm against it (the row as the
// pattern whichever side is shorter; no per-pair table or trimming), within Ukkonen's band of
// the pair's bound when there is one (so a cutoff only ever removes work), after the length
// difference alone has been checked against that bound.
void pairwise_rows(const EditPairwiseParams& p, const int64_t* rows, int64_t nrows) {
  const EditWeights& c = p.w;
  constexpr int64_t kCols = 256;
  const int64_t cblocks = (p.nb + kCols - 1) / kCols;
  const int64_t tiles = nrows * cblocks;
  long long work = 0;
  for (int64_t r = 0; r < nrows; ++r) work += p.a[rows[r]].len * p.nb;
  for (int64_t j = 0; j < p.nb; ++j) work += p.b[j].len * nrows;
  const int nt = threads_for(work, kMinElementsPerThread);
  Claim claim(tiles, 1);  // tiles handed out one at a time: rows differ in length
  parallel_parts(nt, [&](int, int) {
    Work& w = thread_work();
    int64_t t0, t1;
    while (claim.take(&t0, &t1)) {
      const int64_t tile = t0;
      const int64_t i = rows[tile / cblocks], cb = tile % cblocks;
      const SeqRef& a = p.a[i];
      const int64_t m = a.len, j1 = (cb + 1) * kCols < p.nb ? (cb + 1) * kCols : p.nb;
      with_kind(a.kind, [&](auto ta) {
        typedef std::remove_cv_t<std::remove_pointer_t<decltype(ta)>> TA;
        const TA* pa = static_cast<const TA*>(a.data);
        if (m) w.build_block(pa, m);
        for (int64_t j = cb * kCols; j < j1; ++j) {
          const SeqRef& b = p.b[j];
          const int64_t n = b.len;
          const int64_t k = pair_bound(p.cutoff, p.normalize, m, n, c), ku = k / c.ins;
          int64_t d;
          if (m == 0 || n == 0) {
            d = bounded(m + n, c.ins, k);
          } else if ((m > n ? m - n : n - m) > ku) {
            d = over(k);
          } else {
            // A band as wide as the pattern saves nothing: the plain block loop then.
            const int64_t kb = ku < m + n && (2 * ku) / 64 + 2 < w.bt.words ? ku : m + n;
            const int64_t u = with_kind(b.kind, [&](auto tb) {
              typedef std::remove_cv_t<std::remove_pointer_t<decltype(tb)>> TB;
              return myers_block(w, m, static_cast<const TB*>(b.data), n, kb);
            });
            d = u > ku ? over(k) : bounded(u, c.ins, k);
          }
          store_out(p, i, j, d, m, n);
        }
        if (m) w.clear_block(pa, m);
        return 0;
      });
    }
  });
}

}  // namespace

int64_t edit_distance_pair(const SeqRef& a, const SeqRef& b, const EditWeights& w, int64_t k) {
  return distance(thread_work(), a, b, w, k);
}

void edit_distance_batch(const EditBatchParams& p) {
  const EditWeights& c = p.w;
  // A handful of pairs (a single pair from Python) is not worth the lanes' fixed costs.
  const bool lanes = c.ins == c.del && c.ins == c.sub && c.ins > 0 && p.n >= 32;
  long long work = 0;
  for (int64_t i = 0; i < p.n; ++i) work += p.a[i].len + p.b[i].len;
  const int nt = threads_for(work, kMinElementsPerThread);
  // Chunks of pairs: large enough to sort into full lane groups, several per thread (pairs
  // outside the lanes may differ widely in cost).
  int64_t chunk = p.n / (8 * nt);
  chunk = chunk > 1024 ? 1024 : (chunk < 64 ? 64 : chunk);
  const int64_t chunks = (p.n + chunk - 1) / chunk;
  Claim claim(chunks, 1);
  parallel_parts(nt, [&](int, int) {
    // Per-thread scratch kept between calls (a small call allocates and clears nothing).
    Work& w = thread_work();
    static thread_local BatchLanes<uint32_t> l32;
    static thread_local BatchLanes<uint64_t> l64;
    static thread_local ScratchBuffer items_buf, sorted_buf, pos_buf;
    // items [0, chunk): patterns of <= 32 elements, [chunk, 2 chunk): 33..64
    LaneItem* items = lanes ? items_buf.get<LaneItem>(2 * chunk) : nullptr;
    LaneItem* sorted = lanes ? sorted_buf.get<LaneItem>(chunk) : nullptr;
    int64_t* pos = lanes ? pos_buf.get<int64_t>(256) : nullptr;
    for (int64_t ch, end; claim.take(&ch, &end);) {
      const int64_t i0 = ch * chunk, i1 = i0 + chunk < p.n ? i0 + chunk : p.n;
      int64_t n32 = 0, n64 = 0;
      for (int64_t i = i0; i < i1; ++i) {
        const SeqRef &a = p.a[i], &b = p.b[i];
        if (!lanes || a.kind != 1 || b.kind != 1) {
          emit(p, i, distance(w, a, b, c, batch_bound(p, i)));
          continue;
        }
        const uint8_t* x = static_cast<const uint8_t*>(a.data);
        const uint8_t* y = static_cast<const uint8_t*>(b.data);
        int64_t m = a.len, n = b.len;
        if (m > n) {
          const uint8_t* t = x;
          x = y, y = t;
          const int64_t l = m;
          m = n, n = l;
        }
        if (m == 0) {
          emit(p, i, bounded(n, c.ins, batch_bound(p, i)));
        } else if (m <= 64 && n < 256) {
          LaneItem& it = m <= 32 ? items[n32++] : items[chunk + n64++];
          it.p = x, it.t = y, it.m = static_cast<int32_t>(m), it.n = static_cast<int32_t>(n), it.idx = i;
        } else {
          trim_bytes(x, m, y, n);
          if (m > n) {
            const uint8_t* t = x;
            x = y, y = t;
            const int64_t l = m;
            m = n, n = l;
          }
          const int64_t k = batch_bound(p, i), ku = k / c.ins;
          const int64_t u = m ? uniform(w, x, m, y, n, ku) : n;
          emit(p, i, u > ku ? over(k) : bounded(u, c.ins, k));
        }
      }
      if (n32) run_lanes(l32, items, n32, sorted, pos, p);
      if (n64) run_lanes(l64, items + chunk, n64, sorted, pos, p);
    }
  });
}

void edit_distance_pairwise(const EditPairwiseParams& p) {
  if (p.na == 0 || p.nb == 0) return;
  const EditWeights& c = p.w;
  const bool unit = c.ins == c.del && c.ins == c.sub && c.ins > 0;
  // Rows handled in SIMD lanes (unit costs, 1..32 or 33..64 elements), the rest per pair.
  static thread_local ScratchBuffer sel32_buf, sel64_buf, rest_buf;
  int64_t* sel32 = sel32_buf.get<int64_t>(p.na);
  int64_t* sel64 = sel64_buf.get<int64_t>(p.na);
  int64_t* rest = rest_buf.get<int64_t>(p.na);
  int64_t n32 = 0, n64 = 0, nrest = 0;
  for (int64_t i = 0; i < p.na; ++i) {
    const int64_t l = p.a[i].len;
    if (unit && l >= 1 && l <= 32) sel32[n32++] = i;
    else if (unit && l >= 1 && l <= 64) sel64[n64++] = i;
    else rest[nrest++] = i;
  }
  if (n32) pairwise_lanes<uint32_t>(p, sel32, n32);
  if (n64) pairwise_lanes<uint64_t>(p, sel64, n64);
  if (!nrest) return;
  if (unit) {
    // A bound that fits Hyyro's one-word diagonal band (<= 62) is cheaper pair by pair (trimmed,
    // one word per column, early exit); otherwise the per-row block tables.
    int64_t la = 0, lb = 0;
    for (int64_t r = 0; r < nrest; ++r) la = p.a[rest[r]].len > la ? p.a[rest[r]].len : la;
    for (int64_t j = 0; j < p.nb; ++j) lb = p.b[j].len > lb ? p.b[j].len : lb;
    const int64_t kmax = pair_bound(p.cutoff, p.normalize, la, lb, c) / c.ins;
    if (kmax > 62) return pairwise_rows(p, rest, nrest);
  }
  const int64_t tiles = nrest * p.nb;
  long long work = 0;
  for (int64_t r = 0; r < nrest; ++r) work += p.a[rest[r]].len * p.nb;
  for (int64_t j = 0; j < p.nb; ++j) work += p.b[j].len * nrest;
  const int nt = threads_for(work, kMinElementsPerThread);
  parallel_for(tiles, 16, nt, [&](int64_t t0, int64_t t1) {
    Work& w = thread_work();
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t i = rest[t / p.nb], j = t % p.nb;
      const int64_t d = distance(w, p.a[i], p.b[j], c, pair_bound(p.cutoff, p.normalize, p.a[i].len, p.b[j].len, c));
      store_out(p, i, j, d, p.a[i].len, p.b[j].len);
    }
  });
}

}  // namespace FASTLOSS_ISA
}  // namespace cpu
}  // namespace fastloss
