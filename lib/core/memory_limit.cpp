#include "core/memory_limit.hpp"

#include <unistd.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "core/error.hpp"

namespace slmopt {
namespace {

std::atomic<uint64_t> g_limit{0};  // 0: not set, use the default
std::atomic<uint64_t> g_in_use{0};

// "2147483648", "512M", "4G", "1.5GiB" -> bytes; 0 when unreadable.
uint64_t parse_env_size(const char* text) {
  char* end = nullptr;
  const double value = std::strtod(text, &end);
  if (end == text || !(value > 0)) return 0;
  const std::string_view unit(end);
  double scale = 1;
  if (unit.starts_with("K") || unit.starts_with("k")) scale = 1024.0;
  else if (unit.starts_with("M") || unit.starts_with("m")) scale = 1048576.0;
  else if (unit.starts_with("G") || unit.starts_with("g")) scale = 1073741824.0;
  else if (unit.starts_with("T") || unit.starts_with("t")) scale = 1099511627776.0;
  else if (!unit.empty() && unit != "B") return 0;
  const double bytes = value * scale;
  return bytes < 1.8e19 ? static_cast<uint64_t>(bytes) : 0;
}

uint64_t default_limit() {
  if (const char* env = std::getenv("SLMOPT_MEMORY_LIMIT"))
    if (const uint64_t bytes = parse_env_size(env)) return bytes;
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
