// Array views shared by every kernel: a pointer, a dtype, a shape and element strides.
// Kernels know nothing of Python; the binding layer builds these from NumPy/CuPy arrays.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

#include "fastloss/errors.h"

namespace fastloss {

constexpr int kMaxDims = 16;

enum class DType : int8_t { f16, f32, f64, i8, i16, i32, i64, u8, u16, u32, u64, b1 };

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::f16: return "float16";
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::i8: return "int8";
    case DType::i16: return "int16";
    case DType::i32: return "int32";
    case DType::i64: return "int64";
    case DType::u8: return "uint8";
    case DType::u16: return "uint16";
    case DType::u32: return "uint32";
    case DType::u64: return "uint64";
    case DType::b1: return "bool";
  }
  return "?";
}

inline int dtype_size(DType d) {
  switch (d) {
    case DType::f16: case DType::i16: case DType::u16: return 2;
    case DType::f32: case DType::i32: case DType::u32: return 4;
    case DType::f64: case DType::i64: case DType::u64: return 8;
    default: return 1;
  }
}

inline bool is_float(DType d) { return d == DType::f16 || d == DType::f32 || d == DType::f64; }

// A strided view; strides are in elements (may be negative or zero), offsets are 64-bit.
struct TensorView {
  void* data = nullptr;
  DType dtype = DType::f32;
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};

  bool defined() const { return data != nullptr || numel() == 0; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[i];
    return n;
  }
  template <class T> T* ptr() const { return static_cast<T*>(data); }

  // The view with dimension `axis` moved to the end (a permutation: no data moves).
  TensorView axis_moved_last(int axis) const {
    TensorView v = *this;
    int k = 0;
    for (int i = 0; i < ndim; ++i)
      if (i != axis) { v.shape[k] = shape[i]; v.strides[k] = strides[i]; ++k; }
    v.shape[ndim - 1] = shape[axis];
    v.strides[ndim - 1] = strides[axis];
    return v;
  }
  // The view without its last dimension (the "rows" of a row-wise loss), at index 0 of it.
  TensorView drop_last() const {
    TensorView v = *this;
    v.ndim = ndim - 1;
    return v;
  }
};

// Optional arguments travel as views with data == nullptr and ndim == -1.
inline TensorView none_view() { TensorView v; v.ndim = -1; return v; }
inline bool is_none(const TensorView& v) { return v.ndim < 0; }

// "(2, 3)" for error messages.
std::string shape_string(const TensorView& t);
// A number for a message, as Python would show most values (printf "%g").
std::string number_string(double v);

// Element `offset` of an integer view (labels, lengths) as int64, for the kernels and the
// argument checks alike; a uint64 above INT64_MAX reads as negative, i.e. out of range.
// Always inlined: called once per row in hot loops, where a call per label cost a few percent.
inline __attribute__((always_inline)) int64_t load_index(const TensorView& t, int64_t offset) {
  switch (t.dtype) {
    case DType::i64: return t.ptr<const int64_t>()[offset];
    case DType::i32: return t.ptr<const int32_t>()[offset];
    case DType::i16: return t.ptr<const int16_t>()[offset];
    case DType::i8: return t.ptr<const int8_t>()[offset];
    case DType::u8: return t.ptr<const uint8_t>()[offset];
    case DType::u16: return t.ptr<const uint16_t>()[offset];
    case DType::u32: return t.ptr<const uint32_t>()[offset];
    case DType::u64: return static_cast<int64_t>(t.ptr<const uint64_t>()[offset]);
    default: return -1;
  }
}

// "[i, j, k]" for flat index `flat` of a C-ordered shape (for error messages).
std::string index_string(const int64_t* shape, int ndim, int64_t flat);

}  // namespace fastloss
