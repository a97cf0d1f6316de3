// Status and Expected<T>: how every library layer reports failure.
//
// Libraries never print or exit; they return a Status that says what failed,
// which field and value, and which rule. tools/ maps the code to an exit code:
// kInvalidInput and kUnsupported -> 2 (bad input or usage), kInternal -> 3.
#pragma once

#include <cassert>
#include <sstream>
#include <string>
#include <utility>
#include <variant>

namespace slim {

enum class StatusCode {
  kOk = 0,
  kInvalidInput,  // the input (file, option, data) is malformed or inconsistent
  kUnsupported,   // well-formed input that slimpack does not handle (op, dtype)
  kInternal,      // a bug or an environment failure (I/O error, out of memory)
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message)
      : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Prefixes context ("file.onnx: ") so errors read outermost-first.
  Status WithContext(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Builds a message from stream-able parts: Invalid("tensor ", name, " has ", n).
template <typename... Args>
std::string StrCat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
// v with `digits` digits after the point ("0.640"), for messages and tables.
inline std::string FormatFixed(double v, int digits) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(digits);
  os << v;
  return os.str();
}
template <typename... Args>
Status InvalidInput(const Args&... args) {
  return Status(StatusCode::kInvalidInput, StrCat(args...));
}
template <typename... Args>
Status Unsupported(const Args&... args) {
  return Status(StatusCode::kUnsupported, StrCat(args...));
}
template <typename... Args>
Status Internal(const Args&... args) {
  return Status(StatusCode::kInternal, StrCat(args...));
}

// A value or the Status explaining why there is none.
template <typename T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Expected(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).ok() && "Expected built from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace slim

// Early-return helpers. SLIM_ASSIGN_OR_RETURN(auto x, Foo()) declares x.
#define SLIM_RETURN_IF_ERROR(expr)            \
  do {                                        \
    ::slim::Status slim_status_ = (expr);     \
    if (!slim_status_.ok()) return slim_status_; \
  } while (0)

#define SLIM_CONCAT_INNER_(a, b) a##b
#define SLIM_CONCAT_(a, b) SLIM_CONCAT_INNER_(a, b)
#define SLIM_ASSIGN_OR_RETURN(lhs, expr) \
  SLIM_ASSIGN_OR_RETURN_IMPL_(SLIM_CONCAT_(slim_expected_, __LINE__), lhs, expr)
#define SLIM_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()

// Returns InvalidInput built from the remaining arguments when cond is false.
#define SLIM_CHECK_INPUT(cond, ...) \
  do {                              \
    if (!(cond)) return ::slim::InvalidInput(__VA_ARGS__); \
  } while (0)
