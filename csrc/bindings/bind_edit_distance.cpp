// Python entry points of the edit-distance family. Python sequences cross into C++ once per
// call: every str is read through PyUnicode_KIND/PyUnicode_DATA (1, 2 or 4 bytes per code
// point, kept at that width: the kernels are templated on it); sequences of tokens become
// int64 buffers (ints by value, str tokens by a per-call dictionary, other hashables by
// hash()), all copied into per-thread blocks that persist between calls and never move (one
// pass, no fix-up of pointers; the list's objects prefetched a few items ahead), so the GIL
// can be released for the kernels without any pointer into a Python object (a concurrent
// mutation of the inputs cannot free memory under the kernel).
#include <pybind11/pybind11.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fastloss/edit_distance.h"
#include "views.h"

namespace fastloss {
namespace {

EditWeights to_weights(const py::handle& w) {
  EditWeights e;
  const py::tuple t = py::reinterpret_borrow<py::tuple>(w);
  e.ins = t[0].cast<int64_t>();
  e.del = t[1].cast<int64_t>();
  e.sub = t[2].cast<int64_t>();
  check_edit_weights(e);
  return e;
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
    PyObject* found = PyDict_GetItemWithError(dict.ids.ptr(), tok);
    if (found) return PyLong_AsLongLong(found);
    if (PyErr_Occurred()) throw py::error_already_set();
    const int64_t id = dict.next++;
    dict.ids[py::handle(tok)] = py::int_(id);
    return id;
  }
  const Py_hash_t h = PyObject_Hash(tok);
  if (h == -1) {
    PyErr_Clear();
    throw_type(std::string(name) + "[" + std::to_string(i) + "][" + std::to_string(k) +
               "] is not hashable (" + Py_TYPE(tok)->tp_name + "); elements must be str or sequences of "
               "integers/hashable tokens");
  }
  return static_cast<int64_t>(h);
}

void convert(const py::handle& seq, const char* name, SeqBatch& out, TokenIds& dict) {
  // A list or tuple is read in place; anything else is first turned into a tuple.
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
  const bool is_list = PyList_Check(src);
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
    if (PyUnicode_Check(o)) {
      str_view(o, &r);
      const size_t nb = static_cast<size_t>(r.len) * r.kind;
      char* dst = out.arena.alloc(nb);
      if (nb) std::memcpy(dst, r.data, nb);
      r.data = dst;
      continue;
    }
    PyObject* fast = PySequence_Fast(o, "");
    if (!fast) {
      PyErr_Clear();
      throw_type(std::string(name) + "[" + std::to_string(i) + "] must be a str or a sequence of integers, got " +
                 Py_TYPE(o)->tp_name);
    }
    const py::object keep = py::reinterpret_steal<py::object>(fast);
    const int64_t len = PySequence_Fast_GET_SIZE(fast);
    PyObject** elems = PySequence_Fast_ITEMS(fast);
    char* dst = out.arena.alloc(static_cast<size_t>(len) * 8);
    for (int64_t k = 0; k < len; ++k) {
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
    h ^= h >> 32;
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

}  // namespace

void register_edit_distance(py::module_& m) {
  m.def(
      "edit_distance_batch",
      [](py::handle a, py::handle b, py::handle weights, py::handle out_int, py::handle out_norm) {
        const EditWeights w = to_weights(weights);
        BatchLease la(tl_batch(0)), lb(tl_batch(1));
        SeqBatch &sa = *la, &sb = *lb;
        convert_pair(a, b, sa, sb);
        if (sa.refs.size() != sb.refs.size())
          throw_value("a and b must have the same length, got " + std::to_string(sa.refs.size()) + " and " +
                      std::to_string(sb.refs.size()));
        EditBatchParams p;
        p.a = sa.refs.data();
        p.b = sb.refs.data();
        p.n = static_cast<int64_t>(sa.refs.size());
        p.w = w;
        const TensorView oi = to_view(out_int, "out"), on = to_view(out_norm, "out");
        p.out_int = is_none(oi) ? nullptr : oi.ptr<int64_t>();
        p.out_norm = is_none(on) ? nullptr : on.ptr<double>();
        if ((!is_none(oi) && oi.numel() != p.n) || (!is_none(on) && on.numel() != p.n))
          throw_value("out must have one element per pair");
        py::gil_scoped_release release;
        cpu::edit_distance_batch(p);
      },
      py::arg("a"), py::arg("b"), py::arg("weights"), py::arg("out_int"), py::arg("out_norm"));

  m.def(
      "edit_distance_pairwise",
      [](py::handle a, py::handle b, py::handle weights, bool normalize, py::handle out) {
        const EditWeights w = to_weights(weights);
        BatchLease la(tl_batch(0)), lb(tl_batch(1));
        SeqBatch &sa = *la, &sb = *lb;
        convert_pair(a, b, sa, sb);
        EditPairwiseParams p;
        p.a = sa.refs.data();
        p.na = static_cast<int64_t>(sa.refs.size());
        p.b = sb.refs.data();
        p.nb = static_cast<int64_t>(sb.refs.size());
        p.w = w;
        p.normalize = normalize;
        p.out = to_view(out, "out");
        if (p.out.ndim != 2 || p.out.shape[0] != p.na || p.out.shape[1] != p.nb)
          throw_value("out must have shape (len(a), len(b)) = (" + std::to_string(p.na) + ", " + std::to_string(p.nb) + ")");
        if (normalize ? p.out.dtype != DType::f64 : (p.out.dtype != DType::i32 && p.out.dtype != DType::i64))
          throw_type(std::string("out must be ") + (normalize ? "float64" : "int32 or int64") + ", got " +
                     dtype_name(p.out.dtype));
        py::gil_scoped_release release;
        cpu::edit_distance_pairwise(p);
      },
      py::arg("a"), py::arg("b"), py::arg("weights"), py::arg("normalize"), py::arg("out"));

  m.def(
      "edit_distance_padded",
      [](py::handle a, py::handle b, py::handle a_lengths, py::handle b_lengths, py::handle weights, bool normalize,
         py::handle out, bool cuda, uintptr_t stream, py::handle workspace) {
        EditPaddedParams p;
        p.a = to_view(a, "a");
        p.b = to_view(b, "b");
        p.a_lengths = to_view(a_lengths, "a_lengths");
        p.b_lengths = to_view(b_lengths, "b_lengths");
        p.w = to_weights(weights);
        p.normalize = normalize;
        p.out = to_view(out, "out");
        p.stream = reinterpret_cast<void*>(stream);
        const TensorView ws = to_view(workspace, "workspace");
        p.workspace = is_none(ws) ? nullptr : ws.data;
        check_edit_padded_params(p);
        py::gil_scoped_release release;
        if (cuda) {
#ifdef FASTLOSS_WITH_CUDA
          cuda::edit_distance_padded(p);
#else
          throw_type("fastloss was built without CUDA; CuPy arrays are not supported by this build");
#endif
        } else {
          cpu::edit_distance_padded(p);
        }
      },
      py::arg("a"), py::arg("b"), py::arg("a_lengths"), py::arg("b_lengths"), py::arg("weights"),
      py::arg("normalize"), py::arg("out"), py::arg("cuda") = false, py::arg("stream") = 0,
      py::arg("workspace") = py::none());

  // (total edits, total reference units, total hypothesis units) under jiwer's transforms.
  m.def(
      "error_rate_counts",
      [](py::handle refs, py::handle hyps, bool words) {
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
        std::vector<int64_t> d(r.refs.size());
        EditBatchParams p;
        p.a = r.refs.data();
        p.b = h.refs.data();
        p.n = static_cast<int64_t>(d.size());
        p.out_int = d.data();
        int64_t total = 0;
        {
          py::gil_scoped_release release;
          cpu::edit_distance_batch(p);
          for (int64_t v : d) total += v;
        }
        return py::make_tuple(total, r.units, h.units);
      },
      py::arg("references"), py::arg("hypotheses"), py::arg("words"));
}

}  // namespace fastloss
