// Python entry points of the edit-distance family: argument checks, conversion and output
// allocation, one C++ call per Python call. Python sequences cross into C++ once per call:
// every str is read through PyUnicode_KIND/PyUnicode_DATA (1, 2 or 4 bytes per code point,
// kept at that width: the kernels are templated on it) and copied into per-thread blocks that
// persist between calls and never move, so the GIL can be released for the kernels without
// any pointer into a Python object (a concurrent mutation of the inputs cannot free memory
// under the kernel). Sequences of tokens become int64 buffers there too (ints by value, str
// tokens by a per-call dictionary, other hashables by hash()); converting them may run Python
// code (a token's __hash__ or __eq__), so from the first one on the outer list and each inner
// list are read through tuples of strong references, never through the caller's lists. A
// single pair of str runs on the calling thread with none of that (str is immutable and the
// call holds it).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "array.h"
#include "fastloss/edit_distance.h"
#include "views.h"

namespace fastloss {
namespace {

[[noreturn]] void bad_weights(const py::handle& w) {
  throw_type("weights must be a tuple of 3 integers (insertion, deletion, substitution), got " +
             py::repr(w).cast<std::string>());
}

bool is_integral(PyObject* o) {
  if (PyLong_CheckExact(o)) return true;
  if (PyBool_Check(o) || PyFloat_Check(o)) return false;
  static PyObject* integral = [] {
    PyObject* mod = PyImport_ImportModule("numbers");
    if (!mod) throw py::error_already_set();
    PyObject* cls = PyObject_GetAttrString(mod, "Integral");
    Py_DECREF(mod);
    if (!cls) throw py::error_already_set();
    return cls;  // kept for the life of the process
  }();
  const int r = PyObject_IsInstance(o, integral);
  if (r < 0) throw py::error_already_set();
  return r == 1;
}

// A Python integer as int64; false when it is outside int64 (*out is then INT64_MIN or
// INT64_MAX, by its sign).
bool int64_of(PyObject* o, int64_t* out) {
  PyObject* idx = PyNumber_Index(o);
  if (!idx) throw py::error_already_set();
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(idx, &overflow);
  Py_DECREF(idx);
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  *out = overflow < 0 ? INT64_MIN : (overflow > 0 ? INT64_MAX : v);
  return !overflow;
}

// (insertion, deletion, substitution): non-negative integers that fit in int64.
EditWeights to_weights(const py::handle& w) {
  PyObject* src = w.ptr();
  py::object keep;
  if (!PyTuple_CheckExact(src)) {
    if (PyUnicode_Check(src) || !PySequence_Check(src)) bad_weights(w);
    src = PySequence_Tuple(src);
    if (!src) {
      PyErr_Clear();
      bad_weights(w);
    }
    keep = py::reinterpret_steal<py::object>(src);
  }
  if (PyTuple_GET_SIZE(src) != 3) bad_weights(w);
  int64_t v[3];
  bool fits = true;
  for (int i = 0; i < 3; ++i) {
    PyObject* x = PyTuple_GET_ITEM(src, i);
    if (!is_integral(x)) bad_weights(w);
    if (!int64_of(x, &v[i])) fits = false;
  }
  EditWeights e{v[0], v[1], v[2]};
  if (!fits || e.ins < 0 || e.del < 0 || e.sub < 0) {
    const std::string got = py::repr(py::handle(src)).cast<std::string>();
    if (e.ins < 0 || e.del < 0 || e.sub < 0)
      throw_value("weights must be non-negative (insertion, deletion, substitution), got " + got);
    throw_value("weights must each be below 2**63 (insertion, deletion, substitution), got " + got);
  }
  return e;
}

[[noreturn]] void weights_overflow(const EditWeights& w) {
  throw_value("weights (" + std::to_string(w.ins) + ", " + std::to_string(w.del) + ", " + std::to_string(w.sub) +
              ") make a distance that does not fit in int64; use smaller weights (or normalize=True)");
}

bool normalize_arg(const py::handle& x) { return bool_arg(x, "normalize"); }

// score_cutoff: None; with normalize a number in [0, 1]; else a non-negative integer (any
// bound from 2**63 - 1 up is no bound: no distance that fits in int64 exceeds it).
EditCutoff cutoff_arg(const py::handle& x, bool normalize) {
  EditCutoff c;
  if (x.is_none()) return c;
  PyObject* o = x.ptr();
  if (normalize) {
    if (PyBool_Check(o) || !(PyFloat_Check(o) || is_integral(o) || PyObject_HasAttrString(o, "__float__")))
      throw_type("score_cutoff must be a float in [0, 1] with normalize=True (or None), got " +
                 py::repr(x).cast<std::string>());
    const double v = PyFloat_AsDouble(o);
    if (v == -1.0 && PyErr_Occurred()) throw py::error_already_set();
    if (!(v >= 0.0 && v <= 1.0))
      throw_value("score_cutoff must be in [0, 1] with normalize=True, got " + py::repr(x).cast<std::string>());
    c.norm = v;
    return c;
  }
  if (PyBool_Check(o) || !is_integral(o))
    throw_type("score_cutoff must be a non-negative integer (or None), got " + py::repr(x).cast<std::string>());
  int64_t v;
  if (!int64_of(o, &v) && v > 0) return c;
  if (v < 0) throw_value("score_cutoff must be non-negative, got " + py::repr(x).cast<std::string>());
  c.dist = v == INT64_MAX ? INT64_MAX - 1 : v;  // cutoff + 1 must fit
  return c;
}

inline void str_view(PyObject* s, SeqRef* r) {
#if PY_VERSION_HEX < 0x030C0000
  if (PyUnicode_READY(s) < 0) throw py::error_already_set();
#endif
  r->data = PyUnicode_DATA(s);
  r->len = PyUnicode_GET_LENGTH(s);
  r->kind = static_cast<int32_t>(PyUnicode_KIND(s));
}

inline uint32_t code_point(const void* data, int kind, int64_t i) {
  switch (kind) {
    case 1: return static_cast<const uint8_t*>(data)[i];
    case 2: return static_cast<const uint16_t*>(data)[i];
    default: return static_cast<const uint32_t*>(data)[i];
  }
}

// Byte blocks that keep their memory between calls (no zero-filling, no page faults on
// repeated calls of similar size) and never move, so a pointer into them is final at once.
class Arena {
 public:
  Arena() = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  ~Arena() {
    for (auto& b : blocks_) std::free(b.p);
  }
  void reset() {
    next_ = 0;
    at_ = end_ = nullptr;
  }
  // 8-byte aligned room for nb bytes.
  char* alloc(size_t nb) {
    nb = (nb + 7) & ~size_t(7);
    if (static_cast<size_t>(end_ - at_) < nb) next_block(nb);
    char* r = at_;
    at_ += nb;
    return r;
  }

 private:
  struct Block { char* p; size_t size; };
  static constexpr size_t kBlock = size_t(1) << 20;
  void next_block(size_t nb) {
    if (next_ >= blocks_.size() || blocks_[next_].size < nb) {  // a new block, used from now on
      const size_t size = nb > kBlock ? nb : kBlock;
      blocks_.reserve(blocks_.size() + 1);  // so that the insert below cannot throw
      char* p = static_cast<char*>(std::malloc(size));
      if (!p) throw std::bad_alloc();
      blocks_.insert(blocks_.begin() + static_cast<std::ptrdiff_t>(next_), Block{p, size});
    }
    at_ = blocks_[next_].p;
    end_ = at_ + blocks_[next_].size;
    ++next_;
  }
  std::vector<Block> blocks_;
  size_t next_ = 0;  // the block after the current one
  char* at_ = nullptr;
  char* end_ = nullptr;
};

// A batch of sequences converted from a Python sequence: str code units and integer tokens
// are copied into `arena` (so no pointer into a Python object outlives the GIL).
struct SeqBatch {
  py::object items;              // a tuple made from an input that is not a list or tuple
  std::vector<SeqRef> refs;
  Arena arena;
  bool busy = false;
};

// Per-thread batches reused across calls; a nested call (a __hash__ calling back into
// fastloss) gets fresh ones.
struct BatchLease {
  SeqBatch* b;
  std::unique_ptr<SeqBatch> own;
  explicit BatchLease(SeqBatch& tl) {
    if (tl.busy) {
      own.reset(new SeqBatch());
      b = own.get();
    } else {
      b = &tl;
    }
    b->busy = true;
    b->arena.reset();
  }
  ~BatchLease() {
    b->busy = false;
    b->items = py::object();
  }
  SeqBatch& operator*() { return *b; }
};

SeqBatch& tl_batch(int k) {
  static thread_local SeqBatch batches[2];
  return batches[k];
}

// Str tokens inside token sequences get ids from this dictionary (shared by a and b).
struct TokenIds {
  py::dict ids;
  int64_t next = int64_t(1) << 62;
};

int64_t token_value(PyObject* tok, TokenIds& dict, const char* name, int64_t i, int64_t k) {
  if (PyLong_Check(tok)) {
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(tok, &overflow);
    if (!overflow && !(v == -1 && PyErr_Occurred())) return v;
    PyErr_Clear();
  } else if (PyUnicode_Check(tok)) {
    // A one-character token is that character (as rapidfuzz hashes it): "ab" against ["a", "b"] is 0.
    if (PyUnicode_GET_LENGTH(tok) == 1) return static_cast<int64_t>(PyUnicode_READ_CHAR(tok, 0));
    PyObject* found = PyDict_GetItemWithError(dict.ids.ptr(), tok);
    if (found) return PyLong_AsLongLong(found);
    if (PyErr_Occurred()) throw py::error_already_set();
    const int64_t id = dict.next++;
    dict.ids[py::handle(tok)] = py::int_(id);
    return id;
  }
  const Py_hash_t h = PyObject_Hash(tok);
  if (h == -1) {
    // An unhashable token is a TypeError naming it; any other error of a __hash__ is the caller's.
    if (!PyErr_ExceptionMatches(PyExc_TypeError)) throw py::error_already_set();
    PyErr_Clear();
    throw_type(std::string(name) + "[" + std::to_string(i) + "][" + std::to_string(k) +
               "] is not hashable (" + Py_TYPE(tok)->tp_name + "); elements must be str or sequences of "
               "integers/hashable tokens");
  }
  return static_cast<int64_t>(h);
}

// Tokens whose conversion runs no Python code: exact ints, and exact str (looked up in a
// dictionary that holds only exact str).
inline bool inert(PyObject* t) { return PyLong_CheckExact(t) || PyUnicode_CheckExact(t); }

void convert(const py::handle& seq, const char* name, SeqBatch& out, TokenIds& dict) {
  // A list is read in place while its items are str (copying them runs no Python code); the
  // first token sequence switches to a tuple of strong references, since a token's __hash__
  // or __eq__ may change the caller's list.
  PyObject* src = seq.ptr();
  if (!PyList_Check(src) && !PyTuple_Check(src)) {
    PyObject* tup = PySequence_Tuple(src);
    if (!tup) {
      PyErr_Clear();
      throw_type(std::string(name) + " must be a sequence of str or of integer sequences, got " +
                 Py_TYPE(src)->tp_name);
    }
    out.items = py::reinterpret_steal<py::tuple>(tup);
    src = tup;
  }
  bool is_list = PyList_Check(src);
  PyObject** items = is_list ? reinterpret_cast<PyListObject*>(src)->ob_item : &PyTuple_GET_ITEM(src, 0);
  const int64_t n = is_list ? PyList_GET_SIZE(src) : PyTuple_GET_SIZE(src);
  out.refs.resize(n);
  SeqRef* refs = out.refs.data();
  constexpr int64_t kAhead = 16;  // prefetch distance: the objects are scattered on the heap
  for (int64_t i = 0; i < n; ++i) {
    if (i + kAhead < n) {
      const char* q = reinterpret_cast<const char*>(items[i + kAhead]);
      __builtin_prefetch(q);
      __builtin_prefetch(q + 64);
    }
    PyObject* o = items[i];
    SeqRef& r = refs[i];
    if (PyUnicode_Check(o)) {  // copied: no pointer into a Python object outlives the GIL
      str_view(o, &r);
      const size_t nb = static_cast<size_t>(r.len) * r.kind;
      char* dst = out.arena.alloc(nb);
      if (nb) std::memcpy(dst, r.data, nb);
      r.data = dst;
      continue;
    }
    if (is_list) {
      PyObject* tup = PyList_AsTuple(src);
      if (!tup) throw py::error_already_set();
      out.items = py::reinterpret_steal<py::tuple>(tup);
      src = tup;
      items = &PyTuple_GET_ITEM(tup, 0);
      is_list = false;
    }
    PyObject* fast = PySequence_Fast(o, "");
    if (!fast) {
      PyErr_Clear();
      throw_type(std::string(name) + "[" + std::to_string(i) + "] must be a str or a sequence of integers, got " +
                 Py_TYPE(o)->tp_name);
    }
    py::object keep = py::reinterpret_steal<py::object>(fast);
    const int64_t len = PySequence_Fast_GET_SIZE(fast);
    PyObject** elems = PySequence_Fast_ITEMS(fast);
    char* dst = out.arena.alloc(static_cast<size_t>(len) * 8);
    for (int64_t k = 0; k < len; ++k) {
      if (!inert(elems[k]) && PyList_Check(fast)) {
        // Python code may run from here on (and clear the list): read a tuple copy instead.
        PyObject* tup = PyList_AsTuple(fast);
        if (!tup) throw py::error_already_set();
        keep = py::reinterpret_steal<py::object>(tup);
        fast = tup;
        elems = &PyTuple_GET_ITEM(tup, 0);
      }
      const int64_t v = token_value(elems[k], dict, name, i, k);
      std::memcpy(dst + 8 * k, &v, 8);
    }
    r.data = dst;
    r.len = len;
    r.kind = 8;
  }
}

// ---------------------------------------------------------------------------------------
// error_rate: jiwer 4's default transforms. CER: strip() each sentence, then code points.
// WER: RemoveMultipleSpaces (r"\s\s+" -> " "), strip(), split(" ") dropping empty words:
// a separator is a ' ' or any run of >= 2 whitespace characters; a lone non-space
// whitespace character between two words stays inside the word.
struct WordTable {
  struct Word { const void* data; int64_t len; int kind; uint64_t hash; };
  std::vector<Word> words;
  std::vector<int32_t> slots;  // index + 1, 0 = empty
  uint64_t mask = 0;

  WordTable() : slots(1024, 0), mask(1023) {}

  static bool same(const Word& a, const void* data, int64_t len, int kind) {
    if (a.len != len) return false;
    if (a.kind == kind) return std::memcmp(a.data, data, static_cast<size_t>(len) * kind) == 0;
    for (int64_t i = 0; i < len; ++i)
      if (code_point(a.data, a.kind, i) != code_point(data, kind, i)) return false;
    return true;
  }
  void grow() {
    std::vector<int32_t> s(slots.size() * 2, 0);
    const uint64_t m = s.size() - 1;
    for (size_t w = 0; w < words.size(); ++w) {
      uint64_t h = words[w].hash & m;
      while (s[h]) h = (h + 1) & m;
      s[h] = static_cast<int32_t>(w + 1);
    }
    slots.swap(s);
    mask = m;
  }
  int64_t id(const void* data, int64_t len, int kind) {
    uint64_t h = 1469598103934665603ull;
    for (int64_t i = 0; i < len; ++i) h = (h ^ code_point(data, kind, i)) * 1099511628211ull;
    h ^= h >> 33;  // FNV's low bits are weak: a murmur-style finaliser before masking
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    uint64_t s = h & mask;
    while (slots[s]) {
      const Word& w = words[slots[s] - 1];
      if (w.hash == h && same(w, data, len, kind)) return slots[s] - 1;
      s = (s + 1) & mask;
    }
    words.push_back({data, len, kind, h});
    slots[s] = static_cast<int32_t>(words.size());
    if (words.size() * 2 > slots.size()) grow();
    return static_cast<int64_t>(words.size()) - 1;
  }
};

inline bool is_space(uint32_t c) { return Py_UNICODE_ISSPACE(static_cast<Py_UCS4>(c)); }

struct Sentences {
  py::tuple items;
  std::vector<SeqRef> refs;
  int64_t units = 0;
};

void sentences(const py::handle& seq, const char* name, bool words, WordTable& table, std::vector<int64_t>& arena,
               std::vector<int64_t>& offsets, Sentences& out) {
  PyObject* tup = PySequence_Tuple(seq.ptr());
  if (!tup) {
    PyErr_Clear();
    throw_type(std::string(name) + " must be a str or a list of str, got " + Py_TYPE(seq.ptr())->tp_name);
  }
  out.items = py::reinterpret_steal<py::tuple>(tup);
  const int64_t n = PyTuple_GET_SIZE(tup);
  out.refs.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    PyObject* o = PyTuple_GET_ITEM(tup, i);
    if (!PyUnicode_Check(o))
      throw_type(std::string(name) + "[" + std::to_string(i) + "] must be a str, got " + Py_TYPE(o)->tp_name);
    SeqRef s;
    str_view(o, &s);
    int64_t b = 0, e = s.len;
    while (b < e && is_space(code_point(s.data, s.kind, b))) ++b;
    while (e > b && is_space(code_point(s.data, s.kind, e - 1))) --e;
    if (!words) {
      s.data = static_cast<const char*>(s.data) + b * s.kind;
      s.len = e - b;
      out.refs[i] = s;
      out.units += s.len;
      continue;
    }
    const int64_t start = static_cast<int64_t>(arena.size());
    int64_t w0 = b, k = b;
    while (k < e) {
      const uint32_t c = code_point(s.data, s.kind, k);
      if (!is_space(c)) { ++k; continue; }
      int64_t r = k + 1;
      while (r < e && is_space(code_point(s.data, s.kind, r))) ++r;
      if (r - k >= 2 || c == ' ') {
        if (k > w0) arena.push_back(table.id(static_cast<const char*>(s.data) + w0 * s.kind, k - w0, s.kind));
        w0 = r;
      }
      k = r;
    }
    if (e > w0) arena.push_back(table.id(static_cast<const char*>(s.data) + w0 * s.kind, e - w0, s.kind));
    offsets.push_back(start);
    out.refs[i].len = static_cast<int64_t>(arena.size()) - start;
    out.refs[i].kind = 8;
    out.units += out.refs[i].len;
  }
}

// Both sides of a call, with one token dictionary so equal tokens get equal ids in a and b.
void convert_pair(const py::handle& a, const py::handle& b, SeqBatch& sa, SeqBatch& sb) {
  TokenIds dict;
  convert(a, "a", sa, dict);
  convert(b, "b", sb, dict);
}

// A flat sequence of integer tokens (one sequence, not a batch): a non-empty list or tuple
// whose first element is an int. 0: no, 1: yes, -1: undecided here (a NumPy integer first:
// the Python fallback decides).
int token_sequence(PyObject* x) {
  if (!PyList_Check(x) && !PyTuple_Check(x)) return 0;
  if (PySequence_Fast_GET_SIZE(x) == 0) return 0;
  PyObject* f = PySequence_Fast_ITEMS(x)[0];
  if (PyLong_Check(f)) return PyBool_Check(f) ? 0 : 1;
  if (PyUnicode_Check(f) || PySequence_Check(f) || !PyIndex_Check(f)) return 0;
  return -1;
}

inline bool empty_seq(PyObject* x) {
  return (PyList_Check(x) || PyTuple_Check(x)) && PySequence_Fast_GET_SIZE(x) == 0;
}

// A Python scalar result of one pair.
py::object pair_result(const SeqRef& x, const SeqRef& y, const EditWeights& w0, bool normalize, const EditCutoff& cut) {
  const EditWeights w = normalize ? edit_weights_for_normalize(w0) : w0;
  int64_t k = cut.dist;
  if (normalize) {
    const double kb = std::ceil(edit_distance_maximum_f(x.len, y.len, w) * cut.norm);
    k = kb < 9.2e18 ? static_cast<int64_t>(kb) : INT64_MAX;
  }
  int64_t d;
  if (x.len * y.len > 16384) {  // worth releasing the GIL (str data is immutable and referenced)
    py::gil_scoped_release release;
    d = cpu::edit_distance_pair(x, y, w, k);
  } else {
    d = cpu::edit_distance_pair(x, y, w, k);
  }
  if (d == -2) weights_overflow(w0);
  if (!normalize) return py::int_(d >= 0 ? d : cut.dist + 1);
  if (d < 0) return py::float_(1.0);
  const double mx = edit_distance_maximum_f(x.len, y.len, w);
  const double nd = mx > 0 ? static_cast<double>(d) / mx : 0.0;
  return py::float_(nd <= cut.norm ? nd : 1.0);
}

// Batches of equal length: an int64 (or float64) array of one distance per pair.
py::object batch_result(const py::handle& a, const py::handle& b, const EditWeights& w0, bool normalize,
                        const EditCutoff& cut) {
  BatchLease la(tl_batch(0)), lb(tl_batch(1));
  SeqBatch &sa = *la, &sb = *lb;
  convert_pair(a, b, sa, sb);
  const int64_t n = static_cast<int64_t>(sa.refs.size());
  if (static_cast<int64_t>(sb.refs.size()) != n)
    throw_value("a and b must have the same length (one pair per element), got " + std::to_string(n) + " and " +
                std::to_string(sb.refs.size()));
  EditBatchParams p;
  p.a = sa.refs.data();
  p.b = sb.refs.data();
  p.n = n;
  p.w = normalize ? edit_weights_for_normalize(w0) : w0;
  p.cutoff = cut;
  int overflow = 0;
  p.overflow = &overflow;
  py::object out;
  if (normalize) {
    py::array_t<double> o(n);
    p.out_norm = o.mutable_data();
    out = std::move(o);
  } else {
    py::array_t<int64_t> o(n);
    p.out_int = o.mutable_data();
    out = std::move(o);
  }
  {
    py::gil_scoped_release release;
    cpu::edit_distance_batch(p);
  }
  if (overflow) weights_overflow(w0);
  return out;
}

std::string dtype_str(const py::handle& dt) { return py::str(dt).cast<std::string>(); }

// The NumPy name of the `dtype` argument ("int32"); anything NumPy cannot read as a dtype is a
// TypeError naming the argument.
std::string dtype_name_arg(const py::handle& dtype) {
  try {
    return dtype_str(py::dtype::from_args(py::reinterpret_borrow<py::object>(dtype)));
  } catch (py::error_already_set&) {
    throw_type("dtype must be int32, int64 or float64 (or None), got " + py::repr(dtype).cast<std::string>());
  }
}

// Interned tag names of the alignment lists (kept for the life of the process).
PyObject* tag_name(int32_t tag, bool jiwer) {
  static PyObject* names[5] = {PyUnicode_InternFromString("replace"), PyUnicode_InternFromString("delete"),
                               PyUnicode_InternFromString("insert"), PyUnicode_InternFromString("equal"),
                               PyUnicode_InternFromString("substitute")};
  return names[jiwer && tag == EditOpcode::kReplace ? 4 : tag];
}

// A list of (tag, src, dst) tuples: rapidfuzz's Editops.as_list().
py::list ops_list(const std::vector<EditOp>& ops) {
  py::list out(ops.size());
  for (size_t i = 0; i < ops.size(); ++i) {
    PyObject* t = PyTuple_New(3);
    if (!t) throw py::error_already_set();
    PyObject* tag = tag_name(ops[i].tag, false);
    Py_INCREF(tag);
    PyTuple_SET_ITEM(t, 0, tag);
    PyTuple_SET_ITEM(t, 1, PyLong_FromLongLong(ops[i].src));
    PyTuple_SET_ITEM(t, 2, PyLong_FromLongLong(ops[i].dst));
    PyList_SET_ITEM(out.ptr(), static_cast<py::ssize_t>(i), t);
  }
  return out;
}

// A list of (tag, i1, i2, j1, j2) tuples: rapidfuzz's Opcodes.as_list() (with `jiwer`, the tag
// "replace" is "substitute", as jiwer's AlignmentChunk spells it). `make`: when not None, each
// tuple becomes make(*tuple) through tuple.__new__ (a NamedTuple class).
py::list opcodes_list(const std::vector<EditOp>& ops, int64_t la, int64_t lb, bool jiwer, std::vector<EditOpcode>& tmp,
                      PyTypeObject* make = nullptr) {
  edit_opcodes(ops, la, lb, tmp);
  py::list out(tmp.size());
  for (size_t i = 0; i < tmp.size(); ++i) {
    PyObject* t = PyTuple_New(5);
    if (!t) throw py::error_already_set();
    PyObject* tag = tag_name(tmp[i].tag, jiwer);
    Py_INCREF(tag);
    PyTuple_SET_ITEM(t, 0, tag);
    PyTuple_SET_ITEM(t, 1, PyLong_FromLongLong(tmp[i].src_begin));
    PyTuple_SET_ITEM(t, 2, PyLong_FromLongLong(tmp[i].src_end));
    PyTuple_SET_ITEM(t, 3, PyLong_FromLongLong(tmp[i].dst_begin));
    PyTuple_SET_ITEM(t, 4, PyLong_FromLongLong(tmp[i].dst_end));
    if (make) {  // a tuple subclass of 5 fields: its C-level tuple constructor, no Python code
      PyObject* args = PyTuple_Pack(1, t);
      Py_DECREF(t);
      if (!args) throw py::error_already_set();
      t = PyTuple_Type.tp_new(make, args, nullptr);
      Py_DECREF(args);
      if (!t) throw py::error_already_set();
    }
    PyList_SET_ITEM(out.ptr(), static_cast<py::ssize_t>(i), t);
  }
  return out;
}

py::object ops_result(const std::vector<EditOp>& ops, int64_t la, int64_t lb, bool opcodes) {
  if (!opcodes) return ops_list(ops);
  std::vector<EditOpcode> tmp;
  return opcodes_list(ops, la, lb, false, tmp);
}

}  // namespace

void register_edit_distance(py::module_& m) {
  // The whole non-padded edit_distance: NotImplemented for arguments it leaves to the Python
  // fallback (NumPy arrays and other iterables, padded arrays).
  m.def("edit_distance",
        [](py::handle a, py::handle b, py::handle weights, py::handle normalize, py::handle score_cutoff) -> py::object {
          PyObject *x = a.ptr(), *y = b.ptr();
          const bool sx = PyUnicode_Check(x), sy = PyUnicode_Check(y);
          if (!(sx && sy) && !((sx || PyList_Check(x) || PyTuple_Check(x)) && (sy || PyList_Check(y) || PyTuple_Check(y))))
            return py::reinterpret_borrow<py::object>(Py_NotImplemented);
          const EditWeights w = to_weights(weights);
          const bool norm = normalize_arg(normalize);
          const EditCutoff cut = cutoff_arg(score_cutoff, norm);
          if (sx && sy) {
            SeqRef r1, r2;
            str_view(x, &r1);
            str_view(y, &r2);
            return pair_result(r1, r2, w, norm, cut);
          }
          if (sx || sy)
            throw_type(std::string(sx ? "a" : "b") +
                       " is a str but the other argument is not: pass two strings, or two sequences");
          const int ta = token_sequence(x), tb = token_sequence(y);
          if (ta < 0 || tb < 0) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
          if ((ta || tb) && (ta || empty_seq(x)) && (tb || empty_seq(y))) {  // one pair of token sequences
            BatchLease la(tl_batch(0)), lb(tl_batch(1));
            SeqBatch &sa = *la, &sb = *lb;
            const py::tuple one_a = py::make_tuple(a), one_b = py::make_tuple(b);
            convert_pair(one_a, one_b, sa, sb);
            return pair_result(sa.refs[0], sb.refs[0], w, norm, cut);
          }
          return batch_result(a, b, w, norm, cut);
        },
        py::arg("a"), py::arg("b"), py::arg("weights"), py::arg("normalize"), py::arg("score_cutoff"));

  // The checked (weights, normalize) of a call the Python fallback handles (padded arrays,
  // NumPy 1-D arrays, other iterables): the same rules as the paths above.
  m.def(
      "edit_args", [](py::handle weights, py::handle normalize) {
        const EditWeights w = to_weights(weights);
        return py::make_tuple(py::make_tuple(w.ins, w.del, w.sub), normalize_arg(normalize));
      },
      py::arg("weights"), py::arg("normalize"));

  m.def(
      "pairwise_edit_distance",
      [](py::handle a, py::handle b, py::handle weights, py::handle normalize, py::handle score_cutoff,
         py::handle dtype) -> py::object {
        const EditWeights w0 = to_weights(weights);
        const bool norm = normalize_arg(normalize);
        const EditCutoff cut = cutoff_arg(score_cutoff, norm);
        BatchLease la(tl_batch(0)), lb(tl_batch(1));
        SeqBatch &sa = *la, &sb = *lb;
        convert_pair(a, b, sa, sb);
        EditPairwiseParams p;
        p.a = sa.refs.data();
        p.na = static_cast<int64_t>(sa.refs.size());
        p.b = sb.refs.data();
        p.nb = static_cast<int64_t>(sb.refs.size());
        p.w = norm ? edit_weights_for_normalize(w0) : w0;
        p.normalize = norm;
        p.cutoff = cut;
        int overflow = 0;
        p.overflow = &overflow;
        DType dt;
        if (norm) {
          if (!dtype.is_none() && dtype_name_arg(dtype) != "float64")
            throw_type("dtype must be float64 (or None) with normalize=True, got " + dtype_name_arg(dtype));
          dt = DType::f64;
        } else {
          int64_t longest = 0;
          for (const auto* v : {&sa.refs, &sb.refs})
            for (const SeqRef& r : *v) longest = r.len > longest ? r.len : longest;
          const int64_t wmax = std::max(w0.ins, std::max(w0.del, w0.sub));
          const __int128 bound = __int128(2) * longest * wmax;  // no distance exceeds this
          const bool fits32 = bound < 2147483647;
          if (dtype.is_none()) {
            dt = fits32 ? DType::i32 : DType::i64;
          } else {
            const std::string name = dtype_name_arg(dtype);
            if (name != "int32" && name != "int64") throw_type("dtype must be int32 or int64, got " + name);
            dt = name == "int32" ? DType::i32 : DType::i64;
            if (dt == DType::i32 && !fits32)
              throw_value("dtype int32 cannot hold distances up to " +
                          py::str(py::int_(2) * py::int_(longest) * py::int_(wmax)).cast<std::string>() +
                          " (sequences of length " + std::to_string(longest) + ", weights (" + std::to_string(w0.ins) +
                          ", " + std::to_string(w0.del) + ", " + std::to_string(w0.sub) + ")); use int64");
          }
        }
        py::array out(dt == DType::f64 ? py::dtype("float64") : (dt == DType::i32 ? py::dtype("int32") : py::dtype("int64")),
                      std::vector<py::ssize_t>{p.na, p.nb});
        p.out.data = out.mutable_data();
        p.out.dtype = dt;
        p.out.ndim = 2;
        p.out.shape[0] = p.na;
        p.out.shape[1] = p.nb;
        p.out.strides[0] = p.nb;
        p.out.strides[1] = 1;
        {
          py::gil_scoped_release release;
          cpu::edit_distance_pairwise(p);
        }
        if (overflow) weights_overflow(w0);
        return std::move(out);
      },
      py::arg("a"), py::arg("b"), py::arg("weights"), py::arg("normalize"), py::arg("score_cutoff"),
      py::arg("dtype"));

  // Padded 2-D integer arrays (NumPy or CuPy) with optional per-row lengths, read through the
  // array layer.
  m.def("edit_distance_padded", [](py::handle a, py::handle b, py::handle a_lengths, py::handle b_lengths,
                                   py::handle weights, py::handle normalize_obj, py::handle score_cutoff) {
    Call call({{"a", a}, {"b", b}, {"a_lengths", a_lengths}, {"b_lengths", b_lengths}});
    const EditWeights w0 = to_weights(weights);
    const bool normalize = normalize_arg(normalize_obj);
    EditPaddedParams p;
    p.a = call.indices(a, "a");
    p.b = call.indices(b, "b");
    for (const auto& [name, v] : {std::pair<const char*, const TensorView&>{"a", p.a}, {"b", p.b}})
      if (v.ndim != 2)
        throw_value(std::string(name) + " must be a 2-D padded integer array (batch, length) when lengths are "
                    "given, got shape " + shape_string(v));
    if (p.a.shape[0] != p.b.shape[0])
      throw_value("a and b must have the same batch size, got " + std::to_string(p.a.shape[0]) + " and " +
                  std::to_string(p.b.shape[0]));
    // One token type for both sides (int64 when they differ, and on CUDA for other widths), rows
    // of unit stride: what the kernels read.
    DType common = p.a.dtype == p.b.dtype ? p.a.dtype : DType::i64;
    if (call.cuda() && common != DType::i32 && common != DType::i64) common = DType::i64;
    p.a = call.c_ordered(call.converted(p.a, common));
    p.b = call.c_ordered(call.converted(p.b, common));
    p.a_lengths = call.indices_or_none(a_lengths, "a_lengths");
    p.b_lengths = call.indices_or_none(b_lengths, "b_lengths");
    for (auto [name, l] : {std::pair<const char*, TensorView*>{"a_lengths", &p.a_lengths}, {"b_lengths", &p.b_lengths}}) {
      if (is_none(*l)) continue;
      if (l->ndim != 1 || l->shape[0] != p.a.shape[0])
        throw_value(std::string(name) + " must have shape (" + std::to_string(p.a.shape[0]) +
                    ",) (one length per row), got " + shape_string(*l));
      if (call.cuda() && l->dtype != DType::i64) *l = call.converted(*l, DType::i64);
    }
    p.w = normalize ? edit_weights_for_normalize(w0) : w0;
    p.normalize = normalize;
    p.cutoff = cutoff_arg(score_cutoff, normalize);
    py::object out = call.empty({p.a.shape[0]}, normalize ? DType::f64 : DType::i64, &p.out);
    p.stream = call.stream();
    p.workspace = call.workspace(8);
    int overflow = 0;
    p.overflow = &overflow;
    check_edit_padded_params(p);
    {
      py::gil_scoped_release release;
      if (call.cuda()) {
#ifdef FASTLOSS_WITH_CUDA
        cuda::edit_distance_padded(p);
#endif
      } else {
        cpu::edit_distance_padded(p);
      }
    }
    if (overflow) weights_overflow(w0);
    return out;
  });

  // Sentences of both sides under jiwer's transforms, then `f(refs, hyps)` without the GIL.
  auto with_sentences = [](py::handle refs, py::handle hyps, bool words, auto&& f) {
    WordTable table;
    std::vector<int64_t> arena, offsets;
    Sentences r, h;
    sentences(refs, "references", words, table, arena, offsets, r);
    sentences(hyps, "hypotheses", words, table, arena, offsets, h);
    if (r.refs.size() != h.refs.size())
      throw_value("references and hypotheses must have the same number of sentences, got " +
                  std::to_string(r.refs.size()) + " and " + std::to_string(h.refs.size()));
    if (words) {  // token buffers are final now: point into the arena
      size_t k = 0;
      for (auto* s : {&r, &h})
        for (auto& ref : s->refs) ref.data = arena.data() + offsets[k++];
    }
    py::gil_scoped_release release;
    f(r, h);
  };

  // (total edits, total reference units, total hypothesis units) under jiwer's transforms.
  m.def(
      "error_rate_counts",
      [with_sentences](py::handle refs, py::handle hyps, bool words) {
        int64_t total = 0, ru = 0, hu = 0;
        with_sentences(refs, hyps, words, [&](Sentences& r, Sentences& h) {
          std::vector<int64_t> d(r.refs.size());
          EditBatchParams p;
          p.a = r.refs.data();
          p.b = h.refs.data();
          p.n = static_cast<int64_t>(d.size());
          p.out_int = d.data();
          cpu::edit_distance_batch(p);
          for (int64_t v : d) total += v;
          ru = r.units;
          hu = h.units;
        });
        return py::make_tuple(total, ru, hu);
      },
      py::arg("references"), py::arg("hypotheses"), py::arg("words"));

  // (hits, substitutions, deletions, insertions) as jiwer 4's process_words/process_characters.
  m.def(
      "error_counts",
      [with_sentences](py::handle refs, py::handle hyps, bool words) {
        EditCountsParams p;
        with_sentences(refs, hyps, words, [&](Sentences& r, Sentences& h) {
          p.ref = r.refs.data();
          p.hyp = h.refs.data();
          p.n = static_cast<int64_t>(r.refs.size());
          cpu::edit_counts(p);
        });
        return py::make_tuple(p.total.hits, p.total.substitutions, p.total.deletions, p.total.insertions);
      },
      py::arg("references"), py::arg("hypotheses"), py::arg("words"));
  // rapidfuzz's Levenshtein.editops (opcodes with `opcodes`) of one pair (two str, two flat
  // integer sequences: a list) or of each pair of two equal-length batches (a list of lists);
  // NotImplemented for arguments the Python fallback converts (NumPy arrays, iterables).
  m.def(
      "edit_ops",
      [](py::handle a, py::handle b, bool opcodes) -> py::object {
        PyObject *x = a.ptr(), *y = b.ptr();
        const bool sx = PyUnicode_Check(x), sy = PyUnicode_Check(y);
        if (!(sx && sy) && !((sx || PyList_Check(x) || PyTuple_Check(x)) && (sy || PyList_Check(y) || PyTuple_Check(y))))
          return py::reinterpret_borrow<py::object>(Py_NotImplemented);
        std::vector<EditOp> ops;
        if (sx && sy) {
          SeqRef r1, r2;
          str_view(x, &r1);
          str_view(y, &r2);
          if (r1.len * r2.len > 16384) {  // str data is immutable and referenced by the call
            py::gil_scoped_release release;
            cpu::edit_ops(r1, r2, ops);
          } else {
            cpu::edit_ops(r1, r2, ops);
          }
          return ops_result(ops, r1.len, r2.len, opcodes);
        }
        if (sx || sy)
          throw_type(std::string(sx ? "a" : "b") +
                     " is a str but the other argument is not: pass two strings, or two sequences");
        const int ta = token_sequence(x), tb = token_sequence(y);
        if (ta < 0 || tb < 0) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
        BatchLease la(tl_batch(0)), lb(tl_batch(1));
        SeqBatch &sa = *la, &sb = *lb;
        if ((ta || tb) && (ta || empty_seq(x)) && (tb || empty_seq(y))) {  // one pair of token sequences
          const py::tuple one_a = py::make_tuple(a), one_b = py::make_tuple(b);
          convert_pair(one_a, one_b, sa, sb);
          {
            py::gil_scoped_release release;
            cpu::edit_ops(sa.refs[0], sb.refs[0], ops);
          }
          return ops_result(ops, sa.refs[0].len, sb.refs[0].len, opcodes);
        }
        convert_pair(a, b, sa, sb);
        const int64_t n = static_cast<int64_t>(sa.refs.size());
        if (static_cast<int64_t>(sb.refs.size()) != n)
          throw_value("a and b must have the same length (one pair per element), got " + std::to_string(n) + " and " +
                      std::to_string(sb.refs.size()));
        std::vector<std::vector<EditOp>> all(static_cast<size_t>(n));
        {
          py::gil_scoped_release release;
          cpu::edit_ops_batch(sa.refs.data(), sb.refs.data(), n, all.data());
        }
        py::list out(n);
        for (int64_t i = 0; i < n; ++i) {
          py::object r = ops_result(all[i], sa.refs[i].len, sb.refs[i].len, opcodes);
          PyList_SET_ITEM(out.ptr(), static_cast<py::ssize_t>(i), r.release().ptr());
        }
        return std::move(out);
      },
      py::arg("a"), py::arg("b"), py::arg("opcodes"));

  // Per-sentence results of error_counts: ((hits, subs, dels, ins) totals, an (n, 4) int64
  // array of each sentence's counts, and with `alignment` each sentence's jiwer alignment
  // chunks, made by `chunk` (a 5-field tuple subclass) or None).
  m.def(
      "error_counts_detail",
      [with_sentences](py::handle refs, py::handle hyps, bool words, bool alignment, py::handle chunk) {
        std::vector<std::vector<EditOp>> all;
        std::vector<int64_t> ref_len, hyp_len;
        EditCountsParams p;
        std::vector<EditCounts> per;
        with_sentences(refs, hyps, words, [&](Sentences& r, Sentences& h) {
          const int64_t n = static_cast<int64_t>(r.refs.size());
          per.resize(static_cast<size_t>(n));
          ref_len.resize(n);
          hyp_len.resize(n);
          for (int64_t i = 0; i < n; ++i) ref_len[i] = r.refs[i].len, hyp_len[i] = h.refs[i].len;
          if (alignment) {  // counts from the ops: the same alignment
            all.resize(static_cast<size_t>(n));
            cpu::edit_ops_batch(r.refs.data(), h.refs.data(), n, all.data());
            for (int64_t i = 0; i < n; ++i) {
              EditCounts c;
              for (const EditOp& o : all[i])
                (o.tag == EditOp::kReplace ? c.substitutions : o.tag == EditOp::kDelete ? c.deletions : c.insertions)++;
              c.hits = ref_len[i] - c.substitutions - c.deletions;
              per[i] = c;
              p.total.hits += c.hits, p.total.substitutions += c.substitutions;
              p.total.deletions += c.deletions, p.total.insertions += c.insertions;
            }
          } else {
            p.ref = r.refs.data();
            p.hyp = h.refs.data();
            p.n = n;
            p.out = per.data();
            cpu::edit_counts(p);
          }
        });
        const int64_t n = static_cast<int64_t>(per.size());
        py::array_t<int64_t> arr(std::vector<py::ssize_t>{n, 4});
        int64_t* q = arr.mutable_data();
        for (int64_t i = 0; i < n; ++i) {
          q[4 * i] = per[i].hits, q[4 * i + 1] = per[i].substitutions;
          q[4 * i + 2] = per[i].deletions, q[4 * i + 3] = per[i].insertions;
        }
        py::object chunks = py::none();
        if (alignment) {
          PyTypeObject* make = chunk.is_none() ? nullptr : reinterpret_cast<PyTypeObject*>(chunk.ptr());
          if (make && !(PyType_Check(chunk.ptr()) && PyType_IsSubtype(make, &PyTuple_Type)))
            throw_type("chunk must be a tuple subclass");
          std::vector<EditOpcode> tmp;
          py::list l(n);
          for (int64_t i = 0; i < n; ++i) {
            py::list c = opcodes_list(all[i], ref_len[i], hyp_len[i], true, tmp, make);
            PyList_SET_ITEM(l.ptr(), static_cast<py::ssize_t>(i), c.release().ptr());
          }
          chunks = std::move(l);
        }
        return py::make_tuple(py::make_tuple(p.total.hits, p.total.substitutions, p.total.deletions, p.total.insertions),
                              std::move(arr), chunks);
      },
      py::arg("references"), py::arg("hypotheses"), py::arg("words"), py::arg("alignment"), py::arg("chunk"));
}

}  // namespace fastloss
