#include "core/memory_limit.hpp"

#include <unistd.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "core/error.hpp"

namespace slmopt {
namespace {

std::atomic<uint64_t> g_limit{0};  // 0: not set, use the default
std::atomic<uint64_t> g_in_use{0};

uint64_t default_limit() {
  if (const char* env = std::getenv("SLMOPT_MEMORY_LIMIT")) {
    const std::optional<uint64_t> bytes = parse_byte_size(env);
    if (!bytes || *bytes == 0)
      throw_usage(std::string("SLMOPT_MEMORY_LIMIT expects a size such as 2GiB or 512M, not '") + env + "'");
    return *bytes;
  }
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
  return uint64_t{1} << 40;
}

}  // namespace

uint64_t memory_limit() {
  uint64_t limit = g_limit.load(std::memory_order_relaxed);
  if (limit == 0) {
    limit = default_limit();
    uint64_t unset = 0;
    g_limit.compare_exchange_strong(unset, limit);
  }
  return limit;
}

void set_memory_limit(uint64_t bytes) { g_limit.store(bytes, std::memory_order_relaxed); }

std::optional<uint64_t> parse_byte_size(std::string_view text) {
  static const std::pair<std::string_view, double> units[] = {
      {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0},
      {"KB", 1e3},     {"MB", 1e6},        {"GB", 1e9},           {"TB", 1e12},
      {"K", 1024.0},   {"M", 1048576.0},   {"G", 1073741824.0},   {"T", 1099511627776.0},
      {"B", 1.0},      {"", 1.0}};
  const std::string copy(text);  // strtod needs a terminated string
  char* end = nullptr;
  const double value = std::strtod(copy.c_str(), &end);
  if (end == copy.c_str() || !std::isfinite(value) || value < 0) return std::nullopt;
  const std::string_view unit(end);
  for (const auto& [name, scale] : units)
    if (unit == name && value * scale < 1.8e19) return static_cast<uint64_t>(std::round(value * scale));
  return std::nullopt;
}

uint64_t memory_in_use() { return g_in_use.load(std::memory_order_relaxed); }

void check_memory_request(uint64_t bytes, const std::string& what, const std::string& file) {
  const uint64_t limit = memory_limit(), used = memory_in_use();
  if (bytes > limit || used > limit - bytes)
    throw_bad_input(what + " needs " + std::to_string(bytes) + " bytes (" + human_bytes(bytes) + ") with " +
                    human_bytes(used) + " already in use: over the memory limit of " + human_bytes(limit) +
                    " (--memory-limit or SLMOPT_MEMORY_LIMIT raise it)",
                    file);
}

std::string human_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  char text[32];
  if (u == 0) std::snprintf(text, sizeof text, "%llu B", static_cast<unsigned long long>(bytes));
  else std::snprintf(text, sizeof text, "%.2f %s", v, units[u]);
  return text;
}

void note_allocated(uint64_t bytes) { g_in_use.fetch_add(bytes, std::memory_order_relaxed); }
void note_freed(uint64_t bytes) { g_in_use.fetch_sub(bytes, std::memory_order_relaxed); }

void reuse_freed_memory() {
#if defined(__GLIBC__)
  // glibc's largest mmap threshold (HEAP_MAX_SIZE / 2): buffers below it come
  // from the heap; and the heap's top is trimmed only past 256 MiB free.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}

}  // namespace slmopt
