// Status and Result<T>: how library code reports errors a user can act on
// (bad files, flags, requests). Programmer bugs use CHECK (core/check.h).
// Library code never exits and never aborts on input data.
#pragma once

#include <optional>
#include <string>
#include <utility>

#include "core/check.h"

namespace reprise {

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(std::string message) {
    Status s;
    s.ok_ = false;
    s.message_ = std::move(message);
    return s;
  }
  bool ok() const { return ok_; }
  const std::string& message() const { return message_; }
  // Returns a copy whose message is "context: message".
  Status WithContext(const std::string& context) const {
    if (ok_) return *this;
    return Error(context + ": " + message_);
  }

 private:
  bool ok_ = true;
  std::string message_;
};

// printf-style helpers.
std::string StrFormat(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
Status Errorf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT
    CHECK_MSG(!status_.ok(), "Result constructed from an OK status");
  }
  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & {
    CHECK_MSG(ok(), "value() of failed Result: %s", status_.message().c_str());
    return *value_;
  }
  const T& value() const& {
    CHECK_MSG(ok(), "value() of failed Result: %s", status_.message().c_str());
    return *value_;
  }
  T&& value() && {
    CHECK_MSG(ok(), "value() of failed Result: %s", status_.message().c_str());
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::optional<T> value_;
  Status status_;
};

#define REPRISE_CONCAT_INNER(a, b) a##b
#define REPRISE_CONCAT(a, b) REPRISE_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                      \
  do {                                             \
    ::reprise::Status reprise_status_ = (expr);    \
    if (!reprise_status_.ok()) return reprise_status_; \
  } while (0)

#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()

// ASSIGN_OR_RETURN(auto x, MakeX()); or ASSIGN_OR_RETURN(x, MakeX());
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(REPRISE_CONCAT(reprise_result_, __LINE__), lhs, expr)

}  // namespace reprise
