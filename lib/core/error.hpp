// One exception type for the whole library. It carries the file it is about and
// gains context as it travels up ("tensor 'w': shape: ..."), like ONNX's checker.
// The CLI catches it once and maps its kind to an exit code.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace slmopt {

enum class ErrorKind {
  BadInput,  // a file or value supplied by the user is invalid -> exit 2
  Usage,     // the command line is invalid -> exit 2
  Internal,  // a bug or an environment failure -> exit 3
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string message, std::string file = {});

  ErrorKind kind() const { return kind_; }
  const std::string& file() const { return file_; }
  const std::string& message() const { return message_; }

  // Prepends "context: " to the message; keeps the innermost file unless none was set.
  Error& add_context(const std::string& context);
  Error& set_file_if_empty(const std::string& file);

  // "<file>: <context>: <message>" (file omitted when unknown).
  const char* what() const noexcept override { return full_.c_str(); }

 private:
  void rebuild();
  ErrorKind kind_;
  std::string message_;
  std::string file_;
  std::string full_;
};

[[noreturn]] void throw_bad_input(const std::string& message, const std::string& file = {});
[[noreturn]] void throw_internal(const std::string& message);
[[noreturn]] void throw_usage(const std::string& message);

// Runs fn; an Error escaping it gains `context`. Keeps call sites flat.
template <class Fn>
auto with_context(const std::string& context, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (Error& e) {
    e.add_context(context);
    throw;
  }
}

}  // namespace slmopt
