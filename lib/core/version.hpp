#pragma once

namespace slmopt {
inline constexpr const char* kVersion = "0.1.0";
}
