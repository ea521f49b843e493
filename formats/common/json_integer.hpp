// Integers read from JSON headers of untrusted files. nlohmann's get<int64_t>()
// static_casts a floating-point value, which is undefined behaviour when it is
// out of range ("shape": [2e94]), and get<int>() silently narrows. These accept
// only integer values that fit T, and otherwise throw json::type_error like
// get() does for a wrong type, so each reader's handler names the file.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

namespace slmopt {

template <class T>
T json_integer(const nlohmann::json& j) {
  static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
  if (j.is_number_unsigned()) {
    const uint64_t v = j.get<uint64_t>();
    if (v <= static_cast<uint64_t>(std::numeric_limits<T>::max())) return static_cast<T>(v);
  } else if (j.is_number_integer()) {
    const int64_t v = j.get<int64_t>();
    if constexpr (std::is_signed_v<T>) {
      if (v >= std::numeric_limits<T>::min() && v <= std::numeric_limits<T>::max()) return static_cast<T>(v);
    } else {
      if (v >= 0 && static_cast<uint64_t>(v) <= std::numeric_limits<T>::max()) return static_cast<T>(v);
    }
  }
  throw nlohmann::json::type_error::create(302, "expected an integer that fits " + std::to_string(sizeof(T) * 8) +
                                                    (std::is_signed_v<T> ? "-bit signed" : "-bit unsigned") +
                                                    " storage, got " + j.dump(),
                                           &j);
}

template <class T>
std::vector<T> json_integers(const nlohmann::json& j) {
  if (!j.is_array()) throw nlohmann::json::type_error::create(302, "expected an array of integers, got " + j.dump(), &j);
  std::vector<T> out;
  out.reserve(j.size());
  for (const auto& x : j) out.push_back(json_integer<T>(x));
  return out;
}

}  // namespace slmopt
