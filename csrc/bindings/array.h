// The array layer: the one place that turns a public call's Python arguments into kernel
// arguments. A public Python function passes the user's objects straight here; a binding
// builds a Call from its array arguments, reads each one as a TensorView, allocates its
// outputs through the Call, validates with the loss's C++ check, and runs the kernel with
// the GIL released.
//
//   NumPy arrays are read in place (any strides, no copy); only what a kernel cannot read is
//   converted: big-endian or misaligned data (copied once, native and aligned), Python lists
//   and scalars (np.asarray). CuPy arrays are read through their attributes and outputs are
//   made with cupy.empty on the arrays' device; the Call enters that device for its lifetime.
//   Every temporary stays alive until the Call is destroyed, after the kernel returns.
//   Other libraries' arrays (PyTorch tensors, JAX arrays: anything with __dlpack__) are read
//   through DLPack without a copy: on the CPU as NumPy views (np.from_dlpack), on CUDA as CuPy
//   views (cupy.from_dlpack); the results go back to the caller's library with its from_dlpack
//   (caller_result). bfloat16, which NumPy cannot view, is converted to float32 by its library
//   (one copy) and the float results are cast back to bfloat16.
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <utility>
#include <vector>

#include "fastloss/runtime.h"
#include "fastloss/tensor.h"

namespace fastloss {
namespace py = pybind11;

// Hidden like the pybind11 types it holds (the module exports only its init function).
class __attribute__((visibility("hidden"))) Call {
 public:
  // Every array argument of the call by name (None entries ignored): picks NumPy or CuPy.
  // Mixing them is a TypeError naming both sides; an object that is neither an array nor
  // something np.asarray reads (a GPU array of another library) is a TypeError naming it.
  Call(std::initializer_list<std::pair<const char*, py::handle>> arrays);
  ~Call();
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  bool cuda() const { return cuda_; }
  // A result (an array made by empty/grad_out, or a tuple of them) in the caller's library:
  // itself for NumPy and CuPy callers, a torch tensor for torch inputs, and so on.
  py::object to_caller(py::object result) const;
  void* stream() const { return stream_; }

  // A float16/32/64 array. Python numbers and lists of ints become float64; an integer,
  // bool or other array is a TypeError naming `name`.
  TensorView floats(py::handle x, const char* name);
  TensorView floats_or_none(py::handle x, const char* name);
  // A float weight or target: as floats(), but integer and bool arrays are converted to
  // float64 (as lists of them are) instead of refused.
  TensorView values(py::handle x, const char* name);
  TensorView values_or_none(py::handle x, const char* name);
  // An integer array of any width and sign (bool, float: TypeError naming `name`).
  TensorView indices(py::handle x, const char* name);
  TensorView indices_or_none(py::handle x, const char* name);
  // Either kind: the dtype tells the caller which it got (bool arrays become float64 masks;
  // other dtypes: TypeError).
  TensorView numbers(py::handle x, const char* name);

  // The same array converted to `dtype` (a copy kept alive by the Call); the view itself when
  // it already has it. For kernels that read only some dtypes (the CUDA label readers).
  TensorView converted(const TensorView& v, DType dtype);
  // The same array as a C-ordered copy (kept alive by the Call), or the view itself when it
  // is already; for kernels that need unit-stride rows.
  TensorView c_ordered(const TensorView& v);

  // A new uninitialised array of the call's library, returned to the user.
  py::object empty(const std::vector<int64_t>& shape, DType dtype, TensorView* view);
  // The gradient array: None gives a new array shaped like `like`; a user array must be of
  // the call's library with that shape and dtype, writable, free of zero strides, and either
  // `like` itself (an in-place gradient) or overlapping none of the inputs read so far (so
  // read every input first). A misaligned grad_out, or an in-place one that another input
  // shares memory with (a target that is a view of the input), is computed into a temporary
  // and copied into it when the call succeeds; so is an in-place one (`user` is `like`) when the
  // kernel cannot write its gradient over the input it reads (kernel_in_place false).
  py::object grad_out(py::handle user, const TensorView& like, const char* like_name, TensorView* view,
                      bool kernel_in_place = true);
  // The same checks without a view (nothing for None): for gradients computed elsewhere and
  // copied into `user` by the caller after every check.
  void check_grad_out(py::handle user, const TensorView& like, const char* like_name);
  // A DLPack input (torch, JAX) as the NumPy (CPU) or CuPy (CUDA) view the kernels read,
  // kept alive by the Call; bfloat16 becomes a float32 copy. Other objects: x itself.
  py::object native(py::handle x, const char* name);
  // Device scratch of `bytes` bytes on CUDA (kept alive by the Call); nullptr on the CPU.
  void* workspace(size_t bytes);

 private:
  TensorView validate_grad_out(py::handle user, const TensorView& like, const char* like_name, bool* via_temp);
  TensorView read(py::handle x, const char* name, int want);  // want: 0 float, 1 index, 2 either, 3 value
  void init(std::initializer_list<std::pair<const char*, py::handle>> arrays);
  void init_dlpack(std::initializer_list<std::pair<const char*, py::handle>> arrays, const std::string& lib,
                   int device_type, int64_t device_id);
  py::object lib_;                    // the caller's library (torch, jax.numpy) for DLPack inputs; else null
  bool bf16_ = false;                 // a bfloat16 input was read as float32: float results go back as bfloat16
  py::object bf16_dtype_;             // NumPy (ml_dtypes) bfloat16 input read as float32: its dtype, for the results
  Call* prev_ = nullptr;              // the enclosing Call on this thread (caller_result uses the innermost)
  bool cuda_ = false;
  void* stream_ = nullptr;
  py::object device_;                 // CuPy Device entered by the Call (CUDA only)
  std::vector<py::object> keep_;      // converted inputs and scratch, alive until the call returns
  // `object` is what the kernel reads; `original` the caller's NumPy array when the layer read
  // a copy of it instead (big-endian, misaligned), for grad_out's overlap check.
  struct Input { const char* name; TensorView view; py::object object; py::object original; };
  std::vector<Input> inputs_;         // every array read, for grad_out's overlap check
  std::vector<std::pair<py::object, py::object>> copy_back_;  // (user grad_out, aligned temp)
};

// reduction="mean" | "sum" | "none" ("batchmean" where allowed): ValueError naming it.
Reduction reduction_arg(py::handle r, bool allow_batchmean = false, bool* batchmean = nullptr);
// A Python int (or NumPy integer): TypeError otherwise (bool included); ValueError outside int64.
int64_t int_arg(py::handle x, const char* name);
// A real number (int, float or NumPy scalar): TypeError otherwise.
double float_arg(py::handle x, const char* name);
// A bool (or NumPy bool): TypeError otherwise.
bool bool_arg(py::handle x, const char* name);
// A str: TypeError otherwise.
std::string str_arg(py::handle x, const char* name);
// `result` in the library of the innermost Call alive on this thread (Call::to_caller); the
// object itself when there is none. Every binding's return value goes through it.
py::object caller_result(py::object result);
// `loss`, or `(loss, grad)` when grad is not None, in the caller's library: what every loss returns.
py::object loss_and_grad(py::object loss, py::object grad);
// True for a CuPy array (checked without importing CuPy).
bool is_cupy_array(py::handle x);
// The numpy module (imported once).
py::module_& numpy_module();
// The shape of a view as a vector (for outputs shaped like an input or its rows).
std::vector<int64_t> shape_of(const TensorView& v, int skip_axis = -1);

}  // namespace fastloss
