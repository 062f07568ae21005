// Errors that cross into Python with a type: the binding maps each kind to
// ValueError / TypeError / IndexError, keeping the message (which names the argument).
#pragma once
#include <stdexcept>
#include <string>

namespace fastloss {

enum class ErrorKind { value, type, index, runtime };

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& msg) : std::runtime_error(msg), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

// Defined once in runtime.cpp (baseline flags), not inline: an inline copy compiled in a
// per-ISA kernel source could be the one the linker keeps, and carry AVX instructions into
// code that runs on CPUs without them.
[[noreturn]] void throw_value(const std::string& m);
[[noreturn]] void throw_type(const std::string& m);
[[noreturn]] void throw_index(const std::string& m);

}  // namespace fastloss
