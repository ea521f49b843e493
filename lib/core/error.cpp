#include "core/error.hpp"

namespace slmopt {

Error::Error(ErrorKind kind, std::string message, std::string file)
    : std::runtime_error(message), kind_(kind), message_(std::move(message)), file_(std::move(file)) {
  rebuild();
}

Error& Error::add_context(const std::string& context) {
  message_ = context + ": " + message_;
  rebuild();
  return *this;
}

Error& Error::set_file_if_empty(const std::string& file) {
  if (file_.empty()) {
    file_ = file;
    rebuild();
  }
  return *this;
}

void Error::rebuild() { full_ = file_.empty() ? message_ : file_ + ": " + message_; }

void throw_bad_input(const std::string& message, const std::string& file) {
  throw Error(ErrorKind::BadInput, message, file);
}
void throw_internal(const std::string& message) { throw Error(ErrorKind::Internal, message); }
void throw_usage(const std::string& message) { throw Error(ErrorKind::Usage, message); }

}  // namespace slmopt
