#pragma once
// Result<T>: a value or an Error, shaped like std::expected so it can be swapped for it once the
// project moves to C++23. Used on every data path instead of exceptions (DESIGN.md, Errors).

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace pushhub {

// What went wrong, in words a user can act on ("tags[3]: longer than 120 characters").
// `code` groups errors so API layers can map them to a status without parsing text.
struct Error {
  enum class Code {
    kInvalidArgument,  // the caller's input is wrong; nothing was changed
    kNotFound,
    kUnauthenticated,
    kPermissionDenied,
    kUnavailable,         // a dependency (Redis, a provider) cannot be reached right now; retryable
    kAlreadyExists,       // a create named something that exists; nothing was changed
    kAborted,             // a conditional write found the data changed meanwhile; read and retry
    kFailedPrecondition,  // not possible in the state the thing is in (e.g. cancel a sent send)
    kInternal,
  };
  Code code = Code::kInternal;
  std::string message;

  static Error invalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Error notFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Error unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
  static Error internal(std::string m) { return {Code::kInternal, std::move(m)}; }
  static Error failedPrecondition(std::string m) {
    return {Code::kFailedPrecondition, std::move(m)};
  }
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & {
    assert(has_value());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(has_value());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(has_value());
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const {
    assert(!has_value());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool has_value() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    assert(!ok_);
    return error_;
  }

 private:
  Error error_;
  bool ok_ = true;
};

}  // namespace pushhub
