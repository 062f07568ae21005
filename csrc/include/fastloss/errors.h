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

[[noreturn]] inline void throw_value(const std::string& m) { throw Error(ErrorKind::value, m); }
[[noreturn]] inline void throw_type(const std::string& m) { throw Error(ErrorKind::type, m); }
[[noreturn]] inline void throw_index(const std::string& m) { throw Error(ErrorKind::index, m); }

}  // namespace fastloss
