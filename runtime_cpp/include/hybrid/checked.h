// Overflow-checked size arithmetic: every size, stride and offset the runtime computes from a
// plan goes through these, so that a hostile or corrupt plan fails with a clear error instead
// of wrapping around into undefined behaviour.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace hybrid {

// x * y; std::invalid_argument naming `what` if it overflows T.
template <typename T>
T checked_mul(T x, T y, const char* what) {
  T out{};
  if (__builtin_mul_overflow(x, y, &out)) {
    throw std::invalid_argument(std::string(what) + ": " + std::to_string(x) + " * " +
                                std::to_string(y) + " overflows a " +
                                std::to_string(sizeof(T) * 8) + "-bit size");
  }
  return out;
}

// x + y; std::invalid_argument naming `what` if it overflows T.
template <typename T>
T checked_add(T x, T y, const char* what) {
  T out{};
  if (__builtin_add_overflow(x, y, &out)) {
    throw std::invalid_argument(std::string(what) + ": " + std::to_string(x) + " + " +
                                std::to_string(y) + " overflows a " +
                                std::to_string(sizeof(T) * 8) + "-bit size");
  }
  return out;
}

// x * y, or the largest T when it overflows (for cost estimates that only compare sizes).
template <typename T>
T saturating_mul(T x, T y) {
  T out{};
  if (__builtin_mul_overflow(x, y, &out)) return std::numeric_limits<T>::max();
  return out;
}

}  // namespace hybrid
